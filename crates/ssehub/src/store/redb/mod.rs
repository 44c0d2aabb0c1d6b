//! The embedded backend: one redb file (`history.redb`) in the data directory.
//!
//! Writes go through one writer, a state behind a lock, run by a writer thread that practises
//! group commit: it takes every append waiting in its queue (up to [`RedbOptions::max_batch`], a
//! [`Store::append_batch`] whole) and makes them durable together, then answers each waiter and
//! broadcasts the new entries. Under load, batches grow by themselves, so the sync cost is shared
//! by every concurrent publisher. A lone append that finds the writer idle (nothing queued, the
//! lock free, another runtime worker idle) takes the lock and commits itself, on its own thread
//! (`inline`): the same log write and sync, without the two thread wake-ups of the hand-off.
//! Pruning runs on the writer thread in bounded chunks between batches, so trimming a large
//! backlog never stalls publishers for long and both tables always change together.
//!
//! Here: the handle. `read` is the read path, `tail` the entries only the log holds yet,
//! `recover` opens and checks the file, creates the tables and replays the log, `writer` is the
//! writer and its thread, `inline` the commit by an appending task, `prune` its pruning, `failure` how it recovers from a failed write without a
//! restart, `slot` the database handle it shares with readers, `wal` the write-ahead log.
//!
//! # Durability: a write-ahead log in front of redb, and an in-memory tail
//!
//! A redb write transaction costs as much CPU as the log's `write` + `fdatasync` (about 44 µs
//! against 47 µs per publish, see BENCHMARKS.md), and a durable one much more, so a batch is made
//! durable in the write-ahead log alone (see `wal`) and reaches redb later, many batches at once:
//!
//! 1. duplicate ids are refused against the batch itself, the tail and redb (one read
//!    transaction), so the log holds only entries that will be stored;
//! 2. the batch's entries are appended to the log with one `write` and one `fdatasync`;
//! 3. they are put in the in-memory *tail* (see `tail`), which every read merges with redb;
//! 4. only then are the appends acknowledged and broadcast, so a read includes every entry that
//!    was ever broadcast, and every entry read or broadcast is durable in the log.
//!
//! Every so often ([`RedbOptions::checkpoint_interval`], a full log, before a prune chunk, close)
//! the tail is written to redb in one transaction committed with
//! [`Durability::Immediate`](redb::Durability::Immediate): the *checkpoint*, which also takes the
//! batch at hand if there is one. Only after that commit returns is the tail emptied and does the
//! log start over, so every acknowledged entry is always durable in redb or in the log, and
//! visible in redb or in the tail. Between checkpoints, once the tail holds
//! [`RedbOptions::tail_bytes`], it is written to redb in a commit without sync
//! ([`Durability::None`](redb::Durability::None)) and emptied after that commit: readers find
//! its entries in redb from then on, and the log keeps them, since after a crash redb returns to
//! its last durable commit. On open, the log's records with a seq beyond redb's last durable one
//! are replayed and checkpointed before anything else happens; a reopen after a failed write does
//! the same and empties the tail.
//!
//! Why an acknowledged append survives `kill -9` and power loss: it was acknowledged after the
//! `fdatasync` of its log record returned, so the record is on stable storage; the log is only
//! reused after a durable redb commit that contains it; and after a crash redb reopens at its last
//! durable commit, from which the log's records continue without a gap. A record torn by the
//! crash belongs to a batch that was never acknowledged and ends the replay (`wal` explains why
//! nothing acknowledged can follow it). With [`RedbOptions::wal`] off, every batch is a durable
//! redb commit instead, the behaviour before the log existed, kept as the benchmark baseline.
//!
//! Memory: the tail holds less than [`RedbOptions::tail_bytes`] of encoded entries plus one
//! batch (at most [`RedbOptions::max_batch_bytes`] of payload, or one larger update), and never
//! more than the log holds ([`RedbOptions::wal_bytes`]); each entry is also kept decoded (shared
//! with the live broadcast) and indexed by id, a few hundred bytes more per entry: at the
//! defaults (256 KiB, 1 MiB) at most about 2 x 1.25 MiB + 9,000 x ~250 B ≈ 5 MiB for updates of
//! ~150 bytes, usually far less (a batch is rarely full).
//!
//! Reads run on tokio's blocking pool in their own read transactions; redb's MVCC lets them
//! proceed concurrently with the writer and gives each read one consistent snapshot, which
//! `read` merges with what it took from the tail just before (see there why nothing is missed or
//! read twice).
//!
//! # Damage
//!
//! Every entry carries a CRC-32 bound to its seq (see `codec`), so a damaged entry is reported
//! as [`StoreError::Corrupt`] naming it, never served altered. On open, redb's own page checksums
//! are verified (a repair after an unclean shutdown does that anyway), and a panic inside redb is
//! turned into [`StoreError::DatabaseDamaged`]. A log damaged where acknowledged records follow
//! is [`StoreError::LogDamaged`]; see [`RedbOptions::truncate_damaged_log_at`].
//!
//! # Disk space
//!
//! Besides the history itself, the store needs room for the log (at most
//! [`RedbOptions::wal_bytes`] plus one batch, rounded up to a MiB) and, at each checkpoint, at
//! restart and when it recovers from a full disk, for writing the log's content into redb
//! again (about twice the log's size in the worst case). redb grows its file by doubling, but
//! sparsely: only pages written take space.
//!
//! Tables: `updates` (seq -> encoded update, see `codec`), `ids` (id -> seq, for
//! `Last-Event-ID` lookups and duplicate detection) and `meta` (`last_seq`, so seqs are never
//! reused even when pruning empties the history).

#[cfg(test)]
mod batch_tests;
mod failure;
mod inline;
#[cfg(test)]
mod inline_tests;
mod prune;
mod read;
mod recover;
mod slot;
mod tail;
#[cfg(test)]
mod tail_tests;
#[cfg(test)]
mod tests;
mod wal;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

use redb::{Database, TableDefinition};
use tokio::sync::{broadcast, mpsc, oneshot};

use super::{
    Cursor, DEFAULT_READ_BYTES, Leases, LocalLeases, Replay, Retention, Store, StoreError,
    StoreStats, Stored,
};
use crate::update::Update;
use slot::DbSlot;
use tail::Tail;
use wal::Wal;
use writer::Writer;

const UPDATES: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("updates");
const IDS: TableDefinition<'_, &str, u64> = TableDefinition::new("ids");
const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");
const LAST_SEQ: &str = "last_seq";

/// Name of the database file inside the data directory.
pub const FILE_NAME: &str = "history.redb";

/// Default of [`RedbOptions::cache_bytes`]: with one batch's buffers (see
/// [`RedbOptions::max_batch_bytes`]) the store stays well under 64 MiB.
pub const DEFAULT_CACHE_BYTES: usize = 32 << 20;

/// Tuning for [`RedbStore`]. `Default` suits the hub; tests and benchmarks change fields.
#[derive(Clone, Debug)]
pub struct RedbOptions {
    /// Most appends committed in one transaction. `1` disables group commit (one fsync per
    /// append), which exists as the benchmark baseline. The updates of one
    /// [`Store::append_batch`] are never split: they go in one transaction, beyond this if need be.
    pub max_batch: usize,
    /// A batch is closed early once its payloads reach this many bytes, bounding the memory and
    /// latency of one transaction: the batch's updates, their encoding and the log's write
    /// buffer each hold about this much (a single larger update, or one
    /// [`Store::append_batch`], still makes a batch of its own).
    pub max_batch_bytes: usize,
    /// Appends that may wait for the writer; beyond it `append` waits for room, which pushes
    /// back on publishers instead of buffering without bound.
    pub queue_capacity: usize,
    /// Entries a live receiver may fall behind before it gets `Lagged`.
    pub broadcast_capacity: usize,
    /// redb's page cache in bytes, the store's largest use of memory; it also holds the pages
    /// written since the last checkpoint (up to half of it before redb writes them out early).
    pub cache_bytes: usize,
    /// One read stops once it holds this many encoded bytes (after at least one update), so a
    /// replay of large updates holds about one page of memory per subscriber.
    pub read_bytes: usize,
    /// Make batches durable in the write-ahead log (one `fdatasync`) and checkpoint redb now and
    /// then, instead of a durable redb commit per batch. `false` exists as the benchmark
    /// baseline; a log left by an earlier run is replayed on open either way.
    pub wal: bool,
    /// Checkpoint once the log holds this many bytes since the last one; this also bounds the
    /// log file's size (a single larger batch still fits), the replay after a crash, and the free
    /// space a checkpoint or a restart after a full disk needs (see the module docs).
    pub wal_bytes: u64,
    /// Once the in-memory tail (see the module docs) holds this many encoded bytes, it is written
    /// to redb in a commit without sync between checkpoints, so that neither the tail's memory nor
    /// the work of one commit grows with the log (each such commit holds up the batches behind
    /// it; about 3-4 ms at 256 KiB of ~120-byte updates, estimated in BENCHMARKS.md).
    pub tail_bytes: usize,
    /// Checkpoint at most this long after the first batch that only the log holds, also when
    /// idle. Longer means fewer (and longer) checkpoint stalls for the batches behind them.
    pub checkpoint_interval: Duration,
    /// After a failed write, the first retry to reopen the files waits this long; later ones
    /// wait twice as long each, up to 30 s.
    pub recovery_interval: Duration,
    /// Open even though the write-ahead log is damaged at this byte offset with acknowledged
    /// updates after it ([`StoreError::LogDamaged`] names it): replay what precedes it, drop the
    /// rest, and move the damaged log aside as `wal.damaged`. Damage anywhere else still refuses
    /// the open, so a value left in place cannot drop some later damage unseen.
    pub truncate_damaged_log_at: Option<u64>,
}

impl Default for RedbOptions {
    fn default() -> Self {
        RedbOptions {
            max_batch: 1024,
            max_batch_bytes: 1 << 20,
            queue_capacity: 8192,
            broadcast_capacity: 4096,
            cache_bytes: DEFAULT_CACHE_BYTES,
            read_bytes: DEFAULT_READ_BYTES,
            wal: true,
            wal_bytes: 4 << 20,
            tail_bytes: 256 << 10,
            checkpoint_interval: Duration::from_secs(1),
            recovery_interval: Duration::from_secs(1),
            truncate_damaged_log_at: None,
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
    /// The writer's state, shared with the writer thread; an append takes it itself when the
    /// writer is idle (see `inline`).
    shared: writer::Shared,
    /// Appends committed by their own task, see [`RedbStore::inline_commits`].
    inline_commits: AtomicU64,
    /// Set by a test to commit on the appending task whenever the writer is idle, whatever the
    /// runtime's workers are doing (see `inline`).
    #[cfg(test)]
    always_inline: AtomicBool,
    /// The database, shared with the writer thread, which replaces it when it reopens the file.
    slot: Arc<DbSlot>,
    /// Entries acknowledged but not yet in redb, merged into every read (see `tail`).
    tail: Arc<Tail>,
    /// See the writer's field of the same name.
    #[cfg(test)]
    gate: Arc<tokio::sync::Mutex<()>>,
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
    /// Node leases: only this process can use the file, so they live in memory.
    leases: LocalLeases,
    /// See [`RedbOptions::read_bytes`].
    read_bytes: usize,
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
    /// A batch append's updates, each with its own reply: the writer puts them in one batch
    /// together (see [`Store::append_batch`]).
    AppendBatch {
        updates: Vec<(Update, Reply<Stored>)>,
    },
    Prune {
        retention: Retention,
        reply: Reply<u64>,
    },
    Close {
        reply: oneshot::Sender<()>,
    },
    /// Sent after an append committed by its own task (see `inline`) started the log or filled
    /// the tail: the writer thread's timer and tail bound must take it into account.
    Wake,
    /// Asks whether a store marked unwritable can write again: after a failed write, tries to
    /// recover when a retry is due (see `failure`); otherwise a checkpoint and a sync of the log.
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
    /// [`StoreError::DatabaseDamaged`] when the database fails its checks;
    /// [`StoreError::LogDamaged`] when the write-ahead log is damaged before acknowledged
    /// updates; [`StoreError::Corrupt`] when the log does not continue the history.
    pub fn open(dir: &Path, options: RedbOptions) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::backend(format!("cannot create data directory {}", dir.display()), e)
        })?;
        let path = dir.join(FILE_NAME);
        let opened = recover::open_database(dir, &options)?;
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
        let slot = Arc::new(DbSlot::new(opened.db));
        let tail = Arc::new(Tail::default());
        #[cfg(test)]
        let gate = Arc::<tokio::sync::Mutex<()>>::default();
        let (requests, queue) = mpsc::channel(options.queue_capacity.max(1));
        let (live, _) = broadcast::channel(options.broadcast_capacity.max(1));
        let writable = Arc::new(AtomicBool::new(true));
        let commits = Arc::new(AtomicU64::new(0));
        let checkpoints = Arc::new(AtomicU64::new(0));
        let writer = Writer {
            slot: Arc::clone(&slot),
            tail: Arc::clone(&tail),
            #[cfg(test)]
            gate: Arc::clone(&gate),
            dir: dir.to_owned(),
            options: RedbOptions {
                max_batch: options.max_batch.max(1),
                ..options
            },
            live: live.clone(),
            writable: Arc::clone(&writable),
            commits: Arc::clone(&commits),
            checkpoints: Arc::clone(&checkpoints),
            last_seq: opened.last_seq,
            wal,
            unsaved_since: None,
            failure: None,
            prefix_scanned: None,
            closed: false,
        };
        let shared: writer::Shared = Arc::new(std::sync::Mutex::new(writer));
        let thread_shared = Arc::clone(&shared);
        let writer = thread::Builder::new()
            .name("ssehub-store-writer".into())
            .spawn(move || writer::run(thread_shared, queue, &timer))
            .map_err(|e| StoreError::backend("cannot start history writer thread", e))?;
        Ok(RedbStore {
            shared,
            inline_commits: AtomicU64::new(0),
            #[cfg(test)]
            always_inline: AtomicBool::new(false),
            slot,
            tail,
            #[cfg(test)]
            gate,
            requests: Some(requests),
            live,
            writable,
            commits,
            checkpoints,
            writer: Some(writer),
            path,
            read_bytes: options.read_bytes.max(1),
            leases: LocalLeases::default(),
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

    /// Appends committed by the appending task itself since open, because the writer was idle
    /// (see the module docs); the rest of [`RedbStore::commits`] were the writer thread's.
    #[must_use]
    pub fn inline_commits(&self) -> u64 {
        self.inline_commits.load(Ordering::Relaxed)
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
        f: impl FnOnce(&Database, &Tail) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let slot = Arc::clone(&self.slot);
        let tail = Arc::clone(&self.tail);
        // The handle is taken inside the task and dropped with it, so that a reopen waits only
        // for reads in progress.
        tokio::task::spawn_blocking(move || f(&*slot.get()?, &tail))
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
        if let Some(idle) = self.idle_writer(&update) {
            return self.commit_inline(idle, update);
        }
        self.request(|reply| Request::Append { update, reply })
            .await
    }

    async fn append_batch(&self, updates: Vec<Update>) -> Vec<Result<Stored, StoreError>> {
        if updates.is_empty() {
            return Vec::new();
        }
        let count = updates.len();
        let (updates, answers): (Vec<_>, Vec<_>) = updates
            .into_iter()
            .map(|update| {
                let (reply, answer) = oneshot::channel();
                ((update, reply), answer)
            })
            .unzip();
        let sent = match self.requests.as_ref() {
            Some(requests) => requests
                .send(Request::AppendBatch { updates })
                .await
                .is_ok(),
            None => false,
        };
        if !sent {
            return (0..count).map(|_| Err(StoreError::Closed)).collect();
        }
        let mut results = Vec::with_capacity(count);
        for answer in answers {
            // A dropped reply means the writer stopped (closed) before reaching the request.
            results.push(answer.await.unwrap_or(Err(StoreError::Closed)));
        }
        results
    }

    async fn read_after(&self, after: Cursor, limit: usize) -> Result<Replay, StoreError> {
        let max_bytes = self.read_bytes;
        self.read("history read task failed", move |db, tail| {
            read::read_after(db, tail, &after, limit, max_bytes)
        })
        .await
    }

    async fn get(&self, id: &str) -> Result<Option<Stored>, StoreError> {
        let id = id.to_owned();
        self.read("history read task failed", move |db, tail| {
            read::get(db, tail, &id)
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
        let files = [self.path.clone(), self.path.with_file_name(wal::FILE_NAME)];
        self.read("history stats task failed", move |db, tail| {
            let counts = read::counts(db, tail)?;
            Ok(StoreStats {
                retained: counts.retained,
                first_seq: counts.first_seq,
                last_seq: counts.last_seq,
                writable,
                // The database file and the write-ahead log; a missing log (none yet) is 0.
                bytes: Some(
                    files
                        .iter()
                        .filter_map(|f| std::fs::metadata(f).ok())
                        .map(|m| m.len())
                        .sum(),
                ),
            })
        })
        .await
    }

    async fn renew_lease(&self, node: &str, ttl: Duration) -> Result<Leases, StoreError> {
        Ok(self.leases.renew(node, ttl))
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
