//! The listener: accepts connections within the configured limits and serves each with hyper's HTTP/1 connection
//! (header-read timeout, header size limit), so that a crowd of slow or idle clients cannot take every descriptor
//! of the process (the ledger, sources and alert e-mail share them).
//!
//! - connections beyond `http.max_connections`, or beyond `http.max_connections_per_client` from one address,
//!   are answered `503` and closed at once;
//! - a request header must arrive whole within `http.header_read_timeout` (which also closes idle kept-alive
//!   connections) and fit in `http.max_header_bytes` (else `431`);
//! - a request body that stops for `http.idle_timeout` ends the request, and a connection whose client stops
//!   reading (a write blocked for `http.idle_timeout`) is closed.
//!
//! It must not know the routes: it serves whatever router it is given.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tower_http::add_extension::AddExtension;
use tower_http::timeout::RequestBodyTimeout;

use super::tls::Tls;
use crate::config::http::Limits;

/// How long shutdown waits for open requests before closing their connections.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// What the listener counts, for `/metrics`.
#[derive(Debug, Default)]
pub struct ListenerStats {
    /// Connections open now.
    pub open: AtomicU64,
    /// Connections answered 503 because `max_connections` were open.
    pub refused_total: AtomicU64,
    /// Connections answered 503 because their address had `max_connections_per_client` open.
    pub refused_per_client: AtomicU64,
    /// `/api/stream` requests answered 503 because `max_streams` were open.
    pub streams_refused: AtomicU64,
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Total,
    PerClient,
}

/// Counts open connections, in total and per client address.
pub struct Admission {
    total: Arc<Semaphore>,
    per_client: Arc<Mutex<HashMap<IpAddr, usize>>>,
    max_per_client: usize,
}

/// An admitted connection's place; given back when dropped.
pub struct Admitted {
    _permit: OwnedSemaphorePermit,
    ip: IpAddr,
    per_client: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Admission {
    pub fn new(max_total: usize, max_per_client: usize) -> Self {
        Self {
            total: Arc::new(Semaphore::new(max_total)),
            per_client: Arc::default(),
            max_per_client,
        }
    }

    /// A place for a connection from `ip`, if one is free.
    pub fn admit(&self, ip: IpAddr) -> Result<Admitted, Refusal> {
        let permit = self
            .total
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refusal::Total)?;
        let mut map = self.per_client.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(ip).or_insert(0);
        if *n >= self.max_per_client {
            return Err(Refusal::PerClient);
        }
        *n += 1;
        Ok(Admitted {
            _permit: permit,
            ip,
            per_client: self.per_client.clone(),
        })
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut map = self.per_client.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// Serve `app` on `listener` within `limits` until `shutdown`; then stop accepting, let open requests finish (at
/// most [`SHUTDOWN_GRACE`]) and return.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    stats: Arc<ListenerStats>,
    tls: Option<Arc<Tls>>,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let admission = Admission::new(limits.max_connections, limits.max_connections_per_client);
    let graceful = GracefulShutdown::new();
    let mut refusals = RefusalLog::default();
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    accept_failed(&e).await;
                    continue;
                }
            },
        };
        match admission.admit(peer.ip()) {
            Ok(place) => {
                stats.open.fetch_add(1, Relaxed);
                let _ = stream.set_nodelay(true);
                let (app, limits, stats) = (app.clone(), limits.clone(), stats.clone());
                let (watcher, tls) = (graceful.watcher(), tls.clone());
                tokio::spawn(async move {
                    // An error here is the client's doing (reset, timeout, bad request, a failed handshake): hyper
                    // answered it if it could, and the connection is closed either way.
                    let served = match tls {
                        None => watcher.watch(connection(stream, peer, &app, &limits)).await,
                        // The handshake, like a request header, must be done within the header-read timeout.
                        Some(tls) => match tokio::time::timeout(
                            limits.header_read_timeout,
                            tls.acceptor().accept(stream),
                        )
                        .await
                        {
                            Ok(Ok(s)) => watcher.watch(connection(s, peer, &app, &limits)).await,
                            Ok(Err(e)) => {
                                tracing::debug!(error = %e, "TLS handshake failed.");
                                Ok(())
                            }
                            Err(_) => Ok(()),
                        },
                    };
                    if let Err(e) = served {
                        tracing::debug!(error = %e, "HTTP connection ended with an error.");
                    }
                    drop(place);
                    stats.open.fetch_sub(1, Relaxed);
                });
            }
            Err(why) => refuse(stream, peer, why, &stats, &mut refusals),
        }
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("HTTP connections still open after {SHUTDOWN_GRACE:?}; closing them.");
    }
    Ok(())
}

/// One connection's future: hyper's HTTP/1 with the limits, the router behind a request-body timeout.
fn connection<S: Io>(stream: S, peer: SocketAddr, app: &Router, limits: &Limits) -> Connection<S> {
    let io = TokioIo::new(Watched::new(stream, limits.idle_timeout));
    // The peer goes with each request (`ConnectInfo`): sign-ins are counted per client address.
    let app = AddExtension::new(app.clone(), ConnectInfo(peer));
    let service = RequestBodyTimeout::new(app, limits.idle_timeout);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_header_size(limits.max_header_bytes)
        .max_buf_size(limits.max_header_bytes.max(MIN_BUF));
    builder.serve_connection(io, TowerToHyperService::new(service))
}

type Connection<S> = hyper::server::conn::http1::Connection<
    TokioIo<Watched<S>>,
    TowerToHyperService<RequestBodyTimeout<AddExtension<Router, ConnectInfo<SocketAddr>>>>,
>;

/// A connection's byte stream: plain TCP, or TLS over it.
trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for S {}

/// hyper's smallest read buffer.
const MIN_BUF: usize = 8192;

/// Answer `503` without reading the request and close. Best effort: the socket is new, so its send buffer is empty
/// and the short answer fits; a client that cannot take it just sees the close.
fn refuse(
    stream: TcpStream,
    peer: SocketAddr,
    why: Refusal,
    stats: &ListenerStats,
    log: &mut RefusalLog,
) {
    const ANSWER: &[u8] =
        b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\nretry-after: 5\r\n\
        connection: close\r\ncontent-length: 37\r\n\r\ntoo many connections; try again later\n";
    let _ = stream.try_write(ANSWER);
    let counter = match why {
        Refusal::Total => &stats.refused_total,
        Refusal::PerClient => &stats.refused_per_client,
    };
    counter.fetch_add(1, Relaxed);
    log.refused(peer, why);
}

/// Logs refused connections at most once every 10 s, with how many there were.
#[derive(Default)]
struct RefusalLog {
    last: Option<Instant>,
    since: u64,
}

impl RefusalLog {
    fn refused(&mut self, peer: SocketAddr, why: Refusal) {
        self.since += 1;
        if self
            .last
            .is_some_and(|t| t.elapsed() < Duration::from_secs(10))
        {
            return;
        }
        let limit = match why {
            Refusal::Total => "http.max_connections",
            Refusal::PerClient => "http.max_connections_per_client",
        };
        tracing::warn!(client = %peer.ip(), refused = self.since, limit,
            "HTTP connections refused: the connection limit is reached.");
        self.last = Some(Instant::now());
        self.since = 0;
    }
}

/// Accepting failed (most often: no descriptor left). Wait a little rather than spin, as `axum::serve` does.
async fn accept_failed(e: &io::Error) {
    tracing::warn!(error = %e, "Accepting an HTTP connection failed; retrying in 100 ms.");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// A TCP stream whose writes fail when one stays blocked (the client stopped reading) for `limit`.
struct Watched<S> {
    inner: S,
    limit: Duration,
    blocked: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S> Watched<S> {
    fn new(inner: S, limit: Duration) -> Self {
        Self {
            inner,
            limit,
            blocked: None,
        }
    }

    /// After a write came back pending: fail once it has been blocked for `limit`.
    fn check_blocked(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let limit = self.limit;
        let sleep = self
            .blocked
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client stopped reading",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, buf) {
            Poll::Pending => self.check_blocked(cx),
            done => {
                self.blocked = None;
                done
            }
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write_vectored(cx, bufs) {
            Poll::Pending => self.check_blocked(cx),
            done => {
                self.blocked = None;
                done
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admission_counts_in_total_and_per_address() {
        let a = Admission::new(3, 2);
        let one: IpAddr = [10, 0, 0, 1].into();
        let two: IpAddr = [10, 0, 0, 2].into();
        let x = a.admit(one).unwrap();
        let _y = a.admit(one).unwrap();
        assert_eq!(a.admit(one).err(), Some(Refusal::PerClient));
        let _z = a.admit(two).unwrap();
        assert_eq!(a.admit(two).err(), Some(Refusal::Total));
        drop(x);
        assert!(a.admit(one).is_ok());
    }
}
