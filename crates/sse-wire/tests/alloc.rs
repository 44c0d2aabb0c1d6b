//! Counts heap allocations while parsing. This is its own test binary
//! because the counting global allocator sees every thread of the process,
//! and it holds a single test so nothing else allocates during the count.

use sse_wire::{Frame, Parser};

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
}
