//! `/v1/stream/__relay/{id}`: a relay answer, read-only, as a Durable Stream.
//!
//! The answer the relay records as hub topic `/v1/streams/{id}` (see `crate::relay`) is served
//! here in the Durable Streams protocol, so its clients can read a ChatGPT-style answer by
//! offset, long-poll or SSE-tail it, and resume it after a reload. It is a JSON stream: each
//! message is one `chat.completion.chunk` object (error and cancel chunks included), and the
//! relay's `[DONE]` is the stream's close. Offsets are positions in the hub's history
//! (`relay::ds_view`): the same on every node and across restarts.
//!
//! Why under `/v1/stream/`: Durable Streams clients take a stream URL under the server's
//! stream root, and a `__` name is the protocol's convention for what the server itself
//! provides (`__ds`); ordinary streams cannot be created under `__relay/`.
//!
//! Who may read: with `--relay-api-keys`, the key that started the answer (the relay's owner
//! rule), or a subscriber JWT whose selectors match `/v1/streams/{id}` (as a Mercure
//! subscriber of the topic); with no keys, the id is the capability, as for
//! `GET /v1/streams/{id}`. Writes are refused with 405: the relay alone writes answers.

use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode, header, request::Parts};
use tokio::time::Instant;

use super::error::DsError;
use super::headers::{STREAM_CLOSED, STREAM_CURSOR, STREAM_NEXT_OFFSET, STREAM_UP_TO_DATE};
use crate::auth::Role;
use crate::http::AppState;
use crate::relay::{AnswerRead, Caller};
use crate::streams::ReaderGuard;
use crate::streams::cursor::response_cursor;
use crate::topic::RELAY_STREAMS;

/// Where relay answers are read.
pub(crate) const PREFIX: &str = "/v1/stream/__relay/";

/// About this many bytes of chunks per catch-up answer or SSE event.
const READ_BYTES: usize = 256 * 1024;

/// Serves a request under [`PREFIX`].
pub(super) async fn dispatch(state: &AppState, parts: Parts) -> Result<Response, DsError> {
    let id = parts
        .uri
        .path()
        .strip_prefix(PREFIX)
        .unwrap_or("")
        .to_owned();
    if id.is_empty() || id.contains('/') {
        return Err(DsError::NotServed(
            "name a relay answer: /v1/stream/__relay/{id}, with the id of X-Stream-Id".into(),
        ));
    }
    match parts.method {
        Method::GET => get(state, &id, &parts).await,
        Method::HEAD => head(state, &id, &parts).await,
        Method::OPTIONS => Ok(StatusCode::NO_CONTENT.into_response()),
        _ => Err(DsError::ReadOnly(format!(
            "relay answers are read-only: only the relay writes {PREFIX}{id}; read it with GET or HEAD"
        ))),
    }
}

/// Who is reading, by the rules in the module header.
fn caller(state: &AppState, parts: &Parts, id: &str) -> Result<Caller, DsError> {
    let config = state.config.load();
    let keys = &config.relay_api_keys;
    if keys.is_empty() {
        return Ok(Caller::Anyone);
    }
    let bearer = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    if let Some(key) = bearer.filter(|b| keys.iter().any(|k| k == b)) {
        return Ok(Caller::Key(key.to_owned()));
    }
    let Some((token, _)) = state
        .auth
        .extract_token(&parts.headers, parts.uri.query())?
    else {
        return Err(DsError::Unauthorized(format!(
            "send Authorization: Bearer with the --relay-api-keys key that started the answer, or a subscriber JWT granting {RELAY_STREAMS}{id}"
        )));
    };
    let grants = state.auth.authorize(Some(&token), Role::Subscriber)?;
    let topic = format!("{RELAY_STREAMS}{id}");
    if grants.can_subscribe(&[topic.as_str()]) {
        Ok(Caller::Anyone)
    } else {
        Err(DsError::Forbidden(format!(
            "the token's subscribe selectors do not match {topic}"
        )))
    }
}

/// Where a read starts.
enum From {
    Beginning,
    Now,
    At(u64),
}

/// `offset`, `live` and `cursor` of a `GET`.
struct Query {
    from: From,
    live: Option<bool>,
    cursor: Option<String>,
}

fn parse_query(query: Option<&str>) -> Result<Query, DsError> {
    let mut q = Query {
        from: From::Beginning,
        live: None,
        cursor: None,
    };
    let mut offset_seen = false;
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match &*k {
            "offset" if offset_seen => {
                return Err(DsError::BadRequest("more than one offset parameter".into()));
            }
            "offset" => {
                offset_seen = true;
                q.from = match &*v {
                    "-1" => From::Beginning,
                    "now" => From::Now,
                    t if !t.is_empty()
                        && t.len() <= 20
                        && t.bytes().all(|b| b.is_ascii_digit()) =>
                    {
                        From::At(t.parse().map_err(|_| bad_offset(t))?)
                    }
                    t => return Err(bad_offset(t)),
                }
            }
            "live" => {
                q.live = Some(match &*v {
                    "long-poll" => false,
                    "sse" => true,
                    other => {
                        return Err(DsError::BadRequest(format!(
                            "invalid live={other:?}: use long-poll or sse (or leave it out to catch up)"
                        )));
                    }
                })
            }
            "cursor" => q.cursor = Some(v.into_owned()),
            _ => {}
        }
    }
    if q.live.is_some() && !offset_seen {
        return Err(DsError::BadRequest(
            "live reads need an offset: send offset=-1, offset=now or a Stream-Next-Offset".into(),
        ));
    }
    Ok(q)
}

fn bad_offset(t: &str) -> DsError {
    DsError::BadRequest(format!(
        "invalid offset {t:?}: use -1, now, or a Stream-Next-Offset this answer returned"
    ))
}

fn offset(seq: u64) -> String {
    format!("{seq:020}")
}

fn set(res: &mut Response, name: http::HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        res.headers_mut().insert(name, v);
    }
}

/// Chunks as a JSON array; a chunk that is not JSON (never written by the relay) goes in as
/// a string, so the body stays valid.
fn json_array(chunks: &[String]) -> String {
    let mut out = String::with_capacity(chunks.iter().map(|c| c.len() + 1).sum::<usize>() + 2);
    out.push('[');
    for (i, c) in chunks.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        if serde_json::from_str::<serde::de::IgnoredAny>(c).is_ok() {
            out.push_str(c);
        } else {
            out.push_str(&serde_json::Value::from(c.as_str()).to_string());
        }
    }
    out.push(']');
    out
}

/// `GET`: catch-up, long-poll or SSE.
async fn get(state: &AppState, id: &str, parts: &Parts) -> Result<Response, DsError> {
    let query = parse_query(parts.uri.query())?;
    let who = caller(state, parts, id)?;
    let start = state.relay.open_answer(&who, id).await?;
    let after = match query.from {
        From::Beginning => start,
        From::Now => state.relay.answer_tail().await?,
        From::At(seq) => seq.max(start),
    };
    match query.live {
        None => {
            let read = state.relay.read_answer(id, after, READ_BYTES).await?;
            Ok(data_response(&read))
        }
        Some(false) => {
            let timeout = state.config.load().streams_long_poll_timeout;
            let _reader = state.streams.metrics().reader();
            let read = state
                .relay
                .wait_answer(id, after, READ_BYTES, timeout)
                .await?;
            let cursor = response_cursor(query.cursor.as_deref());
            if read.chunks.is_empty() && read.up_to_date {
                let mut res = StatusCode::NO_CONTENT.into_response();
                set(&mut res, STREAM_NEXT_OFFSET, &offset(read.next));
                set(&mut res, STREAM_UP_TO_DATE, "true");
                set(&mut res, header::CACHE_CONTROL, "no-store");
                if read.closed {
                    set(&mut res, STREAM_CLOSED, "true");
                } else {
                    set(&mut res, STREAM_CURSOR, &cursor);
                }
                return Ok(res);
            }
            let mut res = data_response(&read);
            if !read.closed {
                set(&mut res, STREAM_CURSOR, &cursor);
            }
            Ok(res)
        }
        Some(true) => Ok(sse(state, id, after, query.cursor)),
    }
}

/// A read's answer: the chunks as a JSON array and where to continue.
fn data_response(read: &AnswerRead) -> Response {
    let mut res = (StatusCode::OK, json_array(&read.chunks)).into_response();
    set(&mut res, header::CONTENT_TYPE, "application/json");
    set(&mut res, STREAM_NEXT_OFFSET, &offset(read.next));
    // Answers are private: no shared cache keeps them.
    set(&mut res, header::CACHE_CONTROL, "private, no-store");
    if read.up_to_date {
        set(&mut res, STREAM_UP_TO_DATE, "true");
    }
    if read.closed {
        set(&mut res, STREAM_CLOSED, "true");
    }
    res
}

/// `HEAD`: the answer's tail and whether it is over.
async fn head(state: &AppState, id: &str, parts: &Parts) -> Result<Response, DsError> {
    let who = caller(state, parts, id)?;
    let mut after = state.relay.open_answer(&who, id).await?;
    let read = loop {
        let read = state.relay.read_answer(id, after, usize::MAX).await?;
        if read.up_to_date {
            break read;
        }
        after = read.next;
    };
    let mut res = StatusCode::OK.into_response();
    set(&mut res, header::CONTENT_TYPE, "application/json");
    set(&mut res, STREAM_NEXT_OFFSET, &offset(read.next));
    set(&mut res, header::CACHE_CONTROL, "no-store");
    if read.closed {
        set(&mut res, STREAM_CLOSED, "true");
    }
    Ok(res)
}

/// An SSE tail of the answer: one data event per read, each followed by a control event.
struct Tail {
    state: AppState,
    id: String,
    after: u64,
    cursor: Option<String>,
    /// The first control event went out.
    announced: bool,
    /// The closing control event went out.
    finished: bool,
    /// Silence after which a keep-alive control event goes out.
    keep_alive: Duration,
    /// When the response ends so the client reconnects.
    ends_at: Instant,
    /// Counts this connection in `ssehub_ds_readers`.
    _reader: ReaderGuard,
}

fn sse(state: &AppState, id: &str, after: u64, cursor: Option<String>) -> Response {
    let tail = Tail {
        state: state.clone(),
        id: id.to_owned(),
        after,
        cursor,
        announced: false,
        finished: false,
        keep_alive: state.config.load().streams_long_poll_timeout,
        ends_at: Instant::now() + state.config.load().streams_sse_max_duration,
        _reader: state.streams.metrics().reader(),
    };
    let frames = futures_util::stream::unfold(tail, |mut tail| async move {
        let frame = tail.next_frame().await?;
        Some((Ok::<Bytes, std::convert::Infallible>(frame), tail))
    });
    let mut res = (StatusCode::OK, Body::from_stream(frames)).into_response();
    set(&mut res, header::CONTENT_TYPE, "text/event-stream");
    set(&mut res, header::CACHE_CONTROL, "no-cache");
    set(
        &mut res,
        http::HeaderName::from_static("x-accel-buffering"),
        "no",
    );
    res
}

impl Tail {
    async fn next_frame(&mut self) -> Option<Bytes> {
        if self.finished {
            return None;
        }
        let wait = self
            .keep_alive
            .min(self.ends_at.saturating_duration_since(Instant::now()));
        if wait.is_zero() {
            return None;
        }
        let shutdown = self.state.streams.shutdown().clone();
        let read = tokio::select! {
            r = self.state.relay.wait_answer(&self.id, self.after, READ_BYTES, if self.announced { wait } else { Duration::ZERO }) => r,
            () = shutdown.cancelled() => return None,
        };
        let read = match read {
            Ok(read) => read,
            Err(err) => {
                tracing::debug!(stream = %self.id, error = %err, "relay answer tail ended");
                return None;
            }
        };
        self.after = read.next;
        let mut frame = Vec::new();
        if !read.chunks.is_empty() {
            frame.extend_from_slice(b"event: data\ndata:");
            frame.extend_from_slice(json_array(&read.chunks).as_bytes());
            frame.extend_from_slice(b"\n\n");
        }
        let next = offset(read.next);
        let json = if read.closed {
            self.finished = true;
            format!(r#"{{"streamNextOffset":"{next}","streamClosed":true,"upToDate":true}}"#)
        } else {
            let cursor = response_cursor(self.cursor.as_deref());
            let up = if read.up_to_date {
                r#","upToDate":true"#
            } else {
                ""
            };
            format!(r#"{{"streamNextOffset":"{next}","streamCursor":"{cursor}"{up}}}"#)
        };
        frame.extend_from_slice(format!("event: control\ndata:{json}\n\n").as_bytes());
        self.announced = true;
        Some(Bytes::from(frame))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_sort_as_text_like_their_positions() {
        assert!(offset(9) < offset(10));
        assert_eq!(offset(42).len(), 20);
        assert_eq!(offset(u64::MAX).len(), 20);
    }

    #[test]
    fn queries_parse_and_bad_ones_are_refused() {
        assert!(matches!(
            parse_query(Some("offset=-1")).unwrap().from,
            From::Beginning
        ));
        assert!(matches!(
            parse_query(Some("offset=now&live=sse")).unwrap().from,
            From::Now
        ));
        assert!(matches!(
            parse_query(Some("offset=00000000000000000042&live=long-poll"))
                .unwrap()
                .from,
            From::At(42)
        ));
        for bad in [
            "offset=abc",
            "offset=",
            "offset=1&offset=2",
            "live=sse",
            "offset=-1&live=x",
        ] {
            assert!(parse_query(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_chunk_that_is_not_json_becomes_a_string() {
        let chunks = vec![r#"{"a":1}"#.to_owned(), "not json".to_owned()];
        assert_eq!(json_array(&chunks), r#"[{"a":1},"not json"]"#);
        assert_eq!(json_array(&[]), "[]");
    }
}
