//! SIGINT and SIGTERM become a cancelled token: every task drains and stops. SIGHUP asks for a config reload.

use tokio_util::sync::CancellationToken;

pub async fn shutdown_on_signal(token: CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            token.cancel();
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
    token.cancel();
}

/// SIGHUP as a stream of reload requests (`systemctl reload` sends it). Several signals while a reload runs
/// collapse into one more reload. Must be called inside the runtime; from then on SIGHUP no longer ends the process.
pub fn reload_requests() -> tokio::sync::mpsc::Receiver<()> {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::hangup()) {
            Ok(mut hup) => {
                tokio::spawn(async move {
                    while hup.recv().await.is_some() {
                        // Full: a reload is already pending and will read the newest file.
                        let _ = tx.try_send(());
                    }
                });
            }
            Err(e) => tracing::warn!(error = %e, "Cannot listen for SIGHUP; reload by restarting."),
        }
    }
    #[cfg(not(unix))]
    drop(tx);
    rx
}
