//! A small HTTP server that answers the InfluxDB v2 write API the way InfluxDB 2 does (JSON body with `code` and
//! `message`), with answers scripted by the test: 400, 401, 413, 503 + Retry-After. VictoriaMetrics answers 204 even
//! to lines it skips, so these error paths need this server.

use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// One request the server received.
#[derive(Debug, Clone)]
pub struct Request {
    pub lines: Vec<String>,
    pub at: Instant,
    pub status: u16,
    pub gzip: bool,
    pub authorization: Option<String>,
    pub query: String,
}

/// What to answer: (status, JSON message, extra header).
pub type Script = dyn Fn(&[String], usize) -> (u16, String, Option<(String, String)>) + Send + Sync;

pub struct FaultServer {
    pub port: u16,
    pub requests: Arc<Mutex<Vec<Request>>>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultServer {
    pub async fn start(script: Arc<Script>) -> FaultServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let reqs = requests.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    return;
                };
                let (reqs, script) = (reqs.clone(), script.clone());
                tokio::spawn(async move {
                    let (r, mut w) = sock.into_split();
                    let mut r = BufReader::new(r);
                    loop {
                        let mut request_line = String::new();
                        if r.read_line(&mut request_line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let query = request_line
                            .split_whitespace()
                            .nth(1)
                            .unwrap_or("")
                            .to_string();
                        let (mut len, mut gzip, mut auth) = (0usize, false, None);
                        loop {
                            let mut h = String::new();
                            if r.read_line(&mut h).await.unwrap_or(0) == 0 {
                                return;
                            }
                            let h = h.trim_end();
                            if h.is_empty() {
                                break;
                            }
                            let (k, v) = h.split_once(':').unwrap_or((h, ""));
                            match k.to_ascii_lowercase().as_str() {
                                "content-length" => len = v.trim().parse().unwrap_or(0),
                                "content-encoding" => gzip = v.trim() == "gzip",
                                "authorization" => auth = Some(v.trim().to_string()),
                                _ => {}
                            }
                        }
                        let mut body = vec![0; len];
                        if r.read_exact(&mut body).await.is_err() {
                            return;
                        }
                        if gzip {
                            let mut out = Vec::new();
                            flate2::read::GzDecoder::new(&body[..])
                                .read_to_end(&mut out)
                                .unwrap();
                            body = out;
                        }
                        let lines: Vec<String> = String::from_utf8_lossy(&body)
                            .lines()
                            .map(str::to_string)
                            .collect();
                        let n = reqs.lock().unwrap().len();
                        let (status, message, header) = script(&lines, n);
                        reqs.lock().unwrap().push(Request {
                            lines,
                            at: Instant::now(),
                            status,
                            gzip,
                            authorization: auth,
                            query: query.clone(),
                        });
                        let body = if status == 204 {
                            String::new()
                        } else {
                            serde_json::json!({"code": "invalid", "message": message}).to_string()
                        };
                        let extra = header
                            .map(|(k, v)| format!("{k}: {v}\r\n"))
                            .unwrap_or_default();
                        let resp = format!(
                            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{extra}\r\n{body}",
                            body.len()
                        );
                        if w.write_all(resp.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        FaultServer {
            port,
            requests,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    /// Lines the server accepted (answered 204).
    pub fn accepted_lines(&self) -> Vec<String> {
        self.requests()
            .into_iter()
            .filter(|r| r.status == 204)
            .flat_map(|r| r.lines)
            .collect()
    }
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
