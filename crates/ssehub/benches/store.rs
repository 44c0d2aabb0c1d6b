//! History store throughput: durable appends per second with 1, 16 and 256 concurrent
//! appenders, group commit through the write-ahead log against group commit with a durable redb
//! commit per batch and against one durable transaction per append, and replay reads.
//!
//! Run with `cargo bench -p ssehub --bench store`. With `STORE_LATENCY=1` set, it prints the
//! ack latency of a lone appender (p50, p99) instead, next to a raw `write` + `fdatasync` and a
//! bare redb commit, all interleaved in one run; with `STORE_CHECKPOINT=1`, how long the
//! checkpoint of a nearly full write-ahead log takes. The store lives in a temporary directory on
//! the default temp filesystem; put `TMPDIR` on the disk you care about, since fsync cost is
//! what this measures.

use std::io::{Seek, SeekFrom, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group};
use ssehub::store::redb::{RedbOptions, RedbStore};
use ssehub::store::{Cursor, Store};
use ssehub::update::Update;

/// Appends per measured iteration, split evenly over the appenders.
const APPENDS_PER_ITER: u64 = 512;

fn update(id: String) -> Update {
    Update {
        topics: vec!["https://example.com/chat/42".to_owned()],
        // A typical relay token chunk.
        data: r#"{"choices":[{"index":0,"delta":{"content":" typewriter"}}]}"#.to_owned(),
        id,
        private: false,
        event_type: None,
        retry: None,
        published_at_ms: Update::now_ms(),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn appends(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("store_append");
    // Flat sampling: one fsync-bound iteration can take a second, and linear sampling would
    // run 55 of them per configuration.
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(4));
    group.throughput(Throughput::Elements(APPENDS_PER_ITER));
    let no_wal = RedbOptions {
        wal: false,
        ..RedbOptions::default()
    };
    for (mode, options) in [
        ("wal_group_commit", RedbOptions::default()),
        ("redb_group_commit", no_wal.clone()),
        (
            "redb_txn_per_append",
            RedbOptions {
                max_batch: 1,
                ..no_wal
            },
        ),
    ] {
        for appenders in [1_u64, 16, 256] {
            let dir = tempfile::tempdir().unwrap();
            let store = Arc::new(RedbStore::open(dir.path(), options.clone()).unwrap());
            let next_id = Arc::new(AtomicU64::new(0));
            group.bench_function(BenchmarkId::new(mode, appenders), |b| {
                b.iter_custom(|iters| {
                    rt.block_on(async {
                        let start = Instant::now();
                        for _ in 0..iters {
                            let tasks: Vec<_> = (0..appenders)
                                .map(|_| {
                                    let store = Arc::clone(&store);
                                    let next_id = Arc::clone(&next_id);
                                    tokio::spawn(async move {
                                        for _ in 0..APPENDS_PER_ITER / appenders {
                                            let n = next_id.fetch_add(1, Ordering::Relaxed);
                                            store.append(update(format!("u{n}"))).await.unwrap();
                                        }
                                    })
                                })
                                .collect();
                            for task in tasks {
                                task.await.unwrap();
                            }
                        }
                        start.elapsed()
                    })
                });
            });
            let commits = store.commits();
            let appended = next_id.load(Ordering::Relaxed);
            eprintln!(
                "{mode}/{appenders}: {appended} appends in {commits} commits (mean batch {:.1})",
                appended as f64 / commits.max(1) as f64
            );
        }
    }
    group.finish();
}

fn reads(c: &mut Criterion) {
    const PREFILL: u64 = 20_000;
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(dir.path(), RedbOptions::default()).unwrap();
    rt.block_on(async {
        let all = (0..PREFILL).map(|n| store.append(update(format!("r{n}"))));
        for result in futures_util::future::join_all(all).await {
            result.unwrap();
        }
    });
    let mut group = c.benchmark_group("store_read_after");
    group.sample_size(20);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    for page in [100_usize, 1000] {
        group.throughput(Throughput::Elements(page as u64));
        group.bench_function(BenchmarkId::new("seq_page", page), |b| {
            b.iter(|| {
                rt.block_on(store.read_after(Cursor::Seq(PREFILL / 2), page))
                    .unwrap()
            });
        });
    }
    group.throughput(Throughput::Elements(100));
    group.bench_function("id_lookup_then_page_100", |b| {
        b.iter(|| {
            rt.block_on(store.read_after(Cursor::Id(format!("r{}", PREFILL / 2)), 100))
                .unwrap()
        });
    });
    group.finish();
}

/// Samples per case in the latency report; each case runs in rounds interleaved with the others
/// so that disk and machine noise falls on all of them alike.
const LATENCY_ROUNDS: usize = 10;
const LATENCY_PER_ROUND: usize = 200;

/// A named latency case: each call makes one sample.
type Case = (&'static str, Box<dyn FnMut() -> Duration>);

/// One appender, one append at a time: the ack latency a lone publisher sees, next to what the
/// disk itself costs for a record of the same size. Printed, not measured by criterion, because
/// the question is p50 and p99, not the mean.
fn latency_report() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let record = vec![b'x'; 300];
    let mut cases: Vec<Case> = Vec::new();

    // A raw append that grows the file: fdatasync must also flush the new size.
    let mut grow = std::fs::File::create(dir.path().join("raw-grow")).unwrap();
    cases.push((
        "raw write+fdatasync, growing file",
        Box::new(move || {
            let start = Instant::now();
            grow.write_all(&record).unwrap();
            grow.sync_data().unwrap();
            start.elapsed()
        }),
    ));

    // A raw write into space written once before: no metadata to flush.
    let mut pre = std::fs::File::create(dir.path().join("raw-pre")).unwrap();
    let span = 300 * (LATENCY_ROUNDS * LATENCY_PER_ROUND + 1) as u64;
    pre.write_all(&vec![0; span as usize]).unwrap();
    pre.sync_all().unwrap();
    pre.seek(SeekFrom::Start(0)).unwrap();
    let record = vec![b'x'; 300];
    cases.push((
        "raw write+fdatasync, preallocated file",
        Box::new(move || {
            let start = Instant::now();
            pre.write_all(&record).unwrap();
            pre.sync_data().unwrap();
            start.elapsed()
        }),
    ));

    // redb alone, as the store used it: one insert per durable transaction; the commit's share
    // is accumulated separately.
    let db = redb::Database::create(dir.path().join("raw.redb")).unwrap();
    let table: redb::TableDefinition<'_, u64, &[u8]> = redb::TableDefinition::new("t");
    let commit_time = Arc::new(std::sync::Mutex::new(Vec::new()));
    let commit_share = Arc::clone(&commit_time);
    let mut key = 0_u64;
    let value = vec![b'x'; 300];
    cases.push((
        "redb insert+commit (Immediate)",
        Box::new(move || {
            let start = Instant::now();
            let txn = db.begin_write().unwrap();
            {
                let mut t = txn.open_table(table).unwrap();
                key += 1;
                t.insert(key, value.as_slice()).unwrap();
            }
            let commit = Instant::now();
            txn.commit().unwrap();
            commit_share.lock().unwrap().push(commit.elapsed());
            start.elapsed()
        }),
    ));

    // The commit the store makes after the log's sync: no sync of its own.
    let db = redb::Database::create(dir.path().join("none.redb")).unwrap();
    let mut key = 0_u64;
    let value = vec![b'x'; 300];
    cases.push((
        "redb insert+commit (None)",
        Box::new(move || {
            let start = Instant::now();
            let mut txn = db.begin_write().unwrap();
            txn.set_durability(redb::Durability::None).unwrap();
            {
                let mut t = txn.open_table(table).unwrap();
                key += 1;
                t.insert(key, value.as_slice()).unwrap();
            }
            txn.commit().unwrap();
            start.elapsed()
        }),
    ));

    for (name, wal) in [
        ("store append, durable commit (no WAL)", false),
        ("store append, WAL", true),
    ] {
        let options = RedbOptions {
            wal,
            ..RedbOptions::default()
        };
        let store = RedbStore::open(&dir.path().join(name), options).unwrap();
        let handle = rt.handle().clone();
        let mut n = 0_u64;
        cases.push((
            name,
            Box::new(move || {
                n += 1;
                let update = update(format!("lat{n}"));
                let start = Instant::now();
                handle.block_on(store.append(update)).unwrap();
                start.elapsed()
            }),
        ));
    }

    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); cases.len()];
    for _ in 0..LATENCY_ROUNDS {
        for ((_, case), out) in cases.iter_mut().zip(&mut samples) {
            out.extend((0..LATENCY_PER_ROUND).map(|_| case()));
        }
    }
    // Per mille, so that p99.9 fits.
    let pct = |v: &[Duration], p: usize| v[(v.len() * p / 1000).min(v.len() - 1)];
    let row = |name: &str, v: &mut Vec<Duration>| {
        v.sort();
        println!(
            "{name:<42} p50 {:>8.1?}  p90 {:>8.1?}  p99 {:>8.1?}  p99.9 {:>8.1?}  ({} samples)",
            pct(v, 500),
            pct(v, 900),
            pct(v, 990),
            pct(v, 999),
            v.len()
        );
    };
    for ((name, _), mut v) in cases.iter().zip(samples) {
        row(name, &mut v);
    }
    row("  of which redb commit()", &mut commit_time.lock().unwrap());

    // The hub's load scenario publishes 1,000 updates/s: paced like that, the writer is idle
    // between appends, and with the log its checkpoints (every second) land in those gaps or
    // delay the append that arrives during one. Run one after the other, not interleaved, so
    // each store sees the steady rate for PACED_SECS.
    for (name, wal) in [
        ("store append at 1,000/s, no WAL", false),
        ("store append at 1,000/s, WAL + checkpoints", true),
    ] {
        let options = RedbOptions {
            wal,
            ..RedbOptions::default()
        };
        let store = RedbStore::open(&dir.path().join(name), options).unwrap();
        let mut v = Vec::new();
        let cpu_before = writer_cpu();
        let start = Instant::now();
        for n in 0..PACED_SECS * 1000 {
            let due = start + Duration::from_millis(n);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            let update = update(format!("paced{n}"));
            let begun = Instant::now();
            rt.block_on(store.append(update)).unwrap();
            v.push(begun.elapsed());
        }
        let cpu = writer_cpu() - cpu_before;
        row(name, &mut v);
        println!(
            "  max {:?}, checkpoints {}, writer thread CPU per append {:.1} µs",
            v[v.len() - 1],
            store.checkpoints(),
            cpu.as_secs_f64() * 1e6 / v.len() as f64
        );
    }
}

/// Entries in the log when [`checkpoint_report`] checkpoints: most of the default 4 MiB log.
const FULL_LOG_ENTRIES: u64 = 20_000;

/// How long the checkpoint of a nearly full log holds up the writer: with the in-memory tail it
/// writes every entry since the last checkpoint into redb, besides the durable commit. Timed as
/// `close`, which is that checkpoint and nothing else.
fn checkpoint_report(rt: &tokio::runtime::Runtime, dir: &std::path::Path) {
    for round in 0..3 {
        let options = RedbOptions {
            checkpoint_interval: Duration::from_secs(3600),
            ..RedbOptions::default()
        };
        let store = Arc::new(RedbStore::open(&dir.join(format!("full{round}")), options).unwrap());
        rt.block_on(async {
            let tasks: Vec<_> = (0..64)
                .map(|t| {
                    let store = Arc::clone(&store);
                    tokio::spawn(async move {
                        for n in (t..FULL_LOG_ENTRIES).step_by(64) {
                            store.append(update(format!("full{n}"))).await.unwrap();
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
        });
        assert_eq!(store.checkpoints(), 0, "the log filled up early");
        // The process's CPU, not the writer's: the writer thread exits at the end of `close`.
        let cpu = process_cpu_ticks();
        let start = Instant::now();
        rt.block_on(store.close()).unwrap();
        println!(
            "checkpoint of {FULL_LOG_ENTRIES} entries (close): {:.1?}, process CPU {} ms",
            start.elapsed(),
            (process_cpu_ticks() - cpu) * 10
        );
    }
}

/// User + system CPU of the whole process so far, in clock ticks (10 ms).
fn process_cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    fields
        .get(11)
        .and_then(|f| f.parse::<u64>().ok())
        .unwrap_or(0)
        + fields
            .get(12)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
}

/// CPU time used so far by the store writer threads of this process (the other stores' writers
/// are idle meanwhile), from the scheduler's nanosecond count where the kernel keeps it.
fn writer_cpu() -> Duration {
    let mut total = Duration::ZERO;
    for task in std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        let path = task.path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        // The thread's name, cut to 15 bytes by the kernel.
        if !"ssehub-store-writer".starts_with(comm.trim_end()) || comm.trim_end().is_empty() {
            continue;
        }
        if let Some(ns) = std::fs::read_to_string(path.join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        {
            total += Duration::from_nanos(ns);
        }
    }
    total
}

/// Duration of each paced latency case.
const PACED_SECS: u64 = 5;

criterion_group!(benches, appends, reads);

fn main() {
    // The latency report is a separate mode: criterion's filters do not reach it.
    if std::env::var_os("STORE_LATENCY").is_some() {
        latency_report();
        return;
    }
    if std::env::var_os("STORE_CHECKPOINT").is_some() {
        let dir = tempfile::tempdir().unwrap();
        checkpoint_report(&runtime(), dir.path());
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
