//! The parse workloads and contenders shared by `benches/codec.rs` (criterion)
//! and `benches/race.rs` (interleaved rounds, callgrind): every contender
//! returns the total length of every event's data and id. The owned ones
//! materialise both (a `String` or `Vec` each, copied out of the input);
//! `sse-wire-ref` is handed them lent (`&str` into the chunk or the parser's
//! buffers) and passes each through `black_box`, so the compiler must
//! produce them, but does not copy or read their bytes: what a consumer that
//! re-encodes or deserialises at once saves.
// Each bench target uses only part of this module.
#![allow(dead_code)]

use std::io;

use bytes::{Bytes, BytesMut};
use eventsource_stream::Eventsource;
use futures::StreamExt;
use futures::executor::block_on;
use sse_wire::{Event, Frame, FrameRef, Parser, encode};

/// Thousands of small OpenAI-style chunks, each with an id, as an LLM relay
/// sends them.
pub(crate) fn token_stream() -> Vec<u8> {
    let mut out = String::new();
    for i in 0..5000 {
        let word = [
            "The", " quick", " brown", " fox", " jumps", " over", " the", " lazy", " dog", ".",
        ][i % 10];
        out.push_str(&format!(
            "id: {i}\ndata: {{\"id\":\"chatcmpl-9a8b7c6d5e4f\",\"object\":\"chat.completion.chunk\",\"created\":1732000000,\"model\":\"gpt-4o-mini\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{word}\"}},\"finish_reason\":null}}]}}\n\n"
        ));
    }
    // Its own id too: `sse-stream` does not carry the last id over.
    out.push_str("id: done\ndata: [DONE]\n\n");
    out.into_bytes()
}

/// One 64 KiB multi-line payload: lines of 50 to 199 bytes.
pub(crate) fn payload() -> String {
    let mut data = String::new();
    let mut i = 0usize;
    while data.len() < 64 * 1024 {
        let len = 50 + (i * 37) % 150;
        data.extend((0..len).map(|j| char::from(b'a' + ((i + j) % 26) as u8)));
        data.push('\n');
        i += 1;
    }
    data.truncate(64 * 1024);
    data
}

/// Sixteen events of 64 KiB each, encoded.
pub(crate) fn large_stream() -> Vec<u8> {
    let mut out = BytesMut::new();
    let data = payload();
    for i in 0..16 {
        encode(&Event::new(data.clone()).with_id(i.to_string()), &mut out).expect("encodable");
    }
    out.to_vec()
}

/// The workloads by name.
pub(crate) fn workloads() -> [(&'static str, Vec<u8>); 2] {
    [
        ("llm_tokens", token_stream()),
        ("payload_64k", large_stream()),
    ]
}

/// `input` in `size`-byte chunks, as socket reads would deliver it.
pub(crate) fn chunks(input: &[u8], size: usize) -> Vec<Bytes> {
    input.chunks(size).map(Bytes::copy_from_slice).collect()
}

/// `Parser::feed`: events with owned `String`s.
pub(crate) fn sse_wire_parse(chunks: &[Bytes]) -> usize {
    let mut parser = Parser::new();
    let mut total = 0;
    for chunk in chunks {
        for frame in parser.feed(chunk) {
            if let Ok(Frame::Event(ev)) = frame {
                total += ev.data.len() + ev.id.map_or(0, |id| id.len());
            }
        }
    }
    total
}

/// `Parser::feed_with`: events lent, nothing allocated or copied per event
/// (beyond the parser's own buffers, reused).
pub(crate) fn sse_wire_ref_parse(chunks: &[Bytes]) -> usize {
    let mut parser = Parser::new();
    let mut total = 0;
    for chunk in chunks {
        parser.feed_with(chunk, |frame| {
            if let Ok(FrameRef::Event(ev)) = frame {
                let (data, id) = std::hint::black_box((ev.data, ev.id));
                total += data.len() + id.map_or(0, str::len);
            }
        });
    }
    total
}

fn byte_stream(
    chunks: &[Bytes],
) -> impl futures::Stream<Item = Result<Bytes, io::Error>> + Unpin + '_ {
    futures::stream::iter(chunks.iter().cloned().map(Ok))
}

/// `sse-stream` 0.3 does not carry the last id to later events: each event
/// here has its own `id:` line, so the totals still agree.
pub(crate) fn sse_stream_parse(chunks: &[Bytes]) -> usize {
    block_on(
        sse_stream::SseByteStream::new(byte_stream(chunks)).fold(0, |n, sse| async move {
            let sse = sse.expect("valid stream");
            n + sse.data.map_or(0, |d| d.len()) + sse.id.map_or(0, |id| id.len())
        }),
    )
}

pub(crate) fn eventsource_stream_parse(chunks: &[Bytes]) -> usize {
    block_on(
        byte_stream(chunks)
            .eventsource()
            .fold(0, |n, ev| async move {
                let ev = ev.expect("valid stream");
                n + ev.data.len() + ev.id.len()
            }),
    )
}

/// The ceiling: find every line end, as any parser must, and nothing else.
/// (`memchr_iter(..).count()` would count without stopping at each line,
/// which no parser can do.)
pub(crate) fn memchr_line_ends(input: &[u8]) -> usize {
    let (mut pos, mut lines) = (0, 0usize);
    while let Some(i) = memchr::memchr(b'\n', &input[pos..]) {
        pos += i + 1;
        lines += 1;
    }
    lines
}
