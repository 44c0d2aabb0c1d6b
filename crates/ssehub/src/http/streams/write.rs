//! `PUT` (create, fork), `POST` (append, close) and `DELETE`: headers checked at the edge,
//! then one request to the store, answered once durable.

use axum::body::{Body, Bytes};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts};

use super::error::DsError;
use super::headers::{
    self, PRODUCER_EPOCH, PRODUCER_ID, PRODUCER_SEQ, STREAM_CLOSED, STREAM_EXPIRES_AT,
    STREAM_FORK_OFFSET, STREAM_FORK_SUB_OFFSET, STREAM_FORKED_FROM, STREAM_NEXT_OFFSET, STREAM_SEQ,
    STREAM_TTL,
};
use super::{Access, PREFIX, authorize};
use crate::http::AppState;
use crate::streams::content::{self, DEFAULT_CONTENT_TYPE};
use crate::streams::expiry::{self, Deadline};
use crate::streams::producer::MAX_NUMBER;
use crate::streams::{
    AppendRequest, CreateRequest, ForkRequest, Offset, Outcome, Producer, StreamMeta,
};

/// Reads a body up to the configured limit, answering 413 beyond it.
async fn read_body(state: &AppState, parts: &Parts, body: Body) -> Result<Bytes, DsError> {
    let limit = state.config.load().streams_max_append_bytes;
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(DsError::TooLarge { limit });
    }
    axum::body::to_bytes(body, limit).await.map_err(|err| {
        if std::error::Error::source(&err)
            .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
        {
            DsError::TooLarge { limit }
        } else {
            DsError::BadRequest(format!("could not read the request body: {err}"))
        }
    })
}

/// The request's `Content-Type` if it looks like one.
fn content_type(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .filter(|v| content::is_plausible(v))
        .map(|v| v.trim().to_owned())
}

/// Headers every successful write answers with.
fn written(meta: &StreamMeta) -> Vec<(http::HeaderName, String)> {
    let mut h = vec![(STREAM_NEXT_OFFSET, meta.tail_offset().to_string())];
    if meta.closed {
        h.push((STREAM_CLOSED, "true".into()));
    }
    h
}

fn respond(status: StatusCode, headers: Vec<(http::HeaderName, String)>) -> Response {
    let mut res = status.into_response();
    for (name, value) in headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            res.headers_mut().insert(name, v);
        }
    }
    res
}

/// The stream path in `Stream-Forked-From`: a path on this server (a full URL is reduced to
/// its path, since forks never cross servers).
fn fork_source(value: &str) -> Result<String, DsError> {
    let path = if value.starts_with("http://") || value.starts_with("https://") {
        url::Url::parse(value)
            .map_err(|e| DsError::BadRequest(format!("invalid Stream-Forked-From {value:?}: {e}")))?
            .path()
            .to_owned()
    } else {
        value.trim().to_owned()
    };
    if !path.starts_with(PREFIX) || path.len() == PREFIX.len() {
        return Err(DsError::BadRequest(format!(
            "invalid Stream-Forked-From {value:?}: name a stream on this server, like {PREFIX}name"
        )));
    }
    Ok(path)
}

/// `PUT`: create a stream, or confirm an identical one.
pub(super) async fn create(
    state: &AppState,
    path: String,
    parts: Parts,
    body: Body,
) -> Result<Response, DsError> {
    let h = &parts.headers;
    let ttl_secs = headers::text(h, &STREAM_TTL)?
        .map(expiry::parse_ttl)
        .transpose()
        .map_err(|e| DsError::BadRequest(e.to_string()))?;
    let expires_at = headers::text(h, &STREAM_EXPIRES_AT)?
        .map(Deadline::parse)
        .transpose()
        .map_err(|e| DsError::BadRequest(e.to_string()))?;
    if ttl_secs.is_some() && expires_at.is_some() {
        return Err(DsError::BadRequest(
            "Stream-TTL and Stream-Expires-At are exclusive: send one of them".into(),
        ));
    }
    let source = headers::text(h, &STREAM_FORKED_FROM)?
        .map(fork_source)
        .transpose()?;
    let fork_offset = headers::text(h, &STREAM_FORK_OFFSET)?
        .map(|v| {
            Offset::parse(v)
                .map_err(|e| DsError::BadRequest(format!("invalid Stream-Fork-Offset {v:?}: {e}")))
        })
        .transpose()?;
    let sub_offset = match headers::text(h, &STREAM_FORK_SUB_OFFSET)? {
        None => None,
        Some(v) if expiry::is_plain_decimal(v) => Some(v.parse::<u64>().map_err(|_| {
            DsError::BadRequest(format!("invalid Stream-Fork-Sub-Offset {v:?}: too large"))
        })?),
        Some(v) => {
            return Err(DsError::BadRequest(format!(
                "invalid Stream-Fork-Sub-Offset {v:?}: use a non-negative integer without leading zeros"
            )));
        }
    };
    let fork = match source {
        Some(source) => Some(ForkRequest {
            source,
            offset: fork_offset,
            sub_offset: sub_offset.unwrap_or(0),
        }),
        None if fork_offset.is_some() || sub_offset.is_some() => {
            return Err(DsError::BadRequest(
                "Stream-Fork-Offset and Stream-Fork-Sub-Offset need Stream-Forked-From".into(),
            ));
        }
        None => None,
    };
    let mut writes = vec![path.as_str()];
    if let Some(f) = &fork {
        // A fork exposes its source's data, so creating one needs a grant on the source too.
        writes.push(f.source.as_str());
    }
    authorize(state, &parts, Access::Write, &writes)?;
    let content_type = content_type(h).or_else(|| {
        // A fork without a content type inherits its source's.
        fork.is_none().then(|| DEFAULT_CONTENT_TYPE.to_owned())
    });
    let req = CreateRequest {
        path: path.clone(),
        content_type,
        ttl_secs,
        expires_at,
        closed: headers::is_true(h, &STREAM_CLOSED),
        body: read_body(state, &parts, body).await?,
        fork,
    };
    let created = state.streams.create(req).await?;
    let meta = &created.meta;
    let mut out = written(meta);
    out.push((header::CONTENT_TYPE, meta.content_type.clone()));
    if !created.created {
        return Ok(respond(StatusCode::OK, out));
    }
    tracing::debug!(stream = %path, id = meta.id, "stream created");
    out.push((header::LOCATION, location(state, &parts, &path)));
    Ok(respond(StatusCode::CREATED, out))
}

/// The absolute URL of the stream as the request reached it.
fn location(state: &AppState, parts: &Parts, path: &str) -> String {
    let scheme = if state.config.load().tls.is_some() {
        "https"
    } else {
        "http"
    };
    let host = parts
        .uri
        .authority()
        .map(|a| a.as_str())
        .or_else(|| {
            parts
                .headers
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
        })
        .unwrap_or("localhost");
    format!("{scheme}://{host}{path}")
}

/// The producer headers: all three or none.
fn producer(h: &HeaderMap) -> Result<Option<Producer>, DsError> {
    let id = headers::text(h, &PRODUCER_ID)?;
    let epoch = headers::text(h, &PRODUCER_EPOCH)?;
    let seq = headers::text(h, &PRODUCER_SEQ)?;
    let (id, epoch, seq) = match (id, epoch, seq) {
        (None, None, None) => return Ok(None),
        (Some(id), Some(epoch), Some(seq)) => (id, epoch, seq),
        _ => {
            return Err(DsError::BadRequest(
                "Producer-Id, Producer-Epoch and Producer-Seq go together: send all three or none"
                    .into(),
            ));
        }
    };
    if id.is_empty() {
        return Err(DsError::BadRequest("Producer-Id must not be empty".into()));
    }
    let number = |name: &str, v: &str| {
        v.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| v.parse::<u64>().ok())
            .flatten()
            .filter(|n| !v.is_empty() && *n <= MAX_NUMBER)
            .ok_or_else(|| {
                DsError::BadRequest(format!(
                    "invalid {name} {v:?}: use a non-negative integer up to 2^53-1"
                ))
            })
    };
    Ok(Some(Producer {
        id: id.to_owned(),
        epoch: number("Producer-Epoch", epoch)?,
        seq: number("Producer-Seq", seq)?,
    }))
}

/// `POST`: append, close, or append and close.
pub(super) async fn append(
    state: &AppState,
    path: String,
    parts: Parts,
    body: Body,
) -> Result<Response, DsError> {
    let h = &parts.headers;
    let close = headers::is_true(h, &STREAM_CLOSED);
    let producer = producer(h)?;
    let stream_seq = headers::text(h, &STREAM_SEQ)?.map(str::to_owned);
    authorize(state, &parts, Access::Write, &[path.as_str()])?;
    let body = read_body(state, &parts, body).await?;
    if body.is_empty() && !close {
        return Err(DsError::BadRequest(
            "empty body: an append needs data (send Stream-Closed: true to close instead)".into(),
        ));
    }
    let content_type = content_type(h);
    if !body.is_empty() && content_type.is_none() {
        return Err(DsError::BadRequest(
            "missing Content-Type: an append must name its content type".into(),
        ));
    }
    let with_body = !body.is_empty();
    let req = AppendRequest {
        path,
        content_type,
        body,
        close,
        stream_seq,
        producer: producer.clone(),
    };
    let appended = state.streams.append(req).await?;
    let mut out = written(&appended.meta);
    let status = match (appended.outcome, &producer) {
        (Outcome::Stored, Some(p)) => {
            out.push((PRODUCER_EPOCH, p.epoch.to_string()));
            out.push((PRODUCER_SEQ, p.seq.to_string()));
            if with_body {
                StatusCode::OK
            } else {
                StatusCode::NO_CONTENT
            }
        }
        (Outcome::Stored, None) => StatusCode::NO_CONTENT,
        (Outcome::Duplicate { last_seq }, p) => {
            if let Some(p) = p {
                out.push((PRODUCER_EPOCH, p.epoch.to_string()));
            }
            out.push((PRODUCER_SEQ, last_seq.to_string()));
            StatusCode::NO_CONTENT
        }
    };
    Ok(respond(status, out))
}

/// `DELETE`.
pub(super) async fn delete(
    state: &AppState,
    path: String,
    parts: Parts,
) -> Result<Response, DsError> {
    authorize(state, &parts, Access::Write, &[path.as_str()])?;
    state.streams.delete(&path).await?;
    tracing::debug!(stream = %path, "stream deleted");
    Ok(StatusCode::NO_CONTENT.into_response())
}
