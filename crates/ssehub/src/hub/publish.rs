//! Validating a publish before anything is stored: the checks that keep SSE injection
//! impossible and history consistent.

use super::EARLIEST;
use crate::topic::is_reserved;
use crate::update::Update;

/// A publish as the publisher sent it, before validation.
#[derive(Clone, Debug, Default)]
pub struct NewUpdate {
    /// `topic` fields in order: the first is canonical.
    pub topics: Vec<String>,
    /// `data`; absent means empty data.
    pub data: String,
    /// `private` was present.
    pub private: bool,
    /// `id`: a custom id; the hub generates `urn:uuid:<v7>` when absent.
    pub id: Option<String>,
    /// `type`: becomes the SSE `event:` field.
    pub event_type: Option<String>,
    /// `retry` as written: must be ASCII digits.
    pub retry: Option<String>,
}

impl NewUpdate {
    /// Reads a publish from its `application/x-www-form-urlencoded` body, as Mercure defines
    /// the fields; unknown fields are ignored.
    ///
    /// # Errors
    /// [`InvalidUpdate::NotUtf8`] when a field's percent-decoded value is not UTF-8: replacing
    /// the bytes with U+FFFD, as a lenient form parser does, would store different data than
    /// was sent and still answer 200.
    pub fn from_form(body: &[u8]) -> Result<Self, InvalidUpdate> {
        let mut new = NewUpdate::default();
        for pair in body.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
            let (name, value) = match pair.iter().position(|b| *b == b'=') {
                Some(at) => (&pair[..at], &pair[at + 1..]),
                None => (pair, &[][..]),
            };
            let field = match &*form_decode(name) {
                b"topic" => "topic",
                b"data" => "data",
                b"private" => "private",
                b"id" => "id",
                b"type" => "type",
                b"retry" => "retry",
                _ => continue,
            };
            let value = String::from_utf8(form_decode(value))
                .map_err(|_| InvalidUpdate::NotUtf8 { field })?;
            match field {
                "topic" => new.topics.push(value),
                "data" => new.data = value,
                "private" => new.private = true,
                "id" => new.id = Some(value),
                "type" => new.event_type = Some(value),
                _ => new.retry = Some(value),
            }
        }
        Ok(new)
    }
}

/// One name or value of a form body: `+` is a space, then percent-decoding, as bytes.
fn form_decode(raw: &[u8]) -> Vec<u8> {
    let spaced: Vec<u8> = raw
        .iter()
        .map(|b| if *b == b'+' { b' ' } else { *b })
        .collect();
    percent_encoding::percent_decode(&spaced).collect()
}

/// Why a publish was refused before being stored.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidUpdate {
    /// No `topic` field, or only empty ones.
    #[error("missing topic: an update needs at least one non-empty `topic` field")]
    NoTopic,
    /// The custom id cannot be carried in an SSE `id:` line or would be ambiguous.
    #[error("invalid id {id:?}: {reason}")]
    Id {
        /// The id as sent.
        id: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The type cannot be carried in an SSE `event:` line.
    #[error("invalid type {0:?}: it must not contain CR or LF")]
    Type(String),
    /// A field's value is not UTF-8 once percent-decoded.
    #[error(
        "field `{field}` is not valid UTF-8 once percent-decoded: updates carry text, so encode binary data (base64, for example)"
    )]
    NotUtf8 {
        /// The form field.
        field: &'static str,
    },
    /// `retry` is not a number of milliseconds.
    #[error("invalid retry {0:?}: it must be ASCII digits (milliseconds)")]
    Retry(String),
    /// The topic lies in the hub's own space: `/.well-known/mercure` (subscription events)
    /// or `/v1/streams` (relay streams).
    #[error(
        "topic {0:?} is reserved: topics under /.well-known/mercure and /v1/streams belong to the hub"
    )]
    ReservedTopic(String),
}

/// Checks a publish and turns it into an [`Update`] ready to store.
///
/// # Errors
/// Returns the first problem found, in the order a publisher would want to fix them.
pub fn validate(new: NewUpdate) -> Result<Update, InvalidUpdate> {
    let topics: Vec<String> = new.topics.into_iter().filter(|t| !t.is_empty()).collect();
    if topics.is_empty() {
        return Err(InvalidUpdate::NoTopic);
    }
    if let Some(t) = topics.iter().find(|t| is_reserved(t)) {
        return Err(InvalidUpdate::ReservedTopic(t.clone()));
    }
    let id = match new.id {
        Some(id) => {
            let reason = if id.is_empty() {
                Some("it must not be empty")
            } else if id.starts_with('#') {
                Some("it must not start with '#'")
            } else if id.contains(['\r', '\n']) {
                Some("it must not contain CR or LF")
            } else if id.contains('\0') {
                Some("it must not contain NUL")
            } else if id == EARLIEST {
                Some("\"earliest\" is reserved for asking the whole history")
            } else {
                None
            };
            if let Some(reason) = reason {
                return Err(InvalidUpdate::Id { id, reason });
            }
            id
        }
        None => Update::generate_id(),
    };
    let event_type = match new.event_type {
        Some(t) if t.contains(['\r', '\n']) => return Err(InvalidUpdate::Type(t)),
        Some(t) if t.is_empty() => None,
        other => other,
    };
    let retry = match new.retry {
        None => None,
        Some(r) => match (
            !r.is_empty() && r.bytes().all(|b| b.is_ascii_digit()),
            r.parse::<u64>(),
        ) {
            (true, Ok(ms)) => Some(ms),
            _ => return Err(InvalidUpdate::Retry(r)),
        },
    };
    Ok(Update {
        id,
        topics,
        data: new.data,
        private: new.private,
        event_type,
        retry,
        published_at_ms: Update::now_ms(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(t: &str) -> NewUpdate {
        NewUpdate {
            topics: vec![t.into()],
            ..Default::default()
        }
    }

    #[test]
    fn form_fields_are_read_as_mercure_defines_them() {
        let new = NewUpdate::from_form(
            b"topic=%2Fa&topic=%2Fb&data=x%0Ay+z&private=on&id=i&type=t&retry=5&other=z&&lone",
        )
        .unwrap();
        assert_eq!(new.topics, ["/a", "/b"]);
        assert_eq!(new.data, "x\ny z");
        assert!(new.private);
        assert_eq!(
            (
                new.id.as_deref(),
                new.event_type.as_deref(),
                new.retry.as_deref()
            ),
            (Some("i"), Some("t"), Some("5"))
        );
        assert!(!NewUpdate::from_form(b"topic=%2Fa").unwrap().private);
        assert!(NewUpdate::from_form(b"topic=%2Fa&private").unwrap().private);
        assert_eq!(
            NewUpdate::from_form(b"topic=%2F%C3%A9t%C3%A9")
                .unwrap()
                .topics,
            ["/\u{e9}t\u{e9}"]
        );
    }

    /// Regression (issue 15): invalid UTF-8 in a published field was replaced with U+FFFD and
    /// the altered update stored with a 200.
    #[test]
    fn invalid_utf8_in_a_form_field_is_refused_naming_the_field() {
        for (body, field) in [
            (&b"topic=%2Fa&data=%FF%FE"[..], "data"),
            (b"topic=%2F%C3", "topic"),
            (b"topic=%2Fa&id=%80", "id"),
            (b"topic=%2Fa&type=\xff", "type"),
            (b"topic=%2Fa&retry=1%E2%82", "retry"),
        ] {
            let err = NewUpdate::from_form(body).unwrap_err();
            assert_eq!(err, InvalidUpdate::NotUtf8 { field });
            assert!(err.to_string().contains(&format!("`{field}`")), "{err}");
        }
        // Fields the hub does not read are not its business.
        assert!(NewUpdate::from_form(b"topic=%2Fa&extra=%FF").is_ok());
    }

    #[test]
    fn generates_uuid_v7_ids() {
        let u = validate(topic("/books/1")).unwrap();
        assert!(u.id.starts_with("urn:uuid:"), "{}", u.id);
        let uuid = uuid::Uuid::parse_str(&u.id["urn:uuid:".len()..]).unwrap();
        assert_eq!(uuid.get_version_num(), 7);
    }

    #[test]
    fn refuses_missing_topic() {
        assert_eq!(
            validate(NewUpdate::default()).unwrap_err(),
            InvalidUpdate::NoTopic
        );
        assert_eq!(validate(topic("")).unwrap_err(), InvalidUpdate::NoTopic);
    }

    #[test]
    fn refuses_ids_that_would_inject_or_confuse() {
        for (id, why) in [
            ("a\nb", "CR or LF"),
            ("a\rb", "CR or LF"),
            ("#x", "'#'"),
            ("a\0", "NUL"),
            ("", "empty"),
        ] {
            let err = validate(NewUpdate {
                id: Some(id.into()),
                ..topic("/t")
            })
            .unwrap_err();
            assert!(err.to_string().contains(why), "{id:?}: {err}");
        }
    }

    #[test]
    fn refuses_types_with_line_breaks() {
        let err = validate(NewUpdate {
            event_type: Some("x\r\ndata: evil".into()),
            ..topic("/t")
        })
        .unwrap_err();
        assert!(matches!(err, InvalidUpdate::Type(_)));
    }

    #[test]
    fn retry_must_be_digits() {
        for bad in ["", "1.5", "-1", "10ms", " 5", "99999999999999999999999"] {
            let err = validate(NewUpdate {
                retry: Some(bad.into()),
                ..topic("/t")
            })
            .unwrap_err();
            assert_eq!(err, InvalidUpdate::Retry(bad.into()));
        }
        let ok = validate(NewUpdate {
            retry: Some("2500".into()),
            ..topic("/t")
        })
        .unwrap();
        assert_eq!(ok.retry, Some(2500));
    }

    #[test]
    fn reserved_space_is_refused_in_paths_and_urls() {
        for t in [
            "/.well-known/mercure",
            "/.well-known/mercure/subscriptions/x/y",
            "https://example.com/.well-known/mercure/subscriptions",
            "/v1/streams/strm_0123/started",
            "https://hub.example/v1/streams/strm_0123",
        ] {
            assert_eq!(
                validate(topic(t)).unwrap_err(),
                InvalidUpdate::ReservedTopic(t.into())
            );
        }
        for t in [
            "/.well-known/mercurey",
            "https://example.com/books/.well-known/mercure",
            "urn:x",
        ] {
            assert!(validate(topic(t)).is_ok(), "{t}");
        }
    }
}
