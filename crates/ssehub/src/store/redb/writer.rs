//! The writer: the only place that writes to the database, behind one lock; its thread, which
//! takes every request an appending task did not commit itself (see `inline`), batches appends
//! (group commit), makes each batch durable in the write-ahead log and keeps it in the in-memory tail
//! until a checkpoint writes the tail to redb, and runs prunes (`prune`) in chunks between
//! batches (see the parent module's docs). After a failed write it refuses work until `failure`
//! has reopened the files.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use redb::{Durability, ReadableDatabase, WriteTransaction};
use tokio::sync::{broadcast, mpsc};

use super::failure::Failure;
use super::prune::{PrefixScan, PruneJob};
use super::slot::DbSlot;
use super::tail::{Entry, Tail};
use super::wal::Wal;
use super::{IDS, LAST_SEQ, META, RedbOptions, Reply, Request, UPDATES, commit_error, write_error};
use crate::store::{StoreError, Stored, codec};
use crate::update::Update;

/// The writer thread's state: the only place that writes to the database.
pub(super) struct Writer {
    /// The database, shared with the read tasks; the writer swaps in a new handle on recovery.
    pub(super) slot: Arc<DbSlot>,
    /// What the log holds and redb does not yet, shared with the read tasks (see `tail`).
    pub(super) tail: Arc<Tail>,
    /// Held by a test to park the writer before its next batch, so that appends queue up.
    #[cfg(test)]
    pub(super) gate: Arc<tokio::sync::Mutex<()>>,
    /// The data directory, to reopen the files in.
    pub(super) dir: PathBuf,
    /// Batching, checkpoint and recovery settings, and how to reopen the database.
    pub(super) options: RedbOptions,
    /// Where committed entries are announced.
    pub(super) live: broadcast::Sender<Stored>,
    /// Cleared by a failure, set again by recovery or a successful probe; read by `stats`.
    pub(super) writable: Arc<AtomicBool>,
    /// Counts successful commits, see [`RedbStore::commits`](super::RedbStore::commits).
    pub(super) commits: Arc<AtomicU64>,
    /// See [`RedbStore::checkpoints`](super::RedbStore::checkpoints).
    pub(super) checkpoints: Arc<AtomicU64>,
    /// Last seq committed; the next append gets `last_seq + 1`.
    pub(super) last_seq: u64,
    /// The write-ahead log; `None` when every batch is a durable commit.
    pub(super) wal: Option<Wal>,
    /// When the oldest batch that only the log holds durably was committed; `None` while redb's
    /// durable state is complete.
    pub(super) unsaved_since: Option<Instant>,
    /// Set by a failed write; while set, nothing is written until recovery succeeds.
    pub(super) failure: Option<Failure>,
    /// How far pruning by topic prefix has looked (see `prune`), so each prune resumes there
    /// instead of rescanning the older history it keeps; in memory, so a restart scans once.
    pub(super) prefix_scanned: Option<PrefixScan>,
    /// Set when the writer thread closes: an append committed by its own task is refused.
    pub(super) closed: bool,
}

/// The writer's state behind the lock that the writer thread and, for a lone append, the
/// appending task itself take (see `inline`).
pub(super) type Shared = Arc<Mutex<Writer>>;

/// Locks the writer. A panic while it was held (a bug) leaves it poisoned; the state is still
/// the writer's last consistent one, as every write is all-or-nothing through `fail`.
pub(super) fn lock(shared: &Mutex<Writer>) -> MutexGuard<'_, Writer> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The writer thread: takes the requests the appending tasks did not commit themselves, in
/// batches, and runs the checkpoints, prunes and recoveries that are due.
pub(super) fn run(
    shared: Shared,
    mut queue: mpsc::Receiver<Request>,
    timer: &tokio::runtime::Runtime,
) {
    let mut batch: Vec<Pending> = Vec::new();
    let mut prunes: std::collections::VecDeque<PruneJob> = Default::default();
    let mut open = true;
    let mut close = None;
    while open {
        // Block for work only when no prune is pending; otherwise keep pruning between
        // whatever appends arrive.
        let mut next = if prunes.is_empty() {
            match next_request(&shared, &mut queue, timer) {
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
        let mut writer = lock(&shared);
        let mut bytes = 0;
        while let Some(request) = next.take() {
            match request {
                Request::Append { update, reply } => {
                    bytes += update.data.len() + update.id.len();
                    batch.push((Arc::new(update), reply, false));
                }
                // Kept whole in this batch even beyond `max_batch` or `max_batch_bytes`
                // (as a single large update is): so the updates get consecutive seqs and
                // a failed commit stores none of them.
                Request::AppendBatch { updates } => {
                    for (k, (update, reply)) in updates.into_iter().enumerate() {
                        bytes += update.data.len() + update.id.len();
                        batch.push((Arc::new(update), reply, k > 0));
                    }
                }
                Request::Prune { retention, reply } => {
                    prunes.push_back(PruneJob::new(&retention, reply));
                }
                Request::Close { reply } => {
                    close = Some(reply);
                    break;
                }
                Request::Probe { reply } => {
                    let _ = reply.send(writer.probe());
                }
                // An append committed by its own task started the log: the timer must know.
                Request::Wake => {}
            }
            if batch.len() >= writer.options.max_batch || bytes >= writer.options.max_batch_bytes {
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
            writer.commit_appends(&mut batch);
        }
        // A tail grown past its bound by appends committed by their own tasks, which leave
        // this commit to the writer thread.
        writer.apply_tail_if_full();
        if close.is_some() || !open {
            // Shutting down: report partial prunes rather than hold up the close.
            for job in prunes.drain(..) {
                let _ = job.reply.send(Ok(job.removed));
            }
            // Refuse further requests before answering, so that `close` returning means
            // every later append gets `Closed`; appends by their own tasks check `closed`.
            writer.closed = true;
            queue.close();
            break;
        }
        if let Some(job) = prunes.front_mut() {
            match writer
                .recover_if_due()
                .and_then(|()| writer.prune_chunk(job))
            {
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
    let mut writer = lock(&shared);
    writer.closed = true;
    if writer.failure.is_some() {
        // Without waiting for the retry: this is the last chance to put the marker over a
        // refused batch before a restart would replay it.
        let _ = writer.recover();
    }
    if writer.failure.is_none() && writer.unsaved_since.is_some() {
        if let Err(error) = writer.checkpoint() {
            tracing::error!(error = %error, "cannot checkpoint history on close; the write-ahead log keeps it for the next open");
        }
    }
    drop(writer);
    if let Some(reply) = close {
        let _ = reply.send(());
    }
}

/// Waits for the next request; `None` once the queue is closed and empty. While the log holds
/// batches redb has not made durable, a checkpoint is taken when the interval runs out first;
/// after a failure, recovery is tried when its retry is due, so that a store with nothing to
/// do still becomes writable again once the disk has room.
fn next_request(
    shared: &Mutex<Writer>,
    queue: &mut mpsc::Receiver<Request>,
    timer: &tokio::runtime::Runtime,
) -> Option<Request> {
    loop {
        let Some(deadline) = lock(shared).deadline() else {
            return queue.blocking_recv();
        };
        let left = deadline.saturating_duration_since(Instant::now());
        // The timeout must be created inside the runtime, whose timer it registers with.
        let waited = timer.block_on(async { tokio::time::timeout(left, queue.recv()).await });
        if let Ok(request) = waited {
            return request;
        }
        lock(shared).deadline_passed();
    }
}

impl Writer {
    /// When the writer thread must act without a request: a checkpoint of what only the log
    /// holds, or a retry of recovery after a failure.
    fn deadline(&self) -> Option<Instant> {
        match (&self.failure, self.unsaved_since) {
            (Some(failure), _) => failure.retry_at(),
            (None, Some(since)) => Some(since + self.options.checkpoint_interval),
            (None, None) => None,
        }
    }

    /// Does what [`Writer::deadline`] was for, if it is still due (a commit by an appending
    /// task may have taken the checkpoint meanwhile).
    fn deadline_passed(&mut self) {
        if self.deadline().is_none_or(|at| Instant::now() < at) {
            return;
        }
        if self.failure.is_some() {
            // Logged inside; the next attempt is scheduled there.
            let _ = self.recover();
        } else if let Err(error) = self.checkpoint() {
            tracing::error!(error = %error, "cannot checkpoint history");
            self.fail(error, None);
        }
    }

    /// Makes `batch` durable (see the module docs), then broadcasts and answers in seq order.
    pub(super) fn commit_appends(&mut self, batch: &mut Vec<Pending>) {
        #[cfg(test)]
        let gate = Arc::clone(&self.gate);
        #[cfg(test)]
        let _parked = gate.blocking_lock();
        self.commit(batch);
    }

    /// [`Writer::commit_appends`], without the test's gate.
    pub(super) fn commit(&mut self, batch: &mut Vec<Pending>) {
        match self.recover_if_due().and_then(|()| self.write_batch(batch)) {
            Ok(outcomes) => {
                for ((update, reply, _), outcome) in batch.drain(..).zip(outcomes) {
                    let answer = outcome.map(|seq| {
                        let stored = Stored { seq, update };
                        // No receivers is not an error: nobody is subscribed yet.
                        let _ = self.live.send(stored.clone());
                        stored
                    });
                    // The publisher may have gone away; the update is stored regardless.
                    let _ = reply.send(answer);
                }
            }
            Err(error) => {
                for (_, reply, _) in batch.drain(..) {
                    let _ = reply.send(Err(error.clone()));
                }
            }
        }
    }

    /// Once the tail holds [`RedbOptions::tail_bytes`], writes it to redb (see `apply_tail`).
    /// After a batch's answers, so that the batch does not wait for it; never an empty commit
    /// (a `tail_bytes` of 0, or every update refused).
    fn apply_tail_if_full(&mut self) {
        if self.failure.is_none() && self.tail_full() {
            if let Err(error) = self.apply_tail() {
                self.fail(error, None);
            }
        }
    }

    /// Returns one outcome per update (its seq, or why it alone was refused); an `Err` means
    /// the whole batch failed, nothing was stored, and the writer is failed (see `failure`).
    pub(super) fn write_batch(
        &mut self,
        batch: &[Pending],
    ) -> Result<Vec<Result<u64, StoreError>>, StoreError> {
        let mut logged_at = None;
        let written = self.try_write_batch(batch, &mut logged_at);
        if let Err(error) = &written {
            self.fail(error.clone(), logged_at);
        }
        written
    }

    /// [`Writer::write_batch`]; sets `logged_at` to where the batch went in the log once it may
    /// have left records there.
    fn try_write_batch(
        &mut self,
        batch: &[Pending],
        logged_at: &mut Option<u64>,
    ) -> Result<Vec<Result<u64, StoreError>>, StoreError> {
        let (outcomes, accepted) = self.screen(batch)?;
        let Some(&(_, last, _)) = accepted.last() else {
            // Every update was refused: nothing to make durable, skip the fsync.
            return Ok(outcomes);
        };
        let size = Wal::size_of(accepted.iter().map(|(_, _, bytes)| bytes.as_slice()));
        let checkpoint = self.checkpoint_due();
        let wal_bytes = self.options.wal_bytes;
        match self.wal.as_mut() {
            // A batch larger than the whole log still goes to an empty log.
            Some(wal) if !checkpoint && (wal.used() == 0 || wal.used() + size <= wal_bytes) => {
                // From here on, a failure may leave the batch's records in the log (a `write` cut
                // short, or a failed `fdatasync`): the failure puts a marker over them, or a
                // replay would store them after all.
                *logged_at = Some(wal.used());
                let records = accepted
                    .iter()
                    .map(|(_, seq, bytes)| (*seq, bytes.as_slice()));
                wal.append(records).map_err(|e| {
                    StoreError::backend("cannot write history batch to the write-ahead log", e)
                })?;
                // Durable now; readers see it from here on, before the answer and broadcast.
                self.tail
                    .push(accepted.into_iter().map(|(i, seq, encoded)| Entry {
                        stored: Stored {
                            seq,
                            update: Arc::clone(&batch[i].0),
                        },
                        encoded,
                    }));
                self.unsaved_since.get_or_insert_with(Instant::now);
            }
            // No log, a checkpoint is due, or the log is full: this commit is the checkpoint,
            // and holds the tail and the batch.
            _ => {
                let txn = self.begin_checkpoint(last)?;
                {
                    let mut updates = txn.open_table(UPDATES).map_err(commit_error)?;
                    let mut ids = txn.open_table(IDS).map_err(commit_error)?;
                    for (i, seq, bytes) in &accepted {
                        updates
                            .insert(*seq, bytes.as_slice())
                            .map_err(commit_error)?;
                        ids.insert(batch[*i].0.id.as_str(), *seq)
                            .map_err(commit_error)?;
                    }
                }
                txn.commit().map_err(commit_error)?;
                self.checkpointed();
            }
        }
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.last_seq = last;
        Ok(outcomes)
    }

    /// Assigns seqs to the updates of `batch` that can be stored and encodes them; refuses the
    /// others (a duplicate id, in the batch itself, the tail or redb; too large), and with
    /// such a refusal every later update of the same `append_batch` (see `Pending`). Returns one
    /// outcome per update and the accepted ones as (index in `batch`, seq, encoding). Writes
    /// nothing: a batch refused whole leaves no trace.
    fn screen(&self, batch: &[Pending]) -> Result<Screened, StoreError> {
        let db = self.slot.get()?;
        let txn = db.begin_read().map_err(commit_error)?;
        let ids = txn.open_table(IDS).map_err(commit_error)?;
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut accepted: Vec<(usize, u64, Vec<u8>)> = Vec::with_capacity(batch.len());
        let mut in_batch = HashSet::new();
        let mut seq = self.last_seq;
        // The refusal that stops the `append_batch` at hand, if one did.
        let mut stopped: Option<StoreError> = None;
        for (i, (update, _, chained)) in batch.iter().enumerate() {
            if !chained {
                stopped = None;
            }
            if let Some(error) = &stopped {
                outcomes.push(Err(error.clone()));
                continue;
            }
            let id = update.id.as_str();
            let refused = if in_batch.contains(id)
                || self.tail.contains_id(id)
                || ids.get(id).map_err(commit_error)?.is_some()
            {
                Err(StoreError::Duplicate { id: id.to_owned() })
            } else {
                // redb refuses larger values, and would refuse them only at the checkpoint.
                match codec::encode(update, seq + 1) {
                    Ok(bytes) if bytes.len() <= MAX_ENTRY_BYTES => Ok(bytes),
                    Ok(bytes) => Err(too_large(update, bytes.len())),
                    Err(_) => Err(too_large(update, usize::MAX)),
                }
            };
            let bytes = match refused {
                Ok(bytes) => bytes,
                Err(error) => {
                    stopped = Some(error.clone());
                    outcomes.push(Err(error));
                    continue;
                }
            };
            let next = seq + 1;
            if batch.len() > 1 {
                in_batch.insert(id);
            }
            seq = next;
            outcomes.push(Ok(seq));
            accepted.push((i, seq, bytes));
        }
        Ok((outcomes, accepted))
    }

    /// Whether the next batch must be a durable redb commit rather than go to the log.
    pub(super) fn checkpoint_due(&self) -> bool {
        self.wal.is_none()
            || self
                .unsaved_since
                .is_some_and(|since| since.elapsed() >= self.options.checkpoint_interval)
    }

    /// Begins a durable transaction holding the tail and `last_seq` as the seq counter: every
    /// durable commit is a checkpoint (followed by [`Writer::checkpointed`]), since the log
    /// starts over after it.
    pub(super) fn begin_checkpoint(&self, last_seq: u64) -> Result<WriteTransaction, StoreError> {
        self.with_tail(self.begin_durable()?, last_seq)
    }

    /// Writes the tail to redb without a sync and empties it; the log keeps everything until the
    /// next checkpoint, since a crash returns redb to its last durable commit. A failure leaves
    /// the tail as it was: the caller calls [`Writer::fail`], and recovery replays the log.
    fn apply_tail(&mut self) -> Result<(), StoreError> {
        let mut txn = self.slot.get()?.begin_write().map_err(write_error)?;
        txn.set_durability(Durability::None).map_err(write_error)?;
        let txn = self.with_tail(txn, self.last_seq)?;
        txn.commit().map_err(commit_error)?;
        // Only now: a read that found the tail's entries gone finds them in redb.
        self.tail.clear();
        Ok(())
    }

    /// Inserts the tail's entries into `txn` and sets the seq counter to `last_seq`.
    fn with_tail(
        &self,
        txn: WriteTransaction,
        last_seq: u64,
    ) -> Result<WriteTransaction, StoreError> {
        {
            let mut updates = txn.open_table(UPDATES).map_err(commit_error)?;
            let mut ids = txn.open_table(IDS).map_err(commit_error)?;
            self.tail.try_for_each(|entry| {
                let seq = entry.stored.seq;
                updates
                    .insert(seq, entry.encoded.as_slice())
                    .map_err(commit_error)?;
                ids.insert(entry.stored.update.id.as_str(), seq)
                    .map_err(commit_error)?;
                Ok::<_, StoreError>(())
            })?;
            let mut meta = txn.open_table(META).map_err(commit_error)?;
            meta.insert(LAST_SEQ, last_seq).map_err(commit_error)?;
        }
        Ok(txn)
    }

    /// Records that a durable commit just made redb's state complete: the tail is in redb, so
    /// it empties, and the log starts over.
    pub(super) fn checkpointed(&mut self) {
        self.tail.clear();
        self.unsaved_since = None;
        if let Some(wal) = self.wal.as_mut() {
            wal.reset();
            self.checkpoints.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Makes everything committed so far durable in redb (rewriting the seq counter) and starts
    /// the log over. A failure leaves redb's handle unusable: the caller calls [`Writer::fail`].
    fn checkpoint(&mut self) -> Result<(), StoreError> {
        let txn = self.begin_checkpoint(self.last_seq)?;
        txn.commit().map_err(commit_error)?;
        self.checkpointed();
        Ok(())
    }

    /// After a failure, tries to recover when a retry is due; otherwise takes a checkpoint and
    /// syncs the log, and records whether that worked.
    fn probe(&mut self) -> Result<(), StoreError> {
        if self.failure.is_some() {
            return self.recover_if_due();
        }
        let result = self.checkpoint().and_then(|()| match &self.wal {
            Some(wal) => wal.sync().map_err(|e| {
                StoreError::backend(
                    format!("cannot sync write-ahead log {}", wal.path().display()),
                    e,
                )
            }),
            None => Ok(()),
        });
        match &result {
            Ok(()) => self.writable.store(true, Ordering::Release),
            Err(error) => self.fail(error.clone(), None),
        }
        result
    }

    pub(super) fn begin_durable(&self) -> Result<WriteTransaction, StoreError> {
        let mut txn = self.slot.get()?.begin_write().map_err(write_error)?;
        txn.set_durability(Durability::Immediate)
            .map_err(write_error)?;
        Ok(txn)
    }
}

/// An append waiting in the writer's batch: the update, its reply, and whether it continues the
/// previous one's [`Store::append_batch`](crate::store::Store::append_batch), which a refusal
/// stops (so that one refused update leaves none after it stored).
pub(super) type Pending = (Arc<Update>, Reply<Stored>, bool);

/// What [`Writer::screen`] returns: an outcome per update, and the accepted ones as (index in
/// the batch, seq, encoding).
type Screened = (Vec<Result<u64, StoreError>>, Vec<(usize, u64, Vec<u8>)>);

/// The largest encoded entry stored: what redb takes as one value (3 GiB), rounded down, and less
/// than a log record's length field holds.
const MAX_ENTRY_BYTES: usize = 1 << 30;

fn too_large(update: &Update, bytes: usize) -> StoreError {
    StoreError::TooLarge {
        id: update.id.clone(),
        bytes,
    }
}
