//! Accepting connections: HTTP/1.1 only (no cleartext HTTP/2, whose links would lose the
//! client's authority), with caps on how many connections one client address and everyone
//! together may hold, and timeouts for slow headers and idle connections, so no outsider can
//! wear the service down by opening connections and sending nothing (see `docs/security.md`).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// The connection-level limits, from the configuration.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    pub max_connections_per_address: usize,
    /// A request's start line and headers must arrive within this.
    pub header_read_timeout: Duration,
    /// A connection with no request running and no byte moving for this long is closed.
    pub keepalive_timeout: Duration,
    pub max_header_bytes: usize,
    pub max_headers: usize,
}

/// Open connections, in total and per client address.
#[derive(Default)]
struct Census {
    total: usize,
    per_address: HashMap<IpAddr, usize>,
}

/// A connection's place in the census, given back when the connection ends.
struct Admission {
    census: Arc<Mutex<Census>>,
    address: IpAddr,
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut census = self.census.lock().expect("census lock");
        census.total -= 1;
        if let Some(count) = census.per_address.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                census.per_address.remove(&self.address);
            }
        }
        metrics::gauge!("once_open_connections").set(census.total as f64);
    }
}

fn admit(
    census: &Arc<Mutex<Census>>,
    address: IpAddr,
    limits: &ConnectionLimits,
) -> Option<Admission> {
    let mut guard = census.lock().expect("census lock");
    let from_address = guard.per_address.get(&address).copied().unwrap_or(0);
    if guard.total >= limits.max_connections || from_address >= limits.max_connections_per_address {
        return None;
    }
    guard.total += 1;
    *guard.per_address.entry(address).or_insert(0) += 1;
    metrics::gauge!("once_open_connections").set(guard.total as f64);
    drop(guard);
    Some(Admission {
        census: census.clone(),
        address,
    })
}

/// What the idle watchdog of one connection looks at.
#[derive(Default)]
struct Activity {
    /// Milliseconds since the connection opened, at the last byte read or written.
    last_io_ms: AtomicU64,
    /// Requests whose handler is running (a handler reading a slow body has its own limits).
    running: AtomicUsize,
}

/// The socket, noting when bytes move.
struct WatchedStream {
    inner: TcpStream,
    activity: Arc<Activity>,
    opened: tokio::time::Instant,
}

impl WatchedStream {
    fn touch(&self) {
        let elapsed = self.opened.elapsed().as_millis() as u64;
        self.activity.last_io_ms.store(elapsed, Ordering::Relaxed);
    }
}

impl AsyncRead for WatchedStream {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.touch();
        }
        result
    }
}

impl AsyncWrite for WatchedStream {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let result = std::pin::Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(result, Poll::Ready(Ok(written)) if written > 0) {
            self.touch();
        }
        result
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        buffers: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let result = std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, buffers);
        if matches!(result, Poll::Ready(Ok(written)) if written > 0) {
            self.touch();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Decrements the running count when a handler finishes (or is dropped).
struct Running(Arc<Activity>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Serves `app` on `listener` until `shutdown` turns true; then stops accepting, asks every
/// connection to finish its current request, and waits up to `grace` for them. With `tls`,
/// every connection is HTTPS; its handshake must finish within the header read timeout.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    mut shutdown: watch::Receiver<bool>,
    grace: Duration,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    let census = Arc::new(Mutex::new(Census::default()));
    let tracker = TaskTracker::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_headers(limits.max_headers)
        .max_header_size(limits.max_header_bytes)
        .keep_alive(true);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors (or a transient network error): back off instead of
                // spinning; connections that end free descriptors again.
                tracing::warn!(%error, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(admission) = admit(&census, peer.ip(), &limits) else {
            metrics::counter!("once_connections_refused_total").increment(1);
            tracing::debug!(peer = %peer.ip(), "connection refused: over the connection limit");
            drop(stream);
            continue;
        };
        // Responses go out as a header write and a body write; with Nagle's algorithm the body
        // of a small response waits for the client's delayed ACK (40 ms on Linux).
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
        let activity = Arc::new(Activity::default());
        let watched = WatchedStream {
            inner: stream,
            activity: activity.clone(),
            opened: tokio::time::Instant::now(),
        };
        let (app, http, shutdown) = (app.clone(), http.clone(), shutdown.clone());
        let keepalive = limits.keepalive_timeout;
        let handshake_timeout = limits.header_read_timeout;
        let tls = tls.clone();
        tracker.spawn(async move {
            let opened = watched.opened;
            match tls {
                None => {
                    serve_connection(
                        watched, activity, opened, peer, app, http, keepalive, shutdown,
                    )
                    .await
                }
                Some(acceptor) => {
                    match tokio::time::timeout(handshake_timeout, acceptor.accept(watched)).await {
                        Ok(Ok(stream)) => {
                            serve_connection(
                                stream, activity, opened, peer, app, http, keepalive, shutdown,
                            )
                            .await
                        }
                        Ok(Err(error)) => {
                            tracing::debug!(peer = %peer.ip(), %error, "TLS handshake failed")
                        }
                        Err(_) => {
                            tracing::debug!(peer = %peer.ip(), "TLS handshake timed out")
                        }
                    }
                }
            }
            drop(admission);
        });
    }
    tracker.close();
    if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
        tracing::warn!("shutdown grace period over; dropping the remaining connections");
    }
}

#[allow(clippy::too_many_arguments)]
async fn serve_connection<S>(
    stream: S,
    activity: Arc<Activity>,
    opened: tokio::time::Instant,
    peer: SocketAddr,
    app: Router,
    http: hyper::server::conn::http1::Builder,
    keepalive_timeout: Duration,
    mut shutdown: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(stream);
    let service_activity = activity.clone();
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        service_activity.running.fetch_add(1, Ordering::Relaxed);
        let running = Running(service_activity.clone());
        let app = app.clone();
        async move {
            let response = app.oneshot(request.map(axum::body::Body::new)).await;
            drop(running);
            Ok::<_, Infallible>(response.unwrap_or_else(|never| match never {}))
        }
    });
    let connection = http.serve_connection(io, service);
    tokio::pin!(connection);
    let check_every = (keepalive_timeout / 4).max(Duration::from_millis(100));
    let mut watchdog = tokio::time::interval(check_every);
    watchdog.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut shutting_down = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, "connection ended with an error");
                }
                return;
            }
            _ = watchdog.tick() => {
                let idle_for = opened.elapsed().saturating_sub(Duration::from_millis(
                    activity.last_io_ms.load(Ordering::Relaxed),
                ));
                if activity.running.load(Ordering::Relaxed) == 0 && idle_for >= keepalive_timeout {
                    // Idle keep-alive, or a reader that stopped taking a response: close.
                    tracing::debug!(peer = %peer.ip(), "closing an idle connection");
                    return;
                }
            }
            _ = shutdown.changed(), if !shutting_down => {
                shutting_down = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}
