//! A response as the stream sees it, whichever transport brought it: the
//! head, and a body that yields chunks of payload.

use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use http::{HeaderMap, StatusCode, Version};
use reqwest::Url;

use crate::Error;
use crate::lean;

/// How much of an error response body is kept for [`Error::Status`].
const ERROR_BODY_LIMIT: usize = 4096;
/// Bound on reading that body: a server may keep an error response open.
const ERROR_BODY_TIMEOUT: Duration = Duration::from_secs(10);

type BodyStream = std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, reqwest::Error>> + Send>>;

#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) status: StatusCode,
    pub(crate) version: Version,
    pub(crate) headers: HeaderMap,
    pub(crate) url: Url,
    pub(crate) body: Body,
}

pub(crate) enum Body {
    /// reqwest's body stream (hyper underneath).
    Reqwest(BodyStream),
    /// The lean transport's socket, polled in place (no box: it lives in
    /// the already boxed connection state).
    Lean(lean::conn::Body),
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Reqwest(_) => f.write_str("Body::Reqwest"),
            Self::Lean(b) => b.fmt(f),
        }
    }
}

impl Body {
    /// The next chunk of payload; `None` at the end of the body.
    pub(crate) fn poll_chunk(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Error>>> {
        match self {
            Self::Reqwest(s) => s
                .as_mut()
                .poll_next(cx)
                .map(|c| c.map(|r| r.map_err(Error::Request))),
            Self::Lean(b) => b.poll_chunk(cx).map(|c| c.map(|r| r.map_err(Error::Http1))),
        }
    }
}

impl From<reqwest::Response> for Response {
    fn from(mut response: reqwest::Response) -> Self {
        Self {
            status: response.status(),
            version: response.version(),
            headers: std::mem::take(response.headers_mut()),
            url: response.url().clone(),
            body: Body::Reqwest(Box::pin(response.bytes_stream())),
        }
    }
}

impl From<lean::conn::Response> for Response {
    fn from(r: lean::conn::Response) -> Self {
        Self {
            status: r.status,
            version: r.version,
            headers: r.headers,
            url: r.url,
            body: Body::Lean(r.body),
        }
    }
}

/// The [`Error::Status`] for a non-200 answer, with the start of its body.
pub(crate) async fn read_error(mut response: Response) -> Error {
    let mut body = Vec::new();
    let read = async {
        while body.len() < ERROR_BODY_LIMIT {
            match std::future::poll_fn(|cx| response.body.poll_chunk(cx)).await {
                Some(Ok(chunk)) => body.extend_from_slice(&chunk),
                _ => break,
            }
        }
    };
    // A body that never ends must not hold the error back.
    let _ = tokio::time::timeout(ERROR_BODY_TIMEOUT, read).await;
    body.truncate(ERROR_BODY_LIMIT);
    Error::Status {
        status: response.status,
        headers: Box::new(response.headers),
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}
