//! The on-disk encoding of an [`Update`]: a small versioned binary layout with a checksum.
//!
//! Why not JSON: the relay appends many tiny token chunks and publishers send JSON payloads, both
//! full of quotes and newlines that JSON would escape; a length-prefixed layout stores the bytes
//! verbatim, is roughly half the size for such updates, decodes without a parser, and lets
//! pruning read an entry's id without decoding the rest. The leading version byte leaves room to
//! change the layout; a reader refuses versions it does not know instead of guessing.
//!
//! ```text
//! u8 version (2) | u32 crc32 | u8 flags | u64 published_at_ms | [u64 retry] | str id
//! | u32 topic count | str topic... | [str event_type] | str data
//! ```
//! Integers are little-endian; `str` is a u32 byte length followed by UTF-8; bracketed fields are
//! present when their flag is set.
//!
//! Why a checksum: redb verifies its pages only when it repairs or checks a file, so a damaged
//! page read in normal operation would hand back altered data (or a wrong key) without a word.
//! The CRC-32 covers the entry's seq (its key, as 8 little-endian bytes) and every byte after the
//! CRC field, so a flipped byte in the value and an entry found under the wrong key are both
//! refused as corrupt. Version 1 entries, written before the checksum existed, have no CRC field
//! and are still read.

use super::crc::Crc32;
use crate::update::Update;

/// The version written; [`VERSION_1`] is still read.
const VERSION: u8 = 2;
/// The layout before the checksum: no CRC field, otherwise the same.
const VERSION_1: u8 = 1;
const FLAG_PRIVATE: u8 = 1;
const FLAG_EVENT_TYPE: u8 = 1 << 1;
const FLAG_RETRY: u8 = 1 << 2;
const KNOWN_FLAGS: u8 = FLAG_PRIVATE | FLAG_EVENT_TYPE | FLAG_RETRY;

/// Why an entry could not be encoded or decoded.
pub(crate) type CodecError = &'static str;

/// Encodes `update` as the entry stored under `seq`; fails only when a field is longer than the
/// layout's u32 length prefix.
pub(crate) fn encode(update: &Update, seq: u64) -> Result<Vec<u8>, CodecError> {
    let text_len = update.id.len()
        + update.data.len()
        + update.topics.iter().map(String::len).sum::<usize>()
        + update.event_type.as_ref().map_or(0, String::len);
    let mut out = Vec::with_capacity(text_len + 4 * (update.topics.len() + 4) + 22);
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
    out.extend_from_slice(&[0; 4]);
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
    let crc = checksum(seq, &out[5..]);
    out[1..5].copy_from_slice(&crc.to_le_bytes());
    Ok(out)
}

fn checksum(seq: u64, rest: &[u8]) -> u32 {
    Crc32::new()
        .update(&seq.to_le_bytes())
        .update(rest)
        .finish()
}

fn put_str(out: &mut Vec<u8>, s: &str) -> Result<(), CodecError> {
    let len = u32::try_from(s.len()).map_err(|_| "field longer than 4 GiB")?;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

/// Decodes a whole entry stored under `seq`; every malformed or damaged input is an error, never
/// a panic.
pub(crate) fn decode(bytes: &[u8], seq: u64) -> Result<Update, CodecError> {
    let mut r = Reader::new(bytes, seq)?;
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

/// The id and publication time of the entry stored under `seq`, without decoding the rest (used
/// by pruning and replay); the checksum is still verified.
pub(crate) fn decode_head(bytes: &[u8], seq: u64) -> Result<(&str, u64), CodecError> {
    let mut r = Reader::new(bytes, seq)?;
    let id = r.str()?;
    Ok((id, r.published_at_ms))
}

/// The id, publication time and topics of an entry, without its data (used by pruning by
/// topic prefix).
pub(crate) fn decode_routing(bytes: &[u8], seq: u64) -> Result<(&str, u64, Vec<&str>), CodecError> {
    let mut r = Reader::new(bytes, seq)?;
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
    /// Checks the version and checksum and reads the fixed header, leaving the cursor at the id.
    fn new(bytes: &'a [u8], seq: u64) -> Result<Self, CodecError> {
        let mut r = Reader {
            rest: bytes,
            flags: 0,
            published_at_ms: 0,
            retry: None,
        };
        match r.take::<1>()? {
            [VERSION] => {
                let crc = u32::from_le_bytes(r.take()?);
                if checksum(seq, r.rest) != crc {
                    return Err("checksum mismatch");
                }
            }
            [VERSION_1] => {}
            _ => return Err("unknown entry format version"),
        }
        let [flags] = r.take::<1>()?;
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
        let bytes = encode(&u, 7).unwrap();
        assert_eq!(decode(&bytes, 7).unwrap(), u);
        assert_eq!(
            decode_head(&bytes, 7).unwrap(),
            ("urn:uuid:0", 1_700_000_000_000)
        );
        assert!(bytes.len() < serde_json::to_vec(&u).unwrap().len());
    }

    /// An entry as version 1 wrote it: the version 2 layout without the CRC field.
    fn version_1(u: &Update) -> Vec<u8> {
        let mut bytes = encode(u, 0).unwrap();
        bytes.drain(1..5);
        bytes[0] = VERSION_1;
        bytes
    }

    #[test]
    fn refuses_unknown_version_flags_and_trailing_bytes() {
        // Version 1 has no checksum, so its fields can be altered and still reach the checks.
        let mut bytes = version_1(&sample());
        bytes[0] = 3;
        assert_eq!(decode(&bytes, 0), Err("unknown entry format version"));
        bytes[0] = VERSION_1;
        bytes[1] |= 0x80;
        assert_eq!(decode(&bytes, 0), Err("unknown entry flags"));
        bytes[1] &= !0x80;
        bytes.push(0);
        assert_eq!(decode(&bytes, 0), Err("trailing bytes after entry"));
    }

    #[test]
    fn entries_written_before_the_checksum_are_still_read() {
        let u = sample();
        let bytes = version_1(&u);
        assert_eq!(decode(&bytes, 99).unwrap(), u);
        assert_eq!(decode_head(&bytes, 99).unwrap().0, "urn:uuid:0");
    }

    /// Regression (issue 15): a damaged `history.redb` handed back altered data without a word,
    /// since redb does not verify its pages on ordinary reads.
    #[test]
    fn a_flipped_byte_or_a_wrong_seq_is_a_checksum_mismatch() {
        let u = sample();
        let bytes = encode(&u, 7).unwrap();
        for at in 1..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x10;
            assert!(decode(&damaged, 7).is_err(), "flip at {at} went unnoticed");
            assert!(
                decode_head(&damaged, 7).is_err(),
                "flip at {at} went unnoticed"
            );
        }
        // A damaged key: the entry is intact but found under another seq.
        assert_eq!(decode(&bytes, 8), Err("checksum mismatch"));
    }

    #[test]
    fn huge_topic_count_is_refused_without_allocating() {
        let mut u = sample();
        u.retry = None;
        u.event_type = None;
        let mut bytes = version_1(&u);
        let at = 2 + 8 + 4 + u.id.len();
        bytes[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode(&bytes, 0), Err("topic count exceeds entry size"));
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
        fn every_update_round_trips(u in arb_update(), seq in any::<u64>()) {
            let bytes = encode(&u, seq).unwrap();
            prop_assert_eq!(decode_head(&bytes, seq).unwrap(), (u.id.as_str(), u.published_at_ms));
            let topics: Vec<&str> = u.topics.iter().map(String::as_str).collect();
            prop_assert_eq!(decode_routing(&bytes, seq).unwrap(), (u.id.as_str(), u.published_at_ms, topics));
            prop_assert_eq!(decode(&bytes, seq).unwrap(), u.clone());
            prop_assert_eq!(decode(&version_1(&u), seq).unwrap(), u);
        }

        #[test]
        fn truncated_entries_are_errors(u in arb_update(), cut in any::<prop::sample::Index>()) {
            for bytes in [encode(&u, 1).unwrap(), version_1(&u)] {
                let cut = cut.index(bytes.len());
                prop_assert!(decode(&bytes[..cut], 1).is_err());
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode(&bytes, 1);
            let _ = decode_head(&bytes, 1);
            let _ = decode_routing(&bytes, 1);
        }
    }
}
