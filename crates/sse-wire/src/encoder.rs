//! Writing events and comments as `text/event-stream` bytes.
//!
//! The encoder writes into a caller's [`BytesMut`] so a hub can encode an
//! event once, `freeze` it and hand the same bytes to every subscriber.

use bytes::{BufMut, BytesMut};
use memchr::{memchr2, memchr3};

use crate::{EncodeError, Event, EventRef};

/// Checks that `id` can be sent as an `id:` line.
///
/// # Errors
/// [`EncodeError::IdContainsLineBreak`] if it holds CR or LF,
/// [`EncodeError::IdContainsNul`] if it holds NUL.
pub fn validate_id(id: &str) -> Result<(), EncodeError> {
    match memchr3(b'\r', b'\n', 0, id.as_bytes()) {
        None => Ok(()),
        Some(i) if id.as_bytes()[i] == 0 => Err(EncodeError::IdContainsNul),
        Some(_) => Err(EncodeError::IdContainsLineBreak),
    }
}

/// Checks that `event` can be sent as an `event:` line.
///
/// # Errors
/// [`EncodeError::EventTypeContainsLineBreak`] if it holds CR or LF.
pub fn validate_event_type(event: &str) -> Result<(), EncodeError> {
    match memchr2(b'\r', b'\n', event.as_bytes()) {
        None => Ok(()),
        Some(_) => Err(EncodeError::EventTypeContainsLineBreak),
    }
}

/// Appends `event` to `out` as one complete frame, ending in a blank line.
///
/// Lines are written in the order `event:`, `id:`, `retry:`, then one `data:`
/// line per line of the data, split on CRLF, CR and LF (so `"a\r\nb"` reaches
/// the client as `"a\nb"`). Empty data is still sent as a lone `data:` line,
/// so the client dispatches the event. An empty `event` is not written (the
/// client would read it as `message` anyway); an empty `id` is written, since
/// it resets the client's last event ID.
///
/// # Errors
/// Refuses an `id` holding CR, LF or NUL and an `event` holding CR or LF (see
/// [`EncodeError`]); `out` is left untouched then.
///
/// # Examples
/// ```
/// let mut out = bytes::BytesMut::new();
/// sse_wire::encode(&sse_wire::Event::new("a\nb").with_id("1"), &mut out)?;
/// assert_eq!(&out[..], b"id: 1\ndata: a\ndata: b\n\n");
/// # Ok::<(), sse_wire::EncodeError>(())
/// ```
pub fn encode(event: &Event, out: &mut BytesMut) -> Result<(), EncodeError> {
    encode_ref(event.as_ref(), out)
}

/// [`encode`] for borrowed fields, so a caller holding them elsewhere (the
/// hub's stored update) need not clone its data into an [`Event`] first.
///
/// # Errors
/// As [`encode`]; `out` is left untouched then.
///
/// # Examples
/// ```
/// use sse_wire::{EventRef, encode_ref};
///
/// let mut out = bytes::BytesMut::new();
/// let ev = EventRef { event: Some("update"), data: "{}", id: Some("urn:1"), retry: None };
/// encode_ref(ev, &mut out)?;
/// assert_eq!(&out[..], b"event: update\nid: urn:1\ndata: {}\n\n");
/// # Ok::<(), sse_wire::EncodeError>(())
/// ```
pub fn encode_ref(event: EventRef<'_>, out: &mut BytesMut) -> Result<(), EncodeError> {
    if let Some(id) = event.id {
        validate_id(id)?;
    }
    if let Some(name) = event.event {
        validate_event_type(name)?;
    }
    // One reservation up front: the data plus a little per line avoids
    // repeated growth for typical events (lines of a few dozen bytes or more).
    out.reserve(event.data.len() + event.data.len() / 8 + 64);
    if let Some(name) = event.event.filter(|n| !n.is_empty()) {
        put_field(out, b"event", name.as_bytes());
    }
    if let Some(id) = event.id {
        put_field(out, b"id", id.as_bytes());
    }
    if let Some(retry) = event.retry {
        let mut digits = [0u8; 20];
        put_field(out, b"retry", format_u64(retry, &mut digits));
    }
    let mut rest = event.data.as_bytes();
    loop {
        match memchr2(b'\n', b'\r', rest) {
            Some(i) => {
                put_field(out, b"data", &rest[..i]);
                let skip = if rest[i] == b'\r' && rest.get(i + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                rest = &rest[i + skip..];
            }
            None => {
                put_field(out, b"data", rest);
                break;
            }
        }
    }
    out.put_u8(b'\n');
    Ok(())
}

/// Appends a comment to `out`: one `:` line per line of `text` (split on
/// CRLF, CR and LF), so a multi-line text cannot turn into fields. Clients
/// ignore comments; servers send them as heartbeats.
///
/// # Examples
/// ```
/// let mut out = bytes::BytesMut::new();
/// sse_wire::encode_comment("hi\nthere", &mut out);
/// assert_eq!(&out[..], b": hi\n: there\n");
/// ```
pub fn encode_comment(text: &str, out: &mut BytesMut) {
    let mut rest = text.as_bytes();
    loop {
        match memchr2(b'\n', b'\r', rest) {
            Some(i) => {
                put_comment_line(out, &rest[..i]);
                let skip = if rest[i] == b'\r' && rest.get(i + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                rest = &rest[i + skip..];
            }
            None => {
                put_comment_line(out, rest);
                break;
            }
        }
    }
}

/// Writes `name: value\n`, or `name:\n` for an empty value. The space is
/// always written before a non-empty value because the parser drops exactly
/// one: a value that itself starts with a space survives the round trip.
fn put_field(out: &mut BytesMut, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    if value.is_empty() {
        out.extend_from_slice(b":\n");
    } else {
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.put_u8(b'\n');
    }
}

/// Decimal digits of `n` in `buf`, without the allocation of `to_string`.
fn format_u64(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[at..];
        }
    }
}

fn put_comment_line(out: &mut BytesMut, text: &[u8]) {
    put_field(out, b"", text);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(ev: &Event) -> Result<String, EncodeError> {
        let mut out = BytesMut::new();
        encode(ev, &mut out)?;
        Ok(String::from_utf8(out.to_vec()).expect("encoder writes UTF-8"))
    }

    #[test]
    fn data_is_split_on_lf_cr_and_crlf() {
        assert_eq!(
            enc(&Event::new("a\nb\rc\r\nd")).unwrap(),
            "data: a\ndata: b\ndata: c\ndata: d\n\n"
        );
    }

    #[test]
    fn crlf_is_one_line_break_not_two() {
        assert_eq!(enc(&Event::new("a\r\nb")).unwrap(), "data: a\ndata: b\n\n");
    }

    #[test]
    fn empty_data_is_one_data_line() {
        assert_eq!(enc(&Event::new("")).unwrap(), "data:\n\n");
    }

    #[test]
    fn empty_lines_of_data_have_nothing_after_the_colon() {
        assert_eq!(
            enc(&Event::new("a\n\nb\n")).unwrap(),
            "data: a\ndata:\ndata: b\ndata:\n\n"
        );
    }

    #[test]
    fn all_fields_in_order() {
        let ev = Event::new("x")
            .with_event("t")
            .with_id("9")
            .with_retry(1500);
        assert_eq!(
            enc(&ev).unwrap(),
            "event: t\nid: 9\nretry: 1500\ndata: x\n\n"
        );
    }

    #[test]
    fn empty_id_is_written_to_reset_the_client() {
        assert_eq!(
            enc(&Event::new("x").with_id("")).unwrap(),
            "id:\ndata: x\n\n"
        );
    }

    #[test]
    fn empty_event_type_is_not_written() {
        assert_eq!(enc(&Event::new("x").with_event("")).unwrap(), "data: x\n\n");
    }

    #[test]
    fn id_with_line_break_or_nul_is_refused_and_nothing_written() {
        for (id, want) in [
            ("a\nb", EncodeError::IdContainsLineBreak),
            ("a\rb", EncodeError::IdContainsLineBreak),
            ("a\0b", EncodeError::IdContainsNul),
        ] {
            let mut out = BytesMut::from(&b"keep"[..]);
            assert_eq!(encode(&Event::new("x").with_id(id), &mut out), Err(want));
            assert_eq!(&out[..], b"keep");
        }
    }

    #[test]
    fn event_type_with_line_break_is_refused() {
        for name in ["a\nb", "a\rb", "\r\n"] {
            let mut out = BytesMut::new();
            assert_eq!(
                encode(&Event::new("x").with_event(name), &mut out),
                Err(EncodeError::EventTypeContainsLineBreak)
            );
            assert!(out.is_empty());
        }
        // NUL is harmless in a type: clients keep it.
        assert!(enc(&Event::new("x").with_event("a\0b")).is_ok());
    }

    #[test]
    fn comments_are_multi_line_safe() {
        let mut out = BytesMut::new();
        encode_comment("a\r\ndata: evil\rb\n", &mut out);
        assert_eq!(&out[..], b": a\n: data: evil\n: b\n:\n");
    }

    #[test]
    fn empty_comment_is_a_bare_colon() {
        let mut out = BytesMut::new();
        encode_comment("", &mut out);
        assert_eq!(&out[..], b":\n");
    }

    #[test]
    fn retry_digits() {
        let mut buf = [0u8; 20];
        assert_eq!(format_u64(0, &mut buf), b"0");
        assert_eq!(format_u64(1500, &mut buf), b"1500");
        assert_eq!(format_u64(u64::MAX, &mut buf), b"18446744073709551615");
    }

    #[test]
    fn encode_ref_matches_encode() {
        let ev = Event::new("a\nb")
            .with_event("t")
            .with_id("1")
            .with_retry(5);
        let (mut a, mut b) = (BytesMut::new(), BytesMut::new());
        encode(&ev, &mut a).unwrap();
        encode_ref(ev.as_ref(), &mut b).unwrap();
        assert_eq!(a, b);
        let bad = EventRef {
            id: Some("x\ny"),
            ..ev.as_ref()
        };
        assert_eq!(
            encode_ref(bad, &mut b),
            Err(EncodeError::IdContainsLineBreak)
        );
    }

    #[test]
    fn encoding_appends() {
        let mut out = BytesMut::new();
        encode(&Event::new("1"), &mut out).unwrap();
        encode(&Event::new("2"), &mut out).unwrap();
        assert_eq!(&out[..], b"data: 1\n\ndata: 2\n\n");
    }
}
