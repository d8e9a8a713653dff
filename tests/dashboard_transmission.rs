//! Transmission to the authorities on the plant page, in a real headless Chromium, against a real FTP server
//! (pyftpdlib): a target that received a reading observed 20 minutes before it arrived shows itself up with its
//! delay past the 5-minute deadline marked late; a target whose login the server refuses shows itself down, with
//! its backlog, the oldest unsent reading in local time and the server's refusal in words. The values shown are
//! those `/api/stations` gives. At 390 px the page does not scroll sideways. The screenshot is kept under the
//! test's output folder (`target/tmp/dashboard-transmission.png`).

mod support;

use std::time::Duration;

use chrono::FixedOffset;
use quantrac::model::Timestamp;
use support::browser::Browser;
use support::daemon::Daemon;
use support::transfer::{Ftp, FTP_PASSWORD, FTP_USER};

const STATION: &str = "BN_KCNTS_NUOC01";

fn target(name: &str, port: u16, password: &str) -> String {
    format!(
        "[[forward.tt10]]\nname = \"{name}\"\nprotocol = \"ftp\"\nhost = \"127.0.0.1\"\nport = {port}\n\
         username = \"{FTP_USER}\"\npassword = \"{password}\"\nstart = \"2020-01-01\"\nbatch_wait = \"0s\"\n\
         timeout = \"5s\"\nmax_backoff = \"1s\"\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plant_page_shows_each_transmission_target() {
    let files = tempfile::tempdir().unwrap();
    let ftp = Ftp::start(&files.path().join("province"), None, 0);
    let landing = files.path().join("landing");
    std::fs::create_dir_all(&landing).unwrap();
    let rest = format!(
        "[tt10]\nlanding = [\"{}\"]\nsettle = \"200ms\"\nscan_interval = \"100ms\"\n\n{}\n{}\n\
         [[station]]\nid = \"{STATION}\"\nname = \"Tiên Sơn\"\nprofile = \"qcvn40-2011-b\"\ndesign_flow_m3_day = 5000\n\
         receiving_water = {{ type = \"river\", flow_m3_s = 120 }}\nparameters = {{ COD = {{}}, pH = {{}} }}\n",
        landing.display(),
        target("province", ftp.port, FTP_PASSWORD),
        target("ministry", ftp.port, "wrong-password"),
    );
    let daemon = Daemon::start("anonymous_read = true", &rest).await;

    // One record observed 20 minutes ago (whole minute), arriving now: its transmission is late.
    let tz = FixedOffset::east_opt(7 * 3600).unwrap();
    let observed = (Timestamp::now().0 - 20 * 60_000) / 60_000 * 60_000;
    let t = Timestamp(observed)
        .to_local(tz)
        .format("%Y%m%d%H%M%S")
        .to_string();
    std::fs::write(
        landing.join(format!("{STATION}_{t}.txt")),
        format!("COD\t80,5\tmg/L\t{t}\t00\r\npH\t7,2\t-\t{t}\t00\r\n"),
    )
    .unwrap();
    let sent = ftp.home.join(format!("{STATION}_{t}.txt"));
    assert!(
        support::wait_until(Duration::from_secs(30), || sent.exists()),
        "the province target did not receive the file"
    );

    let browser = Browser::start().await;
    browser
        .goto(&format!("{}/#/station/{STATION}", daemon.http))
        .await;
    let province = "document.querySelector('#transmission [data-target=\"province\"]')";
    let ministry = "document.querySelector('#transmission [data-target=\"ministry\"]')";
    let shown = browser
        .wait_for(
            &format!(
                "const p = {province}, m = {ministry}; \
                 return !!(p && m && p.classList.contains('tx-up') && p.querySelector('.tx-late') \
                 && m.classList.contains('tx-down') && m.querySelector('.tx-error') \
                 && /^[1-9]/.test(m.querySelector('.tx-backlog .tx-value').textContent)) && 'shown'"
            ),
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(shown, "shown");

    // What the page says is what the API says.
    let api: serde_json::Value = reqwest::get(format!("{}/api/stations", daemon.http))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let connections = api["stations"][0]["connections"].as_array().unwrap();
    let conn = |name: &str| {
        connections
            .iter()
            .find(|c| c["name"] == format!("tt10-send {name}"))
            .unwrap_or_else(|| panic!("no connection for {name}: {api}"))
    };
    let delay = conn("province")["transmission"]["last_delay_ms"]
        .as_i64()
        .unwrap();
    assert!(delay > 20 * 60_000 - 60_000, "delay {delay} ms");
    let text = |who: &str, what: &str| {
        format!("return {who}.querySelector('{what} .tx-value').textContent")
    };
    let delay_text = browser.eval(&text(province, ".tx-late")).await;
    // The page rounds to whole seconds, then shows whole minutes.
    let minutes = (delay as f64 / 1000.0).round() as i64 / 60;
    assert!(
        delay_text
            .as_str()
            .unwrap()
            .starts_with(&format!("{minutes} min")),
        "{delay_text} for {delay} ms"
    );
    assert!(
        delay_text.as_str().unwrap().contains("(hạn 5 min)"),
        "{delay_text}"
    );
    let error = conn("ministry")["last_error"]["error"]
        .as_str()
        .unwrap()
        .to_string();
    let error_text = browser.eval(&text(ministry, ".tx-error")).await;
    assert!(
        error_text.as_str().unwrap().contains(&error),
        "{error_text} should hold {error}"
    );
    let rows = conn("ministry")["backlog"]["rows_behind"].as_i64().unwrap();
    let backlog_text = browser.eval(&text(ministry, ".tx-backlog")).await;
    assert!(
        backlog_text
            .as_str()
            .unwrap()
            .starts_with(&format!("{rows} giá trị chưa gửi, cũ nhất từ ")),
        "{backlog_text}"
    );

    // A phone: nothing scrolls sideways.
    browser.set_window_size(390, 900).await;
    let v = browser
        .wait_for(
            "return window.innerWidth <= 390 && [document.documentElement.scrollWidth, window.innerWidth]",
            Duration::from_secs(10),
        )
        .await;
    let (scroll, inner) = (v[0].as_i64().unwrap(), v[1].as_i64().unwrap());
    assert!(
        scroll <= inner,
        "the plant page is {scroll} px wide in a {inner} px window"
    );
    browser
        .eval("document.getElementById('transmission').scrollIntoView(); return true;")
        .await;
    browser
        .screenshot(
            &std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-transmission.png"),
        )
        .await;
    drop(ftp);
}
