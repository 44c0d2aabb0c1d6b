//! Parse-and-deliver throughput of the client against the bare `sse-wire`
//! parser, on the same pre-encoded LLM token stream.
//!
//! - `bare_parser`: `Parser::feed` over the body in 64 KiB slices, events
//!   built and dropped.
//! - `event_source_loopback`: an `EventSource` reading the same body from a
//!   local HTTP/1.1 server (one connection reused across iterations), every
//!   event handed out as an `Item`. The difference is what the client adds:
//!   HTTP framing, socket reads, the item queue and the `Stream` plumbing.

#![allow(missing_docs)]

use std::hint::black_box;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::routing::get;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures_util::StreamExt;
use sse_client::{EventSource, Item};
use sse_wire::{Frame, Parser};

const EVENTS: usize = 20_000;

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

fn bench(c: &mut Criterion) {
    let body = llm_stream();
    let mut group = c.benchmark_group("sse-client");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.sample_size(20);

    group.bench_function("bare_parser", |b| {
        b.iter(|| {
            let mut parser = Parser::new();
            let mut n = 0usize;
            for slice in body.chunks(64 * 1024) {
                for frame in parser.feed(slice) {
                    if let Ok(Frame::Event(e)) = frame {
                        black_box(&e);
                        n += 1;
                    }
                }
            }
            assert_eq!(n, EVENTS + 1);
        });
    });

    // The server lives on its own runtime and thread so that the measured
    // thread only runs the client.
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
    let url = format!("http://{addr}/stream");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = reqwest::Client::new();

    group.bench_function("event_source_loopback", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut source = EventSource::get(&url)
                    .client(client.clone())
                    .no_reconnect()
                    .build()
                    .unwrap();
                let mut n = 0usize;
                while let Some(item) = source.next().await {
                    if let Item::Event(e) = item.unwrap() {
                        black_box(&e);
                        n += 1;
                    }
                }
                assert_eq!(n, EVENTS + 1);
            })
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
