//! Forwarders: send committed data from the ledger to InfluxDB, and Circular 10 files to the authorities (`tt10`).
//! Each keeps its own cursors in the ledger and moves them only after a successful write, so an outage or a restart
//! only delays data.

pub mod encode;
pub mod influx;
pub mod line_protocol;
mod lines;
pub mod tt10;

use std::path::PathBuf;

use tokio_util::sync::CancellationToken;

use crate::config::forward::Influx;
use crate::config::transmit::Target;
use crate::health::Health;

/// What a sink gets at start: its slice of the config, the ledger it reads from, the health registry and its stop
/// signal. Sinks follow the ledger from their own cursors, never the pipeline.
pub struct SinkContext<C> {
    pub config: C,
    pub ledger: PathBuf,
    pub health: Health,
    pub shutdown: CancellationToken,
}

/// Forward to one InfluxDB target until stopped. An error (a ledger busy for longer than its timeout on a loaded
/// machine, say) stops this target only, and it starts again after a pause: the data waits in the ledger.
pub async fn run_influx(ctx: SinkContext<Influx>) {
    let name = ctx.config.name.clone();
    keep_running(&ctx, "InfluxDB forwarder", &name, |c| {
        influx::run(
            c.config.clone(),
            c.ledger.clone(),
            c.health.clone(),
            c.shutdown.clone(),
        )
    })
    .await
}

/// Send Circular 10 files to one target until stopped. An error stops this target only, and it starts again after a
/// pause: the data waits in the ledger.
pub async fn run_tt10(ctx: SinkContext<Target>) {
    let name = ctx.config.name.clone();
    keep_running(&ctx, "Circular 10 transmission", &name, |c| {
        tt10::run(
            c.config.clone(),
            c.ledger.clone(),
            c.health.clone(),
            c.shutdown.clone(),
        )
    })
    .await
}

/// Run a sink until it ends without an error or shutdown; after an error, log it and start the sink again after a
/// pause that doubles each time.
async fn keep_running<C, F, Fut, E>(ctx: &SinkContext<C>, what: &str, name: &str, run: F)
where
    F: Fn(&SinkContext<C>) -> Fut,
    Fut: std::future::Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let mut pause = RESTART_PAUSE;
    loop {
        let Err(e) = run(ctx).await else { return };
        tracing::error!(target = %name, error = %e, restart_in_s = pause.as_secs(), "{what} stopped on an error; data stays in the ledger, it starts again.");
        if !pause_or_stop(&ctx.shutdown, &mut pause).await {
            return;
        }
    }
}

/// First pause before a stopped sink starts again; it doubles up to [`MAX_RESTART_PAUSE`].
const RESTART_PAUSE: std::time::Duration = std::time::Duration::from_secs(5);
const MAX_RESTART_PAUSE: std::time::Duration = std::time::Duration::from_secs(300);

/// Wait `pause` (and double it for next time); false when stopped meanwhile.
async fn pause_or_stop(shutdown: &CancellationToken, pause: &mut std::time::Duration) -> bool {
    let wait = *pause;
    *pause = (*pause * 2).min(MAX_RESTART_PAUSE);
    tokio::select! {
        _ = shutdown.cancelled() => false,
        _ = tokio::time::sleep(wait) => true,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    use tokio::time::Instant;

    use super::*;

    fn context() -> SinkContext<()> {
        SinkContext {
            config: (),
            ledger: PathBuf::from("unused.db"),
            health: Health::default(),
            shutdown: CancellationToken::new(),
        }
    }

    /// A sink that fails `failures` times, then ends; when each run began.
    async fn run_failing(ctx: &SinkContext<()>, failures: u32) -> Vec<Instant> {
        let runs = Arc::new(AtomicU32::new(0));
        let started = Arc::new(std::sync::Mutex::new(Vec::new()));
        keep_running(ctx, "test sink", "t", |_| {
            let (runs, started) = (runs.clone(), started.clone());
            async move {
                started.lock().unwrap().push(Instant::now());
                match runs.fetch_add(1, Ordering::SeqCst) < failures {
                    true => Err("refused"),
                    false => Ok(()),
                }
            }
        })
        .await;
        let started = started.lock().unwrap().clone();
        started
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_sink_starts_again_after_pauses_that_double() {
        let started = run_failing(&context(), 3).await;
        let gaps: Vec<u64> = started
            .windows(2)
            .map(|w| (w[1] - w[0]).as_secs())
            .collect();
        assert_eq!(gaps, [5, 10, 20], "three failures, then a run that ends");
    }

    #[tokio::test(start_paused = true)]
    async fn the_pause_doubles_up_to_five_minutes() {
        let started = run_failing(&context(), 8).await;
        let last = started.windows(2).last().map(|w| (w[1] - w[0]).as_secs());
        assert_eq!(last, Some(300));
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_during_the_pause_ends_the_loop() {
        let ctx = context();
        let stop = ctx.shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            stop.cancel();
        });
        // It would fail forever: only the shutdown ends it.
        let started = run_failing(&ctx, u32::MAX).await;
        assert_eq!(started.len(), 1);
    }
}
