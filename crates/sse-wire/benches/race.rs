//! The parsers raced in interleaved rounds, for figures that hold on a
//! shared machine: each round runs every contender once, one after the
//! other, on the same chunks; the median over the rounds is reported in
//! both thread CPU time and wall time, with the ratio to `sse-stream`.
//!
//! Contenders (see `common/` for the code): `sse-wire` (`Parser::feed`,
//! each event's data and id copied into owned `String`s), `sse-wire-ref`
//! (`Parser::feed_with`, data and id lent as `&str` and passed through
//! `black_box`, their bytes neither copied nor read) and `sse-stream` 0.3
//! (data `Vec` and id `String` per event, driven with `block_on`). Each sums
//! the lengths of every data and id, checked equal before timing.
//!
//! `cargo bench -p sse-wire --bench race` (`RACE_ROUNDS=N`, default 31).
//!
//! With arguments `CONTENDER WORKLOAD CHUNK REPS` it runs one contender `REPS`
//! times and nothing else, for `valgrind --tool=callgrind`, whose
//! instruction counts do not depend on the neighbours' load: the difference
//! between `REPS=6` and `REPS=1`, divided by 5, is one parse.

use std::hint::black_box;
use std::time::Instant;

use bytes::Bytes;

mod common;
use common::*;

type Contender = (&'static str, fn(&[Bytes]) -> usize);

const CONTENDERS: [Contender; 3] = [
    ("sse-wire", sse_wire_parse),
    ("sse-wire-ref", sse_wire_ref_parse),
    ("sse-stream", sse_stream_parse),
];

fn thread_cpu_ns() -> u64 {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID)
        .expect("thread CPU clock");
    u64::try_from(t.tv_sec()).unwrap_or(0) * 1_000_000_000 + u64::try_from(t.tv_nsec()).unwrap_or(0)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if let [contender, workload, chunk, reps] = args.as_slice() {
        let parse = CONTENDERS
            .iter()
            .find(|(name, _)| name == contender)
            .expect("a contender: sse-wire, sse-wire-ref or sse-stream")
            .1;
        let input = workloads()
            .into_iter()
            .find(|(name, _)| name == workload)
            .expect("a workload: llm_tokens or payload_64k")
            .1;
        let pieces = chunks(&input, chunk.parse().expect("chunk size"));
        let mut total = 0;
        for _ in 0..reps.parse::<usize>().expect("repetitions") {
            total += parse(black_box(&pieces));
        }
        println!("{total}");
        return;
    }

    let rounds: usize = std::env::var("RACE_ROUNDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(31);
    // A single pass takes well under a millisecond: time a batch of passes.
    let batch = 10;
    println!(
        "workload chunk contender cpu_us wall_us GiB/s(cpu) x_sse-stream(cpu) x_sse-stream(wall)"
    );
    for (name, input) in workloads() {
        for size in [4096, 65536] {
            let pieces = chunks(&input, size);
            let want = sse_wire_parse(&pieces);
            let mut cpu = vec![Vec::new(); CONTENDERS.len()];
            let mut wall = vec![Vec::new(); CONTENDERS.len()];
            for round in 0..rounds + 2 {
                for (i, (who, parse)) in CONTENDERS.iter().enumerate() {
                    let (c0, w0) = (thread_cpu_ns(), Instant::now());
                    for _ in 0..batch {
                        assert_eq!(parse(black_box(&pieces)), want, "{who} disagrees");
                    }
                    let (c, w) = (thread_cpu_ns() - c0, w0.elapsed().as_nanos());
                    // The first two rounds warm caches and the allocator.
                    if round >= 2 {
                        cpu[i].push(c as f64 / batch as f64 / 1e3);
                        wall[i].push(w as f64 / batch as f64 / 1e3);
                    }
                }
            }
            let cpu: Vec<f64> = cpu.into_iter().map(median).collect();
            let wall: Vec<f64> = wall.into_iter().map(median).collect();
            let base = CONTENDERS.len() - 1;
            for (i, (who, _)) in CONTENDERS.iter().enumerate() {
                println!(
                    "{name} {}k {who} {:.1} {:.1} {:.2} {:.2} {:.2}",
                    size / 1024,
                    cpu[i],
                    wall[i],
                    input.len() as f64 / (cpu[i] * 1e3) / 1.073_741_824,
                    cpu[base] / cpu[i],
                    wall[base] / wall[i],
                );
            }
        }
    }
}
