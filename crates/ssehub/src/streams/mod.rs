//! The Durable Streams protocol's storage and live tail: append-only byte streams addressed
//! by URL path, read from any offset, tailed live, closed, forked, expired.
//!
//! ```text
//!  PUT/POST/DELETE ─> Streams::{create, append, delete} ─> writer thread (group commit,
//!                          │                               fsync, producers, forks, expiry)
//!                          │                                    │ after commit: Live::changed
//!  GET ─> Streams::read ─> redb read transaction ─> Chunk       ▼
//!  long-poll / SSE ─> Streams::watch + read, wait for the stream's counter to move
//! ```
//!
//! Storage is its own redb file, `streams.redb` in the data directory (see [`store`]), apart
//! from the hub's history: streams are byte sequences addressed by offset, not updates
//! addressed by id, and their lifecycles (TTL, forks, deletion) differ. An append is answered
//! only after the transaction holding it is committed with `Durability::Immediate`, so it
//! survives `kill -9` and power loss with its offset; concurrent appends share one commit.
//!
//! Offsets are byte positions ([`offset`]). Reads are bounded ([`StreamsOptions::read_bytes`]
//! per call) and pulled: an SSE reader gets its next chunk only after the previous one was
//! written out, so a slow reader holds one chunk, not a backlog.
//!
//! This layer knows no HTTP: the front in `http/streams` parses headers, authorizes, and maps
//! [`StreamError`] to statuses.

pub mod content;
pub mod cursor;
mod error;
pub mod expiry;
mod fork;
mod live;
mod meta;
pub mod metrics;
pub mod offset;
pub mod producer;
mod store;
mod writer;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use redb::{Database, ReadableDatabase};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

pub use error::StreamError;
pub use expiry::Deadline;
pub use live::Watch;
pub use meta::{ForkOf, StreamMeta};
pub use metrics::{ReaderGuard, StreamsMetrics};
pub use offset::{Offset, Start};
pub use producer::Producer;
pub use store::{Chunk, FILE_NAME};

use live::Live;
use writer::{Command, Writer};

/// Tuning of the stream store; `Default` suits the hub.
#[derive(Clone, Debug)]
pub struct StreamsOptions {
    /// One read returns at most about this many bytes (always at least one record, and
    /// records are at most 64 KiB unless a single JSON message is larger).
    pub read_bytes: usize,
    /// Most requests committed in one transaction.
    pub max_batch: usize,
    /// A batch closes once its bodies reach this many bytes.
    pub max_batch_bytes: usize,
    /// Requests that may wait for the writer; further writers wait for room.
    pub queue: usize,
    /// How often expired streams are looked for and removed.
    pub sweep_interval: Duration,
}

impl Default for StreamsOptions {
    fn default() -> Self {
        StreamsOptions {
            read_bytes: 1 << 20,
            max_batch: 256,
            max_batch_bytes: 16 << 20,
            queue: 1024,
            sweep_interval: Duration::from_secs(30),
        }
    }
}

/// A `PUT`: create a stream (or confirm an identical one).
#[derive(Clone, Debug, Default)]
pub struct CreateRequest {
    /// The stream's path (its key).
    pub path: String,
    /// The content type; `None` for a fork inherits the source's, for anything else means
    /// `application/octet-stream`.
    pub content_type: Option<String>,
    /// `Stream-TTL`.
    pub ttl_secs: Option<u64>,
    /// `Stream-Expires-At`.
    pub expires_at: Option<Deadline>,
    /// `Stream-Closed: true`: create the stream closed (with `body` as its whole content).
    pub closed: bool,
    /// Initial content.
    pub body: Bytes,
    /// `Stream-Forked-From` and its offsets.
    pub fork: Option<ForkRequest>,
}

/// The fork headers of a `PUT`.
#[derive(Clone, Debug, Default)]
pub struct ForkRequest {
    /// The source stream's path.
    pub source: String,
    /// `Stream-Fork-Offset`; the source's tail when `None`.
    pub offset: Option<Offset>,
    /// `Stream-Fork-Sub-Offset` (0 when absent).
    pub sub_offset: u64,
}

/// The answer to a [`CreateRequest`].
#[derive(Clone, Debug)]
pub struct Created {
    /// `false` when an identical stream already existed (idempotent `PUT`).
    pub created: bool,
    /// The stream now.
    pub meta: StreamMeta,
}

/// A `POST`: append, close, or both.
#[derive(Clone, Debug, Default)]
pub struct AppendRequest {
    /// The stream's path.
    pub path: String,
    /// The request's content type (checked against the stream's when there is a body).
    pub content_type: Option<String>,
    /// The bytes to append; empty for a close-only request.
    pub body: Bytes,
    /// `Stream-Closed: true`.
    pub close: bool,
    /// `Stream-Seq`.
    pub stream_seq: Option<String>,
    /// `Producer-Id`, `Producer-Epoch`, `Producer-Seq`.
    pub producer: Option<Producer>,
}

/// The answer to an [`AppendRequest`].
#[derive(Clone, Debug)]
pub struct Appended {
    /// The stream after the request.
    pub meta: StreamMeta,
    /// Stored now, or recognised as a retry.
    pub outcome: Outcome,
}

/// What an accepted append did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The data (or the close) was stored by this request.
    Stored,
    /// A producer retry of something already stored; nothing was written.
    Duplicate {
        /// The highest seq accepted in the producer's epoch.
        last_seq: u64,
    },
}

/// The stream store: a cheap handle shared by every request.
#[derive(Clone)]
pub struct Streams {
    inner: Arc<Inner>,
}

struct Inner {
    /// Read transactions come from here; the writer thread holds its own handle.
    db: Arc<Database>,
    /// The writer thread's queue.
    commands: mpsc::Sender<Command>,
    /// Waiters and read times.
    live: Arc<Live>,
    /// Tuning.
    options: StreamsOptions,
    /// Ends live reads and the sweeper.
    shutdown: CancellationToken,
    /// Joined by [`Streams::close`].
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Shared with the writer, which counts its commits.
    commits: Arc<AtomicU64>,
    /// Appends, bytes and live readers, for `/metrics`.
    metrics: Arc<StreamsMetrics>,
}

impl Streams {
    /// Opens (or creates) `streams.redb` in `dir` and starts the writer thread.
    ///
    /// # Errors
    ///
    /// [`StreamError::Storage`] when the file cannot be opened or initialised.
    pub fn open(
        dir: &Path,
        options: StreamsOptions,
        shutdown: CancellationToken,
    ) -> Result<Streams, StreamError> {
        let db = Arc::new(Database::create(dir.join(FILE_NAME)).map_err(StreamError::storage)?);
        // Create the tables up front, so read transactions always find them.
        let txn = db.begin_write().map_err(StreamError::storage)?;
        txn.open_table(store::STREAMS)
            .map_err(StreamError::storage)?;
        txn.open_table(store::RECORDS)
            .map_err(StreamError::storage)?;
        txn.open_table(store::PRODUCERS)
            .map_err(StreamError::storage)?;
        txn.open_table(store::COUNTERS)
            .map_err(StreamError::storage)?;
        txn.commit().map_err(StreamError::storage)?;

        let live = Arc::new(Live::new(expiry::now_ms()));
        let (commands, queue) = mpsc::channel(options.queue.max(1));
        let commits = Arc::new(AtomicU64::new(0));
        let writer = Writer {
            db: db.clone(),
            live: live.clone(),
            max_batch: options.max_batch.max(1),
            max_batch_bytes: options.max_batch_bytes,
            commits: commits.clone(),
        };
        let handle = std::thread::Builder::new()
            .name("ssehub-streams-writer".into())
            .spawn(move || writer.run(queue))
            .map_err(StreamError::storage)?;
        Ok(Streams {
            inner: Arc::new(Inner {
                db,
                commands,
                live,
                options,
                shutdown,
                writer: Mutex::new(Some(handle)),
                commits,
                metrics: Arc::default(),
            }),
        })
    }

    /// Transactions committed so far; fewer than the writes they held when writes overlap
    /// (group commit).
    pub fn commits(&self) -> u64 {
        self.inner.commits.load(Ordering::Relaxed)
    }

    /// Fires when the hub shuts down; live reads end on it.
    pub fn shutdown(&self) -> &CancellationToken {
        &self.inner.shutdown
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(writer::Reply<T>) -> Command,
    ) -> Result<T, StreamError> {
        let (tx, rx) = oneshot::channel();
        self.inner
            .commands
            .send(make(tx))
            .await
            .map_err(|_| StreamError::ShuttingDown)?;
        rx.await.map_err(|_| StreamError::ShuttingDown)?
    }

    /// Creates a stream, or confirms one with the same configuration.
    ///
    /// # Errors
    ///
    /// The [`StreamError`] naming why the stream was not created.
    pub async fn create(&self, req: CreateRequest) -> Result<Created, StreamError> {
        self.ask(|tx| Command::Create(req, tx)).await
    }

    /// Appends to (and/or closes) a stream; answered once durable.
    ///
    /// # Errors
    ///
    /// The [`StreamError`] naming why nothing was stored.
    pub async fn append(&self, req: AppendRequest) -> Result<Appended, StreamError> {
        let bytes = req.body.len() as u64;
        let result = self.ask(|tx| Command::Append(req, tx)).await;
        let m = &self.inner.metrics;
        match &result {
            Ok(a) if a.outcome == Outcome::Stored && bytes > 0 => {
                m.appends.fetch_add(1, Ordering::Relaxed);
                m.append_bytes.fetch_add(bytes, Ordering::Relaxed);
            }
            Ok(_) => {}
            Err(_) => {
                m.append_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        result
    }

    /// Counters for `/metrics`; live readers hold a [`StreamsMetrics::reader`] guard.
    pub fn metrics(&self) -> &Arc<StreamsMetrics> {
        &self.inner.metrics
    }

    /// How many streams are stored (expired ones until the sweeper removes them).
    ///
    /// # Errors
    ///
    /// A storage failure.
    pub async fn count(&self) -> Result<u64, StreamError> {
        let this = self.clone();
        blocking(move || {
            use redb::ReadableTableMetadata as _;
            let txn = this.inner.db.begin_read().map_err(StreamError::storage)?;
            let streams = txn
                .open_table(store::STREAMS)
                .map_err(StreamError::storage)?;
            streams.len().map_err(StreamError::storage)
        })
        .await
    }

    /// Deletes a stream (only hides it while forks read its data).
    ///
    /// # Errors
    ///
    /// [`StreamError::NotFound`], [`StreamError::Gone`], or a storage failure.
    pub async fn delete(&self, path: &str) -> Result<(), StreamError> {
        let path = path.to_owned();
        self.ask(|tx| Command::Delete(path, tx)).await
    }

    /// A stream's metadata, without counting as a read (`HEAD` does not renew a TTL).
    ///
    /// # Errors
    ///
    /// [`StreamError::NotFound`], [`StreamError::Gone`], or a storage failure.
    pub async fn head(&self, path: &str) -> Result<StreamMeta, StreamError> {
        let this = self.clone();
        let path = path.to_owned();
        blocking(move || {
            let txn = this.inner.db.begin_read().map_err(StreamError::storage)?;
            let streams = txn
                .open_table(store::STREAMS)
                .map_err(StreamError::storage)?;
            this.visible(&path, store::load(&streams, &path)?)
        })
        .await
    }

    /// Reads from `start`, at most about [`StreamsOptions::read_bytes`], and counts as a read.
    ///
    /// # Errors
    ///
    /// [`StreamError::NotFound`], [`StreamError::Gone`], or a storage failure.
    pub async fn read(&self, path: &str, start: Start) -> Result<Chunk, StreamError> {
        self.read_at_most(path, start, self.inner.options.read_bytes)
            .await
    }

    /// [`Streams::read`] with a smaller bound, for readers that hold their chunk longer
    /// (an SSE frame waits in the connection until the client takes it).
    ///
    /// # Errors
    ///
    /// As [`Streams::read`].
    pub async fn read_at_most(
        &self,
        path: &str,
        start: Start,
        max_bytes: usize,
    ) -> Result<Chunk, StreamError> {
        let max = max_bytes.min(self.inner.options.read_bytes).max(1);
        let this = self.clone();
        let path = path.to_owned();
        blocking(move || {
            let txn = this.inner.db.begin_read().map_err(StreamError::storage)?;
            let streams = txn
                .open_table(store::STREAMS)
                .map_err(StreamError::storage)?;
            let records = txn
                .open_table(store::RECORDS)
                .map_err(StreamError::storage)?;
            let meta = this.visible(&path, store::load(&streams, &path)?)?;
            this.inner.live.read(meta.id, expiry::now_ms());
            let from = match start {
                Start::Beginning => 0,
                Start::Now => meta.tail,
                Start::At(o) => o.0,
            };
            store::read_chunk(&streams, &records, meta, from, max)
        })
        .await
    }

    /// Subscribes to commits on stream `id`; subscribe before reading, then wait.
    pub fn watch(&self, id: u64) -> Watch {
        self.inner.live.watch(id)
    }

    /// Waits until stream `path` has data at `from`, is closed there, or `timeout` passes
    /// (then `Ok(None)`); shutdown ends the wait like a timeout.
    ///
    /// # Errors
    ///
    /// As [`Streams::read`].
    pub async fn wait(
        &self,
        path: &str,
        from: Offset,
        timeout: Duration,
    ) -> Result<Option<Chunk>, StreamError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let meta = self.head(path).await?;
        let mut watch = self.watch(meta.id);
        loop {
            let chunk = self.read(path, Start::At(from)).await?;
            if chunk.meta.id != meta.id {
                // Deleted and created again while we waited: the old offsets mean nothing.
                return Err(StreamError::NotFound);
            }
            if !chunk.is_empty() || chunk.at_end() || chunk.next != from.0 {
                return Ok(Some(chunk));
            }
            tokio::select! {
                () = watch.changed() => {}
                () = tokio::time::sleep_until(deadline) => return Ok(None),
                () = self.inner.shutdown.cancelled() => return Ok(None),
            }
        }
    }

    /// The stream a client may see at `path`, or why not. An expired stream is reported as
    /// gone at once and its removal queued.
    fn visible(&self, path: &str, meta: Option<StreamMeta>) -> Result<StreamMeta, StreamError> {
        let meta = meta.ok_or(StreamError::NotFound)?;
        if meta.soft_deleted {
            return Err(StreamError::Gone);
        }
        if meta.is_expired(Some(self.inner.live.last_read(meta.id)), expiry::now_ms()) {
            // Best effort: the sweeper catches it otherwise.
            let _ = self
                .inner
                .commands
                .try_send(Command::Expire(path.to_owned()));
            return Err(if meta.refs > 0 {
                StreamError::Gone
            } else {
                StreamError::NotFound
            });
        }
        Ok(meta)
    }

    /// Removes expired streams every [`StreamsOptions::sweep_interval`] until shutdown, so
    /// TTLs bound the disk even for streams nobody touches again.
    pub async fn sweep_until_shutdown(self) {
        let mut tick = tokio::time::interval(self.inner.options.sweep_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = self.inner.shutdown.cancelled() => return,
            }
            let this = self.clone();
            let expired = blocking(move || this.expired_paths()).await;
            match expired {
                Ok(paths) => {
                    for path in paths {
                        if self
                            .inner
                            .commands
                            .send(Command::Expire(path))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                }
                Err(err) => tracing::warn!(error = %err, "stream expiry sweep failed"),
            }
        }
    }

    fn expired_paths(&self) -> Result<Vec<String>, StreamError> {
        use redb::ReadableTable as _;
        let txn = self.inner.db.begin_read().map_err(StreamError::storage)?;
        let streams = txn
            .open_table(store::STREAMS)
            .map_err(StreamError::storage)?;
        let now = expiry::now_ms();
        let mut out = Vec::new();
        for item in streams.iter().map_err(StreamError::storage)? {
            let (key, value) = item.map_err(StreamError::storage)?;
            let meta = StreamMeta::decode(value.value())?;
            if !meta.soft_deleted && meta.is_expired(Some(self.inner.live.last_read(meta.id)), now)
            {
                out.push(key.value().to_owned());
            }
        }
        Ok(out)
    }

    /// Stops the writer after the requests already queued, and waits for it.
    pub async fn close(&self) {
        let (tx, rx) = oneshot::channel();
        if self.inner.commands.send(Command::Stop(tx)).await.is_ok() {
            let _ = rx.await;
        }
        let handle = self
            .inner
            .writer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(handle) = handle {
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
    }
}

/// Runs blocking store work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StreamError> + Send + 'static,
) -> Result<T, StreamError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StreamError::Storage(format!("read task failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn append(path: &str, body: &'static str) -> AppendRequest {
        AppendRequest {
            path: path.into(),
            content_type: Some("text/plain".into()),
            body: Bytes::from_static(body.as_bytes()),
            ..Default::default()
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_appends_share_commits_and_each_gets_its_own_offset() {
        let dir = tempfile::tempdir().unwrap();
        let streams = Streams::open(
            dir.path(),
            StreamsOptions::default(),
            CancellationToken::new(),
        )
        .unwrap();
        let created = streams
            .create(CreateRequest {
                path: "/v1/stream/g".into(),
                content_type: Some("text/plain".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(created.created);
        let before = streams.commits();
        // join_all polls every append once before any answer can come: all 64 are queued
        // while the writer is still syncing the first.
        let appends = (0..64).map(|_| streams.append(append("/v1/stream/g", "ab")));
        let results = futures_util::future::join_all(appends).await;
        let mut tails: Vec<u64> = results.into_iter().map(|r| r.unwrap().meta.tail).collect();
        tails.sort_unstable();
        assert_eq!(tails, (1..=64).map(|i| i * 2).collect::<Vec<_>>());
        let commits = streams.commits() - before;
        assert!(commits < 32, "64 concurrent appends took {commits} commits");
        streams.close().await;
    }
}
