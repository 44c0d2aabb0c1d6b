//! Counts heap allocations while parsing. This is its own test binary
//! because the counting global allocator sees every thread of the process,
//! and it holds a single test so nothing else allocates during the count.

use sse_wire::{Frame, FrameRef, Parser};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

/// Parses `input` in `chunk`-byte pieces; returns (events, allocations).
fn count(parser: &mut Parser, input: &[u8], chunk: usize) -> (u64, u64) {
    let before = dhat::HeapStats::get().total_blocks;
    let mut events = 0;
    for piece in input.chunks(chunk) {
        for frame in parser.feed(piece) {
            match frame {
                Ok(Frame::Event(ev)) => {
                    events += 1;
                    drop(ev);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    (events, dhat::HeapStats::get().total_blocks - before)
}

/// Like [`count`], with the frames lent ([`Parser::feed_with`]); the data
/// and id are read, as a consumer would.
fn count_lent(parser: &mut Parser, input: &[u8], chunk: usize) -> (u64, u64) {
    let before = dhat::HeapStats::get().total_blocks;
    let (mut events, mut bytes) = (0, 0);
    for piece in input.chunks(chunk) {
        parser.feed_with(piece, |frame| match frame {
            Ok(FrameRef::Event(ev)) => {
                events += 1;
                bytes += std::hint::black_box(ev.data).len() + ev.id.map_or(0, str::len);
            }
            other => panic!("unexpected {other:?}"),
        });
    }
    assert!(bytes > 0);
    (events, dhat::HeapStats::get().total_blocks - before)
}

#[test]
fn parser_allocates_only_what_each_event_owns() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let mut token_stream = Vec::new();
    for i in 0..2000 {
        token_stream.extend_from_slice(
            format!(
                "id: {i}\ndata: {{\"choices\":[{{\"delta\":{{\"content\":\"tok{i}\"}}}}]}}\n\n"
            )
            .as_bytes(),
        );
    }
    let mut typed = Vec::new();
    for i in 0..2000 {
        typed.extend_from_slice(format!("event: delta\ndata: {i}\n\n").as_bytes());
    }

    // Warm up so the partial-line buffer has reached its working size.
    let mut parser = Parser::new();
    count(&mut parser, &token_stream, 100);

    // Per event: its data String and its id String, nothing else; the
    // partial-line buffer is reused across chunks.
    let (events, allocs) = count(&mut parser, &token_stream, 100);
    assert_eq!(events, 2000);
    assert_eq!(allocs, 2 * events, "token stream in 100-byte chunks");
    let (events, allocs) = count(&mut parser, &token_stream, token_stream.len());
    assert_eq!(allocs, 2 * events, "token stream in one chunk");

    // An event type costs its own String, like an id.
    let mut parser = Parser::new();
    let (events, allocs) = count(&mut parser, &typed, typed.len());
    assert_eq!(events, 2000);
    assert_eq!(allocs, 2 * events, "data and type, no id");

    // Lent, nothing at all once the parser's buffers have their working
    // size: one-line data comes straight from the chunk, a line split
    // across chunks or several data lines from the parser's reused buffer.
    let mut multi = Vec::new();
    for i in 0..2000 {
        multi.extend_from_slice(format!("id: {i}\ndata: a{i}\ndata: b\n\n").as_bytes());
    }
    for (name, input) in [
        ("tokens", &token_stream),
        ("typed", &typed),
        ("multi-line", &multi),
    ] {
        let mut parser = Parser::new();
        count_lent(&mut parser, input, 7);
        count_lent(&mut parser, input, 100);
        for chunk in [100, 7, input.len()] {
            let (events, allocs) = count_lent(&mut parser, input, chunk);
            assert_eq!(events, 2000);
            assert_eq!(allocs, 0, "{name} lent, in {chunk}-byte chunks");
        }
    }
}
