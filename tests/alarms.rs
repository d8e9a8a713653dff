//! The province's alarm list and overview in a real headless Chromium, checked against the API: the list's plant,
//! kind, parameter, state and date filters show the rows `GET /api/alerts` gives, paging follows `next_before`, an
//! operator acknowledges from the list with a comment, an alert's history shows its deliveries; the overview sorts
//! by state, since, worst multiple and completeness as `/api/stations` orders them and counts stations per state;
//! neither page overflows at 390 and 768 px. Bad parameters of the new filters and endpoint get a 400 sentence.
//! Screenshots go under `target/tmp/`.

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::browser::Browser;
use support::daemon::{stations, Daemon};

const TOKEN: &str = "operator-token-for-the-alarm-list-test";
const COMMENT: &str = "Đã báo nhà máy kiểm tra";

fn http_section() -> String {
    use sha2::{Digest, Sha256};
    let hash: String = Sha256::digest(TOKEN.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!(
        "anonymous_read = true\n[[http.token]]\nname = \"operator-1\"\nrole = \"operator\"\nsha256 = \"{hash}\"\n"
    )
}

/// Alerts raised at once, notified to a webhook nobody listens on (failed attempts are part of the history); two
/// plants at 1.5 × their limits.
fn rest(dead_port: u16) -> String {
    format!(
        "[alert]\nraise_after = 1\nretry_max_backoff = \"1s\"\n\n[[alert.channel]]\nname = \"bridge\"\ntype = \"webhook\"\n\
         url = \"http://127.0.0.1:{dead_port}/hook\"\nsecret = \"webhook-secret-for-tests\"\ntimeout = \"1s\"\n\n\
         [[alert.route]]\nkinds = [\"violation\", \"exceedance\"]\nchannels = [\"bridge\"]\n\n{}",
        stations(
            60,
            &[
                ("BN_KCNTS_NUOC01", "via = \"direct\", load = 1.5"),
                ("BN_KCNYP_NUOC01", "via = \"direct\", load = 1.5"),
            ]
        )
    )
}

async fn get(url: &str) -> (u16, Value) {
    let r = reqwest::get(url).await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn ids(v: &Value) -> Vec<i64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_i64().or_else(|| a.as_i64()).unwrap())
        .collect()
}

fn shot(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name)
}

/// Show `#/alarms?{query}`, wait for its list, and return (the ids shown, the attribute `attr` of each row).
async fn shown(browser: &Browser, query: &str, attr: &str) -> (Vec<i64>, Vec<String>) {
    let hash = format!("#/alarms?{query}");
    browser
        .eval(&format!("location.hash = {}; return true;", json!(hash)))
        .await;
    browser
        .wait_for(
            &format!("const l = document.getElementById('alarm-list'); return l && l.dataset.loaded === {}", json!(hash)),
            Duration::from_secs(30),
        )
        .await;
    let v = browser
        .eval(&format!(
            "return [...document.querySelectorAll('#alarm-list tr[data-alert]')].map(r => [+r.dataset.alert, r.dataset[{}] || ''])",
            json!(attr)
        ))
        .await;
    let rows = v.as_array().unwrap();
    (
        rows.iter().map(|r| r[0].as_i64().unwrap()).collect(),
        rows.iter()
            .map(|r| r[1].as_str().unwrap().to_string())
            .collect(),
    )
}

/// The page's rows for `query` are what `GET /api/alerts?{api}` lists (alerts keep arriving and changing state: the
/// page is re-read until one reading of it and one of the API agree, within 30 s). Returns the ids.
async fn list_matches(
    browser: &Browser,
    daemon: &Daemon,
    query: &str,
    api: &str,
    attr: &str,
    want: &str,
) -> Vec<i64> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (page, attrs) = shown(browser, query, attr).await;
        assert!(
            attrs.iter().all(|a| a == want),
            "{query}: a row's {attr} is not {want}: {attrs:?}"
        );
        let (status, body) = get(&format!("{}/api/alerts?{api}&limit=20", daemon.http)).await;
        assert_eq!(status, 200, "{body}");
        let listed = ids(&body["alerts"]);
        if page == listed {
            return page;
        }
        assert!(
            Instant::now() < deadline,
            "{query}: the page shows {page:?}, the API lists {listed:?}"
        );
        // Leave the page to show the same query afresh.
        browser.eval("location.hash = '#/'; return true;").await;
    }
}

/// Open an alert's history under its row in the list; returns its text.
async fn open_history(browser: &Browser, id: i64) -> String {
    browser
        .eval(&format!("document.querySelector('#alarm-list tr[data-alert=\"{id}\"] button.history').click(); return true;"))
        .await;
    let text = browser
        .wait_for(&format!("const h = document.querySelector('.alarm-history[data-alert=\"{id}\"]'); return h && h.textContent"), Duration::from_secs(30))
        .await;
    text.as_str().unwrap().to_string()
}

async fn no_overflow(browser: &Browser, width: u32, what: &str) {
    browser.set_window_size(width, 900).await;
    let v = browser
        .wait_for(
            &format!("return window.innerWidth <= {width} && [document.documentElement.scrollWidth, window.innerWidth]"),
            Duration::from_secs(10),
        )
        .await;
    let (scroll, inner) = (v[0].as_i64().unwrap(), v[1].as_i64().unwrap());
    assert!(
        scroll <= inner,
        "{what} at {width} px: the page is {scroll} px wide in a {inner} px window"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alarm_list_filters_pages_acknowledges_and_shows_history() {
    let daemon = Daemon::start(&http_section(), &rest(support::free_port())).await;
    api_refuses_bad_parameters(&daemon.http).await;
    // Exceedances at both plants and a raised violation.
    let ready = support::eventually(Duration::from_secs(120), || {
        let url = format!("{}/api/alerts?limit=1000", daemon.http);
        async move {
            let (_, v) = get(&url).await;
            let list = v["alerts"].as_array().cloned().unwrap_or_default();
            let plants: std::collections::BTreeSet<_> = list
                .iter()
                .filter(|a| a["kind"] == "exceedance")
                .map(|a| a["station"].as_str().unwrap().to_string())
                .collect();
            plants.len() >= 2
                && list
                    .iter()
                    .any(|a| a["kind"] == "violation" && a["state"] == "raised")
        }
    })
    .await;
    assert!(ready, "no exceedances at two plants and a raised violation");
    let browser = Browser::start().await;
    browser.goto(&format!("{}/#/alarms", daemon.http)).await;
    browser
        .eval(&format!(
            "localStorage.setItem('quantrac.token', '{TOKEN}'); window.prompt = () => {}; return true;",
            json!(COMMENT)
        ))
        .await;

    // Filters: plant, kind, parameter, state, severity, date range; each row shows what the API lists.
    let ts = "BN_KCNTS_NUOC01";
    let by_plant = list_matches(
        &browser,
        &daemon,
        &format!("station={ts}"),
        &format!("station={ts}"),
        "station",
        ts,
    )
    .await;
    assert!(!by_plant.is_empty());
    let exceed = list_matches(
        &browser,
        &daemon,
        "kind=exceedance",
        "kind=exceedance",
        "kind",
        "exceedance",
    )
    .await;
    assert!(!exceed.is_empty());
    list_matches(
        &browser,
        &daemon,
        "parameter=COD&kind=exceedance",
        "parameter=COD&kind=exceedance",
        "parameter",
        "COD",
    )
    .await;
    list_matches(
        &browser,
        &daemon,
        "severity=violation",
        "severity=violation",
        "severity",
        "violation",
    )
    .await;
    let open = list_matches(
        &browser,
        &daemon,
        "state=open&kind=violation",
        "state=open&kind=violation",
        "kind",
        "violation",
    )
    .await;
    assert!(!open.is_empty());
    // The date range is the local days given, the last one included (UTC+7 in the test's config). It starts the day
    // before, so that just after local midnight it still holds the alerts of the simulated hours before now.
    let offset = chrono::FixedOffset::east_opt(7 * 3600).unwrap();
    let today = chrono::Utc::now().with_timezone(&offset).date_naive();
    let start = |d: chrono::NaiveDate| {
        d.and_hms_opt(0, 0, 0)
            .unwrap()
            .and_local_timezone(offset)
            .unwrap()
            .timestamp_millis()
    };
    let tomorrow = today.succ_opt().unwrap();
    let yesterday = today.pred_opt().unwrap();
    let range = list_matches(
        &browser,
        &daemon,
        &format!("from={yesterday}&to={today}&station={ts}"),
        &format!(
            "from={}&to={}&station={ts}",
            start(yesterday),
            start(tomorrow)
        ),
        "station",
        ts,
    )
    .await;
    assert!(!range.is_empty());
    let (future, _) = shown(
        &browser,
        &format!("from={tomorrow}&to={tomorrow}"),
        "station",
    )
    .await;
    assert!(future.is_empty(), "alerts listed for tomorrow: {future:?}");

    // Paging: two a page, `next` follows the API's `next_before`, `previous` goes back.
    let (page1, _) = shown(&browser, "limit=2", "state").await;
    assert_eq!(page1.len(), 2);
    let (_, api1) = get(&format!(
        "{}/api/alerts?limit=2&before={}",
        daemon.http,
        page1[0] + 1
    ))
    .await;
    assert_eq!(page1, ids(&api1["alerts"]));
    browser
        .eval("document.querySelector('#alarm-list button.next').click(); return true;")
        .await;
    browser
        .wait_for("return /before=/.test(location.hash) && document.getElementById('alarm-list').dataset.loaded === location.hash", Duration::from_secs(30))
        .await;
    let page2 = ids(&browser.eval("return [...document.querySelectorAll('#alarm-list tr[data-alert]')].map(r => +r.dataset.alert)").await);
    let (_, api2) = get(&format!(
        "{}/api/alerts?limit=2&before={}",
        daemon.http, page1[1]
    ))
    .await;
    assert_eq!(page2, ids(&api2["alerts"]));
    assert_eq!(
        browser
            .eval("return document.querySelector('#alarm-list .page').dataset.page")
            .await,
        "2"
    );
    browser
        .eval("document.querySelector('#alarm-list button.prev').click(); return true;")
        .await;
    browser
        .wait_for("return !/before=/.test(location.hash) && document.getElementById('alarm-list').dataset.loaded === location.hash", Duration::from_secs(30))
        .await;
    assert_eq!(
        browser
            .eval("return document.querySelector('#alarm-list .page').dataset.page")
            .await,
        "1"
    );
    browser.screenshot(&shot("alarms.png")).await;

    // Acknowledge a raised violation from the list, with the comment the prompt gives.
    let (_, raised) = shown(&browser, "kind=violation", "state").await;
    let id = browser
        .eval("const b = document.querySelector('#alarm-list tr[data-state=\"raised\"] button.ack'); return b ? +b.closest('tr').dataset.alert : 0")
        .await
        .as_i64()
        .unwrap();
    assert!(
        id > 0,
        "no raised violation with an Acknowledge button: {raised:?}"
    );
    browser
        .eval(&format!("document.querySelector('#alarm-list tr[data-alert=\"{id}\"] button.ack').click(); return true;"))
        .await;
    browser
        .wait_for(&format!("const r = document.querySelector('#alarm-list tr[data-alert=\"{id}\"]'); return r && r.dataset.state === 'acknowledged'"), Duration::from_secs(30))
        .await;
    let (_, h) = get(&format!("{}/api/alerts/{id}/history", daemon.http)).await;
    assert_eq!(h["acked_by"], "operator-1");
    assert_eq!(h["ack_comment"], COMMENT);
    let (_, acked) = get(&format!(
        "{}/api/alerts?state=acknowledged&limit=1000",
        daemon.http
    ))
    .await;
    assert!(ids(&acked["alerts"]).contains(&id));
    list_matches(
        &browser,
        &daemon,
        "state=acknowledged",
        "state=acknowledged",
        "state",
        "acknowledged",
    )
    .await;

    // The first page follows a change made elsewhere, without a reload: an alert acknowledged through the API shows
    // as acknowledged where the officer is looking.
    let other = support::eventually(Duration::from_secs(60), || {
        let url = format!("{}/api/alerts?state=raised&limit=1", daemon.http);
        async move { get(&url).await.1["alerts"][0]["id"].as_i64().is_some() }
    })
    .await;
    assert!(other, "no raised alert left to acknowledge elsewhere");
    let (_, raised) = get(&format!("{}/api/alerts?state=raised&limit=1", daemon.http)).await;
    let a = &raised["alerts"][0];
    let other = a["id"].as_i64().unwrap();
    let query = format!(
        "station={}&kind={}",
        a["station"].as_str().unwrap(),
        a["kind"].as_str().unwrap()
    );
    let (rows, _) = shown(&browser, &query, "state").await;
    assert!(
        rows.contains(&other),
        "{other} not on the first page of {query}: {rows:?}"
    );
    let fills = browser
        .eval("return +document.getElementById('alarm-list').dataset.fills")
        .await;
    let resp = reqwest::Client::new()
        .post(format!("{}/api/alerts/{other}/ack", daemon.http))
        .bearer_auth(TOKEN)
        .json(&json!({ "comment": "acknowledged from the API" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    browser
        .wait_for(&format!("const r = document.querySelector('#alarm-list tr[data-alert=\"{other}\"]'); return r && r.dataset.state === 'acknowledged'"), Duration::from_secs(30))
        .await;
    let now = browser
        .eval("return +document.getElementById('alarm-list').dataset.fills")
        .await;
    assert!(
        now.as_i64() > fills.as_i64(),
        "the list was not refilled: {fills} then {now}"
    );
    assert_eq!(
        browser.eval("return location.hash").await,
        format!("#/alarms?{query}"),
        "the page was left"
    );

    // Its history shows the acknowledgement.
    shown(&browser, "kind=violation", "state").await;
    let text = open_history(&browser, id).await;
    assert!(
        text.contains(COMMENT) && text.contains("operator-1"),
        "{text}"
    );

    // A notified alert's history shows every notification the API lists for it, with its attempts. (The simulator
    // fills the past hours first, so alerts are raised on late data: one summary per plant is queued to the webhook,
    // under the plant's first alert; nobody listens there, so attempts fail.)
    let notified = support::eventually(Duration::from_secs(30), || {
        let url = format!("{}/api/alerts?limit=1000", daemon.http);
        async move {
            get(&url).await.1["alerts"].as_array().is_some_and(|l| {
                l.iter()
                    .any(|a| a["deliveries"].as_array().is_some_and(|d| !d.is_empty()))
            })
        }
    })
    .await;
    assert!(notified, "no alert was notified");
    let (_, all) = get(&format!("{}/api/alerts?limit=1000", daemon.http)).await;
    let a = all["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["deliveries"].as_array().is_some_and(|d| !d.is_empty()))
        .unwrap()
        .clone();
    let nid = a["id"].as_i64().unwrap();
    shown(
        &browser,
        &format!(
            "station={}&kind={}",
            a["station"].as_str().unwrap(),
            a["kind"].as_str().unwrap()
        ),
        "state",
    )
    .await;
    open_history(&browser, nid).await;
    let shown_deliveries = ids(&browser
        .eval(&format!("return [...document.querySelectorAll('.alarm-history[data-alert=\"{nid}\"] tr[data-delivery]')].map(r => +r.dataset.delivery)"))
        .await);
    let (_, h) = get(&format!("{}/api/alerts/{nid}/history", daemon.http)).await;
    // Notifications are only ever added: what the page showed is what the API lists, up to any queued since.
    let listed = ids(&h["deliveries"]);
    assert!(
        !shown_deliveries.is_empty() && listed.starts_with(&shown_deliveries),
        "{shown_deliveries:?} vs {listed:?}"
    );
    assert!(h["deliveries"][0]["attempts_made"].is_array());
    assert!(h["revisions"].is_array());
    browser.screenshot(&shot("alarms-history.png")).await;

    for width in [390, 768] {
        no_overflow(&browser, width, "the alarm page").await;
        browser
            .screenshot(&shot(&format!("alarms-{width}.png")))
            .await;
    }
}

/// 400 with a sentence for each bad parameter; 404 for an alert that does not exist.
async fn api_refuses_bad_parameters(http: &str) {
    for (query, says) in [
        ("kind=bogus", "kind=\"bogus\"; expected"),
        (
            "state=gone",
            "expected raised, acknowledged, cleared, withdrawn or open",
        ),
        ("severity=high", "expected technical, warning or violation"),
        ("station=NOPE", "unknown station"),
        ("parameter=", "expected a parameter symbol"),
        (
            "from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z",
            "from must be before to",
        ),
        ("from=yesterday", "is not a time"),
        ("before=-1", "is not a whole number"),
        ("limit=5000", "is not a whole number from 0 to 1000"),
        ("page=2", "unknown parameter \"page\""),
    ] {
        let (status, body) = get(&format!("{http}/api/alerts?{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.contains(says), "{query}: {error}");
    }
    for state in ["withdrawn", "open", "cleared"] {
        let (status, body) = get(&format!(
            "{http}/api/alerts?state={state}&severity=warning&parameter=COD&from=0&to=1"
        ))
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["total"], 0);
    }
    let (status, body) = get(&format!("{http}/api/alerts/abc/history")).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]
        .as_str()
        .unwrap()
        .contains("is not an alert id"));
    let (status, body) = get(&format!("{http}/api/alerts/999999/history")).await;
    assert_eq!(status, 404, "{body}");
    assert!(body["error"].as_str().unwrap().contains("no alert 999999"));
}

/// How the overview orders stations for `key`, from `/api/stations` (the definitions the page documents).
fn expected_order(stations: &[Value], key: &str) -> Vec<String> {
    const STATES: [&str; 5] = ["violation", "fault", "silent", "warning", "compliant"];
    let nums = |st: &Value, field: &str| -> Vec<f64> {
        st["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p[field].as_f64())
            .collect()
    };
    let value = |st: &Value| -> Option<f64> {
        match key {
            "state" => Some(STATES.iter().position(|s| st["state"] == *s).unwrap() as f64),
            "since" => st["open_since"].as_f64(),
            "worst" => nums(st, "ratio").into_iter().reduce(f64::max).map(|w| -w),
            "completeness" => nums(st, "day_completeness").into_iter().reduce(f64::min),
            _ => Some(0.0),
        }
    };
    let mut keyed: Vec<(Option<f64>, String)> = stations
        .iter()
        .map(|st| (value(st), st["id"].as_str().unwrap().to_string()))
        .collect();
    keyed.sort_by(|(x, a), (y, b)| match (x, y) {
        (Some(x), Some(y)) => x.partial_cmp(y).unwrap().then(a.cmp(b)),
        (None, None) => a.cmp(b),
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (Some(_), None) => std::cmp::Ordering::Less,
    });
    keyed.into_iter().map(|(_, id)| id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overview_sorts_stations_and_counts_them_per_state() {
    let daemon = Daemon::start(&http_section(), &rest(support::free_port())).await;
    // Tiên Sơn and Yên Phong in violation, with open alerts (a `since`).
    let ready = support::eventually(Duration::from_secs(120), || {
        let url = format!("{}/api/stations", daemon.http);
        async move {
            let (_, v) = get(&url).await;
            v["stations"].as_array().is_some_and(|l| {
                l.iter()
                    .filter(|s| s["state"] == "violation" && s["open_since"].is_i64())
                    .count()
                    >= 2
            })
        }
    })
    .await;
    assert!(ready, "two plants did not reach violation");
    let browser = Browser::start().await;
    browser.goto(&format!("{}/", daemon.http)).await;
    browser
        .wait_for(
            "return document.querySelectorAll('#tiles .tile').length === 8",
            Duration::from_secs(30),
        )
        .await;
    for key in ["state", "since", "worst", "completeness", "id"] {
        // Choose the order as a person does, then let the page render one /api/stations answer and read it back in
        // the same task (live updates cannot slip in between).
        browser
            .eval(&format!("const s = document.getElementById('sort'); s.value = '{key}'; s.dispatchEvent(new Event('change')); return true;"))
            .await;
        let v = browser
            .eval(
                "return fetch('/api/stations').then(r => r.json()).then(r => { \
                   stations = new Map(r.stations.map(s => [s.id, s])); renderOverview(); \
                   return { api: r.stations, order: [...document.querySelectorAll('#tiles .tile')].map(t => t.dataset.station), \
                     counts: [...document.querySelectorAll('#legend [data-state]')].map(n => [n.dataset.state, +n.dataset.count]) }; })",
            )
            .await;
        let api = v["api"].as_array().unwrap();
        let order: Vec<String> = serde_json::from_value(v["order"].clone()).unwrap();
        assert_eq!(order, expected_order(api, key), "sorted by {key}");
        for pair in v["counts"].as_array().unwrap() {
            let state = pair[0].as_str().unwrap();
            let n = api.iter().filter(|s| s["state"] == state).count() as i64;
            assert_eq!(pair[1].as_i64().unwrap(), n, "{state} count");
        }
        if key == "state" {
            assert_eq!(&order[..2], ["BN_KCNTS_NUOC01", "BN_KCNYP_NUOC01"]);
            browser.screenshot(&shot("overview-sorted.png")).await;
        }
    }
    browser
        .eval("const s = document.getElementById('sort'); s.value = 'state'; s.dispatchEvent(new Event('change')); return true;")
        .await;
    for width in [390, 768] {
        no_overflow(&browser, width, "the overview").await;
        browser
            .screenshot(&shot(&format!("overview-{width}.png")))
            .await;
    }
}
