//! The conformance suite against a real `redis-server`, and what only a shared store does:
//! several nodes on one history, a history lost or shortened under a running node, Redis away.

use std::time::Duration;

use tokio::sync::broadcast::Receiver;

use super::test_server::RedisServer;
use super::*;
use crate::store::conformance::{self, update};

/// How long a test waits for something that should happen promptly before failing.
const PATIENCE: Duration = Duration::from_secs(20);

/// One `redis-server` per backend (per test case); a history `name` is a namespace.
struct RedisBackend(RedisServer);

impl conformance::Backend for RedisBackend {
    type Store = RedisStore;
    async fn open(&self, name: &str) -> RedisStore {
        open(&self.0, name).await
    }
}

fn backend() -> RedisBackend {
    RedisBackend(RedisServer::start())
}

crate::store_conformance_tests!(backend());

async fn open(server: &RedisServer, namespace: &str) -> RedisStore {
    let mut options = RedisOptions::new(server.url());
    namespace.clone_into(&mut options.namespace);
    RedisStore::open(options).await.expect("open redis store")
}

async fn append_ids(store: &RedisStore, ids: &[&str]) -> Vec<u64> {
    let mut seqs = Vec::new();
    for id in ids {
        seqs.push(store.append(update(id)).await.expect("append").seq);
    }
    seqs
}

async fn ids_after(store: &RedisStore, after: Cursor) -> (bool, Vec<String>) {
    let replay = store.read_after(after, 1000).await.expect("read");
    let ids = replay.updates.iter().map(|s| s.update.id.clone()).collect();
    (replay.found, ids)
}

/// The next live entry as (seq, id); fails the test after [`PATIENCE`].
async fn next_live(live: &mut Receiver<Stored>) -> (u64, String) {
    let stored = tokio::time::timeout(PATIENCE, live.recv())
        .await
        .expect("no live entry within the patience window")
        .expect("live feed closed");
    (stored.seq, stored.update.id.clone())
}

/// Receives live entries until one has this id; returns its seq.
async fn live_until(live: &mut Receiver<Stored>, id: &str) -> u64 {
    loop {
        let (seq, got) = next_live(live).await;
        if got == id {
            return seq;
        }
    }
}

/// Runs a Lua snippet with the history's keys, as another program (or a damaged Redis) would.
async fn tamper(store: &RedisStore, lua: &str, args: &[&str]) {
    let keys = &store.shared.keys;
    let mut conn = store.shared.conn.clone();
    redis::Script::new(lua)
        .key(&keys.meta)
        .key(&keys.log)
        .key(&keys.ids)
        .arg(args)
        .invoke_async::<Value>(&mut conn)
        .await
        .expect("tamper script");
}

/// Forgets every entry after Redis seq `keep`, as a restart from an AOF that missed the last
/// writes would: log, ids and counter all end at `keep`, the epoch stays.
async fn lose_tail(store: &RedisStore, keep: u64) {
    const LOSE_TAIL: &str = r"
        local kept = redis.call('XRANGE', KEYS[2], '-', ARGV[1] .. '-0')
        for _, e in ipairs(redis.call('XRANGE', KEYS[2], '(' .. ARGV[1] .. '-0', '+')) do
          for i = 1, #e[2], 2 do
            if e[2][i] == 'i' then redis.call('HDEL', KEYS[3], e[2][i + 1]) end
          end
        end
        -- A stream remembers its largest id even after deletes; an AOF replay would not.
        redis.call('DEL', KEYS[2])
        for _, e in ipairs(kept) do redis.call('XADD', KEYS[2], e[1], unpack(e[2])) end
        redis.call('HSET', KEYS[1], 'seq', ARGV[1])
    ";
    tamper(store, LOSE_TAIL, &[&keep.to_string()]).await;
}

/// Two nodes on one history append concurrently: one total order, and each node's feed
/// delivers all of it in that order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_one_order_and_one_feed() {
    let server = RedisServer::start();
    let a = Arc::new(open(&server, "shared").await);
    let b = Arc::new(open(&server, "shared").await);
    let mut live_a = a.subscribe();
    let mut live_b = b.subscribe();
    let mut tasks = Vec::new();
    for (node, store) in [("a", &a), ("b", &b)] {
        for t in 0..4 {
            let store = Arc::clone(store);
            tasks.push(tokio::spawn(async move {
                for i in 0..25 {
                    store
                        .append(update(&format!("{node}{t}-{i}")))
                        .await
                        .unwrap();
                }
            }));
        }
    }
    for task in tasks {
        task.await.unwrap();
    }
    let replay = a.read_after(Cursor::Earliest, 1000).await.unwrap();
    let order: Vec<(u64, String)> = replay
        .updates
        .iter()
        .map(|s| (s.seq, s.update.id.clone()))
        .collect();
    assert_eq!(order.len(), 200);
    assert!(order.iter().map(|(s, _)| *s).eq(1..=200), "gap-free");
    let mut from_a = Vec::new();
    let mut from_b = Vec::new();
    for _ in 0..200 {
        from_a.push(next_live(&mut live_a).await);
        from_b.push(next_live(&mut live_b).await);
    }
    assert_eq!(from_a, order);
    assert_eq!(from_b, order);
    // An id published on one node is a cursor on the other.
    let (_, middle) = &order[99];
    let (found, after) = ids_after(&b, Cursor::Id(middle.clone())).await;
    assert!(found);
    assert_eq!(after.len(), 100);
}

/// After FLUSHALL, ids and positions from the lost history are unknown, and a running node's
/// seqs keep growing, so its live delivery goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flushed_history_makes_old_positions_unknown_and_seqs_keep_growing() {
    let server = RedisServer::start();
    let store = open(&server, "flush").await;
    let mut live = store.subscribe();
    let old = append_ids(&store, &["a", "b", "c"]).await;
    assert_eq!(live_until(&mut live, "c").await, old[2]);
    assert_eq!(server.command(&["FLUSHALL"]), "+OK");
    // Seen by a read before any append: the node learns of the new history from the reply.
    assert_eq!(
        ids_after(&store, Cursor::Id("b".into())).await,
        (false, vec![])
    );
    assert_eq!(
        ids_after(&store, Cursor::Seq(old[1])).await,
        (false, vec![])
    );
    let new = append_ids(&store, &["d", "e"]).await;
    assert!(new[0] > old[2], "{new:?} after {old:?}");
    assert_eq!(live_until(&mut live, "d").await, new[0]);
    assert_eq!(next_live(&mut live).await, (new[1], "e".to_owned()));
    assert_eq!(
        ids_after(&store, Cursor::Earliest).await,
        (true, vec!["d".into(), "e".into()])
    );
    assert_eq!(
        ids_after(&store, Cursor::Seq(old[2])).await,
        (false, vec!["d".into(), "e".into()])
    );
    assert_eq!(
        ids_after(&store, Cursor::Seq(new[0])).await,
        (true, vec!["e".into()])
    );
    let stats = store.stats().await.unwrap();
    assert_eq!((stats.retained, stats.last_seq), (2, new[1]));
}

/// A node that learns of a flush only through its feed (nobody on it appends or reads) still
/// delivers the new history live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_seen_only_by_the_feed_still_delivers_the_new_history() {
    let server = RedisServer::start();
    let watcher = open(&server, "feed-flush").await;
    let mut live = watcher.subscribe();
    let publisher = open(&server, "feed-flush").await;
    append_ids(&publisher, &["a", "b", "c", "d"]).await;
    let last_old = live_until(&mut live, "d").await;
    assert_eq!(server.command(&["FLUSHALL"]), "+OK");
    // Fewer entries than before: the feed's wait for "after seq 4" never wakes for them.
    drop(publisher);
    let publisher = open(&server, "feed-flush").await;
    append_ids(&publisher, &["x", "y"]).await;
    let (seq, id) = next_live(&mut live).await;
    assert_eq!(id, "x");
    assert!(seq > last_old);
    assert_eq!(next_live(&mut live).await.1, "y");
}

/// A history that lost its newest entries (same epoch, as after a restart from an AOF that
/// missed the last writes) is noticed on the next append: the lost positions are unknown, the
/// surviving ones still resume, and new entries are delivered after the old ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shortened_history_is_noticed_and_new_entries_are_delivered() {
    let server = RedisServer::start();
    let store = open(&server, "behind").await;
    let mut live = store.subscribe();
    let seqs = append_ids(&store, &["a", "b", "c", "d", "e"]).await;
    live_until(&mut live, "e").await;
    lose_tail(&store, 3).await;
    let f = store.append(update("f")).await.unwrap().seq;
    assert!(f > seqs[4]);
    assert_eq!(live_until(&mut live, "f").await, f);
    assert!(!ids_after(&store, Cursor::Id("d".into())).await.0);
    assert_eq!(
        ids_after(&store, Cursor::Seq(seqs[1])).await,
        (true, vec!["c".into(), "f".into()])
    );
    assert_eq!(
        ids_after(&store, Cursor::Seq(seqs[4])).await,
        (false, vec!["f".into()])
    );
    // The lost ids can be published again.
    store.append(update("d")).await.unwrap();
}

/// A history that went backwards and grew again past where a node was, by appends from a node
/// that never saw the lost entries, is noticed by the first node's feed: the entries that
/// replaced the ones it delivered are delivered, after them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_tail_is_noticed_by_the_feed() {
    let server = RedisServer::start();
    let first = open(&server, "diverged").await;
    let mut live = first.subscribe();
    let seqs = append_ids(&first, &["a", "b", "c", "d", "e"]).await;
    live_until(&mut live, "e").await;
    lose_tail(&first, 3).await;
    let late = open(&server, "diverged").await;
    append_ids(&late, &["x", "y", "z"]).await;
    for id in ["x", "y", "z"] {
        let (seq, got) = next_live(&mut live).await;
        assert_eq!(got, id);
        assert!(seq > seqs[4]);
    }
}

/// With Redis away, an append fails (it does not hang) and so do the stats, naming Redis (for
/// `/healthz`); once Redis is back (its AOF kept everything), appends work again and the feed,
/// which kept its position, delivers them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_away_fails_appends_then_everything_resumes() {
    let mut server = RedisServer::start_durable();
    let store = open(&server, "away").await;
    let mut live = store.subscribe();
    append_ids(&store, &["before"]).await;
    live_until(&mut live, "before").await;
    server.stop();
    match store.append(update("while-away")).await {
        Err(StoreError::Backend { context, .. }) => {
            assert!(context.contains("redis at 127.0.0.1"), "{context}");
        }
        other => panic!("expected a backend error, got {other:?}"),
    }
    let err = store.stats().await.unwrap_err();
    assert!(err.to_string().contains("redis at 127.0.0.1"), "{err}");
    server.restart();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let after = loop {
        match store.append(update("after")).await {
            Ok(stored) => break stored.seq,
            Err(StoreError::Duplicate { .. }) => panic!("the failed append was stored"),
            Err(err) => {
                assert!(tokio::time::Instant::now() < deadline, "{err}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    assert_eq!(live_until(&mut live, "after").await, after);
    assert!(store.stats().await.unwrap().writable);
    assert_eq!(
        ids_after(&store, Cursor::Earliest).await,
        (true, vec!["before".into(), "after".into()])
    );
}

/// A closed store refuses appends; reads still work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_refuses_appends_and_keeps_reads() {
    let server = RedisServer::start();
    let store = open(&server, "close").await;
    append_ids(&store, &["a"]).await;
    store.close().await.unwrap();
    assert!(matches!(
        store.append(update("b")).await,
        Err(StoreError::Closed)
    ));
    assert_eq!(
        ids_after(&store, Cursor::Earliest).await,
        (true, vec!["a".into()])
    );
    assert!(!store.stats().await.unwrap().writable);
}

/// A bad URL or namespace is refused with a message that says what to write.
#[tokio::test]
async fn bad_urls_and_namespaces_are_refused() {
    let err = RedisStore::open(RedisOptions::new("http://127.0.0.1:1/"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("invalid redis url"), "{err}");
    let mut options = RedisOptions::new("redis://127.0.0.1:1/0");
    options.namespace = "a{b".into();
    let err = RedisStore::open(options).await.unwrap_err();
    assert!(err.to_string().contains("namespace"), "{err}");
}

/// Configurations are logged with `{:?}`: the password in the URL must not be.
#[test]
fn options_debug_hides_the_password() {
    let options = RedisOptions::new("redis://user:hunter2@redis.internal:6379/0");
    let text = format!("{options:?}");
    assert!(!text.contains("hunter2"), "{text}");
    assert!(text.contains("redis.internal"), "{text}");
}

/// Renews `node`'s lease every 50 ms until a renewal is conclusive; fails after [`PATIENCE`].
async fn renew_until_conclusive(store: &RedisStore, node: &str, ttl: Duration) -> Leases {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let leases = store.renew_lease(node, ttl).await.unwrap();
        if leases.conclusive {
            return leases;
        }
        assert!(tokio::time::Instant::now() < deadline, "never conclusive");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// After a break in which nobody renewed (Redis away, or nodes stopped together), or after
/// Redis lost the leases, a missing node proves nothing until a whole time to live passed:
/// otherwise the first node back would take every other live node for gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_lease_is_inconclusive_after_a_break_or_a_flush() {
    let server = RedisServer::start();
    let store = open(&server, "lease-break").await;
    let ttl = Duration::from_millis(400);
    assert!(!store.renew_lease("a", ttl).await.unwrap().conclusive);
    renew_until_conclusive(&store, "a", ttl).await;
    // Nobody renews for longer than the time to live: b's lease and a's ran out meanwhile.
    store.renew_lease("b", ttl).await.unwrap();
    tokio::time::sleep(ttl * 2).await;
    let back = store.renew_lease("a", ttl).await.unwrap();
    assert!(back.lapsed);
    assert_eq!(back.live, ["a"]);
    assert!(!back.conclusive, "b may not have had its turn yet");
    renew_until_conclusive(&store, "a", ttl).await;
    assert_eq!(server.command(&["FLUSHALL"]), "+OK");
    let flushed = store.renew_lease("a", ttl).await.unwrap();
    assert!(flushed.lapsed && !flushed.conclusive, "{flushed:?}");
}
