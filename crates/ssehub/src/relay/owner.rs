//! Who may watch and cancel a relay stream.
//!
//! With `--relay-api-keys`, a stream belongs to the key that started it: only that key may
//! watch or cancel it, and any other key is told the stream does not exist (a 404, so ids
//! cannot be probed). The owner is recorded in the stream's marker update, so it survives a
//! restart, as a salted hash: SHA-256 over a domain tag, the stream id and the key. The key
//! itself is never stored, and the same key gives unrelated tags on different streams, so
//! whoever can read markers (a Mercure subscriber granted them) learns neither the key nor
//! which streams share an owner.
//!
//! With no keys (an open relay), the stream id is the capability: 128 random bits from a
//! cryptographically secure generator (`rand`'s thread generator, seeded by the operating
//! system), with no time or counter part to guess from.

use sha2::{Digest, Sha256};

/// Who is calling the relay.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Caller {
    /// No `--relay-api-keys` are configured: anyone may call, and a stream id is the
    /// capability to watch and cancel it.
    Anyone,
    /// A caller that presented this one of the configured keys.
    Key(String),
}

/// Separates these hashes from any other SHA-256 of the same key.
const DOMAIN: &[u8] = b"ssehub relay stream owner v1\0";

/// A new stream id: `strm_` and 128 random bits in hex.
pub(crate) fn new_stream_id() -> String {
    let bits: [u8; 16] = rand::random();
    format!("strm_{}", hex(&bits))
}

/// What the marker of stream `id` records about its owner: `None` on an open relay.
pub(crate) fn owner_tag(id: &str, caller: &Caller) -> Option<String> {
    match caller {
        Caller::Anyone => None,
        Caller::Key(key) => {
            let mut h = Sha256::new();
            h.update(DOMAIN);
            h.update(id.as_bytes());
            h.update([0]);
            h.update(key.as_bytes());
            Some(format!("sha256:{}", hex(&h.finalize())))
        }
    }
}

/// Whether `caller` may watch or cancel stream `id`, whose marker records `owner`.
pub(crate) fn may_access(id: &str, owner: Option<&str>, caller: &Caller) -> bool {
    match (owner, caller) {
        // The relay is open now: ids are the capability.
        (_, Caller::Anyone) => true,
        // Started while the relay was open: its id was its capability then and still is.
        (None, Caller::Key(_)) => true,
        (Some(tag), Caller::Key(_)) => owner_tag(id, caller).as_deref() == Some(tag),
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> Caller {
        Caller::Key(k.to_owned())
    }

    #[test]
    fn only_the_owning_key_may_access_a_keyed_stream() {
        let id = new_stream_id();
        let tag = owner_tag(&id, &key("keyA")).unwrap();
        assert!(may_access(&id, Some(&tag), &key("keyA")));
        assert!(!may_access(&id, Some(&tag), &key("keyB")));
        // The tag is bound to the stream: the same key's tag of another stream does not fit.
        let other = new_stream_id();
        assert!(!may_access(&other, Some(&tag), &key("keyA")));
        assert!(!tag.contains("keyA"));
    }

    #[test]
    fn stream_ids_are_128_random_bits() {
        let a = new_stream_id();
        let b = new_stream_id();
        for id in [&a, &b] {
            let hex = id.strip_prefix("strm_").unwrap();
            assert_eq!(hex.len(), 32, "{id}");
            assert!(hex.bytes().all(|c| c.is_ascii_hexdigit()), "{id}");
        }
        // A time-ordered id (UUIDv7) made in the same millisecond shares its first 12 digits.
        assert_ne!(a[..5 + 8], b[..5 + 8], "{a} {b}");
    }
}
