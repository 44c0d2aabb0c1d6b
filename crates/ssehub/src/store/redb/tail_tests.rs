//! The in-memory tail (see `tail` and `read`): reads merge it with redb, duplicates are found in
//! it, prunes and restarts see its entries, a failed batch never enters it.

use std::sync::atomic::AtomicU64;

use super::tests::{
    all_ids, bare_writer, checkpoint, crash_copy, log_only, numbered, one, open_with,
};
use super::wal::Fault;
use super::*;
use crate::store::conformance::update;

/// Options under which a checkpoint comes every dozen or so appends (the log is that small) and
/// the tail goes to redb without a sync every few in between, so that reads keep racing both.
fn tiny_log() -> RedbOptions {
    RedbOptions {
        wal_bytes: 2048,
        tail_bytes: 400,
        ..log_only()
    }
}

/// Reads pages of `limit` from the start and returns every seq, asserting order.
async fn all_seqs(store: &RedbStore, limit: usize) -> Vec<u64> {
    let mut seqs: Vec<u64> = Vec::new();
    let mut cursor = Cursor::Earliest;
    loop {
        let page = store.read_after(cursor, limit).await.unwrap();
        assert!(page.found);
        seqs.extend(page.updates.iter().map(|s| s.seq));
        if !page.more {
            return seqs;
        }
        cursor = Cursor::Seq(*seqs.last().expect("more, but an empty page"));
    }
}

/// Every acknowledged entry is read exactly once whichever side of a checkpoint the read
/// falls on: the tail is emptied only after the commit that holds its entries, and an entry
/// in both is taken once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_racing_checkpoints_see_every_acknowledged_entry_once() {
    const APPENDS: u64 = 600;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open_with(dir.path(), tiny_log()));
    let acked = Arc::new(AtomicU64::new(0));
    let writer = {
        let (store, acked) = (Arc::clone(&store), Arc::clone(&acked));
        tokio::spawn(async move {
            for i in 0..APPENDS {
                let seq = store.append(update(&format!("r{i}"))).await.unwrap().seq;
                acked.store(seq, Ordering::Release);
            }
        })
    };
    let mut rounds = 0;
    loop {
        let before = acked.load(Ordering::Acquire);
        let seqs = all_seqs(&store, 7).await;
        let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
        assert_eq!(seqs, expected, "a gap or a duplicate");
        assert!(
            seqs.len() as u64 >= before,
            "an acknowledged entry is missing"
        );
        let stats = store.stats().await.unwrap();
        assert!(stats.last_seq >= before);
        assert_eq!(
            stats.retained, stats.last_seq,
            "counted twice or not at all"
        );
        if before > 0 {
            let id = format!("r{}", before - 1);
            assert_eq!(store.get(&id).await.unwrap().map(|s| s.seq), Some(before));
            let after = store.read_after(Cursor::Id(id), 1).await.unwrap();
            assert!(after.found);
        }
        rounds += 1;
        if before == APPENDS {
            break;
        }
    }
    writer.await.unwrap();
    assert!(rounds > 1);
    assert!(
        store.checkpoints() > 10,
        "{} checkpoints",
        store.checkpoints()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_merge_redb_and_the_tail() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with(dir.path(), log_only());
    for id in ["a", "b"] {
        store.append(update(id)).await.unwrap();
    }
    checkpoint(&store).await;
    for id in ["c", "d"] {
        store.append(update(id)).await.unwrap();
    }
    assert_eq!(store.tail.len(), 2, "c and d only in the tail");
    let stats = store.stats().await.unwrap();
    assert_eq!(
        (stats.retained, stats.first_seq, stats.last_seq),
        (4, Some(1), 4)
    );
    let ids = |replay: &Replay| -> Vec<String> {
        replay.updates.iter().map(|s| s.update.id.clone()).collect()
    };
    let after_b = store.read_after(Cursor::Id("b".into()), 10).await.unwrap();
    assert!(after_b.found && !after_b.more);
    assert_eq!(
        (ids(&after_b), after_b.head_seq),
        (vec!["c".into(), "d".into()], 4)
    );
    let after_c = store.read_after(Cursor::Id("c".into()), 10).await.unwrap();
    assert!(after_c.found);
    assert_eq!(ids(&after_c), ["d"]);
    let page = store.read_after(Cursor::Seq(1), 2).await.unwrap();
    assert!(page.more);
    assert_eq!(ids(&page), ["b", "c"]);
    let last = store.read_after(Cursor::Seq(4), 2).await.unwrap();
    assert!(last.found && last.updates.is_empty() && !last.more);
    let beyond = store.read_after(Cursor::Seq(9), 10).await.unwrap();
    assert!(!beyond.found);
    assert_eq!(ids(&beyond), ["a", "b", "c", "d"]);
    assert_eq!(store.get("a").await.unwrap().unwrap().seq, 1);
    assert_eq!(store.get("d").await.unwrap().unwrap().seq, 4);
    assert!(store.get("e").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_of_an_entry_in_the_tail_or_in_redb_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with(dir.path(), log_only());
    store.append(update("a")).await.unwrap();
    assert_eq!(store.tail.len(), 1);
    assert!(matches!(
        store.append(update("a")).await,
        Err(StoreError::Duplicate { id }) if id == "a"
    ));
    checkpoint(&store).await;
    assert!(matches!(
        store.append(update("a")).await,
        Err(StoreError::Duplicate { id }) if id == "a"
    ));
    assert_eq!(store.append(update("b")).await.unwrap().seq, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prune_sees_entries_only_in_the_tail() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with(dir.path(), log_only());
    for id in ["a", "b", "c"] {
        store.append(update(id)).await.unwrap();
    }
    assert_eq!(store.tail.len(), 3);
    let keep_one = Retention {
        max_events: Some(1),
        ..Retention::default()
    };
    assert_eq!(store.prune(&keep_one).await.unwrap(), 2);
    assert_eq!(store.tail.len(), 0);
    assert_eq!(all_ids(&store).await, numbered(&["a", "b", "c"])[2..]);
    let stats = store.stats().await.unwrap();
    assert_eq!(
        (stats.retained, stats.first_seq, stats.last_seq),
        (1, Some(3), 3)
    );
    // The pruned ids are free again; the kept one is not.
    assert_eq!(store.append(update("a")).await.unwrap().seq, 4);
    assert!(store.append(update("c")).await.is_err());
}

/// `kill -9` with entries only in the tail: neither redb nor anything in memory survives, the
/// log does, and the reopen replays it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_only_in_the_tail_survive_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with(dir.path(), log_only());
    store.append(update("a")).await.unwrap();
    checkpoint(&store).await;
    for id in ["b", "c"] {
        store.append(update(id)).await.unwrap();
    }
    assert_eq!(store.tail.len(), 2);
    let without = crash_copy(dir.path(), false);
    assert_eq!(
        all_ids(&open_with(without.path(), log_only())).await,
        numbered(&["a"])
    );
    let with = crash_copy(dir.path(), true);
    let reopened = open_with(with.path(), log_only());
    assert_eq!(all_ids(&reopened).await, numbered(&["a", "b", "c"]));
    assert_eq!(reopened.tail.len(), 0, "replayed into redb on open");
}

/// A batch refused after reaching the log never enters the tail; the acknowledged ones stay
/// readable while the writer is failed and reach redb when it recovers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_batch_never_enters_the_tail() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = bare_writer(dir.path(), Some(Wal::open(dir.path()).unwrap()));
    writer.write_batch(&one("a")).unwrap();
    writer.wal.as_mut().unwrap().inject(Fault::SyncFails);
    assert!(writer.write_batch(&one("refused")).is_err());
    assert_eq!(writer.tail.len(), 1);
    let read = |writer: &Writer| {
        let db = writer.slot.get().unwrap();
        let replay = read::read_after(&db, &writer.tail, &Cursor::Earliest, 10, 1 << 20).unwrap();
        let ids: Vec<String> = replay.updates.iter().map(|s| s.update.id.clone()).collect();
        ids
    };
    assert_eq!(read(&writer), ["a"]);
    writer.recover().unwrap();
    assert_eq!(writer.tail.len(), 0);
    assert_eq!(read(&writer), ["a"]);
    assert!(matches!(writer.write_batch(&one("b")).unwrap()[0], Ok(2)));
    assert_eq!(read(&writer), ["a", "b"]);
}

/// Past [`RedbOptions::tail_bytes`] the tail goes to redb without a sync between checkpoints:
/// it stays small, reads and duplicate checks find its entries in redb, and a crash still
/// recovers them from the log alone (redb returns to its last durable commit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_tail_goes_to_redb_between_checkpoints_and_the_log_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let options = RedbOptions {
        tail_bytes: 1,
        ..log_only()
    };
    let store = open_with(dir.path(), options);
    for id in ["a", "b", "c", "d"] {
        store.append(update(id)).await.unwrap();
    }
    // The writer applies a batch right after answering it, before it takes the next request:
    // only the last one may still be in the tail.
    assert!(
        store.tail.len() <= 1,
        "{} entries in the tail",
        store.tail.len()
    );
    assert_eq!(store.checkpoints(), 0);
    assert_eq!(all_ids(&store).await, numbered(&["a", "b", "c", "d"]));
    assert!(matches!(
        store.append(update("b")).await,
        Err(StoreError::Duplicate { .. })
    ));
    let without = crash_copy(dir.path(), false);
    assert!(
        all_ids(&open_with(without.path(), log_only()))
            .await
            .is_empty()
    );
    let with = crash_copy(dir.path(), true);
    let reopened = open_with(with.path(), log_only());
    assert_eq!(all_ids(&reopened).await, numbered(&["a", "b", "c", "d"]));
}
