//! What happens between commits: who waits for a stream to change, and when each stream was
//! last read.
//!
//! Waiters (long-polls, SSE readers) subscribe to a per-stream version counter; the writer
//! thread bumps the counters of the streams a batch touched once the batch is durable, so a
//! waiter wakes only for its own stream (a fork is not woken by its source's appends) and only
//! for data it can read. A waiter subscribes before it reads, so no commit can slip between
//! its read and its wait. The counter is dropped with its last waiter.
//!
//! Reads renew a sliding TTL but are not worth a disk write each, so their times live here;
//! a stream never read since this process started counts as read at start-up, which makes a
//! restart extend TTLs rather than expire streams whose last reads were not recorded.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

/// Per-stream change counters and last-read times.
#[derive(Debug)]
pub(crate) struct Live {
    /// Version counters of streams that have waiters, by stream id.
    watchers: Mutex<HashMap<u64, watch::Sender<u64>>>,
    /// Last read (unix ms) of streams read since start-up, by stream id.
    reads: Mutex<HashMap<u64, u64>>,
    /// When this process opened the store (unix ms): the assumed last read of the others.
    started_ms: u64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere cannot leave these maps inconsistent (every update is one insert or
    // remove), so a poisoned lock is still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Live {
    pub(crate) fn new(started_ms: u64) -> Self {
        Live {
            watchers: Mutex::new(HashMap::new()),
            reads: Mutex::new(HashMap::new()),
            started_ms,
        }
    }

    /// Starts watching stream `id` for commits.
    pub(crate) fn watch(self: &Arc<Self>, id: u64) -> Watch {
        let rx = lock(&self.watchers)
            .entry(id)
            .or_insert_with(|| watch::channel(0).0)
            .subscribe();
        Watch {
            rx,
            id,
            live: self.clone(),
        }
    }

    /// Wakes the waiters of these streams (after their batch is durable).
    pub(crate) fn changed(&self, ids: impl IntoIterator<Item = u64>) {
        let watchers = lock(&self.watchers);
        for id in ids {
            if let Some(tx) = watchers.get(&id) {
                tx.send_modify(|v| *v = v.wrapping_add(1));
            }
        }
    }

    /// Records a read of stream `id` now.
    pub(crate) fn read(&self, id: u64, now_ms: u64) {
        lock(&self.reads).insert(id, now_ms);
    }

    /// The last read of stream `id` this process knows of.
    pub(crate) fn last_read(&self, id: u64) -> u64 {
        lock(&self.reads)
            .get(&id)
            .copied()
            .unwrap_or(self.started_ms)
    }

    /// Forgets a stream that no longer exists.
    pub(crate) fn forget(&self, id: u64) {
        lock(&self.reads).remove(&id);
    }
}

/// A subscription to one stream's commits; dropping it unsubscribes.
#[derive(Debug)]
pub struct Watch {
    /// Sees every bump made after the subscription.
    rx: watch::Receiver<u64>,
    /// The stream watched.
    id: u64,
    /// To drop the counter with its last waiter.
    live: Arc<Live>,
}

impl Watch {
    /// Waits for the next commit that touched the stream. Returns at once if one happened since
    /// the last call (or since the subscription, for the first).
    pub async fn changed(&mut self) {
        if self.rx.changed().await.is_err() {
            // The counter is only dropped with its last receiver, and this is one.
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let mut watchers = lock(&self.live.watchers);
        if watchers
            .get(&self.id)
            .is_some_and(|tx| tx.receiver_count() <= 1)
        {
            watchers.remove(&self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_waiter_wakes_for_its_stream_only_and_the_counter_goes_with_it() {
        let live = Arc::new(Live::new(0));
        let mut a = live.watch(1);
        let mut b = live.watch(2);
        live.changed([1]);
        tokio::time::timeout(std::time::Duration::from_secs(5), a.changed())
            .await
            .expect("stream 1 changed");
        assert!(
            futures_util::FutureExt::now_or_never(b.changed()).is_none(),
            "stream 2 did not change"
        );
        drop(a);
        drop(b);
        assert!(lock(&live.watchers).is_empty());
    }

    #[test]
    fn unread_streams_count_as_read_at_start_up() {
        let live = Live::new(500);
        assert_eq!(live.last_read(7), 500);
        live.read(7, 900);
        assert_eq!(live.last_read(7), 900);
        live.forget(7);
        assert_eq!(live.last_read(7), 500);
    }
}
