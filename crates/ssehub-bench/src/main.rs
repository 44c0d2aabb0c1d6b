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
//! Several nodes of one hub (`ssehub serve --store redis://…`) are one server with several
//! addresses: `--addr` repeated spreads subscribers over them and `--publish-addr` chooses
//! where publishers send, so an update may be published on one node and delivered by another;
//! `--redis-pid` adds the shared Redis' CPU per publish to the report.
//!
//! The generator runs on its own small runtime (`--threads`, default 1) so it costs at
//! most that many cores on a shared box; its own CPU is reported beside the server's.
//! Every run is bounded in time (`--duration`, `--drain`) and count (`--updates`), and
//! targets loopback only.
//!
//! Its own binary, not a subcommand of `ssehub`: a load generator has no place in the
//! product a team deploys, and it needs nothing of the hub beyond minting a token.

mod client;
mod ds;
mod http;
mod progress;
mod report;
mod stats;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, ValueEnum};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use client::{Endpoint, Progress, PublishPlan};
use report::{Percentiles, Report, print_text};
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
    /// Server address; must be a loopback address. Repeat it for several nodes of one hub
    /// (e.g. on one Redis): subscribers are spread over them round robin.
    #[arg(long = "addr", default_value = "127.0.0.1:8080")]
    addrs: Vec<SocketAddr>,
    /// Where publishers send, round robin (repeat for several); by default the `--addr`s.
    /// Subscribers on one node and publishers on another measure delivery across nodes.
    #[arg(long = "publish-addr")]
    publish_addrs: Vec<SocketAddr>,
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
    /// Process id of the Redis the nodes share: its CPU over the run, per publish.
    #[arg(long)]
    redis_pid: Option<String>,
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
    /// Size of the `ds-catchup` stream, in bytes.
    #[arg(long, default_value_t = 100_000_000)]
    stream_bytes: u64,
    /// Print the report as one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// A progress line on stderr every few seconds (the default when stderr is a terminal).
    #[arg(long)]
    progress: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
enum Scenario {
    /// Connect subscribers, hold them, report memory per connection.
    Idle,
    /// All subscribers on one topic.
    Fanout,
    /// Subscribers spread over many topics, updates round robin over the topics.
    Topics,
    /// Durable Streams: `--publishers` writers append to one stream as fast as acknowledged.
    DsAppend,
    /// Durable Streams: `--subscribers` SSE readers of one stream, one writer at `--rate`.
    DsSse,
    /// Durable Streams: read a `--stream-bytes` stream from offset 0 (`--subscribers` at once).
    DsCatchup,
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

impl Scenario {
    fn durable_streams(self) -> Option<ds::DsScenario> {
        match self {
            Scenario::DsAppend => Some(ds::DsScenario::Append),
            Scenario::DsSse => Some(ds::DsScenario::Sse),
            Scenario::DsCatchup => Some(ds::DsScenario::Catchup),
            _ => None,
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
    for addr in args.addrs.iter().chain(&args.publish_addrs) {
        anyhow::ensure!(
            addr.ip().is_loopback(),
            "the load generator only targets loopback addresses, not {addr}"
        );
    }
    anyhow::ensure!(args.subscribers > 0, "--subscribers must be at least 1");
    if let Some(scenario) = args.scenario.durable_streams() {
        return run_ds(&args, scenario);
    }
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

/// A Durable Streams scenario against the first `--addr` (printed as one JSON object).
fn run_ds(args: &BenchArgs, scenario: ds::DsScenario) -> anyhow::Result<ExitCode> {
    let plan = ds::DsPlan {
        addr: args.addrs[0],
        writers: args.publishers,
        readers: args.subscribers,
        rate: args.rate,
        duration: args.duration,
        drain: args.drain,
        payload: args.payload,
        stream_bytes: args.stream_bytes,
        server_pids: args.server_pid.clone(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()?;
    let report = runtime.block_on(ds::run(scenario, &plan))?;
    println!("{}", serde_json::to_string(&report)?);
    let clean = report.append_failures == 0 && report.lost == 0 && report.readers_ended_early == 0;
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
        // Run by `run_ds`, never here.
        Scenario::DsAppend | Scenario::DsSse | Scenario::DsCatchup => 1,
    };
    let topic_names: Vec<String> = (0..topics).map(|i| format!("bench-{i}")).collect();
    let publish_auth = match args.target {
        Target::Ssehub => Some(format!("Bearer {}", publish_token(&args.jwt_key)?)),
        _ => None,
    };
    let sources: Vec<IpAddr> = (0..args.source_addrs)
        .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + i)))
        .collect();
    let publish_addrs = if args.publish_addrs.is_empty() {
        &args.addrs
    } else {
        &args.publish_addrs
    };
    let endpoint = |addr: &SocketAddr| {
        Arc::new(Endpoint {
            addr: *addr,
            target: args.target,
            publish_auth: publish_auth.clone(),
            sources: Vec::clone(&sources),
        })
    };
    let sub_eps: Vec<Arc<Endpoint>> = args.addrs.iter().map(endpoint).collect();
    let pub_eps: Vec<Arc<Endpoint>> = publish_addrs.iter().map(endpoint).collect();
    let server = |what: &str| -> anyhow::Result<Option<ProcSample>> {
        if args.server_pid.is_empty() {
            return Ok(None);
        }
        ProcSample::read_all(&args.server_pid)
            .with_context(|| format!("reading the server's /proc ({what})"))
            .map(Some)
    };
    let redis = || -> anyhow::Result<Option<ProcSample>> {
        let Some(pid) = &args.redis_pid else {
            return Ok(None);
        };
        ProcSample::read(pid)
            .context("reading redis' /proc")
            .map(Some)
    };
    let mut report = Report {
        scenario: format!("{:?}", args.scenario).to_lowercase(),
        target: format!("{:?}", args.target).to_lowercase(),
        addrs: args.addrs.iter().map(ToString::to_string).collect(),
        publish_addrs: publish_addrs.iter().map(ToString::to_string).collect(),
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
    let ticker =
        (args.progress || std::io::IsTerminal::is_terminal(&std::io::stderr())).then(|| {
            tokio::spawn(progress::report(
                progress.clone(),
                args.subscribers as u64,
                stop.clone(),
            ))
        });
    for n in 0..args.subscribers {
        let (ep, gate, ready, stop, progress) = (
            sub_eps[n % sub_eps.len()].clone(),
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
            Ok(()) => {
                report.connected += 1;
                progress.connected.fetch_add(1, Ordering::Relaxed);
            }
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
    let redis_start = redis()?;
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
            progress: progress.clone(),
        });
        let pubs: Vec<_> = (0..args.publishers)
            .map(|i| {
                tokio::spawn(client::publish(
                    pub_eps[i % pub_eps.len()].clone(),
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
    if let (Some(a), Some(b)) = (redis_start, redis()?) {
        let cores = b.cores_since(&a, wall);
        report.redis_cpu_cores = Some(cores);
        report.redis_rss_end_kib = Some(b.rss / 1024);
        report.redis_cpu_us_per_publish = (report.published > 0)
            .then(|| cores * wall.as_secs_f64() * 1e6 / report.published as f64);
    }
    if let (Some(a), Some(b)) = (window_start_server, end_server) {
        let cores = b.cores_since(&a, wall);
        report.server_cpu_cores = Some(cores);
        report.server_cpu_us_per_publish = (report.published > 0)
            .then(|| cores * wall.as_secs_f64() * 1e6 / report.published as f64);
        report.server_rss_end_kib = Some(b.rss / 1024);
    }
    report.generator_cpu_cores = me_end.cores_since(&me_start, wall);
    report.generator_rss_kib = me_end.rss / 1024;

    stop.cancel();
    if let Some(ticker) = ticker {
        let _ = ticker.await;
    }
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

#[cfg(test)]
#[path = "../../ssehub/tests/hub/redis_server.rs"]
mod redis_server;

#[cfg(test)]
mod tests {
    use super::*;

    /// Serves a hub on an ephemeral loopback port; cancel the token to stop it.
    async fn hub(dir: &std::path::Path) -> (SocketAddr, CancellationToken) {
        hub_on(dir, None).await
    }

    /// Like [`hub`], with its history in Redis at `redis_url` when given.
    async fn hub_on(
        dir: &std::path::Path,
        redis_url: Option<String>,
    ) -> (SocketAddr, CancellationToken) {
        use ssehub::auth::{AuthConfig, VerifyingKey};
        let mut auth = AuthConfig::new(VerifyingKey::secret(b"bench-secret", None).unwrap());
        auth.anonymous = true;
        let mut config = ssehub::config::Config::new(dir.to_path_buf(), auth);
        if let Some(url) = redis_url {
            let options = ssehub::store::redis::RedisOptions::new(url);
            config.store = ssehub::config::StoreConfig::Redis(options);
        }
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

    /// Two nodes on one Redis: subscribers on both, publishers on one, so half the deliveries
    /// cross nodes; every one is counted, and Redis' CPU is read.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn subscribers_spread_over_two_nodes_of_one_redis_get_every_update() {
        let redis = super::redis_server::RedisServer::start();
        let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (a, stop_a) = hub_on(dir_a.path(), Some(redis.url())).await;
        let (b, stop_b) = hub_on(dir_b.path(), Some(redis.url())).await;
        let (a_text, b_text) = (a.to_string(), b.to_string());
        let pid = redis.pid().to_string();
        let r = measure(&args(&[
            "--addr",
            &a_text,
            "--addr",
            &b_text,
            "--publish-addr",
            &a_text,
            "--subscribers",
            "6",
            "--rate",
            "0",
            "--publishers",
            "2",
            "--updates",
            "40",
            "--duration",
            "30s",
            "--redis-pid",
            &pid,
        ]))
        .await
        .unwrap();
        assert_eq!(
            (r.addrs, r.publish_addrs),
            (vec![a_text.clone(), b_text], vec![a_text])
        );
        assert_eq!(
            (r.connected, r.published),
            (6, 40),
            "{:?}",
            r.first_publish_error
        );
        assert_eq!(
            (r.expected_deliveries, r.deliveries, r.lost, r.duplicates),
            (240, 240, 0, 0)
        );
        assert!(r.redis_cpu_cores.is_some() && r.redis_cpu_us_per_publish.is_some());
        // Half the subscribers were on b, which took no publish.
        let on_b = metrics(b).await;
        assert!(on_b.contains("\nssehub_publishes_total 0\n"), "{on_b}");
        assert!(on_b.contains("\nssehub_deliveries_total 120\n"), "{on_b}");
        stop_a.cancel();
        stop_b.cancel();
    }

    /// The hub's `/metrics` text.
    async fn metrics(addr: SocketAddr) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        conn.write_all(req.as_bytes()).await.unwrap();
        let mut text = String::new();
        conn.read_to_string(&mut text).await.unwrap();
        text
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
        let a = args(&["--addr", "127.0.0.1:80", "--publish-addr", "192.0.2.1:80"]);
        assert!(run(a).unwrap_err().to_string().contains("loopback"));
    }
}
