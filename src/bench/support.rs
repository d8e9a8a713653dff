//! What the benches share: the bench stations' config, plausible values, a temp folder, percentiles and per-thread
//! CPU time from /proc.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::model::{Parameter, WATER_PARAMETERS};

/// A config with `stations` stations monitoring the ten Circular 10 water parameters.
pub fn bench_config(stations: usize) -> String {
    let params = WATER_PARAMETERS
        .iter()
        .filter(|(s, _)| *s != "Color")
        .map(|(s, _)| format!("{s} = {{}}"))
        .collect::<Vec<_>>()
        .join(", ");
    (0..stations)
        .map(|i| {
            format!(
                "[[station]]\nid = \"BN_BENCH{i}_NUOC01\"\nname = \"Bench {i}\"\nprofile = \"qcvn40-2011-b\"\n\
                 design_flow_m3_day = 5000\nreceiving_water = {{ type = \"river\", flow_m3_s = 120 }}\nparameters = {{ {params} }}\n\n"
            )
        })
        .collect()
}

/// Time a thread spent on a CPU, and runnable but waiting for one, in seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ThreadTime {
    pub run: f64,
    pub wait: f64,
}

/// [`ThreadTime`] so far of each thread of process `pid` (`self` for this one), summed by thread name.
/// Read from /proc/<pid>/task/*/schedstat (nanoseconds); empty where /proc is not available.
pub fn thread_times(pid: &str) -> BTreeMap<String, ThreadTime> {
    let mut out = BTreeMap::<String, ThreadTime>::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for task in tasks.flatten() {
        let dir = task.path();
        let name = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        let stat = std::fs::read_to_string(dir.join("schedstat")).unwrap_or_default();
        let mut ns = stat
            .split_whitespace()
            .map(|v| v.parse::<f64>().unwrap_or(0.0) / 1e9);
        let t = out.entry(name.trim().to_string()).or_default();
        t.run += ns.next().unwrap_or(0.0);
        t.wait += ns.next().unwrap_or(0.0);
    }
    out
}

/// Each thread's time in `now` minus its time in `before`.
pub fn since(
    before: &BTreeMap<String, ThreadTime>,
    now: BTreeMap<String, ThreadTime>,
) -> BTreeMap<String, ThreadTime> {
    now.into_iter()
        .map(|(k, t)| {
            let t0 = before.get(&k).copied().unwrap_or_default();
            let d = ThreadTime {
                run: t.run - t0.run,
                wait: t.wait - t0.wait,
            };
            (k, d)
        })
        .collect()
}

/// A value the range checks accept: pH within 6.5–8.4, other parameters 40–128.
pub(super) fn plausible(p: &Parameter, n: usize) -> f64 {
    if p.as_str() == "pH" {
        6.5 + (n % 20) as f64 / 10.0
    } else {
        40.0 + (n % 89) as f64
    }
}

/// A fresh folder of this process under the system temp folder.
pub(super) fn tempfile_dir() -> std::io::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("quantrac-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// The `p` quantile (0–1) of sorted samples; zero when there are none.
pub(super) fn percentile<T: Copy + Default>(sorted: &[T], p: f64) -> T {
    sorted
        .get(((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or_default()
}

/// `p50 … ms, p99 … ms, max … ms (… samples)` of sorted latencies in milliseconds.
pub(super) fn latency_summary(sorted: &[i64]) -> String {
    format!(
        "p50 {} ms, p99 {} ms, max {} ms ({} samples)",
        percentile(sorted, 0.5),
        percentile(sorted, 0.99),
        sorted.last().copied().unwrap_or(0),
        sorted.len()
    )
}

/// The dashboard server on loopback over a fresh ledger of 100 stations (anonymous reads), with its pipeline: what
/// `bench sse` and `bench http` measure. `http`: more `[http]` keys (e.g. caps raised for many clients from one
/// address).
pub(super) struct ApiUnderTest {
    pub dir: PathBuf,
    pub config: crate::config::Config,
    pub pipeline: crate::pipeline::Pipeline,
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
    pub addr: std::net::SocketAddr,
    pub shutdown: tokio_util::sync::CancellationToken,
    pub server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl ApiUnderTest {
    pub async fn start(
        ledger_name: &str,
        http: &str,
    ) -> Result<ApiUnderTest, Box<dyn std::error::Error>> {
        use std::sync::Arc;
        let dir = tempfile_dir()?;
        let text = format!(
            "[http]\nanonymous_read = true\n{http}\n[ledger]\nsynchronous = \"normal\"\n{}",
            bench_config(100)
        );
        let mut config =
            crate::config::Config::from_str(&text, std::path::Path::new("<bench>"), &dir)?;
        config.ledger.path = dir.join(ledger_name);
        let limits = crate::compliance::resolve_limits(&config)?;
        let ledger =
            crate::ledger::Ledger::open(&config.ledger.path, crate::config::Synchronous::Normal)?;
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let live = crate::live::LiveState::load(&config, &ledger.reader()?)?;
        let pipeline = crate::pipeline::Pipeline::start(&config, limits, ledger, metrics.clone());
        let (addr, shutdown, server) = serve_loopback(&config, live, pipeline.live.clone()).await?;
        Ok(ApiUnderTest {
            dir,
            config,
            pipeline,
            metrics,
            addr,
            shutdown,
            server,
        })
    }

    /// Stop the server, then the pipeline (committing what is in flight), and remove the ledger.
    pub async fn finish(self) {
        self.shutdown.cancel();
        let _ = self.server.await;
        self.pipeline.finish().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The API on a loopback port for `config`'s ledger: its address, the token that stops it, and its task.
pub(super) async fn serve_loopback(
    config: &crate::config::Config,
    live: crate::live::LiveState,
    events: tokio::sync::broadcast::Sender<crate::pipeline::LiveEvent>,
) -> std::io::Result<(
    std::net::SocketAddr,
    tokio_util::sync::CancellationToken,
    tokio::task::JoinHandle<std::io::Result<()>>,
)> {
    use std::sync::Arc;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let state = crate::http::AppState::new(
        Arc::new(config.clone()),
        live,
        crate::health::Health::default(),
        Default::default(),
        config.ledger.path.clone(),
        events,
        Arc::new(std::sync::atomic::AtomicBool::new(true)),
        shutdown.clone(),
    );
    let server = tokio::spawn(crate::http::serve(listener, state, shutdown.clone()));
    Ok((addr, shutdown, server))
}

/// POST bodies of line protocol (gzipped or plain) to an InfluxDB v2 write API one after another, as the bare loop
/// the benches compare the forwarder with.
pub async fn post_bodies(
    client: &reqwest::Client,
    url: &str,
    bodies: Vec<Vec<u8>>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    for b in bodies {
        let mut req = client
            .post(format!("{url}/api/v2/write"))
            .query(&[("bucket", "bench"), ("precision", "ms")]);
        // A gzip body starts with the magic bytes 1f 8b; line protocol text never does.
        if b.starts_with(&[0x1f, 0x8b]) {
            req = req.header("Content-Encoding", "gzip");
        }
        let resp = req.body(b).send().await?;
        if !resp.status().is_success() {
            return Err(format!("bare write failed: {}", resp.status()).into());
        }
    }
    Ok(())
}
