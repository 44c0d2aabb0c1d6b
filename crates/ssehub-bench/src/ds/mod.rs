//! Durable Streams scenarios: any server speaking the protocol at `/v1/stream/` (ssehub with
//! `--anonymous-streams`, the Node reference server), measured the same way.
//!
//! ```text
//! ds-append   W writers (keep-alive) ──POST──> one stream, as fast as acknowledged ─> appends/s
//! ds-sse      1 writer at --rate ──POST "seq.micros.pad;"──> stream ──live=sse──> R readers
//!                                                             append-to-delivery latency
//! ds-catchup  fill --stream-bytes in 64 KiB appends, then GET ?offset= … until up to date,
//!             following Stream-Next-Offset, three times ─> MB/s (median of the three)
//! ```
//!
//! Every stream has a fresh name, so runs never see each other's data.

mod conn;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::client::LineReader;
use crate::report::Percentiles;
use crate::stats::{Histogram, ProcSample, Tally};
use conn::Conn;

/// What a Durable Streams run is given (from the common flags).
#[derive(Debug, Clone)]
pub(super) struct DsPlan {
    /// The server.
    pub(super) addr: SocketAddr,
    /// Concurrent writers (`ds-append`).
    pub(super) writers: usize,
    /// SSE readers (`ds-sse`) or concurrent catch-up readers (`ds-catchup`).
    pub(super) readers: usize,
    /// Appends per second of the `ds-sse` writer.
    pub(super) rate: u64,
    /// How long to append.
    pub(super) duration: Duration,
    /// How long to wait for the last deliveries.
    pub(super) drain: Duration,
    /// Bytes per append.
    pub(super) payload: usize,
    /// Size of the `ds-catchup` stream.
    pub(super) stream_bytes: u64,
    /// Server processes whose CPU is reported.
    pub(super) server_pids: Vec<String>,
}

/// The result of one Durable Streams run.
#[derive(Debug, Default, Serialize)]
pub(super) struct DsReport {
    pub(super) scenario: String,
    pub(super) writers: usize,
    pub(super) readers: usize,
    /// Appends acknowledged with a 2xx.
    pub(super) appends: u64,
    pub(super) append_failures: u64,
    pub(super) first_error: Option<String>,
    pub(super) appends_per_sec: f64,
    pub(super) append_ack_us: Percentiles,
    /// `ds-sse`: deliveries expected (appends x readers) and received.
    pub(super) expected_deliveries: u64,
    pub(super) deliveries: u64,
    pub(super) lost: u64,
    pub(super) readers_ended_early: usize,
    pub(super) latency_us: Percentiles,
    /// `ds-catchup`: bytes read per pass and the pass throughputs.
    pub(super) catchup_bytes: u64,
    pub(super) catchup_mb_per_sec: Vec<f64>,
    /// Median of `catchup_mb_per_sec`.
    pub(super) catchup_mb_per_sec_median: f64,
    pub(super) server_cpu_cores: Option<f64>,
    pub(super) server_rss_end_kib: Option<u64>,
    pub(super) generator_cpu_cores: f64,
}

/// Which measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DsScenario {
    Append,
    Sse,
    Catchup,
}

/// Runs one scenario.
///
/// # Errors
/// When the stream cannot be created or filled; failures during the measured window are
/// counted in the report instead.
pub(super) async fn run(scenario: DsScenario, plan: &DsPlan) -> anyhow::Result<DsReport> {
    let name = format!(
        "/v1/stream/bench-{}-{}-{}",
        std::process::id(),
        match scenario {
            DsScenario::Append => "append",
            DsScenario::Sse => "sse",
            DsScenario::Catchup => "catchup",
        },
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_micros()
    );
    let content_type = match scenario {
        DsScenario::Sse => "text/plain",
        _ => "application/octet-stream",
    };
    let mut c = Conn::open(plan.addr).await?;
    let created = c
        .send(
            "PUT",
            &name,
            &format!("Content-Type: {content_type}\r\n"),
            b"",
        )
        .await?;
    anyhow::ensure!(
        created.status == 201 || created.status == 200,
        "creating {name} answered {}",
        created.status
    );
    let server = || -> Option<ProcSample> {
        (!plan.server_pids.is_empty())
            .then(|| ProcSample::read_all(&plan.server_pids).ok())
            .flatten()
    };
    let mut report = DsReport {
        scenario: format!("ds-{scenario:?}").to_lowercase(),
        ..Default::default()
    };
    if scenario == DsScenario::Catchup {
        fill(&mut c, &name, plan.stream_bytes).await?;
    }
    let (server_start, me_start, wall) = (server(), ProcSample::read("self")?, Instant::now());
    match scenario {
        DsScenario::Append => append(plan, &name, &mut report).await,
        DsScenario::Sse => sse(plan, &name, &mut report).await?,
        DsScenario::Catchup => catchup(plan, &name, &mut report).await?,
    }
    let elapsed = wall.elapsed();
    if let (Some(a), Some(b)) = (server_start, server()) {
        report.server_cpu_cores = Some(b.cores_since(&a, elapsed));
        report.server_rss_end_kib = Some(b.rss / 1024);
    }
    report.generator_cpu_cores = ProcSample::read("self")?.cores_since(&me_start, elapsed);
    Ok(report)
}

/// `ds-append`: `writers` connections append `payload` bytes as fast as acknowledged.
async fn append(plan: &DsPlan, name: &str, report: &mut DsReport) {
    report.writers = plan.writers;
    let deadline = Instant::now() + plan.duration;
    let body: Arc<[u8]> = vec![b'x'; plan.payload.max(1)].into();
    let start = Instant::now();
    let tasks: Vec<_> = (0..plan.writers.max(1))
        .map(|_| {
            let (addr, name, body) = (plan.addr, name.to_owned(), body.clone());
            tokio::spawn(async move {
                let mut hist = Histogram::default();
                let (mut ok, mut failed, mut err) = (0u64, 0u64, None);
                let mut conn = None;
                while Instant::now() < deadline {
                    if conn.is_none() {
                        match Conn::open(addr).await {
                            Ok(c) => conn = Some(c),
                            Err(e) => {
                                failed += 1;
                                err.get_or_insert(format!("connect: {e:#}"));
                                tokio::time::sleep(Duration::from_millis(50)).await;
                                continue;
                            }
                        }
                    }
                    let c = conn.as_mut().expect("opened above");
                    let sent = Instant::now();
                    match c
                        .send(
                            "POST",
                            &name,
                            "Content-Type: application/octet-stream\r\n",
                            &body,
                        )
                        .await
                    {
                        Ok(a) if (200..300).contains(&a.status) => {
                            ok += 1;
                            hist.record(sent.elapsed().as_micros() as u64);
                        }
                        Ok(a) => {
                            failed += 1;
                            err.get_or_insert(format!("append answered {}", a.status));
                        }
                        Err(e) => {
                            failed += 1;
                            err.get_or_insert(format!("append: {e:#}"));
                            conn = None;
                        }
                    }
                }
                (ok, failed, err, hist)
            })
        })
        .collect();
    let mut hist = Histogram::default();
    for t in tasks {
        if let Ok((ok, failed, err, h)) = t.await {
            report.appends += ok;
            report.append_failures += failed;
            if report.first_error.is_none() {
                report.first_error = err;
            }
            hist.merge(&h);
        }
    }
    report.appends_per_sec = report.appends as f64 / start.elapsed().as_secs_f64();
    report.append_ack_us = Percentiles::from(&hist);
}

/// `ds-sse`: `readers` SSE connections from the tail, one writer at `rate` appends/s whose
/// bodies carry their sequence number and send time.
async fn sse(plan: &DsPlan, name: &str, report: &mut DsReport) -> anyhow::Result<()> {
    report.readers = plan.readers;
    report.writers = 1;
    let base = Instant::now();
    let stop = CancellationToken::new();
    let connected = Arc::new(AtomicU64::new(0));
    let gate = Arc::new(tokio::sync::Semaphore::new(128));
    let readers: Vec<_> = (0..plan.readers.max(1))
        .map(|_| {
            let (addr, stop, connected, gate) =
                (plan.addr, stop.clone(), connected.clone(), gate.clone());
            let path = format!("{name}?offset=now&live=sse");
            tokio::spawn(async move { read_sse(addr, &path, base, &connected, &gate, stop).await })
        })
        .collect();
    // Every reader connected (or failed), then a moment for the server to register them.
    let wait_until = Instant::now() + Duration::from_secs(60);
    while connected.load(Ordering::Relaxed) < readers.len() as u64 && Instant::now() < wait_until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut c = Conn::open(plan.addr).await?;
    let period = Duration::from_secs_f64(1.0 / plan.rate.max(1) as f64);
    let deadline = Instant::now() + plan.duration;
    let pad = "x".repeat(plan.payload.saturating_sub(24));
    let mut hist = Histogram::default();
    let (mut seq, mut next) = (0u64, Instant::now());
    let start = Instant::now();
    while Instant::now() < deadline {
        tokio::time::sleep_until(next).await;
        next += period;
        seq += 1;
        let sent = Instant::now();
        let body = format!("{seq}.{}.{pad};", sent.duration_since(base).as_micros());
        match c
            .send(
                "POST",
                name,
                "Content-Type: text/plain\r\n",
                body.as_bytes(),
            )
            .await
        {
            Ok(a) if (200..300).contains(&a.status) => {
                report.appends += 1;
                hist.record(sent.elapsed().as_micros() as u64);
            }
            Ok(a) => {
                report.append_failures += 1;
                report
                    .first_error
                    .get_or_insert(format!("append answered {}", a.status));
            }
            Err(e) => {
                report.append_failures += 1;
                report.first_error.get_or_insert(format!("append: {e:#}"));
                c = Conn::open(plan.addr).await?;
            }
        }
    }
    report.appends_per_sec = report.appends as f64 / start.elapsed().as_secs_f64();
    report.append_ack_us = Percentiles::from(&hist);
    tokio::time::sleep(plan.drain).await;
    stop.cancel();
    let mut latency = Histogram::default();
    for r in readers {
        let Ok((tally, ended_early, err)) = r.await else {
            continue;
        };
        report.deliveries += tally.received;
        if let Some(h) = &tally.latency {
            latency.merge(h);
        }
        report.readers_ended_early += usize::from(ended_early);
        if report.first_error.is_none() {
            report.first_error = err;
        }
    }
    report.expected_deliveries = report.appends * plan.readers.max(1) as u64;
    report.lost = report.expected_deliveries.saturating_sub(report.deliveries);
    report.latency_us = Percentiles::from(&latency);
    Ok(())
}

/// One SSE reader: tallies `seq.micros.pad;` records out of `event: data` events.
async fn read_sse(
    addr: SocketAddr,
    path: &str,
    base: Instant,
    connected: &AtomicU64,
    gate: &tokio::sync::Semaphore,
    stop: CancellationToken,
) -> (Tally, bool, Option<String>) {
    let mut tally = Tally::default();
    let opened = {
        let _permit = gate.acquire().await;
        let r = async {
            let mut c = Conn::open(addr).await?;
            let a = c.open_get(path).await?;
            anyhow::ensure!(a.status == 200, "SSE read answered {}", a.status);
            Ok(c)
        }
        .await;
        connected.fetch_add(1, Ordering::Relaxed);
        r
    };
    let mut c = match opened {
        Ok(c) => c,
        Err(e) => return (tally, true, Some(format!("{e:#}"))),
    };
    let mut lines = LineReader::default();
    let mut in_data = false;
    let mut carry: Vec<u8> = Vec::new();
    let read = c.read_body(|bytes| {
        let now = base.elapsed().as_micros() as u64;
        lines.feed(bytes, |line| {
            if line.is_empty() {
                in_data = false;
            } else if let Some(ev) = line.strip_prefix(b"event:") {
                in_data = ev.trim_ascii() == b"data";
            } else if in_data && let Some(d) = line.strip_prefix(b"data:") {
                carry.extend_from_slice(d.strip_prefix(b" ").unwrap_or(d));
                while let Some(i) = memchr::memchr(b';', &carry) {
                    if let Some((seq, sent)) = parse_record(&carry[..i]) {
                        tally.record(seq, now.saturating_sub(sent));
                    }
                    carry.drain(..=i);
                }
            }
        });
    });
    tokio::select! {
        r = read => (tally, true, r.err().map(|e| format!("SSE read: {e:#}"))),
        () = stop.cancelled() => (tally, false, None),
    }
}

/// `seq.micros.pad` -> (seq, micros).
fn parse_record(r: &[u8]) -> Option<(u64, u64)> {
    let mut it = r.split(|b| *b == b'.');
    let seq = std::str::from_utf8(it.next()?).ok()?.parse().ok()?;
    let sent = std::str::from_utf8(it.next()?).ok()?.parse().ok()?;
    Some((seq, sent))
}

/// Appends `bytes` to the stream in 64 KiB appends.
async fn fill(c: &mut Conn, name: &str, bytes: u64) -> anyhow::Result<()> {
    let block = vec![b'y'; 64 * 1024];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(block.len() as u64) as usize;
        let a = c
            .send(
                "POST",
                name,
                "Content-Type: application/octet-stream\r\n",
                &block[..n],
            )
            .await?;
        anyhow::ensure!((200..300).contains(&a.status), "fill answered {}", a.status);
        left -= n as u64;
    }
    Ok(())
}

/// `ds-catchup`: `readers` concurrent readers each read the whole stream from the start,
/// following `Stream-Next-Offset`; three passes.
async fn catchup(plan: &DsPlan, name: &str, report: &mut DsReport) -> anyhow::Result<()> {
    report.readers = plan.readers.max(1);
    for _ in 0..3 {
        let start = Instant::now();
        let tasks: Vec<_> = (0..report.readers)
            .map(|_| {
                let (addr, name) = (plan.addr, name.to_owned());
                tokio::spawn(async move { read_all(addr, &name).await })
            })
            .collect();
        let mut total = 0u64;
        for t in tasks {
            total += t.await??;
        }
        let secs = start.elapsed().as_secs_f64();
        report.catchup_bytes = total / report.readers as u64;
        report.catchup_mb_per_sec.push(total as f64 / secs / 1e6);
    }
    let mut sorted = report.catchup_mb_per_sec.clone();
    sorted.sort_by(f64::total_cmp);
    report.catchup_mb_per_sec_median = sorted[sorted.len() / 2];
    Ok(())
}

/// Reads a stream from its start to its tail; returns the bytes read.
async fn read_all(addr: SocketAddr, name: &str) -> anyhow::Result<u64> {
    let mut c = Conn::open(addr).await?;
    let mut offset = "-1".to_owned();
    let mut total = 0u64;
    loop {
        let a = c
            .send("GET", &format!("{name}?offset={offset}"), "", b"")
            .await?;
        anyhow::ensure!(a.status == 200, "catch-up read answered {}", a.status);
        total += a.body_len as u64;
        let next = a
            .header("stream-next-offset")
            .ok_or_else(|| anyhow::anyhow!("a read without Stream-Next-Offset"))?;
        let done = a
            .header("stream-up-to-date")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
            || a.body_len == 0;
        if done {
            return Ok(total);
        }
        offset = next.to_owned();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_parse_and_garbage_does_not() {
        assert_eq!(parse_record(b"12.3456.xxxx"), Some((12, 3456)));
        assert_eq!(parse_record(b"12.3456."), Some((12, 3456)));
        assert_eq!(parse_record(b"{\"streamNextOffset\""), None);
    }
}
