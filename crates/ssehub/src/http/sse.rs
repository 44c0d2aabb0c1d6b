//! The response every event stream shares: the body, `text/event-stream`, and the headers
//! that stop proxies from buffering it.

use axum::body::{Body, Bytes};
use axum::response::Response;
use http::{HeaderValue, header};

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
