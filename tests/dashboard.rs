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
