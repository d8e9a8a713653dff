//! Station scopes against the binary: a token scoped to one plant (`BN_KCNTS_NUOC01`) and one scoped by a pattern to
//! a group (`BN_KCNT*`: Tiên Sơn and Thuận Thành II) see only their plants in the station list, a station's
//! readings, aggregates, events, notes, history and its download, the alarm list (and may acknowledge only their
//! plants' alerts), exports (another plant is refused with a sentence naming it; "all" is their plants), the monthly
//! report and the event stream; a station outside the scope answers 403 with one sentence everywhere, also when it
//! does not exist; an unscoped token sees everything. `/metrics` with `metrics_public = false` needs an unscoped
//! token. In Chromium, the dashboard of a user signed in with a one-plant scope shows that plant alone in the overview, the map
//! and the alarm list, and nothing on another plant's page.

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::browser::Browser;
use support::daemon::{stations, Daemon};

const TS: &str = "BN_KCNTS_NUOC01";
const TT2: &str = "BN_KCNTT2_NUOC01";
const YP: &str = "BN_KCNYP_NUOC01";
/// Scoped to Tiên Sơn alone (auditor: it may also acknowledge, export and print the report).
const ONE: &str = "token-scoped-to-tien-son";
/// Scoped by a pattern to the plants whose id starts `BN_KCNT`.
const GROUP: &str = "token-scoped-to-bn-kcnt-star";
/// Every station.
const ALL: &str = "token-for-every-station";

fn sha256(token: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The three tokens; no anonymous reading.
fn http_section(extra: &str) -> String {
    format!(
        "{extra}\n[[http.token]]\nname = \"tien-son\"\nrole = \"auditor\"\nsha256 = \"{}\"\nstations = [\"{TS}\"]\n\n\
         [[http.token]]\nname = \"kcnt-group\"\nrole = \"auditor\"\nsha256 = \"{}\"\nstations = [\"BN_KCNT*\"]\n\n\
         [[http.token]]\nname = \"admin\"\nrole = \"admin\"\nsha256 = \"{}\"\n",
        sha256(ONE),
        sha256(GROUP),
        sha256(ALL)
    )
}

/// The eight plants at 60 × real time; Tiên Sơn and Yên Phong at 1.5 × their limits, alerts raised at once.
fn rest() -> String {
    format!(
        "[alert]\nraise_after = 1\n\n{}",
        stations(
            60,
            &[
                (TS, "via = \"direct\", load = 1.5"),
                (YP, "via = \"direct\", load = 1.5"),
            ]
        )
    )
}

async fn get(token: &str, url: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn get_text(token: &str, url: &str) -> (u16, String) {
    let r = reqwest::Client::new()
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn post(token: &str, url: &str, body: Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// The `station` of every item of a list.
fn stations_of(list: &Value) -> BTreeSet<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|x| x["station"].as_str().unwrap_or("").to_string())
        .collect()
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

/// The 403 every out-of-scope request answers.
fn assert_outside(status: u16, body: &Value, station: &str, what: &str) {
    assert_eq!(status, 403, "{what}: {body}");
    assert_eq!(
        body["error"],
        format!("station {station} is outside the stations you may see"),
        "{what}"
    );
}

/// A window around now wide enough for every simulated reading (the simulator runs ahead at 60 ×).
fn period() -> (i64, i64) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    (now - 2 * 86_400_000, now + 2 * 86_400_000)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_endpoints_show_only_the_callers_stations() {
    let daemon = Daemon::start(&http_section(""), &rest()).await;
    let base = daemon.http.clone();

    // The station list.
    for (token, want) in [(ONE, set(&[TS])), (GROUP, set(&[TS, TT2]))] {
        let (status, v) = get(token, &format!("{base}/api/stations")).await;
        assert_eq!(status, 200, "{v}");
        let ids: BTreeSet<String> = v["stations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(ids, want);
    }
    let (_, v) = get(ALL, &format!("{base}/api/stations")).await;
    assert_eq!(v["stations"].as_array().unwrap().len(), 8);

    // Lists without a station keep to the scope once every plant has readings and events.
    let filled = support::eventually(Duration::from_secs(60), || {
        let url = format!("{base}/api/events?limit=10000");
        async move {
            let (_, v) = get(ALL, &url).await;
            let s = stations_of(&v["events"]);
            s.contains(TS) && s.contains(YP)
        }
    })
    .await;
    assert!(filled, "no events for both violating plants within 60 s");
    let (from, to) = period();
    // Wait for the plants' first items (hourly means need the simulator's first hour to close; events are of the
    // two violating plants only).
    for (path, key, plants) in [
        ("/api/readings?limit=10000", "readings", set(&[TS, TT2, YP])),
        (
            "/api/aggregates?limit=10000&window=hour",
            "aggregates",
            set(&[TS, TT2, YP]),
        ),
        ("/api/events?limit=10000", "events", set(&[TS, YP])),
    ] {
        let url = format!("{base}{path}");
        let stored = support::eventually(Duration::from_secs(60), || {
            let (url, plants) = (url.clone(), plants.clone());
            async move {
                let (_, all) = get(ALL, &url).await;
                stations_of(&all[key]).is_superset(&plants)
            }
        })
        .await;
        assert!(stored, "{path}: not every plant within 60 s");
        for (token, scope) in [(ONE, set(&[TS])), (GROUP, set(&[TS, TT2]))] {
            let (status, v) = get(token, &format!("{base}{path}")).await;
            assert_eq!(status, 200, "{path}: {v}");
            let seen = stations_of(&v[key]);
            assert!(!seen.is_empty(), "{path}: nothing for {scope:?}");
            assert!(seen.is_subset(&scope), "{path}: {seen:?} outside {scope:?}");
        }
    }

    // One station's endpoints: another plant — or one that does not exist — is 403 with the one sentence; the
    // plant in scope answers.
    let station_paths = |id: &str| {
        vec![
            format!("/api/readings?station={id}"),
            format!("/api/aggregates?station={id}"),
            format!("/api/events?station={id}"),
            format!("/api/alerts?station={id}"),
            format!("/api/notes?station={id}"),
            format!("/api/history?station={id}&parameter=COD&from={from}&to={to}"),
            format!("/api/history/download?station={id}&parameter=COD&from={from}&to={to}"),
            format!(
                "/api/history/download?station={id}&parameter=COD&from={from}&to={to}&format=xlsx"
            ),
            format!("/report?station={id}"),
            format!("/api/export?station={id}&from={from}&to={to}"),
        ]
    };
    for other in [YP, "BN_NO_SUCH_PLANT"] {
        for path in station_paths(other) {
            for token in [ONE, GROUP] {
                let (status, v) = get(token, &format!("{base}{path}")).await;
                assert_outside(status, &v, other, &path);
            }
        }
    }
    for path in station_paths(TS) {
        let (status, _) = get_text(ONE, &format!("{base}{path}")).await;
        assert_eq!(status, 200, "{path}");
    }
    // The history download of the plant in scope carries its readings, as the unscoped token gets them.
    let download = format!("/api/history/download?station={TS}&parameter=COD&from={from}&to={to}");
    let (_, csv) = get_text(ONE, &format!("{base}{download}")).await;
    assert!(
        csv.lines().skip(1).all(|l| l.starts_with(TS)) && csv.lines().count() > 1,
        "{csv}"
    );
    // The unscoped token still reaches every plant.
    for path in station_paths(YP) {
        let (status, _) = get_text(ALL, &format!("{base}{path}")).await;
        assert_eq!(status, 200, "{path}");
    }

    // Exports: "all" is the caller's plants.
    let export = |token: &'static str| {
        let url = format!("{base}/api/export?from={from}&to={to}&format=csv");
        async move {
            let (status, csv) = get_text(token, &url).await;
            assert_eq!(status, 200, "{csv}");
            csv.lines()
                .skip(1)
                .map(|l| l.split(',').next().unwrap().to_string())
                .collect::<BTreeSet<_>>()
        }
    };
    assert_eq!(export(ONE).await, set(&[TS]));
    assert_eq!(export(GROUP).await, set(&[TS, TT2]));
    assert_eq!(export(ALL).await.len(), 8);

    // Notes: written only in scope, listed only in scope.
    let note = |id: &str| format!("{base}/api/stations/{id}/note");
    let (status, v) = post(ONE, &note(YP), json!({ "text": "not mine" })).await;
    assert_outside(status, &v, YP, "note");
    assert_eq!(post(ONE, &note(TS), json!({ "text": "mine" })).await.0, 201);
    assert_eq!(
        post(ALL, &note(YP), json!({ "text": "theirs" })).await.0,
        201
    );
    let (_, v) = get(ONE, &format!("{base}/api/notes")).await;
    assert_eq!(stations_of(&v["notes"]), set(&[TS]));
    let (_, v) = get(ALL, &format!("{base}/api/notes")).await;
    assert_eq!(stations_of(&v["notes"]), set(&[TS, YP]));

    // The quarantine shows no other plant's input (nothing is quarantined here: the answer is allowed and empty of
    // other plants).
    let (status, v) = get(ONE, &format!("{base}/api/quarantine")).await;
    assert_eq!(status, 200, "{v}");
    assert!(stations_of(&v["quarantine"]).is_subset(&set(&[TS])));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_are_listed_read_and_acknowledged_only_in_scope() {
    let daemon = Daemon::start(&http_section(""), &rest()).await;
    let base = daemon.http.clone();
    let raised = |station: &'static str| {
        let url = format!("{base}/api/alerts?station={station}&state=raised&limit=1");
        async move {
            let (_, v) = get(ALL, &url).await;
            v["alerts"][0]["id"].as_i64()
        }
    };
    let mut ids = (None, None);
    let deadline = Instant::now() + Duration::from_secs(60);
    while ids.0.is_none() || ids.1.is_none() {
        assert!(
            Instant::now() < deadline,
            "no raised alerts for both violating plants within 60 s"
        );
        ids = (raised(TS).await, raised(YP).await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (mine, theirs) = (ids.0.unwrap(), ids.1.unwrap());

    // The list: only the scope's plants; its total counts what the unscoped list holds for them.
    let agreed = support::eventually(Duration::from_secs(30), || {
        let base = base.clone();
        async move {
            let (_, scoped) = get(ONE, &format!("{base}/api/alerts?limit=1000")).await;
            let (_, all) = get(ALL, &format!("{base}/api/alerts?station={TS}&limit=1000")).await;
            assert_eq!(stations_of(&scoped["alerts"]), set(&[TS]), "{scoped}");
            scoped["total"] == all["total"] && scoped["alerts"] == all["alerts"]
        }
    })
    .await;
    assert!(
        agreed,
        "the scoped list never matched the unscoped list of its plant"
    );
    let (_, all) = get(ALL, &format!("{base}/api/alerts?limit=1000")).await;
    assert!(stations_of(&all["alerts"]).contains(YP));

    // One alert's history, and acknowledging.
    let (status, v) = get(ONE, &format!("{base}/api/alerts/{theirs}/history")).await;
    assert_outside(status, &v, YP, "history");
    assert_eq!(
        get(ONE, &format!("{base}/api/alerts/{mine}/history"))
            .await
            .0,
        200
    );
    let ack = |id: i64| format!("{base}/api/alerts/{id}/ack");
    let (status, v) = post(GROUP, &ack(theirs), json!({ "comment": "not mine" })).await;
    assert_outside(status, &v, YP, "ack");
    let (_, v) = get(ALL, &format!("{base}/api/alerts/{theirs}/history")).await;
    assert_eq!(
        v["state"], "raised",
        "a refused acknowledgement changed the alert: {v}"
    );
    let (status, v) = post(GROUP, &ack(mine), json!({ "comment": "đã kiểm tra" })).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["state"], "acknowledged");
    let (status, v) = post(ALL, &ack(theirs), json!({ "comment": "đã kiểm tra" })).await;
    assert_eq!(status, 200, "{v}");
}

/// One server-sent event.
#[derive(Debug)]
struct Sse {
    event: String,
    data: Value,
}

/// Read `/api/stream` with `token` until `done` says so of the events so far, or `limit` passes (then panic).
async fn read_stream(
    base: &str,
    token: &str,
    limit: Duration,
    mut done: impl FnMut(&[Sse]) -> bool,
) -> Vec<Sse> {
    let mut r = reqwest::Client::new()
        .get(format!("{base}/api/stream"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let deadline = tokio::time::Instant::now() + limit;
    let mut buf = String::new();
    let mut out = Vec::new();
    loop {
        let chunk = tokio::time::timeout_at(deadline, r.chunk())
            .await
            .unwrap_or_else(|_| {
                panic!("the stream did not give what was awaited within {limit:?}: {out:?}")
            })
            .unwrap()
            .expect("the stream ended");
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let (mut event, mut data) = (String::new(), String::new());
            for line in block.lines() {
                if let Some(e) = line.strip_prefix("event:") {
                    event = e.trim().to_string();
                } else if let Some(d) = line.strip_prefix("data:") {
                    data.push_str(d.trim_start());
                }
            }
            if !event.is_empty() {
                let data = serde_json::from_str(&data).unwrap_or(Value::String(data));
                out.push(Sse { event, data });
            }
        }
        if done(&out) {
            return out;
        }
    }
}

/// The stations named by the station events of `events` (every list message, and the plants of `status`).
fn streamed_stations(events: &[Sse], kind: &str) -> BTreeSet<String> {
    events
        .iter()
        .filter(|e| e.event == kind)
        .flat_map(|e| {
            let key = if kind == "status" { "id" } else { "station" };
            e.data
                .as_array()
                .unwrap_or_else(|| panic!("{kind} is not a list: {:?}", e.data))
                .iter()
                .map(|x| x[key].as_str().unwrap_or("").to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_carries_only_the_callers_stations() {
    let daemon = Daemon::start(&http_section("metrics_public = false"), &rest()).await;
    let base = daemon.http.clone();

    // The group's stream: readings of both its plants and a status message, never another plant; the alerts of
    // Tiên Sơn arrive, Yên Phong's (raised as often) never.
    let kinds = ["readings", "windows", "events", "alerts", "flags", "status"];
    let scoped = read_stream(&base, GROUP, Duration::from_secs(60), |ev| {
        let r = streamed_stations(ev, "readings");
        r.contains(TS)
            && r.contains(TT2)
            && ev.iter().any(|e| e.event == "status")
            && ev.iter().any(|e| e.event == "alerts")
    })
    .await;
    for kind in kinds {
        let seen = streamed_stations(&scoped, kind);
        assert!(
            seen.is_subset(&set(&[TS, TT2])),
            "{kind}: {seen:?} outside the group's scope"
        );
    }
    assert_eq!(streamed_stations(&scoped, "status"), set(&[TS, TT2]));

    // The unscoped stream over the same time carries every plant.
    let all = read_stream(&base, ALL, Duration::from_secs(60), |ev| {
        streamed_stations(ev, "readings").len() == 8 && ev.iter().any(|e| e.event == "status")
    })
    .await;
    assert_eq!(streamed_stations(&all, "status").len(), 8);

    // `/metrics` names every station: with metrics_public = false only an unscoped caller reads it.
    let metrics = format!("{base}/metrics");
    assert_eq!(reqwest::get(&metrics).await.unwrap().status(), 401);
    let (status, v) = get(ONE, &metrics).await;
    assert_eq!(status, 403, "{v}");
    assert!(v["error"].as_str().unwrap().contains("tien-son"), "{v}");
    let (status, text) = get_text(ALL, &metrics).await;
    assert_eq!(status, 200);
    assert!(text.contains(&format!("station=\"{YP}\"")), "{text}");
}

/// Sign the browser in, through the dashboard's sign-in form, as a user scoped to Tiên Sơn alone, made with
/// `quantrac user add` beside the running daemon.
async fn sign_in_scoped_user(browser: &Browser, daemon: &Daemon) {
    let password = "lan-tien-son-2026";
    let config = daemon.dir.path().join("quantrac.toml");
    let (code, out, err) = support::user_cli(
        &config,
        &["add", "lan", "--role", "auditor", "--stations", TS],
        &format!("{password}\n"),
    );
    assert_eq!(code, 0, "{out}{err}");
    // Straight to the sign-in page, as from a bookmark.
    browser
        .sign_in(&format!("{}/#/login", daemon.http), "lan", password)
        .await;
    let who = browser
        .wait_for(
            "const n = document.getElementById('who-name'); return n && n.textContent",
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(who, "lan");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_of_a_scoped_user_shows_its_plant_alone() {
    // A map with every plant placed (the tile server is absent: markers are drawn without tiles).
    let located = rest().replace("sim = {", "location = { lat = 21.1, lon = 106.0 }\nsim = {");
    let daemon = Daemon::start(
        &http_section("map_tiles = \"http://127.0.0.1:9/tiles/{z}/{x}/{y}.png\""),
        &located,
    )
    .await;
    let browser = Browser::start().await;
    sign_in_scoped_user(&browser, &daemon).await;
    browser.goto(&format!("{}/#/", daemon.http)).await;
    let shown = browser
        .wait_for(
            "const e = document.getElementById('error'); if (!e.hidden) return 'error: ' + e.textContent; \
             const t = [...document.querySelectorAll('.tile')]; \
             const m = [...document.querySelectorAll('#map path.map-station')]; \
             return t.length > 0 && m.length > 0 && t.every(x => x.querySelector('td.value') && /\\d/.test(x.querySelector('td.value').textContent)) \
               && { tiles: t.map(x => x.dataset.station), markers: m.map(x => x.dataset.station) }",
            Duration::from_secs(60),
        )
        .await;
    assert_eq!(shown, json!({ "tiles": [TS], "markers": [TS] }), "{shown}");
    let counted = browser
        .eval("return [...document.querySelectorAll('#legend .state-count')].reduce((n, c) => n + +c.dataset.count, 0)")
        .await;
    assert_eq!(counted, 1, "the overview counts one plant");

    // The stream keeps the overview to its plant: after live updates there is still one tile.
    browser.eval("window.__noReload = 1; return true;").await;
    let cell = format!(
        "return document.querySelector('[data-station=\"{TS}\"] tr[data-param=\"COD\"] td.value').textContent"
    );
    let before = browser.eval(&cell).await;
    browser
        .wait_for(
            &format!("const v = (function() {{ {cell} }})(); return v !== {before} && v"),
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(
        browser
            .eval("return document.querySelectorAll('.tile').length")
            .await,
        1
    );

    // The alarm list: Tiên Sơn's alerts only, though Yên Phong raises as many.
    browser
        .eval("location.hash = '#/alarms'; return true;")
        .await;
    let rows = browser
        .wait_for(
            "const r = [...document.querySelectorAll('#alarm-list tr[data-alert]')]; \
             return r.length > 0 && r.map(x => x.dataset.station)",
            Duration::from_secs(60),
        )
        .await;
    let rows: BTreeSet<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap_or(""))
        .collect();
    assert_eq!(rows, [TS].into_iter().collect::<BTreeSet<_>>());
    // Yên Phong's plant page has nothing to show: the page knows only the stations the API gave it.
    browser
        .eval(&format!("location.hash = '#/station/{YP}'; return true;"))
        .await;
    let detail = browser
        .wait_for(
            "const d = document.getElementById('detail'); return !d.hidden && d.textContent.length > 0 && \
             { text: d.textContent, tables: d.querySelectorAll('table').length }",
            Duration::from_secs(30),
        )
        .await;
    browser
        .screenshot(&std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("scopes-dashboard.png"))
        .await;
    assert_eq!(detail, json!({ "text": YP, "tables": 0 }));

    // The same session (its cookie) from the page's own requests: the station list, another plant's export and
    // report, and the event stream keep to Tiên Sơn.
    let (from, to) = period();
    browser
        .eval(&format!(
            "window.__scoped = null; (async () => {{ \
               const st = async (u) => (await fetch(u)).status; \
               const list = await (await fetch('/api/stations')).json(); \
               window.__scoped = {{ stations: list.stations.map(s => s.id), \
                 export: await st('/api/export?station={YP}&from={from}&to={to}'), \
                 report: await st('/report?station={YP}'), own: await st('/report?station={TS}') }}; }})(); return true;"
        ))
        .await;
    let seen = browser
        .wait_for("return window.__scoped", Duration::from_secs(30))
        .await;
    assert_eq!(
        seen,
        json!({ "stations": [TS], "export": 403, "report": 403, "own": 200 })
    );
    let streamed = browser
        .wait_for(
            "if (!window.__streamed) { window.__streamed = new Set(); \
               const es = new EventSource('/api/stream'); \
               es.addEventListener('readings', e => JSON.parse(e.data).forEach(r => window.__streamed.add(r.station))); } \
             return window.__streamed.size > 0 && [...window.__streamed]",
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(streamed, json!([TS]), "the stream of a scoped session");
}
