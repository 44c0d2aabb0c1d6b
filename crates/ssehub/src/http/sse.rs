//! The response every event stream shares: the body, `text/event-stream`, and the headers
//! that stop proxies from buffering it.

use axum::body::{Body, Bytes};
use axum::response::Response;
use http::{HeaderMap, HeaderName, HeaderValue, header};

/// A `200` event-stream response over `chunks`, with this `Cache-Control`.
pub(crate) fn event_stream(
    chunks: impl futures_util::Stream<Item = Bytes> + Send + 'static,
    cache_control: &'static str,
) -> Response {
    let body = futures_util::StreamExt::map(chunks, Ok::<_, std::convert::Infallible>);
    let mut res = Response::new(Body::from_stream(body));
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache_control),
    );
    // nginx buffers responses unless told otherwise.
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    res
}

/// The `Last-Event-ID` request header an `EventSource` sends on reconnect, also the response
/// header naming where a Mercure stream starts.
pub(crate) const LAST_EVENT_ID: HeaderName = HeaderName::from_static("last-event-id");

/// Where a reconnecting client resumes: the `Last-Event-ID` header, else the id it put in the
/// query (`lastEventID` or `last_event_id`, for clients that cannot set headers); empty means
/// none.
pub(crate) fn last_event_id(headers: &HeaderMap, from_query: Option<String>) -> Option<String> {
    headers
        .get(LAST_EVENT_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .or(from_query)
        .filter(|v| !v.is_empty())
}
