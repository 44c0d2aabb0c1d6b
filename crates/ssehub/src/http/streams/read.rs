//! `GET` (catch-up and long-poll) and `HEAD`.
//!
//! Catch-up answers at most one bounded chunk with `Stream-Next-Offset` for the next request.
//! Chunks with data are immutable and cacheable; an empty answer at the tail says "nothing
//! yet" and is never cached (a cached one would hide later data from the same URL).

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header, request::Parts};

use super::error::DsError;
use super::headers::{
    STREAM_CLOSED, STREAM_CURSOR, STREAM_EXPIRES_AT, STREAM_NEXT_OFFSET, STREAM_TTL,
    STREAM_UP_TO_DATE,
};
use super::{Access, authorize, sse};
use crate::http::AppState;
use crate::streams::content;
use crate::streams::cursor::response_cursor;
use crate::streams::offset::{self, Offset, Start};
use crate::streams::{Chunk, StreamMeta};

/// The live mode a `GET` asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Live {
    CatchUp,
    LongPoll,
    Sse,
}

/// A `GET`'s query.
struct ReadQuery {
    /// `offset` as sent (`None`: absent), for the ETag.
    offset_text: Option<String>,
    start: Start,
    live: Live,
    cursor: Option<String>,
}

fn parse_query(query: Option<&str>) -> Result<ReadQuery, DsError> {
    let mut offsets = Vec::new();
    let mut live = Live::CatchUp;
    let mut cursor = None;
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match &*k {
            "offset" => offsets.push(v.into_owned()),
            "live" => {
                live = match &*v {
                    "long-poll" => Live::LongPoll,
                    "sse" => Live::Sse,
                    other => {
                        return Err(DsError::BadRequest(format!(
                            "invalid live={other:?}: use long-poll or sse (or leave it out to catch up)"
                        )));
                    }
                }
            }
            "cursor" => cursor = Some(v.into_owned()),
            // Other parameters (cache busters, extensions) are ignored, as the protocol asks.
            _ => {}
        }
    }
    if offsets.len() > 1 {
        return Err(DsError::BadRequest("more than one offset parameter".into()));
    }
    let offset_text = offsets.pop();
    let start = match &offset_text {
        None => Start::Beginning,
        Some(t) if t.is_empty() => {
            return Err(DsError::BadRequest("empty offset parameter".into()));
        }
        Some(t) => Start::parse(t).map_err(|e| DsError::BadRequest(format!("{e} (got {t:?})")))?,
    };
    if live != Live::CatchUp && offset_text.is_none() {
        return Err(DsError::BadRequest(
            "live reads need an offset: send offset=-1, offset=now or a Stream-Next-Offset".into(),
        ));
    }
    Ok(ReadQuery {
        offset_text,
        start,
        live,
        cursor,
    })
}

fn set(res: &mut Response, name: http::HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        res.headers_mut().insert(name, v);
    }
}

/// The body of a chunk: a JSON array for JSON streams, the bytes otherwise.
pub(super) fn body_bytes(chunk: &Chunk) -> Vec<u8> {
    if content::is_json(&chunk.meta.content_type) {
        let mut out = Vec::with_capacity(chunk.len() + chunk.parts.len() + 2);
        out.push(b'[');
        for (i, part) in chunk.parts.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(part);
        }
        out.push(b']');
        out
    } else {
        chunk.parts.concat()
    }
}

/// `GET`.
pub(super) async fn get(state: &AppState, path: String, parts: Parts) -> Result<Response, DsError> {
    let query = parse_query(parts.uri.query())?;
    authorize(state, &parts, Access::Read, &[path.as_str()])?;
    match query.live {
        Live::CatchUp => catch_up(state, &path, &parts, &query).await,
        Live::LongPoll => long_poll(state, &path, &query).await,
        Live::Sse => sse::respond(state, &path, query.start, query.cursor).await,
    }
}

async fn catch_up(
    state: &AppState,
    path: &str,
    parts: &Parts,
    query: &ReadQuery,
) -> Result<Response, DsError> {
    let chunk = state.streams.read(path, query.start).await?;
    if query.start == Start::Now {
        // Only the tail position: never cached, no ETag (PROTOCOL.md section 8).
        let body = if content::is_json(&chunk.meta.content_type) {
            "[]"
        } else {
            ""
        };
        let mut res = (StatusCode::OK, body).into_response();
        set(&mut res, header::CONTENT_TYPE, &chunk.meta.content_type);
        set(
            &mut res,
            STREAM_NEXT_OFFSET,
            &chunk.meta.tail_offset().to_string(),
        );
        set(&mut res, STREAM_UP_TO_DATE, "true");
        set(&mut res, header::CACHE_CONTROL, "no-store");
        if chunk.meta.closed {
            set(&mut res, STREAM_CLOSED, "true");
        }
        return Ok(res);
    }
    let etag = format!(
        "\"{}:{}:{}{}\"",
        chunk.meta.id,
        query.offset_text.as_deref().unwrap_or(offset::BEGINNING),
        Offset(chunk.next),
        if chunk.at_end() { ":c" } else { "" }
    );
    if if_none_match(parts, &etag) {
        let mut res = StatusCode::NOT_MODIFIED.into_response();
        set(&mut res, header::ETAG, &etag);
        return Ok(res);
    }
    let mut res = data_response(state, &chunk);
    set(&mut res, header::ETAG, &etag);
    Ok(res)
}

/// Whether `If-None-Match` names this entity tag.
fn if_none_match(parts: &Parts, etag: &str) -> bool {
    parts
        .headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == etag || t == "*")
}

/// A 200 with a chunk's data and the headers every read carries.
fn data_response(state: &AppState, chunk: &Chunk) -> Response {
    let mut res = (StatusCode::OK, Body::from(body_bytes(chunk))).into_response();
    set(&mut res, header::CONTENT_TYPE, &chunk.meta.content_type);
    set(
        &mut res,
        STREAM_NEXT_OFFSET,
        &Offset(chunk.next).to_string(),
    );
    if chunk.up_to_date() {
        set(&mut res, STREAM_UP_TO_DATE, "true");
    }
    if chunk.at_end() {
        set(&mut res, STREAM_CLOSED, "true");
    }
    let cache = if chunk.is_empty() {
        "no-store"
    } else if state.config.load().anonymous_streams {
        "public, max-age=60, stale-while-revalidate=300"
    } else {
        "private, max-age=60, stale-while-revalidate=300"
    };
    set(&mut res, header::CACHE_CONTROL, cache);
    res
}

async fn long_poll(state: &AppState, path: &str, query: &ReadQuery) -> Result<Response, DsError> {
    let from = match query.start {
        Start::At(o) => o,
        Start::Beginning => Offset::ZERO,
        Start::Now => state.streams.head(path).await?.tail_offset(),
    };
    let timeout = state.config.load().streams_long_poll_timeout;
    let cursor = response_cursor(query.cursor.as_deref());
    let _reader = state.streams.metrics().reader();
    match state.streams.wait(path, from, timeout).await? {
        Some(chunk) if !chunk.is_empty() => {
            let mut res = data_response(state, &chunk);
            if !chunk.at_end() {
                set(&mut res, STREAM_CURSOR, &cursor);
            }
            Ok(res)
        }
        Some(chunk) => {
            let mut res = nothing_new(chunk.next, &cursor);
            if chunk.at_end() {
                set(&mut res, STREAM_CLOSED, "true");
                res.headers_mut().remove(STREAM_CURSOR);
            }
            Ok(res)
        }
        None => Ok(nothing_new(from.0, &cursor)),
    }
}

/// A long-poll's 204: caught up, nothing new.
fn nothing_new(next: u64, cursor: &str) -> Response {
    let mut res = StatusCode::NO_CONTENT.into_response();
    set(&mut res, STREAM_NEXT_OFFSET, &Offset(next).to_string());
    set(&mut res, STREAM_UP_TO_DATE, "true");
    set(&mut res, STREAM_CURSOR, cursor);
    set(&mut res, header::CACHE_CONTROL, "no-store");
    res
}

/// `HEAD`: the stream's metadata; not a read, so it does not renew a TTL.
pub(super) async fn head(
    state: &AppState,
    path: String,
    parts: Parts,
) -> Result<Response, DsError> {
    authorize(state, &parts, Access::Read, &[path.as_str()])?;
    let meta = state.streams.head(&path).await?;
    Ok(metadata(&meta))
}

fn metadata(meta: &StreamMeta) -> Response {
    let mut res = StatusCode::OK.into_response();
    set(&mut res, header::CONTENT_TYPE, &meta.content_type);
    set(
        &mut res,
        STREAM_NEXT_OFFSET,
        &meta.tail_offset().to_string(),
    );
    set(&mut res, header::CACHE_CONTROL, "no-store");
    if meta.closed {
        set(&mut res, STREAM_CLOSED, "true");
    }
    if let Some(ttl) = meta.ttl_secs {
        set(&mut res, STREAM_TTL, &ttl.to_string());
    }
    if let Some(deadline) = &meta.expires_at {
        set(&mut res, STREAM_EXPIRES_AT, &deadline.text);
    }
    res
}
