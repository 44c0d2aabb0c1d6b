//! The Durable Streams front: `/v1/stream/{path}` speaks the Durable Streams protocol
//! (PROTOCOL.md of durable-streams/durable-streams) on the hub's port.
//!
//! ```text
//! request ─> security headers + CORS ─> dispatch by method ─> authorize ─> write.rs / read.rs / sse.rs
//!                                                                            │
//!                                                        crate::streams (store, live tail)
//! ```
//!
//! Authorization reuses the hub's JWTs: a stream's topic is its URL path. Writes (`PUT`,
//! `POST`, `DELETE`) need a publisher token granting that topic (a fork also the source's);
//! reads (`GET`, `HEAD`) a subscriber token whose selectors match it. `--anonymous-streams`
//! serves streams without tokens, for local development and the conformance suite. Errors
//! map to statuses in `error.rs`. `/v1/stream/__relay/{id}` serves relay answers read-only
//! (`relay.rs`), with the relay's own read rules.

mod error;
mod headers;
mod read;
mod relay;
mod sse;
mod write;

use std::sync::Arc;

use arc_swap::ArcSwap;
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use http::{HeaderValue, Method, StatusCode, request::Parts};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::auth::Role;
use crate::config::Config;
use crate::http::AppState;
use error::DsError;

/// Where streams live; a stream's path is everything from here on.
pub(crate) const PREFIX: &str = "/v1/stream/";

/// Longest stream path accepted, so keys and offsets in URLs stay reasonable.
const MAX_PATH: usize = 1024;

/// The streams routes, with their own CORS and security headers (merged into the hub's
/// router after its layers, so they do not apply twice).
pub(crate) fn router(state: AppState) -> Router {
    let cors = cors_layer(&state.config);
    Router::new()
        .route(&format!("{PREFIX}{{*path}}"), any(endpoint))
        .with_state(state)
        .layer(axum::middleware::map_response(security_headers))
        .layer(cors)
}

/// Browser protections the protocol recommends on every response, errors included.
async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("cross-origin"),
    );
    res
}

/// CORS for streams: the hub's `--cors-origins` list (with credentials), or any origin
/// without credentials when none is configured: tokens travel in `Authorization`, which a
/// page must set itself, so no ambient credential is exposed.
fn cors_layer(config: &Arc<ArcSwap<Config>>) -> CorsLayer {
    let origins = config.load().cors_origins.clone();
    let methods = [
        Method::GET,
        Method::HEAD,
        Method::PUT,
        Method::POST,
        Method::DELETE,
        Method::OPTIONS,
    ];
    let layer = CorsLayer::new()
        .allow_methods(methods)
        .allow_headers(headers::ALLOWED)
        .expose_headers(headers::EXPOSED);
    if origins.is_empty() || origins.iter().any(|o| o == "*") {
        return layer.allow_origin(AllowOrigin::any());
    }
    layer
        .allow_origin(super::live_origins(config.clone()))
        .allow_credentials(true)
}

async fn endpoint(State(state): State<AppState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    dispatch(&state, parts, body)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn dispatch(state: &AppState, parts: Parts, body: Body) -> Result<Response, DsError> {
    if parts.uri.path().starts_with(relay::PREFIX) {
        return relay::dispatch(state, parts).await;
    }
    let path = stream_path(parts.uri.path())?;
    match parts.method {
        Method::PUT => write::create(state, path, parts, body).await,
        Method::POST => write::append(state, path, parts, body).await,
        Method::DELETE => write::delete(state, path, parts).await,
        Method::GET => read::get(state, path, parts).await,
        Method::HEAD => read::head(state, path, parts).await,
        Method::OPTIONS => Ok(StatusCode::NO_CONTENT.into_response()),
        other => Err(DsError::MethodNotAllowed(other)),
    }
}

/// The stream's key: its URL path, checked.
fn stream_path(path: &str) -> Result<String, DsError> {
    let name = path.strip_prefix(PREFIX).unwrap_or("");
    if name.is_empty() {
        return Err(DsError::NotServed(
            "name a stream: /v1/stream/{path}".into(),
        ));
    }
    if path.len() > MAX_PATH {
        return Err(DsError::BadRequest(format!(
            "stream path too long: at most {MAX_PATH} bytes"
        )));
    }
    if name == "__ds" || name.starts_with("__ds/") {
        return Err(DsError::NotServed(
            "the __ds prefix is reserved for Durable Streams control APIs (subscriptions), which this hub does not serve".into(),
        ));
    }
    if name == "__relay" {
        return Err(DsError::NotServed(
            "the __relay prefix is reserved for relay answers: /v1/stream/__relay/{id}".into(),
        ));
    }
    Ok(path.to_owned())
}

/// What a request does to the streams it names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    /// `GET`, `HEAD`: needs a subscriber token matching every stream.
    Read,
    /// `PUT`, `POST`, `DELETE`: needs a publisher token granting every stream.
    Write,
}

/// Checks the request's token against the streams it touches (their paths are their topics).
pub(crate) fn authorize(
    state: &AppState,
    parts: &Parts,
    access: Access,
    paths: &[&str],
) -> Result<(), DsError> {
    if state.config.load().anonymous_streams {
        return Ok(());
    }
    let query = parts.uri.query();
    match access {
        Access::Write => {
            let grants = match state.auth.extract_token(&parts.headers, query)? {
                Some((token, source)) => {
                    state.auth.check_publish_origin(&parts.headers, source)?;
                    state.auth.verify(&token, Role::Publisher)?
                }
                None => state.auth.authorize(None, Role::Publisher)?,
            };
            grants.check_publish(paths)?;
        }
        Access::Read => {
            let token = state
                .auth
                .extract_token(&parts.headers, query)?
                .map(|(t, _)| t);
            let grants = state.auth.authorize(token.as_deref(), Role::Subscriber)?;
            if let Some(refused) = paths.iter().find(|p| !grants.can_subscribe(&[**p])) {
                return Err(DsError::Forbidden(format!(
                    "the token's subscribe selectors do not match the stream {refused}"
                )));
            }
        }
    }
    Ok(())
}
