//! The OpenAI-compatible relay endpoints: `/v1/chat/completions`, `/v1/models`, and the
//! stream endpoints that make answers resumable and cancellable. Errors use OpenAI's shape,
//! `{"error": {"message", "type", "code"}}`, so SDKs surface them as they would OpenAI's.

use axum::extract::{Path, Query, Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::{Value, json};
use tracing::Instrument as _;

use crate::http::sse::{event_stream, last_event_id};
use crate::http::{AppState, CHAT_COMPLETIONS_PATH, trace};
use crate::relay::{Caller, RelayError, Started, Watch};

/// Request bodies of the relay may carry long conversations.
const MAX_CHAT_BODY: usize = 32 << 20;

/// What `Retry-After` says when a generation bound is reached: answers take seconds, so
/// sooner mostly meets the same bound again; the OpenAI SDKs wait this long before retrying.
const BUSY_RETRY_AFTER_SECS: u64 = 2;

/// An error in OpenAI's format.
pub(crate) struct OpenAiError {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
    kind: &'static str,
    code: &'static str,
    /// Seconds for `Retry-After` (429 only).
    retry_after: Option<u64>,
}

impl OpenAiError {
    pub(crate) fn new(
        status: StatusCode,
        message: String,
        kind: &'static str,
        code: &'static str,
    ) -> Self {
        OpenAiError {
            status,
            message,
            kind,
            code,
            retry_after: None,
        }
    }
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        let body =
            json!({"error": {"message": self.message, "type": self.kind, "code": self.code}});
        let mut res = (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response();
        if let Some(secs) = self.retry_after {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        res
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
            // OpenAI's own shape for this status, so SDKs raise their rate-limit error.
            RelayError::Busy(_) => (
                StatusCode::TOO_MANY_REQUESTS,
                "requests",
                "rate_limit_exceeded",
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
        let mut out = OpenAiError::new(status, err.to_string(), kind, code);
        if matches!(err, RelayError::Busy(_)) {
            out.retry_after = Some(BUSY_RETRY_AFTER_SECS);
        }
        out
    }
}

/// Checks the caller's key against `--relay-api-keys` (none configured: open) and says who
/// the caller is, which decides the streams it may watch and cancel.
pub(crate) fn check_key(state: &AppState, headers: &HeaderMap) -> Result<Caller, OpenAiError> {
    let config = state.config.load();
    let keys = &config.relay_api_keys;
    if keys.is_empty() {
        return Ok(Caller::Anyone);
    }
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        // Anthropic's SDKs send their key this way.
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()));
    match presented {
        Some(k) if keys.iter().any(|allowed| allowed == k) => Ok(Caller::Key(k.to_owned())),
        Some(_) => Err(OpenAiError::new(
            StatusCode::UNAUTHORIZED,
            "incorrect API key: it is not one of this hub's --relay-api-keys".into(),
            "invalid_request_error",
            "invalid_api_key",
        )),
        None => Err(OpenAiError::new(
            StatusCode::UNAUTHORIZED,
            "missing API key: send Authorization: Bearer <key> (one of this hub's --relay-api-keys)".into(),
            "invalid_request_error",
            "invalid_api_key",
        )),
    }
}

pub(crate) fn sse_response(watch: Watch, stream_id: Option<&str>) -> Response {
    // An opening comment so proxies and browsers see the stream open before the first token.
    let opening = futures_util::stream::once(async { bytes::Bytes::from_static(b":\n") });
    let chunks = futures_util::StreamExt::chain(opening, watch.into_stream());
    let mut res = event_stream(chunks, "no-cache, no-transform");
    if let Some(id) = stream_id.and_then(|id| HeaderValue::from_str(id).ok()) {
        res.headers_mut().insert("x-stream-id", id);
    }
    res
}

/// A relay request's JSON body.
///
/// # Errors
/// 413 beyond the relay's body limit, 400 when it is not JSON.
pub(crate) async fn read_json(req: Request) -> Result<Value, OpenAiError> {
    let body = axum::body::to_bytes(req.into_body(), MAX_CHAT_BODY)
        .await
        .map_err(|e| {
            OpenAiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("could not read the request body (limit {MAX_CHAT_BODY} bytes): {e}"),
                "invalid_request_error",
                "body_too_large",
            )
        })?;
    serde_json::from_slice(&body).map_err(|e| {
        OpenAiError::new(
            StatusCode::BAD_REQUEST,
            format!("the request body is not valid JSON: {e}"),
            "invalid_request_error",
            "invalid_json",
        )
    })
}

/// `POST /v1/chat/completions`, in a server span that lasts, for a streamed answer, until the
/// answer ends (the relay's pump holds it; see `http/trace.rs`).
pub(crate) async fn chat_completions(State(state): State<AppState>, req: Request) -> Response {
    let span = trace::server_span(
        req.method(),
        CHAT_COMPLETIONS_PATH,
        req.uri().path(),
        req.headers(),
    );
    let res = start_chat(state, req)
        .instrument(span.clone())
        .await
        .unwrap_or_else(IntoResponse::into_response);
    trace::record_status(&span, res.status());
    res
}

async fn start_chat(state: AppState, req: Request) -> Result<Response, OpenAiError> {
    let caller = check_key(&state, req.headers())?;
    let request = read_json(req).await?;
    Ok(match state.relay.start(&caller, request).await? {
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
    /// `compact=1`: the missed history with its text deltas merged, then live. A query
    /// parameter, not a header, because an `EventSource` cannot send headers, and it keeps
    /// the URL when it reconnects, where compacting what was missed is right too.
    compact: Option<String>,
}

/// `GET /v1/streams/{id}`
pub(crate) async fn watch_stream(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<WatchQuery>,
    headers: HeaderMap,
) -> Result<Response, OpenAiError> {
    let caller = check_key(&state, &headers)?;
    let last = last_event_id(&headers, query.last_event_id);
    let compact = match query.compact.as_deref() {
        None | Some("0" | "false") => false,
        Some("1" | "true" | "") => true,
        Some(other) => {
            return Err(OpenAiError::new(
                StatusCode::BAD_REQUEST,
                format!("compact must be 1 or 0 (true or false), not {other:?}"),
                "invalid_request_error",
                "invalid_request",
            ));
        }
    };
    let watch = if compact {
        state
            .relay
            .watch_compact(&caller, &id, last.as_deref())
            .await
    } else {
        state.relay.watch(&caller, &id, last.as_deref()).await
    };
    match watch {
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
    let caller = check_key(&state, &headers)?;
    let was_running = state.relay.cancel(&caller, &id).await?;
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
