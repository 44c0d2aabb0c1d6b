//! The report of one run: what it counted, as text or one JSON object.

use serde::Serialize;

use super::stats::Histogram;

/// The result of one run.
#[derive(Debug, Default, Serialize)]
pub(super) struct Report {
    pub(super) scenario: String,
    pub(super) target: String,
    /// Where subscribers connected, round robin.
    pub(super) addrs: Vec<String>,
    /// Where publishers sent, round robin.
    pub(super) publish_addrs: Vec<String>,
    pub(super) subscribers: usize,
    pub(super) topics: usize,
    pub(super) connected: usize,
    pub(super) connect_failures: usize,
    pub(super) first_connect_error: Option<String>,
    pub(super) connect_secs: f64,
    pub(super) server_rss_before_kib: Option<u64>,
    pub(super) server_rss_connected_kib: Option<u64>,
    pub(super) server_kib_per_subscriber: Option<f64>,
    pub(super) published: u64,
    pub(super) publish_failures: u64,
    pub(super) first_publish_error: Option<String>,
    pub(super) publish_secs: f64,
    pub(super) publishes_per_sec: f64,
    pub(super) expected_deliveries: u64,
    pub(super) deliveries: u64,
    pub(super) lost: u64,
    pub(super) duplicates: u64,
    pub(super) reordered: u64,
    pub(super) malformed: u64,
    pub(super) streams_ended_early: usize,
    pub(super) deliveries_per_sec: f64,
    pub(super) latency_us: Percentiles,
    pub(super) publish_ack_us: Percentiles,
    pub(super) server_cpu_cores: Option<f64>,
    /// The server's CPU over the run divided by the acknowledged publishes, in microseconds:
    /// what one publish costs, its fan-out included.
    pub(super) server_cpu_us_per_publish: Option<f64>,
    pub(super) server_rss_end_kib: Option<u64>,
    /// CPU of the `--redis-pid` process over the run.
    pub(super) redis_cpu_cores: Option<f64>,
    /// That CPU divided by the acknowledged publishes, in microseconds.
    pub(super) redis_cpu_us_per_publish: Option<f64>,
    pub(super) redis_rss_end_kib: Option<u64>,
    pub(super) generator_cpu_cores: f64,
    pub(super) generator_rss_kib: u64,
}

#[derive(Debug, Default, Serialize)]
pub(super) struct Percentiles {
    pub(super) samples: u64,
    pub(super) p50: u64,
    pub(super) p90: u64,
    pub(super) p99: u64,
    pub(super) p999: u64,
    pub(super) max: u64,
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

pub(super) fn print_text(r: &Report) {
    println!(
        "{} against {}: {} subscribers on {} topic(s)",
        r.scenario, r.target, r.subscribers, r.topics
    );
    if r.addrs.len() > 1 || r.publish_addrs != r.addrs {
        println!(
            "  addresses      subscribers on {}; publishers to {}",
            r.addrs.join(", "),
            r.publish_addrs.join(", ")
        );
    }
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
            "  server         {:.2} cores, {:.1} us per publish, {} KiB at the end",
            cpu,
            r.server_cpu_us_per_publish.unwrap_or(0.0),
            r.server_rss_end_kib.unwrap_or(0)
        );
    }
    if let Some(cpu) = r.redis_cpu_cores {
        println!(
            "  redis          {:.2} cores, {:.1} us per publish, {} KiB at the end",
            cpu,
            r.redis_cpu_us_per_publish.unwrap_or(0.0),
            r.redis_rss_end_kib.unwrap_or(0)
        );
    }
    println!(
        "  generator      {:.2} cores, {} KiB",
        r.generator_cpu_cores, r.generator_rss_kib
    );
}
