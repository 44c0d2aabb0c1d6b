//! The on-disk encoding of an [`Update`]: a small versioned binary layout.
//!
//! Why not JSON: the relay appends many tiny token chunks and publishers send JSON payloads, both
//! full of quotes and newlines that JSON would escape; a length-prefixed layout stores the bytes
//! verbatim, is roughly half the size for such updates, decodes without a parser, and lets
//! pruning read an entry's id without decoding the rest. The leading version byte leaves room to
//! change the layout; a reader refuses versions it does not know instead of guessing.
//!
//! ```text
//! u8 version (1) | u8 flags | u64 published_at_ms | [u64 retry] | str id
//! | u32 topic count | str topic... | [str event_type] | str data
//! ```
//! Integers are little-endian; `str` is a u32 byte length followed by UTF-8; bracketed fields are
//! present when their flag is set.

use crate::update::Update;

const VERSION: u8 = 1;
const FLAG_PRIVATE: u8 = 1;
const FLAG_EVENT_TYPE: u8 = 1 << 1;
const FLAG_RETRY: u8 = 1 << 2;
const KNOWN_FLAGS: u8 = FLAG_PRIVATE | FLAG_EVENT_TYPE | FLAG_RETRY;

/// Why an entry could not be encoded or decoded.
pub(crate) type CodecError = &'static str;

/// Encodes `update`; fails only when a field is longer than the layout's u32 length prefix.
pub(crate) fn encode(update: &Update) -> Result<Vec<u8>, CodecError> {
    let text_len = update.id.len()
        + update.data.len()
        + update.topics.iter().map(String::len).sum::<usize>()
        + update.event_type.as_ref().map_or(0, String::len);
    let mut out = Vec::with_capacity(text_len + 4 * (update.topics.len() + 4) + 18);
    let mut flags = 0;
    if update.private {
        flags |= FLAG_PRIVATE;
    }
    if update.event_type.is_some() {
        flags |= FLAG_EVENT_TYPE;
    }
    if update.retry.is_some() {
        flags |= FLAG_RETRY;
    }
    out.push(VERSION);
    out.push(flags);
    out.extend_from_slice(&update.published_at_ms.to_le_bytes());
    if let Some(retry) = update.retry {
        out.extend_from_slice(&retry.to_le_bytes());
    }
    put_str(&mut out, &update.id)?;
    let count = u32::try_from(update.topics.len()).map_err(|_| "too many topics")?;
    out.extend_from_slice(&count.to_le_bytes());
    for topic in &update.topics {
        put_str(&mut out, topic)?;
    }
    if let Some(event_type) = &update.event_type {
        put_str(&mut out, event_type)?;
    }
    put_str(&mut out, &update.data)?;
    Ok(out)
}

fn put_str(out: &mut Vec<u8>, s: &str) -> Result<(), CodecError> {
    let len = u32::try_from(s.len()).map_err(|_| "field longer than 4 GiB")?;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

/// Decodes a whole entry; every malformed input is an error, never a panic.
pub(crate) fn decode(bytes: &[u8]) -> Result<Update, CodecError> {
    let mut r = Reader::new(bytes)?;
    let id = r.str()?.to_owned();
    let count = r.u32()?;
    // Each topic takes at least its 4-byte length, so a count beyond that is corrupt; checking
    // first keeps a corrupt count from reserving gigabytes.
    if usize::try_from(count).map_or(true, |c| c > r.rest.len() / 4) {
        return Err("topic count exceeds entry size");
    }
    let mut topics = Vec::with_capacity(count as usize);
    for _ in 0..count {
        topics.push(r.str()?.to_owned());
    }
    let event_type = if r.flags & FLAG_EVENT_TYPE != 0 {
        Some(r.str()?.to_owned())
    } else {
        None
    };
    let data = r.str()?.to_owned();
    if !r.rest.is_empty() {
        return Err("trailing bytes after entry");
    }
    Ok(Update {
        id,
        topics,
        data,
        private: r.flags & FLAG_PRIVATE != 0,
        event_type,
        retry: r.retry,
        published_at_ms: r.published_at_ms,
    })
}

/// The id and publication time of an entry, without decoding the rest (used by pruning).
pub(crate) fn decode_head(bytes: &[u8]) -> Result<(&str, u64), CodecError> {
    let mut r = Reader::new(bytes)?;
    let id = r.str()?;
    Ok((id, r.published_at_ms))
}

/// The id, publication time and topics of an entry, without its data (used by pruning by
/// topic prefix).
pub(crate) fn decode_routing(bytes: &[u8]) -> Result<(&str, u64, Vec<&str>), CodecError> {
    let mut r = Reader::new(bytes)?;
    let id = r.str()?;
    let count = r.u32()?;
    if usize::try_from(count).map_or(true, |c| c > r.rest.len() / 4) {
        return Err("topic count exceeds entry size");
    }
    let topics = (0..count).map(|_| r.str()).collect::<Result<_, _>>()?;
    Ok((id, r.published_at_ms, topics))
}

struct Reader<'a> {
    rest: &'a [u8],
    flags: u8,
    published_at_ms: u64,
    retry: Option<u64>,
}

impl<'a> Reader<'a> {
    /// Reads the fixed header, leaving the cursor at the id.
    fn new(bytes: &'a [u8]) -> Result<Self, CodecError> {
        let mut r = Reader {
            rest: bytes,
            flags: 0,
            published_at_ms: 0,
            retry: None,
        };
        let [version, flags] = r.take::<2>()?;
        if version != VERSION {
            return Err("unknown entry format version");
        }
        if flags & !KNOWN_FLAGS != 0 {
            return Err("unknown entry flags");
        }
        r.flags = flags;
        r.published_at_ms = u64::from_le_bytes(r.take()?);
        if flags & FLAG_RETRY != 0 {
            r.retry = Some(u64::from_le_bytes(r.take()?));
        }
        Ok(r)
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        let (head, rest) = self
            .rest
            .split_first_chunk::<N>()
            .ok_or("entry truncated")?;
        self.rest = rest;
        Ok(*head)
    }

    fn u32(&mut self) -> Result<u32, CodecError> {
        Ok(u32::from_le_bytes(self.take()?))
    }

    fn str(&mut self) -> Result<&'a str, CodecError> {
        let len = usize::try_from(self.u32()?).map_err(|_| "entry truncated")?;
        if len > self.rest.len() {
            return Err("entry truncated");
        }
        let (s, rest) = self.rest.split_at(len);
        self.rest = rest;
        std::str::from_utf8(s).map_err(|_| "invalid utf-8 in entry")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Update {
        Update {
            id: "urn:uuid:0".into(),
            topics: vec!["https://example.com/a".into(), "/b".into()],
            data: "line 1\n\"quoted\"\r\n".into(),
            private: true,
            event_type: Some("ping".into()),
            retry: Some(1500),
            published_at_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn sample_round_trips_and_is_smaller_than_json() {
        let u = sample();
        let bytes = encode(&u).unwrap();
        assert_eq!(decode(&bytes).unwrap(), u);
        assert_eq!(
            decode_head(&bytes).unwrap(),
            ("urn:uuid:0", 1_700_000_000_000)
        );
        assert!(bytes.len() < serde_json::to_vec(&u).unwrap().len());
    }

    #[test]
    fn refuses_unknown_version_flags_and_trailing_bytes() {
        let mut bytes = encode(&sample()).unwrap();
        bytes[0] = 2;
        assert_eq!(decode(&bytes), Err("unknown entry format version"));
        bytes[0] = VERSION;
        bytes[1] |= 0x80;
        assert_eq!(decode(&bytes), Err("unknown entry flags"));
        bytes[1] &= !0x80;
        bytes.push(0);
        assert_eq!(decode(&bytes), Err("trailing bytes after entry"));
    }

    #[test]
    fn huge_topic_count_is_refused_without_allocating() {
        let mut u = sample();
        u.retry = None;
        u.event_type = None;
        let mut bytes = encode(&u).unwrap();
        let at = 2 + 8 + 4 + u.id.len();
        bytes[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode(&bytes), Err("topic count exceeds entry size"));
    }

    fn arb_update() -> impl Strategy<Value = Update> {
        (
            ".*",
            prop::collection::vec(".*", 0..4),
            ".*",
            any::<bool>(),
            prop::option::of(".*"),
            prop::option::of(any::<u64>()),
            any::<u64>(),
        )
            .prop_map(
                |(id, topics, data, private, event_type, retry, published_at_ms)| Update {
                    id,
                    topics,
                    data,
                    private,
                    event_type,
                    retry,
                    published_at_ms,
                },
            )
    }

    proptest! {
        #[test]
        fn every_update_round_trips(u in arb_update()) {
            let bytes = encode(&u).unwrap();
            prop_assert_eq!(decode_head(&bytes).unwrap(), (u.id.as_str(), u.published_at_ms));
            let topics: Vec<&str> = u.topics.iter().map(String::as_str).collect();
            prop_assert_eq!(decode_routing(&bytes).unwrap(), (u.id.as_str(), u.published_at_ms, topics));
            prop_assert_eq!(decode(&bytes).unwrap(), u);
        }

        #[test]
        fn truncated_entries_are_errors(u in arb_update(), cut in any::<prop::sample::Index>()) {
            let bytes = encode(&u).unwrap();
            let cut = cut.index(bytes.len());
            prop_assert!(decode(&bytes[..cut]).is_err());
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode(&bytes);
            let _ = decode_head(&bytes);
            let _ = decode_routing(&bytes);
        }
    }
}
