//! The embedded backend: one redb file (`history.redb`) in the data directory.
//!
//! Writes go through a single writer thread that practises group commit: it takes every append
//! waiting in its queue (up to [`RedbOptions::max_batch`]) and makes them durable together, then
//! answers each waiter and broadcasts the new entries. Under load, batches grow by themselves, so
//! the sync cost is shared by every concurrent publisher while a lone publisher still waits for
//! only one. Pruning runs on the same thread in bounded chunks between batches, so trimming a
//! large backlog never stalls publishers for long and both tables always change together.
//!
//! # Durability: a write-ahead log in front of redb
//!
//! A durable redb commit costs noticeably more than a bare `fdatasync` of the same bytes, so a
//! batch is made durable in the write-ahead log instead (see `wal`):
//!
//! 1. the batch is inserted into an open write transaction (duplicate ids are refused here, so
//!    the log holds only entries that will be stored),
//! 2. its entries are appended to the log with one `write` and one `fdatasync`,
//! 3. the transaction is committed with [`Durability::None`] (no sync: redb keeps the previous
//!    durable state intact on disk and falls back to it after a crash),
//! 4. only then are the appends acknowledged and broadcast, so a read from redb includes every
//!    entry that was ever broadcast, and every entry read or broadcast is durable in the log.
//!
//! Every so often ([`RedbOptions::checkpoint_interval`], a full log, a prune, close) a commit is
//! made with [`Durability::Immediate`] instead: the *checkpoint*, after which everything so far is
//! durable in redb itself and the log starts over. On open, the log's records with a seq beyond
//! redb's last durable one are replayed and checkpointed before anything else happens.
//!
//! Why an acknowledged append survives `kill -9` and power loss: it was acknowledged after the
//! `fdatasync` of its log record returned, so the record is on stable storage; the log is only
//! reused after a durable redb commit that contains it; and after a crash redb reopens at its last
//! durable commit, from which the log's records continue without a gap. A record torn by the
//! crash belongs to a batch that was never acknowledged and ends the replay (`wal` explains why
//! nothing acknowledged can follow it). With [`RedbOptions::wal`] off, every batch is a durable
//! redb commit instead, the behaviour before the log existed, kept as the benchmark baseline.
//!
//! Reads run on tokio's blocking pool in their own read transactions; redb's MVCC lets them
//! proceed concurrently with the writer and gives each read one consistent snapshot.
//!
//! Tables: `updates` (seq -> encoded update, see `codec`), `ids` (id -> seq, for
//! `Last-Event-ID` lookups and duplicate detection) and `meta` (`last_seq`, so seqs are never
//! reused even when pruning empties the history).

use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use redb::{
    Database, DatabaseError, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata,
    StorageError, TableDefinition, WriteTransaction,
};
use tokio::sync::{broadcast, mpsc, oneshot};

use super::wal::{self, Wal};
use super::{Cursor, Replay, Retention, Store, StoreError, StoreStats, Stored, codec};
use crate::update::Update;

const UPDATES: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("updates");
const IDS: TableDefinition<'_, &str, u64> = TableDefinition::new("ids");
const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");
const LAST_SEQ: &str = "last_seq";

/// Name of the database file inside the data directory.
pub const FILE_NAME: &str = "history.redb";

/// Entries removed per pruning transaction; appends waiting meanwhile are committed between
/// chunks.
const PRUNE_CHUNK: u64 = 4096;

/// Tuning for [`RedbStore`]. `Default` suits the hub; tests and benchmarks change fields.
#[derive(Clone, Debug)]
pub struct RedbOptions {
    /// Most appends committed in one transaction. `1` disables group commit (one fsync per
    /// append), which exists as the benchmark baseline.
    pub max_batch: usize,
    /// A batch is closed early once its payloads reach this many bytes, bounding the memory and
    /// latency of one transaction.
    pub max_batch_bytes: usize,
    /// Appends that may wait for the writer; beyond it `append` waits for room, which pushes
    /// back on publishers instead of buffering without bound.
    pub queue_capacity: usize,
    /// Entries a live receiver may fall behind before it gets `Lagged`.
    pub broadcast_capacity: usize,
    /// redb's page cache size in bytes.
    pub cache_bytes: usize,
    /// Make batches durable in the write-ahead log (one `fdatasync`) and checkpoint redb now and
    /// then, instead of a durable redb commit per batch. `false` exists as the benchmark
    /// baseline; a log left by an earlier run is replayed on open either way.
    pub wal: bool,
    /// Checkpoint once the log holds this many bytes since the last one; this also bounds the
    /// log file's size (a single larger batch still fits) and the replay after a crash.
    pub wal_bytes: u64,
    /// Checkpoint at most this long after the first batch that only the log holds, also when
    /// idle. Longer means fewer (and longer) checkpoint stalls for the batches behind them.
    pub checkpoint_interval: Duration,
}

impl Default for RedbOptions {
    fn default() -> Self {
        RedbOptions {
            max_batch: 1024,
            max_batch_bytes: 8 << 20,
            queue_capacity: 8192,
            broadcast_capacity: 4096,
            cache_bytes: 64 << 20,
            wal: true,
            wal_bytes: 16 << 20,
            checkpoint_interval: Duration::from_secs(1),
        }
    }
}

/// The embedded, durable [`Store`].
///
/// Dropping it flushes every append already submitted and releases the file; the drop blocks
/// until the writer thread has finished, so in async code prefer [`Store::close`] first.
///
/// # Examples
/// ```no_run
/// use ssehub::store::redb::{RedbOptions, RedbStore};
/// use ssehub::store::{Cursor, Store};
/// use ssehub::update::Update;
///
/// # async fn demo() -> Result<(), ssehub::store::StoreError> {
/// let store = RedbStore::open("./ssehub-data".as_ref(), RedbOptions::default())?;
/// let stored = store
///     .append(Update {
///         id: Update::generate_id(),
///         topics: vec!["https://example.com/books/1".into()],
///         data: "{\"title\": \"Dune\"}".into(),
///         private: false,
///         event_type: None,
///         retry: None,
///         published_at_ms: Update::now_ms(),
///     })
///     .await?; // durable here: safe to answer the publisher
/// let replay = store.read_after(Cursor::Earliest, 100).await?;
/// assert_eq!(replay.updates.last().map(|s| s.seq), Some(stored.seq));
/// store.close().await
/// # }
/// ```
pub struct RedbStore {
    /// Shared with read tasks; the file stays locked until the last clone is gone.
    db: Arc<Database>,
    /// Queue to the writer thread; `None` once dropped so the writer sees the end of input.
    requests: Option<mpsc::Sender<Request>>,
    /// Committed entries for live subscribers; only the writer thread sends, in seq order.
    live: broadcast::Sender<Stored>,
    /// Whether the last commit succeeded, for `/healthz`.
    writable: Arc<AtomicBool>,
    /// Durable transactions committed so far; appends divided by this is the mean batch size.
    commits: Arc<AtomicU64>,
    /// Checkpoints taken so far, see [`RedbStore::checkpoints`].
    checkpoints: Arc<AtomicU64>,
    /// Joined on drop so the file is closed when the drop returns (a reopen can follow at once).
    writer: Option<thread::JoinHandle<()>>,
    /// Database file, for error messages.
    path: PathBuf,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

enum Request {
    Append {
        update: Update,
        reply: Reply<Stored>,
    },
    Prune {
        retention: Retention,
        reply: Reply<u64>,
    },
    Close {
        reply: oneshot::Sender<()>,
    },
    /// Tries a checkpoint and a sync of the log, to learn whether a store marked unwritable
    /// recovered.
    Probe {
        reply: Reply<()>,
    },
}

impl RedbStore {
    /// Opens (or creates) the history in `dir`, creating the directory if needed, and starts the
    /// writer thread. After a crash, redb recovers the last durable commit here, which may take
    /// a while for a large file, and the write-ahead log's newer entries are replayed. This does
    /// blocking file I/O: call it before serving, or from `spawn_blocking`.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the directory or files cannot be created, opened or read,
    /// when another process holds the database, or when the writer thread cannot be started;
    /// [`StoreError::Corrupt`] when the write-ahead log does not continue the history.
    pub fn open(dir: &Path, options: RedbOptions) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::backend(format!("cannot create data directory {}", dir.display()), e)
        })?;
        let path = dir.join(FILE_NAME);
        let db = Database::builder()
            .set_cache_size(options.cache_bytes)
            .create(&path)
            .map_err(|e| {
                let context = if matches!(e, DatabaseError::DatabaseAlreadyOpen) {
                    format!(
                        "history database {} is already open (is another ssehub using this data directory?)",
                        path.display()
                    )
                } else {
                    format!("cannot open history database {}", path.display())
                };
                StoreError::backend(context, e)
            })?;
        let last_seq = init_tables(&db)?;
        let last_seq = replay_wal(&db, dir, last_seq)?;
        let wal = if options.wal {
            let wal = Wal::open(dir).map_err(|e| {
                let path = dir.join(wal::FILE_NAME);
                StoreError::backend(format!("cannot open write-ahead log {}", path.display()), e)
            })?;
            Some(wal)
        } else {
            None
        };
        // Only for the writer's idle checkpoint timer.
        let timer = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map_err(|e| StoreError::backend("cannot start history writer timer", e))?;
        let db = Arc::new(db);
        let (requests, queue) = mpsc::channel(options.queue_capacity.max(1));
        let (live, _) = broadcast::channel(options.broadcast_capacity.max(1));
        let writable = Arc::new(AtomicBool::new(true));
        let commits = Arc::new(AtomicU64::new(0));
        let checkpoints = Arc::new(AtomicU64::new(0));
        let writer = Writer {
            db: Arc::clone(&db),
            live: live.clone(),
            writable: Arc::clone(&writable),
            commits: Arc::clone(&commits),
            checkpoints: Arc::clone(&checkpoints),
            last_seq,
            max_batch: options.max_batch.max(1),
            max_batch_bytes: options.max_batch_bytes,
            wal,
            wal_bytes: options.wal_bytes,
            checkpoint_interval: options.checkpoint_interval,
            unsaved_since: None,
            must_checkpoint: false,
        };
        let writer = thread::Builder::new()
            .name("ssehub-store-writer".into())
            .spawn(move || writer.run(queue, &timer))
            .map_err(|e| StoreError::backend("cannot start history writer thread", e))?;
        Ok(RedbStore {
            db,
            requests: Some(requests),
            live,
            writable,
            commits,
            checkpoints,
            writer: Some(writer),
            path,
        })
    }

    /// Append batches made durable (in the log or by a durable commit) and prune chunks
    /// committed since open, not counting checkpoints: the number of appends divided by this is
    /// the mean group-commit batch size, for `/metrics`.
    #[must_use]
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Durable redb commits taken since open while the write-ahead log is on (see the module
    /// docs): batches and prune chunks that were checkpoints, and checkpoints on their own.
    #[must_use]
    pub fn checkpoints(&self) -> u64 {
        self.checkpoints.load(Ordering::Relaxed)
    }

    /// Path of the database file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn request<T>(&self, make: impl FnOnce(Reply<T>) -> Request) -> Result<T, StoreError> {
        let requests = self.requests.as_ref().ok_or(StoreError::Closed)?;
        let (reply, answer) = oneshot::channel();
        requests
            .send(make(reply))
            .await
            .map_err(|_| StoreError::Closed)?;
        // A dropped reply means the writer stopped (closed) before reaching this request.
        answer.await.map_err(|_| StoreError::Closed)?
    }

    async fn read<T: Send + 'static>(
        &self,
        what: &'static str,
        f: impl FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(|e| StoreError::backend(what, e))?
    }
}

impl Drop for RedbStore {
    fn drop(&mut self) {
        // Ending the queue lets the writer drain what is queued, commit it and exit.
        self.requests = None;
        if let Some(writer) = self.writer.take() {
            if writer.join().is_err() {
                tracing::error!(path = %self.path.display(), "history writer thread panicked");
            }
        }
    }
}

#[async_trait::async_trait]
impl Store for RedbStore {
    async fn append(&self, update: Update) -> Result<Stored, StoreError> {
        self.request(|reply| Request::Append { update, reply })
            .await
    }

    async fn read_after(&self, after: Cursor, limit: usize) -> Result<Replay, StoreError> {
        self.read("history read task failed", move |db| {
            read_after(db, &after, limit)
        })
        .await
    }

    fn subscribe(&self) -> broadcast::Receiver<Stored> {
        self.live.subscribe()
    }

    async fn prune(&self, retention: &Retention) -> Result<u64, StoreError> {
        if *retention == Retention::default() {
            return Ok(0);
        }
        let retention = retention.clone();
        self.request(|reply| Request::Prune { retention, reply })
            .await
    }

    async fn stats(&self) -> Result<StoreStats, StoreError> {
        let writer_alive = self.requests.as_ref().is_some_and(|r| !r.is_closed());
        if writer_alive && !self.writable.load(Ordering::Acquire) {
            // After a failed commit, only another commit tells whether writes work again; without
            // this probe a node taken out of rotation by its 503 would never get the publish
            // that could bring it back. The outcome lands in `writable`.
            let _ = self.request(|reply| Request::Probe { reply }).await;
        }
        let writable = writer_alive && self.writable.load(Ordering::Acquire);
        self.read("history stats task failed", move |db| {
            let txn = db.begin_read().map_err(read_error)?;
            let updates = txn.open_table(UPDATES).map_err(read_error)?;
            let meta = txn.open_table(META).map_err(read_error)?;
            Ok(StoreStats {
                retained: updates.len().map_err(read_error)?,
                first_seq: updates
                    .first()
                    .map_err(read_error)?
                    .map(|(seq, _)| seq.value()),
                last_seq: meta
                    .get(LAST_SEQ)
                    .map_err(read_error)?
                    .map_or(0, |v| v.value()),
                writable,
            })
        })
        .await
    }

    async fn close(&self) -> Result<(), StoreError> {
        let Some(requests) = self.requests.as_ref() else {
            return Ok(());
        };
        let (reply, done) = oneshot::channel();
        if requests.send(Request::Close { reply }).await.is_ok() {
            // An error here means the writer already exited, which is what close wants.
            let _ = done.await;
        }
        Ok(())
    }
}

fn read_error(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::backend("cannot read history", e)
}

fn commit_error(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::backend("cannot commit history batch", e)
}

fn prune_error(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::backend("cannot prune history", e)
}

fn write_error(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::backend("cannot write history", e)
}

/// Creates the tables on first open and returns the last seq ever assigned.
fn init_tables(db: &Database) -> Result<u64, StoreError> {
    let txn = db.begin_write().map_err(write_error)?;
    let last_seq = {
        let updates = txn.open_table(UPDATES).map_err(write_error)?;
        txn.open_table(IDS).map_err(write_error)?;
        let meta = txn.open_table(META).map_err(write_error)?;
        let recorded = meta
            .get(LAST_SEQ)
            .map_err(write_error)?
            .map_or(0, |v| v.value());
        let newest = updates
            .last()
            .map_err(write_error)?
            .map_or(0, |(seq, _)| seq.value());
        recorded.max(newest)
    };
    txn.commit().map_err(write_error)?;
    Ok(last_seq)
}

/// Stores the write-ahead log's entries beyond `last_seq` (the last seq of redb's durable state)
/// in one durable commit and returns the new last seq; see the module docs.
fn replay_wal(db: &Database, dir: &Path, last_seq: u64) -> Result<u64, StoreError> {
    let path = dir.join(wal::FILE_NAME);
    let found = wal::recover(dir).map_err(|e| {
        StoreError::backend(format!("cannot read write-ahead log {}", path.display()), e)
    })?;
    // Records up to `last_seq` are already in redb: the log outlived a checkpoint.
    let pending: Vec<_> = found
        .records
        .iter()
        .filter(|(seq, _)| *seq > last_seq)
        .collect();
    let Some(&&(first, _)) = pending.first() else {
        if let Some(reason) = found.invalid {
            tracing::debug!(
                offset = found.end,
                reason,
                "write-ahead log holds nothing to replay"
            );
        }
        return Ok(last_seq);
    };
    if first != last_seq + 1 {
        return Err(StoreError::Corrupt {
            seq: first,
            reason: format!(
                "the write-ahead log {} resumes at seq {first} but the history ends at seq \
                 {last_seq}; remove the log only if the history file was replaced on purpose",
                path.display()
            ),
        });
    }
    let mut last = last_seq;
    let txn = db.begin_write().map_err(write_error)?;
    {
        let mut updates = txn.open_table(UPDATES).map_err(write_error)?;
        let mut ids = txn.open_table(IDS).map_err(write_error)?;
        for (seq, payload) in pending {
            let (id, _) = codec::decode_head(payload).map_err(|reason| StoreError::Corrupt {
                seq: *seq,
                reason: format!("in the write-ahead log: {reason}"),
            })?;
            updates
                .insert(*seq, payload.as_slice())
                .map_err(write_error)?;
            ids.insert(id, *seq).map_err(write_error)?;
            last = *seq;
        }
        let mut meta = txn.open_table(META).map_err(write_error)?;
        meta.insert(LAST_SEQ, last).map_err(write_error)?;
    }
    txn.commit().map_err(write_error)?;
    tracing::info!(
        first,
        last,
        "replayed history entries from the write-ahead log into {}",
        FILE_NAME
    );
    if let Some(reason) = found.invalid {
        tracing::info!(
            offset = found.end,
            reason,
            "the write-ahead log ends in an incomplete record, as is normal after a crash (a batch \
             cut short before it was acknowledged); ignoring it and the rest of the log"
        );
    }
    Ok(last)
}

fn read_after(db: &Database, after: &Cursor, limit: usize) -> Result<Replay, StoreError> {
    let txn = db.begin_read().map_err(read_error)?;
    let updates = txn.open_table(UPDATES).map_err(read_error)?;
    let meta = txn.open_table(META).map_err(read_error)?;
    let head_seq = meta
        .get(LAST_SEQ)
        .map_err(read_error)?
        .map_or(0, |v| v.value());
    let (found, start_after) = match after {
        Cursor::Earliest => (true, 0),
        Cursor::Id(id) => {
            let ids = txn.open_table(IDS).map_err(read_error)?;
            match ids.get(id.as_str()).map_err(read_error)? {
                Some(seq) => (true, seq.value()),
                None => (false, 0),
            }
        }
        Cursor::Seq(seq) => {
            let first_seq = updates.first().map_err(read_error)?.map(|(s, _)| s.value());
            // Pruning only removes from the front, so the cursor is in history exactly when
            // nothing between it and the oldest retained entry has been removed.
            let in_history = *seq <= head_seq
                && (*seq == head_seq || first_seq.is_some_and(|f| seq.saturating_add(1) >= f));
            if in_history { (true, *seq) } else { (false, 0) }
        }
    };
    let mut out = Vec::with_capacity(limit.min(1024));
    let mut more = false;
    let range = updates
        .range::<u64>((Bound::Excluded(start_after), Bound::Unbounded))
        .map_err(read_error)?;
    for entry in range {
        let (seq, value) = entry.map_err(read_error)?;
        if out.len() == limit {
            more = true;
            break;
        }
        let seq = seq.value();
        let update = codec::decode(value.value()).map_err(|reason| StoreError::Corrupt {
            seq,
            reason: reason.into(),
        })?;
        out.push(Stored {
            seq,
            update: Arc::new(update),
        });
    }
    Ok(Replay {
        found,
        updates: out,
        more,
        head_seq,
    })
}

/// The writer thread's state: the only place that writes to the database.
struct Writer {
    /// The database; the thread's clone keeps the file open until the thread ends.
    db: Arc<Database>,
    /// Where committed entries are announced.
    live: broadcast::Sender<Stored>,
    /// Set after each commit attempt, read by `stats`.
    writable: Arc<AtomicBool>,
    /// Counts successful commits, see [`RedbStore::commits`].
    commits: Arc<AtomicU64>,
    /// See [`RedbStore::checkpoints`].
    checkpoints: Arc<AtomicU64>,
    /// Last seq committed; the next append gets `last_seq + 1`.
    last_seq: u64,
    /// See [`RedbOptions::max_batch`].
    max_batch: usize,
    /// See [`RedbOptions::max_batch_bytes`].
    max_batch_bytes: usize,
    /// The write-ahead log; `None` when every batch is a durable commit.
    wal: Option<Wal>,
    /// See [`RedbOptions::wal_bytes`].
    wal_bytes: u64,
    /// See [`RedbOptions::checkpoint_interval`].
    checkpoint_interval: Duration,
    /// When the oldest batch that only the log holds durably was committed; `None` while redb's
    /// durable state is complete.
    unsaved_since: Option<Instant>,
    /// A failed batch may have left records of the current generation in the log: the next
    /// batch must be a checkpoint, which starts a new generation (see `wal`).
    must_checkpoint: bool,
}

/// A prune request in progress, advanced one chunk at a time between append batches.
struct PruneJob {
    /// Count limit of the request.
    max_events: Option<u64>,
    /// Entries published before this unix millisecond are too old; fixed when the request
    /// arrived so a long prune does not chase a moving cutoff.
    cutoff_ms: Option<u64>,
    /// Entries removed so far by earlier chunks.
    removed: u64,
    /// Who asked.
    reply: Reply<u64>,
}

impl Writer {
    fn run(mut self, mut queue: mpsc::Receiver<Request>, timer: &tokio::runtime::Runtime) {
        let mut batch: Vec<(Update, Reply<Stored>)> = Vec::new();
        let mut prunes: std::collections::VecDeque<PruneJob> = Default::default();
        let mut open = true;
        let mut close = None;
        while open {
            // Block for work only when no prune is pending; otherwise keep pruning between
            // whatever appends arrive.
            let mut next = if prunes.is_empty() {
                match self.next_request(&mut queue, timer) {
                    Some(request) => Some(request),
                    None => break,
                }
            } else {
                match queue.try_recv() {
                    Ok(request) => Some(request),
                    Err(mpsc::error::TryRecvError::Empty) => None,
                    Err(mpsc::error::TryRecvError::Disconnected) => {
                        open = false;
                        None
                    }
                }
            };
            let mut bytes = 0;
            while let Some(request) = next.take() {
                match request {
                    Request::Append { update, reply } => {
                        bytes += update.data.len() + update.id.len();
                        batch.push((update, reply));
                    }
                    Request::Prune { retention, reply } => prunes.push_back(PruneJob {
                        max_events: retention.max_events,
                        cutoff_ms: retention.max_age.map(|age| {
                            let age = u64::try_from(age.as_millis()).unwrap_or(u64::MAX);
                            Update::now_ms().saturating_sub(age)
                        }),
                        removed: 0,
                        reply,
                    }),
                    Request::Close { reply } => {
                        close = Some(reply);
                        break;
                    }
                    Request::Probe { reply } => {
                        let _ = reply.send(self.probe());
                    }
                }
                if batch.len() >= self.max_batch || bytes >= self.max_batch_bytes {
                    break;
                }
                next = match queue.try_recv() {
                    Ok(request) => Some(request),
                    Err(mpsc::error::TryRecvError::Empty) => None,
                    Err(mpsc::error::TryRecvError::Disconnected) => {
                        open = false;
                        None
                    }
                };
            }
            if !batch.is_empty() {
                self.commit_appends(&mut batch);
            }
            if close.is_some() || !open {
                // Shutting down: report partial prunes rather than hold up the close.
                for job in prunes.drain(..) {
                    let _ = job.reply.send(Ok(job.removed));
                }
                // Refuse further requests before answering, so that `close` returning means
                // every later append gets `Closed`.
                queue.close();
                break;
            }
            if let Some(job) = prunes.front_mut() {
                match self.prune_chunk(job) {
                    Ok(false) => {}
                    Ok(true) => {
                        if let Some(job) = prunes.pop_front() {
                            let _ = job.reply.send(Ok(job.removed));
                        }
                    }
                    Err(error) => {
                        if let Some(job) = prunes.pop_front() {
                            let _ = job.reply.send(Err(error));
                        }
                    }
                }
            }
        }
        if self.unsaved_since.is_some() || self.must_checkpoint {
            if let Err(error) = self.checkpoint() {
                tracing::error!(error = %error, "cannot checkpoint history on close; the write-ahead log keeps it for the next open");
            }
        }
        if let Some(reply) = close {
            let _ = reply.send(());
        }
    }

    /// Waits for the next request; `None` once the queue is closed and empty. While the log holds
    /// batches redb has not made durable, a checkpoint is taken when the interval runs out first.
    fn next_request(
        &mut self,
        queue: &mut mpsc::Receiver<Request>,
        timer: &tokio::runtime::Runtime,
    ) -> Option<Request> {
        loop {
            let Some(since) = self.unsaved_since else {
                return queue.blocking_recv();
            };
            let left = self.checkpoint_interval.saturating_sub(since.elapsed());
            // The timeout must be created inside the runtime, whose timer it registers with.
            let waited = timer.block_on(async { tokio::time::timeout(left, queue.recv()).await });
            if let Ok(request) = waited {
                return request;
            }
            if let Err(error) = self.checkpoint() {
                // The log still holds everything; try again after another interval.
                tracing::error!(error = %error, "cannot checkpoint history");
                self.unsaved_since = Some(Instant::now());
            }
        }
    }

    /// Makes `batch` durable (see the module docs), then broadcasts and answers in seq order.
    fn commit_appends(&mut self, batch: &mut Vec<(Update, Reply<Stored>)>) {
        match self.write_batch(batch) {
            Ok(outcomes) => {
                self.writable.store(true, Ordering::Release);
                for ((update, reply), outcome) in batch.drain(..).zip(outcomes) {
                    let answer = outcome.map(|seq| {
                        let stored = Stored {
                            seq,
                            update: Arc::new(update),
                        };
                        // No receivers is not an error: nobody is subscribed yet.
                        let _ = self.live.send(stored.clone());
                        stored
                    });
                    // The publisher may have gone away; the update is stored regardless.
                    let _ = reply.send(answer);
                }
            }
            Err(error) => {
                tracing::error!(error = %error, source = ?std::error::Error::source(&error), "history commit failed");
                self.writable.store(false, Ordering::Release);
                for (_, reply) in batch.drain(..) {
                    let _ = reply.send(Err(error.clone()));
                }
            }
        }
    }

    /// Returns one outcome per update (its seq, or why it alone was refused); an `Err` means
    /// the whole batch failed and nothing was stored.
    fn write_batch(
        &mut self,
        batch: &[(Update, Reply<Stored>)],
    ) -> Result<Vec<Result<u64, StoreError>>, StoreError> {
        let checkpoint = self.checkpoint_due();
        let mut txn = self.db.begin_write().map_err(write_error)?;
        let durability = if checkpoint {
            Durability::Immediate
        } else {
            Durability::None
        };
        txn.set_durability(durability).map_err(write_error)?;
        let mut outcomes = Vec::with_capacity(batch.len());
        // What the log must hold for this batch: (seq, encoded update).
        let mut records: Vec<(u64, Vec<u8>)> = Vec::with_capacity(batch.len());
        let mut seq = self.last_seq;
        {
            let mut updates = txn.open_table(UPDATES).map_err(commit_error)?;
            let mut ids = txn.open_table(IDS).map_err(commit_error)?;
            for (update, _) in batch {
                // The index already holds ids inserted earlier in this batch, so duplicates
                // inside one batch are caught too.
                if ids.get(update.id.as_str()).map_err(commit_error)?.is_some() {
                    outcomes.push(Err(StoreError::Duplicate {
                        id: update.id.clone(),
                    }));
                    continue;
                }
                let Ok(bytes) = codec::encode(update) else {
                    outcomes.push(Err(too_large(update, usize::MAX)));
                    continue;
                };
                let next = seq + 1;
                match updates.insert(next, bytes.as_slice()) {
                    Ok(_) => {}
                    // Refused before anything was written, so the transaction stays usable.
                    Err(StorageError::ValueTooLarge(size)) => {
                        outcomes.push(Err(too_large(update, size)));
                        continue;
                    }
                    Err(e) => return Err(commit_error(e)),
                }
                ids.insert(update.id.as_str(), next).map_err(commit_error)?;
                seq = next;
                outcomes.push(Ok(seq));
                records.push((seq, bytes));
            }
            if seq != self.last_seq {
                let mut meta = txn.open_table(META).map_err(commit_error)?;
                meta.insert(LAST_SEQ, seq).map_err(commit_error)?;
            }
        }
        if seq == self.last_seq {
            // Every update was refused: nothing to make durable, skip the fsync.
            txn.abort().map_err(commit_error)?;
            return Ok(outcomes);
        }
        let size = Wal::size_of(records.iter().map(|(_, bytes)| bytes.as_slice()));
        let wal_bytes = self.wal_bytes;
        match self.wal.as_mut() {
            // A batch larger than the whole log still goes to an empty log.
            Some(wal) if !checkpoint && (wal.used() == 0 || wal.used() + size <= wal_bytes) => {
                let at = wal.used();
                let logged =
                    wal.append(records.iter().map(|(seq, bytes)| (*seq, bytes.as_slice())));
                if let Err(e) = logged {
                    // Dropping `txn` aborts it. Part of the batch may be in the log.
                    self.must_checkpoint = true;
                    return Err(StoreError::backend(
                        "cannot write history batch to the write-ahead log",
                        e,
                    ));
                }
                if let Err(e) = txn.commit() {
                    // The batch is durable in the log but answered with an error: cut it off,
                    // or a replay after a crash would store it after all.
                    self.must_checkpoint = true;
                    if let Err(cut) = wal.cut_at(at) {
                        tracing::error!(error = %cut, "cannot cut a failed batch from the write-ahead log; a crash before the next checkpoint would replay it");
                    }
                    return Err(commit_error(e));
                }
                self.unsaved_since.get_or_insert_with(Instant::now);
            }
            // No log, a checkpoint is due, or the log is full: this commit is the checkpoint.
            _ => {
                txn.set_durability(Durability::Immediate)
                    .map_err(commit_error)?;
                txn.commit().map_err(commit_error)?;
                self.checkpointed();
            }
        }
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.last_seq = seq;
        Ok(outcomes)
    }

    /// Whether the next batch must be a durable redb commit rather than go to the log.
    fn checkpoint_due(&self) -> bool {
        self.wal.is_none()
            || self.must_checkpoint
            || self
                .unsaved_since
                .is_some_and(|since| since.elapsed() >= self.checkpoint_interval)
    }

    /// Records that a durable commit just made redb's state complete, so the log starts over.
    fn checkpointed(&mut self) {
        self.unsaved_since = None;
        self.must_checkpoint = false;
        if let Some(wal) = self.wal.as_mut() {
            wal.reset();
            self.checkpoints.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Makes everything committed so far durable in redb (rewriting the seq counter) and starts
    /// the log over.
    fn checkpoint(&mut self) -> Result<(), StoreError> {
        let txn = self.begin_durable()?;
        txn.open_table(META)
            .map_err(commit_error)?
            .insert(LAST_SEQ, self.last_seq)
            .map_err(commit_error)?;
        txn.commit().map_err(commit_error)?;
        self.checkpointed();
        Ok(())
    }

    /// Removes up to [`PRUNE_CHUNK`] entries; returns whether the job is complete.
    fn prune_chunk(&mut self, job: &mut PruneJob) -> Result<bool, StoreError> {
        let txn = self.begin_durable()?;
        let mut removed = 0;
        let done = {
            let mut updates = txn.open_table(UPDATES).map_err(prune_error)?;
            let mut ids = txn.open_table(IDS).map_err(prune_error)?;
            let excess = match job.max_events {
                Some(max) => updates.len().map_err(prune_error)?.saturating_sub(max),
                None => 0,
            };
            loop {
                if removed == PRUNE_CHUNK {
                    break false;
                }
                let Some((seq, head)) = updates.first().map_err(prune_error)?.map(|(k, v)| {
                    let head = codec::decode_head(v.value()).map(|(id, at)| (id.to_owned(), at));
                    (k.value(), head)
                }) else {
                    break true;
                };
                // History is in publication order, so the oldest entries come first; a clock
                // step backwards can leave an old entry behind a newer one until that one ages.
                // An undecodable entry counts as too old: kept, it would stop age pruning and
                // fail every replay that reaches it.
                let too_old = match &head {
                    Ok((_, at)) => job.cutoff_ms.is_some_and(|cutoff| *at < cutoff),
                    Err(_) => true,
                };
                if removed >= excess && !too_old {
                    break true;
                }
                updates.remove(seq).map_err(prune_error)?;
                match head {
                    Ok((id, _)) => {
                        // Only drop the index entry if it still points here.
                        let points_here = ids
                            .get(id.as_str())
                            .map_err(prune_error)?
                            .is_some_and(|s| s.value() == seq);
                        if points_here {
                            ids.remove(id.as_str()).map_err(prune_error)?;
                        }
                    }
                    Err(reason) => {
                        // Its id is unreadable, so its index entry (if any) stays and points at
                        // nothing; reads treat that id as a cursor just before the next entry.
                        tracing::warn!(seq, reason, "pruned a corrupt history entry");
                    }
                }
                removed += 1;
            }
        };
        if removed == 0 {
            txn.abort().map_err(prune_error)?;
        } else {
            // Durable, so a crash cannot undo a prune after which a removed id was reused.
            txn.commit().map_err(prune_error)?;
            self.checkpointed();
            self.commits.fetch_add(1, Ordering::Relaxed);
            job.removed += removed;
        }
        Ok(done)
    }

    /// Takes a checkpoint and syncs the log, and records whether that worked.
    fn probe(&mut self) -> Result<(), StoreError> {
        let result = self.checkpoint().and_then(|()| match &self.wal {
            Some(wal) => wal.sync().map_err(|e| {
                StoreError::backend(
                    format!("cannot sync write-ahead log {}", wal.path().display()),
                    e,
                )
            }),
            None => Ok(()),
        });
        self.writable.store(result.is_ok(), Ordering::Release);
        result
    }

    fn begin_durable(&self) -> Result<WriteTransaction, StoreError> {
        let mut txn = self.db.begin_write().map_err(write_error)?;
        txn.set_durability(Durability::Immediate)
            .map_err(write_error)?;
        Ok(txn)
    }
}

fn too_large(update: &Update, bytes: usize) -> StoreError {
    StoreError::TooLarge {
        id: update.id.clone(),
        bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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

    fn open_with(dir: &Path, options: RedbOptions) -> RedbStore {
        RedbStore::open(dir, options).expect("open")
    }

    /// Queues an append directly, returning once it is in the writer's queue.
    async fn submit(store: &RedbStore, id: &str) -> oneshot::Receiver<Result<Stored, StoreError>> {
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
        // Holding redb's write lock parks the writer inside its first batch, so the rest of the
        // appends wait in the queue; once released, they must all go in one more transaction.
        let blocker = store.db.begin_write().unwrap();
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
            .map(|id| (update(id), oneshot::channel().0))
            .collect();
        let outcomes = writer.write_batch(&batch).unwrap();
        assert!(matches!(outcomes[0], Ok(1)));
        assert!(matches!(outcomes[1], Ok(2)));
        assert!(matches!(&outcomes[2], Err(StoreError::Duplicate { id }) if id == "twin"));
        assert_eq!(writer.last_seq, 2);
    }

    /// A writer on a new database in `dir`, driven directly by the test instead of a thread.
    fn bare_writer(dir: &Path, wal: Option<Wal>) -> Writer {
        let db = Database::create(dir.join(FILE_NAME)).unwrap();
        init_tables(&db).unwrap();
        Writer {
            db: Arc::new(db),
            live: broadcast::channel(4).0,
            writable: Arc::default(),
            commits: Arc::default(),
            checkpoints: Arc::default(),
            last_seq: 0,
            max_batch: 16,
            max_batch_bytes: 1 << 20,
            wal,
            wal_bytes: 1 << 20,
            checkpoint_interval: Duration::from_secs(3600),
            unsaved_since: None,
            must_checkpoint: false,
        }
    }

    #[test]
    fn a_failed_log_write_makes_the_next_batch_a_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = bare_writer(dir.path(), Some(Wal::open(dir.path()).unwrap()));
        let one = |id: &str| vec![(update(id), oneshot::channel().0)];
        writer.write_batch(&one("a")).unwrap();
        assert_eq!(writer.checkpoints.load(Ordering::Relaxed), 0);
        let wal = writer.wal.as_mut().unwrap();
        wal.break_writes();
        assert!(writer.write_batch(&one("b")).is_err());
        // Part of "b" may sit in the log after "a", in the current generation: only a new one
        // (after a checkpoint) keeps a crash from replaying it.
        writer.wal.as_mut().unwrap().mend_writes();
        let outcomes = writer.write_batch(&one("c")).unwrap();
        assert!(
            matches!(outcomes[0], Ok(2)),
            "the failed append took no seq"
        );
        assert_eq!(writer.checkpoints.load(Ordering::Relaxed), 1);
        assert!(!writer.must_checkpoint);
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
        let blocker = store.db.begin_write().unwrap();
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
        let blocker = store.db.begin_write().unwrap();
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
        {
            let txn = store.db.begin_write().unwrap();
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
        };
        assert_eq!(store.prune(&day).await.unwrap(), 1);
        let replay = store.read_after(Cursor::Earliest, 10).await.unwrap();
        assert_eq!(replay.updates[0].update.id, "good");
    }

    /// Options under which nothing but a full log or close checkpoints during a test.
    fn log_only() -> RedbOptions {
        RedbOptions {
            checkpoint_interval: Duration::from_secs(3600),
            ..RedbOptions::default()
        }
    }

    /// The files of a running store as a `kill -9` would leave them: what the process wrote is
    /// in the page cache, what it only held in memory is gone. Leaves out the log unless `wal`.
    fn crash_copy(dir: &Path, wal: bool) -> tempfile::TempDir {
        let copy = tempfile::tempdir().unwrap();
        std::fs::copy(dir.join(FILE_NAME), copy.path().join(FILE_NAME)).unwrap();
        if wal {
            std::fs::copy(dir.join(wal::FILE_NAME), copy.path().join(wal::FILE_NAME)).unwrap();
        }
        copy
    }

    async fn all_ids(store: &RedbStore) -> Vec<(u64, String)> {
        let replay = store.read_after(Cursor::Earliest, 1000).await.unwrap();
        assert!(!replay.more);
        replay
            .updates
            .iter()
            .map(|s| (s.seq, s.update.id.clone()))
            .collect()
    }

    fn numbered(ids: &[&str]) -> Vec<(u64, String)> {
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
        let end = usize::try_from(wal::recover(dir.path()).unwrap().end).unwrap();
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
        let bytes = codec::encode(&update("x")).unwrap();
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
        };
        assert_eq!(store.prune(&keep).await.unwrap(), total - 5);
        assert_eq!(store.commits() - commits, 3, "one commit per chunk");
        let stats = store.stats().await.unwrap();
        assert_eq!((stats.retained, stats.first_seq), (5, Some(total - 4)));
    }
}
