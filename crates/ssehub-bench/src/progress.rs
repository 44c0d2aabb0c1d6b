//! The progress line of a long run: every few seconds on stderr, what has happened so far
//! (connections, acknowledged publishes, deliveries and their rate since the last line), so
//! that a run of minutes is not silent. stdout keeps only the report, so `--json` output is
//! unchanged.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::client::Progress;

/// How often a line is printed.
const EVERY: Duration = Duration::from_secs(3);

/// Prints a line every [`EVERY`] until `stop`.
pub(super) async fn report(progress: Arc<Progress>, subscribers: u64, stop: CancellationToken) {
    let start = Instant::now();
    let mut last = (start, 0u64, 0u64);
    let mut tick = tokio::time::interval_at(start + EVERY, EVERY);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            now = tick.tick() => {
                let connected = progress.connected.load(Ordering::Relaxed);
                let published = progress.published.load(Ordering::Relaxed);
                let received = progress.received.load(Ordering::Relaxed);
                let secs = now.duration_since(last.0).as_secs_f64().max(1e-3);
                eprintln!(
                    "{}",
                    line(
                        now.duration_since(start).as_secs(),
                        (connected, subscribers),
                        published,
                        received,
                        ((published - last.1) as f64 / secs, (received - last.2) as f64 / secs),
                    )
                );
                last = (now, published, received);
            }
        }
    }
}

/// One progress line: `[12s] 1000/1000 subscribers, 8,412 published (1,000/s), ...`.
fn line(
    elapsed: u64,
    (connected, subscribers): (u64, u64),
    published: u64,
    received: u64,
    (publish_rate, delivery_rate): (f64, f64),
) -> String {
    format!(
        "ssehub-bench [{elapsed}s] {connected}/{subscribers} subscribers, {published} published ({publish_rate:.0}/s), {received} delivered ({delivery_rate:.0}/s)"
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_line_names_each_counter_and_rate() {
        assert_eq!(
            super::line(12, (990, 1000), 8412, 841_200, (1000.4, 99_999.6)),
            "ssehub-bench [12s] 990/1000 subscribers, 8412 published (1000/s), 841200 delivered (100000/s)"
        );
    }
}
