//! Relay overhead, side by side with calling the upstream directly, in the same run.
//!
//! 1. Time to first token: the same fake upstream asked directly and through the hub,
//!    interleaved request by request; reports p50/p99 of each and the added p99.
//! 2. Many streams: N concurrent streams of R tokens/s through one hub; every token carries
//!    its index and the upstream's send time, so drops, reordering and delivery latency are
//!    counted exactly.
//!
//! Everything runs in this process on loopback (upstream, hub, clients), so the clients'
//! CPU is part of what is measured; the figures are an upper bound on the relay's cost.
//! Run: `cargo bench -p ssehub --bench relay` (`RELAY_STREAMS`, `RELAY_RATE`, `RELAY_TOKENS`,
//! `RELAY_TTFT_SAMPLES` override the defaults).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};
use sse_wire::{Frame, Parser};

mod relay_rig;
use relay_rig::{Rig, cpu_time, env, ms, now_us, pct};

/// Streams one completion from `url`; returns the time to the first content chunk and each
/// content with the time (µs since the epoch) it arrived.
async fn stream(
    client: &reqwest::Client,
    url: &str,
    tokens: u64,
    rate: f64,
) -> (Duration, Vec<(String, u64)>) {
    let body = json!({"model": "fake", "stream": true, "max_tokens": tokens, "temperature": rate,
                      "messages": [{"role": "user", "content": "bench"}]});
    let started = Instant::now();
    let res = client.post(url).json(&body).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let mut body = res.bytes_stream();
    let mut parser = Parser::new();
    let mut first = None;
    let mut contents = Vec::new();
    'read: while let Some(chunk) = body.next().await {
        let chunk = chunk.unwrap();
        for frame in parser.feed(&chunk) {
            let Ok(Frame::Event(ev)) = frame else {
                continue;
            };
            if ev.data == "[DONE]" {
                break 'read;
            }
            let v: Value = serde_json::from_str(&ev.data).unwrap();
            if let Some(c) = v["choices"][0]["delta"]["content"].as_str() {
                first.get_or_insert_with(|| started.elapsed());
                contents.push((c.to_owned(), now_us()));
            }
        }
    }
    (first.expect("no token"), contents)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let rig = Rig::start().await;
        let (upstream_addr, hub_addr) = (rig.upstream, rig.hub);
        let direct_url = format!("http://{upstream_addr}/v1/chat/completions");
        let relay_url = format!("http://{hub_addr}/v1/chat/completions");
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(2048)
            .build()
            .unwrap();

        // 1. Time to first token, interleaved so both sides see the same machine state.
        let samples = env("RELAY_TTFT_SAMPLES", 300) as usize;
        let (mut direct, mut relayed) = (Vec::with_capacity(samples), Vec::with_capacity(samples));
        for _ in 0..10 {
            stream(&client, &direct_url, 1, 1000.0).await;
            stream(&client, &relay_url, 1, 1000.0).await;
        }
        for _ in 0..samples {
            direct.push(stream(&client, &direct_url, 1, 1000.0).await.0);
            relayed.push(stream(&client, &relay_url, 1, 1000.0).await.0);
        }
        direct.sort();
        relayed.sort();
        println!("time to first token, {samples} requests each, interleaved:");
        println!(
            "  direct : p50 {} p99 {}",
            ms(pct(&direct, 0.5)),
            ms(pct(&direct, 0.99))
        );
        println!(
            "  relayed: p50 {} p99 {}",
            ms(pct(&relayed, 0.5)),
            ms(pct(&relayed, 0.99))
        );
        println!(
            "  added  : p50 {} p99 {}",
            ms(pct(&relayed, 0.5).saturating_sub(pct(&direct, 0.5))),
            ms(pct(&relayed, 0.99).saturating_sub(pct(&direct, 0.99)))
        );

        // 2. Many concurrent streams: directly (what the load generator itself costs), then
        //    through the hub, in the same run.
        let streams = env("RELAY_STREAMS", 1000);
        let rate = env("RELAY_RATE", 50) as f64;
        let tokens = env("RELAY_TOKENS", 100);
        println!("{streams} concurrent streams x {tokens} tokens at {rate} tokens/s each:");
        many(&client, "direct ", &direct_url, streams, tokens, rate).await;
        many(&client, "relayed", &relay_url, streams, tokens, rate).await;
        rig.stop().await;
    });
}

async fn many(
    client: &reqwest::Client,
    label: &str,
    url: &str,
    streams: u64,
    tokens: u64,
    rate: f64,
) {
    let dropped = Arc::new(AtomicU64::new(0));
    let reordered = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(std::sync::Mutex::new(Vec::<u64>::with_capacity(
        (streams * tokens) as usize,
    )));
    let started = Instant::now();
    let cpu = cpu_time();
    let mut tasks = Vec::new();
    for _ in 0..streams {
        let (client, url) = (client.clone(), url.to_owned());
        let (dropped, reordered, latencies) =
            (dropped.clone(), reordered.clone(), latencies.clone());
        tasks.push(tokio::spawn(async move {
            let (_, contents) = stream(&client, &url, tokens, rate).await;
            let mut lat = Vec::with_capacity(contents.len());
            let mut expect = 0u64;
            for (c, received) in &contents {
                let (i, sent) = c.trim().split_once(':').unwrap();
                let (i, sent): (u64, u64) = (i.parse().unwrap(), sent.parse().unwrap());
                if i != expect {
                    reordered.fetch_add(1, Ordering::Relaxed);
                }
                expect = i + 1;
                lat.push(received.saturating_sub(sent));
            }
            dropped.fetch_add(
                tokens.saturating_sub(contents.len() as u64),
                Ordering::Relaxed,
            );
            latencies.lock().unwrap().extend(lat);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let took = started.elapsed();
    let cpu = cpu_time().saturating_sub(cpu);
    let total = streams * tokens;
    let mut lat = latencies.lock().unwrap().clone();
    lat.sort_unstable();
    let p = |q: f64| {
        Duration::from_micros(lat[((lat.len() as f64 * q).ceil() as usize).clamp(1, lat.len()) - 1])
    };
    println!(
        "  {label}: {total} tokens in {:.2} s ({:.0}/s), dropped {}, out of order {}, latency p50 {} p99 {}, process CPU {:.2} s ({:.0} µs/token)",
        took.as_secs_f64(),
        total as f64 / took.as_secs_f64(),
        dropped.load(Ordering::Relaxed),
        reordered.load(Ordering::Relaxed),
        ms(p(0.5)),
        ms(p(0.99)),
        cpu.as_secs_f64(),
        cpu.as_secs_f64() * 1e6 / total as f64,
    );
}
