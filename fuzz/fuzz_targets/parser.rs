//! Fuzzes the incremental parser: it must never panic, must give the same
//! items whatever the chunking, must lend (`Feed::next_ref`) exactly the
//! frames it yields owned (also when feeds are dropped early), and every
//! event it yields must survive encode-then-parse unchanged.
//!
//! The first input byte picks the chunk size (low nibble) and, if its high
//! bit is set, a small size limit (so the over-limit paths run too); the
//! rest is the stream. The lent run takes at most `1 + (seed & 3)` frames
//! from each feed before dropping it (the rest is parsed with the next
//! chunk).
//!
//! Run (cargo-fuzz needs nightly; `RUSTC_BOOTSTRAP=1` works on stable 1.95):
//! `RUSTC_BOOTSTRAP=1 cargo fuzz run parser -- -max_total_time=180 -max_len=4096`

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use sse_wire::{Frame, ParseError, Parser, encode};

type Outcome = (Vec<Result<Frame, ParseError>>, String, Option<u64>);

fn parser(limit: Option<usize>) -> Parser {
    let parser = Parser::new().with_comments(true);
    match limit {
        Some(limit) => parser.with_max_event_bytes(limit),
        None => parser,
    }
}

fn run(mut parser: Parser, chunks: &[&[u8]]) -> Outcome {
    let mut items = Vec::new();
    for chunk in chunks {
        items.extend(parser.feed(chunk));
    }
    (items, parser.last_event_id().to_owned(), parser.retry())
}

/// The frames lent, at most `per_feed` from each feed, then converted.
fn run_lent(mut parser: Parser, chunks: &[&[u8]], per_feed: usize) -> Outcome {
    let mut items = Vec::new();
    let mut feed_one = |parser: &mut Parser, chunk: &[u8]| {
        let mut feed = parser.feed(chunk);
        for _ in 0..per_feed {
            let Some(item) = feed.next_ref() else {
                return false;
            };
            items.push(item.map(Frame::from));
        }
        true
    };
    for chunk in chunks {
        feed_one(&mut parser, chunk);
    }
    // Drain what the dropped feeds kept.
    while feed_one(&mut parser, b"") {}
    (items, parser.last_event_id().to_owned(), parser.retry())
}

fuzz_target!(|input: &[u8]| {
    let Some((&seed, stream)) = input.split_first() else {
        return;
    };
    let limit = (seed & 0x80 != 0).then(|| usize::from(seed & 0x70) >> 2);
    let step = usize::from(seed & 0x0f) + 1;

    let whole = run(parser(limit), &[stream]);
    let pieces: Vec<&[u8]> = stream.chunks(step).collect();
    let split = run(parser(limit), &pieces);
    assert_eq!(whole, split, "chunking changed the result");
    let per_feed = usize::from(seed & 3) + 1;
    let lent = run_lent(parser(limit), &pieces, per_feed);
    assert_eq!(whole, lent, "lent frames differ from owned ones");
    let lent_whole = run_lent(parser(limit), &[stream], usize::MAX);
    assert_eq!(whole, lent_whole, "lent frames differ from owned ones (one chunk)");

    for item in &whole.0 {
        let Ok(Frame::Event(event)) = item else {
            continue;
        };
        let mut out = BytesMut::new();
        encode(event, &mut out).expect("a parsed event is always encodable");
        let (again, _, _) = run(Parser::new(), &[&out]);
        assert_eq!(
            again,
            [Ok(Frame::Event(event.clone()))],
            "round trip changed the event"
        );
    }
});
