//! The hub's durable history: every acknowledged publish, in one hub-wide order.
//!
//! ```text
//! publish ──append──▶ [writer: batch ─▶ write-ahead log + fdatasync ─▶ in-memory tail] ──▶ ack (200)
//!                                                                              └──▶ broadcast ──▶ hub fan-out (live)
//!                     [writer, at each checkpoint: tail ─▶ redb in one durable commit]
//! subscribe with Last-Event-ID ──read_after──▶ replay (redb merged with the tail), then live from the broadcast
//! ```
//!
//! [`Store`] is the seam between the hub and a backend: [`redb::RedbStore`] (embedded, one node)
//! or [`redis::RedisStore`] (one history shared by several nodes); the trait mentions no
//! backend type so both fit. Each update
//! gets a `seq`, strictly increasing and gap-free across the history, so "what comes after" is a
//! number comparison everywhere: in replay, at the replay/live seam, and after a lagging live
//! receiver resumes from the store.
//!
//! Replay then live without gap or duplicate: call [`Store::subscribe`] *first*, then page through
//! [`Store::read_after`] until [`Replay::more`] is false, remembering the last seq delivered
//! (or [`Replay::head_seq`] when nothing was), and then deliver from the receiver only those
//! entries whose seq is greater. Anything appended between the two calls is in both, and the seq
//! comparison drops the copy.

pub mod redb;
pub mod redis;

mod codec;
#[cfg(test)]
pub(crate) mod conformance;
mod crc;
mod lease;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::update::Update;
pub use lease::Leases;
pub(crate) use lease::LocalLeases;

/// How many encoded bytes one read of a backend holds by default before it stops early (see
/// [`Store::read_after`]): the per-subscriber replay page of the README's memory bound.
pub const DEFAULT_READ_BYTES: usize = 1 << 20;

/// An update with its position in the hub-wide history (strictly increasing, assigned by the store).
#[derive(Clone, Debug)]
pub struct Stored {
    /// Position in the history: starts at 1, each append takes the next number, never reused.
    pub seq: u64,
    /// Shared so that fan-out to many subscribers clones a pointer, not the payload.
    pub update: Arc<Update>,
}

/// Where a replay starts: strictly after this point.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cursor {
    /// From the oldest retained update (Mercure's `Last-Event-ID: earliest`).
    Earliest,
    /// After the update with this id (the client's `Last-Event-ID`).
    Id(String),
    /// After this seq (a live receiver catching up after it lagged).
    Seq(u64),
}

/// The answer of [`Store::read_after`].
#[derive(Clone, Debug)]
pub struct Replay {
    /// False when the cursor does not name a point in the retained history: an unknown
    /// [`Cursor::Id`] (pruned or never existed), or a [`Cursor::Seq`] whose successor was pruned
    /// or that lies beyond the last seq. `updates` then starts at the earliest retained entry, and
    /// the hub must tell the client (Mercure: `Last-Event-ID: earliest`), never silently go live.
    pub found: bool,
    /// Updates strictly after the cursor, oldest first, at most the requested limit.
    pub updates: Vec<Stored>,
    /// Whether more updates remain after the last one returned; read again from its seq.
    pub more: bool,
    /// The last seq in the history when the read was made (0 if nothing was ever appended):
    /// a live receiver subscribed before the read must skip entries up to here.
    pub head_seq: u64,
}

/// How much history to keep. `None` means no limit on that axis; all set means all apply.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Retention {
    /// Keep at most this many of the newest updates.
    pub max_events: Option<u64>,
    /// Drop updates whose `published_at_ms` is older than this.
    pub max_age: Option<Duration>,
    /// A shorter age for one part of the topic space (the relay's answers), so that part
    /// cannot crowd out the rest of the history or fill the disk.
    pub prefix_max_age: Option<PrefixAge>,
}

/// An age limit for the updates whose topics *all* start with `prefix`; an update that also
/// names a topic outside it is kept for that topic's sake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrefixAge {
    /// The topic prefix, e.g. `/v1/streams/`.
    pub prefix: String,
    /// Such updates older than this are removed, wherever they sit in the history.
    pub max_age: Duration,
}

impl PrefixAge {
    /// Whether an update with these topics falls under this limit.
    pub fn covers<'a>(&self, mut topics: impl Iterator<Item = &'a str>) -> bool {
        let mut any = false;
        let all = topics.all(|t| {
            any = true;
            t.starts_with(&self.prefix)
        });
        any && all
    }
}

impl Retention {
    /// Whether this retention keeps an entry of a history whose newest seq is `head_seq`, at
    /// `now_ms`: what a reader must skip although the pruner, which runs only now and then, has
    /// not removed it yet.
    pub fn keeps(&self, head_seq: u64, now_ms: u64) -> impl Fn(&Stored) -> bool + use<> {
        // Seqs are gap-free, so the newest `max_events` entries are those above this one.
        let above_seq = self.max_events.map_or(0, |n| head_seq.saturating_sub(n));
        let since_ms = self.max_age.map_or(0, |age| {
            now_ms.saturating_sub(u64::try_from(age.as_millis()).unwrap_or(u64::MAX))
        });
        move |s| s.seq > above_seq && s.update.published_at_ms >= since_ms
    }
}

/// A snapshot of the store's state for `/metrics` and `/healthz`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreStats {
    /// Number of updates currently retained.
    pub retained: u64,
    /// Seq of the oldest retained update, if any.
    pub first_seq: Option<u64>,
    /// Seq of the newest update ever appended (0 if none), retained or not.
    pub last_seq: u64,
    /// Whether appends can currently be accepted and made durable: false once the store is
    /// closed, or after a failed commit until a later commit succeeds (a backend may probe with
    /// one when asked). `/healthz` answers 503 when false.
    pub writable: bool,
    /// Bytes the history takes in its backend (the embedded store's files on disk), for
    /// `ssehub_store_bytes`; `None` where the backend cannot tell cheaply (Redis).
    pub bytes: Option<u64>,
}

/// Why a store operation failed.
#[non_exhaustive]
#[derive(thiserror::Error, Debug, Clone)]
pub enum StoreError {
    /// An update with this id is already in the retained history.
    #[error("update id {id:?} already exists in history (omit the id to get a generated one)")]
    Duplicate {
        /// The id that was refused.
        id: String,
    },
    /// The update does not fit in one history entry.
    #[error("update {id:?} is too large to store ({bytes} bytes)")]
    TooLarge {
        /// Id of the refused update.
        id: String,
        /// Its encoded size, or the size of the field that overflowed.
        bytes: usize,
    },
    /// The backend failed: I/O, a failed commit, a database that cannot be opened.
    #[error("{context}")]
    Backend {
        /// What the store was doing, e.g. `cannot commit history batch`.
        context: String,
        /// The backend's error; shared so one failed commit can be reported to every waiter.
        #[source]
        source: Arc<dyn std::error::Error + Send + Sync>,
    },
    /// A stored entry cannot be decoded: the history file is damaged or from an unknown version.
    #[error("history entry {seq} is corrupt: {reason}")]
    Corrupt {
        /// Seq of the damaged entry.
        seq: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// The write-ahead log is damaged in the middle: acknowledged updates follow the damage, so
    /// the store refuses to open rather than drop them without a word. The hub's
    /// `--wal-truncate-damaged <offset>` replays what precedes the damage and drops the rest.
    #[error(
        "write-ahead log {} is damaged at byte {offset} ({reason}) and acknowledged updates \
         follow it (a batch from seq {later_seq} at byte {later_offset}); keep a copy of the \
         file, then start once with --wal-truncate-damaged {offset} to keep the updates before \
         the damage and drop those after it",
        path.display()
    )]
    LogDamaged {
        /// The log file.
        path: PathBuf,
        /// Where the damage starts: the first byte that does not continue the log.
        offset: u64,
        /// What is found there.
        reason: String,
        /// Where the next intact batch starts.
        later_offset: u64,
        /// That batch's first seq.
        later_seq: u64,
    },
    /// The history database is damaged beyond what its own repair can fix.
    #[error(
        "history database {} is damaged: {reason}; restore it from a backup, or move it and the \
         write-ahead log aside to start with an empty history",
        path.display()
    )]
    DatabaseDamaged {
        /// The database file.
        path: PathBuf,
        /// What was found wrong with it.
        reason: String,
    },
    /// The store is reopening its files after a write failure; reads fail meanwhile.
    #[error("history store is reopening its files after a write failure (try again shortly)")]
    Reopening,
    /// The store was closed or its writer stopped; no further appends are accepted.
    #[error("history store is closed")]
    Closed,
}

impl StoreError {
    pub(crate) fn backend(
        context: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        StoreError::Backend {
            context: context.into(),
            source: Arc::new(source),
        }
    }
}

/// A durable, ordered history of updates. Object safe: the hub holds `Arc<dyn Store>`.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// Durably appends `update` and assigns it the next seq; returns only once the update is on
    /// stable storage (after fsync), so the hub may acknowledge the publish.
    ///
    /// If the returned future is dropped before it completes, the update may or may not have
    /// been stored.
    ///
    /// # Errors
    /// [`StoreError::Duplicate`] if the id is already in the retained history,
    /// [`StoreError::TooLarge`], [`StoreError::Backend`] when the commit fails (nothing of the
    /// update is stored then), [`StoreError::Closed`] after [`Store::close`].
    async fn append(&self, update: Update) -> Result<Stored, StoreError>;

    /// Appends `updates` in the given order and answers each once it is durable: one result per
    /// update, in the same order. For a producer that has several updates at hand (the relay's
    /// chunks of one upstream read), so that they cost one round trip to the backend, not one
    /// each.
    ///
    /// The first update that fails, for whatever reason, stops the batch: it and every update
    /// after it get its error ([`StoreError::Duplicate`] naming it, say), and none of them is
    /// stored; those before it are answered as usual. So what is stored is always a prefix of
    /// `updates`, and a caller numbering them (the relay) never finds a later one stored
    /// without an earlier one.
    ///
    /// The embedded store ([`redb::RedbStore`]) commits the updates together, with consecutive
    /// seqs that no other append comes between; a failed commit stores none of them. The
    /// default, which the Redis store keeps, appends them one by one in order: other nodes' and
    /// tasks' appends may come between them, and it costs one round trip per update.
    ///
    /// If the returned future is dropped before it completes, any prefix of the updates may
    /// have been stored.
    async fn append_batch(&self, updates: Vec<Update>) -> Vec<Result<Stored, StoreError>> {
        let mut answers = Vec::with_capacity(updates.len());
        let mut updates = updates.into_iter();
        for update in updates.by_ref() {
            let answer = self.append(update).await;
            let failed = answer.is_err();
            answers.push(answer);
            if failed {
                break;
            }
        }
        if let Some(Err(error)) = answers.last() {
            let error = error.clone();
            answers.extend(updates.map(|_| Err(error.clone())));
        }
        answers
    }

    /// Updates strictly after `after`, oldest first, at most `limit`, from one consistent
    /// snapshot. A backend also bounds one read in bytes (its own setting; at least one update
    /// is always returned): it stops early with [`Replay::more`] set, so a reader of large
    /// updates holds about one page of memory whatever `limit` says. For a cursor outside the retained history (see [`Replay::found`]) the replay
    /// starts at the earliest retained update.
    ///
    /// # Errors
    /// [`StoreError::Backend`] on a read failure, [`StoreError::Corrupt`] for a damaged entry.
    async fn read_after(&self, after: Cursor, limit: usize) -> Result<Replay, StoreError>;

    /// The retained update with this id, or `None` when it was pruned or never existed.
    ///
    /// # Errors
    /// [`StoreError::Backend`] on a read failure, [`StoreError::Corrupt`] for a damaged entry.
    async fn get(&self, id: &str) -> Result<Option<Stored>, StoreError>;

    /// Updates appended from now on (by this node or, for a shared backend, any node), in seq
    /// order, each once committed. A shared backend delivers from a feed that trails the
    /// appends, so the receiver may also get entries appended just before the call (their seqs
    /// are lower; the hub skips what it has by seq).
    ///
    /// Backpressure: the channel is bounded; a receiver that falls behind gets
    /// [`broadcast::error::RecvError::Lagged`] and must re-read what it missed with
    /// `read_after(Cursor::Seq(last_seq_it_saw), ..)` before reading the receiver again
    /// (skipping entries it already has by seq). The writer never waits for slow receivers.
    fn subscribe(&self) -> broadcast::Receiver<Stored>;

    /// Removes the oldest updates beyond `retention` (by count, and by age measured against
    /// `published_at_ms` and the system clock) together with their id index entries, so their
    /// ids become unknown cursors and may be published again. Returns how many were removed.
    ///
    /// [`Retention::prefix_max_age`] removes updates from the middle of the history too: a
    /// [`Cursor::Seq`] inside the retained range stays valid (what follows it is still what
    /// follows it), and an id removed this way is an unknown cursor like any pruned one.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the removal cannot be committed, [`StoreError::Closed`].
    async fn prune(&self, retention: &Retention) -> Result<u64, StoreError>;

    /// Number of retained updates, seq range and health, for `/metrics` and `/healthz`.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the store cannot be read.
    async fn stats(&self) -> Result<StoreStats, StoreError>;

    /// Renews `node`'s lease for `ttl` and lists the nodes holding a current one, in one step.
    /// Leases are kept apart from history and timed by the store's own clock, so the nodes
    /// sharing a store agree on who is alive whatever their clocks say (see [`Leases`]).
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the store cannot be reached.
    async fn renew_lease(&self, node: &str, ttl: Duration) -> Result<Leases, StoreError>;

    /// Stops accepting appends once every append already submitted is durable and answered.
    /// Reads keep working. Call it during graceful shutdown; dropping the store does the same,
    /// but blocks the dropping thread while it waits.
    ///
    /// # Errors
    /// [`StoreError::Backend`] if the final commit fails.
    async fn close(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Spawns a task that prunes `store` to `retention` every `period` until `shutdown` is
/// cancelled. The first prune runs at once, so history left over-long by a previous run (or a
/// tightened configuration) is trimmed at startup. Failures are logged and retried next period.
///
/// # Panics
/// If `period` is zero, or when called outside a tokio runtime.
pub fn spawn_pruner(
    store: Arc<dyn Store>,
    retention: Retention,
    period: Duration,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::spawn(async move {
        if retention == Retention::default() {
            return;
        }
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticks.tick() => {}
            }
            match store.prune(&retention).await {
                Ok(0) => {}
                Ok(removed) => tracing::debug!(removed, "pruned history"),
                Err(StoreError::Closed) => return,
                Err(error) => tracing::warn!(error = %error, "cannot prune history"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc;
    use tokio::time::Instant;

    /// Records when `prune` is called; answers `Closed` once `closed_after` calls were made.
    struct PruneRecorder {
        calls: mpsc::UnboundedSender<(Instant, Retention)>,
        closed_after: usize,
        made: std::sync::atomic::AtomicUsize,
    }

    #[async_trait::async_trait]
    impl Store for PruneRecorder {
        async fn append(&self, _: Update) -> Result<Stored, StoreError> {
            Err(StoreError::Closed)
        }
        async fn read_after(&self, _: Cursor, _: usize) -> Result<Replay, StoreError> {
            Err(StoreError::Closed)
        }
        async fn get(&self, _: &str) -> Result<Option<Stored>, StoreError> {
            Err(StoreError::Closed)
        }
        fn subscribe(&self) -> broadcast::Receiver<Stored> {
            broadcast::channel(1).1
        }
        async fn prune(&self, retention: &Retention) -> Result<u64, StoreError> {
            let made = self.made.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let _ = self.calls.send((Instant::now(), retention.clone()));
            if made + 1 >= self.closed_after {
                Err(StoreError::Closed)
            } else {
                Ok(1)
            }
        }
        async fn stats(&self) -> Result<StoreStats, StoreError> {
            Err(StoreError::Closed)
        }
        async fn renew_lease(&self, _: &str, _: Duration) -> Result<Leases, StoreError> {
            Err(StoreError::Closed)
        }
    }

    fn recorder(
        closed_after: usize,
    ) -> (
        Arc<dyn Store>,
        mpsc::UnboundedReceiver<(Instant, Retention)>,
    ) {
        let (calls, rx) = mpsc::unbounded_channel();
        let store = PruneRecorder {
            calls,
            closed_after,
            made: Default::default(),
        };
        (Arc::new(store), rx)
    }

    const KEEP_TEN: Retention = Retention {
        max_events: Some(10),
        max_age: None,
        prefix_max_age: None,
    };

    #[tokio::test(start_paused = true)]
    async fn pruner_runs_at_once_then_every_period_until_cancelled() {
        let (store, mut calls) = recorder(usize::MAX);
        let shutdown = CancellationToken::new();
        let start = Instant::now();
        let period = Duration::from_secs(60);
        let task = spawn_pruner(store, KEEP_TEN, period, shutdown.clone());
        let (first, retention) = calls.recv().await.unwrap();
        assert_eq!((first, retention), (start, KEEP_TEN));
        assert_eq!(calls.recv().await.unwrap().0, start + period);
        assert_eq!(calls.recv().await.unwrap().0, start + 2 * period);
        shutdown.cancel();
        task.await.unwrap();
        while let Ok((at, _)) = calls.try_recv() {
            assert!(at <= start + 3 * period, "pruned after cancellation");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn pruner_stops_when_the_store_closes() {
        let (store, mut calls) = recorder(2);
        let task = spawn_pruner(
            store,
            KEEP_TEN,
            Duration::from_secs(1),
            CancellationToken::new(),
        );
        task.await.unwrap();
        assert_eq!(std::iter::from_fn(|| calls.try_recv().ok()).count(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn pruner_without_limits_never_prunes() {
        let (store, mut calls) = recorder(usize::MAX);
        let task = spawn_pruner(
            store,
            Retention::default(),
            Duration::from_secs(1),
            CancellationToken::new(),
        );
        task.await.unwrap();
        assert!(calls.try_recv().is_err());
    }
}
