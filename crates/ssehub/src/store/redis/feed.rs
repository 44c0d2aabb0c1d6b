//! The live feed: one task per node that reads the log after the last entry it delivered and
//! broadcasts every new entry, whoever appended it, in seq order.
//!
//! Caught up, the task waits in `XREAD BLOCK` on its own connection until an entry after its
//! position exists or [`RedisOptions::poll`](super::RedisOptions::poll) passes, then reads
//! with `read.lua`. The wait is only a wake-up: the script checks the history's identity and
//! that the newest entries the feed delivered are still there, so entries of a history that
//! replaced the one the feed followed are never taken for its continuation.
//!
//! Backpressure: the broadcast is bounded and never waited for; a receiver that falls behind
//! gets `Lagged` and catches up from the store, as with the embedded store.
//!
//! While Redis does not answer, the task retries with backoff (100 ms doubling to 2 s) and
//! keeps its position, so it resumes after the last entry it delivered.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use redis::Value;
use redis::aio::ConnectionManager;
use tokio_util::sync::CancellationToken;

use super::scripts::Read;
use super::view::{Change, Generation};
use super::{NoAnswer, Shared, lock};
use crate::store::{StoreError, Stored, codec};

/// Delivered entries the feed asks Redis about on each read: enough to find where a
/// history that went backwards and grew again parts from what was delivered.
const REMEMBERED: usize = 16;

const FIRST_RETRY: Duration = Duration::from_millis(100);
const LAST_RETRY: Duration = Duration::from_secs(2);

struct Feed {
    /// The store's connection, view and broadcast.
    shared: Arc<Shared>,
    /// Used only for the blocking wait.
    conn: ConnectionManager,
    /// The generation `pos` and `delivered` belong to.
    generation: Generation,
    /// Redis seq through which entries were delivered (or skipped, when corrupt).
    pos: u64,
    /// The newest delivered entries as (Redis seq, id), oldest first.
    delivered: VecDeque<(u64, String)>,
}

/// Runs the feed of `shared` until `stop` is cancelled.
pub(super) async fn run(
    shared: Arc<Shared>,
    conn: ConnectionManager,
    generation: Generation,
    stop: CancellationToken,
) {
    let mut feed = Feed {
        pos: generation.base,
        shared,
        conn,
        generation,
        delivered: VecDeque::new(),
    };
    let mut failures: u32 = 0;
    loop {
        let outcome = tokio::select! {
            () = stop.cancelled() => return,
            outcome = feed.step() => outcome,
        };
        match outcome {
            Ok(()) => {
                if failures > 0 {
                    tracing::info!(
                        redis = %feed.shared.server,
                        after_redis_seq = feed.pos,
                        "redis answers again; live feed resumed"
                    );
                }
                failures = 0;
            }
            Err(err) => {
                if failures == 0 {
                    tracing::warn!(error = %err, "live feed cannot read redis; retrying with backoff");
                } else {
                    tracing::debug!(error = %err, failures, "live feed still cannot read redis");
                }
                let delay = FIRST_RETRY
                    .saturating_mul(2u32.saturating_pow(failures))
                    .min(LAST_RETRY);
                failures = failures.saturating_add(1);
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

impl Feed {
    /// Reads and delivers what follows `pos`; waits for more when caught up.
    async fn step(&mut self) -> Result<(), StoreError> {
        if self.read().await? {
            self.wait().await?;
        }
        Ok(())
    }

    /// One read; true when the feed is caught up.
    async fn read(&mut self) -> Result<bool, StoreError> {
        let (now, high) = lock(&self.shared.view).current();
        if now.id != self.generation.id {
            // Entries after a new generation's base are new to this node.
            self.pos = now.base;
            self.generation = now;
            self.delivered.clear();
        }
        let batch = self.shared.options.feed_batch.max(1);
        let after = self.pos.to_string();
        // A position, not a cursor: replay after it even if it is not in history.
        let cursor = ("stale", after.as_str());
        let delivered: Vec<(u64, String)> = self.delivered.iter().cloned().collect();
        let read = self
            .shared
            .read(&self.generation, cursor, batch, &delivered)
            .await?;
        match read {
            Read::OtherEpoch(identity) => {
                self.shared.settle(&self.generation, high, &identity);
                Ok(false)
            }
            Read::Diverged { identity, agreed } => {
                let change = Change::Diverged {
                    head: identity.head,
                    agreed,
                };
                lock(&self.shared.view).rebase(self.generation.id, change);
                Ok(false)
            }
            Read::Ok {
                identity,
                more,
                entries,
                ..
            } => {
                if !self.shared.settle(&self.generation, high, &identity) {
                    return Ok(false);
                }
                let caught_up = !more;
                for (redis_seq, bytes) in entries {
                    let seq = self.generation.seq(redis_seq);
                    match codec::decode(&bytes, super::REDIS_CHECKSUM_SEQ) {
                        Ok(update) => {
                            self.delivered.push_back((redis_seq, update.id.clone()));
                            if self.delivered.len() > REMEMBERED {
                                self.delivered.pop_front();
                            }
                            // No receiver (no hub yet) is not an error: history has it.
                            let _ = self.shared.live.send(Stored {
                                seq,
                                update: Arc::new(update),
                            });
                        }
                        Err(reason) => {
                            tracing::error!(
                                seq,
                                reason,
                                "corrupt history entry left out of live delivery; replays report it"
                            );
                        }
                    }
                    self.pos = redis_seq;
                }
                lock(&self.shared.view).delivered(self.generation.id, self.pos);
                Ok(caught_up)
            }
        }
    }

    /// Blocks until the log has an entry after `pos`, or `poll` passed.
    async fn wait(&mut self) -> Result<(), StoreError> {
        let options = &self.shared.options;
        let block_ms = u64::try_from(options.poll.as_millis()).unwrap_or(u64::MAX);
        let after = format!("{}-0", self.pos);
        let mut xread = redis::cmd("XREAD");
        xread
            .arg("BLOCK")
            .arg(block_ms)
            .arg("COUNT")
            .arg(1)
            .arg("STREAMS")
            .arg(&self.shared.keys.log)
            .arg(after);
        let patience = options.poll + options.timeout;
        let server = &self.shared.server;
        let context = || format!("cannot wait for new entries in redis at {server}");
        match tokio::time::timeout(patience, xread.query_async::<Value>(&mut self.conn)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(StoreError::backend(context(), e)),
            Err(_) => Err(StoreError::backend(context(), NoAnswer(patience))),
        }
    }
}
