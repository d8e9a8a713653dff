// quantrac dashboard: the overview's map of stations. Each station with a `[station.location]` is a circle coloured
// by its state (the tiles' colours), with its name on hover and a popup (name, state, link to the plant page), over
// the tile server of `[http] map_tiles`. No tile server, or no station with a location: no map at all, and Leaflet
// (vendored, BSD-2) is not even loaded. Loaded before app.js; uses its helpers (el, t, lang, stations, showError)
// only when called.
"use strict";

const MT = {
  vi: { m_open: "Xem trạm →", m_title: "Bản đồ các trạm" },
  en: { m_open: "Open the plant page →", m_title: "Map of the stations" },
};
const mt = (k) => (MT[lang] && MT[lang][k]) || k;
// The CSS variables the overview's tiles are coloured with, per state.
const MAP_COLOURS = { compliant: "--ok", warning: "--warn", violation: "--bad", silent: "--silent", fault: "--fault" };
const stateColour = (state) => getComputedStyle(document.documentElement).getPropertyValue(MAP_COLOURS[state] || "--silent").trim();

let mapSettings = null; // { tiles, attribution } from /api/stations, or null: no map
let stationMap = null; // the Leaflet map, made the first time the overview shows it
let mapFittedTo = ""; // the located stations the view was last fitted to
let leafletLoading = null;
const mapMarkers = new Map(); // station id -> circle marker

// Leaflet's script and style, fetched once, the first time a map is shown.
function loadLeaflet() {
  if (window.L) return Promise.resolve();
  if (!leafletLoading) leafletLoading = new Promise((resolve, reject) => {
    document.head.append(el("link", { rel: "stylesheet", href: "/assets/leaflet.css" }));
    const s = el("script", { src: "/assets/leaflet.js" });
    s.onload = resolve;
    s.onerror = () => { leafletLoading = null; reject(new Error("/assets/leaflet.js did not load")); };
    document.head.append(s);
  });
  return leafletLoading;
}

const locatedStations = () => [...stations.values()].filter((st) => st.location);

// Show (or hide) the map for the overview; called whenever the overview is drawn.
function renderMap() {
  const box = document.getElementById("map");
  const located = locatedStations();
  box.hidden = !(mapSettings && mapSettings.tiles && located.length);
  if (box.hidden) return;
  box.setAttribute("aria-label", mt("m_title"));
  loadLeaflet().then(() => drawMap(box, located)).catch(showError);
}

// Leaflet sets the attribution as HTML: the configured text is shown as text.
const htmlText = (s) => s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

function drawMap(box, located) {
  // Left for another page while Leaflet loaded: a box without a size cannot be fitted (the overview draws it again).
  if (box.hidden || document.getElementById("overview").hidden) return;
  if (!stationMap) {
    // The page scrolls: the wheel scrolls it rather than zooming the map (the + / − buttons zoom).
    stationMap = L.map(box, { scrollWheelZoom: false });
    L.tileLayer(mapSettings.tiles, { attribution: htmlText(mapSettings.attribution || ""), maxZoom: 19 }).addTo(stationMap);
  } else stationMap.invalidateSize(); // the box had no size while the overview was hidden
  // The view first: Leaflet draws no layer before the map has one.
  const key = located.map((st) => `${st.id}@${st.location.lat},${st.location.lon}`).join(" ");
  if (key !== mapFittedTo) {
    mapFittedTo = key;
    stationMap.fitBounds(L.latLngBounds(located.map((st) => [st.location.lat, st.location.lon])), { padding: [30, 30], maxZoom: 13 });
  }
  const ids = new Set(located.map((st) => st.id));
  for (const [id, m] of mapMarkers) if (!ids.has(id)) { m.remove(); mapMarkers.delete(id); }
  for (const st of located) placeMarker(st);
  raiseWorst();
}

// A popup made when it opens, so it shows the station's state and language of that moment.
const markerPopup = (id) => () => {
  const st = stations.get(id);
  return el("div", { class: `map-popup s-${st.state}`, "data-station": id },
    el("b", {}, st.name), el("br"), el("span", { class: "state" }, t(st.state)), el("br"),
    el("a", { href: `#/station/${encodeURIComponent(id)}` }, mt("m_open")));
};

// The station's marker, made or moved and recoloured to its current state.
function placeMarker(st) {
  let m = mapMarkers.get(st.id);
  const at = [st.location.lat, st.location.lon];
  if (!m) {
    m = L.circleMarker(at, { radius: 9, weight: 2, color: "#fff", fillOpacity: 0.9, className: "map-station" }).addTo(stationMap);
    m.bindTooltip(() => el("span", {}, stations.get(st.id).name));
    m.bindPopup(markerPopup(st.id));
    m.getElement().setAttribute("data-station", st.id);
    mapMarkers.set(st.id, m);
  } else m.setLatLng(at);
  if (m.getElement().getAttribute("data-state") !== st.state) {
    m.setStyle({ fillColor: stateColour(st.state) });
    m.getElement().setAttribute("data-state", st.state);
    if (m.isPopupOpen()) m.getPopup().update();
  }
}

// Where markers overlap, the worse state is drawn on top.
function raiseWorst() {
  const order = [...mapMarkers.entries()].map(([id, m]) => [STATES.indexOf((stations.get(id) || {}).state), m]);
  order.sort((a, b) => b[0] - a[0]).forEach(([, m]) => m.bringToFront());
}

// Live updates: recolour the markers of the stations that changed.
function refreshMap(touched) {
  if (!stationMap || document.getElementById("map").hidden) return;
  let changed = false;
  for (const id of touched) {
    const st = stations.get(id), m = mapMarkers.get(id);
    if (!st || !m || !st.location) continue;
    changed = changed || m.getElement().getAttribute("data-state") !== st.state;
    placeMarker(st);
  }
  if (changed) raiseWorst();
}
