//! Configuration of an [`EventSource`]: the request to repeat on every
//! connection, and the reconnection policy.

use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, CACHE_CONTROL, HeaderName, HeaderValue};
use http::{HeaderMap, Method};
use reqwest::Url;

use crate::source::Client;
use crate::{Backoff, Error, EventSource};

/// The name of the header that carries the last event ID.
pub(crate) const LAST_EVENT_ID: HeaderName = HeaderName::from_static("last-event-id");

/// Builds an [`EventSource`]; start from [`EventSource::get`],
/// [`EventSource::post`] or [`EventSource::builder`].
///
/// Errors in URLs and headers are kept until [`Builder::build`], so calls
/// chain without `?` at each step.
#[derive(Debug)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct Builder {
    pub(crate) client: Option<reqwest::Client>,
    pub(crate) method: Method,
    pub(crate) url: Result<Url, Error>,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Option<Bytes>,
    pub(crate) last_event_id: String,
    /// The first invalid header given, reported by `build`.
    pub(crate) error: Option<Error>,
    pub(crate) config: Config,
    pub(crate) transport: Transport,
}

/// What carries the stream's connections (see [`Builder::transport`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Transport {
    /// [`reqwest`] (hyper underneath): HTTP/1.1 and HTTP/2, TLS, proxies
    /// from the environment, a shared connection pool. The default.
    #[default]
    Reqwest,
    /// The crate's own HTTP/1.1 connection for plain `http://` URLs, one per
    /// stream, for processes that hold thousands of idle streams: an idle
    /// stream holds about 2 KiB of heap instead of about 30 KiB through
    /// hyper (BENCHMARKS.md, "sse-client"). It writes the request head once,
    /// reads the response head with `httparse` (at most 16 KiB) and decodes
    /// the body (length, chunked, or until close) straight into the parser,
    /// with a read buffer that exists only while bytes wait.
    ///
    /// It speaks neither TLS, HTTP/2 nor proxies, and ignores the proxy
    /// environment variables: `https` URLs, HTTP/2 and proxied connections
    /// stay on [`Transport::Reqwest`], and [`Builder::build`] refuses an
    /// `https` URL or a [`Builder::client`] with [`Error::Unsupported`]
    /// rather than silently falling back. Redirects are followed as
    /// reqwest does (up to 10, credentials dropped across origins, no
    /// `Referer` sent), except to `https`, which ends the stream with
    /// [`Error::Http1`]; user info in the URL is not sent (use
    /// [`Builder::header`]); no compression is asked for or undone. Its network errors are
    /// [`Error::Http1`] instead of [`Error::Request`], retried the same way.
    LeanHttp1,
}

/// Everything about reconnection and parsing, copied into the stream.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) comments: bool,
    pub(crate) max_event_bytes: Option<usize>,
    pub(crate) backoff: Backoff,
    pub(crate) max_retries: Option<u32>,
    pub(crate) healthy_after: Duration,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) reconnect_on_end: bool,
    pub(crate) retry_server_errors: bool,
    pub(crate) retry_network_errors: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            comments: false,
            max_event_bytes: None,
            backoff: Backoff::default(),
            max_retries: None,
            healthy_after: Duration::from_secs(5),
            idle_timeout: None,
            reconnect_on_end: true,
            retry_server_errors: false,
            retry_network_errors: true,
        }
    }
}

impl Builder {
    pub(crate) fn new(method: Method, url: &str) -> Self {
        let url = Url::parse(url).map_err(|e| Error::InvalidUrl {
            url: url.to_owned(),
            reason: e.to_string(),
        });
        Self {
            client: None,
            method,
            url,
            headers: HeaderMap::new(),
            body: None,
            last_event_id: String::new(),
            error: None,
            config: Config::default(),
            transport: Transport::Reqwest,
        }
    }

    /// Uses this HTTP client (to share its connection pool, or to configure
    /// TLS roots, proxies or HTTP/2 prior knowledge). Without it each
    /// `EventSource` builds its own.
    ///
    /// The client must not have a total request timeout: it would cut every
    /// stream. Use [`Builder::idle_timeout`] instead.
    pub fn client(mut self, client: reqwest::Client) -> Self {
        self.client = Some(client);
        self
    }

    /// Chooses what carries the connections (default
    /// [`Transport::Reqwest`]); [`Transport::LeanHttp1`] for thousands of
    /// idle plain-HTTP/1.1 streams from one process.
    pub fn transport(mut self, transport: Transport) -> Self {
        self.transport = transport;
        self
    }

    /// Adds a header sent on every connection. `Accept` is always
    /// `text/event-stream`; a `Last-Event-ID` given here is taken as
    /// [`Builder::last_event_id`].
    pub fn header<K, V>(mut self, name: K, value: V) -> Self
    where
        K: TryInto<HeaderName>,
        K::Error: std::fmt::Display,
        V: TryInto<HeaderValue>,
        V::Error: std::fmt::Display,
    {
        match (name.try_into(), value.try_into()) {
            (Ok(name), Ok(value)) => {
                self.headers.append(name, value);
            }
            (Err(e), _) => self.set_error(Error::InvalidHeader(format!("name: {e}"))),
            (Ok(name), Err(e)) => {
                self.set_error(Error::InvalidHeader(format!("value for {name}: {e}")))
            }
        }
        self
    }

    /// Adds all these headers (see [`Builder::header`]).
    pub fn headers(mut self, headers: HeaderMap) -> Self {
        self.headers.extend(headers);
        self
    }

    /// Sends `Authorization: Bearer <token>` on every connection.
    pub fn bearer_auth(self, token: impl std::fmt::Display) -> Self {
        let value = HeaderValue::try_from(format!("Bearer {token}")).map(|mut v| {
            v.set_sensitive(true);
            v
        });
        match value {
            Ok(v) => self.header(http::header::AUTHORIZATION, v),
            Err(_) => {
                let mut this = self;
                this.set_error(Error::InvalidHeader(
                    "value for authorization: bearer token is not a valid header value".into(),
                ));
                this
            }
        }
    }

    /// The request body, sent again on every reconnection (a JSON chat
    /// request, a Mercure `QUERY` form).
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// Resumes after this event ID: sent as `Last-Event-ID` on the first
    /// connection (unless empty), then replaced by the ids the server sends.
    pub fn last_event_id(mut self, id: impl Into<String>) -> Self {
        self.last_event_id = id.into();
        self
    }

    /// Yields [`Item::Comment`](crate::Item::Comment) for comment lines
    /// (default: skipped).
    pub fn comments(mut self, yes: bool) -> Self {
        self.config.comments = yes;
        self
    }

    /// Refuses events larger than `bytes`; the stream then ends with
    /// [`Error::Parse`]. Default: the codec's limit.
    pub fn max_event_bytes(mut self, bytes: usize) -> Self {
        self.config.max_event_bytes = Some(bytes);
        self
    }

    /// The reconnection delays (see [`Backoff`]).
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.config.backoff = backoff;
        self
    }

    /// Gives up after `n` consecutive reconnection attempts that did not
    /// lead to a healthy connection, ending with
    /// [`Error::RetriesExhausted`]. Default: never give up, like a browser.
    pub fn max_retries(mut self, n: u32) -> Self {
        self.config.max_retries = Some(n);
        self
    }

    /// A connection that stayed open this long counts as healthy: the next
    /// reconnection starts again from the base delay and the attempt count
    /// starts again from zero (default 5 s). A server that closes every
    /// response right away on purpose (polling) wants `Duration::ZERO`.
    pub fn healthy_after(mut self, period: Duration) -> Self {
        self.config.healthy_after = period;
        self
    }

    /// Treats a connection on which nothing arrived (not even a comment) for
    /// `timeout` as dropped, and also bounds the wait for the response head.
    /// Set it above the server's heartbeat interval (Mercure: 40 s).
    /// Default: none, like a browser.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.config.idle_timeout = Some(timeout);
        self
    }

    /// Whether to reconnect when the server ends the stream normally
    /// (default `true`, like a browser). One-shot streams, such as an LLM
    /// completion, want `false`: the stream then simply ends.
    pub fn reconnect_on_end(mut self, yes: bool) -> Self {
        self.config.reconnect_on_end = yes;
        self
    }

    /// Whether a 5xx answer is retried with backoff instead of failing the
    /// stream (default `false`, like a browser).
    pub fn retry_server_errors(mut self, yes: bool) -> Self {
        self.config.retry_server_errors = yes;
        self
    }

    /// Whether network errors (refused connection, dropped connection, idle
    /// timeout) are retried with backoff (default `true`, like a browser).
    /// With `false` they end the stream with an error.
    pub fn retry_network_errors(mut self, yes: bool) -> Self {
        self.config.retry_network_errors = yes;
        self
    }

    /// Shorthand for `reconnect_on_end(false)`, `retry_network_errors(false)`
    /// and `retry_server_errors(false)`: one connection, whatever happens.
    pub fn no_reconnect(self) -> Self {
        self.reconnect_on_end(false)
            .retry_network_errors(false)
            .retry_server_errors(false)
    }

    /// Creates the stream. It connects when first polled.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidUrl`] or [`Error::InvalidHeader`] for bad input given
    /// to the builder, [`Error::Client`] when no client was given and
    /// building one fails, [`Error::Unsupported`] for
    /// [`Transport::LeanHttp1`] with an `https` URL or a client.
    pub fn build(self) -> Result<EventSource, Error> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let url = self.url?;
        let mut headers = self.headers;
        let mut last_event_id = self.last_event_id;
        if let Some(v) = headers.remove(LAST_EVENT_ID) {
            if last_event_id.is_empty() {
                last_event_id = String::from_utf8_lossy(v.as_bytes()).into_owned();
            }
        }
        headers.insert(ACCEPT, HeaderValue::from_static("text/event-stream"));
        headers
            .entry(CACHE_CONTROL)
            .or_insert(HeaderValue::from_static("no-cache"));
        // Kept for the stream's life: no room for headers never added (a
        // map grown one insert at a time holds 8 slots, 650 bytes, for 2).
        let headers = {
            let mut exact = HeaderMap::with_capacity(headers.len());
            exact.extend(headers);
            exact
        };
        let client = match (self.transport, self.client) {
            (Transport::LeanHttp1, Some(_)) => {
                return Err(Error::Unsupported(
                    "the lean HTTP/1.1 transport makes its own connections, it cannot use a reqwest::Client",
                ));
            }
            (Transport::LeanHttp1, None) if url.scheme() != "http" => {
                return Err(Error::Unsupported(
                    "the lean HTTP/1.1 transport speaks plain http only, use the default transport for https",
                ));
            }
            (Transport::LeanHttp1, None) => Client::Lean,
            (_, Some(c)) => Client::Reqwest(c),
            (_, None) => {
                Client::Reqwest(reqwest::Client::builder().build().map_err(Error::Client)?)
            }
        };
        Ok(EventSource::new(
            client,
            crate::source::Request {
                method: self.method,
                url,
                headers,
                body: self.body,
            },
            last_event_id,
            self.config,
        ))
    }

    fn set_error(&mut self, e: Error) {
        self.error.get_or_insert(e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_url_is_reported_by_build() {
        let e = EventSource::get("not a url").build().unwrap_err();
        assert!(matches!(e, Error::InvalidUrl { .. }), "{e}");
    }

    #[test]
    fn first_bad_header_is_reported_by_build() {
        let e = EventSource::get("http://127.0.0.1:1/")
            .header("bad name", "x")
            .header("ok", "bad\nvalue")
            .build()
            .unwrap_err();
        assert!(e.to_string().starts_with("invalid header name"), "{e}");
    }

    #[test]
    fn lean_transport_refuses_https_and_a_client() {
        let lean = |url| EventSource::get(url).transport(Transport::LeanHttp1);
        let e = lean("https://127.0.0.1:1/").build().unwrap_err();
        assert!(matches!(e, Error::Unsupported(_)), "{e}");
        let e = lean("http://127.0.0.1:1/")
            .client(reqwest::Client::new())
            .build()
            .unwrap_err();
        assert!(matches!(e, Error::Unsupported(_)), "{e}");
        assert!(lean("http://127.0.0.1:1/").build().is_ok());
    }

    #[test]
    fn bearer_token_with_a_newline_is_refused() {
        let e = EventSource::get("http://127.0.0.1:1/")
            .bearer_auth("a\nb")
            .build()
            .unwrap_err();
        assert!(matches!(e, Error::InvalidHeader(_)), "{e}");
    }
}
