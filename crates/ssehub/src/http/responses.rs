//! The OpenAI Responses API front: `POST /v1/responses`, `GET /v1/responses/{id}` (the
//! object, or with `stream=true` its events after `starting_after`), and
//! `POST /v1/responses/{id}/cancel`. A response id is its relay stream's id, so the stream is
//! also watchable at `/v1/streams/{id}`. Errors use OpenAI's shape (`openai::OpenAiError`).

use axum::extract::{Path, Query, Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode, header};
use serde_json::{Value, json};

use crate::http::AppState;
use crate::http::openai::{OpenAiError, check_key, read_json, sse_response};
use crate::relay::{Api, FrontStarted, RelayError, Snapshot};

fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn bad_request(message: String) -> OpenAiError {
    OpenAiError::new(
        StatusCode::BAD_REQUEST,
        message,
        "invalid_request_error",
        "invalid_request",
    )
}

/// A boolean field of the request, `false` when absent.
fn flag(request: &Value, field: &str) -> Result<bool, OpenAiError> {
    match &request[field] {
        Value::Null => Ok(false),
        Value::Bool(b) => Ok(*b),
        _ => Err(bad_request(format!("{field} must be a boolean"))),
    }
}

/// `POST /v1/responses`
pub(crate) async fn create(
    State(state): State<AppState>,
    req: Request,
) -> Result<Response, OpenAiError> {
    let caller = check_key(&state, req.headers())?;
    let request = read_json(req).await?;
    let stream = flag(&request, "stream")?;
    let background = flag(&request, "background")?;
    let started = state
        .relay
        .start_front(&caller, Api::Responses, request)
        .await?;
    let (id, watch, mut initial) = match started {
        FrontStarted::Whole {
            status,
            content_type,
            body,
        } => return Ok((status, [(header::CONTENT_TYPE, content_type)], body).into_response()),
        FrontStarted::Stream { id, watch, initial } => (id, watch, initial),
    };
    if stream {
        return Ok(sse_response(*watch, Some(&id)));
    }
    if background {
        // The answer goes on without its caller; `GET /v1/responses/{id}` polls it.
        drop(watch);
        initial["status"] = json!("queued");
        return Ok(json_response(StatusCode::OK, &initial));
    }
    // A plain request waits for the whole answer, read back from history as every `GET` does.
    let mut events = Box::pin(watch.into_stream());
    while futures_util::StreamExt::next(&mut events).await.is_some() {}
    retrieve_object(&state, &caller, &id).await
}

async fn retrieve_object(
    state: &AppState,
    caller: &crate::relay::Caller,
    id: &str,
) -> Result<Response, OpenAiError> {
    match state
        .relay
        .snapshot(caller, Api::Responses, id)
        .await
        .map_err(not_found)?
    {
        Snapshot::Response(r) => Ok(json_response(StatusCode::OK, &r)),
        Snapshot::Message { .. } => Err(not_found(RelayError::UnknownStream(id.to_owned()))),
    }
}

/// OpenAI's words for an unknown response.
fn not_found(err: RelayError) -> OpenAiError {
    match err {
        RelayError::UnknownStream(id) => OpenAiError::new(
            StatusCode::NOT_FOUND,
            format!("No response found with id '{id}'."),
            "invalid_request_error",
            "response_not_found",
        ),
        other => other.into(),
    }
}

/// Query of `GET /v1/responses/{id}`.
#[derive(serde::Deserialize)]
pub(crate) struct RetrieveQuery {
    stream: Option<String>,
    starting_after: Option<String>,
    /// `compact=1`: what follows `starting_after` with its text deltas merged into one
    /// `response.output_text.delta` (as on `GET /v1/streams/{id}`), then live.
    compact: Option<String>,
}

/// `GET /v1/responses/{id}`
pub(crate) async fn retrieve(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<RetrieveQuery>,
    headers: HeaderMap,
) -> Result<Response, OpenAiError> {
    let caller = check_key(&state, &headers)?;
    let stream = match query.stream.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(bad_request(format!(
                "stream must be true or false, not {other:?}"
            )));
        }
    };
    let starting_after = match query.starting_after.as_deref() {
        None => None,
        Some(n) => Some(n.parse::<u64>().map_err(|_| {
            bad_request(format!(
                "starting_after must be a non-negative integer (a sequence_number), not {n:?}"
            ))
        })?),
    };
    let compact = match query.compact.as_deref() {
        None | Some("0" | "false") => false,
        Some("1" | "true" | "") => true,
        Some(other) => {
            return Err(bad_request(format!(
                "compact must be 1 or 0 (true or false), not {other:?}"
            )));
        }
    };
    if !stream {
        return retrieve_object(&state, &caller, &id).await;
    }
    // A Responses stream only: `GET /v1/streams/{id}` serves the other fronts.
    state
        .relay
        .check_front(&caller, Api::Responses, &id)
        .await
        .map_err(not_found)?;
    let watch = match starting_after.filter(|n| *n > 0) {
        None if compact => state.relay.watch_compact(&caller, &id, None).await,
        Some(n) if compact && state.relay.has_event(&id, n).await => {
            let at = format!("{id}-{n}");
            state.relay.watch_compact(&caller, &id, Some(&at)).await
        }
        // Not recorded yet (or not compact): the events past N as they come.
        _ => state.relay.watch_after(&caller, &id, starting_after).await,
    };
    match watch {
        Ok(watch) => Ok(sse_response(watch, Some(&id))),
        // Nothing follows: an empty stream the SDKs read as ended.
        Err(RelayError::Complete(_)) => Ok(StatusCode::NO_CONTENT.into_response()),
        Err(e) => Err(not_found(e)),
    }
}

/// `POST /v1/responses/{id}/cancel`: the response as it ended.
pub(crate) async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, OpenAiError> {
    let caller = check_key(&state, &headers)?;
    state
        .relay
        .check_front(&caller, Api::Responses, &id)
        .await
        .map_err(not_found)?;
    state
        .relay
        .cancel_and_wait(&caller, &id)
        .await
        .map_err(not_found)?;
    retrieve_object(&state, &caller, &id).await
}
