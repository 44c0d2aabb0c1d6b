//! Appends committed by their own task (`inline`): when that happens, and that it keeps every
//! promise a commit on the writer thread keeps (durable, broadcast, refused cleanly, the idle
//! checkpoint and the tail bound still kept by the writer thread).

use super::tests::{all_ids, crash_copy, log_only, numbered, open_with};
use super::wal::Fault;
use super::*;
use crate::store::conformance::update;

/// A store whose appends are committed by their own task whenever the writer is idle.
fn inline_store(dir: &Path, options: RedbOptions) -> RedbStore {
    let store = open_with(dir, options);
    store.always_inline.store(true, Ordering::Relaxed);
    store
}

/// Waits until the writer thread has taken every request (the wake-up an append committed by its
/// task may send), so that the next append finds the writer idle.
async fn settle(store: &RedbStore) {
    let requests = store.requests.as_ref().unwrap();
    until("queue empty", || {
        requests.capacity() == requests.max_capacity()
    })
    .await;
}

/// Waits, up to a bound that only stops a hang, until `done` holds.
async fn until(what: &str, done: impl Fn() -> bool) {
    for _ in 0..500 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("still not so after 5 s: {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_committed_by_its_task_is_durable_and_broadcast() {
    let dir = tempfile::tempdir().unwrap();
    let store = inline_store(dir.path(), log_only());
    let mut live = store.subscribe();
    let commits = store.commits();
    let stored = store.append(update("a")).await.unwrap();
    assert_eq!(stored.seq, 1);
    assert_eq!(store.inline_commits(), 1);
    assert_eq!(store.commits() - commits, 1);
    assert_eq!(live.recv().await.unwrap().update.id, "a");
    // In the log alone (no checkpoint for an hour): a crash keeps it.
    let crashed = crash_copy(dir.path(), true);
    let reopened = open_with(crashed.path(), log_only());
    assert_eq!(all_ids(&reopened).await, numbered(&["a"]));
}

/// The runtime decides when `always_inline` is off: a current-thread runtime has no other
/// worker to keep running while this one syncs, so its appends go to the writer thread.
#[tokio::test(flavor = "current_thread")]
async fn on_a_current_thread_runtime_the_writer_thread_commits() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with(dir.path(), RedbOptions::default());
    for i in 0..5 {
        store.append(update(&format!("c{i}"))).await.unwrap();
    }
    assert_eq!(store.inline_commits(), 0);
    assert_eq!(all_ids(&store).await.len(), 5);
}

/// ... and on a multi-thread runtime whose other worker is idle, a lone append is committed by
/// its task. Each attempt waits first, so that the other worker has parked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_an_idle_worker_a_lone_append_is_committed_by_its_task() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with(dir.path(), log_only());
    for i in 0..50 {
        tokio::time::sleep(Duration::from_millis(5)).await;
        store.append(update(&format!("m{i}"))).await.unwrap();
        if store.inline_commits() > 0 {
            return;
        }
    }
    panic!("50 lone appends, none committed by its own task");
}

/// The writer thread's idle timer must learn of a log started by an appending task, or the
/// checkpoint would wait for the next request: the log (and a restart's replay) would grow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_idle_checkpoint_follows_an_append_committed_by_its_task() {
    let dir = tempfile::tempdir().unwrap();
    let options = RedbOptions {
        checkpoint_interval: Duration::from_millis(50),
        ..RedbOptions::default()
    };
    let store = inline_store(dir.path(), options);
    // Let the writer thread start waiting with nothing to checkpoint, i.e. without a deadline.
    tokio::time::sleep(Duration::from_millis(100)).await;
    store.append(update("a")).await.unwrap();
    assert_eq!(store.inline_commits(), 1);
    until("checkpointed", || store.checkpoints() >= 1).await;
    assert_eq!(store.tail.len(), 0);
}

/// A tail filled by an appending task is written to redb by the writer thread, without waiting
/// for another request: the tail's memory bound holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tail_filled_by_a_task_goes_to_redb_on_the_writer_thread() {
    let dir = tempfile::tempdir().unwrap();
    let options = RedbOptions {
        tail_bytes: 1,
        ..log_only()
    };
    let store = inline_store(dir.path(), options);
    store.append(update("a")).await.unwrap();
    assert_eq!(store.inline_commits(), 1);
    until("tail written to redb", || store.tail.is_empty()).await;
    // Not a checkpoint: the log still holds it.
    assert_eq!(store.checkpoints(), 0);
    assert_eq!(all_ids(&store).await, numbered(&["a"]));
}

/// The log holds `a`, committed by its task, and `change` is applied to the writer's settings
/// while it waits; returns once it is waiting again.
async fn after_one_append(store: &RedbStore, change: impl FnOnce(&mut Writer)) {
    store.append(update("a")).await.unwrap();
    assert_eq!(store.inline_commits(), 1);
    assert_eq!(store.checkpoints(), 0);
    settle(store).await;
    change(&mut writer::lock(&store.shared));
}

/// A checkpoint is a redb commit of many milliseconds: when the log is full, the writer thread
/// takes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_log_leaves_the_checkpoint_to_the_writer_thread() {
    let dir = tempfile::tempdir().unwrap();
    let store = inline_store(dir.path(), log_only());
    after_one_append(&store, |writer| {
        writer.options.wal_bytes = writer.wal.as_ref().unwrap().used() + 1;
    })
    .await;
    store.append(update("b")).await.unwrap();
    assert_eq!(store.inline_commits(), 1);
    assert_eq!(store.checkpoints(), 1);
    assert_eq!(all_ids(&store).await, numbered(&["a", "b"]));
}

/// ... and when one is due.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_due_checkpoint_is_left_to_the_writer_thread() {
    let dir = tempfile::tempdir().unwrap();
    let store = inline_store(dir.path(), log_only());
    after_one_append(&store, |writer| {
        writer.options.checkpoint_interval = Duration::ZERO;
    })
    .await;
    store.append(update("b")).await.unwrap();
    assert_eq!(store.inline_commits(), 1);
    assert_eq!(store.checkpoints(), 1);
}

/// A full tail waits for the writer thread's redb commit: the next append goes with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_tail_sends_the_next_append_to_the_writer_thread() {
    let dir = tempfile::tempdir().unwrap();
    let store = inline_store(dir.path(), log_only());
    after_one_append(&store, |writer| writer.options.tail_bytes = 1).await;
    store.append(update("b")).await.unwrap();
    assert_eq!(store.inline_commits(), 1);
    until("tail written to redb", || store.tail.is_empty()).await;
}

/// A sync that fails under an appending task fails the store as on the writer thread: the
/// append is refused, the marker goes over its record, recovery runs on the writer thread, and
/// the refused append never comes back, not even after a crash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_refused_under_its_task_never_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let options = RedbOptions {
        recovery_interval: Duration::ZERO,
        ..log_only()
    };
    let store = inline_store(dir.path(), options);
    store.append(update("a")).await.unwrap();
    settle(&store).await;
    writer::lock(&store.shared)
        .wal
        .as_mut()
        .unwrap()
        .inject(Fault::SyncFails);
    assert!(store.append(update("refused")).await.is_err());
    assert_eq!(store.inline_commits(), 2);
    let crashed = crash_copy(dir.path(), true);
    let reopened = open_with(crashed.path(), log_only());
    assert_eq!(all_ids(&reopened).await, numbered(&["a"]));
    drop(reopened);
    // Failed: the next append is the writer thread's, which recovers first.
    store.append(update("b")).await.unwrap();
    assert_eq!(store.inline_commits(), 2);
    assert_eq!(all_ids(&store).await, numbered(&["a", "b"]));
    let crashed = crash_copy(dir.path(), true);
    let reopened = open_with(crashed.path(), log_only());
    assert_eq!(all_ids(&reopened).await, numbered(&["a", "b"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_close_no_task_commits() {
    let dir = tempfile::tempdir().unwrap();
    let store = inline_store(dir.path(), RedbOptions::default());
    store.append(update("a")).await.unwrap();
    store.close().await.unwrap();
    assert!(matches!(
        store.append(update("b")).await,
        Err(StoreError::Closed)
    ));
    assert_eq!(store.inline_commits(), 1);
}

/// Appends racing from many tasks, some committed by themselves and some by the writer thread,
/// get distinct consecutive seqs and are all stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_appends_on_both_paths_get_distinct_seqs() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(inline_store(dir.path(), log_only()));
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let mut seqs = Vec::new();
                for i in 0..50 {
                    seqs.push(
                        store
                            .append(update(&format!("r{t}-{i}")))
                            .await
                            .unwrap()
                            .seq,
                    );
                }
                seqs
            })
        })
        .collect();
    let mut seqs = Vec::new();
    for task in tasks {
        let mine = task.await.unwrap();
        assert!(
            mine.windows(2).all(|w| w[0] < w[1]),
            "one task's appends in order"
        );
        seqs.extend(mine);
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=400).collect::<Vec<u64>>());
    assert!(store.inline_commits() > 0);
    assert!(store.inline_commits() < 400, "the writer thread took some");
    assert_eq!(all_ids(&store).await.len(), 400);
}
