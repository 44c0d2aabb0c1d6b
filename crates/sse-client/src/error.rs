//! The one error type of the crate.

use std::time::Duration;

use http::{HeaderMap, StatusCode};

/// Why an [`EventSource`](crate::EventSource) could not be built or stopped
/// for good.
///
/// An `Err` out of the stream is always its last item: errors the client
/// recovers from by reconnecting are reported as
/// [`Item::Reconnecting`](crate::Item::Reconnecting) instead, so `?` on each
/// item is the right thing to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The URL given to the builder does not parse.
    #[error("invalid url {url:?}: {reason}")]
    InvalidUrl {
        /// The text given.
        url: String,
        /// What the URL parser said.
        reason: String,
    },
    /// A header name or value given to the builder is not valid HTTP.
    #[error("invalid header {0}")]
    InvalidHeader(String),
    /// The HTTP client could not be created (TLS setup, usually).
    #[error("cannot build the http client: {0}")]
    Client(#[source] reqwest::Error),
    /// The request failed on the network: connect, TLS, a dropped
    /// connection, too many redirects.
    #[error("request failed: {0}")]
    Request(#[source] reqwest::Error),
    /// The request failed on the lean HTTP/1.1 transport
    /// ([`Transport::LeanHttp1`](crate::Transport::LeanHttp1)): connect, a
    /// dropped connection, a malformed response, too many redirects.
    #[error("request failed: {0}")]
    Http1(#[source] crate::Http1Error),
    /// The builder asked for something the chosen transport cannot do (the
    /// lean HTTP/1.1 transport with an `https` URL or a
    /// [`reqwest::Client`]).
    #[error("not supported: {0}")]
    Unsupported(&'static str),
    /// The server answered something other than `200 OK` (or `204`, which
    /// ends the stream quietly).
    #[error("server answered {status}, expected 200 OK{}", body_hint(.body))]
    Status {
        /// The status received.
        status: StatusCode,
        /// The response headers, for `Retry-After`, `WWW-Authenticate` and
        /// the like (boxed: a rare case should not make every item larger).
        headers: Box<HeaderMap>,
        /// The start of the response body (at most 4 KiB, lossily decoded):
        /// APIs explain their errors there.
        body: String,
    },
    /// The server answered 200 with a media type other than
    /// `text/event-stream`.
    #[error(
        "server answered with content type {}, expected text/event-stream (is the url an event stream?)",
        content_type.as_deref().unwrap_or("(none)")
    )]
    ContentType {
        /// The `Content-Type` header received, if any.
        content_type: Option<String>,
    },
    /// Nothing arrived for the configured idle timeout, not even a
    /// heartbeat comment: the connection is presumed dead.
    #[error("no data received for {0:?}, the connection is presumed dead")]
    IdleTimeout(Duration),
    /// The event stream broke a limit of the codec (an event larger than
    /// the configured maximum, say). Not retried: the same bytes would come
    /// again.
    #[error("invalid event stream: {0}")]
    Parse(#[from] sse_wire::ParseError),
    /// The maximum number of consecutive reconnection attempts was used up.
    #[error("gave up after {attempts} reconnection attempts{}", last_hint(.last))]
    RetriesExhausted {
        /// Reconnection attempts made since the last healthy connection.
        attempts: u32,
        /// Why the last connection ended (`None`: the server ended it).
        #[source]
        last: Option<Box<Error>>,
    },
}

fn body_hint(body: &str) -> String {
    let body = body.trim();
    if body.is_empty() {
        String::new()
    } else {
        format!(": {body}")
    }
}

fn last_hint(last: &Option<Box<Error>>) -> String {
    match last {
        Some(e) => format!(", the last one ended with: {e}"),
        None => ", the server kept ending the stream".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_lowercase_with_no_trailing_period() {
        let errors = [
            Error::InvalidHeader("name \"a b\"".into()),
            Error::Status {
                status: StatusCode::UNAUTHORIZED,
                headers: Box::default(),
                body: "{\"error\": \"bad key\"}\n".into(),
            },
            Error::ContentType { content_type: None },
            Error::IdleTimeout(Duration::from_secs(3)),
            Error::RetriesExhausted {
                attempts: 2,
                last: None,
            },
        ];
        for e in errors {
            let m = e.to_string();
            assert!(m.starts_with(|c: char| c.is_lowercase()), "{m}");
            assert!(!m.ends_with('.'), "{m}");
        }
    }

    #[test]
    fn status_error_shows_the_body_the_server_explained_itself_in() {
        let e = Error::Status {
            status: StatusCode::UNAUTHORIZED,
            headers: Box::default(),
            body: "{\"error\": \"bad key\"}\n".into(),
        };
        assert_eq!(
            e.to_string(),
            "server answered 401 Unauthorized, expected 200 OK: {\"error\": \"bad key\"}"
        );
    }
}
