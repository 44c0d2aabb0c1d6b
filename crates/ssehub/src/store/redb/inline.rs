//! Appends committed by the appending task itself, on its own thread, when the writer is idle.
//!
//! A lone append handed to the writer thread costs two thread wake-ups besides its sync: the
//! writer's, and the appending task's when the answer comes back (on this 2-core VM each is
//! worth ~10-15 µs of CPU, more than the rest of the store's work; BENCHMARKS.md, "History
//! store"). So when nothing waits in the queue and nobody holds the writer, the task takes the
//! writer's lock and commits its update to the log itself: the same `write` + `fdatasync`, the
//! same tail, the same broadcast, in the same order as any batch, because every commit holds
//! the lock. Everything slower stays on the writer thread: a checkpoint (due, or a full log),
//! recovery after a failure, a full tail, prunes; and so does any append that finds the queue
//! non-empty or the writer busy, so under load the writer thread still batches (group commit)
//! and no task waits for another's commit.
//!
//! The task blocks its runtime worker for the sync (~0.1-0.2 ms here). That is the price of
//! the saved wake-ups; it is paid only when the store is idle, so at most one worker blocks at
//! a time and only for one sync.

use std::sync::atomic::Ordering;
use std::sync::{Arc, MutexGuard};

use tokio::sync::oneshot;

use super::writer::Writer;
use super::{RedbStore, Request};
use crate::store::{StoreError, Stored};
use crate::update::Update;

/// The writer, locked by an appending task that found it idle.
pub(super) struct Idle<'a> {
    writer: MutexGuard<'a, Writer>,
    /// A test that parks the writer parks this path too.
    #[cfg(test)]
    _parked: tokio::sync::MutexGuard<'a, ()>,
}

impl RedbStore {
    /// The writer, if `update` can be committed on this thread now: nothing is queued, nobody
    /// holds the writer, another worker of this runtime is idle, and the commit is the log's fast
    /// path. `None` sends the update to the writer thread.
    pub(super) fn idle_writer(&self, update: &Update) -> Option<Idle<'_>> {
        let requests = self.requests.as_ref()?;
        #[cfg(test)]
        let idle = self.always_inline.load(Ordering::Relaxed) || another_worker_is_idle();
        #[cfg(not(test))]
        let idle = another_worker_is_idle();
        // Whatever is queued was there first and goes with the writer thread's next batch.
        if requests.capacity() < requests.max_capacity() || !idle {
            return None;
        }
        #[cfg(test)]
        let parked = self.gate.try_lock().ok()?;
        let writer = self.shared.try_lock().ok()?;
        writer.takes_inline(update).then_some(Idle {
            writer,
            #[cfg(test)]
            _parked: parked,
        })
    }

    /// Commits `update` with the writer [`RedbStore::idle_writer`] returned.
    pub(super) fn commit_inline(
        &self,
        idle: Idle<'_>,
        update: Update,
    ) -> Result<Stored, StoreError> {
        let mut writer = idle.writer;
        let started_log = writer.unsaved_since.is_none();
        let answer = writer.commit_one(update);
        self.inline_commits.fetch_add(1, Ordering::Relaxed);
        // The writer thread keeps the checkpoint timer and applies a full tail: tell it.
        let wake = (started_log && writer.unsaved_since.is_some()) || writer.tail_full();
        drop(writer);
        if let (true, Some(requests)) = (wake, self.requests.as_ref()) {
            // A full queue means the writer thread is busy and looks at both soon anyway.
            let _ = requests.try_send(Request::Wake);
        }
        answer
    }
}

/// Whether the runtime this runs on has a worker with nothing to do, so that blocking this one
/// for a sync holds up no task. Under load (a large fan-out keeping every worker busy) a blocked
/// worker would cost more than the wake-ups are worth: fanout1000 lost ~10 % of its deliveries
/// per second when every idle-store append took this path (BENCHMARKS.md). A current-thread
/// runtime has no other worker, and a thread outside a runtime nothing to hold up but itself;
/// both hand the append to the writer thread.
fn another_worker_is_idle() -> bool {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return false;
    };
    let metrics = handle.metrics();
    // An odd count is a parked worker; this one is running, so a parked one is another.
    (0..metrics.num_workers()).any(|worker| metrics.worker_park_unpark_count(worker) % 2 == 1)
}

/// Bytes of a log record beyond the update's own strings, generously: only decides whether an
/// append fits the log without a checkpoint (a wrong guess costs a checkpoint, nothing else).
const RECORD_OVERHEAD: usize = 512;

impl Writer {
    /// Whether `update` can be committed to the log alone, now.
    fn takes_inline(&self, update: &Update) -> bool {
        let size = update.data.len()
            + update.id.len()
            + update.topics.iter().map(String::len).sum::<usize>()
            + RECORD_OVERHEAD;
        !self.closed
            && self.failure.is_none()
            && !self.checkpoint_due()
            && !self.tail_full()
            && self
                .wal
                .as_ref()
                .is_some_and(|wal| wal.used() + size as u64 <= self.options.wal_bytes)
    }

    /// Whether the tail holds what the writer thread should write to redb now.
    pub(super) fn tail_full(&self) -> bool {
        let held = self.tail.bytes();
        held > 0 && held >= self.options.tail_bytes
    }

    /// Commits one update as a batch of its own and returns its answer.
    fn commit_one(&mut self, update: Update) -> Result<Stored, StoreError> {
        let (reply, mut answer) = oneshot::channel();
        let mut batch = vec![(Arc::new(update), reply, false)];
        self.commit(&mut batch);
        answer
            .try_recv()
            .unwrap_or_else(|_| Err(StoreError::Closed))
    }
}
