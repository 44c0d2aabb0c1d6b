//! Parse-and-deliver throughput of the client against the bare `sse-wire`
//! parser, on the same pre-encoded LLM token stream (20 001 events, 3.6 MB).
//!
//! - `bare_parser`: `Parser::feed` over the body in 64 KiB slices, events
//!   built and dropped.
//! - `event_source_in_memory`: an `EventSource` over an in-memory response
//!   body in the same 64 KiB slices: the client's own cost without sockets.
//! - `event_source_loopback`: an `EventSource` reading the same body from a
//!   local HTTP/1.1 server (one connection reused across iterations).
//! - `reqwest_plus_parser_loopback`: reqwest's body stream fed to a bare
//!   parser over the same loopback server: the transport floor.
//! - `event_source_lean_loopback`: `event_source_loopback` on the lean
//!   HTTP/1.1 transport (`Transport::LeanHttp1`, a new connection each run).
//!
//! `cargo bench -p sse-client --bench throughput` runs criterion (wall
//! time). On a loaded machine wall-clock means wander, so `SSE_BENCH_MIN=200
//! cargo bench -p sse-client --bench throughput` instead runs the variants
//! interleaved that many times and prints each one's fastest and median
//! run in **CPU time of the measuring thread** (`CLOCK_THREAD_CPUTIME_ID`):
//! the client's work, including its socket reads, without the server thread
//! and without time spent preempted.

#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::routing::get;
use criterion::{Criterion, Throughput};
use futures_util::StreamExt;
use sse_client::{EventSource, Item, Transport};
use sse_wire::{Frame, Parser};
use tokio::runtime::Runtime;

const EVENTS: usize = 20_000;
const SLICE: usize = 64 * 1024;

/// What an OpenAI-compatible relay sends: one small JSON chunk per token.
fn llm_stream() -> Bytes {
    let mut out = String::new();
    for i in 0..EVENTS {
        out.push_str(&format!(
            "id: {i}\ndata: {{\"id\":\"chatcmpl-7a1b\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\
             \"model\":\"gpt-4o-mini\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\" token{i}\"}},\"finish_reason\":null}}]}}\n\n"
        ));
    }
    out.push_str("data: [DONE]\n\n");
    Bytes::from(out)
}

struct Fixture {
    body: Bytes,
    rt: Runtime,
    client: reqwest::Client,
    /// Keeps no idle connection: a new one per run, as the lean transport.
    fresh: reqwest::Client,
    url: String,
}

impl Fixture {
    fn new() -> Self {
        let body = llm_stream();
        // The server lives on its own runtime and thread so that the
        // measured thread only runs the client.
        let served = body.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let app = Router::new().route(
                    "/stream",
                    get(move || {
                        let body = served.clone();
                        async move { ([("content-type", "text/event-stream")], Body::from(body)) }
                    }),
                );
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(listener.local_addr().unwrap()).unwrap();
                axum::serve(listener, app).await.unwrap();
            });
        });
        let addr = rx.recv().unwrap();
        Self {
            body,
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            client: reqwest::Client::new(),
            fresh: reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .build()
                .unwrap(),
            url: format!("http://{addr}/stream"),
        }
    }

    fn bare_parser(&self) {
        let mut parser = Parser::new();
        let mut n = 0usize;
        for slice in self.body.chunks(SLICE) {
            for frame in parser.feed(slice) {
                if let Ok(Frame::Event(e)) = frame {
                    black_box(&e);
                    n += 1;
                }
            }
        }
        assert_eq!(n, EVENTS + 1);
    }

    fn event_source_in_memory(&self) {
        self.rt.block_on(async {
            let body = &self.body;
            let slices: Vec<Bytes> = (0..body.len())
                .step_by(SLICE)
                .map(|i| body.slice(i..body.len().min(i + SLICE)))
                .collect();
            let stream =
                futures_util::stream::iter(slices.into_iter().map(Ok::<_, std::io::Error>));
            let response = http::Response::builder()
                .header("content-type", "text/event-stream")
                .body(reqwest::Body::wrap_stream(stream))
                .unwrap();
            count(EventSource::from_response(response.into())).await;
        });
    }

    fn event_source_loopback(&self) {
        self.rt.block_on(async {
            let source = EventSource::get(&self.url)
                .client(self.client.clone())
                .no_reconnect()
                .build()
                .unwrap();
            count(source).await;
        });
    }

    fn event_source_new_connection_loopback(&self) {
        self.rt.block_on(async {
            let source = EventSource::get(&self.url)
                .client(self.fresh.clone())
                .no_reconnect()
                .build()
                .unwrap();
            count(source).await;
        });
    }

    fn event_source_lean_loopback(&self) {
        self.rt.block_on(async {
            let source = EventSource::get(&self.url)
                .transport(Transport::LeanHttp1)
                .no_reconnect()
                .build()
                .unwrap();
            count(source).await;
        });
    }

    fn reqwest_plus_parser_loopback(&self) {
        self.rt.block_on(async {
            let response = self.client.get(&self.url).send().await.unwrap();
            let mut body = response.bytes_stream();
            let mut parser = Parser::new();
            let mut n = 0usize;
            while let Some(chunk) = body.next().await {
                for frame in parser.feed(&chunk.unwrap()) {
                    if let Ok(Frame::Event(e)) = frame {
                        black_box(&e);
                        n += 1;
                    }
                }
            }
            assert_eq!(n, EVENTS + 1);
        });
    }
}

async fn count(mut source: EventSource) {
    let mut n = 0usize;
    while let Some(item) = source.next().await {
        if let Item::Event(e) = item.unwrap() {
            black_box(&e);
            n += 1;
        }
    }
    assert_eq!(n, EVENTS + 1);
}

type Variant = (&'static str, fn(&Fixture));

const VARIANTS: [Variant; 6] = [
    ("bare_parser", Fixture::bare_parser),
    ("event_source_in_memory", Fixture::event_source_in_memory),
    (
        "reqwest_plus_parser_loopback",
        Fixture::reqwest_plus_parser_loopback,
    ),
    ("event_source_loopback", Fixture::event_source_loopback),
    (
        "event_source_new_connection_loopback",
        Fixture::event_source_new_connection_loopback,
    ),
    (
        "event_source_lean_loopback",
        Fixture::event_source_lean_loopback,
    ),
];

fn interleaved(f: &Fixture, runs: usize) {
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); VARIANTS.len()];
    // SSE_BENCH_ONLY=name runs one variant, for a profiler.
    let only = std::env::var("SSE_BENCH_ONLY").ok();
    for _ in 0..runs {
        for (i, (name, run)) in VARIANTS.iter().enumerate() {
            if only.as_deref().is_some_and(|o| o != *name) {
                times[i].push(Duration::ZERO);
                continue;
            }
            let start = thread_cpu();
            run(f);
            times[i].push(thread_cpu() - start);
        }
    }
    let mb = f.body.len() as f64 / 1e6;
    for ((name, _), t) in VARIANTS.iter().zip(&mut times) {
        t.sort();
        let (min, median) = (t[0], t[t.len() / 2]);
        println!(
            "{name:<30} min {:>7.3} ms ({:>6.0} MB/s)  median {:>7.3} ms ({:>6.0} MB/s)",
            min.as_secs_f64() * 1e3,
            mb / min.as_secs_f64(),
            median.as_secs_f64() * 1e3,
            mb / median.as_secs_f64()
        );
    }
}

fn thread_cpu() -> Duration {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID)
        .expect("thread CPU clock");
    Duration::new(
        u64::try_from(t.tv_sec()).unwrap_or(0),
        u32::try_from(t.tv_nsec()).unwrap_or(0),
    )
}

fn main() {
    let f = Fixture::new();
    if !std::env::args().any(|a| a == "--bench") {
        // `cargo test --benches`: one smoke run of each variant.
        VARIANTS.iter().for_each(|(_, run)| run(&f));
        return;
    }
    if let Some(runs) = std::env::var("SSE_BENCH_MIN")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return interleaved(&f, runs);
    }
    let mut c = Criterion::default().sample_size(20).configure_from_args();
    let mut group = c.benchmark_group("sse-client");
    group.throughput(Throughput::Bytes(f.body.len() as u64));
    for (name, run) in VARIANTS {
        group.bench_function(name, |b| b.iter(|| run(&f)));
    }
    group.finish();
    c.final_summary();
}
