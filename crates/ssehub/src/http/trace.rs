//! Trace spans for OpenTelemetry: one server span per publish (request to durable
//! acknowledgement) and per relay stream (request to the end of the answer, with a child span
//! to the first token), carrying the HTTP semantic-convention attributes.
//!
//! The spans are `tracing` spans under the target [`TARGET`]; the binary exports them over OTLP
//! when `--otlp-endpoint` is set (`tracing-opentelemetry` reads `otel.name`, `otel.kind` and the
//! dotted fields as span name, kind and attributes). No layer enables that target otherwise
//! (the log output turns it off), so with tracing off a span costs one cached callsite check.

use http::{HeaderMap, Method, StatusCode, header};
use tracing::Span;

/// The `tracing` target of every span meant for export, and only of those.
pub const TARGET: &str = "ssehub::otel";

/// A server span for a request to `route` (its OpenTelemetry name is `METHOD route`). Every
/// field is computed only when the span is enabled.
pub(crate) fn server_span(method: &Method, route: &str, path: &str, headers: &HeaderMap) -> Span {
    tracing::info_span!(
        target: "ssehub::otel",
        "http request",
        otel.name = format!("{method} {route}"),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = method.as_str(),
        http.route = route,
        url.path = path,
        url.scheme = "http",
        server.address = server_address(headers).0,
        server.port = server_address(headers).1,
        user_agent.original = headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or(""),
        http.response.status_code = tracing::field::Empty,
        // Relay answers: the stream's id and, at its end, how many chunks it had.
        ssehub.stream_id = tracing::field::Empty,
        ssehub.relay.chunks = tracing::field::Empty,
    )
}

/// Records the answer's status on `span` (an error status for 5xx, as the conventions say
/// for a server span).
pub(crate) fn record_status(span: &Span, status: StatusCode) {
    span.record("http.response.status_code", i64::from(status.as_u16()));
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
}

/// `server.address` and `server.port` from the `Host` header (HTTP/1.1) or the `:authority`
/// (HTTP/2, which hyper exposes as `Host` too); empty and 0 when absent.
fn server_address(headers: &HeaderMap) -> (&str, i64) {
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return ("", 0);
    };
    // `[::1]:8080`, `example.com:8080`, `example.com`.
    match host.rsplit_once(':') {
        Some((name, port)) if !port.contains(']') => (
            name.trim_start_matches('[').trim_end_matches(']'),
            port.parse().unwrap_or(0),
        ),
        _ => (host.trim_start_matches('[').trim_end_matches(']'), 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_address_from_host() {
        let mut h = HeaderMap::new();
        assert_eq!(server_address(&h), ("", 0));
        h.insert(header::HOST, "hub.example.com:8443".parse().unwrap());
        assert_eq!(server_address(&h), ("hub.example.com", 8443));
        h.insert(header::HOST, "[::1]:8080".parse().unwrap());
        assert_eq!(server_address(&h), ("::1", 8080));
        h.insert(header::HOST, "[::1]".parse().unwrap());
        assert_eq!(server_address(&h), ("::1", 0));
        h.insert(header::HOST, "hub.example.com".parse().unwrap());
        assert_eq!(server_address(&h), ("hub.example.com", 0));
    }
}
