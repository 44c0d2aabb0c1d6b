//! What only the embedded store promises of [`Store::append_batch`]: its updates commit together,
//! with consecutive seqs that no other append comes between.

use futures_util::FutureExt;

use super::tests::{bare_writer, open_with, submit};
use super::*;
use crate::store::conformance::update;

fn updates(prefix: &str, n: usize) -> Vec<Update> {
    (0..n).map(|i| update(&format!("{prefix}{i}"))).collect()
}

/// The default `append_batch` (one append after the other) lets appends queued meanwhile come
/// between the batch's updates; the embedded store's must not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_queued_during_a_batch_never_come_between_its_updates() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with(dir.path(), RedbOptions::default());
    // Park the writer, so that the batch and the other appends wait in the queue.
    let blocker = store.gate.lock().await;
    let batch = store.append_batch(updates("b", 5));
    let mut batch = std::pin::pin!(batch);
    // One poll sends the batch (an append-by-append batch would have sent its first update).
    assert!((&mut batch).now_or_never().is_none());
    let mut others = Vec::new();
    for i in 0..5 {
        others.push(submit(&store, &format!("o{i}")).await);
    }
    drop(blocker);
    let seqs: Vec<u64> = batch.await.into_iter().map(|a| a.unwrap().seq).collect();
    for other in others {
        other.await.unwrap().unwrap();
    }
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    let replay = store.read_after(Cursor::Earliest, 100).await.unwrap();
    let ids: Vec<_> = replay
        .updates
        .iter()
        .map(|s| s.update.id.as_str())
        .collect();
    let start = ids.iter().position(|id| *id == "b0").unwrap();
    assert_eq!(ids[start..start + 5], ["b0", "b1", "b2", "b3", "b4"]);
}

/// A batch larger than `max_batch` and `max_batch_bytes` is one commit all the same, so that a
/// failed commit stores none of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_beyond_the_batch_limits_is_one_commit() {
    let dir = tempfile::tempdir().unwrap();
    let options = RedbOptions {
        max_batch: 2,
        max_batch_bytes: 10,
        ..RedbOptions::default()
    };
    let store = open_with(dir.path(), options);
    let before = store.commits();
    let answers = store.append_batch(updates("x", 7)).await;
    assert_eq!(answers.len(), 7);
    assert!(answers.iter().all(Result::is_ok));
    assert_eq!(store.commits() - before, 1);
}

/// After close, every update of a batch is answered `Closed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_after_close_is_refused_whole() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with(dir.path(), RedbOptions::default());
    store.close().await.unwrap();
    let answers = store.append_batch(updates("z", 3)).await;
    assert_eq!(answers.len(), 3);
    assert!(
        answers.iter().all(|a| matches!(a, Err(StoreError::Closed))),
        "{answers:?}"
    );
}

/// A refusal stops only the batch append it is part of: an append queued after it in the same
/// writer batch (alone or another batch append) is stored as usual.
#[test]
fn a_refusal_stops_its_own_batch_append_and_no_other_append() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = bare_writer(dir.path(), None);
    let batch: Vec<writer::Pending> = [
        ("x", false),
        ("g0", false),
        ("x", true),
        ("g2", true),
        ("y", false),
        ("h0", false),
        ("h1", true),
    ]
    .into_iter()
    .map(|(id, chained)| (Arc::new(update(id)), oneshot::channel().0, chained))
    .collect();
    let outcomes = writer.write_batch(&batch).unwrap();
    let refused = |k: usize| matches!(&outcomes[k], Err(StoreError::Duplicate { id }) if id == "x");
    assert!(matches!(outcomes[..2], [Ok(1), Ok(2)]), "{outcomes:?}");
    assert!(refused(2) && refused(3), "{outcomes:?}");
    assert!(
        matches!(outcomes[4..], [Ok(3), Ok(4), Ok(5)]),
        "{outcomes:?}"
    );
}
