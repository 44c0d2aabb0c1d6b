//! The behaviour every [`Store`] backend must show, written once and run against each backend
//! with [`conformance_tests!`](crate::store_conformance_tests).
//!
//! A backend provides a [`Backend`]: `open(name)` returns a store on the storage called `name`;
//! different names are independent histories, the same name reopens the same one (after the
//! previous store was dropped). Each case uses its own names, so cases can run in parallel.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::{Cursor, Retention, Store, StoreError};
use crate::update::Update;

/// How the suite reaches a backend.
pub(crate) trait Backend: Send + Sync + 'static {
    /// The store under test.
    type Store: Store;
    /// Opens the history called `name` (see the module doc).
    fn open(&self, name: &str) -> impl Future<Output = Self::Store> + Send;
}

/// An update with a recognisable id and payload, published now.
pub(crate) fn update(id: &str) -> Update {
    Update {
        id: id.to_owned(),
        topics: vec![format!("https://example.com/{id}"), "/alt".to_owned()],
        data: format!("payload of {id}\nsecond line"),
        private: id.len() % 2 == 0,
        event_type: Some("note".to_owned()),
        retry: None,
        published_at_ms: Update::now_ms(),
    }
}

async fn append_all(store: &impl Store, ids: &[&str]) -> Vec<u64> {
    let mut seqs = Vec::new();
    for id in ids {
        seqs.push(store.append(update(id)).await.expect("append").seq);
    }
    seqs
}

async fn ids_after(store: &impl Store, after: Cursor) -> (bool, Vec<String>) {
    let replay = store.read_after(after, 1000).await.expect("read");
    assert!(!replay.more);
    let ids = replay.updates.iter().map(|s| s.update.id.clone()).collect();
    (replay.found, ids)
}

/// Appends come back from `Earliest` in append order with increasing seqs and intact content.
pub(crate) async fn append_then_read_in_order<B: Backend>(b: &B) {
    let store = b.open("order").await;
    let seqs = append_all(&store, &["a", "b", "c", "d"]).await;
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let replay = store.read_after(Cursor::Earliest, 100).await.unwrap();
    assert!(replay.found);
    assert!(!replay.more);
    assert_eq!(replay.head_seq, seqs[3]);
    let got: Vec<_> = replay.updates.iter().map(|s| s.seq).collect();
    assert_eq!(got, seqs);
    for stored in &replay.updates {
        let mut expected = update(&stored.update.id);
        expected.published_at_ms = stored.update.published_at_ms;
        assert_eq!(*stored.update, expected);
    }
}

/// A batch append stores its updates in the given order with consecutive seqs and answers each;
/// the first refused one (a duplicate id, of history or of the batch itself) stops it: it and
/// all after it get its error, none of them is stored, and no seq is taken. What it
/// acknowledged is there after a reopen.
pub(crate) async fn append_batch_in_order_stopping_at_a_refusal<B: Backend>(b: &B) {
    let store = b.open("batch").await;
    assert!(store.append_batch(Vec::new()).await.is_empty());
    let first = store.append(update("a")).await.unwrap();
    let answers = store
        .append_batch(vec![update("b"), update("c"), update("d")])
        .await;
    let seqs: Vec<_> = answers.iter().map(|a| a.as_ref().unwrap().seq).collect();
    assert_eq!(seqs, [first.seq + 1, first.seq + 2, first.seq + 3]);
    let ids: Vec<_> = answers
        .iter()
        .map(|a| a.as_ref().unwrap().update.id.as_str())
        .collect();
    assert_eq!(ids, ["b", "c", "d"]);
    for (batch, refused) in [(["e", "a", "f"], "a"), (["f", "h", "h"], "h")] {
        let answers = store.append_batch(batch.map(update).to_vec()).await;
        assert_eq!(answers.len(), 3);
        let at = batch.iter().rposition(|id| *id == refused).unwrap();
        for (k, answer) in answers.iter().enumerate() {
            match answer {
                Ok(stored) if k < at => assert_eq!(stored.update.id, batch[k]),
                Err(StoreError::Duplicate { id }) if k >= at => assert_eq!(id, refused),
                other => panic!("{batch:?}: unexpected answer {k}: {other:?}"),
            }
        }
    }
    // Stored: "e" of the first, "f" and the first "h" of the second.
    let next = store.append(update("g")).await.unwrap();
    assert_eq!(
        next.seq,
        first.seq + 7,
        "a refused update must not take a seq"
    );
    drop(store);
    let store = b.open("batch").await;
    let got: Vec<_> = ids_after(&store, Cursor::Earliest).await.1;
    assert_eq!(got, ["a", "b", "c", "d", "e", "f", "h", "g"]);
}

/// An empty history reads as empty, with a head of 0, and every cursor at 0 is in history.
pub(crate) async fn empty_history<B: Backend>(b: &B) {
    let store = b.open("empty").await;
    let replay = store.read_after(Cursor::Earliest, 10).await.unwrap();
    assert!(replay.found && replay.updates.is_empty() && !replay.more);
    assert_eq!(replay.head_seq, 0);
    assert!(store.read_after(Cursor::Seq(0), 10).await.unwrap().found);
    let stats = store.stats().await.unwrap();
    assert_eq!(
        (stats.retained, stats.first_seq, stats.last_seq),
        (0, None, 0)
    );
    assert!(stats.writable);
}

/// Reads after an id or a seq start strictly after it.
pub(crate) async fn read_after_id_and_seq<B: Backend>(b: &B) {
    let store = b.open("cursor").await;
    let seqs = append_all(&store, &["a", "b", "c", "d"]).await;
    assert_eq!(
        ids_after(&store, Cursor::Id("b".into())).await,
        (true, vec!["c".into(), "d".into()])
    );
    assert_eq!(
        ids_after(&store, Cursor::Seq(seqs[0])).await,
        (true, vec!["b".into(), "c".into(), "d".into()])
    );
    assert_eq!(
        ids_after(&store, Cursor::Id("d".into())).await,
        (true, vec![])
    );
    assert_eq!(
        ids_after(&store, Cursor::Seq(seqs[3])).await,
        (true, vec![])
    );
}

/// An unknown id is reported (`found = false`) and replays all retained history.
pub(crate) async fn unknown_id_replays_from_earliest<B: Backend>(b: &B) {
    let store = b.open("unknown").await;
    let seqs = append_all(&store, &["a", "b"]).await;
    assert_eq!(
        ids_after(&store, Cursor::Id("nope".into())).await,
        (false, vec!["a".into(), "b".into()])
    );
    // A seq beyond the head belongs to another history (e.g. a wiped store).
    assert!(
        !store
            .read_after(Cursor::Seq(seqs[1] + 1), 10)
            .await
            .unwrap()
            .found
    );
}

/// A second update with an id already in history is refused and takes no seq.
pub(crate) async fn duplicate_id_is_refused<B: Backend>(b: &B) {
    let store = b.open("duplicate").await;
    let first = store.append(update("same")).await.unwrap();
    match store.append(update("same")).await {
        Err(StoreError::Duplicate { id }) => assert_eq!(id, "same"),
        other => panic!("expected a duplicate error, got {other:?}"),
    }
    let next = store.append(update("other")).await.unwrap();
    assert_eq!(
        next.seq,
        first.seq + 1,
        "a refused append must not consume a seq"
    );
    assert_eq!(
        ids_after(&store, Cursor::Earliest).await,
        (true, vec!["same".into(), "other".into()])
    );
}

/// `limit` caps a read and `more` says whether to read on from the last seq.
pub(crate) async fn limit_paginates<B: Backend>(b: &B) {
    let store = b.open("pages").await;
    let names: Vec<String> = (0..10).map(|i| format!("u{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    append_all(&store, &refs).await;
    let mut cursor = Cursor::Earliest;
    let mut pages = Vec::new();
    let mut seen = Vec::new();
    loop {
        let replay = store.read_after(cursor, 3).await.unwrap();
        pages.push(replay.updates.len());
        seen.extend(replay.updates.iter().map(|s| s.update.id.clone()));
        let Some(last) = replay.updates.last() else {
            break;
        };
        cursor = Cursor::Seq(last.seq);
        if !replay.more {
            break;
        }
    }
    assert_eq!(pages, [3, 3, 3, 1]);
    assert_eq!(seen, names);
    let none = store.read_after(Cursor::Earliest, 0).await.unwrap();
    assert!(none.updates.is_empty() && none.more);
}

/// Pruning by count keeps the newest entries, forgets the ids of the removed ones and never
/// reuses their seqs.
pub(crate) async fn prune_by_count<B: Backend>(b: &B) {
    let store = b.open("count").await;
    let names: Vec<String> = (0..10).map(|i| format!("u{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let seqs = append_all(&store, &refs).await;
    let keep = Retention {
        max_events: Some(4),
        max_age: None,
        ..Retention::default()
    };
    assert_eq!(store.prune(&keep).await.unwrap(), 6);
    assert_eq!(store.prune(&keep).await.unwrap(), 0);
    assert_eq!(ids_after(&store, Cursor::Earliest).await.1, &names[6..]);
    assert_eq!(
        ids_after(&store, Cursor::Id("u2".into())).await,
        (false, names[6..].to_vec())
    );
    // The cursor just before the oldest retained entry lost nothing; one earlier did.
    assert!(
        store
            .read_after(Cursor::Seq(seqs[5]), 10)
            .await
            .unwrap()
            .found
    );
    assert!(
        !store
            .read_after(Cursor::Seq(seqs[4]), 10)
            .await
            .unwrap()
            .found
    );
    let stats = store.stats().await.unwrap();
    assert_eq!(
        (stats.retained, stats.first_seq, stats.last_seq),
        (4, Some(seqs[6]), seqs[9])
    );
    // A pruned id is no longer in history, so it may be published again.
    assert_eq!(store.append(update("u0")).await.unwrap().seq, seqs[9] + 1);
    assert_eq!(store.prune(&Retention::default()).await.unwrap(), 0);
}

/// Pruning by age removes entries published before now minus the maximum age.
pub(crate) async fn prune_by_age<B: Backend>(b: &B) {
    let store = b.open("age").await;
    let hour_ago = Update::now_ms() - 3_600_000;
    for (id, at) in [
        ("old1", hour_ago - 5),
        ("old2", hour_ago),
        ("new", Update::now_ms()),
    ] {
        let mut u = update(id);
        u.published_at_ms = at;
        store.append(u).await.unwrap();
    }
    let half_hour = Retention {
        max_events: None,
        max_age: Some(Duration::from_secs(1800)),
        ..Retention::default()
    };
    assert_eq!(store.prune(&half_hour).await.unwrap(), 2);
    assert_eq!(ids_after(&store, Cursor::Earliest).await.1, ["new"]);
    // Both limits together: whichever removes more wins.
    append_all(&store, &["n2", "n3"]).await;
    let both = Retention {
        max_events: Some(1),
        max_age: Some(Duration::from_secs(1800)),
        ..Retention::default()
    };
    assert_eq!(store.prune(&both).await.unwrap(), 2);
    assert_eq!(ids_after(&store, Cursor::Earliest).await.1, ["n3"]);
}

/// `get` finds a retained update by id, and nothing once it is pruned.
pub(crate) async fn get_by_id<B: Backend>(b: &B) {
    let store = b.open("get").await;
    let seqs = append_all(&store, &["a", "b"]).await;
    let got = store.get("a").await.unwrap().expect("a is retained");
    assert_eq!(
        (got.seq, got.update.id.as_str(), got.update.data.as_str()),
        (seqs[0], "a", update("a").data.as_str())
    );
    assert!(store.get("nope").await.unwrap().is_none());
    let keep_one = Retention {
        max_events: Some(1),
        ..Retention::default()
    };
    store.prune(&keep_one).await.unwrap();
    assert!(store.get("a").await.unwrap().is_none());
    assert_eq!(store.get("b").await.unwrap().unwrap().seq, seqs[1]);
}

/// A shorter age for a topic prefix removes old updates under it from anywhere in the history,
/// keeps everything else (and updates that also name a topic outside the prefix), and leaves
/// seq cursors inside the retained range valid.
pub(crate) async fn prune_by_topic_prefix_age<B: Backend>(b: &B) {
    let store = b.open("prefix").await;
    let now = Update::now_ms();
    let hour_ago = now - 3_600_000;
    let entry = |id: &str, topics: &[&str], at: u64| Update {
        topics: topics.iter().map(|t| (*t).to_owned()).collect(),
        published_at_ms: at,
        ..update(id)
    };
    let mut seqs = Vec::new();
    for u in [
        entry("m1", &["/chat"], hour_ago - 10),
        entry("r1", &["/v1/streams/a"], hour_ago - 9),
        entry("m2", &["/chat"], hour_ago - 8),
        entry("both", &["/v1/streams/a", "/chat"], hour_ago - 7),
        entry(
            "r2",
            &["/v1/streams/b", "/v1/streams/b/started"],
            hour_ago - 6,
        ),
        entry("r3", &["/v1/streams/c"], now - 600_000),
        entry("m3", &["/chat"], now - 300_000),
        entry("r-new", &["/v1/streams/d"], now),
    ] {
        seqs.push(store.append(u).await.unwrap().seq);
    }
    let relay = |max_age| Retention {
        prefix_max_age: Some(super::PrefixAge {
            prefix: "/v1/streams/".into(),
            max_age,
        }),
        ..Retention::default()
    };
    let half_hour = relay(Duration::from_secs(1800));
    assert_eq!(store.prune(&half_hour).await.unwrap(), 2);
    assert_eq!(store.prune(&half_hour).await.unwrap(), 0);
    let kept = ["m1", "m2", "both", "r3", "m3", "r-new"];
    assert_eq!(ids_after(&store, Cursor::Earliest).await.1, kept);
    assert!(store.get("r1").await.unwrap().is_none());
    // A seq cursor at a removed entry still means "what follows it".
    assert_eq!(
        ids_after(&store, Cursor::Seq(seqs[1])).await,
        (true, kept[1..].iter().map(|s| (*s).to_owned()).collect())
    );
    // As time passes (here: a shorter age), the next prune picks up where this one stopped.
    assert_eq!(
        store.prune(&relay(Duration::from_secs(60))).await.unwrap(),
        1
    );
    assert_eq!(
        ids_after(&store, Cursor::Earliest).await.1,
        ["m1", "m2", "both", "m3", "r-new"]
    );
}

/// A receiver subscribed before appends sees each of them once, in seq order. (A shared
/// store's feed may still be delivering what was appended just before `subscribe`: those
/// entries come first, with lower seqs, and are skipped here as the hub skips them.)
pub(crate) async fn subscribe_sees_new_appends_in_order<B: Backend>(b: &B) {
    let store = b.open("live").await;
    let before = append_all(&store, &["before"]).await[0];
    let mut live = store.subscribe();
    let seqs = append_all(&store, &["a", "b", "c"]).await;
    for (seq, id) in seqs.iter().zip(["a", "b", "c"]) {
        let got = loop {
            let got = live.recv().await.unwrap();
            if got.seq > before {
                break got;
            }
        };
        assert_eq!((got.seq, got.update.id.as_str()), (*seq, id));
    }
    assert!(matches!(
        live.try_recv(),
        Err(tokio::sync::broadcast::error::TryRecvError::Empty)
    ));
}

/// Many concurrent appenders are all acknowledged with distinct seqs, increasing per
/// appender, and the history holds exactly them, gap-free, in seq order.
pub(crate) async fn concurrent_appends_are_all_durable_and_ordered<B: Backend>(b: &B) {
    const TASKS: usize = 32;
    const EACH: usize = 25;
    let store = Arc::new(b.open("concurrent").await);
    let mut live = store.subscribe();
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for i in 0..EACH {
                seqs.push(
                    store
                        .append(update(&format!("t{t}-{i}")))
                        .await
                        .unwrap()
                        .seq,
                );
            }
            seqs
        }));
    }
    let mut all = HashSet::new();
    for task in tasks {
        let seqs = task.await.unwrap();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
        all.extend(seqs);
    }
    assert_eq!(all.len(), TASKS * EACH);
    let replay = store.read_after(Cursor::Earliest, 10_000).await.unwrap();
    let got: Vec<u64> = replay.updates.iter().map(|s| s.seq).collect();
    let expected: Vec<u64> = (1..=(TASKS * EACH) as u64).collect();
    assert_eq!(got, expected);
    for seq in expected {
        assert_eq!(live.recv().await.unwrap().seq, seq, "live order");
    }
}

/// Dropping a store and opening the same history again loses nothing, not even the seq
/// counter when everything was pruned.
pub(crate) async fn reopen_keeps_everything<B: Backend>(b: &B) {
    let store = b.open("reopen").await;
    let seqs = append_all(&store, &["a", "b", "c"]).await;
    let before = store.read_after(Cursor::Earliest, 10).await.unwrap();
    drop(store);
    let store = b.open("reopen").await;
    let after = store.read_after(Cursor::Earliest, 10).await.unwrap();
    let pairs = |r: &super::Replay| {
        r.updates
            .iter()
            .map(|s| (s.seq, (*s.update).clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(pairs(&before), pairs(&after));
    assert!(matches!(
        store.append(update("a")).await,
        Err(StoreError::Duplicate { .. })
    ));
    let all_gone = Retention {
        max_events: Some(0),
        max_age: None,
        ..Retention::default()
    };
    assert_eq!(store.prune(&all_gone).await.unwrap(), 3);
    drop(store);
    let store = b.open("reopen").await;
    assert_eq!(store.append(update("d")).await.unwrap().seq, seqs[2] + 1);
}

/// A lease is current while its node renews it and ends once the node stops; whoever renews
/// sees the others, and that a node stopped, conclusively, once renewals went on long enough.
pub(crate) async fn leases_show_which_nodes_renew<B: Backend>(b: &B) {
    let store = b.open("leases").await;
    let sorted = |mut live: Vec<String>| {
        live.sort();
        live
    };
    let ttl = Duration::from_secs(1);
    let first = store.renew_lease("a", ttl).await.unwrap();
    assert!(first.lapsed, "a held no lease before");
    assert_eq!(first.live, ["a"]);
    let with_b = store.renew_lease("b", ttl).await.unwrap();
    assert_eq!(sorted(with_b.live), ["a", "b"]);
    // b stops renewing; a goes on, well within half its time to live.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let seen = store.renew_lease("a", ttl).await.unwrap();
        assert!(!seen.lapsed, "a renewed in time");
        assert!(seen.live.iter().any(|n| n == "a"));
        if seen.conclusive && seen.live == ["a"] {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "b's lease never ended conclusively: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let back = store.renew_lease("b", ttl).await.unwrap();
    assert!(back.lapsed, "b's lease had run out");
    assert_eq!(sorted(back.live), ["a", "b"]);
}

/// Expands to one `#[tokio::test]` per conformance case, for the backend built by `$make`.
#[macro_export]
#[doc(hidden)]
macro_rules! store_conformance_tests {
    ($make:expr) => {
        $crate::store_conformance_tests!(@cases $make;
            append_then_read_in_order,
            append_batch_in_order_stopping_at_a_refusal,
            empty_history,
            read_after_id_and_seq,
            unknown_id_replays_from_earliest,
            duplicate_id_is_refused,
            limit_paginates,
            prune_by_count,
            prune_by_age,
            get_by_id,
            prune_by_topic_prefix_age,
            subscribe_sees_new_appends_in_order,
            concurrent_appends_are_all_durable_and_ordered,
            reopen_keeps_everything,
            leases_show_which_nodes_renew,
        );
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let backend = $make;
                $crate::store::conformance::$case(&backend).await;
            }
        )*
    };
}
