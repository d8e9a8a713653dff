//! A real headless Chromium driven over the W3C WebDriver protocol (Debian `chromium` and `chromium-driver`).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};

pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    client: reqwest::Client,
    /// Chromium's profile (4–20 MB) and temporary folder; removed when the browser is dropped, after its processes are
    /// ended.
    profile: tempfile::TempDir,
}

impl Browser {
    pub async fn start() -> Browser {
        let port = super::free_port();
        let profile = tempfile::tempdir().unwrap();
        // Chromium leaves its singleton and scoped folders in TMPDIR: keep them in the profile, which is removed.
        let tmp = profile.path().join("tmp");
        std::fs::create_dir(&tmp).unwrap();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .env("TMPDIR", &tmp)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver not installed: run scripts/test (apt-get install chromium chromium-driver)");
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let status = format!("{base}/status");
        let ready = super::eventually(Duration::from_secs(30), || {
            let (c, u) = (client.clone(), status.clone());
            async move {
                c.get(&u)
                    .send()
                    .await
                    .map(|r| r.status().is_success())
                    .unwrap_or(false)
            }
        })
        .await;
        assert!(ready, "chromedriver did not start");
        let caps = json!({"capabilities": {"alwaysMatch": {"goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--window-size=1400,1000", format!("--user-data-dir={}", profile.path().join("profile").display())]
        }}}});
        let resp: Value = client
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = resp["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {resp}"))
            .to_string();
        Browser {
            driver,
            base,
            session,
            client,
            profile,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{}", self.base, self.session, path);
        let mut req = self.client.request(method, url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let v: Value = req.send().await.unwrap().json().await.unwrap();
        v["value"].clone()
    }

    pub async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    /// Run JavaScript in the page and return its result.
    pub async fn eval(&self, script: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
        .await
    }

    /// Open the dashboard at `url` (its start page, or the sign-in page `#/login` itself) and sign in through its
    /// sign-in form (shown to a visitor without a session).
    pub async fn sign_in(&self, url: &str, name: &str, password: &str) {
        self.goto(url).await;
        self.wait_for(
            "return location.hash === '#/login' && !document.getElementById('login').hidden && !!document.getElementById('login-form')",
            Duration::from_secs(20),
        )
        .await;
        self.eval(&format!(
            "document.getElementById('login-name').value = {}; document.getElementById('login-password').value = {}; \
             document.getElementById('login-submit').click(); return true;",
            json!(name),
            json!(password)
        ))
        .await;
    }

    /// Wait until `script` returns a truthy value, for at most `limit`.
    pub async fn wait_for(&self, script: &str, limit: Duration) -> Value {
        let deadline = std::time::Instant::now() + limit;
        loop {
            let v = self.eval(script).await;
            let truthy = !(v.is_null() || v == json!(false) || v == json!(0) || v == json!(""));
            if truthy {
                return v;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for: {script}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The text of the page's open dialog (`prompt`, `alert`, `confirm`), waiting for one at most `limit`. No other
    /// command may be sent while a dialog is open (WebDriver would dismiss it).
    pub async fn dialog_text(&self, limit: Duration) -> String {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Value::String(text) = self.call(reqwest::Method::GET, "/alert/text", None).await
            {
                return text;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no dialog opened within {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Type `text` into the open prompt and press OK, as a person pasting it would.
    pub async fn answer_prompt(&self, text: &str) {
        self.call(
            reqwest::Method::POST,
            "/alert/text",
            Some(json!({ "text": text })),
        )
        .await;
        self.call(reqwest::Method::POST, "/alert/accept", Some(json!({})))
            .await;
    }

    /// Resize the window (the page's viewport follows in headless Chromium).
    pub async fn set_window_size(&self, width: u32, height: u32) {
        self.call(
            reqwest::Method::POST,
            "/window/rect",
            Some(json!({ "width": width, "height": height })),
        )
        .await;
    }

    pub async fn screenshot(&self, path: &std::path::Path) {
        let v = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .unwrap();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        // Chromium outlives its killed driver for a moment and writes into its profile while it closes, so the
        // profile's removal would race it: end the browser's processes first (bounded wait).
        let profile = self.profile.path().display().to_string();
        let _ = Command::new("pkill")
            .args(["-KILL", "-f", &profile])
            .status();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < deadline
            && Command::new("pgrep")
                .args(["-f", &profile])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
