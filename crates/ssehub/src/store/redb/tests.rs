use super::prune::PRUNE_CHUNK;
use super::wal::Fault;
use super::*;
use crate::store::codec;
use crate::store::conformance::{self, update};

/// Each backend instance owns a temporary directory; a history `name` is a subdirectory.
struct TempRedb(tempfile::TempDir);

impl conformance::Backend for TempRedb {
    type Store = RedbStore;
    async fn open(&self, name: &str) -> RedbStore {
        RedbStore::open(&self.0.path().join(name), RedbOptions::default()).expect("open")
    }
}

fn temp() -> TempRedb {
    TempRedb(tempfile::tempdir().expect("tempdir"))
}

crate::store_conformance_tests!(temp());

pub(super) fn open_with(dir: &Path, options: RedbOptions) -> RedbStore {
    RedbStore::open(dir, options).expect("open")
}

/// Has the writer take a checkpoint now (the health probe's request), so that everything
/// acknowledged so far is in redb and the tail is empty.
pub(super) async fn checkpoint(store: &RedbStore) {
    store
        .request(|reply| Request::Probe { reply })
        .await
        .unwrap();
    assert_eq!(store.tail.len(), 0);
}

/// Queues an append directly, returning once it is in the writer's queue.
pub(super) async fn submit(
    store: &RedbStore,
    id: &str,
) -> oneshot::Receiver<Result<Stored, StoreError>> {
    let (reply, answer) = oneshot::channel();
    let update = update(id);
    let request = Request::Append { update, reply };
    store
        .requests
        .as_ref()
        .unwrap()
        .send(request)
        .await
        .ok()
        .unwrap();
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_appends_share_one_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with(dir.path(), RedbOptions::default());
    // Holding the gate parks the writer inside its first batch, so the rest of the appends wait
    // in the queue; once released, they must all go in one more batch.
    let blocker = store.gate.lock().await;
    let mut answers = Vec::new();
    for i in 0..100 {
        answers.push(submit(&store, &format!("g{i}")).await);
    }
    drop(blocker);
    for answer in answers {
        answer.await.unwrap().unwrap();
    }
    assert!(store.commits() <= 2, "{} commits", store.commits());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_batch_one_commits_each_append_alone() {
    let dir = tempfile::tempdir().unwrap();
    let options = RedbOptions {
        max_batch: 1,
        ..RedbOptions::default()
    };
    let store = Arc::new(open_with(dir.path(), options));
    let before = store.commits();
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.append(update(&format!("s{i}"))).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(store.commits() - before, 20);
}

#[test]
fn duplicates_inside_one_batch_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = bare_writer(dir.path(), None);
    let batch: Vec<_> = ["twin", "other", "twin"]
        .iter()
        .map(|id| (Arc::new(update(id)), oneshot::channel().0, false))
        .collect();
    let outcomes = writer.write_batch(&batch).unwrap();
    assert!(matches!(outcomes[0], Ok(1)));
    assert!(matches!(outcomes[1], Ok(2)));
    assert!(matches!(&outcomes[2], Err(StoreError::Duplicate { id }) if id == "twin"));
    assert_eq!(writer.last_seq, 2);
}

/// A writer on a new database in `dir`, driven directly by the test instead of a thread.
pub(super) fn bare_writer(dir: &Path, wal: Option<Wal>) -> Writer {
    let opened = recover::open_database(dir, &RedbOptions::default()).unwrap();
    Writer {
        slot: Arc::new(DbSlot::new(opened.db)),
        tail: Arc::default(),
        gate: Arc::default(),
        dir: dir.to_owned(),
        options: RedbOptions {
            max_batch: 16,
            wal_bytes: 1 << 20,
            checkpoint_interval: Duration::from_secs(3600),
            ..RedbOptions::default()
        },
        live: broadcast::channel(4).0,
        writable: Arc::new(AtomicBool::new(true)),
        commits: Arc::default(),
        checkpoints: Arc::default(),
        last_seq: opened.last_seq,
        wal,
        unsaved_since: None,
        failure: None,
        prefix_scanned: None,
        closed: false,
    }
}

pub(super) fn one(id: &str) -> Vec<writer::Pending> {
    vec![(Arc::new(update(id)), oneshot::channel().0, false)]
}

#[test]
fn a_failed_write_refuses_work_until_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = bare_writer(dir.path(), Some(Wal::open(dir.path()).unwrap()));
    writer.write_batch(&one("a")).unwrap();
    assert_eq!(writer.checkpoints.load(Ordering::Relaxed), 0);
    writer.wal.as_mut().unwrap().break_writes();
    assert!(writer.write_batch(&one("b")).is_err());
    assert!(!writer.writable.load(Ordering::Acquire));
    // Still broken: the retry fails and is scheduled again.
    assert!(writer.recover().is_err());
    assert!(writer.failure.is_some());
    writer.wal.as_mut().unwrap().mend_writes();
    writer.recover().unwrap();
    assert!(writer.writable.load(Ordering::Acquire));
    // Recovery replayed the log and started a new generation.
    assert_eq!(writer.checkpoints.load(Ordering::Relaxed), 1);
    let outcomes = writer.write_batch(&one("c")).unwrap();
    assert!(
        matches!(outcomes[0], Ok(2)),
        "the failed append took no seq"
    );
}

/// Regression (issue 15): a publish refused on a full disk came back after a restart, because
/// the refused batch's records were in the log (its `write` cut short with a valid header, or its
/// `fdatasync` failed after the `write`) and recovery replayed them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_refused_after_reaching_the_log_never_comes_back() {
    for fault in [Fault::SyncFails, Fault::WriteStopsAfter(40)] {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = bare_writer(dir.path(), Some(Wal::open(dir.path()).unwrap()));
        writer.write_batch(&one("a")).unwrap();
        writer.wal.as_mut().unwrap().inject(fault);
        assert!(writer.write_batch(&one("refused")).is_err());
        // A crash now, before any recovery.
        let crashed = crash_copy(dir.path(), true);
        let reopened = open_with(crashed.path(), log_only());
        assert_eq!(all_ids(&reopened).await, numbered(&["a"]), "{fault:?}");
        drop(reopened);
        // Recovery in place, then a restart.
        writer.recover().unwrap();
        writer.write_batch(&one("b")).unwrap();
        let crashed = crash_copy(dir.path(), true);
        let reopened = open_with(crashed.path(), log_only());
        assert_eq!(all_ids(&reopened).await, numbered(&["a", "b"]), "{fault:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lagging_receiver_resumes_from_store_by_seq() {
    let dir = tempfile::tempdir().unwrap();
    let options = RedbOptions {
        broadcast_capacity: 2,
        ..RedbOptions::default()
    };
    let store = open_with(dir.path(), options);
    let mut live = store.subscribe();
    for i in 0..5 {
        store.append(update(&format!("l{i}"))).await.unwrap();
    }
    let mut delivered: Vec<u64> = Vec::new();
    loop {
        let last = delivered.last().copied().unwrap_or(0);
        match live.try_recv() {
            // Entries the re-read already delivered are skipped by seq.
            Ok(stored) if stored.seq <= last => {}
            Ok(stored) => delivered.push(stored.seq),
            Err(broadcast::error::TryRecvError::Lagged(_)) => {
                // The documented recovery: re-read from the store after the last seq seen.
                let replay = store.read_after(Cursor::Seq(last), 100).await.unwrap();
                assert!(replay.found);
                delivered.extend(replay.updates.iter().map(|s| s.seq));
            }
            Err(_) => break,
        }
    }
    assert_eq!(delivered, [1, 2, 3, 4, 5]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_flushes_submitted_appends_then_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with(dir.path(), RedbOptions::default());
    // Park the writer so that all appends and then the close are queued, in that order.
    let blocker = store.gate.lock().await;
    let mut answers = Vec::new();
    for i in 0..50 {
        answers.push(submit(&store, &format!("c{i}")).await);
    }
    let (reply, closed) = oneshot::channel();
    let close = Request::Close { reply };
    store
        .requests
        .as_ref()
        .unwrap()
        .send(close)
        .await
        .ok()
        .unwrap();
    drop(blocker);
    closed.await.unwrap();
    for answer in answers {
        answer.await.unwrap().unwrap();
    }
    assert!(matches!(
        store.append(update("late")).await,
        Err(StoreError::Closed)
    ));
    let stats = store.stats().await.unwrap();
    assert!(!stats.writable);
    assert_eq!(stats.retained, 50);
    // Closing a closed store is fine.
    store.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_commits_appends_still_queued() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with(dir.path(), RedbOptions::default());
    let blocker = store.gate.lock().await;
    let mut answers = Vec::new();
    for i in 0..20 {
        answers.push(submit(&store, &format!("q{i}")).await);
    }
    drop(blocker);
    // Nobody awaits the answers: the drop alone must make the queued appends durable.
    drop(store);
    for answer in answers {
        answer.await.unwrap().unwrap();
    }
    let store = open_with(dir.path(), RedbOptions::default());
    let replay = store.read_after(Cursor::Earliest, 100).await.unwrap();
    assert_eq!(replay.updates.len(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_answers_once_the_writer_is_done() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open_with(dir.path(), RedbOptions::default()));
    let appended = store.append(update("before")).await.unwrap();
    store.close().await.unwrap();
    assert!(store.requests.as_ref().unwrap().is_closed());
    let replay = store.read_after(Cursor::Earliest, 10).await.unwrap();
    assert_eq!(replay.updates[0].seq, appended.seq);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_probes_a_store_marked_unwritable() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with(dir.path(), RedbOptions::default());
    store.append(update("x")).await.unwrap();
    // As after a failed commit: stats must check with a real commit, not repeat the flag.
    store.writable.store(false, Ordering::Release);
    let commits = store.commits();
    let stats = store.stats().await.unwrap();
    assert!(stats.writable);
    assert_eq!(stats.last_seq, 1);
    assert_eq!(store.append(update("y")).await.unwrap().seq, 2);
    assert_eq!(
        store.commits(),
        commits + 1,
        "the probe itself is not counted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_open_of_same_directory_is_refused_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let _store = open_with(dir.path(), RedbOptions::default());
    let err = RedbStore::open(dir.path(), RedbOptions::default()).unwrap_err();
    assert!(err.to_string().contains("already open"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_entry_is_an_error_on_read_and_pruned_without_panic() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with(dir.path(), RedbOptions::default());
    store.append(update("damaged")).await.unwrap();
    store.append(update("good")).await.unwrap();
    // Into redb first: the damage is in redb's file, not in the in-memory tail.
    checkpoint(&store).await;
    {
        let txn = store.slot.get().unwrap().begin_write().unwrap();
        txn.open_table(UPDATES)
            .unwrap()
            .insert(1, &[9u8, 9, 9][..])
            .unwrap();
        txn.commit().unwrap();
    }
    match store.read_after(Cursor::Earliest, 10).await {
        Err(StoreError::Corrupt { seq: 1, reason }) => {
            assert_eq!(reason, "unknown entry format version");
        }
        other => panic!("expected corruption, got {other:?}"),
    }
    // Only an age limit, which the damaged entry's unknown age cannot satisfy: it must still
    // go, or it would block pruning (and every replay from before it) for good.
    let day = Retention {
        max_events: None,
        max_age: Some(std::time::Duration::from_secs(86_400)),
        ..Retention::default()
    };
    assert_eq!(store.prune(&day).await.unwrap(), 1);
    let replay = store.read_after(Cursor::Earliest, 10).await.unwrap();
    assert_eq!(replay.updates[0].update.id, "good");
}

/// Options under which nothing but a full log or close checkpoints during a test.
pub(super) fn log_only() -> RedbOptions {
    RedbOptions {
        checkpoint_interval: Duration::from_secs(3600),
        ..RedbOptions::default()
    }
}

/// The files of a running store as a `kill -9` would leave them: what the process wrote is
/// in the page cache, what it only held in memory is gone. Leaves out the log unless `wal`.
pub(super) fn crash_copy(dir: &Path, wal: bool) -> tempfile::TempDir {
    let copy = tempfile::tempdir().unwrap();
    std::fs::copy(dir.join(FILE_NAME), copy.path().join(FILE_NAME)).unwrap();
    if wal {
        std::fs::copy(dir.join(wal::FILE_NAME), copy.path().join(wal::FILE_NAME)).unwrap();
    }
    copy
}

pub(super) async fn all_ids(store: &RedbStore) -> Vec<(u64, String)> {
    let replay = store.read_after(Cursor::Earliest, 1000).await.unwrap();
    assert!(!replay.more);
    replay
        .updates
        .iter()
        .map(|s| (s.seq, s.update.id.clone()))
        .collect()
}

pub(super) fn numbered(ids: &[&str]) -> Vec<(u64, String)> {
    (1..).zip(ids.iter().map(|id| (*id).to_owned())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_only_in_the_log_are_replayed_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with(dir.path(), log_only());
    for id in ["a", "b", "c"] {
        store.append(update(id)).await.unwrap();
    }
    // Without the log, the crashed files hold none of them: redb alone never made them
    // durable, so the log is what keeps them.
    let without = crash_copy(dir.path(), false);
    let reopened = open_with(without.path(), log_only());
    assert!(all_ids(&reopened).await.is_empty());

    let with = crash_copy(dir.path(), true);
    let reopened = open_with(with.path(), log_only());
    assert_eq!(all_ids(&reopened).await, numbered(&["a", "b", "c"]));
    // The id index was replayed too: cursors and duplicate detection work.
    let replay = reopened
        .read_after(Cursor::Id("b".into()), 10)
        .await
        .unwrap();
    assert!(replay.found);
    assert_eq!(replay.head_seq, 3);
    assert!(matches!(
        reopened.append(update("b")).await,
        Err(StoreError::Duplicate { .. })
    ));
    assert_eq!(reopened.append(update("d")).await.unwrap().seq, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_or_corrupt_last_record_is_dropped_and_earlier_ones_kept() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with(dir.path(), log_only());
    for id in ["a", "b", "c"] {
        store.append(update(id)).await.unwrap();
    }
    let end = usize::try_from(wal::recover(dir.path(), 0).unwrap().end).unwrap();
    // A write cut short (the tail of the last record never reached the disk), and a record
    // damaged in place.
    for damage in [
        |bytes: &mut [u8], end: usize| bytes[end - 4..end].fill(0),
        |bytes: &mut [u8], end: usize| bytes[end - 1] ^= 0x40,
    ] {
        let copy = crash_copy(dir.path(), true);
        let path = copy.path().join(wal::FILE_NAME);
        let mut bytes = std::fs::read(&path).unwrap();
        damage(&mut bytes, end);
        std::fs::write(&path, bytes).unwrap();
        let reopened = open_with(copy.path(), log_only());
        assert_eq!(all_ids(&reopened).await, numbered(&["a", "b"]));
        assert_eq!(reopened.append(update("c2")).await.unwrap().seq, 3);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopening_a_replayed_history_twice_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with(dir.path(), log_only());
    for id in ["a", "b", "c"] {
        store.append(update(id)).await.unwrap();
    }
    let copy = crash_copy(dir.path(), true);
    for _ in 0..2 {
        let reopened = open_with(copy.path(), log_only());
        assert_eq!(all_ids(&reopened).await, numbered(&["a", "b", "c"]));
        let stats = reopened.stats().await.unwrap();
        assert_eq!((stats.retained, stats.last_seq), (3, 3));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_that_outlived_its_checkpoint_is_not_replayed_again() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with(dir.path(), log_only());
    for id in ["a", "b", "c"] {
        store.append(update(id)).await.unwrap();
    }
    let log = std::fs::read(dir.path().join(wal::FILE_NAME)).unwrap();
    // Closing checkpoints; putting the log back afterwards is a crash between a checkpoint
    // and the log starting over.
    drop(store);
    std::fs::write(dir.path().join(wal::FILE_NAME), log).unwrap();
    let reopened = open_with(dir.path(), log_only());
    assert_eq!(all_ids(&reopened).await, numbered(&["a", "b", "c"]));
    assert_eq!(reopened.append(update("d")).await.unwrap().seq, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_that_does_not_continue_the_history_is_refused() {
    // An empty history and a log starting at seq 2: storing it would leave a gap at 1.
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(dir.path()).unwrap();
    let bytes = codec::encode(&update("x"), 2).unwrap();
    wal.append([(2, bytes.as_slice())]).unwrap();
    let err = RedbStore::open(dir.path(), log_only()).unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt { seq: 2, reason } if reason.contains("resumes at seq 2")),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_log_makes_the_next_batch_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let options = RedbOptions {
        wal_bytes: 1,
        ..log_only()
    };
    let store = open_with(dir.path(), options);
    // The first batch goes to the empty log whatever its size; the second does not fit and
    // is committed durably together with the first; the third starts the log over.
    for id in ["a", "b", "c"] {
        store.append(update(id)).await.unwrap();
    }
    let without = crash_copy(dir.path(), false);
    let reopened = open_with(without.path(), log_only());
    assert_eq!(all_ids(&reopened).await, numbered(&["a", "b"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_log_every_batch_is_a_durable_commit() {
    let dir = tempfile::tempdir().unwrap();
    let options = RedbOptions {
        wal: false,
        ..log_only()
    };
    let store = open_with(dir.path(), options);
    for id in ["a", "b"] {
        store.append(update(id)).await.unwrap();
    }
    assert!(!dir.path().join(wal::FILE_NAME).exists());
    let without = crash_copy(dir.path(), false);
    let reopened = open_with(without.path(), log_only());
    assert_eq!(all_ids(&reopened).await, numbered(&["a", "b"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_writer_checkpoints_once_the_interval_is_over() {
    let dir = tempfile::tempdir().unwrap();
    let options = RedbOptions {
        checkpoint_interval: Duration::ZERO,
        ..RedbOptions::default()
    };
    let store = open_with(dir.path(), options);
    store.append(update("a")).await.unwrap();
    // No further request comes: only the writer's timer can take the checkpoint. The
    // timeout only keeps a broken timer from hanging the test run.
    let taken = async {
        while store.checkpoints() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), taken)
        .await
        .expect("no checkpoint while idle");
    let without = crash_copy(dir.path(), false);
    let reopened = open_with(without.path(), log_only());
    assert_eq!(all_ids(&reopened).await, numbered(&["a"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prune_is_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with(dir.path(), log_only());
    for id in ["a", "b", "c"] {
        store.append(update(id)).await.unwrap();
    }
    let keep = Retention {
        max_events: Some(2),
        max_age: None,
        ..Retention::default()
    };
    assert_eq!(store.prune(&keep).await.unwrap(), 1);
    // The prune is durable in redb, and with it everything before it.
    let without = crash_copy(dir.path(), false);
    let reopened = open_with(without.path(), log_only());
    assert_eq!(all_ids(&reopened).await, numbered(&["a", "b", "c"])[1..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_prune_runs_in_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with(dir.path(), RedbOptions::default());
    let total = PRUNE_CHUNK * 2 + 10;
    let updates: Vec<_> = (0..total).map(|i| update(&format!("p{i}"))).collect();
    let appends = updates.into_iter().map(|u| store.append(u));
    for result in futures_util::future::join_all(appends).await {
        result.unwrap();
    }
    let commits = store.commits();
    let keep = Retention {
        max_events: Some(5),
        max_age: None,
        ..Retention::default()
    };
    assert_eq!(store.prune(&keep).await.unwrap(), total - 5);
    assert_eq!(store.commits() - commits, 3, "one commit per chunk");
    let stats = store.stats().await.unwrap();
    assert_eq!((stats.retained, stats.first_seq), (5, Some(total - 4)));
}

/// Issue 15.1: a replay page of 512 large updates was held whole for a stuck reader.
#[tokio::test]
async fn a_read_stops_at_its_byte_bound_and_says_more() {
    let dir = tempfile::tempdir().unwrap();
    let options = RedbOptions {
        read_bytes: 10_000,
        ..RedbOptions::default()
    };
    let store = open_with(dir.path(), options);
    for i in 0..10 {
        let mut u = update(&format!("big{i}"));
        u.data = "x".repeat(4_000);
        store.append(u).await.unwrap();
    }
    let page = store.read_after(Cursor::Earliest, 512).await.unwrap();
    // Three 4 kB entries pass 10 kB; the read stops there instead of taking all ten.
    assert_eq!(page.updates.len(), 3);
    assert!(page.more);
    // A single entry larger than the bound is still returned, alone.
    let tiny = RedbOptions {
        read_bytes: 1,
        ..RedbOptions::default()
    };
    store.close().await.unwrap();
    drop(store);
    let store = open_with(dir.path(), tiny);
    let page = store.read_after(Cursor::Earliest, 512).await.unwrap();
    assert_eq!(page.updates.len(), 1);
    assert!(page.more);
    let last = store.read_after(Cursor::Seq(9), 512).await.unwrap();
    assert_eq!((last.updates.len(), last.more), (1, false));
}

/// Regression (issue 15): a damaged entry in `history.redb` was served altered, since redb does
/// not verify its pages on ordinary reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_entry_is_corrupt_naming_its_seq_not_altered_data() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with(dir.path(), RedbOptions::default());
    store.append(update("a")).await.unwrap();
    store.append(update("b")).await.unwrap();
    let mut flipped = codec::encode(&update("a"), 1).unwrap();
    *flipped.last_mut().unwrap() ^= 0x01;
    let moved = codec::encode(&update("b"), 2).unwrap();
    checkpoint(&store).await;
    {
        let txn = store.slot.get().unwrap().begin_write().unwrap();
        let mut updates = txn.open_table(UPDATES).unwrap();
        updates.insert(1, flipped.as_slice()).unwrap();
        // As if a damaged key made entry 2 appear under seq 3.
        updates.insert(3, moved.as_slice()).unwrap();
        drop(updates);
        txn.commit().unwrap();
    }
    match store.read_after(Cursor::Earliest, 10).await {
        Err(StoreError::Corrupt { seq: 1, reason }) => assert_eq!(reason, "checksum mismatch"),
        other => panic!("expected entry 1 to be corrupt, got {other:?}"),
    }
    match store.read_after(Cursor::Seq(2), 10).await {
        Err(StoreError::Corrupt { seq: 3, reason }) => assert_eq!(reason, "checksum mismatch"),
        other => panic!("expected entry 3 to be corrupt, got {other:?}"),
    }
}

/// A log of three single-append batches with the middle one damaged, and what it held.
async fn log_damaged_in_the_middle() -> (tempfile::TempDir, u64) {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with(dir.path(), log_only());
    store.append(update("a")).await.unwrap();
    let second = wal::recover(dir.path(), 0).unwrap().end;
    for id in ["b", "c"] {
        store.append(update(id)).await.unwrap();
    }
    let copy = crash_copy(dir.path(), true);
    let path = copy.path().join(wal::FILE_NAME);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[usize::try_from(second).unwrap() + 30] ^= 0x08;
    std::fs::write(&path, bytes).unwrap();
    (copy, second)
}

/// Regression (issue 15): one flipped byte in the middle of the log silently dropped the
/// acknowledged updates after it, logged at INFO as "normal after a crash".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_log_with_acknowledged_records_after_it_stops_the_open() {
    let (copy, second) = log_damaged_in_the_middle().await;
    let err = RedbStore::open(copy.path(), log_only()).unwrap_err();
    match &err {
        StoreError::LogDamaged {
            path,
            offset,
            later_seq: 3,
            ..
        } => {
            assert_eq!(*offset, second);
            assert_eq!(path, &copy.path().join(wal::FILE_NAME));
        }
        other => panic!("expected a damaged log, got {other:?}"),
    }
    let message = err.to_string();
    assert!(message.contains(&format!("at byte {second}")), "{message}");
    assert!(
        message.contains(&format!("--wal-truncate-damaged {second}")),
        "{message}"
    );
    // Naming another offset does not drop anything.
    let elsewhere = RedbOptions {
        truncate_damaged_log_at: Some(second + 1),
        ..log_only()
    };
    assert!(matches!(
        RedbStore::open(copy.path(), elsewhere),
        Err(StoreError::LogDamaged { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncating_a_damaged_log_keeps_what_precedes_it_and_moves_it_aside() {
    let (copy, second) = log_damaged_in_the_middle().await;
    let truncate = RedbOptions {
        truncate_damaged_log_at: Some(second),
        ..log_only()
    };
    let store = open_with(copy.path(), truncate);
    assert_eq!(all_ids(&store).await, numbered(&["a"]));
    assert_eq!(store.append(update("d")).await.unwrap().seq, 2);
    assert!(copy.path().join("wal.damaged").exists());
    drop(store);
    // Without the option, the next start finds nothing wrong.
    let store = open_with(copy.path(), log_only());
    assert_eq!(all_ids(&store).await, numbered(&["a", "d"]));
}
