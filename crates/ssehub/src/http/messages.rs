//! The Anthropic Messages API front: `POST /v1/messages`, streaming or not. A streamed answer
//! carries `X-Stream-Id`, so it is resumable and watchable at `GET /v1/streams/{id}` with
//! `Last-Event-ID`, and stoppable with `POST /v1/streams/{id}/cancel`, as a chat answer is.
//! Errors use Anthropic's shape: `{"type": "error", "error": {"type", "message"}}`.

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{StatusCode, header};
use serde_json::{Value, json};

use crate::http::AppState;
use crate::http::openai::{OpenAiError, check_key, read_json, sse_response};
use crate::relay::{Api, FrontStarted, RelayError, Snapshot};

/// An error in Anthropic's format.
pub(crate) struct AnthropicError {
    status: StatusCode,
    message: String,
}

impl AnthropicError {
    fn kind(&self) -> &'static str {
        match self.status.as_u16() {
            400 | 413 => "invalid_request_error",
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            429 => "rate_limit_error",
            _ => "api_error",
        }
    }
}

impl IntoResponse for AnthropicError {
    fn into_response(self) -> Response {
        let body = json!({"type": "error",
                          "error": {"type": self.kind(), "message": self.message}});
        (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response()
    }
}

impl From<OpenAiError> for AnthropicError {
    fn from(err: OpenAiError) -> Self {
        AnthropicError {
            status: err.status,
            message: err.message,
        }
    }
}

impl From<RelayError> for AnthropicError {
    fn from(err: RelayError) -> Self {
        OpenAiError::from(err).into()
    }
}

/// `POST /v1/messages`
pub(crate) async fn create(
    State(state): State<AppState>,
    req: Request,
) -> Result<Response, AnthropicError> {
    let caller = check_key(&state, req.headers())?;
    let request = read_json(req).await?;
    let stream = match &request["stream"] {
        Value::Null => false,
        Value::Bool(b) => *b,
        _ => {
            return Err(AnthropicError {
                status: StatusCode::BAD_REQUEST,
                message: "stream: must be a boolean".into(),
            });
        }
    };
    let (id, watch) = match state
        .relay
        .start_front(&caller, Api::Messages, request)
        .await?
    {
        FrontStarted::Whole {
            status,
            content_type,
            body,
        } => return Ok((status, [(header::CONTENT_TYPE, content_type)], body).into_response()),
        FrontStarted::Stream { id, watch, .. } => (id, watch),
    };
    if stream {
        return Ok(sse_response(*watch, Some(&id)));
    }
    let mut events = Box::pin(watch.into_stream());
    while futures_util::StreamExt::next(&mut events).await.is_some() {}
    match state.relay.snapshot(&caller, Api::Messages, &id).await? {
        Snapshot::Message {
            failure: Some(message),
            ..
        } => Err(AnthropicError {
            status: StatusCode::BAD_GATEWAY,
            message,
        }),
        Snapshot::Message { message, .. } => {
            let mut res = (
                [(header::CONTENT_TYPE, "application/json")],
                message.to_string(),
            )
                .into_response();
            if let Ok(v) = http::HeaderValue::from_str(&id) {
                res.headers_mut().insert("x-stream-id", v);
            }
            Ok(res)
        }
        Snapshot::Response(_) => Err(RelayError::UnknownStream(id).into()),
    }
}
