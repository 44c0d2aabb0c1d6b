//! `ssehub-bench`: a bounded load run against an SSE server on loopback, reporting
//! deliveries/s, loss, publish-to-delivery latency percentiles and the server's memory
//! and CPU, so users can size a deployment on their own hardware.
//!
//! ```text
//! subscribers (raw TCP, N source addresses) ──connect──> server <──POST── publishers
//!        │ read SSE lines: data = <seq>.<sent micros>.xxxx            (keep-alive)
//!        └─> tally per subscriber: bitset of seqs (loss, dups), latency histogram
//! ```
//!
//! The generator runs on its own small runtime (`--threads`, default 1) so it costs at
//! most that many cores on a shared box; its own CPU is reported beside the server's.
//! Every run is bounded in time (`--duration`, `--drain`) and count (`--updates`), and
//! targets loopback only.
//!
//! Its own binary, not a subcommand of `ssehub`: a load generator has no place in the
//! product a team deploys, and it needs nothing of the hub beyond minting a token.

mod client;
mod http;
mod stats;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, ValueEnum};
use serde::Serialize;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use client::{Endpoint, Progress, PublishPlan};
use stats::{Histogram, ProcSample};

/// Load-test an SSE server on loopback (ssehub, nginx+nchan or the axum example).
#[derive(Parser, Debug, Clone)]
#[command(name = "ssehub-bench", version, about)]
struct BenchArgs {
    /// What to measure.
    #[arg(long, value_enum, default_value = "fanout")]
    scenario: Scenario,
    /// Protocol shape of the server under test.
    #[arg(long, value_enum, default_value = "ssehub")]
    target: Target,
    /// Server address; must be a loopback address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Subscriber connections.
    #[arg(long, default_value_t = 100)]
    subscribers: usize,
    /// Topics (`topics` scenario; subscribers are spread over them round robin).
    #[arg(long)]
    topics: Option<usize>,
    /// Updates per second over all publishers; 0 publishes as fast as acknowledgements allow.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// Publisher keep-alive connections (concurrent publishes in flight).
    #[arg(long, default_value_t = 8)]
    publishers: usize,
    /// How long to publish, e.g. `10s` (idle scenario: how long to hold the connections).
    #[arg(long, default_value = "10s", value_parser = ssehub::config::parse_duration)]
    duration: Duration,
    /// Stop after this many updates even if `--duration` has not elapsed.
    #[arg(long, default_value_t = 10_000_000)]
    updates: u64,
    /// How long to wait after publishing for the last deliveries.
    #[arg(long, default_value = "5s", value_parser = ssehub::config::parse_duration)]
    drain: Duration,
    /// Bytes of data per update (at least what the sequence number and timestamp need).
    #[arg(long, default_value_t = 100)]
    payload: usize,
    /// Connections being set up at once.
    #[arg(long, default_value_t = 256)]
    connect_concurrency: usize,
    /// Spread client connections over 127.0.0.2 ..= 127.0.0.(1+N); 0 lets the kernel choose.
    #[arg(long, default_value_t = 8)]
    source_addrs: u8,
    /// Process ids of the server (repeat for several processes, e.g. nginx's workers):
    /// memory and CPU are read from /proc.
    #[arg(long)]
    server_pid: Vec<String>,
    /// Secret (HS256) of the hub's publisher key, to mint a publish token (ssehub target).
    #[arg(
        long,
        env = "SSEHUB_BENCH_JWT_KEY",
        default_value = "!ChangeMe!",
        hide_env_values = true
    )]
    jwt_key: String,
    /// Worker threads of the generator.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Print the report as one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
enum Scenario {
    /// Connect subscribers, hold them, report memory per connection.
    Idle,
    /// All subscribers on one topic.
    Fanout,
    /// Subscribers spread over many topics, updates round robin over the topics.
    Topics,
}

/// The protocol shape of the server under test.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
enum Target {
    /// ssehub (Mercure): `GET /.well-known/mercure?topic=`, form `POST` with a JWT.
    Ssehub,
    /// nginx + nchan: `GET /sub?id=` (text/event-stream), `POST /pub?id=` with the raw data.
    Nchan,
    /// The axum broadcast example (`examples/axum_broadcast.rs`): same shape as nchan.
    Axum,
}

/// The result of one run.
#[derive(Debug, Default, Serialize)]
struct Report {
    scenario: String,
    target: String,
    subscribers: usize,
    topics: usize,
    connected: usize,
    connect_failures: usize,
    first_connect_error: Option<String>,
    connect_secs: f64,
    server_rss_before_kib: Option<u64>,
    server_rss_connected_kib: Option<u64>,
    server_kib_per_subscriber: Option<f64>,
    published: u64,
    publish_failures: u64,
    first_publish_error: Option<String>,
    publish_secs: f64,
    publishes_per_sec: f64,
    expected_deliveries: u64,
    deliveries: u64,
    lost: u64,
    duplicates: u64,
    reordered: u64,
    malformed: u64,
    streams_ended_early: usize,
    deliveries_per_sec: f64,
    latency_us: Percentiles,
    publish_ack_us: Percentiles,
    server_cpu_cores: Option<f64>,
    server_rss_end_kib: Option<u64>,
    generator_cpu_cores: f64,
    generator_rss_kib: u64,
}

#[derive(Debug, Default, Serialize)]
struct Percentiles {
    samples: u64,
    p50: u64,
    p90: u64,
    p99: u64,
    p999: u64,
    max: u64,
}

impl From<&Histogram> for Percentiles {
    fn from(h: &Histogram) -> Self {
        Percentiles {
            samples: h.count(),
            p50: h.quantile(0.5),
            p90: h.quantile(0.9),
            p99: h.quantile(0.99),
            p999: h.quantile(0.999),
            max: h.max(),
        }
    }
}

fn main() -> ExitCode {
    match run(BenchArgs::parse()) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("ssehub-bench: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the benchmark and prints its report.
fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        args.addr.ip().is_loopback(),
        "the load generator only targets loopback addresses, not {}",
        args.addr
    );
    anyhow::ensure!(args.subscribers > 0, "--subscribers must be at least 1");
    anyhow::ensure!(args.publishers > 0, "--publishers must be at least 1");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()?;
    let report = runtime.block_on(measure(&args))?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_text(&report);
    }
    let clean = report.connect_failures == 0
        && report.publish_failures == 0
        && report.lost == 0
        && report.streams_ended_early == 0;
    Ok(if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

async fn measure(args: &BenchArgs) -> anyhow::Result<Report> {
    let topics = match args.scenario {
        Scenario::Idle | Scenario::Fanout => 1,
        Scenario::Topics => args.topics.unwrap_or(args.subscribers).max(1),
    };
    let topic_names: Vec<String> = (0..topics).map(|i| format!("bench-{i}")).collect();
    let publish_auth = match args.target {
        Target::Ssehub => Some(format!("Bearer {}", publish_token(&args.jwt_key)?)),
        _ => None,
    };
    let sources = (0..args.source_addrs)
        .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + i)))
        .collect();
    let ep = Arc::new(Endpoint {
        addr: args.addr,
        target: args.target,
        publish_auth,
        sources,
    });
    let server = |what: &str| -> anyhow::Result<Option<ProcSample>> {
        if args.server_pid.is_empty() {
            return Ok(None);
        }
        ProcSample::read_all(&args.server_pid)
            .with_context(|| format!("reading the server's /proc ({what})"))
            .map(Some)
    };
    let mut report = Report {
        scenario: format!("{:?}", args.scenario).to_lowercase(),
        target: format!("{:?}", args.target).to_lowercase(),
        subscribers: args.subscribers,
        topics,
        ..Default::default()
    };
    let before = server("before")?;
    report.server_rss_before_kib = before.map(|s| s.rss / 1024);

    // Subscribe everyone, at most `connect_concurrency` handshakes at a time.
    let base = Instant::now();
    let stop = CancellationToken::new();
    let progress = Arc::new(Progress::default());
    let gate = Arc::new(tokio::sync::Semaphore::new(args.connect_concurrency.max(1)));
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut subs = Vec::with_capacity(args.subscribers);
    let connect_start = Instant::now();
    for n in 0..args.subscribers {
        let (ep, gate, ready, stop, progress) = (
            ep.clone(),
            gate.clone(),
            ready_tx.clone(),
            stop.clone(),
            progress.clone(),
        );
        let topic = topic_names[n % topics].clone();
        subs.push(tokio::spawn(async move {
            let opened = {
                let _permit = gate.acquire().await;
                client::open(&ep, n, &topic).await
            };
            match opened {
                Ok(opened) => {
                    let _ = ready.send(Ok(()));
                    Some(client::read_events(opened, base, progress, stop).await)
                }
                Err(e) => {
                    let _ = ready.send(Err(format!("{e:#}")));
                    None
                }
            }
        }));
    }
    drop(ready_tx);
    // Counted, not read to the channel's end: each subscriber keeps its sender while it reads.
    for _ in 0..args.subscribers {
        let Some(r) = ready_rx.recv().await else {
            break;
        };
        match r {
            Ok(()) => report.connected += 1,
            Err(e) => {
                report.connect_failures += 1;
                report.first_connect_error.get_or_insert(e);
            }
        }
    }
    report.connect_secs = connect_start.elapsed().as_secs_f64();
    // Servers may register a subscriber just after sending its headers.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut window_start_server = server("connected")?;
    report.server_rss_connected_kib = window_start_server.map(|s| s.rss / 1024);
    if let (Some(b), Some(c)) = (before, window_start_server)
        && report.connected > 0
    {
        report.server_kib_per_subscriber =
            Some((c.rss as f64 - b.rss as f64) / 1024.0 / report.connected as f64);
    }
    let me_start = ProcSample::read("self")?;
    let window = Instant::now();

    if args.scenario == Scenario::Idle {
        tokio::time::sleep(args.duration).await;
        // Memory after holding, which is what an idle deployment pays.
        let held = server("held")?;
        if let (Some(b), Some(h)) = (before, held)
            && report.connected > 0
        {
            report.server_kib_per_subscriber =
                Some((h.rss as f64 - b.rss as f64) / 1024.0 / report.connected as f64);
        }
        window_start_server = window_start_server.or(held);
    } else {
        let plan = Arc::new(PublishPlan {
            next_seq: (0..topics).map(|_| AtomicU64::new(1)).collect(),
            acked: (0..topics).map(|_| AtomicU64::new(0)).collect(),
            topics: topic_names.clone(),
            started: AtomicU64::new(0),
            max_updates: args.updates,
            rate: args.rate,
            payload: args.payload,
            deadline: Instant::now() + args.duration,
            base,
        });
        let pubs: Vec<_> = (0..args.publishers)
            .map(|i| {
                tokio::spawn(client::publish(
                    ep.clone(),
                    plan.clone(),
                    i,
                    args.publishers,
                ))
            })
            .collect();
        let mut ack = Histogram::default();
        for p in pubs {
            let r = p.await?;
            report.published += r.acked;
            report.publish_failures += r.failed;
            if let Some(e) = r.error {
                report.first_publish_error.get_or_insert(e);
            }
            ack.merge(&r.ack_latency);
        }
        report.publish_secs = window.elapsed().as_secs_f64();
        report.publishes_per_sec = report.published as f64 / report.publish_secs.max(1e-9);
        report.publish_ack_us = Percentiles::from(&ack);
        let mut subs_per_topic = vec![0u64; topics];
        for n in 0..report.connected.min(args.subscribers) {
            subs_per_topic[n % topics] += 1;
        }
        report.expected_deliveries = plan
            .acked
            .iter()
            .zip(&subs_per_topic)
            .map(|(a, s)| a.load(Ordering::Relaxed) * s)
            .sum();
        let drain_until = Instant::now() + args.drain;
        while progress.received.load(Ordering::Relaxed) < report.expected_deliveries
            && Instant::now() < drain_until
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let wall = window.elapsed();
    let end_server = server("end")?;
    let me_end = ProcSample::read("self")?;
    if let (Some(a), Some(b)) = (window_start_server, end_server) {
        report.server_cpu_cores = Some(b.cores_since(&a, wall));
        report.server_rss_end_kib = Some(b.rss / 1024);
    }
    report.generator_cpu_cores = me_end.cores_since(&me_start, wall);
    report.generator_rss_kib = me_end.rss / 1024;

    stop.cancel();
    let mut latency = Histogram::default();
    for s in subs {
        let Some(sub) = s.await? else { continue };
        report.deliveries += sub.tally.received;
        report.duplicates += sub.tally.duplicates;
        report.reordered += sub.tally.reordered;
        report.malformed += sub.tally.malformed;
        report.streams_ended_early += usize::from(sub.ended_early);
        if let Some(h) = &sub.tally.latency {
            latency.merge(h);
        }
    }
    report.lost = report.expected_deliveries.saturating_sub(report.deliveries);
    report.latency_us = Percentiles::from(&latency);
    if args.scenario != Scenario::Idle {
        // Rate over the span from the first publish to the last delivery.
        let last = Duration::from_micros(progress.last_delivery_us.load(Ordering::Relaxed));
        let span = last
            .saturating_sub(window - base)
            .max(Duration::from_millis(1));
        report.deliveries_per_sec = report.deliveries as f64 / span.as_secs_f64();
    }
    Ok(report)
}

/// A token allowing publication to every topic, signed with the hub's HS256 secret.
fn publish_token(secret: &str) -> anyhow::Result<String> {
    use ssehub::auth::{Key, MintClaims, MintTopic, mint};
    let key = Key::secret(secret.as_bytes(), None)?;
    let mut claims = MintClaims::default();
    claims.publish = vec![MintTopic::exact("*")];
    claims.expires_in = Some(Duration::from_secs(3600));
    Ok(mint(&key, claims)?)
}

fn print_text(r: &Report) {
    println!(
        "{} against {}: {} subscribers on {} topic(s)",
        r.scenario, r.target, r.subscribers, r.topics
    );
    println!(
        "  connected      {} in {:.2} s, {} failed{}",
        r.connected,
        r.connect_secs,
        r.connect_failures,
        r.first_connect_error
            .as_deref()
            .map(|e| format!(" (first: {e})"))
            .unwrap_or_default()
    );
    if let (Some(b), Some(c)) = (r.server_rss_before_kib, r.server_rss_connected_kib) {
        println!(
            "  server memory  {b} KiB before, {c} KiB connected, {:.2} KiB per subscriber",
            r.server_kib_per_subscriber.unwrap_or(0.0)
        );
    }
    if r.scenario != "idle" {
        println!(
            "  published      {} in {:.2} s ({:.0}/s), {} failed{}; ack p50 {} us p99 {} us",
            r.published,
            r.publish_secs,
            r.publishes_per_sec,
            r.publish_failures,
            r.first_publish_error
                .as_deref()
                .map(|e| format!(" (first: {e})"))
                .unwrap_or_default(),
            r.publish_ack_us.p50,
            r.publish_ack_us.p99
        );
        println!(
            "  deliveries     {} of {} ({:.0}/s), lost {}, duplicates {}, reordered {}, ended early {}",
            r.deliveries,
            r.expected_deliveries,
            r.deliveries_per_sec,
            r.lost,
            r.duplicates,
            r.reordered,
            r.streams_ended_early
        );
        let l = &r.latency_us;
        println!(
            "  latency        p50 {} us, p90 {} us, p99 {} us, p99.9 {} us, max {} us",
            l.p50, l.p90, l.p99, l.p999, l.max
        );
    }
    if let Some(cpu) = r.server_cpu_cores {
        println!(
            "  server         {:.2} cores, {} KiB at the end",
            cpu,
            r.server_rss_end_kib.unwrap_or(0)
        );
    }
    println!(
        "  generator      {:.2} cores, {} KiB",
        r.generator_cpu_cores, r.generator_rss_kib
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Serves a hub on an ephemeral loopback port; cancel the token to stop it.
    async fn hub(dir: &std::path::Path) -> (SocketAddr, CancellationToken) {
        use ssehub::auth::{AuthConfig, VerifyingKey};
        let mut auth = AuthConfig::new(VerifyingKey::secret(b"bench-secret", None).unwrap());
        auth.anonymous = true;
        let config = ssehub::config::Config::new(dir.to_path_buf(), auth);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        tokio::spawn(ssehub::run(listener, config, shutdown.clone()));
        (addr, shutdown)
    }

    fn args(extra: &[&str]) -> BenchArgs {
        let base = [
            "ssehub-bench",
            "--jwt-key",
            "bench-secret",
            "--source-addrs",
            "0",
        ];
        BenchArgs::parse_from(base.iter().chain(extra))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn fanout_against_the_hub_counts_every_delivery() {
        let dir = tempfile::tempdir().unwrap();
        let (addr, shutdown) = hub(dir.path()).await;
        let pid = std::process::id().to_string();
        let a = args(&[
            "--addr",
            &addr.to_string(),
            "--subscribers",
            "5",
            "--rate",
            "0",
            "--publishers",
            "2",
            "--updates",
            "40",
            "--duration",
            "30s",
            "--server-pid",
            &pid,
        ]);
        let r = measure(&a).await.unwrap();
        assert_eq!((r.connected, r.connect_failures), (5, 0));
        assert_eq!(
            (r.published, r.publish_failures),
            (40, 0),
            "{:?}",
            r.first_publish_error
        );
        assert_eq!(r.expected_deliveries, 200);
        assert_eq!(
            (r.deliveries, r.lost, r.duplicates, r.malformed),
            (200, 0, 0, 0)
        );
        assert_eq!(r.latency_us.samples, 200);
        assert_eq!(r.streams_ended_early, 0);
        assert!(r.server_cpu_cores.is_some());
        shutdown.cancel();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn topics_scenario_spreads_subscribers_and_updates() {
        let dir = tempfile::tempdir().unwrap();
        let (addr, shutdown) = hub(dir.path()).await;
        let a = args(&[
            "--addr",
            &addr.to_string(),
            "--scenario",
            "topics",
            "--subscribers",
            "6",
            "--topics",
            "3",
            "--rate",
            "0",
            "--updates",
            "30",
            "--duration",
            "30s",
        ]);
        let r = measure(&a).await.unwrap();
        assert_eq!(r.topics, 3);
        // 30 updates round robin over 3 topics, 2 subscribers each.
        assert_eq!((r.expected_deliveries, r.deliveries, r.lost), (60, 60, 0));
        shutdown.cancel();
    }

    #[tokio::test]
    async fn a_refused_subscription_is_a_connect_failure() {
        let dir = tempfile::tempdir().unwrap();
        let (addr, shutdown) = hub(dir.path()).await;
        // nchan's path on a hub: 404, counted rather than hanging the run.
        let a = args(&[
            "--addr",
            &addr.to_string(),
            "--target",
            "nchan",
            "--scenario",
            "idle",
            "--subscribers",
            "2",
            "--duration",
            "0s",
        ]);
        let r = measure(&a).await.unwrap();
        assert_eq!((r.connected, r.connect_failures), (0, 2));
        assert!(r.first_connect_error.unwrap().contains("404"));
        shutdown.cancel();
    }

    #[test]
    fn non_loopback_targets_are_refused() {
        let a = args(&["--addr", "192.0.2.1:80"]);
        assert!(run(a).unwrap_err().to_string().contains("loopback"));
    }
}
