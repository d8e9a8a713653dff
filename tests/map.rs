//! The overview's map of stations in a real headless Chromium. With `[http] map_tiles` pointing at a small local tile
//! server (one PNG for every tile): the map appears above the tiles, its tiles load (the page's content security
//! policy lets images come from that server and from nowhere else), one marker per station with a location and none
//! for the station without, each filled with the colour of its state as the station's tile shows it (a violating and
//! a compliant plant); hovering shows the name, clicking opens a popup with name and state whose link leads to the
//! plant page; the attribution is shown as text; no horizontal overflow at 390 px. Without `map_tiles`: no map box,
//! Leaflet not even loaded. `/api/stations` gives each station's `location` (or null) and the `map` settings.
//! Screenshots: `target/tmp/map.png`, `target/tmp/map-390.png`.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};
use support::browser::Browser;
use support::daemon::Daemon;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

const BAD: &str = "BN_KCNTS_NUOC01";
const GOOD: &str = "BN_KCNYP_NUOC01";
const UNPLACED: &str = "BN_KCNQV_NUOC01";
/// Shown as text: the markup must not become markup.
const ATTRIBUTION: &str = "Test tiles <b>not bold</b>";
/// A 1 × 1 PNG: every tile the server sends.
const TILE_PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==";

/// A tile server on loopback answering every request with [`TILE_PNG`], counting the requests for `/tiles/…`.
struct TileServer {
    port: u16,
    tiles_served: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl TileServer {
    async fn start() -> TileServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let tiles_served = Arc::new(AtomicUsize::new(0));
        let count = tiles_served.clone();
        let png = base64::engine::general_purpose::STANDARD
            .decode(TILE_PNG)
            .unwrap();
        let task = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                tokio::spawn(answer(sock, png.clone(), count.clone()));
            }
        });
        TileServer {
            port,
            tiles_served,
            task,
        }
    }
}

impl Drop for TileServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One connection: each request's head read, the PNG sent, until the browser closes it.
async fn answer(sock: tokio::net::TcpStream, png: Vec<u8>, count: Arc<AtomicUsize>) {
    let (r, mut w) = sock.into_split();
    let mut r = BufReader::new(r);
    loop {
        let mut request = String::new();
        if r.read_line(&mut request).await.unwrap_or(0) == 0 {
            return;
        }
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).await.unwrap_or(0) == 0 {
                return;
            }
            if h.trim().is_empty() {
                break;
            }
        }
        if request
            .split_whitespace()
            .nth(1)
            .unwrap_or("")
            .starts_with("/tiles/")
        {
            count.fetch_add(1, Ordering::SeqCst);
        }
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: {}\r\n\r\n",
            png.len()
        );
        if w.write_all(head.as_bytes()).await.is_err() || w.write_all(&png).await.is_err() {
            return;
        }
    }
}

/// Two located plants (one at 1.5 × its limits; the location written inline and as a table), one without a
/// location; the simulator in real time.
fn stations() -> String {
    let station = |id: &str, name: &str, sim: &str, location: &str| {
        format!(
            "[[station]]\nid = \"{id}\"\nname = \"{name}\"\nzone = \"{name}\"\nprofile = \"qcvn40-2011-b\"\n\
             design_flow_m3_day = 5000\nreceiving_water = {{ type = \"river\", flow_m3_s = 120 }}\ninterval = \"10s\"\n\
             parameters = {{ Flow = {{}}, Temp = {{}}, pH = {{}}, TSS = {{}}, COD = {{}}, NH4 = {{}} }}\nsim = {{ {sim} }}\n{location}\n"
        )
    };
    format!(
        "[sim]\nenabled = true\nspeed = 1\n\n{}{}{}",
        station(
            BAD,
            "Trạm nước thải Tiên Sơn",
            "via = \"direct\", load = 1.5",
            "location = { lat = 21.114, lon = 105.999 }\n"
        ),
        station(
            GOOD,
            "Trạm nước thải Yên Phong",
            "via = \"direct\"",
            "[station.location]\nlat = 21.214\nlon = 105.969\n"
        ),
        station(UNPLACED, "Trạm nước thải Quế Võ", "via = \"direct\"", "")
    )
}

async fn get(url: &str) -> (u16, reqwest::header::HeaderMap, Value) {
    let r = reqwest::get(url).await.unwrap();
    let (status, headers) = (r.status().as_u16(), r.headers().clone());
    (status, headers, r.json().await.unwrap_or(Value::Null))
}

fn shot(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name)
}

/// The markers drawn, each with the state and fill colour it shows and its station tile's state and colour.
const MARKERS: &str = "return [...document.querySelectorAll('#map path.map-station')].map(p => { \
    const tile = document.querySelector(`.tile[data-station=\"${p.dataset.station}\"]`); \
    return { station: p.dataset.station, state: p.dataset.state, fill: getComputedStyle(p).fill, \
      tile_state: tile && tile.dataset.state, tile_colour: tile && getComputedStyle(tile).borderLeftColor }; })";

/// Send the mouse event `type` to the marker of `station` at its centre, as the pointer would.
fn mouse(station: &str, kind: &str) -> String {
    format!(
        "const p = document.querySelector('#map path[data-station=\"{station}\"]'); const b = p.getBoundingClientRect(); \
         const x = b.left + b.width / 2, y = b.top + b.height / 2; const at = document.elementFromPoint(x, y); \
         if (at !== p) return 'covered by ' + (at && at.outerHTML.slice(0, 80)); \
         p.dispatchEvent(new MouseEvent('{kind}', {{ bubbles: true, cancelable: true, clientX: x, clientY: y, view: window }})); return true;"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overview_maps_located_stations_in_their_state_colours() {
    let tiles = TileServer::start().await;
    let http = format!(
        "anonymous_read = true\nmap_tiles = \"http://127.0.0.1:{}/tiles/{{z}}/{{x}}/{{y}}.png\"\nmap_attribution = \"{}\"\n",
        tiles.port, ATTRIBUTION
    );
    let daemon = Daemon::start(&http, &stations()).await;

    // The API: locations, the map settings, and a page policy that admits the tile server's images.
    let (status, _, v) = get(&format!("{}/api/stations", daemon.http)).await;
    assert_eq!(status, 200, "{v}");
    let tiles_url = format!(
        "http://127.0.0.1:{}/tiles/{{z}}/{{x}}/{{y}}.png",
        tiles.port
    );
    assert_eq!(
        v["map"],
        json!({ "tiles": tiles_url, "attribution": ATTRIBUTION })
    );
    let location = |id: &str| {
        v["stations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == id)
            .unwrap()["location"]
            .clone()
    };
    assert_eq!(location(BAD), json!({ "lat": 21.114, "lon": 105.999 }));
    assert_eq!(location(GOOD), json!({ "lat": 21.214, "lon": 105.969 }));
    assert_eq!(location(UNPLACED), Value::Null);
    let page = reqwest::get(format!("{}/", daemon.http)).await.unwrap();
    let policy = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        policy.contains(&format!(
            "img-src 'self' data: http://127.0.0.1:{};",
            tiles.port
        )),
        "{policy}"
    );

    let browser = Browser::start().await;
    browser.goto(&format!("{}/", daemon.http)).await;
    let markers = browser
        .wait_for(
            "const e = document.getElementById('error'); if (!e.hidden) return 'error: ' + e.textContent; \
             const m = document.getElementById('map'); \
             return !m.hidden && document.querySelectorAll('#map path.map-station').length === 2 \
               && document.querySelectorAll('.tile').length === 3 && m.getBoundingClientRect().height",
            Duration::from_secs(60),
        )
        .await;
    assert!(markers.as_f64().is_some_and(|h| h > 100.0), "{markers}");
    // Tiles from the local server, drawn (the policy let them in).
    let loaded = browser
        .wait_for(
            "const i = [...document.querySelectorAll('#map img.leaflet-tile-loaded')].filter(i => i.naturalWidth > 0); return i.length",
            Duration::from_secs(30),
        )
        .await;
    assert!(loaded.as_i64() > Some(0));
    assert!(tiles.tiles_served.load(Ordering::SeqCst) > 0);

    // Every marker in its station's state and its tile's colour; the violating and the compliant plant differ.
    let wanted = format!(
        "const m = (function() {{ {MARKERS} }})(); \
         const s = Object.fromEntries(m.map(x => [x.station, x.state])); \
         return m.every(x => x.state === x.tile_state && x.fill === x.tile_colour) && s['{BAD}'] !== s['{GOOD}'] && m"
    );
    let drawn = browser.wait_for(&wanted, Duration::from_secs(90)).await;
    let drawn = drawn.as_array().unwrap();
    let mut ids: Vec<&str> = drawn
        .iter()
        .map(|m| m["station"].as_str().unwrap())
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        [BAD, GOOD],
        "one marker per located station: {drawn:?}"
    );
    // The colours are the overview's state colours (the CSS variables the tiles use).
    let palette = browser
        .eval(
            "const probe = document.createElement('span'); document.body.append(probe); \
             const css = (v) => { probe.style.color = getComputedStyle(document.documentElement).getPropertyValue(v).trim(); return getComputedStyle(probe).color; }; \
             const out = { compliant: css('--ok'), warning: css('--warn'), violation: css('--bad'), silent: css('--silent'), fault: css('--fault') }; \
             probe.remove(); return out;",
        )
        .await;
    for m in drawn {
        let state = m["state"].as_str().unwrap();
        assert_eq!(m["fill"], palette[state], "{m} against {palette}");
    }

    // Hover: the name; click: a popup with name and state, whose link opens the plant page.
    assert_eq!(browser.eval(&mouse(BAD, "mouseover")).await, json!(true));
    let tooltip = browser
        .wait_for(
            "const t = document.querySelector('.leaflet-tooltip'); return t && t.textContent",
            Duration::from_secs(10),
        )
        .await;
    assert_eq!(tooltip, "Trạm nước thải Tiên Sơn");
    assert_eq!(browser.eval(&mouse(BAD, "click")).await, json!(true));
    let popup = browser
        .wait_for(
            &format!("const p = document.querySelector('.leaflet-popup .map-popup[data-station=\"{BAD}\"]'); \
                return p && [p.querySelector('b').textContent, p.querySelector('.state').textContent, \
                  document.querySelector('.tile[data-station=\"{BAD}\"] .state').textContent, p.querySelector('a').getAttribute('href')]"),
            Duration::from_secs(10),
        )
        .await;
    assert_eq!(popup[0], "Trạm nước thải Tiên Sơn");
    assert_eq!(popup[1], popup[2], "the popup's state is the tile's");
    assert_eq!(popup[3], format!("#/station/{BAD}"));
    // The attribution as text, markup and all.
    let attribution = browser
        .eval("return document.querySelector('.leaflet-control-attribution').textContent")
        .await;
    assert!(
        attribution.as_str().unwrap().contains(ATTRIBUTION),
        "{attribution}"
    );
    browser.screenshot(&shot("map.png")).await;
    browser
        .eval("document.querySelector('.leaflet-popup a').click(); return true;")
        .await;
    let opened = browser
        .wait_for(
            "return !document.getElementById('detail').hidden && document.getElementById('overview').hidden && location.hash",
            Duration::from_secs(10),
        )
        .await;
    assert_eq!(opened, format!("#/station/{BAD}"));

    // Back on the overview at phone width: the map follows the width, nothing scrolls sideways.
    browser.set_window_size(390, 900).await;
    browser.eval("location.hash = '#/'; return true;").await;
    let fit = browser
        .wait_for(
            "const m = document.getElementById('map'); const b = m.getBoundingClientRect(); \
             return window.innerWidth <= 390 && !m.hidden && b.width > 0 && document.querySelectorAll('#map path.map-station').length === 2 \
               && [document.documentElement.scrollWidth, window.innerWidth, Math.round(b.right)]",
            Duration::from_secs(20),
        )
        .await;
    let (scroll, inner, right) = (
        fit[0].as_i64().unwrap(),
        fit[1].as_i64().unwrap(),
        fit[2].as_i64().unwrap(),
    );
    assert!(
        scroll <= inner && right <= inner,
        "the overview at 390 px: the page is {scroll} px wide, the map ends at {right}, in a {inner} px window"
    );
    browser.screenshot(&shot("map-390.png")).await;
    let error = browser
        .eval("const e = document.getElementById('error'); return e.hidden || e.textContent")
        .await;
    assert_eq!(error, json!(true), "the page showed an error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_tile_server_there_is_no_map() {
    let daemon = Daemon::start("anonymous_read = true", &stations()).await;
    let (status, headers, v) = get(&format!("{}/api/stations", daemon.http)).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["map"], Value::Null);
    assert!(headers.get("content-type").is_some());
    let page = reqwest::get(format!("{}/", daemon.http)).await.unwrap();
    let policy = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(policy.contains("img-src 'self' data:;"), "{policy}");

    let browser = Browser::start().await;
    browser.goto(&format!("{}/", daemon.http)).await;
    let shown = browser
        .wait_for(
            "const e = document.getElementById('error'); if (!e.hidden) return 'error: ' + e.textContent; \
             return document.querySelectorAll('.tile').length === 3 && [document.getElementById('map').hidden, \
               document.getElementById('map').getBoundingClientRect().height, typeof window.L]",
            Duration::from_secs(60),
        )
        .await;
    assert_eq!(
        shown,
        json!([true, 0, "undefined"]),
        "no map box, Leaflet not loaded"
    );
}
