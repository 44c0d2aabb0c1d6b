//! Accepting connections: HTTP/1.1 and HTTP/2 (prior knowledge on plain sockets, ALPN over
//! TLS), the connection cap, and graceful shutdown bounded by a grace period.
//!
//! Backpressure: at most `max_connections` connections are served; one beyond that gets a
//! `503` naming the limit and is closed within [`REFUSED_LINGER`] whatever it does, so the
//! process never runs out of file descriptors in the middle of serving existing clients.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use http::{Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::h1;
use super::refusals::Explained;
use crate::hub::Metrics;

/// How a TLS handshake may take before the connection is dropped.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a connection beyond the cap is kept, to read its request and answer the 503.
const REFUSED_LINGER: Duration = Duration::from_secs(2);

/// How long a client may take to send a request head (hyper's default, applied on both paths).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Streams one HTTP/2 connection may carry at once: enough for a browser page with many
/// subscriptions, which is the point of HTTP/2 here.
const H2_MAX_STREAMS: u32 = 1024;

/// Connection-level settings.
#[derive(Clone)]
pub struct ServeOptions {
    /// TLS configuration; plain sockets when `None`.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Connections served at once; more are answered 503.
    pub max_connections: Arc<ConnectionCap>,
    /// How long connections get to finish after shutdown begins.
    pub grace: Duration,
}

/// The bound on connections served at once (`--max-connections`), which a reload may change:
/// raising it admits more at once; lowering it refuses new connections until enough end, and
/// closes none.
#[derive(Debug)]
pub struct ConnectionCap {
    /// The bound.
    max: AtomicUsize,
    /// Connections holding a slot now.
    open: AtomicUsize,
}

/// A connection's place under the cap, given back when dropped.
struct CapSlot(Arc<ConnectionCap>);

impl Drop for CapSlot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

impl ConnectionCap {
    /// A cap of `max` connections (at least one).
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(ConnectionCap {
            max: AtomicUsize::new(max.max(1)),
            open: AtomicUsize::new(0),
        })
    }

    /// The bound now.
    pub fn max(&self) -> usize {
        self.max.load(Ordering::Relaxed)
    }

    /// Changes the bound for connections accepted from now on.
    pub fn set_max(&self, max: usize) {
        self.max.store(max.max(1), Ordering::Relaxed);
    }

    /// A slot, or `None` at the cap.
    fn try_take(self: &Arc<Self>) -> Option<CapSlot> {
        let before = self.open.fetch_add(1, Ordering::AcqRel);
        let slot = CapSlot(self.clone());
        (before < self.max()).then_some(slot)
    }
}

/// Errors loading TLS material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: io::Error,
    },
    /// The certificate file holds no certificate.
    #[error("no PEM certificate found in {0}")]
    NoCertificate(String),
    /// The key file holds no private key.
    #[error("no PEM private key (PKCS#8, PKCS#1 or SEC1) found in {0}")]
    NoKey(String),
    /// rustls refused the pair.
    #[error("invalid certificate or key: {0}")]
    Rustls(#[from] rustls::Error),
}

/// How many connections the kernel may hold for the hub before it accepts them; the kernel caps
/// it at `net.core.somaxconn` (4096 by default on Linux, which the README's sysctl settings
/// raise), so the operator's setting decides. `TcpListener::bind` listens with std's 128:
/// a burst of clients larger than that (every browser reconnecting after a redeploy, a batch of
/// agents starting streams) overflows the queue, and each overflowed connect is retried by the
/// client's kernel only after 1 s, then 3 s, 7 s: a second of stall for work the hub could have
/// taken at once (found by the relay bench, BENCHMARKS.md, typewriter relay, round two).
pub const LISTEN_BACKLOG: u32 = 65535;

/// Binds the hub's listener with [`LISTEN_BACKLOG`] (and `SO_REUSEADDR`, as
/// `TcpListener::bind` does, so a restarted hub does not wait for old connections' TIME_WAIT).
///
/// # Errors
/// The address is taken, not local, or not permitted.
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Builds a rustls server configuration that offers HTTP/2 and HTTP/1.1 by ALPN.
///
/// # Errors
/// Names the file that could not be read or holds no usable PEM item.
pub fn load_tls(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let read = |p: &Path| {
        std::fs::read(p).map_err(|source| TlsError::Read {
            path: p.display().to_string(),
            source,
        })
    };
    let cert_pem = read(cert)?;
    let key_pem = read(key)?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(cert.display().to_string()));
    }
    let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .ok()
        .flatten()
        .ok_or_else(|| TlsError::NoKey(key.display().to_string()))?;
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves `app` on `listener` until `shutdown` fires, then waits for open connections up to
/// the grace period.
///
/// # Errors
/// Only an unrecoverable listener failure; per-connection errors are logged.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    options: ServeOptions,
    shutdown: CancellationToken,
    metrics: Arc<Metrics>,
) -> io::Result<()> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(H2_MAX_STREAMS)
        .keep_alive_interval(Some(Duration::from_secs(30)));
    let shared = Arc::new(Shared {
        app,
        builder,
        tls: options.tls.clone().map(TlsAcceptor::from),
        metrics,
        shutdown: shutdown.clone(),
    });
    let slots = options.max_connections.clone();
    let graceful = GracefulShutdown::new();
    // Every connection task, so that those still running when the grace period ends can be
    // closed rather than left to whoever owns the runtime.
    let mut connections = JoinSet::new();

    loop {
        let (socket, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            // Reaps finished connections as they end, so the set holds only live ones.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(err) => {
                    // Out of descriptors or a transient accept error: back off instead of spinning.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = socket.set_nodelay(true);
        let accepted = Accepted {
            socket,
            peer,
            permit: slots.try_take(),
            max: slots.max(),
            watcher: graceful.watcher(),
        };
        connections.spawn(connection(shared.clone(), accepted));
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => tracing::info!("all connections closed"),
        _ = tokio::time::sleep(options.grace) => {
            tracing::warn!(
                grace = ?options.grace,
                connections = connections.len(),
                "grace period over; closing remaining connections"
            );
            connections.shutdown().await;
        }
    }
    Ok(())
}

/// What every connection shares: one reference count per connection instead of one per
/// field.
struct Shared {
    app: Router,
    builder: auto::Builder<TokioExecutor>,
    tls: Option<TlsAcceptor>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
}

/// A connection just accepted, with its place under the cap (`None` beyond it).
struct Accepted {
    socket: TcpStream,
    peer: SocketAddr,
    permit: Option<CapSlot>,
    /// The cap when it was accepted, for the refusal's message.
    max: usize,
    /// Held to the end, so graceful shutdown waits for the connection.
    watcher: Watcher,
}

/// One connection's task, from accept to close.
///
/// Memory: an idle subscriber is mostly this future (inside tokio's task) and its stream, for
/// hours, so this holds each thing once: the socket, the shared state by one `Arc`, and the
/// stream path ([`h1::serve`], borrowing the socket). What only some connections need (TLS,
/// hyper, a refusal) runs boxed, and hyper's service is made only when hyper takes over. See
/// BENCHMARKS.md, "Where the remaining memory of an idle subscriber is";
/// `tests::an_idle_stream_connection_stays_small` holds the size.
fn connection(shared: Arc<Shared>, accepted: Accepted) -> impl Future<Output = ()> + Send {
    let Accepted {
        mut socket,
        peer,
        permit,
        max,
        watcher,
    } = accepted;
    async move {
        shared.metrics.connections.fetch_add(1, Ordering::Relaxed);
        let _gauge = ConnectionGauge(&shared.metrics);
        // Beyond the cap: hyper answers every request with a 503 naming this limit.
        let refused = permit.is_none().then_some(max);
        if refused.is_some() {
            shared
                .metrics
                .connections_refused
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(client.addr = %peer, limit = max, "connection cap reached; answering 503");
        }
        let result = match (&shared.tls, refused) {
            // Boxed: the TLS state is large, and inline it would size every task.
            (Some(acceptor), _) => {
                let served = serve_tls(&shared, acceptor, socket, peer, watcher, refused);
                Box::pin(linger(refused, served)).await
            }
            (None, Some(_)) => {
                let io = h1::Prefixed::new(Vec::new(), socket);
                Box::pin(linger(
                    refused,
                    hand_off(&shared, io, peer, watcher, refused),
                ))
                .await
            }
            (None, None) => {
                match h1::serve(
                    &mut socket,
                    &shared.app,
                    HEADER_READ_TIMEOUT,
                    &shared.shutdown,
                )
                .await
                {
                    h1::Outcome::Closed => Ok(()),
                    h1::Outcome::Handoff(read) => {
                        let io = h1::Prefixed::new(read, socket);
                        Box::pin(hand_off(&shared, io, peer, watcher, None)).await
                    }
                }
            }
        };
        if let Err(err) = result {
            tracing::debug!(client.addr = %peer, error = %err, "connection ended with an error");
        }
        drop(permit);
    }
}

type ConnectionResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// `served`, bounded for a refused connection: hyper closes an HTTP/1.1 connection after the
/// 503 (`Connection: close`), but an HTTP/2 one would stay open, asking and being refused,
/// without holding a slot; and a client that sends nothing would hold a descriptor for the
/// whole header timeout. A refused connection gets [`REFUSED_LINGER`], whatever it does.
async fn linger(
    refused: Option<usize>,
    served: impl Future<Output = ConnectionResult>,
) -> ConnectionResult {
    match refused {
        Some(_) => tokio::time::timeout(REFUSED_LINGER, served)
            .await
            .unwrap_or(Ok(())),
        None => served.await,
    }
}

/// A TLS connection: the handshake, then HTTP/2 by hyper or HTTP/1.1 as on a plain socket.
async fn serve_tls(
    shared: &Shared,
    acceptor: &TlsAcceptor,
    socket: TcpStream,
    peer: SocketAddr,
    watcher: Watcher,
    refused: Option<usize>,
) -> ConnectionResult {
    let mut stream =
        match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(socket)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(err)) => {
                tracing::debug!(client.addr = %peer, error = %err, "TLS handshake failed");
                return Ok(());
            }
            Err(_) => {
                tracing::debug!(client.addr = %peer, "TLS handshake timed out");
                return Ok(());
            }
        };
    // HTTP/2 multiplexes its streams in one connection: hyper's. A refused connection goes
    // straight to hyper, whose every answer is the 503.
    let read = if refused.is_some() || stream.get_ref().1.alpn_protocol() == Some(b"h2") {
        Vec::new()
    } else {
        match h1::serve(
            &mut stream,
            &shared.app,
            HEADER_READ_TIMEOUT,
            &shared.shutdown,
        )
        .await
        {
            h1::Outcome::Closed => return Ok(()),
            h1::Outcome::Handoff(read) => read,
        }
    };
    let io = h1::Prefixed::new(read, stream);
    Box::pin(hand_off(shared, io, peer, watcher, refused)).await
}

/// Everything the stream path does not serve, through hyper (HTTP/1.1 or h2c), whose own
/// error answers get a body on the way out ([`Explained`]); every answer is the 503 when
/// `refused` (with the cap). `watcher` is held to the end, so graceful shutdown waits for it.
async fn hand_off<IO>(
    shared: &Shared,
    io: h1::Prefixed<IO>,
    peer: SocketAddr,
    watcher: Watcher,
    refused: Option<usize>,
) -> ConnectionResult
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let app = shared.app.clone();
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let app = app.clone();
        async move {
            if let Some(max) = refused {
                return Ok::<_, Infallible>(over_capacity(max));
            }
            let mut req = req.map(Body::new);
            // Who is asking, for the few answers given only to this machine.
            req.extensions_mut().insert(ConnectInfo(peer));
            tower::ServiceExt::oneshot(app, req).await
        }
    });
    let conn = shared
        .builder
        .serve_connection_with_upgrades(TokioIo::new(Explained::new(io)), service);
    watcher.watch(conn.into_owned()).await
}

/// Keeps the connection gauge right however the connection ends.
struct ConnectionGauge<'a>(&'a Metrics);

impl Drop for ConnectionGauge<'_> {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

fn over_capacity(max: usize) -> Response<Body> {
    Response::builder()
        .status(StatusCode::SERVICE_UNAVAILABLE)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .header(header::CONNECTION, "close")
        .header(header::RETRY_AFTER, "5")
        .body(Body::from(format!(
            "the hub is at its connection limit ({max} connections, --max-connections); retry later\n"
        )))
        .expect("static response is valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A burst of connects larger than std's backlog of 128 all complete while the hub has not
    /// accepted any of them yet; with `TcpListener::bind` the 130th and later wait for a SYN
    /// retry that never completes while nothing accepts, and this fails at its patience bound.
    #[tokio::test]
    async fn a_burst_of_connections_beyond_128_waits_in_the_backlog() {
        let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let connects = (0..300).map(|_| TcpStream::connect(addr));
        let all = futures_util::future::try_join_all(connects);
        let clients = tokio::time::timeout(Duration::from_secs(20), all)
            .await
            .expect("every connect completes without being accepted")
            .unwrap();
        assert_eq!(clients.len(), 300);
        drop(listener);
    }

    /// An idle subscriber's connection task is this future for the stream's whole life, and
    /// a future is as large as its largest await, so its size is paid per connection: this
    /// fails when something large (a timer, hyper's state or service, a second copy of the
    /// socket, the response's parts, an `async` write path) comes back inline. The bound: 408
    /// bytes and tokio 1.54's 104 bytes of task cell around it (header 32, scheduler 8, id 8,
    /// stage tag 8, trailer 48) keep the task, which tokio aligns to 128 bytes, at 512
    /// (heaptrack, release, 2026-12-05; it was 1,792 before the idle-memory work); one more
    /// 8-byte word would make it 640. This future is 384 bytes in a debug build.
    #[tokio::test]
    async fn an_idle_stream_connection_stays_small() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (socket, peer) = listener.accept().await.unwrap();
        let shared = Arc::new(Shared {
            app: Router::new(),
            builder: auto::Builder::new(TokioExecutor::new()),
            tls: None,
            metrics: Arc::default(),
            shutdown: CancellationToken::new(),
        });
        let graceful = GracefulShutdown::new();
        let accepted = Accepted {
            socket,
            peer,
            permit: ConnectionCap::new(1).try_take(),
            max: 1,
            watcher: graceful.watcher(),
        };
        let connection = connection(shared, accepted);
        let size = std::mem::size_of_val(&connection);
        assert!(size <= 408, "the connection future is {size} bytes");
    }
}
