//! HTTP/1.1 event streams written without hyper's per-connection buffers.
//!
//! A hub spends most of its connections holding an idle event stream. hyper keeps an 8 KiB
//! read buffer and an 8 KiB header write buffer for every HTTP/1 connection for its whole
//! life, which is most of an idle subscriber's cost (see BENCHMARKS.md, hub load). So a new
//! connection starts here:
//!
//! ```text
//! socket ──read head──> httparse ──a stream request?──yes──> Router ──> response written here:
//!                                      │                                head, then the body's
//!                                      no (anything else, or unparsable)  frames straight to the
//!                                      v                                  socket (chunked, or with
//!                         hyper (auto: HTTP/1.1 or h2c),                  a length when known)
//!                         fed the bytes already read
//! ```
//!
//! Only requests whose whole handling is simple take this path: HTTP/1.1 with no
//! `Upgrade`/`Expect`/`Transfer-Encoding`/`Connection: close`, and either a bodiless `GET` on
//! `/.well-known/mercure` or `/v1/streams/{id}`, or a `POST` on `/v1/chat/completions` with a
//! plain `Content-Length` body of at most [`MAX_BODY`], read whole before the router is called.
//! Everything else, including every malformed request, goes to hyper together with the
//! bytes read so far, so hyper's behaviour (errors, keep-alive, h2c, upgrades) is unchanged.
//! After a stream ends the connection is kept alive and the next request goes through the
//! same choice. While a stream is open the socket is still read (into a stack buffer), so a
//! client that goes away is noticed at once and bytes it pipelined are kept for later.

use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request, Version};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio_util::sync::CancellationToken;

use crate::http::CHAT_COMPLETIONS_PATH;
use crate::topic::{MERCURE_PATH, RELAY_STREAMS};

mod write;

use write::{Reuse, WriteBody, split, unless_stalled};

/// A request head larger than this goes to hyper, which has the limits and the error answers.
const MAX_HEAD: usize = 16 * 1024;
/// Header lines parsed here; more goes to hyper.
const MAX_HEADERS: usize = 64;
/// Bytes a client may pipeline behind an open stream before this path stops reading them
/// (and with it, notices a disconnect only on the next write).
const MAX_PIPELINED: usize = 16 * 1024;
/// A client that takes nothing from a full socket for this long is disconnected. Without it a
/// client that stopped reading would hold its connection (and the last frame) forever, after
/// the hub has already cut its subscription off for falling behind.
const WRITE_STALL: Duration = Duration::from_secs(60);

/// How long the last write of a body that has ended may still take. A subscriber cut off for
/// falling behind ends its stream while its socket is full; without this it would hold the
/// connection (and the chunk) for the whole [`WRITE_STALL`].
const END_GRACE: Duration = Duration::from_secs(2);
/// A request body served here at most (a completion request); a larger one goes to hyper, and
/// the handler's own limit answers it.
const MAX_BODY: usize = 1 << 20;

/// How a connection left this path.
pub enum Outcome {
    /// The connection is finished (closed by either side, timed out, or shut down).
    Closed,
    /// A request this path does not serve: hyper takes over the connection, starting with
    /// these bytes already read (see [`Prefixed`]).
    Handoff(Vec<u8>),
}

/// Serves stream requests on a fresh HTTP/1 connection until one is not a stream request.
///
/// `header_timeout` bounds the wait for each request head; `shutdown` ends the wait for one.
///
/// Memory: this future is most of an idle subscriber's connection task, for the stream's
/// whole life, and it is as large as its largest await, not its idle one. So `io` is
/// borrowed (the caller holds it once), the wait for a head (two timers) and the router run
/// boxed while they last, and the response is split before its body is written
/// (`server::tests::an_idle_stream_connection_stays_small` holds the size).
#[expect(
    clippy::manual_async_fn,
    reason = "an `async fn` keeps a second copy of its arguments in its future"
)]
pub fn serve<'a, IO>(
    io: &'a mut IO,
    app: &'a Router,
    header_timeout: Duration,
    shutdown: &'a CancellationToken,
) -> impl Future<Output = Outcome> + 'a
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    async move {
        let mut pending = Vec::new();
        loop {
            let req = match Box::pin(next_head(io, &mut pending, header_timeout, shutdown)).await {
                // Out of its box here: a box emptied by a move is freed only at the end of its
                // scope, which would keep it for the stream's whole life.
                Some(Head::Stream(req)) => *req,
                Some(Head::Other) => return Outcome::Handoff(pending),
                Some(Head::Closed) | None => return Outcome::Closed,
            };
            // Boxed: the router's future is only alive while the handler runs, so it should not
            // size the connection for the stream's whole life.
            let res = match Box::pin(tower::ServiceExt::oneshot(app.clone(), req)).await {
                Ok(res) => res,
                Err(never) => match never {},
            };
            let (head, body) = split(res);
            let written = WriteBody::new(io, head, body, &mut pending).await;
            match written {
                Ok(Reuse::Yes) => {}
                Ok(Reuse::No) => {
                    // A clean end (TLS close_notify); an error here only means the client is gone.
                    let _ = Box::pin(unless_stalled(io.shutdown(), WRITE_STALL)).await;
                    return Outcome::Closed;
                }
                Err(err) => {
                    tracing::debug!(error = %err, "stream connection ended");
                    return Outcome::Closed;
                }
            }
        }
    }
}

/// Waits for the next request head: `None` when the wait timed out or shutdown began.
async fn next_head<IO: AsyncRead + Unpin>(
    io: &mut IO,
    pending: &mut Vec<u8>,
    header_timeout: Duration,
    shutdown: &CancellationToken,
) -> Option<Head> {
    let head = tokio::select! {
        // Checked first: a request already buffered is not served once shutdown began.
        biased;
        _ = shutdown.cancelled() => return None,
        head = tokio::time::timeout(header_timeout, read_head(io, pending)) => head,
    };
    match head {
        Err(_) => None,
        Ok(Err(err)) => {
            tracing::debug!(error = %err, "connection read failed");
            None
        }
        Ok(Ok(head)) => Some(head),
    }
}

/// What reading a request head produced.
enum Head {
    /// The client closed the connection between requests.
    Closed,
    /// A stream request, taken from the buffer.
    Stream(Box<Request<Body>>),
    /// Anything else; the bytes stay in the buffer for hyper.
    Other,
}

/// Reads until `buf` holds a whole request head (and the body it announces, for a request
/// served here), then decides whether it is served here.
async fn read_head<IO: AsyncRead + Unpin>(io: &mut IO, buf: &mut Vec<u8>) -> io::Result<Head> {
    loop {
        if !buf.is_empty() {
            match parse_head(buf) {
                Parsed::Stream(mut req, head, body) if buf.len() >= head + body => {
                    if body > 0 {
                        *req.body_mut() = Body::from(buf[head..head + body].to_vec());
                    }
                    buf.drain(..head + body);
                    if buf.is_empty() {
                        // Release the head's buffer: an idle stream holds nothing here.
                        *buf = Vec::new();
                    }
                    return Ok(Head::Stream(req));
                }
                // The head is here, the body still coming.
                Parsed::Stream(..) => {}
                Parsed::Other => return Ok(Head::Other),
                Parsed::Partial if buf.len() >= MAX_HEAD => return Ok(Head::Other),
                Parsed::Partial => {}
            }
        }
        if buf.capacity() - buf.len() < 512 {
            buf.reserve(buf.len().max(1024));
        }
        if io.read_buf(buf).await? == 0 {
            // A half-sent head is hyper's to answer (it says why); nothing at all is a close.
            return Ok(if buf.is_empty() {
                Head::Closed
            } else {
                Head::Other
            });
        }
    }
}

enum Parsed {
    /// A request served here: the request, its head's length and its body's length.
    Stream(Box<Request<Body>>, usize, usize),
    Partial,
    Other,
}

fn parse_head(buf: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    let len = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Other,
    };
    let (Some(method), Some(path), Some(1)) = (parsed.method, parsed.path, parsed.version) else {
        return Parsed::Other;
    };
    let method = match method {
        "GET" if is_stream_path(path) => Method::GET,
        "POST" if is_completions_path(path) => Method::POST,
        _ => return Parsed::Other,
    };
    let mut map = HeaderMap::with_capacity(parsed.headers.len());
    let mut body = None;
    for h in parsed.headers.iter() {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(h.name.as_bytes()),
            HeaderValue::from_bytes(h.value),
        ) else {
            return Parsed::Other;
        };
        if name == header::CONTENT_LENGTH {
            // One plain decimal length, small enough to hold; anything else is hyper's.
            let length = std::str::from_utf8(h.value)
                .ok()
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<usize>().ok())
                .filter(|n| *n <= MAX_BODY);
            match (body, length) {
                (None, Some(n)) => body = Some(n),
                _ => return Parsed::Other,
            }
        } else if !plain_request_header(&name, &value) {
            return Parsed::Other;
        }
        map.append(name, value);
    }
    let body = body.unwrap_or(0);
    if method == Method::GET && body > 0 {
        return Parsed::Other;
    }
    let Ok(uri) = path.parse::<http::Uri>() else {
        return Parsed::Other;
    };
    let mut req = Request::new(Body::empty());
    *req.method_mut() = method;
    *req.uri_mut() = uri;
    *req.version_mut() = Version::HTTP_11;
    *req.headers_mut() = map;
    Parsed::Stream(Box::new(req), len, body)
}

/// The relay's endpoint: a `POST` whose answer is usually a long-lived event stream.
fn is_completions_path(target: &str) -> bool {
    target.split_once('?').map_or(target, |(p, _)| p) == CHAT_COMPLETIONS_PATH
}

/// The endpoints that answer with long-lived event streams.
fn is_stream_path(target: &str) -> bool {
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    path == MERCURE_PATH
        || path
            .strip_prefix(RELAY_STREAMS)
            .is_some_and(|id| !id.is_empty() && !id.contains('/'))
}

/// Whether this header (other than `Content-Length`) leaves the request one this path serves:
/// no chunked body, no upgrade, no `100-continue`, and a connection that stays open.
fn plain_request_header(name: &HeaderName, value: &HeaderValue) -> bool {
    if name == header::CONNECTION {
        let v = value.as_bytes();
        return !(contains_token(v, b"close") || contains_token(v, b"upgrade"));
    }
    !(name == header::TRANSFER_ENCODING || name == header::UPGRADE || name == header::EXPECT)
}

fn contains_token(list: &[u8], token: &[u8]) -> bool {
    list.split(|b| *b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

/// A connection whose first bytes were already read: they are read again first.
pub struct Prefixed<IO> {
    prefix: Bytes,
    io: IO,
}

impl<IO> Prefixed<IO> {
    /// `io`, whose next reads return `prefix` first.
    pub fn new(prefix: Vec<u8>, io: IO) -> Self {
        Prefixed {
            prefix: Bytes::from(prefix),
            io,
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Prefixed<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            let chunk = self.prefix.split_to(n);
            buf.put_slice(&chunk);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Prefixed<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_stream_endpoints_take_this_path() {
        assert!(is_stream_path("/.well-known/mercure"));
        assert!(is_stream_path("/.well-known/mercure?topic=/a&topic=/b"));
        assert!(is_stream_path("/v1/streams/strm_1"));
        assert!(is_stream_path("/v1/streams/strm_1?last_event_id=x"));
        assert!(!is_stream_path("/.well-known/mercure/subscriptions"));
        assert!(!is_stream_path("/v1/streams/"));
        assert!(!is_stream_path("/v1/streams/strm_1/cancel"));
        assert!(!is_stream_path("/healthz"));
        assert!(!is_stream_path("*"));
    }

    fn classify(head: &str) -> &'static str {
        match parse_head(head.as_bytes()) {
            Parsed::Stream(..) => "stream",
            Parsed::Partial => "partial",
            Parsed::Other => "other",
        }
    }

    #[test]
    fn only_plain_bodiless_gets_are_served_here() {
        let get = "GET /.well-known/mercure?topic=x HTTP/1.1\r\nHost: h\r\n";
        assert_eq!(classify(&format!("{get}\r\n")), "stream");
        assert_eq!(classify(get), "partial");
        assert_eq!(
            classify(&format!("{get}Content-Length: 0\r\n\r\n")),
            "stream"
        );
        assert_eq!(
            classify(&format!("{get}Connection: keep-alive\r\n\r\n")),
            "stream"
        );
        for extra in [
            "Content-Length: 5",
            "Transfer-Encoding: chunked",
            "Upgrade: h2c",
            "Connection: Upgrade, HTTP2-Settings",
            "Connection: close",
            "Expect: 100-continue",
        ] {
            assert_eq!(
                classify(&format!("{get}{extra}\r\n\r\n")),
                "other",
                "{extra}"
            );
        }
        assert_eq!(
            classify("GET /.well-known/mercure HTTP/1.0\r\n\r\n"),
            "other"
        );
        assert_eq!(
            classify("POST /.well-known/mercure HTTP/1.1\r\n\r\n"),
            "other"
        );
        assert_eq!(
            classify("HEAD /.well-known/mercure HTTP/1.1\r\n\r\n"),
            "other"
        );
        assert_eq!(classify("GET /healthz HTTP/1.1\r\n\r\n"), "other");
        // The HTTP/2 preface is not HTTP/1: hyper recognises it.
        assert_eq!(classify("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), "other");
        assert_eq!(
            classify("GET /.well-known/mercure HTTP/1.1\r\nbad\r\n\r\n"),
            "other"
        );
    }

    #[test]
    fn a_parsed_head_keeps_its_headers_and_target() {
        let head = "GET /.well-known/mercure?topic=%2Fa HTTP/1.1\r\nHost: hub\r\nLast-Event-ID: 42\r\n\r\nGET /next";
        let Parsed::Stream(req, len, 0) = parse_head(head.as_bytes()) else {
            panic!("not a stream request");
        };
        assert_eq!(&head[len..], "GET /next");
        assert_eq!(req.uri().path(), "/.well-known/mercure");
        assert_eq!(req.uri().query(), Some("topic=%2Fa"));
        assert_eq!(req.version(), Version::HTTP_11);
        assert_eq!(req.headers()["host"], "hub");
        assert_eq!(req.headers()["last-event-id"], "42");
    }

    /// A router whose stream endpoint never ends and never waits.
    fn flooding_app() -> Router {
        let flood = || async {
            let chunks = futures_util::stream::repeat_with(|| {
                Ok::<_, std::convert::Infallible>(Bytes::from_static(&[b'x'; 1024]))
            });
            Body::from_stream(chunks)
        };
        Router::new().route("/.well-known/mercure", axum::routing::get(flood))
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_stops_reading_is_disconnected() {
        let (mut client, server) = tokio::io::duplex(8 * 1024);
        client
            .write_all(b"GET /.well-known/mercure?topic=x HTTP/1.1\r\nHost: h\r\n\r\n")
            .await
            .unwrap();
        let shutdown = CancellationToken::new();
        let app = flooding_app();
        // The client never reads: the pipe fills, and with paused time the stall timer is all
        // that can end this.
        let mut server = server;
        let outcome = serve(&mut server, &app, Duration::from_secs(30), &shutdown).await;
        assert!(matches!(outcome, Outcome::Closed));
        drop(client);
    }

    #[tokio::test]
    async fn a_handed_off_connection_reads_the_prefix_first() {
        let (mut client, server) = tokio::io::duplex(64);
        client.write_all(b" world").await.unwrap();
        drop(client);
        let mut io = Prefixed::new(b"hello".to_vec(), server);
        let mut all = String::new();
        io.read_to_string(&mut all).await.unwrap();
        assert_eq!(all, "hello world");
    }
}
