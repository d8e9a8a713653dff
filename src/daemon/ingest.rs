//! `quantrac ingest`: JSON lines from standard input through the full pipeline, for backfills and tests.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::DaemonError;
use crate::compliance::resolve_limits;
use crate::config::Config;
use crate::ledger::Ledger;
use crate::metrics::Metrics;
use crate::pipeline::Pipeline;

/// `quantrac ingest`: JSON lines from standard input through the full pipeline. Prints `committed <n>` once the
/// first n lines are durable; SIGINT/SIGTERM stop reading and commit what was read. A batch that does not commit
/// stops the run with [`DaemonError::NotCommitted`] (the command exits non-zero): lines from the one after the last
/// `committed <n>` on are not stored.
pub async fn ingest_stdin(config: Config, batch_lines: usize) -> Result<(), DaemonError> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    let limits = resolve_limits(&config)?;
    let ledger = Ledger::open(&config.ledger.path, config.ledger.synchronous)?;
    let pipeline = Pipeline::start(&config, limits, ledger, Arc::new(Metrics::default()));
    let ingest = pipeline.ingest();
    let shutdown = CancellationToken::new();
    tokio::spawn(crate::signals::shutdown_on_signal(shutdown.clone()));
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut out = tokio::io::stdout();
    let mut n = 0u64;
    let mut committed = 0u64;
    let mut failure = None;
    let mut eof = false;
    while !eof && !shutdown.is_cancelled() {
        let mut batch = crate::pipeline::Batch::new(crate::model::SourceKind::Api);
        // Wait for one line, then take what is ready without waiting, up to the batch size.
        while batch.len() < batch_lines {
            let next = if batch.is_empty() {
                tokio::select! {
                    l = lines.next_line() => l,
                    _ = shutdown.cancelled() => break,
                }
            } else {
                match tokio::time::timeout(Duration::from_millis(2), lines.next_line()).await {
                    Ok(l) => l,
                    Err(_) => break,
                }
            };
            match next {
                Ok(Some(line)) => {
                    n += 1;
                    if line.trim().is_empty() {
                        continue;
                    }
                    match crate::source::jsonl::parse_line(line.as_bytes(), &format!("stdin:{n}")) {
                        Ok(r) => batch.readings.push(r),
                        Err(q) => batch.quarantined.push(q),
                    }
                }
                Ok(None) => {
                    eof = true;
                    break;
                }
                Err(e) => {
                    warn!(error = %e, "Reading standard input failed.");
                    eof = true;
                    break;
                }
            }
        }
        if batch.is_empty() {
            continue;
        }
        match ingest.submit(batch).await {
            Ok(_) => {
                committed = n;
                let _ = out.write_all(format!("committed {n}\n").as_bytes()).await;
                let _ = out.flush().await;
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    drop(ingest);
    pipeline.finish().await;
    match failure {
        None => Ok(()),
        Some(source) => Err(DaemonError::NotCommitted {
            ledger: config.ledger.path.clone(),
            committed,
            source,
        }),
    }
}
