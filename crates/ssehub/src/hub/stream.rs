//! One subscriber's event stream: replay from history, then live, with no gap and no
//! duplicate at the seam; heartbeats when idle; ends on shutdown, token expiry or cut-off.
//!
//! A stream whose end is still being written when the hub shuts down (a relay answer) can ask
//! to be drained instead of cut ([`SubscriberStream::drain_on_shutdown`]): it waits until the
//! writer says it is done, then sends what history holds after the last update it delivered.
//! History, not the fan-out: the dispatcher stops at shutdown.
//!
//! The seam: history is replayed page by page *before* joining the fan-out (so a long
//! replay cannot overflow the live queue), then the stream joins and reads history once
//! more from the last replayed seq. Anything published between the two reads arrives both
//! from that read and from the queue; the queue's copy is skipped by seq.
//!
//! Memory: the stream is pulled by the socket's writer, so the next page is read only once
//! the previous chunk was taken. A page is bounded by the store's read size in bytes as well
//! as by count, and the seam read is paged the same way, so a reader that stops holds at most
//! one page and one encoded chunk, whatever the history holds (issue: 8 stuck `earliest`
//! readers over 40 MB of history once took the hub from 76 to 444 MiB).
//!
//! Retention holds at replay time: entries beyond `--history-max-events` or older than
//! `--history-max-age` are skipped even if the pruner has not removed them yet.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::WaitForCancellationFutureOwned;

use crate::hub::HubInner;
use crate::hub::encode::encode_update;
use crate::hub::fanout::Membership;
use crate::hub::filter::Filter;
use crate::hub::queue::{Delivery, Queue};
use crate::store::{Cursor, Stored};
use crate::update::Update;

/// Above this many pending bytes, coalescing stops and the chunk is written.
const COALESCE_BYTES: usize = 64 * 1024;

/// Where the stream is in its life.
enum Phase {
    /// Sending the first page read when the subscription was made: its updates, whether more
    /// follow, and the history's last seq at the time of the read.
    Opening(Vec<Stored>, bool, u64),
    /// Replaying history after this seq, not yet joined.
    Replay { after: u64 },
    /// Joined; sending what history holds after this seq (published while the replay ran),
    /// one page at a time, before the first live delivery.
    Seam { membership: Membership, after: u64 },
    /// Joined: live deliveries, skipping seqs the replay already sent.
    Live {
        membership: Membership,
        skip_through: u64,
    },
    /// Shutting down: waiting for the writer, then sending history after this seq.
    Draining { after: u64 },
    /// Finished.
    Done,
}

/// What waiting for live deliveries produced.
enum Live {
    /// Bytes to write.
    Chunk(Bytes),
    /// The hub is shutting down.
    Shutdown,
    /// The stream is over (token expired, cut off).
    End,
}

/// Resolves once a subscriber is cut off for falling behind: what a connection's writer
/// watches while a write to a client that stopped reading is stuck, so it can close the
/// connection soon rather than after its write-stall timeout.
#[derive(Clone)]
pub struct CutOff(Arc<Queue>);

impl CutOff {
    /// Waits for the cut-off; pending forever for a subscriber that keeps up.
    pub async fn wait(&self) {
        std::future::poll_fn(|cx| self.0.poll_cut_off(cx)).await;
    }
}

/// A subscriber's stream of SSE bytes.
pub struct SubscriberStream {
    hub: Arc<HubInner>,
    /// Where live deliveries arrive once joined; made up front so a [`CutOff`] can be handed
    /// out before the replay ends.
    queue: Arc<Queue>,
    filter: Arc<Filter>,
    phase: Phase,
    heartbeat: Duration,
    /// When something was last written: the heartbeat fires only after real silence.
    last_write: Instant,
    /// Fires when the subscriber's token expires. Created once: a timer per delivery
    /// cost a timer-wheel insert and removal each time (see BENCHMARKS.md, hub load).
    expiry: Option<Pin<Box<Sleep>>>,
    /// Fires at the earliest moment a heartbeat may be due; moved forward lazily when it
    /// fires early, so deliveries never touch the timer wheel.
    heartbeat_timer: Pin<Box<Sleep>>,
    /// Resolves when the hub shuts down; one registration for the stream's life.
    shutdown: Pin<Box<WaitForCancellationFutureOwned>>,
    /// Set by [`Self::drain_on_shutdown`]: what to wait for before the final history read.
    drain: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    /// The newest seq this stream has covered (written, or skipped by its filter): where a
    /// drain resumes.
    delivered: u64,
    /// Announces the end of the subscription when the stream ends (`--subscriptions`).
    _presence: Option<crate::hub::presence::PresenceGuard>,
    /// Keeps the subscriber gauge right however the stream ends.
    _gauge: SubscriberGauge,
}

struct SubscriberGauge(Arc<HubInner>);

impl Drop for SubscriberGauge {
    fn drop(&mut self) {
        self.0.metrics.subscribers.fetch_sub(1, Ordering::Relaxed);
    }
}

impl SubscriberStream {
    pub(crate) fn new(
        hub: Arc<HubInner>,
        filter: Arc<Filter>,
        first_page: Vec<Stored>,
        more: bool,
        head_seq: u64,
        membership: Option<Membership>,
        expires_at: Option<Instant>,
    ) -> Self {
        hub.metrics.subscribers.fetch_add(1, Ordering::Relaxed);
        let queue = membership
            .as_ref()
            .map_or_else(Arc::default, |m| m.queue.clone());
        let mut delivered = 0;
        let phase = match membership {
            Some(membership) => {
                delivered = membership.joined_after.as_ref().map_or(0, |(seq, _)| *seq);
                Phase::Live {
                    membership,
                    skip_through: 0,
                }
            }
            None => Phase::Opening(first_page, more, head_seq),
        };
        let now = Instant::now();
        let heartbeat = hub.heartbeat();
        SubscriberStream {
            heartbeat,
            heartbeat_timer: Box::pin(tokio::time::sleep_until(now + heartbeat)),
            shutdown: Box::pin(hub.shutdown.clone().cancelled_owned()),
            _gauge: SubscriberGauge(hub.clone()),
            hub,
            queue,
            filter,
            phase,
            last_write: now,
            expiry: expires_at.map(|at| Box::pin(tokio::time::sleep_until(at))),
            drain: None,
            delivered,
            _presence: None,
        }
    }

    /// On shutdown, instead of ending at once: wait for `until` (which the caller must bound,
    /// e.g. by the shutdown grace), then send every update history holds after the last one
    /// this stream delivered, then end. For streams whose writer records a final update when
    /// the hub stops, so that it reaches live readers too.
    pub fn drain_on_shutdown(mut self, until: impl Future<Output = ()> + Send + 'static) -> Self {
        self.drain = Some(Box::pin(until));
        self
    }

    pub(crate) fn with_presence(mut self, guard: crate::hub::presence::PresenceGuard) -> Self {
        self._presence = Some(guard);
        self
    }

    /// A handle that resolves when this subscriber is cut off for falling behind.
    pub fn cut_off(&self) -> CutOff {
        CutOff(self.queue.clone())
    }

    /// Turns the stream into a `futures` stream of byte chunks, opening with a comment.
    pub fn into_stream(self) -> impl futures_util::Stream<Item = Bytes> + Send + 'static {
        // The opening comment lets browsers and proxies see the stream open at once.
        let opening = futures_util::stream::once(async { Bytes::from_static(b":\n") });
        let rest = futures_util::stream::unfold(self, |mut s| async move {
            s.next_chunk().await.map(|b| (b, s))
        });
        futures_util::StreamExt::chain(opening, rest)
    }

    /// The next chunk to write, or `None` when the stream is over.
    pub async fn next_chunk(&mut self) -> Option<Bytes> {
        loop {
            match std::mem::replace(&mut self.phase, Phase::Done) {
                Phase::Done => return None,
                Phase::Opening(page, more, head_seq) => {
                    let after = page.last().map(|s| s.seq);
                    self.delivered = after.unwrap_or(head_seq);
                    let chunk = self.encode_page(&page, head_seq);
                    drop(page);
                    self.phase = match (more, after) {
                        (true, Some(after)) => Phase::Replay { after },
                        // An empty first page means the client is already at the head:
                        // join there, not at the start of history.
                        _ => self.join(after.unwrap_or(head_seq)),
                    };
                    if !chunk.is_empty() {
                        return Some(self.wrote(chunk));
                    }
                }
                Phase::Replay { after } => {
                    let page = self.read_page(after).await?;
                    let last = page.updates.last().map(|s| s.seq);
                    self.delivered = last.unwrap_or(after);
                    let chunk = self.encode_page(&page.updates, page.head_seq);
                    self.phase = match (page.more, last) {
                        (true, Some(after)) => Phase::Replay { after },
                        _ => self.join(last.unwrap_or(after)),
                    };
                    if !chunk.is_empty() {
                        return Some(self.wrote(chunk));
                    }
                }
                Phase::Seam { membership, after } => {
                    let page = self.read_page(after).await?;
                    let last = page.updates.last().map_or(after, |s| s.seq);
                    self.delivered = last;
                    let chunk = self.encode_page(&page.updates, page.head_seq);
                    self.phase = if page.more {
                        Phase::Seam {
                            membership,
                            after: last,
                        }
                    } else {
                        Phase::Live {
                            membership,
                            skip_through: last,
                        }
                    };
                    if !chunk.is_empty() {
                        return Some(self.wrote(chunk));
                    }
                }
                Phase::Live {
                    mut membership,
                    skip_through,
                } => match self.next_live(&mut membership, skip_through).await {
                    Live::Chunk(chunk) => {
                        self.phase = Phase::Live {
                            membership,
                            skip_through,
                        };
                        return Some(chunk);
                    }
                    Live::Shutdown if self.drain.is_some() => {
                        self.phase = Phase::Draining {
                            after: self.delivered,
                        };
                    }
                    Live::Shutdown | Live::End => return None,
                },
                Phase::Draining { after } => {
                    if let Some(until) = self.drain.take() {
                        until.await;
                    }
                    let page = self.read_page(after).await?;
                    let chunk = self.encode_page(&page.updates, page.head_seq);
                    if let (true, Some(last)) = (page.more, page.updates.last()) {
                        self.phase = Phase::Draining { after: last.seq };
                    }
                    if !chunk.is_empty() {
                        return Some(self.wrote(chunk));
                    }
                }
            }
        }
    }

    /// Joins the fan-out after replaying through `after`; the seam phase then reads history
    /// once more to pick up whatever was published while the replay ran.
    fn join(&mut self, after: u64) -> Phase {
        Phase::Seam {
            membership: self
                .hub
                .fanout
                .join(self.filter.clone(), self.queue.clone()),
            after,
        }
    }

    async fn read_page(&mut self, after: u64) -> Option<crate::store::Replay> {
        match self
            .hub
            .store
            .read_after(Cursor::Seq(after), self.hub.replay_page)
            .await
        {
            Ok(page) => Some(page),
            Err(err) => {
                // Ending the stream makes the client reconnect and retry from its last id.
                tracing::warn!(error = %err, "history read failed; ending the stream so the client retries");
                None
            }
        }
    }

    /// The page's updates this subscriber may see and retention still keeps, encoded.
    fn encode_page(&self, page: &[Stored], head_seq: u64) -> Bytes {
        let retained = self.hub.retention.keeps(head_seq, Update::now_ms());
        let mut buf = BytesMut::new();
        for s in page
            .iter()
            .filter(|s| retained(s) && self.filter.matches(&s.update))
        {
            buf.extend_from_slice(&encode_update(&s.update));
        }
        buf.freeze()
    }

    fn wrote(&mut self, chunk: Bytes) -> Bytes {
        self.last_write = Instant::now();
        chunk
    }

    async fn next_live(&mut self, m: &mut Membership, skip_through: u64) -> Live {
        loop {
            let expiry = async {
                match self.expiry.as_mut() {
                    Some(at) => at.await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                _ = self.shutdown.as_mut() => return Live::Shutdown,
                _ = expiry => {
                    tracing::debug!("subscriber token expired; ending the stream");
                    return Live::End;
                }
                d = m.queue.pop() => {
                    let Some(d) = d else { return Live::End };
                    if d.seq <= skip_through {
                        continue;
                    }
                    let (chunk, last) = coalesce(m, d, skip_through);
                    self.delivered = last;
                    return Live::Chunk(self.wrote(chunk));
                }
                _ = self.heartbeat_timer.as_mut() => {
                    let due = self.last_write + self.heartbeat;
                    if due > Instant::now() {
                        // Something was written since the timer was set: not silent yet.
                        self.heartbeat_timer.as_mut().reset(due);
                        continue;
                    }
                    self.heartbeat_timer.as_mut().reset(Instant::now() + self.heartbeat);
                    return Live::Chunk(self.wrote(Bytes::from_static(b":\n")));
                }
            }
        }
    }
}

/// Appends whatever else is already queued to `first`, so a subscriber with a backlog gets
/// one write instead of one per update; also returns the last seq written.
fn coalesce(m: &Membership, first: Delivery, skip_through: u64) -> (Bytes, u64) {
    let (first, mut last) = (first.bytes, first.seq);
    let mut buf: Option<BytesMut> = None;
    while buf.as_ref().map_or(first.len(), |b| b.len()) < COALESCE_BYTES {
        let Some(d) = m.queue.try_pop() else { break };
        if d.seq <= skip_through {
            continue;
        }
        let b = buf.get_or_insert_with(|| {
            let mut b = BytesMut::with_capacity(first.len() * 4);
            b.extend_from_slice(&first);
            b
        });
        b.extend_from_slice(&d.bytes);
        last = d.seq;
    }
    (buf.map_or(first, BytesMut::freeze), last)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use tokio::time::Instant;
    use tokio_util::sync::CancellationToken;
    use tokio_util::task::TaskTracker;

    use crate::hub::filter::Filter;
    use crate::hub::metrics::Metrics;
    use crate::hub::{Hub, HubOptions, SubscribeRequest};
    use crate::store::Store;
    use crate::store::redb::RedbStore;
    use crate::topic::Selector;

    #[tokio::test]
    async fn a_write_postpones_the_heartbeat_by_a_whole_period() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(RedbStore::open(dir.path(), Default::default()).unwrap());
        let options = HubOptions::default();
        let hub = Hub::start(
            store,
            options.clone(),
            Arc::new(Metrics::default()),
            CancellationToken::new(),
            &TaskTracker::new(),
        )
        .await
        .unwrap();
        tokio::time::pause();
        let topic = Arc::new(Selector::Exact("/t".into()));
        let sub = hub
            .subscribe(SubscribeRequest {
                filter: Filter::new(vec![("/t".into(), topic)], Vec::new()),
                last_event_id: None,
                expires_at: None,
                topics: Vec::new(),
            })
            .await
            .unwrap();
        let mut stream = sub.stream;
        tokio::time::advance(Duration::from_secs(30)).await;
        // As if a delivery were written now: the timer armed at the start (due at 40 s)
        // must not produce a heartbeat after only 10 s of silence.
        stream.last_write = Instant::now();
        let written = Instant::now();
        assert_eq!(stream.next_chunk().await.as_deref(), Some(&b":\n"[..]));
        // Virtual time: exact up to the timer wheel's 1 ms rounding.
        let silence = written.elapsed();
        assert!(
            silence >= options.heartbeat && silence < options.heartbeat + Duration::from_secs(1),
            "{silence:?}"
        );
        // And the next one a whole period after that heartbeat.
        let beat = Instant::now();
        assert_eq!(stream.next_chunk().await.as_deref(), Some(&b":\n"[..]));
        let silence = beat.elapsed();
        assert!(
            silence >= options.heartbeat && silence < options.heartbeat + Duration::from_secs(1),
            "{silence:?}"
        );
    }

    fn update(id: &str, topic: &str) -> crate::update::Update {
        crate::update::Update {
            id: id.into(),
            topics: vec![topic.into()],
            data: format!("data of {id}"),
            private: false,
            event_type: None,
            retry: None,
            published_at_ms: crate::update::Update::now_ms(),
        }
    }

    #[tokio::test]
    async fn a_drained_stream_sends_what_its_writer_records_after_shutdown_then_ends() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(RedbStore::open(dir.path(), Default::default()).unwrap());
        let shutdown = CancellationToken::new();
        let hub = Hub::start(
            store,
            HubOptions::default(),
            Arc::new(Metrics::default()),
            shutdown.clone(),
            &TaskTracker::new(),
        )
        .await
        .unwrap();
        let subscribe = || async {
            let topic = Arc::new(Selector::Exact("/t".into()));
            hub.subscribe(SubscribeRequest {
                filter: Filter::new(vec![("/t".into(), topic)], Vec::new()),
                last_event_id: None,
                expires_at: None,
                topics: Vec::new(),
            })
            .await
            .unwrap()
            .stream
        };
        let (written, done) = tokio::sync::oneshot::channel::<()>();
        let mut drained = subscribe().await.drain_on_shutdown(async move {
            let _ = done.await;
        });
        let mut cut = subscribe().await;
        hub.publish_valid(update("a", "/t")).await.unwrap();
        for stream in [&mut drained, &mut cut] {
            let chunk = stream.next_chunk().await.unwrap();
            assert!(chunk.starts_with(b"id: a\n"), "{chunk:?}");
        }
        shutdown.cancel();
        // The writer records its end after shutdown began, when live delivery has stopped.
        for (id, topic) in [("other", "/elsewhere"), ("b", "/t"), ("end", "/t")] {
            hub.publish_valid(update(id, topic)).await.unwrap();
        }
        assert!(
            cut.next_chunk().await.is_none(),
            "an undrained stream ends at once"
        );
        written.send(()).unwrap();
        let mut rest = Vec::new();
        while let Some(chunk) = drained.next_chunk().await {
            rest.extend_from_slice(&chunk);
        }
        let rest = String::from_utf8(rest).unwrap();
        assert_eq!(
            rest,
            "id: b\ndata: data of b\n\nid: end\ndata: data of end\n\n"
        );
    }
}
