//! The writer thread: the only code that writes `streams.redb`.
//!
//! Requests queue on a bounded channel. The thread takes every request waiting (up to
//! [`Writer::max_batch`] or [`Writer::max_batch_bytes`]) and applies them in one write
//! transaction committed with `Durability::Immediate`: group commit, one fsync shared by every
//! concurrent writer. Only after the commit are the requests answered and their streams'
//! waiters woken, so an acknowledged append is on disk and a reader never sees data that a
//! crash could take back.
//!
//! Each request is judged completely (existence, expiry, closure, content type, producer,
//! `Stream-Seq`, JSON) before it writes anything, so a refused request leaves no trace and
//! the rest of its batch still commits; a database error fails the whole batch. Serialising
//! every write through one thread is also what makes producer validation and the append it
//! admits atomic: no two requests of a producer can interleave.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use redb::{Database, ReadableTable, Table, WriteTransaction};
use tokio::sync::{mpsc, oneshot};

use super::content::{self, DEFAULT_CONTENT_TYPE, Record, media_type};
use super::error::StreamError;
use super::expiry::now_ms;
use super::fork;
use super::live::Live;
use super::meta::{ForkOf, StreamMeta};
use super::offset::Offset;
use super::producer::{ProducerState, Verdict, judge};
use super::store::{self, BATCH_END, COUNTERS, NEXT_ID, PRODUCERS, RECORDS, STREAMS};
use super::{AppendRequest, Appended, CreateRequest, Created, Outcome};

/// Where an answer goes.
pub(crate) type Reply<T> = oneshot::Sender<Result<T, StreamError>>;

/// A request to the writer thread.
pub(crate) enum Command {
    Create(CreateRequest, Reply<Created>),
    Append(AppendRequest, Reply<Appended>),
    Delete(String, Reply<()>),
    /// Remove the stream if it has expired (from reads and the sweeper; nobody waits).
    Expire(String),
    /// Finish the current batch and end the thread.
    Stop(oneshot::Sender<()>),
}

impl Command {
    fn bytes(&self) -> usize {
        match self {
            Command::Create(r, _) => r.body.len(),
            Command::Append(r, _) => r.body.len(),
            _ => 0,
        }
    }
}

/// A request applied in the current transaction, answered once it commits (or fails).
enum Done {
    Create(Reply<Created>, Result<Created, StreamError>),
    Append(Reply<Appended>, Result<Appended, StreamError>),
    Delete(Reply<()>, Result<(), StreamError>),
    Silent,
}

impl Done {
    /// A request left unapplied because its batch already failed.
    fn unapplied(
        cmd: Command,
        err: &StreamError,
        stopped: &mut Option<oneshot::Sender<()>>,
    ) -> Done {
        match cmd {
            Command::Create(_, tx) => Done::Create(tx, Err(err.clone())),
            Command::Append(_, tx) => Done::Append(tx, Err(err.clone())),
            Command::Delete(_, tx) => Done::Delete(tx, Err(err.clone())),
            Command::Expire(_) => Done::Silent,
            Command::Stop(tx) => {
                *stopped = Some(tx);
                Done::Silent
            }
        }
    }

    fn send(self) {
        // A requester that went away does not care.
        match self {
            Done::Create(tx, r) => drop(tx.send(r)),
            Done::Append(tx, r) => drop(tx.send(r)),
            Done::Delete(tx, r) => drop(tx.send(r)),
            Done::Silent => {}
        }
    }

    fn fail(self, err: &StreamError) {
        match self {
            Done::Create(tx, _) => drop(tx.send(Err(err.clone()))),
            Done::Append(tx, _) => drop(tx.send(Err(err.clone()))),
            Done::Delete(tx, _) => drop(tx.send(Err(err.clone()))),
            Done::Silent => {}
        }
    }
}

/// The writer thread's state.
pub(crate) struct Writer {
    /// The database; the thread's handle keeps the file open until it ends.
    pub(crate) db: Arc<Database>,
    /// Woken after each commit, read for TTL decisions.
    pub(crate) live: Arc<Live>,
    /// Most requests in one transaction.
    pub(crate) max_batch: usize,
    /// A batch closes once its bodies reach this many bytes.
    pub(crate) max_batch_bytes: usize,
    /// Transactions committed, see [`Streams::commits`](super::Streams::commits).
    pub(crate) commits: Arc<AtomicU64>,
}

/// The tables of one write transaction.
struct Tables<'t> {
    /// Path -> metadata.
    streams: Table<'t, &'static str, &'static [u8]>,
    /// (id, end position) -> flags + payload.
    records: Table<'t, (u64, u64), &'static [u8]>,
    /// (id, producer id) -> producer state.
    producers: Table<'t, (u64, &'static str), &'static [u8]>,
    /// The id counter.
    counters: Table<'t, &'static str, u64>,
}

impl<'t> Tables<'t> {
    fn open(txn: &'t WriteTransaction) -> Result<Self, StreamError> {
        Ok(Tables {
            streams: txn.open_table(STREAMS).map_err(StreamError::storage)?,
            records: txn.open_table(RECORDS).map_err(StreamError::storage)?,
            producers: txn.open_table(PRODUCERS).map_err(StreamError::storage)?,
            counters: txn.open_table(COUNTERS).map_err(StreamError::storage)?,
        })
    }
}

impl Writer {
    /// Serves requests until `Stop` or until every sender is gone.
    pub(crate) fn run(self, mut queue: mpsc::Receiver<Command>) {
        let mut stopped = None;
        while stopped.is_none() {
            let Some(first) = queue.blocking_recv() else {
                break;
            };
            let mut bytes = first.bytes();
            let mut batch = vec![first];
            while batch.len() < self.max_batch && bytes < self.max_batch_bytes {
                match queue.try_recv() {
                    Ok(cmd) => {
                        bytes += cmd.bytes();
                        batch.push(cmd);
                    }
                    Err(_) => break,
                }
            }
            self.commit(batch, &mut stopped);
        }
        if let Some(done) = stopped {
            let _ = done.send(());
        }
    }

    fn commit(&self, batch: Vec<Command>, stopped: &mut Option<oneshot::Sender<()>>) {
        let mut touched = Vec::new();
        let (done, fatal) = match self.db.begin_write() {
            Err(e) => {
                let err = StreamError::storage(e);
                let done = batch
                    .into_iter()
                    .map(|cmd| Done::unapplied(cmd, &err, stopped))
                    .collect::<Vec<_>>();
                (done, Some(err))
            }
            Ok(txn) => {
                let (done, mut fatal) = self.apply(&txn, batch, stopped, &mut touched);
                if fatal.is_none() {
                    if let Err(e) = txn.commit() {
                        fatal = Some(StreamError::storage(e));
                    }
                } else if let Err(e) = txn.abort() {
                    tracing::warn!(error = %e, "aborting a failed stream batch");
                }
                (done, fatal)
            }
        };
        if let Some(err) = fatal {
            tracing::error!(error = %err, requests = done.len(), "stream batch failed; nothing of it was stored");
            for d in done {
                d.fail(&err);
            }
            return;
        }
        for d in done {
            d.send();
        }
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.live.changed(touched);
    }

    /// Applies a batch in `txn`; the error is the database failure that dooms the batch.
    fn apply(
        &self,
        txn: &WriteTransaction,
        batch: Vec<Command>,
        stopped: &mut Option<oneshot::Sender<()>>,
        touched: &mut Vec<u64>,
    ) -> (Vec<Done>, Option<StreamError>) {
        let now = now_ms();
        let mut t = match Tables::open(txn) {
            Ok(t) => t,
            Err(err) => {
                let done = batch
                    .into_iter()
                    .map(|cmd| Done::unapplied(cmd, &err, stopped))
                    .collect();
                return (done, Some(err));
            }
        };
        let mut done = Vec::with_capacity(batch.len());
        let mut fatal = None;
        for cmd in batch {
            if let Some(err) = &fatal {
                done.push(Done::unapplied(cmd, err, stopped));
                continue;
            }
            let d = match cmd {
                Command::Create(req, tx) => {
                    Done::Create(tx, self.create(&mut t, req, now, touched))
                }
                Command::Append(req, tx) => {
                    Done::Append(tx, self.append(&mut t, req, now, touched))
                }
                Command::Delete(path, tx) => {
                    Done::Delete(tx, self.delete(&mut t, &path, now, touched))
                }
                Command::Expire(path) => {
                    if let Err(e @ StreamError::Storage(_)) =
                        self.expire(&mut t, &path, now, touched)
                    {
                        fatal = Some(e);
                    }
                    Done::Silent
                }
                Command::Stop(tx) => {
                    *stopped = Some(tx);
                    Done::Silent
                }
            };
            if let Some(e) = storage_error(&d) {
                fatal.get_or_insert(e);
            }
            done.push(d);
        }
        (done, fatal)
    }

    /// Loads a stream that a write may act on: present, not deleted, not expired. An expired
    /// stream met here is removed (or hidden, if forks read it) in this transaction.
    fn writable(
        &self,
        t: &mut Tables<'_>,
        path: &str,
        now: u64,
        touched: &mut Vec<u64>,
    ) -> Result<StreamMeta, StreamError> {
        let meta = store::load(&t.streams, path)?.ok_or(StreamError::NotFound)?;
        if meta.soft_deleted {
            return Err(StreamError::Gone);
        }
        if meta.is_expired(Some(self.live.last_read(meta.id)), now) {
            return Err(self.remove_expired(t, path, meta, touched)?);
        }
        Ok(meta)
    }

    /// Removes an expired stream, answering what its URL now says: 410 if forks keep it, 404.
    fn remove_expired(
        &self,
        t: &mut Tables<'_>,
        path: &str,
        mut meta: StreamMeta,
        touched: &mut Vec<u64>,
    ) -> Result<StreamError, StreamError> {
        tracing::debug!(stream = %path, "stream expired");
        if meta.refs > 0 {
            meta.soft_deleted = true;
            touched.push(meta.id);
            put_meta(t, path, &meta)?;
            Ok(StreamError::Gone)
        } else {
            self.purge(t, path.to_owned(), meta, touched)?;
            Ok(StreamError::NotFound)
        }
    }

    fn create(
        &self,
        t: &mut Tables<'_>,
        req: CreateRequest,
        now: u64,
        touched: &mut Vec<u64>,
    ) -> Result<Created, StreamError> {
        if let Some(existing) = store::load(&t.streams, &req.path)? {
            if existing.soft_deleted {
                return Err(StreamError::PathBlocked);
            }
            if !existing.is_expired(Some(self.live.last_read(existing.id)), now) {
                return match config_mismatch(&existing, &req) {
                    None => Ok(Created {
                        created: false,
                        meta: existing,
                    }),
                    Some(why) => Err(StreamError::ConfigMismatch(why)),
                };
            }
            if let StreamError::Gone = self.remove_expired(t, &req.path, existing, touched)? {
                return Err(StreamError::PathBlocked);
            }
        }

        // Judge everything before writing anything.
        let mut source = None;
        let mut fork = None;
        let mut content_type = req.content_type.clone();
        let (mut ttl_secs, mut expires_at) = (req.ttl_secs, req.expires_at.clone());
        if let Some(f) = &req.fork {
            let src = match store::load(&t.streams, &f.source)? {
                None => return Err(StreamError::SourceNotFound(f.source.clone())),
                Some(s) if s.soft_deleted => return Err(StreamError::SourceGone(f.source.clone())),
                Some(s) => s,
            };
            if src.is_expired(Some(self.live.last_read(src.id)), now) {
                return Err(StreamError::SourceNotFound(f.source.clone()));
            }
            if let Some(ct) = &req.content_type
                && media_type(ct) != media_type(&src.content_type)
            {
                return Err(StreamError::ContentTypeMismatch {
                    expected: src.content_type.clone(),
                    got: ct.clone(),
                });
            }
            let anchor = f.offset.map_or(src.tail, |o| o.0);
            if anchor > src.tail {
                return Err(StreamError::ForkOffsetBeyondTail {
                    offset: Offset(anchor),
                    tail: src.tail_offset(),
                });
            }
            let offset = if f.sub_offset > 0 {
                fork::resolve_sub_offset(&t.streams, &t.records, &src, anchor, f.sub_offset)?
            } else {
                anchor
            };
            content_type.get_or_insert_with(|| src.content_type.clone());
            (ttl_secs, expires_at) = fork::inherited_expiry(&req, &src);
            fork = Some(ForkOf {
                source: f.source.clone(),
                source_id: src.id,
                offset,
                anchor,
                sub_offset: f.sub_offset,
            });
            source = Some(src);
        }
        let content_type = content_type.unwrap_or_else(|| DEFAULT_CONTENT_TYPE.to_owned());
        let records = content::records(&content_type, &req.body, true)?;

        if let (Some(mut src), Some(f)) = (source, &req.fork) {
            src.refs += 1;
            put_meta(t, &f.source, &src)?;
        }
        let id = next_id(t)?;
        let mut meta = StreamMeta {
            id,
            content_type,
            ttl_secs,
            expires_at,
            created_ms: now,
            touched_ms: now,
            tail: fork.as_ref().map_or(0, |f| f.offset),
            closed: req.closed,
            closed_by: None,
            stream_seq: None,
            fork,
            refs: 0,
            soft_deleted: false,
        };
        put_records(t, &mut meta, &records)?;
        put_meta(t, &req.path, &meta)?;
        touched.push(id);
        Ok(Created {
            created: true,
            meta,
        })
    }

    fn append(
        &self,
        t: &mut Tables<'_>,
        req: AppendRequest,
        now: u64,
        touched: &mut Vec<u64>,
    ) -> Result<Appended, StreamError> {
        let mut meta = self.writable(t, &req.path, now, touched)?;
        let duplicate = |meta: StreamMeta, last_seq| Appended {
            meta,
            outcome: Outcome::Duplicate { last_seq },
        };
        if meta.closed {
            // Only the retry of the request that closed the stream succeeds.
            if let Some(p) = &req.producer
                && meta.closed_by.as_ref() == Some(p)
            {
                let seq = p.seq;
                return Ok(duplicate(meta, seq));
            }
            if req.body.is_empty() && req.producer.is_none() {
                return Ok(Appended {
                    meta,
                    outcome: Outcome::Stored,
                });
            }
            return Err(StreamError::Closed {
                tail: meta.tail_offset(),
            });
        }
        if !req.body.is_empty()
            && let Some(ct) = &req.content_type
            && media_type(ct) != media_type(&meta.content_type)
        {
            return Err(StreamError::ContentTypeMismatch {
                expected: meta.content_type.clone(),
                got: ct.clone(),
            });
        }
        let mut admitted = None;
        if let Some(p) = &req.producer {
            let stored = t
                .producers
                .get((meta.id, p.id.as_str()))
                .map_err(StreamError::storage)?
                .and_then(|v| ProducerState::decode(v.value()));
            match judge(stored, p.epoch, p.seq, now) {
                Verdict::Accept(state) => admitted = Some(state),
                Verdict::Duplicate { last_seq } => return Ok(duplicate(meta, last_seq)),
                Verdict::StaleEpoch { current } => return Err(StreamError::StaleEpoch { current }),
                Verdict::NewEpochNotAtZero => return Err(StreamError::NewEpochNotAtZero),
                Verdict::Gap { expected, received } => {
                    return Err(StreamError::SequenceGap { expected, received });
                }
            }
        }
        if let Some(seq) = &req.stream_seq
            && let Some(last) = &meta.stream_seq
            && seq.as_bytes() <= last.as_bytes()
        {
            return Err(StreamError::StreamSeqConflict {
                last: last.clone(),
                got: seq.clone(),
            });
        }
        let records = content::records(&meta.content_type, &req.body, false)?;

        put_records(t, &mut meta, &records)?;
        if let (Some(p), Some(state)) = (&req.producer, admitted) {
            t.producers
                .insert((meta.id, p.id.as_str()), state.encode().as_slice())
                .map_err(StreamError::storage)?;
        }
        if let Some(seq) = req.stream_seq {
            meta.stream_seq = Some(seq);
        }
        if req.close {
            meta.closed = true;
            meta.closed_by = req.producer;
        }
        meta.touched_ms = now;
        put_meta(t, &req.path, &meta)?;
        touched.push(meta.id);
        Ok(Appended {
            meta,
            outcome: Outcome::Stored,
        })
    }

    fn delete(
        &self,
        t: &mut Tables<'_>,
        path: &str,
        now: u64,
        touched: &mut Vec<u64>,
    ) -> Result<(), StreamError> {
        let mut meta = self.writable(t, path, now, touched)?;
        if meta.refs > 0 {
            meta.soft_deleted = true;
            touched.push(meta.id);
            return put_meta(t, path, &meta);
        }
        self.purge(t, path.to_owned(), meta, touched)
    }

    fn expire(
        &self,
        t: &mut Tables<'_>,
        path: &str,
        now: u64,
        touched: &mut Vec<u64>,
    ) -> Result<(), StreamError> {
        if let Some(meta) = store::load(&t.streams, path)?
            && !meta.soft_deleted
            && meta.is_expired(Some(self.live.last_read(meta.id)), now)
        {
            self.remove_expired(t, path, meta, touched)?;
        }
        Ok(())
    }

    /// Removes a stream's data, producers and metadata, then releases its source: a source
    /// that was deleted while forked goes with its last fork, and so on up the chain.
    fn purge(
        &self,
        t: &mut Tables<'_>,
        path: String,
        meta: StreamMeta,
        touched: &mut Vec<u64>,
    ) -> Result<(), StreamError> {
        let mut next = Some((path, meta));
        while let Some((path, meta)) = next.take() {
            let id = meta.id;
            t.records
                .retain_in((id, 0)..=(id, u64::MAX), |_, _| false)
                .map_err(StreamError::storage)?;
            t.producers
                .retain_in((id, "")..(id + 1, ""), |_, _| false)
                .map_err(StreamError::storage)?;
            t.streams
                .remove(path.as_str())
                .map_err(StreamError::storage)?;
            self.live.forget(id);
            touched.push(id);
            tracing::debug!(stream = %path, "stream removed");
            if let Some(fork) = meta.fork
                && let Some(mut source) = store::load(&t.streams, &fork.source)?
                && source.id == fork.source_id
            {
                source.refs = source.refs.saturating_sub(1);
                if source.refs == 0 && source.soft_deleted {
                    next = Some((fork.source, source));
                } else {
                    put_meta(t, &fork.source, &source)?;
                }
            }
        }
        Ok(())
    }
}

fn storage_error(done: &Done) -> Option<StreamError> {
    let err = match done {
        Done::Create(_, Err(e)) | Done::Append(_, Err(e)) | Done::Delete(_, Err(e)) => e,
        _ => return None,
    };
    matches!(err, StreamError::Storage(_)).then(|| err.clone())
}

fn put_meta(t: &mut Tables<'_>, path: &str, meta: &StreamMeta) -> Result<(), StreamError> {
    t.streams
        .insert(path, meta.encode().as_slice())
        .map(drop)
        .map_err(StreamError::storage)
}

fn put_records(
    t: &mut Tables<'_>,
    meta: &mut StreamMeta,
    records: &[Record],
) -> Result<(), StreamError> {
    let mut value = Vec::new();
    for r in records {
        meta.tail += r.payload.len() as u64;
        value.clear();
        value.push(if r.batch_end { BATCH_END } else { 0 });
        value.extend_from_slice(&r.payload);
        t.records
            .insert((meta.id, meta.tail), value.as_slice())
            .map_err(StreamError::storage)?;
    }
    Ok(())
}

fn next_id(t: &mut Tables<'_>) -> Result<u64, StreamError> {
    let id = t
        .counters
        .get(NEXT_ID)
        .map_err(StreamError::storage)?
        .map_or(1, |v| v.value());
    t.counters
        .insert(NEXT_ID, id + 1)
        .map_err(StreamError::storage)?;
    Ok(id)
}

/// Why an existing stream does not match a `PUT`, or `None` when it does.
fn config_mismatch(existing: &StreamMeta, req: &CreateRequest) -> Option<String> {
    if let Some(ct) = &req.content_type
        && media_type(ct) != media_type(&existing.content_type)
    {
        return Some(format!("content type {}", existing.content_type));
    }
    if req.ttl_secs != existing.ttl_secs {
        return Some("Stream-TTL".into());
    }
    if req.expires_at.as_ref().map(|d| &d.text) != existing.expires_at.as_ref().map(|d| &d.text) {
        return Some("Stream-Expires-At".into());
    }
    if req.closed != existing.closed {
        return Some(if existing.closed { "closed" } else { "open" }.into());
    }
    (!fork::same_fork(req.fork.as_ref(), existing.fork.as_ref()))
        .then(|| "fork source or offset".into())
}
