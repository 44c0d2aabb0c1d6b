//! Codec throughput, side by side with `sse-stream` 0.3 and
//! `eventsource-stream` 0.2 in the same run, with a bare `memchr` newline
//! scan as the ceiling. Run:
//! `cargo bench -p sse-wire --bench codec -- --warm-up-time 1 --measurement-time 3`
//!
//! Time is the benchmark thread's CPU time by default, because the bench
//! machine is shared and wall time there measures the neighbours' compiles as
//! much as this code; set `SSE_WIRE_BENCH_WALL=1` for wall-clock time.
//!
//! Both workloads are fed in 4 KiB chunks (a typical socket read). The other
//! parsers are async streams; they are driven with `futures::executor::block_on`
//! over an in-memory stream of `Bytes` chunks, which adds a few nanoseconds
//! per chunk, not per byte.

use std::hint::black_box;
use std::io;

use bytes::{Bytes, BytesMut};
use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{Criterion, Throughput};
use eventsource_stream::Eventsource;
use futures::StreamExt;
use futures::executor::block_on;
use sse_wire::{Event, Frame, Parser, encode};

const CHUNK: usize = 4096;

/// Thousands of small OpenAI-style chunks, each with an id, as an LLM relay
/// sends them.
fn token_stream() -> Vec<u8> {
    let mut out = String::new();
    for i in 0..5000 {
        let word = [
            "The", " quick", " brown", " fox", " jumps", " over", " the", " lazy", " dog", ".",
        ][i % 10];
        out.push_str(&format!(
            "id: {i}\ndata: {{\"id\":\"chatcmpl-9a8b7c6d5e4f\",\"object\":\"chat.completion.chunk\",\"created\":1732000000,\"model\":\"gpt-4o-mini\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{word}\"}},\"finish_reason\":null}}]}}\n\n"
        ));
    }
    out.push_str("data: [DONE]\n\n");
    out.into_bytes()
}

/// One 64 KiB multi-line payload: lines of 50 to 199 bytes.
fn payload() -> String {
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
fn large_stream() -> Vec<u8> {
    let mut out = BytesMut::new();
    let data = payload();
    for i in 0..16 {
        encode(&Event::new(data.clone()).with_id(i.to_string()), &mut out).expect("encodable");
    }
    out.to_vec()
}

fn chunks(input: &[u8]) -> Vec<Bytes> {
    input.chunks(CHUNK).map(Bytes::copy_from_slice).collect()
}

fn sse_wire_parse(chunks: &[Bytes]) -> usize {
    let mut parser = Parser::new();
    let mut total = 0;
    for chunk in chunks {
        for frame in parser.feed(chunk) {
            if let Ok(Frame::Event(ev)) = frame {
                total += ev.data.len();
            }
        }
    }
    total
}

fn byte_stream(
    chunks: &[Bytes],
) -> impl futures::Stream<Item = Result<Bytes, io::Error>> + Unpin + '_ {
    futures::stream::iter(chunks.iter().cloned().map(Ok))
}

fn sse_stream_parse(chunks: &[Bytes]) -> usize {
    block_on(
        sse_stream::SseByteStream::new(byte_stream(chunks)).fold(0, |n, sse| async move {
            n + sse.expect("valid stream").data.map_or(0, |d| d.len())
        }),
    )
}

fn eventsource_stream_parse(chunks: &[Bytes]) -> usize {
    block_on(
        byte_stream(chunks)
            .eventsource()
            .fold(0, |n, ev| async move {
                n + ev.expect("valid stream").data.len()
            }),
    )
}

/// CPU time of the calling thread, in nanoseconds.
struct ThreadCpuTime;

fn thread_cpu_ns() -> u64 {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID)
        .expect("thread CPU clock");
    u64::try_from(t.tv_sec()).unwrap_or(0) * 1_000_000_000 + u64::try_from(t.tv_nsec()).unwrap_or(0)
}

impl Measurement for ThreadCpuTime {
    type Intermediate = u64;
    type Value = u64;

    fn start(&self) -> u64 {
        thread_cpu_ns()
    }
    fn end(&self, start: u64) -> u64 {
        thread_cpu_ns().saturating_sub(start)
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }
    fn zero(&self) -> u64 {
        0
    }
    fn to_f64(&self, value: &u64) -> f64 {
        *value as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        // Nanoseconds either way: reuse the wall clock's units.
        static WALL: WallTime = WallTime;
        WALL.formatter()
    }
}

fn parse_benches<M: Measurement>(c: &mut Criterion<M>) {
    for (name, input) in [
        ("llm_tokens", token_stream()),
        ("payload_64k", large_stream()),
    ] {
        let pieces = chunks(&input);
        let want = sse_wire_parse(&pieces);
        assert_eq!(
            sse_stream_parse(&pieces),
            want,
            "parsers disagree on {name}"
        );
        assert_eq!(
            eventsource_stream_parse(&pieces),
            want,
            "parsers disagree on {name}"
        );

        let mut group = c.benchmark_group(format!("parse/{name}"));
        group.throughput(Throughput::Bytes(input.len() as u64));
        group.bench_function("sse-wire", |b| {
            b.iter(|| sse_wire_parse(black_box(&pieces)))
        });
        group.bench_function("sse-stream", |b| {
            b.iter(|| sse_stream_parse(black_box(&pieces)))
        });
        group.bench_function("eventsource-stream", |b| {
            b.iter(|| eventsource_stream_parse(black_box(&pieces)))
        });
        // The ceiling: find every line end, as any parser must, and nothing
        // else. (`memchr_iter(..).count()` would count without stopping at
        // each line, which no parser can do.)
        group.bench_function("memchr-line-ends", |b| {
            b.iter(|| {
                let haystack = black_box(&input);
                let (mut pos, mut lines) = (0, 0usize);
                while let Some(i) = memchr::memchr(b'\n', &haystack[pos..]) {
                    pos += i + 1;
                    lines += 1;
                }
                lines
            })
        });
        group.finish();
    }
}

fn encode_benches<M: Measurement>(c: &mut Criterion<M>) {
    let token = "{\"id\":\"chatcmpl-9a8b7c6d5e4f\",\"object\":\"chat.completion.chunk\",\"created\":1732000000,\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" fox\"},\"finish_reason\":null}]}";
    for (name, data) in [("llm_token", token.to_owned()), ("payload_64k", payload())] {
        let ev = Event::new(data.clone()).with_id("12345");
        let theirs = sse_stream::Sse::default().data(data.clone()).id("12345");
        let mut probe = BytesMut::new();
        encode(&ev, &mut probe).expect("encodable");
        assert_eq!(
            theirs.clone().encode().expect("encodable").len(),
            probe.len(),
            "encoders disagree on {name}"
        );

        let mut group = c.benchmark_group(format!("encode/{name}"));
        group.throughput(Throughput::Bytes(data.len() as u64));
        // The hub's use: encode into a fresh buffer, freeze, share.
        group.bench_function("sse-wire", |b| {
            b.iter(|| {
                let mut out = BytesMut::new();
                encode(black_box(&ev), &mut out).expect("encodable");
                out.freeze()
            })
        });
        // Encoding into a reused buffer (no allocation).
        group.bench_function("sse-wire-reused-buffer", |b| {
            let mut out = BytesMut::with_capacity(probe.len());
            b.iter(|| {
                out.clear();
                encode(black_box(&ev), &mut out).expect("encodable");
                out.len()
            })
        });
        // `Sse::encode` takes the event by value, so each run clones it; the
        // clone alone is measured next to it.
        group.bench_function("sse-stream", |b| {
            b.iter(|| black_box(&theirs).clone().encode().expect("encodable"))
        });
        group.bench_function("sse-stream-clone-only", |b| {
            b.iter(|| black_box(&theirs).clone())
        });
        group.finish();
    }
}

fn main() {
    if std::env::var_os("SSE_WIRE_BENCH_WALL").is_some() {
        let mut c = Criterion::default().configure_from_args();
        parse_benches(&mut c);
        encode_benches(&mut c);
        c.final_summary();
    } else {
        let mut c = Criterion::default()
            .with_measurement(ThreadCpuTime)
            .configure_from_args();
        parse_benches(&mut c);
        encode_benches(&mut c);
        c.final_summary();
    }
}
