//! What the load generator counts: a compact latency histogram, per-subscriber delivery
//! bookkeeping (loss, duplicates, order) and the server's memory and CPU from `/proc`.

use std::time::Duration;

/// Sub-buckets per power of two: values are kept to within 1/16 (about 6 %).
const SUB: u32 = 16;
/// Buckets for values up to 2^40 microseconds (far beyond any run).
const BUCKETS: usize = (40 * SUB) as usize;

/// Log-linear histogram of microsecond latencies: exact below 16 us, within about 6 %
/// above, in a fixed 5 KiB however many samples.
#[derive(Clone, Debug)]
pub(super) struct Histogram {
    counts: Box<[u64]>,
    total: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS].into_boxed_slice(),
            total: 0,
            max: 0,
        }
    }
}

fn bucket(v: u64) -> usize {
    if v < u64::from(SUB) {
        return v as usize;
    }
    let exp = 63 - v.leading_zeros();
    let sub = (v >> (exp - 4)) & u64::from(SUB - 1);
    (((exp - 3) * SUB) as usize + sub as usize).min(BUCKETS - 1)
}

/// The smallest value that falls in bucket `i` (the value reported for a percentile).
fn bucket_low(i: usize) -> u64 {
    let i = i as u64;
    let sub = u64::from(SUB);
    if i < sub {
        return i;
    }
    let exp = i / sub + 3;
    (1 << exp) | ((i % sub) << (exp - 4))
}

impl Histogram {
    /// Records one latency in microseconds.
    pub(super) fn record(&mut self, us: u64) {
        self.counts[bucket(us)] += 1;
        self.total += 1;
        self.max = self.max.max(us);
    }

    /// Adds another histogram's samples.
    pub(super) fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    /// Number of samples.
    pub(super) fn count(&self) -> u64 {
        self.total
    }

    /// The value below which `q` (0..=1) of the samples fall, in microseconds.
    pub(super) fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return bucket_low(i).min(self.max);
            }
        }
        self.max
    }

    /// The largest sample.
    pub(super) fn max(&self) -> u64 {
        self.max
    }
}

/// One subscriber's tally; subscribers each see one topic, whose updates carry a sequence
/// number from 1 in the order they were sent.
#[derive(Debug, Default)]
pub(super) struct Tally {
    /// Distinct sequence numbers received.
    pub(super) received: u64,
    /// Sequence numbers received more than once.
    pub(super) duplicates: u64,
    /// Deliveries with a lower sequence number than one already received. Publishers on
    /// several connections race, so the server may order a topic differently than sent;
    /// this is reported, not counted as loss.
    pub(super) reordered: u64,
    /// `data:` lines that did not hold `seq.timestamp`.
    pub(super) malformed: u64,
    /// Highest sequence number seen.
    max_seq: u64,
    /// One bit per sequence number, to tell loss from duplicates exactly.
    seen: Vec<u64>,
    /// Publish-to-delivery latency; allocated with the first delivery so idle subscribers
    /// stay small.
    pub(super) latency: Option<Histogram>,
}

impl Tally {
    /// Records a delivery of `seq` sent `latency_us` ago.
    pub(super) fn record(&mut self, seq: u64, latency_us: u64) {
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        if word >= self.seen.len() {
            self.seen.resize(word + 1, 0);
        }
        if self.seen[word] & (1 << bit) != 0 {
            self.duplicates += 1;
            return;
        }
        self.seen[word] |= 1 << bit;
        self.received += 1;
        if seq < self.max_seq {
            self.reordered += 1;
        }
        self.max_seq = self.max_seq.max(seq);
        self.latency
            .get_or_insert_with(Histogram::default)
            .record(latency_us);
    }
}

/// A reading of one process from `/proc`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct ProcSample {
    /// Resident set size in bytes.
    pub(super) rss: u64,
    /// User plus system CPU time in clock ticks.
    pub(super) cpu_ticks: u64,
}

/// Linux reports CPU times in USER_HZ, which is 100 on every architecture the kernel
/// exposes to userspace; reading it with `sysconf` would need `unsafe` for no gain.
const TICKS_PER_SEC: f64 = 100.0;

impl ProcSample {
    /// Reads `/proc/<pid>/status` and `/proc/<pid>/stat` (`self` for the generator).
    ///
    /// # Errors
    /// When the process is gone or the files are not as documented in proc(5).
    pub(super) fn read(pid: &str) -> anyhow::Result<Self> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        Ok(ProcSample {
            rss: parse_rss(&status)
                .ok_or_else(|| anyhow::anyhow!("no VmRSS in /proc/{pid}/status"))?,
            cpu_ticks: parse_cpu(&stat)
                .ok_or_else(|| anyhow::anyhow!("unreadable /proc/{pid}/stat"))?,
        })
    }

    /// Sums samples of several processes (nginx's workers and master).
    pub(super) fn read_all(pids: &[String]) -> anyhow::Result<Self> {
        let mut sum = ProcSample::default();
        for pid in pids {
            let s = ProcSample::read(pid)?;
            sum.rss += s.rss;
            sum.cpu_ticks += s.cpu_ticks;
        }
        Ok(sum)
    }

    /// CPU used between `self` and a later sample, in cores (1.0 = one core busy).
    pub(super) fn cores_since(&self, earlier: &ProcSample, wall: Duration) -> f64 {
        let secs = self.cpu_ticks.saturating_sub(earlier.cpu_ticks) as f64 / TICKS_PER_SEC;
        secs / wall.as_secs_f64().max(1e-9)
    }
}

fn parse_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn parse_cpu(stat: &str) -> Option<u64> {
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // utime and stime are fields 14 and 15; `rest` starts at field 3.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_bound_their_values() {
        let mut last = 0;
        for v in (0..100_000u64).chain([1 << 30, (1 << 39) + 5]) {
            let b = bucket(v);
            assert!(b >= last, "bucket of {v} went down");
            last = b;
            let low = bucket_low(b);
            assert!(low <= v, "{v} below its bucket's floor {low}");
            assert!(v - low <= v / 16, "{v} too far from {low}");
        }
    }

    #[test]
    fn quantiles_of_a_uniform_spread() {
        let mut h = Histogram::default();
        for v in 1..=1000 {
            h.record(v);
        }
        let p50 = h.quantile(0.5);
        let p99 = h.quantile(0.99);
        assert!((470..=500).contains(&p50), "p50 {p50}");
        assert!((930..=990).contains(&p99), "p99 {p99}");
        assert!((940..=1000).contains(&h.quantile(1.0)));
        assert_eq!(h.max(), 1000);
        let mut other = Histogram::default();
        other.record(5000);
        h.merge(&other);
        assert_eq!((h.count(), h.max()), (1001, 5000));
    }

    #[test]
    fn tally_tells_loss_duplicates_and_reordering_apart() {
        let mut t = Tally::default();
        for seq in [1, 2, 4, 3, 4, 200] {
            t.record(seq, 10);
        }
        assert_eq!(t.received, 5);
        assert_eq!(t.duplicates, 1);
        assert_eq!(t.reordered, 1);
        assert_eq!(t.latency.as_ref().unwrap().count(), 5);
    }

    #[test]
    fn proc_files_parse() {
        let status = "Name:\tnginx\nVmRSS:\t   12345 kB\nThreads: 1\n";
        assert_eq!(parse_rss(status), Some(12345 * 1024));
        let stat = "42 (odd) name) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0";
        assert_eq!(parse_cpu(stat), Some(300));
        assert_eq!(parse_cpu("garbage"), None);
    }

    #[test]
    fn own_process_is_readable() {
        let s = ProcSample::read("self").unwrap();
        assert!(s.rss > 0);
    }
}
