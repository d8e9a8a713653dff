//! `quantrac bench tt10-send`: Circular 10 files/s from a prepared ledger to a local FTP server (pyftpdlib) and to
//! SFTP (OpenSSH's sshd), each beside a bare loop uploading the same files over the same kind of connection in the
//! same run; then the transmission delay (observation → upload) with 100 stations reporting live.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::FixedOffset;
use tokio_util::sync::CancellationToken;

use crate::circular10::{file_name, write_line};
use crate::compliance::{Assessment, Band, Flags};
use crate::config::transmit::{Layout, Protocol, Start, Target};
use crate::config::{Secret, Synchronous};
use crate::forward::tt10::remote::Connection;
use crate::forward::tt10::{health_key, run};
use crate::health::Health;
use crate::ledger::transmit::TransmitStore;
use crate::ledger::{Evaluated, Ledger};
use crate::model::{Parameter, Reading, SourceKind, StationId, Status, Timestamp, Unit};

use super::support::{latency_summary, plausible, tempfile_dir};

type BoxError = Box<dyn std::error::Error>;

const PARAMETERS: [&str; 6] = ["Flow", "Temp", "pH", "TSS", "COD", "NH4"];
const STATIONS: usize = 100;
const USER: &str = "bench";
const PASSWORD: &str = "bench-pw";

/// Files/s to FTP and SFTP beside bare loops, then the delay at 100 stations reporting every 5 minutes (run
/// compressed: every `period`, so `seconds` give enough files).
pub async fn run_bench(files: usize, seconds: u64) -> Result<(), BoxError> {
    let dir = tempfile_dir()?;
    let mut children = Vec::new();
    let result = measure(&dir, files, seconds, &mut children).await;
    for mut c in children {
        let _ = c.kill();
        let _ = c.wait();
    }
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn measure(
    dir: &Path,
    files: usize,
    seconds: u64,
    children: &mut Vec<Child>,
) -> Result<(), BoxError> {
    let times = files.div_ceil(STATIONS).max(1);
    let ledger = dir.join("bench.db");
    let base = Timestamp::now().millis() / 60_000 * 60_000 - 86_400_000;
    fill(&ledger, base, times)?;
    let total = STATIONS * times;
    println!("quantrac bench tt10-send: {total} files ({STATIONS} stations × {times} times × {} parameters)", PARAMETERS.len());

    let (ftp_port, ftp_child) = start_ftp(&dir.join("ftp"))?;
    children.push(ftp_child);
    let ftp = target("ftp", Protocol::Ftp, ftp_port, "");
    compare(&ledger, &ftp, &dir.join("ftp"), total).await?;

    let (sftp, sshd) = start_sshd(&dir.join("sshd"), &dir.join("sftp-in"))?;
    children.push(sshd);
    compare(&ledger, &sftp, &dir.join("sftp-in"), total).await?;

    live_delay(dir, ftp_port, seconds).await
}

/// One protocol: the bare loop, then quantrac, into fresh folders; prints both rates.
async fn compare(ledger: &Path, t: &Target, root: &Path, total: usize) -> Result<(), BoxError> {
    let prepared = prepared_files(ledger, t.timezone)?;
    let mut bare_target = t.clone();
    bare_target.path = join(&t.path, "bare");
    let started = Instant::now();
    let mut conn = Connection::open(&bare_target).await?;
    for (name, bytes) in &prepared {
        conn.upload(&bare_target, &bare_target.path, name, bytes)
            .await?;
    }
    conn.close(&bare_target).await;
    let bare = prepared.len() as f64 / started.elapsed().as_secs_f64();

    let mut q = t.clone();
    q.path = join(&t.path, "quantrac");
    q.name = format!("bench-{}", t.protocol.as_str());
    let health = Health::default();
    let stop = CancellationToken::new();
    let started = Instant::now();
    let task = tokio::spawn(run(
        q.clone(),
        ledger.to_path_buf(),
        health.clone(),
        stop.clone(),
    ));
    let key = health_key(&q.name);
    let deadline = Instant::now() + Duration::from_secs(600);
    while Instant::now() < deadline {
        let sent = health
            .get(&key)
            .and_then(|c| c.transmission)
            .map_or(0, |x| x.files);
        if sent as usize >= total {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    stop.cancel();
    let _ = task.await;
    let sent = count_files(&root.join("quantrac"));
    if sent != total {
        return Err(format!("{}: {sent} of {total} files arrived", t.protocol.as_str()).into());
    }
    let rate = total as f64 / secs;
    let proto = t.protocol.as_str().to_uppercase();
    println!("{proto:<5} bare loop (same connection, temp name + rename): {bare:>7.0} files/s");
    println!(
        "{proto:<5} quantrac target (ledger, cursor, health):    {rate:>7.0} files/s   ratio {:.2}",
        rate / bare
    );
    Ok(())
}

/// 100 stations, each committing one reading per parameter every `period`, staggered; quantrac sends to FTP with
/// its default settings (2 s batch wait). Delay = the file's arrival (its modification time) − its observation time.
async fn live_delay(dir: &Path, ftp_port: u16, seconds: u64) -> Result<(), BoxError> {
    let period = Duration::from_secs(30);
    let ledger = dir.join("live.db");
    Ledger::open(&ledger, Synchronous::Normal)?;
    let mut t = target("live", Protocol::Ftp, ftp_port, "live");
    t.batch_wait = Duration::from_secs(2);
    t.start = Start::Now;
    let health = Health::default();
    let stop = CancellationToken::new();
    let task = tokio::spawn(run(t.clone(), ledger.clone(), health, stop.clone()));
    let writer = std::thread::spawn({
        let ledger = ledger.clone();
        move || report_live(&ledger, period, Duration::from_secs(seconds))
    });
    let observed = tokio::task::spawn_blocking(move || writer.join())
        .await?
        .map_err(|_| "the live writer panicked")??;
    // Let the last files go out.
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.cancel();
    let _ = task.await;
    let mut delays = arrival_delays(&dir.join("ftp/live"), t.timezone)?;
    delays.sort_unstable();
    println!(
        "delay observation → upload, {STATIONS} stations every {}s (the Circular's 5 min, {}× compressed) for {seconds}s, {observed} files committed, {} arrived: {}",
        period.as_secs(),
        300 / period.as_secs(),
        delays.len(),
        latency_summary(&delays)
    );
    Ok(())
}

/// Commit each station's readings at its turn (stations staggered over `period`) until `length` has passed.
fn report_live(ledger: &Path, period: Duration, length: Duration) -> Result<usize, String> {
    let mut l = Ledger::open(ledger, Synchronous::Normal).map_err(|e| e.to_string())?;
    let started = Instant::now();
    let step = period / STATIONS as u32;
    let mut n = 0usize;
    while started.elapsed() < length {
        let due = started + step * n as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let now = Timestamp::now().millis() / 1000 * 1000;
        let batch: Vec<Evaluated> = PARAMETERS
            .iter()
            .map(|p| evaluated(&station(n % STATIONS), p, now, n))
            .collect();
        l.commit(&batch, &[]).map_err(|e| e.to_string())?;
        n += 1;
    }
    Ok(n)
}

fn arrival_delays(dir: &Path, tz: FixedOffset) -> Result<Vec<i64>, BoxError> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        let Ok(parsed) = crate::circular10::parse_file_name(&name) else {
            continue;
        };
        let Some(observed) = crate::circular10::tt10_time(&parsed.time, tz) else {
            continue;
        };
        let arrived = e.metadata()?.modified()?;
        let arrived = arrived.duration_since(std::time::UNIX_EPOCH)?.as_millis() as i64;
        out.push(arrived - observed.millis());
    }
    Ok(out)
}

fn station(i: usize) -> String {
    format!("BN_KCN{i:03}_NUOC01")
}

fn evaluated(station: &str, p: &str, ts: i64, n: usize) -> Evaluated {
    let parameter = Parameter::new(p).expect("bench parameter");
    Evaluated {
        reading: Reading {
            station: StationId::parse(station).expect("bench station"),
            value: plausible(&parameter, n),
            unit: Unit::new(parameter.standard_unit().unwrap_or("")),
            parameter,
            ts: Timestamp(ts),
            status: Status::Measuring,
        },
        assessment: Assessment {
            rules: Default::default(),
            limit: None,
            ratio: None,
            band: Band::Compliant,
            flags: Flags::default(),
        },
        source: SourceKind::Sim,
        received: None,
    }
}

fn fill(ledger: &Path, base: i64, times: usize) -> Result<(), BoxError> {
    let mut l = Ledger::open(ledger, Synchronous::Normal)?;
    for t in 0..times {
        let batch: Vec<Evaluated> = (0..STATIONS)
            .flat_map(|s| {
                PARAMETERS
                    .iter()
                    .map(move |p| evaluated(&station(s), p, base + t as i64 * 300_000, s + t))
            })
            .collect();
        l.commit(&batch, &[])?;
    }
    Ok(())
}

/// The files the ledger makes (name, bytes), built once for the bare loop with quantrac's store and writer.
fn prepared_files(ledger: &Path, tz: FixedOffset) -> Result<Vec<(String, Vec<u8>)>, BoxError> {
    let mut store = TransmitStore::open(ledger, "bench-prepare")?;
    let round = store.round(0, 0, usize::MAX >> 1, None, &|_| true)?;
    let mut out = Vec::with_capacity(round.files.len());
    for f in round.files {
        let mut text = String::new();
        for r in &f.readings {
            write_line(
                &mut text,
                &r.parameter,
                r.value,
                &r.unit,
                Timestamp(r.ts),
                r.status,
                tz,
            );
        }
        let id = StationId::parse(&f.station)?;
        out.push((file_name(&id, Timestamp(f.second), tz), text.into_bytes()));
    }
    Ok(out)
}

fn target(name: &str, protocol: Protocol, port: u16, path: &str) -> Target {
    Target {
        name: name.into(),
        protocol,
        host: "127.0.0.1".into(),
        port,
        username: USER.into(),
        password: Some(Secret::new(PASSWORD)),
        private_key_file: None,
        host_key: None,
        ca_file: None,
        path: path.into(),
        layout: Layout::Flat,
        stations: Vec::new(),
        receives: Vec::new(),
        start: Start::From(Timestamp(0)),
        rate_limit: 0.0,
        timeout: Duration::from_secs(10),
        max_backoff: Duration::from_secs(1),
        batch_wait: Duration::ZERO,
        batch_readings: 5000,
        deadline: Duration::from_secs(300),
        maintenance_as: Default::default(),
        timezone: FixedOffset::east_opt(7 * 3600).expect("UTC+7"),
    }
}

fn join(a: &str, b: &str) -> String {
    if a.is_empty() {
        b.to_string()
    } else {
        format!("{a}/{b}")
    }
}

fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                .count()
        })
        .unwrap_or(0)
}

fn python() -> &'static str {
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

/// pyftpdlib (Debian python3-pyftpdlib) serving `home`; its port once it listens.
fn start_ftp(home: &Path) -> Result<(u16, Child), BoxError> {
    use std::io::BufRead;
    std::fs::create_dir_all(home)?;
    let script = "import sys\nfrom pyftpdlib.authorizers import DummyAuthorizer\nfrom pyftpdlib.handlers import FTPHandler\n\
        from pyftpdlib.servers import FTPServer\nimport logging\nlogging.disable(logging.CRITICAL)\n\
        a = DummyAuthorizer()\na.add_user(sys.argv[2], sys.argv[3], sys.argv[1], perm='elradfmwMT')\n\
        FTPHandler.authorizer = a\ns = FTPServer(('127.0.0.1', 0), FTPHandler)\n\
        print(s.socket.getsockname()[1], flush=True)\ns.serve_forever()\n";
    let mut child = Command::new(python())
        .args(["-c", script])
        .arg(home)
        .args([USER, PASSWORD])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start pyftpdlib (install python3-pyftpdlib): {e}"))?;
    let mut line = String::new();
    let stdout = child.stdout.take().ok_or("no stdout")?;
    std::io::BufReader::new(stdout).read_line(&mut line)?;
    let port = line
        .trim()
        .parse()
        .map_err(|_| format!("pyftpdlib did not start: {line:?}"))?;
    Ok((port, child))
}

/// OpenSSH's sshd on a free loopback port with generated keys; the SFTP target for it, writing into `into`.
fn start_sshd(dir: &Path, into: &Path) -> Result<(Target, Child), BoxError> {
    std::fs::create_dir_all(dir)?;
    std::fs::create_dir_all(into)?;
    for key in ["host_key", "user_key"] {
        let ok = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(dir.join(key))
            .status()?
            .success();
        if !ok {
            return Err("ssh-keygen failed".into());
        }
    }
    std::fs::copy(dir.join("user_key.pub"), dir.join("authorized_keys"))?;
    let out = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(dir.join("host_key.pub"))
        .output()?;
    let fingerprint = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(1)
        .ok_or("no host key fingerprint")?
        .to_string();
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let config = dir.join("sshd_config");
    std::fs::write(
        &config,
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nPidFile {}\nAuthorizedKeysFile {}\nStrictModes no\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nPermitRootLogin yes\n\
             Subsystem sftp internal-sftp\nLogLevel ERROR\n",
            dir.join("host_key").display(),
            dir.join("sshd.pid").display(),
            dir.join("authorized_keys").display()
        ),
    )?;
    let _ = std::fs::create_dir_all("/run/sshd");
    let child = Command::new("/usr/sbin/sshd")
        .args(["-D", "-e", "-f"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start sshd (install openssh-server): {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err("sshd did not listen".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let user = String::from_utf8_lossy(&Command::new("id").arg("-un").output()?.stdout)
        .trim()
        .to_string();
    let mut t = target("sftp", Protocol::Sftp, port, &into.display().to_string());
    t.username = user;
    t.password = None;
    t.private_key_file = Some(dir.join("user_key"));
    t.host_key = Some(fingerprint);
    Ok((t, child))
}
