//! Counters the hub keeps for `/metrics`, rendered in the Prometheus text format.
//!
//! Plain atomics: every hot-path update is one relaxed add, and rendering reads them once.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the publish-latency histogram buckets.
const LATENCY_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 5.0,
];

/// The hub's counters and gauges.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Open client connections (any protocol).
    pub connections: AtomicU64,
    /// Active subscriptions (open event streams on the Mercure endpoint).
    pub subscribers: AtomicU64,
    /// Acknowledged publishes.
    pub publishes: AtomicU64,
    /// Publishes refused (bad input, auth, storage).
    pub publish_errors: AtomicU64,
    /// Updates queued to subscribers.
    pub deliveries: AtomicU64,
    /// Subscribers cut off for falling behind.
    pub laggards_cut: AtomicU64,
    /// Connections refused because the connection cap was reached.
    pub connections_refused: AtomicU64,
    /// Relay generations running now (kept by the relay; here so `/metrics` has one source).
    pub relay_streams_running: AtomicU64,
    /// Relay requests refused at a generation bound.
    pub relay_streams_refused: AtomicU64,
    /// Upstream chunks the relay recorded (one per token for OpenAI-style streams).
    pub relay_chunks: AtomicU64,
    latency_buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_us: AtomicU64,
}

impl Metrics {
    /// Records one acknowledged publish and how long it took to become durable.
    pub fn observe_publish(&self, took: Duration) {
        self.publishes.fetch_add(1, Ordering::Relaxed);
        let secs = took.as_secs_f64();
        for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
            if secs <= *bound {
                self.latency_buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_us
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    /// The Prometheus text exposition of every metric, plus the history's size (updates, and
    /// bytes where the store knows them) as the store reports it.
    pub fn render(&self, history_events: Option<u64>, history_bytes: Option<u64>) -> String {
        let mut out = String::with_capacity(2048);
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut gauge = |name: &str, help: &str, kind: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
            );
        };
        gauge(
            "ssehub_connections",
            "Open client connections.",
            "gauge",
            get(&self.connections),
        );
        gauge(
            "ssehub_subscribers",
            "Active subscriptions.",
            "gauge",
            get(&self.subscribers),
        );
        gauge(
            "ssehub_publishes_total",
            "Acknowledged (durable) publishes.",
            "counter",
            get(&self.publishes),
        );
        gauge(
            "ssehub_publish_errors_total",
            "Refused publishes.",
            "counter",
            get(&self.publish_errors),
        );
        gauge(
            "ssehub_deliveries_total",
            "Updates queued to subscribers.",
            "counter",
            get(&self.deliveries),
        );
        gauge(
            "ssehub_laggards_disconnected_total",
            "Subscribers cut off for falling behind (they resume from history).",
            "counter",
            get(&self.laggards_cut),
        );
        gauge(
            "ssehub_connections_refused_total",
            "Connections answered 503 at the connection cap.",
            "counter",
            get(&self.connections_refused),
        );
        gauge(
            "ssehub_relay_streams_running",
            "Relay generations running (bounded by --relay-max-streams).",
            "gauge",
            get(&self.relay_streams_running),
        );
        gauge(
            "ssehub_relay_streams_refused_total",
            "Relay requests answered 429 at a generation bound.",
            "counter",
            get(&self.relay_streams_refused),
        );
        gauge(
            "ssehub_relay_chunks_total",
            "Upstream chunks the relay recorded (about one per token).",
            "counter",
            get(&self.relay_chunks),
        );
        if let Some(n) = history_bytes {
            gauge(
                "ssehub_store_bytes",
                "Bytes the history store takes on disk (the embedded store's files).",
                "gauge",
                n,
            );
        }
        if let Some(n) = history_events {
            gauge(
                "ssehub_history_events",
                "Updates retained in history.",
                "gauge",
                n,
            );
        }
        let name = "ssehub_publish_duration_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Time from receiving a publish to its durable acknowledgement."
        );
        let _ = writeln!(out, "# TYPE {name} histogram");
        for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{bound}\"}} {}",
                get(&self.latency_buckets[i])
            );
        }
        let count = get(&self.latency_count);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum {}", get(&self.latency_sum_us) as f64 / 1e6);
        let _ = writeln!(out, "{name}_count {count}");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = Metrics::default();
        m.observe_publish(Duration::from_micros(300));
        m.observe_publish(Duration::from_millis(30));
        let text = m.render(Some(2), None);
        assert!(
            text.contains("ssehub_publish_duration_seconds_bucket{le=\"0.0005\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("ssehub_publish_duration_seconds_bucket{le=\"0.05\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("ssehub_publish_duration_seconds_count 2\n"),
            "{text}"
        );
        assert!(text.contains("ssehub_publishes_total 2\n"), "{text}");
        assert!(text.contains("ssehub_history_events 2\n"), "{text}");
        assert!(
            !text.contains("ssehub_store_bytes"),
            "unknown size, no gauge"
        );
    }

    #[test]
    fn store_bytes_and_relay_chunks_are_exported() {
        let m = Metrics::default();
        m.relay_chunks.fetch_add(7, Ordering::Relaxed);
        let text = m.render(None, Some(4096));
        assert!(
            text.contains("# TYPE ssehub_store_bytes gauge\nssehub_store_bytes 4096\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "# TYPE ssehub_relay_chunks_total counter\nssehub_relay_chunks_total 7\n"
            ),
            "{text}"
        );
        assert!(!text.contains("ssehub_history_events"), "{text}");
    }
}
