//! SIGINT and SIGTERM become a cancelled token: every task drains and stops.

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
