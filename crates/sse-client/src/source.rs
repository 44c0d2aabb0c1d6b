//! The reconnecting stream: a state machine polled by the caller, with no
//! task of its own, so dropping it closes the connection at once.
//!
//! ```text
//!   Idle --send--> Connecting --200 event-stream--> Streaming --end/error--> Waiting --delay--> Idle
//!                      |  \--204 / 4xx / bad type--> Done               \--one-shot/fatal--> Done
//!                      \--network error / 5xx (if retried)--> Waiting
//! ```

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use reqwest::Url;
use sse_wire::{Frame, Parser};
use tokio::time::{Instant, Sleep};

use crate::builder::{Config, LAST_EVENT_ID};
use crate::response::{Body, Response, read_error};
use crate::{Builder, EndReason, Error, Item, Open, Reconnect, lean};

type SendFuture = Pin<Box<dyn Future<Output = Result<Response, Error>> + Send>>;
type ErrorFuture = Pin<Box<dyn Future<Output = Error> + Send>>;

/// What makes the connections.
#[derive(Debug)]
pub(crate) enum Client {
    /// reqwest (hyper): HTTP/1.1 and HTTP/2, TLS, proxies.
    Reqwest(reqwest::Client),
    /// The crate's own plain HTTP/1.1 connection ([`crate::Transport::LeanHttp1`]).
    Lean,
    /// None: a stream made from a response, which never reconnects.
    None,
}

/// The request repeated on every connection.
#[derive(Debug)]
pub(crate) struct Request {
    pub(crate) method: Method,
    pub(crate) url: Url,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Option<Bytes>,
}

/// A stream of events from one URL that reconnects like a browser's
/// `EventSource`, yielding `Result<`[`Item`]`, `[`Error`]`>`.
///
/// Made by a [`Builder`]. An `Err` is always the last item. The stream ends
/// (`None`) on `204 No Content`, after [`EventSource::close`], or when the
/// server ends the stream and [`Builder::reconnect_on_end`] is off;
/// [`EventSource::end_reason`] tells which.
///
/// # Examples
///
/// ```no_run
/// use futures_util::StreamExt;
/// use sse_client::{EventSource, Item};
///
/// # async fn example() -> Result<(), sse_client::Error> {
/// let mut events = EventSource::get("https://example.com/.well-known/mercure?topic=*").build()?;
/// while let Some(item) = events.next().await {
///     if let Item::Event(event) = item? {
///         println!("{}: {}", event.event_type(), event.data);
///     }
/// }
/// # Ok(())
/// # }
/// ```
pub struct EventSource {
    /// What makes the connections (reqwest's client holds its pool).
    client: Client,
    /// What to send on each connection.
    request: Request,
    /// Reconnection and parsing options.
    config: Config,
    /// Last event ID of finished connections; while streaming the parser
    /// holds the live value.
    last_event_id: String,
    /// The server's latest `retry:`, kept across connections.
    retry: Option<Duration>,
    /// Consecutive reconnection attempts since the last healthy connection.
    failures: u32,
    /// Items parsed from a chunk but not yet handed out: one read can hold
    /// many events.
    queue: VecDeque<Result<Item, Error>>,
    /// Where the connection stands.
    state: State,
    /// Set once the stream has ended.
    end: Option<EndReason>,
}

enum State {
    Idle,
    Connecting {
        response: SendFuture,
        /// Bounds the wait for the response head with the idle timeout.
        deadline: Option<Pin<Box<Sleep>>>,
    },
    ReadingError(ErrorFuture),
    Streaming(Box<Streaming>),
    Waiting(Pin<Box<Sleep>>),
    Done,
}

struct Streaming {
    body: Body,
    parser: Parser,
    /// Unparsed rest of the last chunk. A chunk can hold hundreds of events;
    /// parsing it in pieces of whole lines keeps the queue short, so the
    /// events handed out are still in cache and the allocator recycles
    /// their buffers.
    pending: Bytes,
    /// How much of `pending` was parsed. An offset rather than
    /// `Bytes::split_to`, which would cost two atomic operations a piece.
    offset: usize,
    opened_at: Instant,
    /// Idle timer, re-armed lazily: chunks only record `last_activity`, and
    /// the timer is pushed back when it fires early. Re-arming a timer per
    /// chunk would cost more than parsing a small chunk.
    idle: Option<(Pin<Box<Sleep>>, Duration)>,
    last_activity: Instant,
}

impl std::fmt::Debug for EventSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventSource")
            .field("method", &self.request.method)
            .field("url", &self.request.url.as_str())
            .field("last_event_id", &self.last_event_id())
            .field("retry", &self.retry)
            .field("failures", &self.failures)
            .field("end", &self.end)
            .finish_non_exhaustive()
    }
}

impl EventSource {
    /// Starts building a `GET` stream.
    pub fn get(url: impl AsRef<str>) -> Builder {
        Builder::new(Method::GET, url.as_ref())
    }

    /// Starts building a `POST` stream (give the body with
    /// [`Builder::body`]).
    pub fn post(url: impl AsRef<str>) -> Builder {
        Builder::new(Method::POST, url.as_ref())
    }

    /// Starts building a stream with any method (Mercure's `QUERY`, say).
    pub fn builder(method: Method, url: impl AsRef<str>) -> Builder {
        Builder::new(method, url.as_ref())
    }

    pub(crate) fn new(
        client: Client,
        request: Request,
        last_event_id: String,
        config: Config,
    ) -> Self {
        Self {
            client,
            request,
            config,
            last_event_id,
            retry: None,
            failures: 0,
            queue: VecDeque::new(),
            state: State::Idle,
            end: None,
        }
    }

    /// Reads an event stream out of a response obtained elsewhere (a
    /// request made through another layer, a canned response in a test).
    ///
    /// The same checks apply as to a connection the client makes itself: a
    /// status other than 200 or a content type other than
    /// `text/event-stream` ends the stream with an error, 204 ends it
    /// quietly. The stream cannot reconnect, not knowing the request: it
    /// ends with the response body, or with an error if the body fails.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures_util::StreamExt;
    /// use sse_client::{EventSource, Item};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let response = http::Response::builder()
    ///     .header("content-type", "text/event-stream")
    ///     .body("data: hello\n\n")
    ///     .unwrap();
    /// let mut events = EventSource::from_response(response.into());
    /// assert!(matches!(events.next().await, Some(Ok(Item::Open(_)))));
    /// let Some(Ok(Item::Event(event))) = events.next().await else { panic!() };
    /// assert_eq!(event.data, "hello");
    /// assert!(events.next().await.is_none());
    /// # }
    /// ```
    pub fn from_response(response: reqwest::Response) -> Self {
        let request = Request {
            method: Method::GET,
            url: response.url().clone(),
            headers: HeaderMap::new(),
            body: None,
        };
        let config = Config {
            reconnect_on_end: false,
            retry_network_errors: false,
            retry_server_errors: false,
            ..Config::default()
        };
        let mut source = Self::new(Client::None, request, String::new(), config);
        source.on_response(response.into());
        source
    }

    /// The last event ID in force: what `Last-Event-ID` will carry on the
    /// next connection (nothing is sent when empty).
    pub fn last_event_id(&self) -> &str {
        match &self.state {
            State::Streaming(s) => s.parser.last_event_id(),
            _ => &self.last_event_id,
        }
    }

    /// The reconnection delay the server asked for with `retry:`, if any.
    pub fn retry(&self) -> Option<Duration> {
        let live = match &self.state {
            State::Streaming(s) => s.parser.retry(),
            _ => None,
        };
        live.map(Duration::from_millis).or(self.retry)
    }

    /// Why the stream ended, once it has.
    pub fn end_reason(&self) -> Option<EndReason> {
        self.end
    }

    /// Closes the connection, or cancels a pending reconnection; the stream
    /// then yields `None`. Dropping the stream has the same effect.
    pub fn close(&mut self) {
        self.finish(EndReason::Closed);
        self.queue.clear();
    }

    /// Moves to `Done`, saving what the current parser learnt.
    fn finish(&mut self, reason: EndReason) {
        self.take_connection();
        self.state = State::Done;
        self.end.get_or_insert(reason);
    }

    /// Leaves the current state, keeping the parser's last event ID and
    /// `retry`, and returns how long the connection was open, if it was.
    fn take_connection(&mut self) -> Option<Duration> {
        match std::mem::replace(&mut self.state, State::Idle) {
            State::Streaming(s) => {
                s.parser.last_event_id().clone_into(&mut self.last_event_id);
                if let Some(ms) = s.parser.retry() {
                    self.retry = Some(Duration::from_millis(ms));
                }
                Some(s.opened_at.elapsed())
            }
            _ => None,
        }
    }

    fn fail(&mut self, error: Error) {
        self.finish(EndReason::Failed);
        self.queue.push_back(Err(error));
    }

    /// The connection is gone (`cause` = `None`: ended by the server);
    /// schedules the next attempt or gives up.
    fn reconnect(&mut self, cause: Option<Error>) {
        if let Some(open_for) = self.take_connection() {
            if open_for >= self.config.healthy_after {
                self.failures = 0;
            }
        }
        if let Some(max) = self.config.max_retries {
            if self.failures >= max {
                self.fail(Error::RetriesExhausted {
                    attempts: self.failures,
                    last: cause.map(Box::new),
                });
                return;
            }
        }
        let delay = self
            .config
            .backoff
            .delay(self.retry, self.failures, rand::random::<f64>());
        self.failures = self.failures.saturating_add(1);
        tracing::debug!(url = %self.request.url, attempt = self.failures, ?delay, "reconnecting");
        self.queue.push_back(Ok(Item::Reconnecting(Reconnect {
            attempt: self.failures,
            delay,
            cause,
        })));
        self.state = State::Waiting(Box::pin(tokio::time::sleep(delay)));
    }

    fn network_error(&mut self, error: Error) {
        if self.config.retry_network_errors {
            self.reconnect(Some(error));
        } else {
            self.fail(error);
        }
    }

    fn send(&mut self) {
        let r = &self.request;
        let mut headers = r.headers.clone();
        if !self.last_event_id.is_empty() {
            match HeaderValue::from_str(&self.last_event_id) {
                Ok(v) => {
                    headers.insert(LAST_EVENT_ID, v);
                }
                // The codec keeps CR, LF and NUL out of ids, but other
                // control characters cannot travel in a header either.
                Err(_) => {
                    tracing::warn!(id = ?self.last_event_id, "last event id is not a valid header value, not sent")
                }
            }
        }
        let response: SendFuture = match &self.client {
            Client::Reqwest(client) => {
                let mut req = client
                    .request(r.method.clone(), r.url.clone())
                    .headers(headers);
                if let Some(body) = &r.body {
                    req = req.body(body.clone());
                }
                Box::pin(
                    async move { req.send().await.map(Response::from).map_err(Error::Request) },
                )
            }
            Client::Lean => {
                let send =
                    lean::conn::send(r.method.clone(), r.url.clone(), headers, r.body.clone());
                Box::pin(async move { send.await.map(Response::from).map_err(Error::Http1) })
            }
            Client::None => {
                // Unreachable in practice: such streams are built with every
                // kind of reconnection off.
                self.finish(EndReason::StreamEnded);
                return;
            }
        };
        let deadline = self
            .config
            .idle_timeout
            .map(|t| Box::pin(tokio::time::sleep(t)));
        self.state = State::Connecting { response, deadline };
    }

    fn on_response(&mut self, response: Response) {
        let status = response.status;
        if status == StatusCode::NO_CONTENT {
            tracing::debug!(url = %self.request.url, "204 no content, not reconnecting");
            self.finish(EndReason::NoContent);
            return;
        }
        if status != StatusCode::OK {
            if status.is_server_error() && self.config.retry_server_errors {
                let error = Error::Status {
                    status,
                    headers: Box::new(response.headers),
                    body: String::new(),
                };
                self.reconnect(Some(error));
            } else {
                self.state = State::ReadingError(Box::pin(read_error(response)));
            }
            return;
        }
        let content_type = response.headers.get(CONTENT_TYPE);
        if !is_event_stream(content_type) {
            let content_type =
                content_type.map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
            self.fail(Error::ContentType { content_type });
            return;
        }
        let mut parser = Parser::new()
            .with_comments(self.config.comments)
            .with_last_event_id(self.last_event_id.as_str());
        if let Some(n) = self.config.max_event_bytes {
            parser = parser.with_max_event_bytes(n);
        }
        let now = Instant::now();
        self.queue.push_back(Ok(Item::Open(Box::new(Open {
            status,
            headers: response.headers,
            url: response.url,
            version: response.version,
        }))));
        let idle = self
            .config
            .idle_timeout
            .map(|t| (Box::pin(tokio::time::sleep(t)), t));
        self.state = State::Streaming(Box::new(Streaming {
            body: response.body,
            parser,
            pending: Bytes::new(),
            offset: 0,
            opened_at: now,
            idle,
            last_activity: now,
        }));
    }

    /// Parses one chunk into the queue. Returns a fatal parse error.
    fn feed(
        queue: &mut VecDeque<Result<Item, Error>>,
        parser: &mut Parser,
        chunk: &[u8],
    ) -> Option<Error> {
        for frame in parser.feed(chunk) {
            match frame {
                Ok(Frame::Event(e)) => queue.push_back(Ok(Item::Event(e))),
                Ok(Frame::Comment(c)) => queue.push_back(Ok(Item::Comment(c))),
                Ok(_) => {}
                Err(e) => return Some(Error::Parse(e)),
            }
        }
        None
    }
}

/// Bytes parsed at a time, plus the rest of the line they end in.
///
/// Each piece costs a parser `Feed` (its UTF-8 check and CR search restart,
/// its drop); each queued item costs a move in and out of the queue, and
/// the more are queued the colder they are when handed out. Measured with
/// callgrind on the throughput bench (BENCHMARKS.md, "Round two,
/// parse-and-deliver"), in instructions per run against the bare parser:
/// 256 bytes 1.37x, 512 1.27x, 768 1.21x, 1 KiB 1.17x, 2 KiB 1.21x,
/// 4 KiB 1.26x (whole 64 KiB chunks were 1.6x).
const PIECE: usize = 1024;

/// Queue slots kept between chunks: a burst of tiny events (a
/// piece of 1 KiB holds up to ~150 `data:` lines) must not leave a stream
/// holding kilobytes of empty queue for the rest of its life.
const QUEUE_KEEP: usize = 16;

/// The length of the next piece of `rest` to parse: [`PIECE`] bytes and the
/// rest of that line, so the parser need not copy a partial line. Any cut is
/// correct (the parser takes arbitrary chunks); this one is only cheap. A
/// forward search for LF alone is the cheapest: with CR-only line ends the
/// piece is simply the whole rest.
fn piece_len(rest: &[u8]) -> usize {
    if rest.len() <= PIECE {
        return rest.len();
    }
    memchr::memchr(b'\n', &rest[PIECE..]).map_or(rest.len(), |i| PIECE + i + 1)
}

/// Errors that would come again on a retry (a bad request, a redirect
/// loop): they end the stream even when network errors are retried.
fn is_fatal(e: &Error) -> bool {
    match e {
        Error::Request(e) => e.is_builder() || e.is_redirect(),
        Error::Http1(e) => e.is_fatal(),
        _ => false,
    }
}

/// `text/event-stream`, in any case, with any parameters (`charset=utf-8`).
fn is_event_stream(value: Option<&HeaderValue>) -> bool {
    let Some(value) = value.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("text/event-stream")
}

impl Stream for EventSource {
    type Item = Result<Item, Error>;

    #[inline]
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        // The hot path, one queued item, stays small; the state machine
        // lives in its own function.
        match this.queue.pop_front() {
            Some(item) => Poll::Ready(Some(item)),
            None => this.advance(cx),
        }
    }
}

impl EventSource {
    /// Drives the connection until an item is queued or nothing can move.
    #[inline(never)]
    fn advance(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Item, Error>>> {
        let this = self;
        loop {
            if let Some(item) = this.queue.pop_front() {
                return Poll::Ready(Some(item));
            }
            match &mut this.state {
                State::Done => return Poll::Ready(None),
                State::Idle => this.send(),
                State::Waiting(sleep) => {
                    ready!(sleep.as_mut().poll(cx));
                    this.state = State::Idle;
                }
                State::Connecting { response, deadline } => match response.as_mut().poll(cx) {
                    Poll::Ready(Ok(r)) => this.on_response(r),
                    Poll::Ready(Err(e)) if is_fatal(&e) => this.fail(e),
                    Poll::Ready(Err(e)) => this.network_error(e),
                    Poll::Pending => {
                        let timed_out = deadline
                            .as_mut()
                            .is_some_and(|d| d.as_mut().poll(cx).is_ready());
                        if !timed_out {
                            return Poll::Pending;
                        }
                        let t = this.config.idle_timeout.unwrap_or_default();
                        this.network_error(Error::IdleTimeout(t));
                    }
                },
                State::ReadingError(read) => {
                    let error = ready!(read.as_mut().poll(cx));
                    this.fail(error);
                }
                State::Streaming(s) if !s.pending.is_empty() => {
                    let rest = &s.pending[s.offset..];
                    let n = piece_len(rest);
                    let error = Self::feed(&mut this.queue, &mut s.parser, &rest[..n]);
                    s.offset += n;
                    if s.offset == s.pending.len() {
                        // A parsed chunk must not pin the read buffer it was
                        // cut from while the connection idles (+8 KiB per
                        // HTTP/1.1 client, see benches/idle_memory.rs).
                        s.pending = Bytes::new();
                        s.offset = 0;
                    }
                    if let Some(e) = error {
                        this.fail(e);
                    }
                }
                State::Streaming(s) => {
                    // The queue is empty here, between chunks.
                    if this.queue.capacity() > QUEUE_KEEP {
                        this.queue.shrink_to(QUEUE_KEEP);
                    }
                    match s.body.poll_chunk(cx) {
                        Poll::Ready(Some(Ok(chunk))) => {
                            if s.idle.is_some() {
                                s.last_activity = Instant::now();
                            }
                            s.pending = chunk;
                            s.offset = 0;
                        }
                        Poll::Ready(Some(Err(e))) => this.network_error(e),
                        Poll::Ready(None) => {
                            if this.config.reconnect_on_end {
                                this.reconnect(None);
                            } else {
                                this.finish(EndReason::StreamEnded);
                            }
                        }
                        Poll::Pending => {
                            let Some((sleep, timeout)) = &mut s.idle else {
                                return Poll::Pending;
                            };
                            if sleep.as_mut().poll(cx).is_pending() {
                                return Poll::Pending;
                            }
                            let due = s.last_activity + *timeout;
                            if due > Instant::now() {
                                sleep.as_mut().reset(due);
                                continue;
                            }
                            let t = *timeout;
                            this.network_error(Error::IdleTimeout(t));
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(mut rest: &[u8]) -> Vec<&[u8]> {
        let mut out = Vec::new();
        while !rest.is_empty() {
            let (piece, tail) = rest.split_at(piece_len(rest));
            out.push(piece);
            rest = tail;
        }
        out
    }

    #[test]
    fn pieces_end_at_line_ends_and_cover_the_chunk() {
        let chunk = "data: 0123456789abcdef0123456789\n".repeat(1000);
        let pieces = pieces(chunk.as_bytes());
        assert!(pieces.len() > 1);
        for p in &pieces {
            assert!(p.len() <= PIECE + 33);
            assert!(p.ends_with(b"\n"));
        }
        assert_eq!(pieces.concat(), chunk.as_bytes());
    }

    #[test]
    fn without_a_line_feed_the_rest_is_one_piece() {
        let long = format!("data: {}\r\ndata: b\n", "x".repeat(3 * PIECE));
        let got = pieces(long.as_bytes());
        assert_eq!(got.len(), 2);
        assert!(got[0].ends_with(b"\r\n"));
        let cr_only = "data: a\r".repeat(200);
        assert_eq!(piece_len(cr_only.as_bytes()), cr_only.len());
    }

    #[tokio::test]
    async fn a_burst_of_tiny_events_leaves_no_large_queue() {
        use futures_util::StreamExt;
        let body = "data:\n\n".repeat(1000);
        let response = http::Response::builder()
            .header("content-type", "text/event-stream")
            .body(body)
            .unwrap();
        let mut source = EventSource::from_response(response.into());
        let mut events = 0;
        let mut most_queued = 0;
        while let Some(item) = source.next().await {
            most_queued = most_queued.max(source.queue.len());
            if let Item::Event(_) = item.unwrap() {
                events += 1;
            }
        }
        assert_eq!(events, 1000);
        // One piece queued many events, and the room was given back before
        // the next read.
        assert!(most_queued > QUEUE_KEEP, "queued at most {most_queued}");
        assert!(source.queue.capacity() <= QUEUE_KEEP);
    }

    #[test]
    fn event_source_can_move_across_tasks_and_needs_no_pinning() {
        fn send_unpin<T: Send + Unpin + 'static>() {}
        send_unpin::<EventSource>();
        send_unpin::<Result<Item, Error>>();
    }

    #[test]
    fn event_stream_media_type_accepts_parameters_and_any_case() {
        let ok = |s: &'static str| is_event_stream(Some(&HeaderValue::from_static(s)));
        assert!(ok("text/event-stream"));
        assert!(ok("text/event-stream; charset=utf-8"));
        assert!(ok("Text/Event-Stream;charset=UTF-8"));
        assert!(!ok("text/plain"));
        assert!(!ok("text/event-streamx"));
        assert!(!ok("application/json; x=text/event-stream"));
        assert!(!is_event_stream(None));
    }
}
