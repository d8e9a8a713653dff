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
