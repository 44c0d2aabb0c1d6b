//! A relay answer read as a Durable Stream: its chunks, in the order the pump recorded them,
//! at positions of the hub's history.
//!
//! The answer is not copied anywhere: reads page through the hub's store (`read_after`) and
//! keep the updates of the answer's topic, so what a Durable Streams client reads is exactly
//! what a Mercure or `GET /v1/streams/{id}` watcher reads, from the same durable history,
//! on any node. A position is the hub-wide `seq` of the last update looked at (the marker's
//! for the start), so it is ordered, stable across restarts and the same on every node.
//! The `[DONE]` update closes the stream; it is not itself a message.
//!
//! Reads are bounded: at most [`MAX_SCAN`] history entries and about `max_bytes` of chunks
//! per call. A read that stops early is not up to date, and the next one continues from
//! where it stopped, so a busy hub costs a reader more requests, not more memory.

use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;

use super::{Caller, Relay, RelayError, done_id, owner, topic_of};
use crate::store::Cursor;

/// Most history entries one read looks at.
const MAX_SCAN: usize = 16 * 1024;

/// History entries per store read.
const PAGE: usize = 512;

/// What one read of an answer returns.
#[derive(Debug, Default)]
pub struct AnswerRead {
    /// The chunks' JSON texts, oldest first.
    pub chunks: Vec<String>,
    /// Where the next read starts (a hub `seq`).
    pub next: u64,
    /// The answer is over (`[DONE]` is at or before `next`).
    pub closed: bool,
    /// Nothing more is recorded now after `next`.
    pub up_to_date: bool,
}

impl Relay {
    /// Checks that `caller` may read answer `id` (the rules of [`Relay::watch`]) and returns
    /// the position before its first chunk. An answer whose generator is gone is ended (a
    /// last error chunk and `[DONE]`), as a watcher would.
    ///
    /// # Errors
    /// [`RelayError::UnknownStream`] when no such answer is retained or it is not the
    /// caller's; [`RelayError::Store`] when history cannot be read.
    pub async fn open_answer(&self, caller: &Caller, id: &str) -> Result<u64, RelayError> {
        let marker = self.marker(id).await?;
        if !owner::may_access(id, marker.owner.as_deref(), caller) {
            return Err(RelayError::UnknownStream(id.to_owned()));
        }
        if !self.active().contains_key(id) && self.hub.store().get(&done_id(id)).await?.is_none() {
            let gone = match &marker.node {
                Some(node) => self.nodes_gone(node).await,
                None => true,
            };
            if gone {
                self.end_interrupted(id).await;
            }
        }
        let start = self.hub.store().get(id).await?;
        start
            .map(|s| s.seq)
            .ok_or_else(|| RelayError::UnknownStream(id.to_owned()))
    }

    /// The position after everything recorded so far (where a reader from "now" starts).
    ///
    /// # Errors
    /// [`RelayError::Store`] when history cannot be read.
    pub async fn answer_tail(&self) -> Result<u64, RelayError> {
        Ok(self
            .hub
            .store()
            .read_after(Cursor::Earliest, 0)
            .await?
            .head_seq)
    }

    /// Reads answer `id`'s chunks after position `after`, up to about `max_bytes`.
    ///
    /// # Errors
    /// [`RelayError::Store`]; [`RelayError::UnknownStream`] when the position is no longer in
    /// history (what followed it was pruned).
    pub async fn read_answer(
        &self,
        id: &str,
        after: u64,
        max_bytes: usize,
    ) -> Result<AnswerRead, RelayError> {
        let topic = topic_of(id);
        let done = done_id(id);
        let mut read = AnswerRead {
            next: after,
            ..AnswerRead::default()
        };
        let (mut scanned, mut bytes) = (0, 0);
        loop {
            let replay = self
                .hub
                .store()
                .read_after(Cursor::Seq(read.next), PAGE)
                .await?;
            if !replay.found {
                return Err(RelayError::UnknownStream(id.to_owned()));
            }
            for stored in &replay.updates {
                let u = &stored.update;
                if u.topics.contains(&topic) {
                    if u.id == done {
                        read.next = stored.seq;
                        read.closed = true;
                        read.up_to_date = true;
                        return Ok(read);
                    }
                    bytes += u.data.len();
                    read.chunks.push(u.data.clone());
                }
                read.next = stored.seq;
                scanned += 1;
                if bytes >= max_bytes || scanned >= MAX_SCAN {
                    return Ok(read);
                }
            }
            if !replay.more {
                read.up_to_date = true;
                // Read from at or past the close: still closed.
                if let Some(end) = self.hub.store().get(&done).await? {
                    read.closed = end.seq <= read.next;
                }
                return Ok(read);
            }
        }
    }

    /// Like [`Relay::read_answer`], but when nothing is there yet, waits up to `timeout` for
    /// the answer's next update.
    ///
    /// # Errors
    /// As [`Relay::read_answer`].
    pub async fn wait_answer(
        &self,
        id: &str,
        after: u64,
        max_bytes: usize,
        timeout: Duration,
    ) -> Result<AnswerRead, RelayError> {
        let topic = topic_of(id);
        // Subscribed before reading: an update recorded in between is seen by one or both.
        let mut live = self.hub.store().subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let read = self.read_answer(id, after, max_bytes).await?;
            if !read.chunks.is_empty() || read.closed || !read.up_to_date {
                return Ok(read);
            }
            loop {
                let next = tokio::select! {
                    r = live.recv() => r,
                    () = tokio::time::sleep_until(deadline) => return Ok(read),
                    () = self.shutdown.cancelled() => return Ok(read),
                };
                match next {
                    Ok(s) if s.seq > after && s.update.topics.contains(&topic) => break,
                    Ok(_) => {}
                    Err(RecvError::Lagged(_)) => break,
                    // The store is closing: the hub is shutting down.
                    Err(RecvError::Closed) => return Ok(read),
                }
            }
        }
    }
}
