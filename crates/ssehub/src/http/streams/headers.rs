//! The protocol's header names, and reading request headers strictly: a header that is not
//! text is refused with its name rather than ignored.

use http::{HeaderMap, HeaderName};

use super::error::DsError;

pub(crate) const STREAM_NEXT_OFFSET: HeaderName = HeaderName::from_static("stream-next-offset");
pub(crate) const STREAM_CURSOR: HeaderName = HeaderName::from_static("stream-cursor");
pub(crate) const STREAM_UP_TO_DATE: HeaderName = HeaderName::from_static("stream-up-to-date");
pub(crate) const STREAM_CLOSED: HeaderName = HeaderName::from_static("stream-closed");
pub(crate) const STREAM_TTL: HeaderName = HeaderName::from_static("stream-ttl");
pub(crate) const STREAM_EXPIRES_AT: HeaderName = HeaderName::from_static("stream-expires-at");
pub(crate) const STREAM_SEQ: HeaderName = HeaderName::from_static("stream-seq");
pub(crate) const STREAM_FORKED_FROM: HeaderName = HeaderName::from_static("stream-forked-from");
pub(crate) const STREAM_FORK_OFFSET: HeaderName = HeaderName::from_static("stream-fork-offset");
pub(crate) const STREAM_FORK_SUB_OFFSET: HeaderName =
    HeaderName::from_static("stream-fork-sub-offset");
pub(crate) const STREAM_SSE_DATA_ENCODING: HeaderName =
    HeaderName::from_static("stream-sse-data-encoding");
pub(crate) const PRODUCER_ID: HeaderName = HeaderName::from_static("producer-id");
pub(crate) const PRODUCER_EPOCH: HeaderName = HeaderName::from_static("producer-epoch");
pub(crate) const PRODUCER_SEQ: HeaderName = HeaderName::from_static("producer-seq");
pub(crate) const PRODUCER_EXPECTED_SEQ: HeaderName =
    HeaderName::from_static("producer-expected-seq");
pub(crate) const PRODUCER_RECEIVED_SEQ: HeaderName =
    HeaderName::from_static("producer-received-seq");

/// Request headers a browser may send cross-origin.
pub(crate) const ALLOWED: [HeaderName; 14] = [
    http::header::AUTHORIZATION,
    http::header::CONTENT_TYPE,
    http::header::IF_NONE_MATCH,
    http::header::CACHE_CONTROL,
    STREAM_SEQ,
    STREAM_TTL,
    STREAM_EXPIRES_AT,
    STREAM_CLOSED,
    STREAM_FORKED_FROM,
    STREAM_FORK_OFFSET,
    STREAM_FORK_SUB_OFFSET,
    PRODUCER_ID,
    PRODUCER_EPOCH,
    PRODUCER_SEQ,
];

/// Response headers a browser's script may read.
pub(crate) const EXPOSED: [HeaderName; 14] = [
    STREAM_NEXT_OFFSET,
    STREAM_CURSOR,
    STREAM_UP_TO_DATE,
    STREAM_CLOSED,
    STREAM_TTL,
    STREAM_EXPIRES_AT,
    STREAM_SSE_DATA_ENCODING,
    PRODUCER_EPOCH,
    PRODUCER_SEQ,
    PRODUCER_EXPECTED_SEQ,
    PRODUCER_RECEIVED_SEQ,
    http::header::ETAG,
    http::header::LOCATION,
    http::header::CONTENT_TYPE,
];

/// A header's value as text; `None` when absent.
///
/// # Errors
///
/// [`DsError::BadRequest`] when the value is not visible ASCII.
pub(crate) fn text<'h>(
    headers: &'h HeaderMap,
    name: &HeaderName,
) -> Result<Option<&'h str>, DsError> {
    headers
        .get(name)
        .map(|v| {
            v.to_str()
                .map_err(|_| DsError::BadRequest(format!("header {name} is not text")))
        })
        .transpose()
}

/// `Stream-Closed`: present only when exactly `true` (any case); other values are ignored,
/// as the protocol requires.
pub(crate) fn is_true(headers: &HeaderMap, name: &HeaderName) -> bool {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}
