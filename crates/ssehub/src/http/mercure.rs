//! The Mercure endpoint `/.well-known/mercure`: publish (`POST`) and subscribe (`GET`, or
//! the 1.0 drafts' `QUERY`), both generations of selectors and tokens on the same URL.

use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, Method, header};
use tracing::Instrument as _;

use crate::auth::{Grants, Role};
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::sse::{LAST_EVENT_ID, event_stream, last_event_id};
use crate::http::trace;
use crate::hub::{Filter, NewUpdate, SubscribeRequest};
use crate::topic::{MERCURE_PATH, Selector};

/// The `Cache-Control` the Mercure spec asks for on event streams.
const STREAM_CACHE_CONTROL: &str = "private, no-cache, no-store, must-revalidate, max-age=0";

/// Routes `GET`/`QUERY` to subscribe and `POST` to publish.
pub(crate) async fn endpoint(State(state): State<AppState>, req: Request) -> Response {
    let method = req.method().clone();
    let result = if method == Method::GET || method.as_str() == "QUERY" {
        subscribe(state, req).await
    } else if method == Method::POST {
        // From the request to the durable acknowledgement: `publish` answers only then.
        let span = trace::server_span(&method, MERCURE_PATH, req.uri().path(), req.headers());
        let res = publish(state, req)
            .instrument(span.clone())
            .await
            .unwrap_or_else(IntoResponse::into_response);
        trace::record_status(&span, res.status());
        return res;
    } else {
        Err(ApiError::MethodNotAllowed(format!(
            "{method} is not supported on /.well-known/mercure: use GET to subscribe or POST to publish"
        )))
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

/// Reads a body up to the configured limit, answering 413 beyond it.
async fn read_body(state: &AppState, req: Request) -> Result<Bytes, ApiError> {
    let limit = state.config.load().max_body_bytes;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::TooLarge { limit });
    }
    axum::body::to_bytes(req.into_body(), limit)
        .await
        .map_err(|err| {
            if std::error::Error::source(&err)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
            {
                ApiError::TooLarge { limit }
            } else {
                ApiError::BadRequest(format!("could not read the request body: {err}"))
            }
        })
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| {
            m.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// What a subscriber's token (or its absence, with `--anonymous`) allows.
pub(crate) fn subscriber_grants(
    state: &AppState,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<Grants, ApiError> {
    let token = state.auth.extract_token(headers, query)?.map(|(t, _)| t);
    Ok(state.auth.authorize(token.as_deref(), Role::Subscriber)?)
}

async fn publish(state: AppState, req: Request) -> Result<Response, ApiError> {
    let grants = match state.auth.extract_token(req.headers(), req.uri().query())? {
        Some((token, source)) => {
            state.auth.check_publish_origin(req.headers(), source)?;
            state.auth.verify(&token, Role::Publisher)?
        }
        None => state.auth.authorize(None, Role::Publisher)?,
    };
    if !is_form(req.headers()) {
        return Err(ApiError::UnsupportedMediaType(
            "publish bodies must be application/x-www-form-urlencoded (topic=...&data=...)".into(),
        ));
    }
    let body = read_body(&state, req).await?;
    let new = NewUpdate::from_form(&body).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    grants.check_publish(&new.topics)?;
    let stored = state.hub.publish(new).await?;
    let id = stored.update.id.clone();
    tracing::debug!(id = %id, topic = %stored.update.topics[0], "published");
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], id).into_response())
}

/// The selectors and history position a subscriber asked for.
struct SubscribeQuery {
    /// (group-key text, compiled selector)
    selectors: Vec<(String, Arc<Selector>)>,
    /// The selectors as written, for subscription events.
    topics: Vec<String>,
    last_event_id: Option<String>,
}

fn parse_subscribe_query(
    state: &AppState,
    query: &str,
    headers: &HeaderMap,
) -> Result<SubscribeQuery, ApiError> {
    let cache = &state.selectors;
    let mut selectors = Vec::new();
    let mut topics = Vec::new();
    let mut query_last_id: Option<(u8, String)> = None;
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        let compiled = match &*k {
            "topic" => Some(("t", cache.topic(&v))),
            // Both the 1.0 drafts' snake_case and draft 08's camelCase spellings.
            "match" | "match_exact" | "matchExact" => Some(("e", cache.exact(&v))),
            "match_urlpattern" | "matchURLPattern" => Some(("u", cache.url_pattern(&v))),
            // 1.0's name wins over 0.x's when both are present.
            "last_event_id" => {
                query_last_id = Some((1, v.to_string()));
                None
            }
            "lastEventID" => {
                if query_last_id.as_ref().is_none_or(|(rank, _)| *rank < 1) {
                    query_last_id = Some((0, v.to_string()));
                }
                None
            }
            _ => None,
        };
        if let Some((kind, compiled)) = compiled {
            let sel = compiled.map_err(|e| {
                ApiError::BadRequest(format!("invalid selector {:?} in `{k}`: {e}", &*v))
            })?;
            selectors.push((format!("{kind}:{v}"), sel));
            topics.push(v.to_string());
            if selectors.len() > state.config.load().max_selectors {
                return Err(ApiError::BadRequest(format!(
                    "too many selectors: at most {} per subscription",
                    state.config.load().max_selectors
                )));
            }
        }
    }
    if selectors.is_empty() {
        return Err(ApiError::BadRequest(
            "missing topic selector: add `topic=` (or `match=`, `match_urlpattern=`) to the query"
                .into(),
        ));
    }
    let last_event_id = last_event_id(headers, query_last_id.map(|(_, v)| v));
    Ok(SubscribeQuery {
        selectors,
        topics,
        last_event_id,
    })
}

async fn subscribe(state: AppState, req: Request) -> Result<Response, ApiError> {
    let headers = req.headers().clone();
    // QUERY carries its selectors in a form body instead of the URL.
    let query = if req.method().as_str() == "QUERY" {
        let body = read_body(&state, req).await?;
        String::from_utf8(body.to_vec())
            .map_err(|_| ApiError::BadRequest("QUERY body is not UTF-8".into()))?
    } else {
        req.uri().query().unwrap_or("").to_owned()
    };
    let wanted = parse_subscribe_query(&state, &query, &headers)?;
    let grants = subscriber_grants(&state, &headers, Some(&query))?;
    grants.check_selectors(wanted.selectors.iter().map(|(_, s)| &**s))?;
    let grant_selectors = grant_texts(&grants);
    let expires_at = grants.expires_at.map(|exp| {
        let left = exp.duration_since(SystemTime::now()).unwrap_or_default();
        tokio::time::Instant::now() + left
    });
    let request = SubscribeRequest {
        filter: Filter::new(wanted.selectors, grant_selectors),
        last_event_id: wanted.last_event_id.as_deref(),
        expires_at,
        topics: wanted
            .topics
            .into_iter()
            .map(|t| {
                let payload = grants.payload_for(&t).cloned();
                (t, payload)
            })
            .collect(),
    };
    let sub = state.hub.subscribe(request).await?;
    let cut_off = sub.stream.cut_off();
    let mut res = event_stream(sub.stream.into_stream(), STREAM_CACHE_CONTROL);
    // For the HTTP/1.1 writer: a cut-off subscriber's connection closes within seconds.
    res.extensions_mut().insert(cut_off);
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&sub.last_event_id) {
        h.insert(LAST_EVENT_ID, v.clone());
        h.insert("mercure-last-event-id", v);
    }
    Ok(res)
}

/// The grant selectors of a subscriber token, as (group-key text, selector) pairs.
fn grant_texts(grants: &Grants) -> Vec<(String, Arc<Selector>)> {
    grants
        .subscribe
        .iter()
        .map(|s| (format!("{}:{}", selector_kind(s), s.source()), s.clone()))
        .collect()
}

/// A letter naming the selector's kind, so equal texts of different kinds never share a group.
fn selector_kind(s: &Selector) -> char {
    match s {
        Selector::All => '*',
        Selector::Exact(_) => 'e',
        Selector::Template(_) => 't',
        Selector::UrlPattern(_) => 'u',
    }
}
