//! The dispatcher's catch-up after its feed overflowed, against a store whose reads fail for a
//! while (Redis away at that moment).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::hub::{Filter, Hub, HubOptions, Metrics, SubscribeRequest};
use crate::store::redb::RedbStore;
use crate::store::{Cursor, Leases, Replay, Retention, Store, StoreError, StoreStats, Stored};
use crate::topic::Selector;
use crate::update::Update;

/// A real store whose live feed the test drives (capacity 1, so it overflows at once) and whose
/// next `failing` reads fail.
struct FlakyStore {
    inner: RedbStore,
    live: broadcast::Sender<Stored>,
    failing: AtomicUsize,
}

#[async_trait::async_trait]
impl Store for FlakyStore {
    async fn append(&self, update: Update) -> Result<Stored, StoreError> {
        self.inner.append(update).await
    }
    async fn read_after(&self, after: Cursor, limit: usize) -> Result<Replay, StoreError> {
        let failing = self.failing.load(Ordering::SeqCst);
        if failing > 0 {
            self.failing.store(failing - 1, Ordering::SeqCst);
            return Err(StoreError::Closed);
        }
        self.inner.read_after(after, limit).await
    }
    async fn get(&self, id: &str) -> Result<Option<Stored>, StoreError> {
        self.inner.get(id).await
    }
    fn subscribe(&self) -> broadcast::Receiver<Stored> {
        self.live.subscribe()
    }
    async fn prune(&self, retention: &Retention) -> Result<u64, StoreError> {
        self.inner.prune(retention).await
    }
    async fn stats(&self) -> Result<StoreStats, StoreError> {
        self.inner.stats().await
    }
    async fn renew_lease(&self, node: &str, ttl: Duration) -> Result<Leases, StoreError> {
        self.inner.renew_lease(node, ttl).await
    }
}

fn update(n: usize) -> Update {
    Update {
        id: format!("u{n}"),
        topics: vec!["/t".into()],
        data: format!("{n}"),
        private: false,
        event_type: None,
        retry: None,
        published_at_ms: Update::now_ms(),
    }
}

/// Regression: a catch-up read that failed was given up, so the updates the dispatcher had
/// missed never reached live subscribers (found by the cluster fault tests' review).
#[tokio::test]
async fn a_failed_catch_up_read_is_retried_and_nothing_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let (live, _) = broadcast::channel(1);
    let store = Arc::new(FlakyStore {
        inner: RedbStore::open(dir.path(), Default::default()).unwrap(),
        live: live.clone(),
        failing: AtomicUsize::new(0),
    });
    let hub = Hub::start(
        store.clone(),
        HubOptions::default(),
        Arc::new(Metrics::default()),
        CancellationToken::new(),
        &TaskTracker::new(),
    )
    .await
    .unwrap();
    let topic = Arc::new(Selector::Exact("/t".into()));
    let mut stream = hub
        .subscribe(SubscribeRequest {
            filter: Filter::new(vec![("/t".into(), topic)], Vec::new()),
            last_event_id: None,
            expires_at: None,
            topics: Vec::new(),
        })
        .await
        .unwrap()
        .stream;
    // Three appends, announced on a feed that holds one: the dispatcher lags by two, and its
    // first two reads of history fail.
    store.failing.store(2, Ordering::SeqCst);
    let mut appended = Vec::new();
    for n in 1..=3 {
        appended.push(store.inner.append(update(n)).await.unwrap());
    }
    // Sent with no await between them: the dispatcher cannot take one before the next.
    for stored in appended {
        live.send(stored).unwrap();
    }
    let mut got = String::new();
    while !got.contains("data: 3\n") {
        let chunk = tokio::time::timeout(Duration::from_secs(10), stream.next_chunk())
            .await
            .expect("the missed updates never came")
            .expect("the stream ended");
        got.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    let ids: Vec<&str> = got.lines().filter_map(|l| l.strip_prefix("id: ")).collect();
    assert_eq!(ids, ["u1", "u2", "u3"]);
    assert_eq!(
        store.failing.load(Ordering::SeqCst),
        0,
        "both failures were met"
    );
}
