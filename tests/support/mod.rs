//! Test harness: real servers started by the tests (VictoriaMetrics), with bounded waits.
#![allow(dead_code)]

pub mod browser;
pub mod certs;
pub mod config;
pub mod daemon;
pub mod fault_http;
pub mod mosquitto;
pub mod stream;
pub mod transfer;
pub mod victoria;

use std::time::{Duration, Instant};

/// Poll `cond` until it holds or `limit` passes.
pub async fn eventually<F, Fut>(limit: Duration, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if cond().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Wait until quantrac at `base` (e.g. `http://127.0.0.1:8080`) answers `/readyz` with success, or `limit` passes.
pub async fn http_ready(base: &str, limit: Duration) -> bool {
    let url = format!("{base}/readyz");
    eventually(limit, || {
        let u = url.clone();
        async move {
            reqwest::get(&u)
                .await
                .map(|r| r.status().is_success())
                .unwrap_or(false)
        }
    })
    .await
}

/// Poll `cond` (blocking) until it holds or `limit` passes; for tests that drive processes without a runtime.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A free loopback port (bound then released), for servers that cannot report the port they bind (Mosquitto,
/// VictoriaMetrics, aiosmtpd, chromedriver). quantrac itself listens on port 0 and reports its address instead.
pub fn free_port() -> u16 {
    let mut last = None;
    // Binding port 0 fails only when ephemeral ports run short for a moment; try again briefly.
    for _ in 0..50 {
        match std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
            Ok(a) => return a.port(),
            Err(e) => last = Some(e),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("no free loopback port: {last:?}")
}

/// The HTTP base URL (`http://127.0.0.1:PORT`) in quantrac's last `… listening on http://ADDR` log line, in
/// either log format (human or JSON).
pub fn listening_address(log: &str) -> Option<String> {
    const MARK: &str = "listening on http";
    let at = log.rfind(MARK)? + MARK.len();
    let (scheme, at) = match log[at..].strip_prefix("s://") {
        Some(_) => ("https", at + 4),
        None => ("http", at + log[at..].strip_prefix("://").map_or(0, |_| 3)),
    };
    let addr: String = log[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '[' | ']'))
        .collect();
    let addr = addr.trim_end_matches('.');
    addr.rsplit_once(':')
        .filter(|(_, port)| port.parse::<u16>().is_ok_and(|p| p != 0))
        .map(|_| format!("{scheme}://{addr}"))
}

/// Wait (at most `limit`) until the log file at `path`, read from byte `from` on, reports quantrac's HTTP address.
pub fn reported_in_log(path: &std::path::Path, from: usize, limit: Duration) -> Option<String> {
    let mut found = None;
    wait_until(limit, || {
        let log = std::fs::read(path).unwrap_or_default();
        found = listening_address(&String::from_utf8_lossy(
            log.get(from..).unwrap_or_default(),
        ));
        found.is_some()
    });
    found
}

/// Read a child's stderr until quantrac reports its HTTP address (at most `limit`), then go on draining it in the
/// background so the child never blocks on a full pipe. `None` when the child says nothing in time or exits.
pub fn reported_on_stderr(stderr: std::process::ChildStderr, limit: Duration) -> Option<String> {
    use std::io::BufRead;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if let Some(addr) = listening_address(&line) {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(addr);
                }
            }
        }
    });
    rx.recv_timeout(limit).ok()
}

/// Stop a child gracefully (SIGTERM, so it flushes), killing it if it takes over 10 s.
pub fn terminate(mut child: std::process::Child) {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// `quantrac <args>` with `stdin` on standard input: (exit code, stdout, stderr).
pub fn quantrac_with_stdin<S: AsRef<std::ffi::OsStr>>(
    args: &[S],
    stdin: &str,
) -> (i32, String, String) {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_quantrac"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `quantrac user --config <config> <args>` with `stdin` on standard input: (exit code, stdout, stderr).
pub fn user_cli(config: &std::path::Path, args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut all: Vec<&std::ffi::OsStr> =
        vec!["user".as_ref(), "--config".as_ref(), config.as_os_str()];
    all.extend(args.iter().map(std::ffi::OsStr::new));
    quantrac_with_stdin(&all, stdin)
}

/// Feed JSON lines through `quantrac ingest`; it must succeed.
pub fn ingest(config: &std::path::Path, lines: &str) {
    let (code, out, err) = quantrac_with_stdin(
        &["ingest".as_ref(), "--config".as_ref(), config.as_os_str()],
        lines,
    );
    assert_eq!(code, 0, "quantrac ingest failed: {out}{err}");
}
