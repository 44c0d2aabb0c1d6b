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

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::time::{Instant, Sleep};

use crate::hub::HubInner;
use crate::hub::encode::encode_update;
use crate::hub::fanout::{MemberGuard, Membership};
use crate::hub::filter::Filter;
use crate::hub::presence::PresenceGuard;
use crate::hub::queue::{Delivery, Next, Queue};
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
    Seam { member: MemberGuard, after: u64 },
    /// Joined: live deliveries, skipping seqs the replay already sent.
    Live {
        /// Held for its `Drop`: leaving the phase leaves the fan-out.
        _member: MemberGuard,
        skip_through: u64,
    },
    /// Shutting down: waiting for the writer, then sending history after this seq.
    Draining { after: u64 },
    /// Finished.
    Done,
}

/// What one poll of a live stream produced.
enum Step {
    /// Bytes to write.
    Chunk(Bytes),
    /// The stream is over (shutdown, token expired, cut off).
    End,
    /// The stream left the live phase to drain (see [`SubscriberStream::drain_on_shutdown`]).
    Left,
}

/// Resolves once a subscriber is cut off for falling behind: what a connection's writer
/// watches while a write to a client that stopped reading is stuck, so it can close the
/// connection soon rather than after its write-stall timeout.
#[derive(Clone)]
pub struct CutOff(Arc<Queue>);

impl CutOff {
    /// Ready once the subscriber was cut off; pending forever for one that keeps up.
    pub fn poll_wait(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.0.poll_cut_off(cx)
    }
}

/// A subscriber's stream of SSE bytes.
///
/// Memory: most subscribers sit idle in the live phase for hours, so what this struct holds
/// is paid by every connection (BENCHMARKS.md, "Where the remaining memory of an idle
/// subscriber is"). The live phase is polled in place ([`Self::poll_live`]); the replay's
/// awaits run in a box only while they run ([`Self::into_stream`]); shutdown comes through
/// the queue (no registration on the token per stream); what few streams use is boxed
/// behind [`Rare`]. `tests::an_idle_stream_stays_small` holds the size.
pub struct SubscriberStream {
    hub: Arc<HubInner>,
    /// Where live deliveries arrive once joined; made up front so a [`CutOff`] can be handed
    /// out before the replay ends.
    queue: Arc<Queue>,
    /// Once joined, the group's filter (shared by every member of the group).
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
    /// The newest seq this stream has covered (written, or skipped by its filter): where a
    /// drain resumes.
    delivered: u64,
    /// What only some streams have, out of line.
    rare: Option<Box<Rare>>,
}

/// The parts of a stream most subscribers never have.
#[derive(Default)]
struct Rare {
    /// Set by [`SubscriberStream::drain_on_shutdown`]: what to wait for before the final
    /// history read.
    drain: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    /// Announces the end of the subscription when the stream ends (`--subscriptions`).
    presence: Option<PresenceGuard>,
}

impl Drop for SubscriberStream {
    fn drop(&mut self) {
        // Keeps the subscriber gauge right however the stream ends.
        self.hub.metrics.subscribers.fetch_sub(1, Ordering::Relaxed);
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
        let (queue, filter, phase, delivered) = match membership {
            Some(m) => (
                m.queue,
                m.filter,
                Phase::Live {
                    _member: m.guard,
                    skip_through: 0,
                },
                m.joined_after.map_or(0, |(seq, _)| seq),
            ),
            None => (
                Arc::default(),
                filter,
                Phase::Opening(first_page, more, head_seq),
                0,
            ),
        };
        let now = Instant::now();
        let heartbeat = hub.heartbeat();
        SubscriberStream {
            heartbeat,
            heartbeat_timer: Box::pin(tokio::time::sleep_until(now + heartbeat)),
            hub,
            queue,
            filter,
            phase,
            last_write: now,
            expiry: expires_at.map(|at| Box::pin(tokio::time::sleep_until(at))),
            delivered,
            rare: None,
        }
    }

    fn rare(&mut self) -> &mut Rare {
        self.rare.get_or_insert_with(Box::default)
    }

    /// On shutdown, instead of ending at once: wait for `until` (which the caller must bound,
    /// e.g. by the shutdown grace), then send every update history holds after the last one
    /// this stream delivered, then end. For streams whose writer records a final update when
    /// the hub stops, so that it reaches live readers too.
    pub fn drain_on_shutdown(mut self, until: impl Future<Output = ()> + Send + 'static) -> Self {
        self.rare().drain = Some(Box::pin(until));
        self
    }

    pub(crate) fn with_presence(mut self, guard: PresenceGuard) -> Self {
        self.rare().presence = Some(guard);
        self
    }

    /// A handle that resolves when this subscriber is cut off for falling behind.
    pub fn cut_off(&self) -> CutOff {
        CutOff(self.queue.clone())
    }

    /// Turns the stream into a `futures` stream of byte chunks, opening with a comment.
    pub fn into_stream(self) -> impl futures_util::Stream<Item = Bytes> + Send + 'static {
        Chunks::Opening(self)
    }

    /// The next chunk to write, or `None` when the stream is over.
    pub async fn next_chunk(&mut self) -> Option<Bytes> {
        loop {
            match std::mem::replace(&mut self.phase, Phase::Done) {
                Phase::Done => return None,
                live @ Phase::Live { .. } => {
                    self.phase = live;
                    match poll_fn(|cx| self.poll_live(cx)).await {
                        Step::Chunk(chunk) => return Some(chunk),
                        Step::End => return None,
                        Step::Left => {}
                    }
                }
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
                Phase::Seam { member, after } => {
                    let page = self.read_page(after).await?;
                    let last = page.updates.last().map_or(after, |s| s.seq);
                    self.delivered = last;
                    let chunk = self.encode_page(&page.updates, page.head_seq);
                    self.phase = if page.more {
                        Phase::Seam {
                            member,
                            after: last,
                        }
                    } else {
                        Phase::Live {
                            _member: member,
                            skip_through: last,
                        }
                    };
                    if !chunk.is_empty() {
                        return Some(self.wrote(chunk));
                    }
                }
                Phase::Draining { after } => {
                    if let Some(until) = self.rare.as_mut().and_then(|r| r.drain.take()) {
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
        let membership = self
            .hub
            .fanout
            .join(self.filter.clone(), self.queue.clone());
        self.filter = membership.filter;
        Phase::Seam {
            member: membership.guard,
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

    fn is_live(&self) -> bool {
        matches!(self.phase, Phase::Live { .. })
    }

    /// Polls the live phase in place: shutdown first, then the token's expiry, then
    /// deliveries, then the heartbeat. Polled rather than awaited so that an idle stream is
    /// this struct and nothing more.
    fn poll_live(&mut self, cx: &mut Context<'_>) -> Poll<Step> {
        let Phase::Live { skip_through, .. } = self.phase else {
            return Poll::Ready(Step::Left);
        };
        loop {
            let next = self.queue.poll_next(cx);
            if let Poll::Ready(Next::ShutDown) = next {
                return Poll::Ready(self.shutting_down());
            }
            if let Some(at) = self.expiry.as_mut()
                && at.as_mut().poll(cx).is_ready()
            {
                tracing::debug!("subscriber token expired; ending the stream");
                self.phase = Phase::Done;
                return Poll::Ready(Step::End);
            }
            match next {
                Poll::Ready(Next::Delivery(d)) => {
                    if d.seq <= skip_through {
                        continue;
                    }
                    let (chunk, last) = coalesce(&self.queue, d, skip_through);
                    self.delivered = last;
                    return Poll::Ready(Step::Chunk(self.wrote(chunk)));
                }
                Poll::Ready(Next::Closed) => {
                    self.phase = Phase::Done;
                    return Poll::Ready(Step::End);
                }
                Poll::Ready(Next::ShutDown) | Poll::Pending => {}
            }
            if self.heartbeat_timer.as_mut().poll(cx).is_ready() {
                let due = self.last_write + self.heartbeat;
                if due > Instant::now() {
                    // Something was written since the timer was set: not silent yet.
                    self.heartbeat_timer.as_mut().reset(due);
                    continue;
                }
                self.heartbeat_timer
                    .as_mut()
                    .reset(Instant::now() + self.heartbeat);
                return Poll::Ready(Step::Chunk(self.wrote(Bytes::from_static(b":\n"))));
            }
            return Poll::Pending;
        }
    }

    /// Ends the live phase for shutdown: into the drain if one was asked for, else the end.
    fn shutting_down(&mut self) -> Step {
        if self.rare.as_ref().is_some_and(|r| r.drain.is_some()) {
            self.phase = Phase::Draining {
                after: self.delivered,
            };
            Step::Left
        } else {
            self.phase = Phase::Done;
            Step::End
        }
    }
}

/// [`SubscriberStream::into_stream`]: the opening comment, then the live phase polled in
/// place, and every other phase (whose history reads await) run in a box that owns the
/// stream until its chunk is out, so the idle stream carries no room for those awaits.
enum Chunks {
    /// The opening comment is not sent yet: it lets browsers and proxies see the stream
    /// open at once.
    Opening(SubscriberStream),
    /// Between chunks.
    Ready(SubscriberStream),
    /// Producing a chunk of the replay, the seam or the drain.
    Busy(Pin<Box<dyn Future<Output = (Option<Bytes>, SubscriberStream)> + Send>>),
    /// Over.
    Done,
}

impl futures_util::Stream for Chunks {
    type Item = Bytes;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        let this = &mut *self;
        loop {
            match std::mem::replace(this, Chunks::Done) {
                Chunks::Done => return Poll::Ready(None),
                Chunks::Opening(s) => {
                    *this = Chunks::Ready(s);
                    return Poll::Ready(Some(Bytes::from_static(b":\n")));
                }
                Chunks::Ready(mut s) if s.is_live() => match s.poll_live(cx) {
                    Poll::Pending => {
                        *this = Chunks::Ready(s);
                        return Poll::Pending;
                    }
                    Poll::Ready(Step::Chunk(chunk)) => {
                        *this = Chunks::Ready(s);
                        return Poll::Ready(Some(chunk));
                    }
                    Poll::Ready(Step::End) => return Poll::Ready(None),
                    Poll::Ready(Step::Left) => *this = Chunks::Ready(s),
                },
                Chunks::Ready(mut s) => {
                    *this = Chunks::Busy(Box::pin(async move {
                        let chunk = s.next_chunk().await;
                        (chunk, s)
                    }));
                }
                Chunks::Busy(mut busy) => match busy.as_mut().poll(cx) {
                    Poll::Pending => {
                        *this = Chunks::Busy(busy);
                        return Poll::Pending;
                    }
                    Poll::Ready((Some(chunk), s)) => {
                        *this = Chunks::Ready(s);
                        return Poll::Ready(Some(chunk));
                    }
                    Poll::Ready((None, _)) => return Poll::Ready(None),
                },
            }
        }
    }
}

/// Appends whatever else is already queued to `first`, so a subscriber with a backlog gets
/// one write instead of one per update; also returns the last seq written.
fn coalesce(queue: &Queue, first: Delivery, skip_through: u64) -> (Bytes, u64) {
    let (first, mut last) = (first.bytes, first.seq);
    let mut buf: Option<BytesMut> = None;
    while buf.as_ref().map_or(first.len(), |b| b.len()) < COALESCE_BYTES {
        let Some(d) = queue.try_pop() else { break };
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

    /// Every idle subscriber holds its stream (in its response body's box) for the stream's
    /// whole life, so its size is paid per connection: this fails when replay-only state, an
    /// await or a per-stream registration comes back inline. Before the idle-memory work
    /// (2026-12-05) the stream was ~230 bytes, inside a 576-byte box with the `async` state
    /// around it, and held a boxed shutdown registration; now 136 bytes, and the body's box
    /// 144 (heaptrack, release).
    #[test]
    fn an_idle_stream_stays_small() {
        let stream = std::mem::size_of::<super::SubscriberStream>();
        let boxed = std::mem::size_of::<super::Chunks>();
        assert!(stream <= 144, "SubscriberStream is {stream} bytes");
        assert!(
            boxed <= 152,
            "the stream a response body boxes is {boxed} bytes"
        );
    }

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
