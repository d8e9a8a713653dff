//! `quantrac bench soak`: `quantrac run` (a child) fed at a sustained rate for minutes through Mosquitto, forwarding
//! to a local VictoriaMetrics (the set-up of [`super::e2e`], realistic stream). Prints quantrac's RSS every 10 s and
//! its slope, the errors seen (publisher reconnects, WARN/ERROR lines of quantrac's log), its CPU per reading, and
//! at the end whether every reading is in the ledger and in VictoriaMetrics.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

use super::e2e::{cpu_of, status_kib, BoxError, Rig, Stream};

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    pub minutes: u64,
    /// Readings per second.
    pub rate: u64,
    pub stations: usize,
    pub compare: Option<PathBuf>,
}

const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// Ticks per second of the publisher (each sends a tenth of a second's messages).
const TICKS: u64 = 10;

pub async fn run(opts: Options) -> Result<(), BoxError> {
    let mut builds = vec![("this build".to_string(), std::env::current_exe()?)];
    if let Some(other) = &opts.compare {
        builds.push((format!("compare {}", other.display()), other.clone()));
    }
    println!(
        "quantrac bench soak: {} min at {} readings/s, {} stations, QoS 1, 10 readings per message",
        opts.minutes, opts.rate, opts.stations
    );
    for (name, exe) in &builds {
        println!("-- {name}: {}", exe.display());
        soak(&opts, exe).await.map_err(|e| format!("{name}: {e}"))?;
    }
    Ok(())
}

async fn soak(opts: &Options, exe: &Path) -> Result<(), BoxError> {
    let mut rig = Rig::start(exe, opts.stations, Stream::Realistic).await?;
    let pid = rig.daemon.pid();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (client, mut eventloop) = {
        let mut o = MqttOptions::new("bench-soak-pub", "127.0.0.1", rig.mqtt_port);
        o.set_inflight(100)
            .set_keep_alive(Duration::from_secs(30))
            .set_clean_session(false);
        AsyncClient::new(o, 10_000)
    };
    // The event loop: counts acks and connection errors.
    let acks = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let errors = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (a, e) = (acks.clone(), errors.clone());
    let driver = tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    a.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                Ok(_) => {}
                Err(err) => {
                    e.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    eprintln!("soak publisher: {err}; reconnecting");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    });
    let per_tick = (opts.rate / 10 / TICKS).max(1) as usize;
    let total = Duration::from_secs(opts.minutes * 60);
    let started = Instant::now();
    let cpu0 = cpu_of(pid);
    let mut every = tokio::time::interval(Duration::from_millis(1000 / TICKS));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut next_sample = Duration::ZERO;
    let mut samples: Vec<(f64, f64)> = Vec::new();
    let mut sent = 0u64;
    println!(
        "{:>8} {:>10} {:>12} {:>10}",
        "minute", "RSS MiB", "published", "acked"
    );
    while started.elapsed() < total {
        every.tick().await;
        for (topic, payload) in rig.generator.burst(per_tick) {
            client
                .publish(topic, QoS::AtLeastOnce, false, payload)
                .await?;
            sent += 1;
        }
        if started.elapsed() >= next_sample {
            next_sample += SAMPLE_EVERY;
            let minute = started.elapsed().as_secs_f64() / 60.0;
            let rss = status_kib(pid, "VmRSS") as f64 / 1024.0;
            samples.push((minute, rss));
            println!(
                "{minute:>8.2} {rss:>10.1} {:>12} {:>10}",
                sent * 10,
                acks.load(std::sync::atomic::Ordering::Relaxed) * 10
            );
        }
    }
    let publish_secs = started.elapsed().as_secs_f64();
    let want = sent * 10;
    let deadline = Instant::now() + Duration::from_secs(120);
    while acks.load(std::sync::atomic::Ordering::Relaxed) < sent && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let acked = acks.load(std::sync::atomic::Ordering::Relaxed);
    let in_vm = rig
        .vm
        .wait_for("reading_value", want, Duration::from_secs(120))
        .await
        .map_err(|e| e.to_string());
    let cpu = cpu_of(pid) - cpu0;
    driver.abort();
    let ledger = rig.ledger_count()?;
    let log = std::fs::read_to_string(rig.dir.0.join("quantrac.log")).unwrap_or_default();
    let (warns, errs) = (
        log.lines()
            .filter(|l| l.contains("WARN") && !l.contains("Mandatory parameters"))
            .count(),
        log.lines().filter(|l| l.contains("ERROR")).count(),
    );
    // What went wrong, in quantrac's words (start-up warnings about the bench stations' parameters left out).
    for line in log
        .lines()
        .filter(|l| {
            l.contains("ERROR") || (l.contains("WARN") && !l.contains("Mandatory parameters"))
        })
        .take(5)
    {
        println!("  log: {line}");
    }
    if warns + errs > 0 || in_vm.as_ref().map_or(true, |n| *n != want) || ledger != want as i64 {
        println!(
            "  (quantrac's log kept: {})",
            rig.keep_log("soak").display()
        );
    }
    let (slope_all, slope_late) = (slope(&samples), slope(&samples[samples.len() / 2..]));
    println!(
        "published {want} readings in {publish_secs:.0} s ({:.0}/s), {} acked; quantrac CPU {:.2} µs/reading \
         ({:.1} % of a core)",
        want as f64 / publish_secs,
        acked * 10,
        cpu * 1e6 / want as f64,
        100.0 * cpu / publish_secs
    );
    println!(
        "RSS: first {:.1} MiB, last {:.1} MiB, max {:.1} MiB; slope {slope_all:+.3} MiB/min over the run, \
         {slope_late:+.3} MiB/min over its second half",
        samples.first().map(|s| s.1).unwrap_or(0.0),
        samples.last().map(|s| s.1).unwrap_or(0.0),
        samples.iter().map(|s| s.1).fold(0.0, f64::max)
    );
    println!(
        "errors: {} publisher connection errors; quantrac log: {warns} WARN (besides the start-up notes on the bench \
         stations' parameters), {errs} ERROR lines",
        errors.load(std::sync::atomic::Ordering::Relaxed)
    );
    match in_vm {
        Ok(n) => println!(
            "ledger {ledger} of {want} readings (lost {}); VictoriaMetrics {n} points (extra {})",
            want as i64 - ledger,
            n as i64 - want as i64
        ),
        Err(e) => println!("ledger {ledger} of {want} readings; VictoriaMetrics: {e}"),
    }
    let Rig { daemon, .. } = rig;
    println!("stopped: {}", daemon.stop());
    Ok(())
}

/// Least-squares slope of (minute, MiB) samples, MiB per minute; 0 with fewer than two.
fn slope(samples: &[(f64, f64)]) -> f64 {
    let n = samples.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let (mx, my) = (
        samples.iter().map(|s| s.0).sum::<f64>() / n,
        samples.iter().map(|s| s.1).sum::<f64>() / n,
    );
    let num: f64 = samples.iter().map(|s| (s.0 - mx) * (s.1 - my)).sum();
    let den: f64 = samples.iter().map(|s| (s.0 - mx).powi(2)).sum();
    if den == 0.0 {
        0.0
    } else {
        num / den
    }
}
