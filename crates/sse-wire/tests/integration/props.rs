//! Property tests: chunking never changes the result, and encoding then
//! parsing gives back the original events.

use bytes::BytesMut;
use proptest::prelude::*;
use sse_wire::{Event, Parser, encode};

use crate::{parse_chunks, parse_items};

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
