//! Operations endpoints: `/healthz` and `/metrics`.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{StatusCode, header};

use crate::http::AppState;

/// 200 when the store answers and accepts writes, 503 otherwise (with the reason).
pub(crate) async fn healthz(State(state): State<AppState>) -> Response {
    match state.hub.store().stats().await {
        Ok(stats) if stats.writable => (StatusCode::OK, "ok\n").into_response(),
        Ok(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "history store is not accepting writes\n",
        )
            .into_response(),
        Err(err) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("history store unavailable: {err}\n"),
        )
            .into_response(),
    }
}

/// Prometheus text exposition.
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    let stats = state.hub.store().stats().await.ok();
    let history = stats.as_ref().map(|s| s.retained);
    let bytes = stats.and_then(|s| s.bytes);
    let mut text = state.hub.metrics().render(history, bytes);
    // Durable Streams' own counters (streams/metrics.rs).
    let streams = state.streams.count().await.ok();
    text.push_str(&state.streams.metrics().render(streams));
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}
