//! The load generator's clients: subscribers on raw TCP reading SSE lines, publishers on
//! keep-alive connections. Each update's data is `<seq>.<micros>.` padded with `x`: the
//! topic's sequence number (loss, duplicates, order) and when it was sent (latency).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Target;
use super::http::{Dechunk, Framing, parse_head};
use super::stats::{Histogram, Tally};

/// Where and how to reach the server under test.
#[derive(Debug)]
pub(super) struct Endpoint {
    /// The server's address (loopback only).
    pub(super) addr: SocketAddr,
    /// Which protocol shape it speaks.
    pub(super) target: Target,
    /// `Authorization` value for publishing to ssehub.
    pub(super) publish_auth: Option<String>,
    /// Source addresses to spread connections over, so ephemeral ports do not run out.
    pub(super) sources: Vec<IpAddr>,
}

impl Endpoint {
    /// Connects from the `n`th source address.
    async fn connect(&self, n: usize) -> std::io::Result<TcpStream> {
        let socket = match self.addr {
            SocketAddr::V4(_) => TcpSocket::new_v4()?,
            SocketAddr::V6(_) => TcpSocket::new_v6()?,
        };
        if !self.sources.is_empty() {
            socket.bind(SocketAddr::new(self.sources[n % self.sources.len()], 0))?;
        }
        let stream = socket.connect(self.addr).await?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }

    fn subscribe_request(&self, topic: &str) -> String {
        let path = match self.target {
            Target::Ssehub => format!("/.well-known/mercure?topic={}", encode(topic)),
            Target::Nchan | Target::Axum => format!("/sub?id={}", encode(topic)),
        };
        format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n\r\n",
            self.addr
        )
    }

    /// Appends a publish request for `data` on `topic` to `out`.
    fn publish_request(&self, topic: &str, data: &str, out: &mut Vec<u8>) {
        use std::io::Write as _;
        out.clear();
        // Writes into a Vec cannot fail.
        let _ = match self.target {
            Target::Ssehub => {
                let body_len = "topic=".len() + encode(topic).len() + "&data=".len() + data.len();
                write!(
                    out,
                    "POST /.well-known/mercure HTTP/1.1\r\nHost: {}\r\n{}Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {body_len}\r\n\r\ntopic={}&data={data}",
                    self.addr,
                    self.publish_auth
                        .as_deref()
                        .map(|a| format!("Authorization: {a}\r\n"))
                        .unwrap_or_default(),
                    encode(topic),
                )
            }
            Target::Nchan | Target::Axum => write!(
                out,
                "POST /pub?id={} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n\r\n{data}",
                encode(topic),
                self.addr,
                data.len()
            ),
        };
    }
}

fn encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// What a subscriber saw.
#[derive(Debug, Default)]
pub(super) struct SubReport {
    /// Deliveries, loss and latency.
    pub(super) tally: Tally,
    /// The server closed the stream before the run ended.
    pub(super) ended_early: bool,
}

/// Counters every subscriber updates once per read, for progress during the drain.
#[derive(Debug, Default)]
pub(super) struct Progress {
    /// Distinct deliveries so far.
    pub(super) received: AtomicU64,
    /// Micros since the run's base instant at the last read that delivered something.
    pub(super) last_delivery_us: AtomicU64,
    /// Subscribers connected so far (for the progress line while connecting).
    pub(super) connected: AtomicU64,
    /// Publishes acknowledged so far.
    pub(super) published: AtomicU64,
}

/// An open subscription: headers read, body not yet.
pub(super) struct Opened {
    stream: TcpStream,
    framing: Framing,
    leftover: Vec<u8>,
}

/// Connects and subscribes; returns once the server answered 200 with its headers.
///
/// # Errors
/// Connection failures, a non-200 status or a malformed head.
pub(super) async fn open(ep: &Endpoint, n: usize, topic: &str) -> anyhow::Result<Opened> {
    let mut stream = ep.connect(n).await?;
    stream
        .write_all(ep.subscribe_request(topic).as_bytes())
        .await?;
    let mut buf = Vec::with_capacity(1024);
    loop {
        let mut chunk = [0u8; 1024];
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            anyhow::bail!("connection closed before the response head");
        }
        buf.extend_from_slice(&chunk[..read]);
        if let Some(head) = parse_head(&buf)? {
            anyhow::ensure!(head.status == 200, "subscribe answered {}", head.status);
            return Ok(Opened {
                stream,
                framing: head.framing,
                leftover: buf[head.len..].to_vec(),
            });
        }
        anyhow::ensure!(buf.len() < 16 * 1024, "response head too large");
    }
}

/// Reads an opened subscription until `stop`, tallying every `data:` line.
pub(super) async fn read_events(
    opened: Opened,
    base: Instant,
    progress: Arc<Progress>,
    stop: CancellationToken,
) -> SubReport {
    let Opened {
        mut stream,
        framing,
        leftover,
    } = opened;
    let mut report = SubReport::default();
    let mut lines = LineReader::default();
    let mut dechunk = Dechunk::default();
    let mut buf = leftover;
    let mut read_buf = vec![0u8; 16 * 1024];
    loop {
        if !buf.is_empty() {
            let now_us = base.elapsed().as_micros() as u64;
            let before = report.tally.received;
            let tally = &mut report.tally;
            let mut on_body = |body: &[u8]| lines.feed(body, |line| on_line(line, now_us, tally));
            let ok = match framing {
                Framing::Chunked => dechunk.feed(&buf, &mut on_body).is_ok(),
                Framing::Length(_) | Framing::Close => {
                    on_body(&buf);
                    true
                }
            };
            let got = report.tally.received - before;
            if got > 0 {
                progress.received.fetch_add(got, Ordering::Relaxed);
                progress
                    .last_delivery_us
                    .fetch_max(now_us, Ordering::Relaxed);
            }
            if !ok || dechunk.done {
                report.ended_early = true;
                return report;
            }
            buf.clear();
        }
        let read = tokio::select! {
            biased;
            _ = stop.cancelled() => return report,
            r = stream.read(&mut read_buf) => r,
        };
        match read {
            Ok(n) if n > 0 => buf.extend_from_slice(&read_buf[..n]),
            _ => {
                report.ended_early = !stop.is_cancelled();
                return report;
            }
        }
    }
}

fn on_line(line: &[u8], now_us: u64, tally: &mut Tally) {
    let Some(value) = line.strip_prefix(b"data:") else {
        return;
    };
    let value = value.strip_prefix(b" ").unwrap_or(value);
    let mut parts = value.split(|b| *b == b'.');
    let seq = parts.next().and_then(digits);
    let sent = parts.next().and_then(digits);
    match (seq, sent) {
        (Some(seq), Some(sent)) => tally.record(seq, now_us.saturating_sub(sent)),
        _ => tally.malformed += 1,
    }
}

fn digits(b: &[u8]) -> Option<u64> {
    if b.is_empty() || b.len() > 19 {
        return None;
    }
    b.iter().try_fold(0u64, |acc, d| {
        d.is_ascii_digit().then(|| acc * 10 + u64::from(d - b'0'))
    })
}

/// Splits a byte stream into lines (LF or CRLF), carrying a partial line between reads.
#[derive(Debug, Default)]
pub(super) struct LineReader {
    partial: Vec<u8>,
}

impl LineReader {
    pub(super) fn feed(&mut self, mut input: &[u8], mut on_line: impl FnMut(&[u8])) {
        while let Some(i) = memchr::memchr(b'\n', input) {
            let line = &input[..i];
            input = &input[i + 1..];
            if self.partial.is_empty() {
                on_line(line.strip_suffix(b"\r").unwrap_or(line));
            } else {
                self.partial.extend_from_slice(line);
                let whole = std::mem::take(&mut self.partial);
                on_line(whole.strip_suffix(b"\r").unwrap_or(&whole));
                self.partial = whole;
                self.partial.clear();
            }
        }
        // Bounded: the server's events are small; a runaway line is dropped, not buffered.
        if self.partial.len() + input.len() <= 1 << 20 {
            self.partial.extend_from_slice(input);
        } else {
            self.partial.clear();
        }
    }
}

/// The plan every publisher shares.
#[derive(Debug)]
pub(super) struct PublishPlan {
    /// Topic names; publishes go round robin over them.
    pub(super) topics: Vec<String>,
    /// Next sequence number per topic (numbering from 1).
    pub(super) next_seq: Vec<AtomicU64>,
    /// Acknowledged publishes per topic: what every subscriber of it should receive.
    pub(super) acked: Vec<AtomicU64>,
    /// Publishes started, over all publishers.
    pub(super) started: AtomicU64,
    /// Stop after this many publishes.
    pub(super) max_updates: u64,
    /// Total updates per second over all publishers; 0 for as fast as possible.
    pub(super) rate: u64,
    /// Bytes of data per update.
    pub(super) payload: usize,
    /// No publish starts after this.
    pub(super) deadline: Instant,
    /// Base of the timestamps in the data.
    pub(super) base: Instant,
    /// Where acknowledged publishes are counted for the progress line.
    pub(super) progress: Arc<Progress>,
}

/// What a publisher saw.
#[derive(Debug, Default)]
pub(super) struct PubReport {
    /// Publishes answered 2xx.
    pub(super) acked: u64,
    /// Publishes answered otherwise, or cut by a broken connection.
    pub(super) failed: u64,
    /// Publish round trips (send to acknowledgement), in microseconds.
    pub(super) ack_latency: Histogram,
    /// The first error, if any.
    pub(super) error: Option<String>,
}

/// Publishes on one keep-alive connection until the plan's deadline or count.
pub(super) async fn publish(
    ep: Arc<Endpoint>,
    plan: Arc<PublishPlan>,
    index: usize,
    publishers: usize,
) -> PubReport {
    let mut report = PubReport::default();
    let mut conn = match ep.connect(index).await {
        Ok(c) => c,
        Err(e) => {
            report.error = Some(format!("connect: {e}"));
            return report;
        }
    };
    // Publisher `index` owns every `publishers`th slot of the schedule.
    let mut ticks = (plan.rate > 0).then(|| {
        let period = Duration::from_secs_f64(publishers as f64 / plan.rate as f64);
        let offset = Duration::from_secs_f64(index as f64 / plan.rate as f64);
        let mut i = tokio::time::interval_at(Instant::now() + offset, period);
        // A late publisher catches up, so the total rate holds; lateness shows in the
        // achieved rate, and latency is measured from the actual send.
        i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        i
    });
    let mut req = Vec::with_capacity(plan.payload + 512);
    let mut resp = Vec::with_capacity(1024);
    let mut data = String::with_capacity(plan.payload + 32);
    loop {
        if let Some(t) = ticks.as_mut() {
            t.tick().await;
        }
        if Instant::now() >= plan.deadline {
            break;
        }
        let k = plan.started.fetch_add(1, Ordering::Relaxed);
        if k >= plan.max_updates {
            break;
        }
        let topic = (k % plan.topics.len() as u64) as usize;
        let seq = plan.next_seq[topic].fetch_add(1, Ordering::Relaxed);
        let sent = plan.base.elapsed();
        data.clear();
        {
            use std::fmt::Write as _;
            let _ = write!(data, "{seq}.{}.", sent.as_micros());
        }
        while data.len() < plan.payload {
            data.push('x');
        }
        ep.publish_request(&plan.topics[topic], &data, &mut req);
        match round_trip(&mut conn, &req, &mut resp).await {
            Ok(status) if (200..300).contains(&status) => {
                report.acked += 1;
                plan.acked[topic].fetch_add(1, Ordering::Relaxed);
                plan.progress.published.fetch_add(1, Ordering::Relaxed);
                let rtt = plan.base.elapsed().saturating_sub(sent);
                report.ack_latency.record(rtt.as_micros() as u64);
            }
            Ok(status) => {
                report.failed += 1;
                report
                    .error
                    .get_or_insert_with(|| format!("publish answered {status}"));
            }
            Err(e) => {
                report.failed += 1;
                report
                    .error
                    .get_or_insert_with(|| format!("publish: {e:#}"));
                break;
            }
        }
    }
    report
}

/// Sends one request and reads its whole response; returns the status.
async fn round_trip(conn: &mut TcpStream, req: &[u8], buf: &mut Vec<u8>) -> anyhow::Result<u16> {
    conn.write_all(req).await?;
    buf.clear();
    let mut chunk = [0u8; 4096];
    let head = loop {
        let n = conn.read(&mut chunk).await?;
        anyhow::ensure!(n > 0, "connection closed");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(head) = parse_head(buf)? {
            break head;
        }
        anyhow::ensure!(buf.len() < 64 * 1024, "response head too large");
    };
    match head.framing {
        Framing::Length(len) => {
            let mut have = buf.len() - head.len;
            while have < len {
                let n = conn.read(&mut chunk).await?;
                anyhow::ensure!(n > 0, "connection closed in the body");
                have += n;
            }
        }
        Framing::Chunked => {
            let mut d = Dechunk::default();
            d.feed(&buf[head.len..], |_| {})?;
            while !d.done {
                let n = conn.read(&mut chunk).await?;
                anyhow::ensure!(n > 0, "connection closed in the body");
                d.feed(&chunk[..n], |_| {})?;
            }
        }
        Framing::Close => {
            anyhow::bail!("publish response without length cannot keep the connection")
        }
    }
    Ok(head.status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_anywhere_come_out_whole() {
        let raw = b"id: 1\r\ndata: 7.123.xx\n\n: comment\ndata:8.200.\n\n";
        for split in 0..raw.len() {
            let mut r = LineReader::default();
            let mut got: Vec<Vec<u8>> = Vec::new();
            r.feed(&raw[..split], |l| got.push(l.to_vec()));
            r.feed(&raw[split..], |l| got.push(l.to_vec()));
            assert_eq!(
                got,
                [
                    &b"id: 1"[..],
                    b"data: 7.123.xx",
                    b"",
                    b": comment",
                    b"data:8.200.",
                    b""
                ],
                "split at {split}"
            );
        }
    }

    #[test]
    fn data_lines_are_tallied_and_others_ignored() {
        let mut t = Tally::default();
        on_line(b"data: 7.1000.xxxx", 1500, &mut t);
        on_line(b"data:8.1000.", 1500, &mut t);
        on_line(b"id: 9", 1500, &mut t);
        on_line(b"data: hello", 1500, &mut t);
        assert_eq!((t.received, t.malformed), (2, 1));
        assert_eq!(t.latency.unwrap().max(), 500);
    }

    #[test]
    fn publish_requests_have_the_right_length() {
        let ep = Endpoint {
            addr: "127.0.0.1:1".parse().unwrap(),
            target: Target::Ssehub,
            publish_auth: Some("Bearer t".into()),
            sources: vec![],
        };
        let mut out = Vec::new();
        ep.publish_request("a b", "1.2.x", &mut out);
        let text = String::from_utf8(out.clone()).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert_eq!(body, "topic=a+b&data=1.2.x");
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
        assert!(head.contains("Authorization: Bearer t"));
        let ep = Endpoint {
            target: Target::Nchan,
            ..ep
        };
        ep.publish_request("t1", "1.2.x", &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("POST /pub?id=t1 HTTP/1.1\r\n"));
        assert!(text.ends_with("Content-Length: 5\r\n\r\n1.2.x"));
    }
}
