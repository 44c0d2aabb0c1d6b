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
