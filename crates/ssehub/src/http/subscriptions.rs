//! The subscriptions API (`--subscriptions`): `GET /.well-known/mercure/subscriptions[/{topic}[/{subscriber}]]`
//! lists active subscriptions as JSON-LD, with the `lastEventID` to subscribe from so that no
//! subscription event is missed between the listing and the stream.

use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use http::header;
use serde_json::json;

use crate::auth::{AuthError, Role, TokenFormat};
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::mercure::subscriber_grants;
use crate::hub::{CONTEXT, SUBSCRIPTIONS_PATH, subscription_iri, topic_iri};

/// `GET /.well-known/mercure/subscriptions`
pub(crate) async fn all(State(state): State<AppState>, req: Request) -> Response {
    list(state, req, None, None)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// `GET /.well-known/mercure/subscriptions/{topic}`
pub(crate) async fn by_topic(
    State(state): State<AppState>,
    Path(topic): Path<String>,
    req: Request,
) -> Response {
    list(state, req, Some(topic), None)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// `GET /.well-known/mercure/subscriptions/{topic}/{subscriber}`
pub(crate) async fn one(
    State(state): State<AppState>,
    Path((topic, subscriber)): Path<(String, String)>,
    req: Request,
) -> Response {
    list(state, req, Some(topic), Some(subscriber))
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn list(
    state: AppState,
    req: Request,
    topic: Option<String>,
    subscriber: Option<String>,
) -> Result<Response, ApiError> {
    let Some(presence) = state.hub.presence() else {
        return Err(ApiError::NotFound(
            "the subscriptions API is disabled on this hub (start it with --subscriptions)".into(),
        ));
    };
    let headers = req.headers();
    let iri = match (&topic, &subscriber) {
        (Some(t), Some(s)) => subscription_iri(t, s),
        (Some(t), None) => topic_iri(t),
        _ => SUBSCRIPTIONS_PATH.to_owned(),
    };
    let grants = subscriber_grants(&state, headers, req.uri().query())?;
    if !grants.can_subscribe(&[iri.as_str()]) {
        // No credentials at all is RFC 6750's 401 with a bare challenge, even where
        // `--anonymous` let the request this far: anonymous grants never cover this API.
        if grants.format == TokenFormat::Anonymous {
            return Err(AuthError::MissingToken {
                role: Role::Subscriber,
                cookie: state.auth.config().cookie_name.clone(),
            }
            .into());
        }
        return Err(AuthError::TopicNotGranted {
            topic: iri,
            detail: format!(
                "the subscriptions API needs a subscribe selector matching it (e.g. {SUBSCRIPTIONS_PATH}{{/topic}}{{/subscriber}})"
            ),
        }
        .into());
    }
    // Read before listing: subscribing from this id then misses no change after the listing.
    let last_event_id = state.hub.last_event_id();
    let docs = presence.list(topic.as_deref(), subscriber.as_deref());
    let body = match subscriber {
        Some(_) => {
            let Some(doc) = docs.into_iter().next() else {
                return Err(ApiError::NotFound(format!("no active subscription {iri}")));
            };
            let mut v = serde_json::to_value(&doc).unwrap_or_default();
            v["@context"] = json!(CONTEXT);
            v["lastEventID"] = json!(last_event_id);
            v
        }
        None => json!({
            "@context": CONTEXT,
            "id": iri,
            "type": "Subscriptions",
            "lastEventID": last_event_id,
            "subscriptions": docs,
        }),
    };
    Ok((
        [(header::CONTENT_TYPE, "application/ld+json")],
        body.to_string(),
    )
        .into_response())
}
