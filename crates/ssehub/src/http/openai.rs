//! The OpenAI-compatible relay endpoints: `/v1/chat/completions`, `/v1/models`, and the
//! stream endpoints that make answers resumable and cancellable. Errors use OpenAI's shape,
//! `{"error": {"message", "type", "code"}}`, so SDKs surface them as they would OpenAI's.

use axum::extract::{Path, Query, Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::{Value, json};

use crate::http::AppState;
use crate::http::sse::{event_stream, last_event_id};
use crate::relay::{RelayError, Started, Watch};

/// Request bodies of the relay may carry long conversations.
const MAX_CHAT_BODY: usize = 32 << 20;

/// An error in OpenAI's format.
pub(crate) struct OpenAiError {
    status: StatusCode,
    message: String,
    kind: &'static str,
    code: &'static str,
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        let body =
            json!({"error": {"message": self.message, "type": self.kind, "code": self.code}});
        (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response()
    }
}

impl From<RelayError> for OpenAiError {
    fn from(err: RelayError) -> Self {
        let (status, kind, code) = match &err {
            RelayError::BadRequest(_) => (
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "invalid_request",
            ),
            RelayError::UnknownStream(_) => (
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                "stream_not_found",
            ),
            RelayError::Complete(_) => (
                StatusCode::NO_CONTENT,
                "invalid_request_error",
                "stream_complete",
            ),
            RelayError::Upstream(_) => (
                StatusCode::BAD_GATEWAY,
                "upstream_error",
                "upstream_unreachable",
            ),
            RelayError::Store(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                "storage_unavailable",
            ),
        };
        OpenAiError {
            status,
            message: err.to_string(),
            kind,
            code,
        }
    }
}

/// Checks the caller's key against `--relay-api-keys` (none configured: open).
fn check_key(state: &AppState, headers: &HeaderMap) -> Result<(), OpenAiError> {
    let keys = &state.config.relay_api_keys;
    if keys.is_empty() {
        return Ok(());
    }
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    match presented {
        Some(k) if keys.iter().any(|allowed| allowed == k) => Ok(()),
        Some(_) => Err(OpenAiError {
            status: StatusCode::UNAUTHORIZED,
            message: "incorrect API key: it is not one of this hub's --relay-api-keys".into(),
            kind: "invalid_request_error",
            code: "invalid_api_key",
        }),
        None => Err(OpenAiError {
            status: StatusCode::UNAUTHORIZED,
            message: "missing API key: send Authorization: Bearer <key> (one of this hub's --relay-api-keys)".into(),
            kind: "invalid_request_error",
            code: "invalid_api_key",
        }),
    }
}

fn sse_response(watch: Watch, stream_id: Option<&str>) -> Response {
    // An opening comment so proxies and browsers see the stream open before the first token.
    let opening = futures_util::stream::once(async { bytes::Bytes::from_static(b":\n") });
    let chunks = futures_util::StreamExt::chain(opening, watch.into_stream());
    let mut res = event_stream(chunks, "no-cache, no-transform");
    if let Some(id) = stream_id.and_then(|id| HeaderValue::from_str(id).ok()) {
        res.headers_mut().insert("x-stream-id", id);
    }
    res
}

/// `POST /v1/chat/completions`
pub(crate) async fn chat_completions(
    State(state): State<AppState>,
    req: Request,
) -> Result<Response, OpenAiError> {
    check_key(&state, req.headers())?;
    let body = axum::body::to_bytes(req.into_body(), MAX_CHAT_BODY)
        .await
        .map_err(|e| OpenAiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            message: format!("could not read the request body (limit {MAX_CHAT_BODY} bytes): {e}"),
            kind: "invalid_request_error",
            code: "body_too_large",
        })?;
    let request: Value = serde_json::from_slice(&body).map_err(|e| OpenAiError {
        status: StatusCode::BAD_REQUEST,
        message: format!("the request body is not valid JSON: {e}"),
        kind: "invalid_request_error",
        code: "invalid_json",
    })?;
    Ok(match state.relay.start(request).await? {
        Started::Whole {
            status,
            content_type,
            body,
        } => (status, [(header::CONTENT_TYPE, content_type)], body).into_response(),
        Started::Stream { id, watch } => sse_response(*watch, Some(&id)),
    })
}

/// Query of `GET /v1/streams/{id}`.
#[derive(serde::Deserialize)]
pub(crate) struct WatchQuery {
    last_event_id: Option<String>,
}

/// `GET /v1/streams/{id}`
pub(crate) async fn watch_stream(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<WatchQuery>,
    headers: HeaderMap,
) -> Result<Response, OpenAiError> {
    check_key(&state, &headers)?;
    let last = last_event_id(&headers, query.last_event_id);
    match state.relay.watch(&id, last.as_deref()).await {
        Ok(watch) => Ok(sse_response(watch, Some(&id))),
        // 204 tells an EventSource to stop reconnecting: it already has everything.
        Err(RelayError::Complete(_)) => Ok(StatusCode::NO_CONTENT.into_response()),
        Err(e) => Err(OpenAiError::from(e)),
    }
}

/// `POST /v1/streams/{id}/cancel`
pub(crate) async fn cancel_stream(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, OpenAiError> {
    check_key(&state, &headers)?;
    let was_running = state.relay.cancel(&id).await?;
    let body = if was_running {
        json!({"id": id, "cancelled": true})
    } else {
        json!({"id": id, "cancelled": false, "reason": "the stream had already finished"})
    };
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response())
}

/// `GET /v1/models`
pub(crate) async fn models(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, OpenAiError> {
    check_key(&state, &headers)?;
    let (status, body) = state
        .relay
        .upstream()
        .models()
        .await
        .map_err(RelayError::from)?;
    Ok((status, [(header::CONTENT_TYPE, "application/json")], body).into_response())
}
