//! Property tests: chunking never changes the result, and encoding then
//! parsing gives back the original events.

use bytes::BytesMut;
use proptest::prelude::*;
use sse_wire::{Event, Parser, encode};

use crate::{parse_both_ways, parse_chunks, parse_items};

/// Streams built from the pieces that matter to the parser, so random
/// inputs hit line ends, field names, BOM and multi-byte characters often.
fn stream() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(&b"data"[..]),
        Just(&b"data:"[..]),
        Just(&b"data: "[..]),
        Just(&b"event: "[..]),
        Just(&b"id: "[..]),
        Just(&b"id"[..]),
        Just(&b"retry: "[..]),
        Just(&b":"[..]),
        Just(&b"\n"[..]),
        Just(&b"\r"[..]),
        Just(&b"\r\n"[..]),
        Just(&b"\n\n"[..]),
        Just(&b" "[..]),
        Just(&b"12"[..]),
        Just(&b"x"[..]),
        Just(&b"\0"[..]),
        Just(&b"\xEF\xBB\xBF"[..]),
        Just("\u{20AC}".as_bytes()),
        Just(&b"\xE2\x82"[..]),
        Just(&b"\xFF"[..]),
    ];
    prop::collection::vec(piece, 0..60).prop_map(|pieces| pieces.concat())
}

/// Streams of whole lines, so events often hold several data lines and
/// comments (a comment is a frame yielded in the middle of an event).
fn lines() -> impl Strategy<Value = Vec<u8>> {
    let line = prop_oneof![
        Just(&b"data: a\n"[..]),
        Just(&b"data: bc\r\n"[..]),
        Just(&b"data\n"[..]),
        Just(&b"data: \xFF\n"[..]),
        Just(&b": note\n"[..]),
        Just(&b"id: 1\n"[..]),
        Just(&b"event: t\n"[..]),
        Just(&b"retry: 5\n"[..]),
        Just(&b"\n"[..]),
    ];
    prop::collection::vec(line, 0..30).prop_map(|lines| lines.concat())
}

/// Cuts `bytes` at the given points (taken modulo its length).
fn split(bytes: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.sort_unstable();
    let mut chunks = Vec::new();
    let mut start = 0;
    for p in points.into_iter().chain([bytes.len()]) {
        chunks.push(bytes[start..p].to_vec());
        start = p;
    }
    chunks
}

fn event() -> impl Strategy<Value = Event> {
    // Any text for data (line breaks of every kind included); ids and types
    // without the characters the encoder refuses.
    let data = "(?s).{0,40}";
    let id = prop::option::of("[^\r\n\0]{0,12}");
    let kind = prop::option::of("[^\r\n]{1,12}");
    let retry = prop::option::of(any::<u64>());
    (data, id, kind, retry).prop_map(|(data, id, event, retry)| Event {
        event,
        data,
        id,
        retry,
    })
}

/// A deliberately naive reading of the WHATWG rules: decode the whole stream
/// (U+FFFD for invalid bytes), drop one leading BOM, split into lines, apply
/// the field rules. The parser's fast and general paths must both agree
/// with it.
fn reference(bytes: &[u8]) -> (Vec<Event>, String, Option<u64>) {
    let decoded = String::from_utf8_lossy(bytes);
    let text = decoded.strip_prefix('\u{FEFF}').unwrap_or(&decoded);
    let mut lines = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                lines.push(std::mem::take(&mut current));
            }
            '\n' => lines.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    let (mut events, mut data, mut kind) = (Vec::new(), String::new(), String::new());
    let (mut id_buffer, mut last_id) = (String::new(), String::new());
    let (mut retry, mut event_retry) = (None, None);
    for line in lines {
        if line.is_empty() {
            last_id = id_buffer.clone();
            let this_retry = event_retry.take();
            if data.is_empty() {
                kind.clear();
                continue;
            }
            data.pop();
            events.push(Event {
                event: Some(std::mem::take(&mut kind)).filter(|k| !k.is_empty()),
                data: std::mem::take(&mut data),
                id: Some(last_id.clone()).filter(|id| !id.is_empty()),
                retry: this_retry,
            });
            continue;
        }
        if line.starts_with(':') {
            continue;
        }
        let (name, value) = match line.find(':') {
            Some(i) => (
                &line[..i],
                line[i + 1..].strip_prefix(' ').unwrap_or(&line[i + 1..]),
            ),
            None => (line.as_str(), ""),
        };
        match name {
            "data" => {
                data.push_str(value);
                data.push('\n');
            }
            "event" => kind = value.to_owned(),
            "id" if !value.contains('\0') => id_buffer = value.to_owned(),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                if let Ok(ms) = value.parse() {
                    retry = Some(ms);
                    event_retry = Some(ms);
                }
            }
            _ => {}
        }
    }
    (events, last_id, retry)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_chunking_gives_the_same_items(bytes in stream(), cuts in prop::collection::vec(any::<usize>(), 0..8)) {
        let (whole, p1) = parse_items(Parser::new().with_comments(true), &[&bytes]);
        let (pieces, p2) = parse_items(Parser::new().with_comments(true), &split(&bytes, &cuts));
        prop_assert_eq!(&whole, &pieces);
        prop_assert_eq!(p1.last_event_id(), p2.last_event_id());
        prop_assert_eq!(p1.retry(), p2.retry());
    }

    #[test]
    fn parser_agrees_with_the_reference_reading(bytes in stream(), cuts in prop::collection::vec(any::<usize>(), 0..8)) {
        let (want, want_id, want_retry) = reference(&bytes);
        for chunks in [vec![bytes.clone()], split(&bytes, &cuts)] {
            let (events, parser) = parse_chunks(Parser::new(), &chunks);
            prop_assert_eq!(&events, &want);
            prop_assert_eq!(parser.last_event_id(), want_id.as_str());
            prop_assert_eq!(parser.retry(), want_retry);
        }
    }

    #[test]
    fn any_chunking_gives_the_same_items_under_a_small_limit(
        bytes in stream(),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
        limit in 0usize..24,
    ) {
        let (whole, _) = parse_items(Parser::new().with_max_event_bytes(limit), &[&bytes]);
        let (pieces, _) = parse_items(Parser::new().with_max_event_bytes(limit), &split(&bytes, &cuts));
        prop_assert_eq!(whole, pieces);
    }

    #[test]
    fn lent_frames_equal_owned_frames(
        bytes in prop_oneof![stream(), lines()],
        cuts in prop::collection::vec(any::<usize>(), 0..8),
        limit in prop::option::of(0usize..24),
        comments in any::<bool>(),
        resume_from in prop::option::of("[a-z]{0,3}"),
        per_feed in prop_oneof![Just(usize::MAX), 1usize..3],
    ) {
        let mut parser = Parser::new().with_comments(comments);
        if let Some(limit) = limit {
            parser = parser.with_max_event_bytes(limit);
        }
        if let Some(id) = resume_from {
            parser = parser.with_last_event_id(id);
        }
        for chunks in [vec![bytes.clone()], split(&bytes, &cuts)] {
            let owned = parse_both_ways(parser.clone(), &chunks, per_feed, false);
            let lent = parse_both_ways(parser.clone(), &chunks, per_feed, true);
            prop_assert_eq!(&lent, &owned);
            // Dropping feeds early changes nothing either.
            let whole = parse_both_ways(parser.clone(), &chunks, usize::MAX, false);
            prop_assert_eq!(&owned, &whole);
        }
    }

    #[test]
    fn encode_then_parse_returns_the_events(events in prop::collection::vec(event(), 0..6), cuts in prop::collection::vec(any::<usize>(), 0..6)) {
        let mut out = BytesMut::new();
        for ev in &events {
            encode(ev, &mut out).expect("generated events are encodable");
        }
        let (parsed, _) = parse_chunks(Parser::new(), &split(&out, &cuts));
        // What a client sees: data with CRLF and CR as LF, the id in force
        // (an empty id resets it), an empty type as the default.
        let mut last_id = None;
        let want: Vec<Event> = events
            .iter()
            .map(|ev| {
                if let Some(id) = &ev.id {
                    last_id = Some(id.clone()).filter(|id| !id.is_empty());
                }
                Event {
                    event: ev.event.clone().filter(|e| !e.is_empty()),
                    data: ev.data.replace("\r\n", "\n").replace('\r', "\n"),
                    id: last_id.clone(),
                    retry: ev.retry,
                }
            })
            .collect();
        prop_assert_eq!(parsed, want);
    }
}
