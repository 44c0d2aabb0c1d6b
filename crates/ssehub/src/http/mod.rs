//! The HTTP layer: the only part of ssehub that speaks HTTP. [`app`] builds the router from
//! shared state (so tests can drive it without a socket); [`server::serve`] accepts
//! connections and runs it.

mod assets;
mod console_token;
mod error;
// Public only for the fuzz target (`fuzz/fuzz_targets/http1.rs`); not a stable interface.
#[doc(hidden)]
pub mod h1;
mod mercure;
mod messages;
mod openai;
mod ops;
mod refusals;
mod responses;
pub mod server;
mod sse;
mod streams;
mod subscriptions;
pub mod trace;

use std::sync::Arc;

use arc_swap::ArcSwap;
use axum::Router;
use axum::routing::{any, get, post};
use http::{HeaderName, HeaderValue, Method};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::auth::Authorizer;
use crate::config::Config;
use crate::hub::{Hub, SUBSCRIPTIONS_PATH};
use crate::relay::Relay;
use crate::streams::Streams;
use crate::topic::{MERCURE_PATH, RELAY_STREAMS, SelectorCache};

/// The relay's OpenAI-compatible endpoint.
pub(crate) const CHAT_COMPLETIONS_PATH: &str = "/v1/chat/completions";

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The hub core.
    pub hub: Hub,
    /// Token verification for publishers and subscribers.
    pub auth: Arc<Authorizer>,
    /// Compiled selectors shared by every subscription and token grant.
    pub selectors: Arc<SelectorCache>,
    /// The configuration the hub runs with; read per request, so that what a reload
    /// ([`crate::Reloader`]) swaps in applies to the next request.
    pub config: Arc<ArcSwap<Config>>,
    /// The OpenAI-compatible relay.
    pub relay: Arc<Relay>,
    /// The Durable Streams store behind `/v1/stream/*`.
    pub streams: Streams,
}

/// The hub's routes.
pub fn app(state: AppState) -> Router {
    let cors = cors_layer(&state.config);
    let router = Router::new()
        .route(MERCURE_PATH, any(mercure::endpoint))
        .route(SUBSCRIPTIONS_PATH, get(subscriptions::all))
        .route(
            &format!("{SUBSCRIPTIONS_PATH}/{{topic}}"),
            get(subscriptions::by_topic),
        )
        .route(
            &format!("{SUBSCRIPTIONS_PATH}/{{topic}}/{{subscriber}}"),
            get(subscriptions::one),
        )
        .route("/", get(assets::chat))
        .route("/chat.css", get(assets::chat_styles))
        .route("/console", get(assets::console))
        .route(console_token::PATH, get(console_token::dev_token))
        .route("/ssehub.js", get(assets::module))
        .route("/demo/ticker", get(assets::ticker))
        .route("/demo/logs", get(assets::logs))
        .route("/demo/online", get(assets::online))
        .route("/demo/demo.js", get(assets::demo_module))
        .route("/demo/demo.css", get(assets::demo_styles))
        .route(CHAT_COMPLETIONS_PATH, post(openai::chat_completions))
        .route("/v1/models", get(openai::models))
        .route(&format!("{RELAY_STREAMS}{{id}}"), get(openai::watch_stream))
        .route(
            &format!("{RELAY_STREAMS}{{id}}/cancel"),
            post(openai::cancel_stream),
        )
        // The relay's other fronts (issue 14): OpenAI Responses, Anthropic Messages.
        .route("/v1/responses", post(responses::create))
        .route("/v1/responses/{id}", get(responses::retrieve))
        .route("/v1/responses/{id}/cancel", post(responses::cancel))
        .route("/v1/messages", post(messages::create))
        .route("/healthz", get(ops::healthz))
        .route("/metrics", get(ops::metrics))
        // After every route: it applies to the routes added so far.
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .with_state(state.clone());
    let router = match cors {
        Some(cors) => router.layer(cors),
        None => router,
    };
    // Merged after the hub's layers: streams have their own CORS and headers.
    router.merge(streams::router(state))
}

/// axum's own 404 has an empty body; this one names what was asked for.
async fn not_found(uri: http::Uri) -> error::ApiError {
    error::ApiError::NotFound(format!("no such resource: {}", uri.path()))
}

/// axum's own 405 has an empty body (it still adds `Allow`); this one names the method.
async fn method_not_allowed(method: Method, uri: http::Uri) -> error::ApiError {
    error::ApiError::MethodNotAllowed(format!(
        "{method} is not supported on {} (the Allow header lists what is)",
        uri.path()
    ))
}

/// CORS for browsers on other origins: an explicit allow-list with credentials (cookies,
/// `Authorization`), or `*` without credentials. No list, no CORS headers.
///
/// Which of the three it is stays as started; the origins of a list are read per request, so
/// a reload can change them.
fn cors_layer(config: &Arc<ArcSwap<Config>>) -> Option<CorsLayer> {
    let origins = config.load().cors_origins.clone();
    if origins.is_empty() {
        return None;
    }
    let headers = [
        http::header::AUTHORIZATION,
        http::header::CACHE_CONTROL,
        http::header::CONTENT_TYPE,
        sse::LAST_EVENT_ID,
    ];
    let expose = [
        sse::LAST_EVENT_ID,
        HeaderName::from_static("mercure-last-event-id"),
        HeaderName::from_static("x-stream-id"),
    ];
    // QUERY: the 1.0 drafts' subscribe with a form body.
    let query = Method::from_bytes(b"QUERY").expect("QUERY is a valid method token");
    let methods = [Method::GET, Method::POST, Method::OPTIONS, query];
    let layer = CorsLayer::new()
        .allow_methods(methods)
        .allow_headers(headers)
        .expose_headers(expose);
    if origins.iter().any(|o| o == "*") {
        return Some(layer.allow_origin(AllowOrigin::any()));
    }
    Some(
        layer
            .allow_origin(live_origins(config.clone()))
            .allow_credentials(true),
    )
}

/// The `--cors-origins` list as it is now (a reload may change it).
pub(crate) fn live_origins(config: Arc<ArcSwap<Config>>) -> AllowOrigin {
    AllowOrigin::predicate(move |origin: &HeaderValue, _| {
        config
            .load()
            .cors_origins
            .iter()
            .any(|o| o.trim().as_bytes() == origin.as_bytes())
    })
}
