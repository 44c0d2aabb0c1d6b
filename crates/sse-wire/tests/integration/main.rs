//! Integration tests of sse-wire, one module per topic: the shared
//! conformance cases and the property tests.

mod conformance;
mod props;

use sse_wire::{Event, Frame, ParseError, Parser};

/// Feeds `chunks` to a fresh parser; returns the events (errors fail the
/// test) and the parser for its final state.
pub(crate) fn parse_chunks<C: AsRef<[u8]>>(parser: Parser, chunks: &[C]) -> (Vec<Event>, Parser) {
    let (items, parser) = parse_items(parser, chunks);
    let events = items
        .into_iter()
        .map(|item| match item {
            Ok(Frame::Event(ev)) => ev,
            other => panic!("unexpected item {other:?}"),
        })
        .collect();
    (events, parser)
}

/// Like [`parse_chunks`] but keeps every item, errors and comments included.
pub(crate) fn parse_items<C: AsRef<[u8]>>(
    mut parser: Parser,
    chunks: &[C],
) -> (Vec<Result<Frame, ParseError>>, Parser) {
    let mut items = Vec::new();
    for chunk in chunks {
        items.extend(parser.feed(chunk.as_ref()));
    }
    (items, parser)
}

/// What a run of the parser produced: every item, the last event ID and the
/// reconnection time at the end.
pub(crate) type Outcome = (Vec<Result<Frame, ParseError>>, String, Option<u64>);

/// Feeds `chunks`, taking at most `per_feed` items from each [`Parser::feed`]
/// before dropping it (`usize::MAX`: all), owned or `lent` (then converted
/// for comparison); after the last chunk, empty chunks drain what dropped
/// feeds left behind.
pub(crate) fn parse_both_ways<C: AsRef<[u8]>>(
    mut parser: Parser,
    chunks: &[C],
    per_feed: usize,
    lent: bool,
) -> Outcome {
    let mut items = Vec::new();
    let mut feed_one = |parser: &mut Parser, chunk: &[u8]| {
        let mut feed = parser.feed(chunk);
        let mut n = 0;
        while n < per_feed {
            let item = if lent {
                feed.next_ref().map(|item| item.map(Frame::from))
            } else {
                feed.next()
            };
            let Some(item) = item else { break };
            items.push(item);
            n += 1;
        }
        n == per_feed
    };
    for chunk in chunks {
        feed_one(&mut parser, chunk.as_ref());
    }
    while feed_one(&mut parser, b"") {}
    (items, parser.last_event_id().to_owned(), parser.retry())
}
