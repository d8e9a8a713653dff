//! The officers' dashboard in a real headless Chromium: eight plant tiles with values, a value pushed over SSE
//! appears without a reload, a violating plant shows its state. The screenshot is kept under the test's output
//! folder (`target/tmp/dashboard.png`).

mod support;

use std::time::Duration;

use support::browser::Browser;
use support::daemon::{stations, Daemon};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_tiles_live_values_and_a_violating_plant() {
    // Tiên Sơn runs at 1.5 × its limits: its hourly means break them.
    let daemon = Daemon::start(
        "anonymous_read = true",
        &stations(60, &[("BN_KCNTS_NUOC01", "via = \"direct\", load = 1.5")]),
    )
    .await;
    let browser = Browser::start().await;
    browser.goto(&format!("{}/", daemon.http)).await;
    let tiles = browser
        .wait_for(
            "const t = [...document.querySelectorAll('.tile')]; \
             return t.length === 8 && t.every(x => x.querySelectorAll('td.value').length >= 6 && /\\d/.test(x.querySelector('td.value').textContent)) && t.length",
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(tiles, 8);

    // A marker that a reload would erase; then wait for the Quế Võ COD cell to change through SSE.
    browser.eval("window.__noReload = 42; return true;").await;
    let cell = "return document.querySelector('[data-station=\"BN_KCNQV_NUOC01\"] tr[data-param=\"COD\"] td.value').textContent";
    let before = browser.eval(cell).await;
    let changed = browser
        .wait_for(
            &format!("const v = (function() {{ {cell} }})(); return v !== {before} && v"),
            Duration::from_secs(30),
        )
        .await;
    assert_ne!(changed, before);
    assert_eq!(
        browser.eval("return window.__noReload").await,
        42,
        "the page reloaded"
    );
    assert_eq!(
        browser
            .eval("return document.getElementById('conn').className")
            .await,
        "conn on"
    );

    let state = browser
        .wait_for("return document.querySelector('.tile[data-station=\"BN_KCNTS_NUOC01\"]').dataset.state === 'violation' && 'violation'", Duration::from_secs(30))
        .await;
    assert_eq!(state, "violation");
    let label = browser.eval("return document.querySelector('.tile[data-station=\"BN_KCNTS_NUOC01\"] .state').textContent").await;
    assert_eq!(label, "Vượt quy chuẩn");
    browser
        .screenshot(&std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png"))
        .await;

    // English labels on the switch; the plant page draws a 24-hour chart per parameter with its limit line.
    browser
        .eval("document.getElementById('lang').click(); return true;")
        .await;
    assert_eq!(browser.eval("return document.querySelector('.tile[data-station=\"BN_KCNTS_NUOC01\"] .state').textContent").await, "Violation");
    browser
        .eval("location.hash = '#/station/BN_KCNTS_NUOC01'; return true;")
        .await;
    let charts = browser
        .wait_for("const c = [...document.querySelectorAll('.chart svg')]; return c.length === 6 && c.every(s => s.querySelector('polyline')) && c.length", Duration::from_secs(30))
        .await;
    assert_eq!(charts, 6);
    // The page states the plant's on-time transmission rate, as /api/stations gives it.
    let on_time = browser
        .eval("return document.querySelector('.on-time').textContent")
        .await;
    let on_time = on_time.as_str().unwrap_or_default();
    assert!(
        on_time.starts_with("Sent on time (5 minutes), last 24 hours: ") && on_time.contains(" %"),
        "{on_time}"
    );
    assert!(
        browser
            .eval("return document.querySelectorAll('.chart line.limit').length")
            .await
            .as_u64()
            .unwrap()
            >= 5
    );
    browser
        .screenshot(&std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-plant.png"))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plant_page_lists_open_alerts_and_an_operator_acknowledges_one() {
    use sha2::{Digest, Sha256};
    let token = "operator-token-for-the-dashboard-test";
    let hash: String = Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let http = format!(
        "anonymous_read = true\n[[http.token]]\nname = \"operator-1\"\nrole = \"operator\"\nsha256 = \"{hash}\"\n"
    );
    let rest = format!(
        "[alert]\nraise_after = 1\n\n{}",
        stations(60, &[("BN_KCNTS_NUOC01", "via = \"direct\", load = 1.5")])
    );
    let daemon = Daemon::start(&http, &rest).await;
    let browser = Browser::start().await;
    browser
        .goto(&format!("{}/#/station/BN_KCNTS_NUOC01", daemon.http))
        .await;
    // The operator's token is kept by the page; the comment prompt is answered by the test.
    browser
        .eval(&format!(
            "localStorage.setItem('quantrac.token', '{token}'); window.prompt = () => 'Đã báo nhà máy kiểm tra'; return true;"
        ))
        .await;
    let button = browser
        .wait_for(
            "const b = document.querySelector('#alerts tr[data-state=\"raised\"][data-kind=\"violation\"] button.ack'); return b && b.closest('tr').dataset.alert",
            Duration::from_secs(60),
        )
        .await;
    let id = button.as_str().unwrap().to_string();
    assert_eq!(
        browser
            .eval("return document.querySelector('#alerts button.ack').textContent")
            .await,
        "Xác nhận"
    );
    browser
        .eval(&format!(
            "document.querySelector('#alerts tr[data-alert=\"{id}\"] button.ack').click(); return true;"
        ))
        .await;
    let state = browser
        .wait_for(
            &format!("const r = document.querySelector('#alerts tr[data-alert=\"{id}\"]'); return r && r.dataset.state === 'acknowledged' && r.querySelector('.alert-state').textContent"),
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(state, "Đã xác nhận");
    browser
        .screenshot(&std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-alerts.png"))
        .await;
    // The acknowledgement is in the audit trail under the operator's name.
    let audit: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/api/alerts?state=acknowledged", daemon.http))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let a = audit["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"].as_i64().map(|x| x.to_string()).as_deref() == Some(id.as_str()))
        .cloned()
        .unwrap();
    assert_eq!(a["acked_by"], "operator-1");
    assert_eq!(a["ack_comment"], "Đã báo nhà máy kiểm tra");
}
