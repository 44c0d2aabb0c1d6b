//! Counters of the Durable Streams front for `/metrics`, in the Prometheus text format.
//!
//! Kept apart from the hub's [`Metrics`](crate::hub::Metrics): streams are their own store with
//! their own traffic. Plain atomics, one relaxed add per event.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// What the streams layer counts.
#[derive(Debug, Default)]
pub struct StreamsMetrics {
    /// Appends stored (a producer's retry of a stored append is not counted again).
    pub appends: AtomicU64,
    /// Bytes those appends stored.
    pub append_bytes: AtomicU64,
    /// Appends refused (bad input, conflicts, closed streams, storage).
    pub append_errors: AtomicU64,
    /// Open live readers: SSE connections and long-polls waiting.
    pub readers: AtomicU64,
}

impl StreamsMetrics {
    /// Counts one live reader until the guard drops.
    pub fn reader(self: &Arc<Self>) -> ReaderGuard {
        self.readers.fetch_add(1, Ordering::Relaxed);
        ReaderGuard(self.clone())
    }

    /// The Prometheus text of every counter, with the number of streams stored when known.
    pub fn render(&self, streams: Option<u64>) -> String {
        let mut out = String::with_capacity(1024);
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut metric = |name: &str, help: &str, kind: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
            );
        };
        if let Some(n) = streams {
            metric(
                "ssehub_ds_streams",
                "Durable Streams stored on this node (expired ones until the sweep removes them).",
                "gauge",
                n,
            );
        }
        metric(
            "ssehub_ds_appends_total",
            "Durable Streams appends stored.",
            "counter",
            get(&self.appends),
        );
        metric(
            "ssehub_ds_append_bytes_total",
            "Bytes stored by Durable Streams appends.",
            "counter",
            get(&self.append_bytes),
        );
        metric(
            "ssehub_ds_append_errors_total",
            "Durable Streams appends refused.",
            "counter",
            get(&self.append_errors),
        );
        metric(
            "ssehub_ds_readers",
            "Durable Streams live readers (SSE connections and waiting long-polls).",
            "gauge",
            get(&self.readers),
        );
        out
    }
}

/// Holds one count of [`StreamsMetrics::readers`].
#[derive(Debug)]
pub struct ReaderGuard(Arc<StreamsMetrics>);

impl Drop for ReaderGuard {
    fn drop(&mut self) {
        self.0.readers.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_are_counted_while_held_and_everything_renders() {
        let m = Arc::new(StreamsMetrics::default());
        let a = m.reader();
        let b = m.reader();
        drop(a);
        m.appends.fetch_add(2, Ordering::Relaxed);
        m.append_bytes.fetch_add(10, Ordering::Relaxed);
        let text = m.render(Some(3));
        assert!(text.contains("\nssehub_ds_streams 3\n"), "{text}");
        assert!(text.contains("\nssehub_ds_appends_total 2\n"), "{text}");
        assert!(
            text.contains("\nssehub_ds_append_bytes_total 10\n"),
            "{text}"
        );
        assert!(text.contains("\nssehub_ds_readers 1\n"), "{text}");
        drop(b);
        assert!(m.render(None).contains("\nssehub_ds_readers 0\n"));
        assert!(!m.render(None).contains("ssehub_ds_streams "));
    }
}
