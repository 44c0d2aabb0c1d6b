//! The relay's fronts (Chat Completions, Responses, Messages) against the same fake Chat
//! Completions upstream asked directly, in the same run, and compact catch-up against a full
//! replay of a long answer.
//!
//! 1. Time to first token: direct, then each front through the hub, interleaved request by
//!    request; p50/p99 of each and the p99 each front adds.
//! 2. CPU per relayed token: N concurrent streams of R tokens per front (and direct), this
//!    process's CPU time over the tokens delivered. Upstream, hub and clients share the
//!    process, so the difference to direct is the relay's cost (translation included).
//! 3. Catch-up of a finished answer of `FRONTS_LONG` deltas: `GET /v1/streams/{id}` in full
//!    and with `?compact=1`: bytes sent and time until the client has the whole text.
//!
//! Run: `cargo bench -p ssehub --bench relay_fronts` (`FRONTS_TTFT_SAMPLES`, `FRONTS_STREAMS`,
//! `FRONTS_TOKENS`, `FRONTS_LONG` override the defaults).

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};
use sse_wire::{Frame, Parser};

mod relay_rig;
use relay_rig::{Rig, cpu_time, env, ms, pct};

#[derive(Clone, Copy, PartialEq)]
enum Front {
    Direct,
    Chat,
    Responses,
    Messages,
}

impl Front {
    const ALL: [Front; 4] = [
        Front::Direct,
        Front::Chat,
        Front::Responses,
        Front::Messages,
    ];

    fn name(self) -> &'static str {
        match self {
            Front::Direct => "direct (upstream)",
            Front::Chat => "chat completions",
            Front::Responses => "responses",
            Front::Messages => "messages",
        }
    }

    fn request(self, upstream: &str, hub: &str, tokens: u64, rate: f64) -> (String, Value) {
        let messages = json!([{"role": "user", "content": "bench"}]);
        match self {
            Front::Direct => (
                format!("{upstream}/chat/completions"),
                json!({"model": "fake", "stream": true, "max_tokens": tokens, "temperature": rate, "messages": messages}),
            ),
            Front::Chat => (
                format!("{hub}/chat/completions"),
                json!({"model": "fake", "stream": true, "max_tokens": tokens, "temperature": rate, "messages": messages}),
            ),
            Front::Responses => (
                format!("{hub}/responses"),
                json!({"model": "fake", "stream": true, "max_output_tokens": tokens, "temperature": rate, "input": "bench"}),
            ),
            Front::Messages => (
                format!("{hub}/messages"),
                json!({"model": "fake", "stream": true, "max_tokens": tokens, "temperature": rate, "messages": messages}),
            ),
        }
    }
}

/// The text a front's event adds.
fn text_of(data: &str) -> Option<String> {
    let v: Value = serde_json::from_str(data).ok()?;
    let t = v["choices"][0]["delta"]["content"]
        .as_str()
        .or_else(|| (v["type"] == "response.output_text.delta").then(|| v["delta"].as_str())?)
        .or_else(|| v["delta"]["text"].as_str())?;
    Some(t.to_owned())
}

/// Reads an SSE response to its end: time to the first text, the whole text, bytes read.
async fn read(res: reqwest::Response, started: Instant) -> (Duration, String, usize) {
    assert_eq!(res.status(), 200);
    let mut body = res.bytes_stream();
    let mut parser = Parser::new();
    let (mut first, mut text, mut bytes) = (None, String::new(), 0);
    'read: while let Some(chunk) = body.next().await {
        let chunk = chunk.unwrap();
        bytes += chunk.len();
        for frame in parser.feed(&chunk) {
            let Ok(Frame::Event(ev)) = frame else {
                continue;
            };
            if ev.data == "[DONE]" {
                break 'read;
            }
            if let Some(t) = text_of(&ev.data) {
                first.get_or_insert_with(|| started.elapsed());
                text.push_str(&t);
            }
        }
    }
    (first.expect("no token"), text, bytes)
}

async fn ask(client: &reqwest::Client, url: &str, body: &Value) -> reqwest::Response {
    client.post(url).json(body).send().await.unwrap()
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let rig = Rig::start().await;
        let (upstream_addr, hub_addr) = (rig.upstream, rig.hub);
        let (up, hub) = (
            format!("http://{upstream_addr}/v1"),
            format!("http://{hub_addr}/v1"),
        );
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(4096)
            .build()
            .unwrap();
        let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        println!("load average at the start: {}", load.trim());

        // 1. Time to first token, interleaved.
        let samples = env("FRONTS_TTFT_SAMPLES", 300) as usize;
        let mut ttft: Vec<Vec<Duration>> = (0..4).map(|_| Vec::with_capacity(samples)).collect();
        for round in 0..samples + 10 {
            for (k, front) in Front::ALL.iter().enumerate() {
                let (url, body) = front.request(&up, &hub, 1, 1000.0);
                let started = Instant::now();
                let (first, _, _) = read(ask(&client, &url, &body).await, started).await;
                if round >= 10 {
                    ttft[k].push(first);
                }
            }
        }
        for t in &mut ttft {
            t.sort();
        }
        println!("time to first token, {samples} requests each, interleaved:");
        for (k, front) in Front::ALL.iter().enumerate() {
            let added = pct(&ttft[k], 0.99).saturating_sub(pct(&ttft[0], 0.99));
            println!(
                "  {:<18} p50 {} p99 {}  added p99 {}",
                front.name(),
                ms(pct(&ttft[k], 0.5)),
                ms(pct(&ttft[k], 0.99)),
                ms(added)
            );
        }

        // 2. CPU per token, many concurrent streams per front.
        let streams = env("FRONTS_STREAMS", 200);
        let tokens = env("FRONTS_TOKENS", 100);
        println!("CPU per token, {streams} concurrent streams x {tokens} tokens at 200 tokens/s:");
        for front in Front::ALL {
            let cpu = cpu_time();
            let started = Instant::now();
            let tasks: Vec<_> = (0..streams)
                .map(|_| {
                    let (client, (url, body)) =
                        (client.clone(), front.request(&up, &hub, tokens, 200.0));
                    tokio::spawn(async move {
                        let res = ask(&client, &url, &body).await;
                        read(res, Instant::now()).await.1.split(' ').count() as u64 - 1
                    })
                })
                .collect();
            let mut got = 0;
            for t in tasks {
                got += t.await.unwrap();
            }
            let cpu = cpu_time().saturating_sub(cpu);
            println!(
                "  {:<18} {got} tokens in {:.2} s, process CPU {:.2} s = {:.1} µs/token",
                front.name(),
                started.elapsed().as_secs_f64(),
                cpu.as_secs_f64(),
                cpu.as_secs_f64() * 1e6 / got as f64
            );
        }

        // 3. Compact catch-up against a full replay of a long finished answer.
        let long = env("FRONTS_LONG", 4000);
        println!("catch-up of a finished answer of {long} deltas (medians of 5):");
        for front in [Front::Chat, Front::Responses, Front::Messages] {
            let (url, body) = front.request(&up, &hub, long, 1e6);
            let res = ask(&client, &url, &body).await;
            let id = res.headers()["x-stream-id"].to_str().unwrap().to_owned();
            let (_, text, _) = read(res, Instant::now()).await;
            for (label, query) in [("full", ""), ("compact", "?compact=1")] {
                let mut times = Vec::new();
                let mut bytes = 0;
                for _ in 0..5 {
                    let started = Instant::now();
                    let res = client
                        .get(format!("{hub}/streams/{id}{query}"))
                        .send()
                        .await
                        .unwrap();
                    let (_, got, b) = read(res, started).await;
                    times.push(started.elapsed());
                    assert_eq!(got, text, "{label} replay lost text");
                    bytes = b;
                }
                times.sort();
                println!(
                    "  {:<18} {:<8} {bytes} bytes, whole text after {}",
                    front.name(),
                    label,
                    ms(times[2])
                );
            }
        }
        let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        println!("load average at the end: {}", load.trim());
        rig.stop().await;
    });
}
