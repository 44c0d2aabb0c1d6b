//! History store throughput: durable appends per second with 1, 16 and 256 concurrent
//! appenders, group commit against one transaction (one fsync) per append, and replay reads.
//!
//! Run with `cargo bench -p ssehub --bench store`. The store lives in a temporary directory on
//! the default temp filesystem; put `TMPDIR` on the disk you care about, since fsync cost is
//! what this measures.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
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
    for (mode, max_batch) in [
        ("group_commit", RedbOptions::default().max_batch),
        ("txn_per_append", 1),
    ] {
        for appenders in [1_u64, 16, 256] {
            let dir = tempfile::tempdir().unwrap();
            let options = RedbOptions {
                max_batch,
                ..RedbOptions::default()
            };
            let store = Arc::new(RedbStore::open(dir.path(), options).unwrap());
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

criterion_group!(benches, appends, reads);
criterion_main!(benches);
