//! Codec throughput, side by side with `sse-stream` 0.3 and
//! `eventsource-stream` 0.2 in the same run, with a bare `memchr` newline
//! scan as the ceiling. Run:
//! `cargo bench -p sse-wire --bench codec -- --warm-up-time 1 --measurement-time 3`
//!
//! Time is the benchmark thread's CPU time by default, because the bench
//! machine is shared and wall time there measures the neighbours' compiles as
//! much as this code; set `SSE_WIRE_BENCH_WALL=1` for wall-clock time.
//!
//! Both workloads are fed in 4 KiB chunks (a typical socket read) and in
//! 64 KiB chunks; every contender but `sse-wire-ref` materialises each
//! event's data and id (`sse-wire-ref` is lent them: see `common/`). The
//! other parsers are async streams; they are driven with
//! `futures::executor::block_on` over an in-memory stream of `Bytes` chunks,
//! which adds a few nanoseconds per chunk, not per byte. For repeatable
//! figures on a loaded machine see `benches/race.rs` (interleaved rounds,
//! callgrind instruction counts).

use std::hint::black_box;

use bytes::BytesMut;
use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{Criterion, Throughput};
use sse_wire::{Event, encode};

mod common;
use common::*;

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
    for (name, input) in workloads() {
        for size in [4096, 65536] {
            let pieces = chunks(&input, size);
            let want = sse_wire_parse(&pieces);
            for (other, got) in [
                ("sse-wire-ref", sse_wire_ref_parse(&pieces)),
                ("sse-stream", sse_stream_parse(&pieces)),
                ("eventsource-stream", eventsource_stream_parse(&pieces)),
            ] {
                assert_eq!(got, want, "{other} disagrees on {name}");
            }

            let mut group = c.benchmark_group(format!("parse/{name}/{}k", size / 1024));
            group.throughput(Throughput::Bytes(input.len() as u64));
            group.bench_function("sse-wire", |b| {
                b.iter(|| sse_wire_parse(black_box(&pieces)))
            });
            group.bench_function("sse-wire-ref", |b| {
                b.iter(|| sse_wire_ref_parse(black_box(&pieces)))
            });
            group.bench_function("sse-stream", |b| {
                b.iter(|| sse_stream_parse(black_box(&pieces)))
            });
            group.bench_function("eventsource-stream", |b| {
                b.iter(|| eventsource_stream_parse(black_box(&pieces)))
            });
            group.bench_function("memchr-line-ends", |b| {
                b.iter(|| memchr_line_ends(black_box(&input)))
            });
            group.finish();
        }
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
