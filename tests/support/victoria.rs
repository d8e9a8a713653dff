//! A real VictoriaMetrics server (Debian package `victoria-metrics`), which accepts the InfluxDB v2 write API.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Victoria {
    child: Option<Child>,
    pub port: u16,
    data: PathBuf,
    _dir: tempfile::TempDir,
}

impl Victoria {
    pub async fn start() -> Victoria {
        let dir = tempfile::tempdir().unwrap();
        let mut v = Victoria {
            child: None,
            port: super::free_port(),
            data: dir.path().join("vm"),
            _dir: dir,
        };
        v.spawn().await;
        v
    }

    async fn spawn(&mut self) {
        let child = Command::new("victoria-metrics")
            .arg(format!("-storageDataPath={}", self.data.display()))
            .arg(format!("-httpListenAddr=127.0.0.1:{}", self.port))
            .arg("-retentionPeriod=100y")
            .arg("-search.latencyOffset=0s")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("victoria-metrics not installed: run scripts/test (apt-get install victoria-metrics)");
        self.child = Some(child);
        let url = format!("{}/health", self.url());
        let up = super::eventually(Duration::from_secs(30), || {
            let url = url.clone();
            async move {
                reqwest::get(&url)
                    .await
                    .map(|r| r.status().is_success())
                    .unwrap_or(false)
            }
        })
        .await;
        assert!(up, "VictoriaMetrics did not start within 30 s");
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stop gracefully (SIGTERM, so it flushes what it buffered), killing it if it takes over 10 s.
    pub fn stop(&mut self) {
        if let Some(c) = self.child.take() {
            super::terminate(c);
        }
    }

    pub async fn restart(&mut self) {
        self.stop();
        self.spawn().await;
    }

    /// Every sample of `metric` as (labels, value, timestamp ms), after flushing recent data to search.
    pub async fn export(&self, metric: &str) -> Vec<(serde_json::Value, f64, i64)> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let _ = client
            .get(format!("{}/internal/force_flush", self.url()))
            .send()
            .await;
        let Ok(resp) = client
            .get(format!("{}/api/v1/export", self.url()))
            .query(&[
                ("match[]", format!("{{__name__=\"{metric}\"}}")),
                ("start", "0".into()),
            ])
            .send()
            .await
        else {
            return Vec::new();
        };
        let text = resp.text().await.unwrap_or_default();
        let mut out = Vec::new();
        for line in text.lines() {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let (Some(values), Some(ts)) = (v["values"].as_array(), v["timestamps"].as_array())
            else {
                continue;
            };
            for (x, t) in values.iter().zip(ts) {
                out.push((
                    v["metric"].clone(),
                    x.as_f64().unwrap_or(f64::NAN),
                    t.as_i64().unwrap_or(0),
                ));
            }
        }
        out
    }
}

impl Drop for Victoria {
    fn drop(&mut self) {
        self.stop();
    }
}
