//! What a stream's content type decides: JSON mode (message boundaries, one level of array
//! flattening, validation), how SSE carries the bytes, and how a body becomes stored records.
//!
//! A record is the unit the store keeps and reads: a JSON stream stores one record per
//! message, any other stream stores a body as pieces of at most [`PIECE_BYTES`] (cut on UTF-8
//! character boundaries for `text/*`), so one read never has to load a whole large append.
//! The last record of each append is marked: that is the "next data boundary" a fork's
//! sub-offset may not pass.

use bytes::Bytes;
use serde_json::value::RawValue;

/// The largest piece a non-JSON body is stored as.
pub const PIECE_BYTES: usize = 64 * 1024;

/// The content type a stream gets when `PUT` names none.
pub const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

/// One stored unit of a stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The bytes (a JSON message's text, or a piece of a body).
    pub payload: Bytes,
    /// Last record of its append.
    pub batch_end: bool,
}

/// A body the stream's content type does not accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ContentError {
    /// A JSON stream was sent something that is not JSON.
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
    /// A JSON append of `[]`, which would store nothing.
    #[error("empty JSON array: an append must carry at least one message")]
    EmptyArray,
}

/// The media type without parameters, lowercased: what content types are compared by.
pub fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Streams of `application/json` keep message boundaries and are read as JSON arrays.
pub fn is_json(content_type: &str) -> bool {
    media_type(content_type) == "application/json"
}

/// SSE carries `text/*` and JSON as text and everything else as base64.
pub fn sse_is_base64(content_type: &str) -> bool {
    let media = media_type(content_type);
    !(media.starts_with("text/") || media == "application/json")
}

/// Whether `text` looks like `type/subtype`; `PUT` falls back to the default otherwise, as the
/// reference server does.
pub fn is_plausible(text: &str) -> bool {
    let media = text.split(';').next().unwrap_or("").trim();
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    media
        .split_once('/')
        .is_some_and(|(kind, sub)| token(kind) && token(sub))
}

/// Turns a body into the records to store. `creating` allows the empty JSON array (a `PUT`
/// of `[]` creates an empty stream; a `POST` of `[]` is refused).
///
/// # Errors
///
/// [`ContentError`] for a JSON stream's invalid JSON or empty array.
pub fn records(
    content_type: &str,
    body: &Bytes,
    creating: bool,
) -> Result<Vec<Record>, ContentError> {
    if body.is_empty() {
        return Ok(Vec::new());
    }
    if is_json(content_type) {
        return json_records(body, creating);
    }
    let text = media_type(content_type).starts_with("text/");
    let mut out = Vec::with_capacity(body.len().div_ceil(PIECE_BYTES));
    let mut start = 0;
    while start < body.len() {
        let mut end = (start + PIECE_BYTES).min(body.len());
        if text && end < body.len() {
            // Back off to a character start so each piece decodes on its own for SSE.
            let continuation = |b: u8| (b & 0xC0) == 0x80;
            let mut cut = end;
            while cut > start && end - cut < 3 && continuation(body[cut]) {
                cut -= 1;
            }
            if cut > start && !continuation(body[cut]) {
                end = cut;
            }
        }
        out.push(Record {
            payload: body.slice(start..end),
            batch_end: end == body.len(),
        });
        start = end;
    }
    Ok(out)
}

fn json_records(body: &Bytes, creating: bool) -> Result<Vec<Record>, ContentError> {
    let invalid = |e: serde_json::Error| ContentError::InvalidJson(e.to_string());
    let whole: &RawValue = serde_json::from_slice(body).map_err(invalid)?;
    let values: Vec<&RawValue> = if whole.get().trim_start().starts_with('[') {
        serde_json::from_str(whole.get()).map_err(invalid)?
    } else {
        vec![whole]
    };
    if values.is_empty() {
        return if creating {
            Ok(Vec::new())
        } else {
            Err(ContentError::EmptyArray)
        };
    }
    let last = values.len() - 1;
    Ok(values
        .into_iter()
        .enumerate()
        .map(|(i, v)| Record {
            // The raw text borrows from `body`, so the record shares its buffer.
            payload: body.slice_ref(v.get().trim().as_bytes()),
            batch_end: i == last,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(records: &[Record]) -> Vec<&str> {
        records
            .iter()
            .map(|r| std::str::from_utf8(&r.payload).unwrap())
            .collect()
    }

    #[test]
    fn json_arrays_are_flattened_one_level() {
        let r = |body: &str| records("application/json", &Bytes::from(body.to_owned()), false);
        assert_eq!(texts(&r(r#"{"a": 1}"#).unwrap()), [r#"{"a": 1}"#]);
        assert_eq!(
            texts(&r(r#" [ {"a":1} , 2 ] "#).unwrap()),
            [r#"{"a":1}"#, "2"]
        );
        assert_eq!(texts(&r("[[1,2],[3,4]]").unwrap()), ["[1,2]", "[3,4]"]);
        assert_eq!(texts(&r("[[[1,2,3]]]").unwrap()), ["[[1,2,3]]"]);
        let batch = r("[1,2,3]").unwrap();
        assert_eq!(
            batch.iter().map(|r| r.batch_end).collect::<Vec<_>>(),
            [false, false, true]
        );
        assert_eq!(r("[]"), Err(ContentError::EmptyArray));
        assert!(matches!(
            r("{ invalid json }"),
            Err(ContentError::InvalidJson(_))
        ));
        assert!(matches!(r("[1,"), Err(ContentError::InvalidJson(_))));
        assert_eq!(
            records(
                "application/json; charset=utf-8",
                &Bytes::from_static(b"[]"),
                true
            ),
            Ok(Vec::new())
        );
    }

    #[test]
    fn bodies_are_cut_into_pieces_on_character_boundaries() {
        let body = Bytes::from("é".repeat(PIECE_BYTES));
        let pieces = records("text/plain", &body, false).unwrap();
        assert!(pieces.len() > 1);
        for p in &pieces {
            assert!(p.payload.len() <= PIECE_BYTES);
            std::str::from_utf8(&p.payload).expect("each piece is whole characters");
        }
        assert_eq!(pieces.iter().filter(|p| p.batch_end).count(), 1);
        let binary = Bytes::from(vec![7u8; PIECE_BYTES * 2 + 1]);
        let pieces = records("application/octet-stream", &binary, false).unwrap();
        assert_eq!(
            pieces.iter().map(|p| p.payload.len()).collect::<Vec<_>>(),
            [PIECE_BYTES, PIECE_BYTES, 1]
        );
    }

    #[test]
    fn content_types_compare_by_media_type() {
        assert_eq!(
            media_type("Application/JSON; charset=utf-8"),
            "application/json"
        );
        assert!(sse_is_base64("application/octet-stream"));
        assert!(sse_is_base64("image/png"));
        assert!(!sse_is_base64("text/plain; charset=utf-8"));
        assert!(!sse_is_base64("APPLICATION/JSON"));
        assert!(is_plausible("text/plain"));
        assert!(is_plausible("application/vnd.api+json; charset=utf-8"));
        assert!(!is_plausible(""));
        assert!(!is_plausible("garbage"));
    }
}
