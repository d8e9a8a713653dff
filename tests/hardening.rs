//! Issue 19 (hardening), against the running binary: an HTTP listener that survives slow, idle, crowded and
//! oversized clients; security headers; the auth scheme; control characters in operators' text.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use support::config::ConfigBuilder;
use support::daemon::{stations, Daemon};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const TOKEN: &str = "hardening-operator-token";

fn operator_token() -> String {
    let hash: String = Sha256::digest(TOKEN.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("[[http.token]]\nname = \"op\"\nrole = \"operator\"\nsha256 = \"{hash}\"\n")
}

fn address(d: &Daemon) -> SocketAddr {
    d.http.trim_start_matches("http://").parse().unwrap()
}

/// A TCP connection to `to` from the loopback address `from` (127.0.0.x: every one of them reaches 127.0.0.1 on
/// Linux), so one test can be several clients.
async fn connect_from(from: [u8; 4], to: SocketAddr) -> TcpStream {
    let s = TcpSocket::new_v4().unwrap();
    s.bind(SocketAddr::from((from, 0))).unwrap();
    tokio::time::timeout(Duration::from_secs(5), s.connect(to))
        .await
        .expect("connect timed out")
        .unwrap()
}

/// Everything the server sends until it closes the connection, or `None` if it is still open after `limit`.
async fn read_until_closed(s: &mut TcpStream, limit: Duration) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + limit;
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(out),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// The status code of a raw HTTP/1.1 GET `path` over a new connection from `from`.
async fn raw_get(from: [u8; 4], to: SocketAddr, path: &str) -> Option<u16> {
    let mut s = connect_from(from, to).await;
    let req = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.ok()?;
    let answer = read_until_closed(&mut s, Duration::from_secs(10)).await?;
    status_of(&answer)
}

fn status_of(answer: &[u8]) -> Option<u16> {
    let text = String::from_utf8_lossy(answer);
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_connections_are_closed() {
    let d = Daemon::start(
        "header_read_timeout = \"2s\"\nidle_timeout = \"3s\"\nanonymous_read = true\n",
        &stations(60, &[]),
    )
    .await;
    let to = address(&d);
    // Slowloris: a header line every 500 ms, never the blank line that ends the header.
    let mut slow = connect_from([127, 0, 0, 1], to).await;
    slow.write_all(b"GET /api/stations HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut closed = false;
    for i in 0..40 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if slow
            .write_all(format!("x-slow-{i}: 1\r\n").as_bytes())
            .await
            .is_err()
        {
            closed = true;
            break;
        }
        let mut probe = [0u8; 1024];
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_millis(1), slow.read(&mut probe)).await
        {
            closed = true;
            break;
        }
    }
    assert!(closed, "a slow header was still accepted after 20 s");
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "a slow header held its connection for {:?} (header_read_timeout = 2s)",
        started.elapsed()
    );
    // A connection that sends nothing at all.
    let mut idle = connect_from([127, 0, 0, 1], to).await;
    let started = Instant::now();
    assert!(
        read_until_closed(&mut idle, Duration::from_secs(10))
            .await
            .is_some(),
        "an idle connection was kept for 10 s"
    );
    assert!(started.elapsed() < Duration::from_secs(6));
    // A body that stops half-way ends within the idle timeout, answered or closed.
    let mut stalled = connect_from([127, 0, 0, 1], to).await;
    stalled
        .write_all(b"POST /api/stations/BN_KCNQV_NUOC01/note HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"text\":")
        .await
        .unwrap();
    assert!(
        read_until_closed(&mut stalled, Duration::from_secs(10))
            .await
            .is_some(),
        "a stalled request body held its connection for 10 s"
    );
    // The server still answers.
    assert_eq!(raw_get([127, 0, 0, 1], to, "/healthz").await, Some(200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_capped_in_total_and_per_client() {
    let d = Daemon::start(
        "max_connections = 8\nmax_connections_per_client = 5\nheader_read_timeout = \"60s\"\nanonymous_read = true\n",
        &stations(60, &[]),
    )
    .await;
    let to = address(&d);
    // Connections that hold a place: opened, then an answered request keeps them alive (idle, kept-alive).
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(connect_from([127, 0, 0, 2], to).await);
    }
    // Wait until the server counts them (accepting is asynchronous), then a sixth from the same address is refused.
    let refused_per_client = support::eventually(Duration::from_secs(10), || async {
        raw_get([127, 0, 0, 2], to, "/healthz").await == Some(503)
    })
    .await;
    assert!(
        refused_per_client,
        "a sixth connection from one address was served"
    );
    // Another client is still served.
    assert_eq!(raw_get([127, 0, 0, 3], to, "/healthz").await, Some(200));
    for _ in 0..3 {
        held.push(connect_from([127, 0, 0, 3], to).await);
    }
    // Eight open: anyone is refused, with a 503.
    let refused_total = support::eventually(Duration::from_secs(10), || async {
        raw_get([127, 0, 0, 4], to, "/healthz").await == Some(503)
    })
    .await;
    assert!(refused_total, "a ninth connection was served");
    let metrics = reqwest::Client::new();
    drop(held);
    // Places come back when the connections close.
    let back = support::eventually(Duration::from_secs(10), || async {
        raw_get([127, 0, 0, 2], to, "/healthz").await == Some(200)
    })
    .await;
    assert!(back, "closed connections did not give their places back");
    let text = metrics
        .get(format!("{}/metrics", d.http))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.lines().any(|l| l
            .starts_with("quantrac_http_connections_refused_total{limit=\"per_client\"}")
            && !l.ends_with(" 0")),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_are_capped_and_oversized_headers_refused() {
    let d = Daemon::start(
        "max_streams = 2\nanonymous_read = true\n",
        &stations(60, &[]),
    )
    .await;
    let client = reqwest::Client::new();
    let stream = || client.get(format!("{}/api/stream", d.http)).send();
    let a = stream().await.unwrap();
    let b = stream().await.unwrap();
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (200, 200));
    let c = stream().await.unwrap();
    assert_eq!(c.status().as_u16(), 503);
    let body: serde_json::Value = c.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("http.max_streams"),
        "{body}"
    );
    drop(a);
    let freed = support::eventually(Duration::from_secs(10), || async {
        matches!(stream().await, Ok(r) if r.status().as_u16() == 200)
    })
    .await;
    assert!(freed, "a closed stream did not give its place back");
    drop(b);

    // A 200 KB header: 431. A 6 KB one is fine.
    let big = "a".repeat(200 * 1024);
    let r = client
        .get(format!("{}/healthz", d.http))
        .header("x-big", &big)
        .send()
        .await;
    match r {
        Ok(r) => assert_eq!(r.status().as_u16(), 431),
        // The server may close before the client finished sending; then the client saw the 431 or a reset.
        Err(e) => assert!(e.is_request() || e.is_connect(), "{e}"),
    }
    let r = client
        .get(format!("{}/healthz", d.http))
        .header("x-big", "a".repeat(6 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raw_oversized_header_is_answered_431() {
    let d = Daemon::start("anonymous_read = true\n", &stations(60, &[])).await;
    let mut s = connect_from([127, 0, 0, 1], address(&d)).await;
    let mut req = b"GET /healthz HTTP/1.1\r\nhost: x\r\n".to_vec();
    for i in 0..100 {
        req.extend_from_slice(format!("x-h{i}: {}\r\n", "b".repeat(2000)).as_bytes());
    }
    req.extend_from_slice(b"\r\n");
    let _ = s.write_all(&req).await;
    let answer = read_until_closed(&mut s, Duration::from_secs(10))
        .await
        .expect("the connection stayed open");
    assert_eq!(
        status_of(&answer),
        Some(431),
        "{}",
        String::from_utf8_lossy(&answer)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_headers_auth_scheme_and_control_characters() {
    let d = Daemon::start(&operator_token(), &stations(60, &[])).await;
    let client = reqwest::Client::new();
    for path in ["/", "/assets/app.js", "/healthz", "/api/stations"] {
        let r = client
            .get(format!("{}{path}", d.http))
            .header("authorization", format!("Bearer {TOKEN}"))
            .send()
            .await
            .unwrap();
        let h = r.headers();
        let csp = h
            .get("content-security-policy")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp:?}");
        assert!(csp.contains("script-src 'self'"), "{path}: {csp:?}");
        assert_eq!(h.get("x-content-type-options").unwrap(), "nosniff");
        assert_eq!(h.get("x-frame-options").unwrap(), "DENY");
        assert_eq!(h.get("referrer-policy").unwrap(), "no-referrer");
    }
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let r = client
            .get(format!("{}/api/stations", d.http))
            .header("authorization", format!("{scheme} {TOKEN}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "scheme {scheme:?}");
    }
    let post = |path: String, body: serde_json::Value| {
        client
            .post(format!("{}{path}", d.http))
            .header("authorization", format!("bearer {TOKEN}"))
            .json(&body)
            .send()
    };
    for text in ["cleaned\u{0}probe", "x\u{1b}[31mred", "bell\u{7}"] {
        let r = post(
            "/api/stations/BN_KCNQV_NUOC01/note".into(),
            serde_json::json!({ "text": text }),
        )
        .await
        .unwrap();
        assert_eq!(r.status().as_u16(), 400, "{text:?}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains("control character"),
            "{body}"
        );
        let r = post(
            "/api/alerts/1/ack".into(),
            serde_json::json!({ "comment": text }),
        )
        .await
        .unwrap();
        assert_eq!(r.status().as_u16(), 400, "{text:?}");
    }
    // Line breaks and tabs are text.
    let r = post(
        "/api/stations/BN_KCNQV_NUOC01/note".into(),
        serde_json::json!({ "text": "analyser cleaned\n\tprobe replaced" }),
    )
    .await
    .unwrap();
    assert_eq!(r.status().as_u16(), 201);
}

/// `quantrac run` with its log in a file (`quantrac.log` beside the config), stopped with SIGTERM when dropped.
struct Logged {
    child: Option<Child>,
    dir: tempfile::TempDir,
    http: String,
}

impl Logged {
    fn config(dir: &Path, http: &str, rest: &str) -> PathBuf {
        let path = dir.join("quantrac.toml");
        ConfigBuilder::new().http(http).section(rest).write(&path);
        path
    }

    async fn start(http: &str, rest: &str, env: &[(&str, &str)]) -> Logged {
        let dir = tempfile::tempdir().unwrap();
        let config = Self::config(dir.path(), http, rest);
        let log = std::fs::File::create(dir.path().join("quantrac.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_quantrac"))
            .args(["--log", "quantrac=debug,info", "run", "--config"])
            .arg(&config)
            .current_dir(dir.path())
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut q = Logged {
            child: Some(child),
            dir,
            http: String::new(),
        };
        let log_path = q.dir.path().join("quantrac.log");
        q.http = support::reported_in_log(&log_path, 0, Duration::from_secs(60))
            .unwrap_or_else(|| panic!("no HTTP address; log:\n{}", q.log()));
        q
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("quantrac.log")).unwrap_or_default()
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        if let Some(c) = self.child.take() {
            support::terminate(c);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_webhook_shows_no_url_or_credentials_in_logs_or_the_api() {
    // Nothing listens there: every POST fails with the URL in the HTTP client's error.
    let port = support::free_port();
    let secret_url = |n: u8| {
        format!("http://alice:pa55word{n}@127.0.0.1:{port}/hook/B0TT0KEN{n}?key=QUERYKEY{n}")
    };
    let dir_file = tempfile::tempdir().unwrap();
    let url_file = dir_file.path().join("hook-url");
    std::fs::write(&url_file, format!("{}\n", secret_url(2))).unwrap();
    let rest = format!(
        "[alert]\n\n[[alert.channel]]\nname = \"from-env\"\ntype = \"webhook\"\nurl = \"${{QT_TEST_HOOK_URL}}\"\n\n\
         [[alert.channel]]\nname = \"from-file\"\ntype = \"webhook\"\nurl_file = \"{}\"\n\n\
         [[alert.route]]\nchannels = [\"from-env\", \"from-file\"]\n\n{}",
        url_file.display(),
        stations(360, &[("BN_KCNTS_NUOC01", "via = \"direct\", drift = \"COD\"")])
    );
    let q = Logged::start(
        "anonymous_read = true",
        &rest,
        &[("QT_TEST_HOOK_URL", &secret_url(1))],
    )
    .await;
    // Wait for failed deliveries of both channels, read by the anonymous viewer.
    let client = reqwest::Client::new();
    let answer = std::sync::Mutex::new(String::new());
    let failed = support::eventually(Duration::from_secs(120), || {
        let req = client
            .get(format!("{}/api/alerts?limit=1000", q.http))
            .send();
        let answer = &answer;
        async move {
            let Ok(r) = req.await else { return false };
            let text = r.text().await.unwrap_or_default();
            let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            *answer.lock().unwrap() = text;
            let failed_on = |channel: &str| {
                v["alerts"].as_array().into_iter().flatten().any(|a| {
                    a["deliveries"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|d| d["channel"] == channel && d["last_error"].as_str().is_some())
                })
            };
            failed_on("from-env") && failed_on("from-file")
        }
    })
    .await;
    let answer = answer.into_inner().unwrap();
    assert!(
        failed,
        "no failed delivery on both channels; /api/alerts: {answer}\nlog:\n{}",
        q.log()
    );
    let log = q.log();
    assert!(
        log.contains("not delivered"),
        "the log does not mention a delivery:\n{log}"
    );
    for n in [1, 2] {
        for secret in [
            format!("pa55word{n}"),
            format!("B0TT0KEN{n}"),
            format!("QUERYKEY{n}"),
            "alice".to_string(),
        ] {
            assert!(
                !answer.contains(&secret),
                "{secret} in /api/alerts: {answer}"
            );
            assert!(!log.contains(&secret), "{secret} in the log:\n{log}");
        }
    }
    // What is left still says where and why.
    assert!(
        answer.contains(&format!("POST http://127.0.0.1:{port}/… failed: ")),
        "{answer}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarder_errors_show_no_credentials_in_logs_or_the_api() {
    // Nothing listens on either port: every write and every login fails, and the errors quote what was dialled.
    let (influx_port, ftp_port) = (support::free_port(), support::free_port());
    let rest = format!(
        "[[forward.influx]]\nname = \"vm\"\nurl = \"http://user:secretPW9@127.0.0.1:{influx_port}/?token=abcTOK7\"\n\
         bucket = \"b\"\ntoken = \"hdrT0KEN5\"\nmax_backoff = \"1s\"\n\n\
         [[forward.tt10]]\nname = \"province\"\nprotocol = \"ftp\"\nhost = \"127.0.0.1\"\nport = {ftp_port}\n\
         username = \"plant\"\npassword = \"ftpPASS8\"\npath = \"in\"\nmax_backoff = \"1s\"\n\n{}",
        stations(60, &[])
    );
    let q = Logged::start("anonymous_read = true", &rest, &[]).await;
    let logged = support::eventually(Duration::from_secs(60), || {
        let log = q.log();
        async move {
            log.contains("InfluxDB write failed; retrying.")
                && log.contains("Circular 10 upload failed; retrying.")
        }
    })
    .await;
    assert!(logged, "no failed write and upload logged:\n{}", q.log());
    let client = reqwest::Client::new();
    let mut answers = String::new();
    for path in ["/api/stations", "/metrics", "/readyz"] {
        let r = client
            .get(format!("{}{path}", q.http))
            .send()
            .await
            .unwrap();
        answers.push_str(&r.text().await.unwrap());
    }
    let log = q.log();
    for secret in ["secretPW9", "abcTOK7", "hdrT0KEN5", "ftpPASS8"] {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
        assert!(!answers.contains(secret), "{secret} in the API: {answers}");
    }
    // What is left still says where.
    assert!(
        log.contains(&format!("http://127.0.0.1:{influx_port}/…")),
        "{log}"
    );
}

fn token_section(name: &str, role: &str, token: &str) -> String {
    let hash: String = Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("[[http.token]]\nname = \"{name}\"\nrole = \"{role}\"\nsha256 = \"{hash}\"\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_temporary_folders_are_private_and_never_follow_a_planted_symlink() {
    let tmp = tempfile::tempdir().unwrap();
    let (private_tmp, attacker) = (tmp.path().join("tmp"), tmp.path().join("attacker"));
    std::fs::create_dir_all(&private_tmp).unwrap();
    std::fs::create_dir_all(&attacker).unwrap();
    let q = Logged::start(
        &token_section("auditor-1", "auditor", "auditor-token"),
        &stations(60, &[]),
        &[("TMPDIR", private_tmp.to_str().unwrap())],
    )
    .await;
    assert!(support::http_ready(&q.http, Duration::from_secs(60)).await);
    // The names an export would have used before: quantrac-export-<pid>-<n>, planted as symlinks.
    let pid = q.child.as_ref().unwrap().id();
    for n in 0..20 {
        std::os::unix::fs::symlink(
            &attacker,
            private_tmp.join(format!("quantrac-export-{pid}-{n}")),
        )
        .unwrap();
    }
    let now = chrono::Utc::now().timestamp_millis();
    let client = reqwest::Client::new();
    for format in ["tt10", "all"] {
        let r = client
            .get(format!(
                "{}/api/export?format={format}&from={}&to={now}",
                q.http,
                now - 86_400_000
            ))
            .bearer_auth("auditor-token")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let tar = r.bytes().await.unwrap();
        assert!(tar.len() > 1024, "{format}: {} bytes", tar.len());
    }
    let planted: Vec<_> = std::fs::read_dir(&attacker).unwrap().collect();
    assert!(
        planted.is_empty(),
        "the export wrote into the planted folder: {planted:?}"
    );
    // Nothing left behind but the planted links.
    let left: Vec<String> = std::fs::read_dir(&private_tmp)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with(&format!("quantrac-export-{pid}-")))
        .collect();
    assert!(left.is_empty(), "temporary folders left: {left:?}");
}

const BIN: &str = env!("CARGO_BIN_EXE_quantrac");

/// One plant without a simulator (readings come from `ingest`).
const ONE_STATION: &str = r#"
[[station]]
id = "BN_KCNQV_NUOC01"
name = "Que Vo"
profile = "qcvn40-2011-b"
design_flow_m3_day = 13000
receiving_water = { type = "river", flow_m3_s = 120 }
parameters = { COD = {}, pH = {} }
"#;

/// A command of quantrac run through `sh` with `prefix` (e.g. a file size limit), its exit status and stderr, or
/// `None` if it is still running after `limit` (then killed).
fn run_bounded(
    prefix: &str,
    args: &[&str],
    stdin: Option<Vec<u8>>,
    limit: Duration,
) -> Option<(std::process::ExitStatus, String, String)> {
    run_wrapped(prefix, "", args, stdin, limit)
}

/// [`run_bounded`] with the binary started through `wrapper` (e.g. `setpriv …`).
fn run_wrapped(
    prefix: &str,
    wrapper: &str,
    args: &[&str],
    stdin: Option<Vec<u8>>,
    limit: Duration,
) -> Option<(std::process::ExitStatus, String, String)> {
    let quoted: Vec<String> = std::iter::once(BIN)
        .chain(args.iter().copied())
        .map(|a| format!("'{a}'"))
        .collect();
    let script = format!("{prefix} exec {wrapper} {}", quoted.join(" "));
    let mut child = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        use std::io::Write;
        if let Some(bytes) = stdin {
            let _ = input.write_all(&bytes);
        }
    });
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut out, &mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut err, &mut s);
        s
    });
    let mut status = None;
    support::wait_until(limit, || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        return None;
    };
    let _ = feeder.join();
    Some((status, out.join().unwrap(), err.join().unwrap()))
}

/// JSON lines of COD and pH readings, one a minute from 2026-11-01 (`n` readings).
fn lines(n: usize) -> Vec<u8> {
    let start = 1_793_491_200_000i64; // 2026-11-01T00:00:00Z
    let mut out = String::new();
    for i in 0..n {
        let p = if i % 2 == 0 { "COD" } else { "pH" };
        let v = if i % 2 == 0 { 40.0 } else { 7.0 };
        out.push_str(&format!(
            "{{\"station\": \"BN_KCNQV_NUOC01\", \"parameter\": \"{p}\", \"ts\": {}, \"value\": {v}}}\n",
            start + (i as i64 / 2) * 60_000
        ));
    }
    out.into_bytes()
}

/// Ignore SIGXFSZ (a write past the limit then fails with EFBIG, as on a full disk) and limit files to `bytes`.
fn file_size_limit(bytes: u64) -> String {
    format!("trap '' XFSZ; ulimit -f {};", bytes / 512)
}

#[test]
fn ingest_exits_non_zero_when_a_batch_is_not_committed() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("quantrac.toml");
    ConfigBuilder::new().section(ONE_STATION).write(&config);
    let (status, out, err) = run_bounded(
        &file_size_limit(1 << 20),
        &["ingest", "--config", config.to_str().unwrap()],
        Some(lines(60_000)),
        Duration::from_secs(120),
    )
    .expect("ingest did not finish in 120 s");
    assert!(
        !status.success(),
        "ingest exited 0 although the ledger could not take the input; stdout tail: {:?}",
        out.lines().last()
    );
    assert!(err.contains("not everything was committed"), "{err}");
    let committed: u64 = out
        .lines()
        .filter_map(|l| l.strip_prefix("committed ")?.parse().ok())
        .next_back()
        .unwrap_or(0);
    assert!(committed < 60_000, "{committed}");
    // What was reported committed is stored.
    let stored = support::stream::count(&dir.path().join("ledger.db"));
    assert!(
        stored as u64 >= committed,
        "{stored} stored, {committed} reported"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_answers_503_with_the_reason_after_a_failed_commit() {
    let dir = tempfile::tempdir().unwrap();
    let config = Logged::config(dir.path(), "anonymous_read = true", &stations(360, &[]));
    let log = dir.path().join("quantrac.log");
    // The sim's start-up history (a day of eight plants) does not fit in 2 MB: commits fail as on a full disk.
    let script = format!(
        "{} exec '{BIN}' run --config '{}' 2> '{}'",
        file_size_limit(2 << 20),
        config.display(),
        log.display()
    );
    let child = Command::new("sh")
        .args(["-c", &script])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let q = Logged {
        child: Some(child),
        dir,
        http: String::new(),
    };
    let http = support::reported_in_log(&log, 0, Duration::from_secs(60)).expect("no address");
    let client = reqwest::Client::new();
    let answer = std::sync::Mutex::new(serde_json::Value::Null);
    let failed = support::eventually(Duration::from_secs(120), || {
        let req = client.get(format!("{http}/readyz")).send();
        let answer = &answer;
        async move {
            let Ok(r) = req.await else { return false };
            let status = r.status().as_u16();
            let v: serde_json::Value = r.json().await.unwrap_or_default();
            *answer.lock().unwrap() = v.clone();
            status == 503 && v["last_commit_ok"] == false
        }
    })
    .await;
    let answer = answer.into_inner().unwrap();
    assert!(
        failed,
        "/readyz never reported the failed commit: {answer}\n{}",
        q.log()
    );
    let reasons = answer["reasons"].to_string();
    assert!(
        reasons.contains("the last ledger commit failed"),
        "{reasons}"
    );
    assert!(
        reasons.contains("ledger.db"),
        "the reason does not name the file: {reasons}"
    );
    let metrics = client
        .get(format!("{http}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l == "quantrac_ledger_last_commit_ok 0"),
        "{metrics}"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("quantrac_ledger_commit_failures_total ") && !l.ends_with(" 0")),
        "{metrics}"
    );
    // Stopped while commits fail: the last line does not claim that everything in flight was committed.
    let mut q = q;
    support::terminate(q.child.take().unwrap());
    let log = q.log();
    let last = log
        .lines()
        .rev()
        .find(|l| l.contains("Stopped"))
        .unwrap_or_else(|| panic!("no final line:\n{log}"));
    assert!(
        last.contains("the last commit failed")
            && !last.contains("everything in flight is committed"),
        "{last}"
    );
}

/// Run `quantrac <args…>` as an unprivileged user when the test runs as root (root writes any file whatever its
/// mode, so a read-only file is read-only only for someone else).
fn unprivileged() -> &'static str {
    if std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
    {
        "setpriv --reuid=65534 --regid=65534 --clear-groups --"
    } else {
        ""
    }
}

#[test]
fn start_up_refuses_a_ledger_it_cannot_write() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let config = dir.path().join("quantrac.toml");
    ConfigBuilder::new()
        .http("")
        .section(ONE_STATION)
        .write(&config);
    let ledger = dir.path().join("ledger.db");
    drop(quantrac::ledger::Ledger::open(&ledger, quantrac::config::Synchronous::Normal).unwrap());
    std::fs::set_permissions(&ledger, std::fs::Permissions::from_mode(0o444)).unwrap();
    // The lock file is the writer's to create (here: the unprivileged user's).
    let _ = std::fs::remove_file(dir.path().join("ledger.db.lock"));
    for command in ["run", "ingest"] {
        let (status, _, err) = run_wrapped(
            "",
            unprivileged(),
            &[command, "--config", config.to_str().unwrap()],
            Some(Vec::new()),
            Duration::from_secs(30),
        )
        .unwrap_or_else(|| panic!("quantrac {command} started on a read-only ledger"));
        assert!(!status.success(), "{command}: {err}");
        assert!(err.contains("cannot be written"), "{command}: {err}");
        assert!(err.contains(ledger.to_str().unwrap()), "{command}: {err}");
    }
}

#[test]
fn every_command_refuses_a_foreign_or_newer_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("quantrac.toml");
    ConfigBuilder::new()
        .http("")
        .section(ONE_STATION)
        .write(&config);
    let ledger = dir.path().join("ledger.db");
    let c = config.to_str().unwrap();
    let out = dir.path().join("export");
    let backup = dir.path().join("copy.db");
    let report = dir.path().join("report.html");
    let commands: [Vec<&str>; 5] = [
        vec!["run", "--config", c],
        vec!["ingest", "--config", c],
        vec![
            "export",
            "--config",
            c,
            "--from",
            "2026-11-01",
            "--to",
            "2026-11-02",
            "--out",
            out.to_str().unwrap(),
        ],
        vec![
            "report",
            "--config",
            c,
            "--station",
            "BN_KCNQV_NUOC01",
            "--month",
            "2026-11",
            "--out",
            report.to_str().unwrap(),
        ],
        vec!["backup", "--config", c, "--to", backup.to_str().unwrap()],
    ];
    let refused = |expect: &str| {
        for args in &commands {
            let (status, _, err) = run_bounded("", args, Some(Vec::new()), Duration::from_secs(30))
                .unwrap_or_else(|| panic!("quantrac {} ran on the ledger", args[0]));
            assert!(!status.success(), "{}: {err}", args[0]);
            assert!(err.contains(expect), "{}: {err}", args[0]);
            assert!(
                err.contains(ledger.to_str().unwrap()),
                "{}: the error does not name the file: {err}",
                args[0]
            );
        }
    };
    // Another program's database.
    {
        let db = rusqlite::Connection::open(&ledger).unwrap();
        db.execute_batch("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO customers (name) VALUES ('x');")
            .unwrap();
    }
    refused("is not a quantrac ledger");
    let db = rusqlite::Connection::open(&ledger).unwrap();
    let tables: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(tables, 1, "quantrac changed the foreign database");
    drop(db);
    // A ledger from a newer quantrac.
    std::fs::remove_file(&ledger).unwrap();
    drop(quantrac::ledger::Ledger::open(&ledger, quantrac::config::Synchronous::Normal).unwrap());
    rusqlite::Connection::open(&ledger)
        .unwrap()
        .pragma_update(None, "user_version", 9999)
        .unwrap();
    refused("newer than this quantrac supports");
}

/// An HTTPS client trusting only the CA in `dir`.
fn https_client(dir: &Path) -> reqwest::Client {
    let ca = std::fs::read(dir.join("ca.crt")).unwrap();
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

async fn healthz_status(client: &reqwest::Client, base: &str) -> Option<u16> {
    client
        .get(format!("{base}/healthz"))
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16())
}

/// `[http.tls]`: the dashboard answers over HTTPS with the configured certificate and not in plain HTTP; after the
/// certificate files are renewed in place, SIGHUP serves the new one; a key file that does not load stops the start,
/// naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_serves_the_configured_certificate_and_a_renewed_one_after_sighup() {
    let certs = tempfile::tempdir().unwrap();
    let (one, two, live) = (
        certs.path().join("one"),
        certs.path().join("two"),
        certs.path().join("live"),
    );
    for d in [&one, &two, &live] {
        std::fs::create_dir_all(d).unwrap();
    }
    support::certs::make_certs(&one);
    support::certs::make_certs(&two);
    let install = |from: &Path| {
        for f in ["server.crt", "server.key"] {
            std::fs::copy(from.join(f), live.join(f)).unwrap();
        }
    };
    install(&one);
    let tls = format!(
        "tls = {{ cert_file = \"{}\", key_file = \"{}\" }}",
        live.join("server.crt").display(),
        live.join("server.key").display()
    );
    let q = Logged::start(&tls, &stations(60, &[]), &[]).await;
    assert!(q.http.starts_with("https://"), "{}", q.http);
    let (first, second) = (https_client(&one), https_client(&two));
    assert_eq!(healthz_status(&first, &q.http).await, Some(200));
    assert_eq!(
        healthz_status(&second, &q.http).await,
        None,
        "another CA's client must not trust it"
    );
    let addr: SocketAddr = q.http.trim_start_matches("https://").parse().unwrap();
    assert_eq!(
        raw_get([127, 0, 0, 1], addr, "/healthz").await,
        None,
        "no page in plain HTTP"
    );

    // Renewed in place (new CA, same paths), then SIGHUP.
    install(&two);
    let pid = q.child.as_ref().unwrap().id().to_string();
    assert!(Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    let renewed = support::wait_until(Duration::from_secs(30), || {
        q.log().contains("Config reloaded.")
            && tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(healthz_status(&second, &q.http))
                    == Some(200)
            })
    });
    assert!(
        renewed,
        "the renewed certificate is not served; log:\n{}",
        q.log()
    );
    // A new connection (the first client's kept-alive one was made under the old certificate).
    assert_eq!(
        healthz_status(&https_client(&one), &q.http).await,
        None,
        "the old certificate is gone"
    );
    assert!(
        q.log().contains("HTTPS certificate read again"),
        "{}",
        q.log()
    );
    drop(q);

    // A key that does not load stops the start, naming the file.
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere.key");
    let bad = format!(
        "tls = {{ cert_file = \"{}\", key_file = \"{}\" }}",
        one.join("server.crt").display(),
        missing.display()
    );
    let config = Logged::config(dir.path(), &bad, &stations(60, &[]));
    let (status, _, stderr) = run_bounded(
        "",
        &["run", "--config", config.to_str().unwrap()],
        None,
        Duration::from_secs(60),
    )
    .expect("quantrac run did not stop");
    assert!(!status.success());
    assert!(
        stderr.contains("http.tls: cannot read key file") && stderr.contains("nowhere.key"),
        "{stderr}"
    );
}
