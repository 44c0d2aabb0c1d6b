//! The hub: publish, subscribe, replay-then-live. No HTTP here; `http/` adapts requests to
//! these calls.
//!
//! ```text
//! publish ──validate──> Store::append (durable, group commit) ──> 200 with the id
//!                              │
//!                       Store::subscribe feed
//!                              │
//!                     dispatcher task ──> Fanout (groups, bounded queues) ──> SubscriberStream
//!                                                                               ▲
//! subscribe ──> replay pages from Store::read_after ──> join Fanout ────────────┘
//! ```
//!
//! Live delivery is driven by the store's feed, not by the publish call, so the same path
//! serves updates published on this node and (with a shared store) on any other node. The
//! same dispatch feeds the hub's own bookkeeping (subscription events for presence) and
//! whoever follows part of the hub's reserved topics ([`Hub::follow`]); [`Nodes`] tells which
//! nodes sharing the store are alive.

#[cfg(test)]
mod catch_up_tests;
mod encode;
mod fanout;
mod filter;
mod metrics;
mod nodes;
mod presence;
mod publish;
mod queue;
mod stream;

// The hub's face: what the relay, HTTP and the fuzz targets use. Everything else is private.
pub use encode::encode_update;
pub use filter::Filter;
pub use metrics::Metrics;
pub use nodes::{Liveness, Nodes};
pub use presence::{CONTEXT, SUBSCRIPTIONS_PATH, subscription_iri, topic_iri};
pub use publish::{InvalidUpdate, NewUpdate, validate};
pub use queue::QueueLimits;
pub use stream::{CutOff, SubscriberStream};

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::store::{Cursor, Retention, Store, StoreError, Stored};
use crate::update::Update;
use fanout::Fanout;

/// Default of [`HubOptions::node_lease`]: renewed every second, so three renewals may fail
/// or come late before the others act.
pub const DEFAULT_NODE_LEASE: Duration = Duration::from_secs(4);

/// Tuning of the hub core.
#[derive(Clone, Debug)]
pub struct HubOptions {
    /// Comment after this much silence on a stream.
    pub heartbeat: Duration,
    /// Per-subscriber queue bounds.
    pub limits: QueueLimits,
    /// Updates read from history per page during replay.
    pub replay_page: usize,
    /// Publish subscription events and keep the list of active subscriptions.
    pub subscriptions: bool,
    /// What history keeps: replay skips what the pruner has yet to remove.
    pub retention: Retention,
    /// How long this node's lease lasts without renewal: other nodes take it for gone (and
    /// clean up after it) at most this long, and a renewal period, after it stopped.
    pub node_lease: Duration,
}

impl Default for HubOptions {
    fn default() -> Self {
        HubOptions {
            heartbeat: Duration::from_secs(40),
            limits: QueueLimits {
                queue_bytes: 4 << 20,
                queue_events: 4096,
            },
            replay_page: 512,
            subscriptions: false,
            retention: Retention::default(),
            node_lease: DEFAULT_NODE_LEASE,
        }
    }
}

/// Why a publish failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The update is malformed.
    #[error(transparent)]
    Invalid(#[from] InvalidUpdate),
    /// The store refused or failed: nothing was acknowledged.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A new subscription: the `Last-Event-ID` response header value and the stream.
pub struct Subscription {
    /// The id preceding the first event the stream sends, or `earliest`.
    pub last_event_id: String,
    /// Whether the requested `Last-Event-ID` was unknown (pruned or never existed), in which
    /// case the whole retained history is replayed.
    pub unknown_last_event_id: bool,
    /// The subscriber's id in subscription events, when `--subscriptions` is on.
    pub subscriber_id: Option<String>,
    /// The bytes to send.
    pub stream: SubscriberStream,
}

/// What a subscriber asked for.
pub struct SubscribeRequest<'a> {
    /// Which updates it receives.
    pub filter: Filter,
    /// Where replay starts: an id, `earliest`, or `None` for live only.
    pub last_event_id: Option<&'a str>,
    /// When its token expires: the stream ends then.
    pub expires_at: Option<Instant>,
    /// Its selectors as written, each with the payload its token attaches to it, for
    /// subscription events.
    pub topics: Vec<(String, Option<serde_json::Value>)>,
}

/// The value of the `Last-Event-ID` header when history starts at the beginning.
pub const EARLIEST: &str = "earliest";

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl HubInner {
    /// The silence after which a stream opened now sends a comment.
    pub(crate) fn heartbeat(&self) -> Duration {
        Duration::from_nanos(self.heartbeat_nanos.load(Ordering::Relaxed))
    }
}

/// Shared state behind [`Hub`] handles and subscriber streams.
pub(crate) struct HubInner {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) fanout: Arc<Fanout>,
    pub(crate) metrics: Arc<Metrics>,
    /// [`HubOptions::heartbeat`] in nanoseconds; a reload changes it for streams opened later.
    heartbeat_nanos: AtomicU64,
    pub(crate) replay_page: usize,
    /// See [`HubOptions::retention`].
    pub(crate) retention: Retention,
    pub(crate) shutdown: CancellationToken,
    pub(crate) presence: Option<Arc<presence::Presence>>,
    /// This node and which others are alive.
    pub(crate) nodes: Arc<Nodes>,
    /// Who follows which updates besides subscribers (see [`Hub::follow`]).
    pub(crate) followers: Mutex<Vec<Follower>>,
    /// Background work the hub starts (subscription-end events), waited for at shutdown
    /// before the store closes.
    pub(crate) tracker: TaskTracker,
}

/// One [`Hub::follow`]er.
pub(crate) struct Follower {
    /// Which updates it wants.
    wants: fn(&Update) -> bool,
    /// Where they go; unbounded because only hub-written control updates pass `wants`.
    to: mpsc::UnboundedSender<Stored>,
}

/// A handle on the running hub; cheap to clone.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<HubInner>,
}

impl Hub {
    /// Starts the hub's dispatcher on `store`; it runs until `shutdown` fires.
    ///
    /// # Errors
    /// Fails if the store cannot report where its history ends.
    pub async fn start(
        store: Arc<dyn Store>,
        options: HubOptions,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
        tracker: &TaskTracker,
    ) -> Result<Hub, StoreError> {
        // The lease comes first: other nodes learn of this one from what it records.
        let nodes =
            Nodes::start(store.clone(), options.node_lease, shutdown.clone(), tracker).await;
        // Subscribe before asking where history ends, so no append falls between the two.
        let feed = store.subscribe();
        let last = store.stats().await?.last_seq;
        let presence = options
            .subscriptions
            .then(|| Arc::new(presence::Presence::new(nodes.id())));
        let inner = Arc::new(HubInner {
            fanout: Fanout::new(options.limits, metrics.clone()),
            store,
            metrics,
            heartbeat_nanos: AtomicU64::new(nanos(options.heartbeat)),
            replay_page: options.replay_page.max(1),
            retention: options.retention,
            shutdown,
            presence,
            nodes,
            followers: Mutex::default(),
            tracker: tracker.clone(),
        });
        // After a restart the newest update in history is what precedes live delivery.
        if last > 0 {
            let page = inner.store.read_after(Cursor::Seq(last - 1), 1).await?;
            if let Some(s) = page.updates.first().filter(|s| s.seq == last) {
                inner.fanout.seed(s.seq, &s.update.id);
            }
        }
        tracker.spawn(dispatch_loop(inner.clone(), feed, last));
        // Live streams hear of shutdown through their queues: one waiter here instead of one
        // registration on the token per subscriber (BENCHMARKS.md, idle memory).
        let (fanout, shutdown) = (inner.fanout.clone(), inner.shutdown.clone());
        tracker.spawn(async move {
            shutdown.cancelled().await;
            fanout.shut_down();
        });
        let hub = Hub { inner };
        if let Some(presence) = &hub.inner.presence {
            tracker.spawn(presence::recall(
                hub.inner.store.clone(),
                presence.clone(),
                last,
                hub.inner.replay_page,
                hub.inner.shutdown.clone(),
            ));
            tracker.spawn(presence::follow_nodes(
                hub.clone(),
                presence.clone(),
                hub.inner.nodes.liveness(),
                hub.inner.shutdown.clone(),
            ));
        }
        Ok(hub)
    }

    /// Every update from now on for which `wants` is true, in history order, whichever node
    /// published it. For the hub's own control updates in its reserved topics (the relay's
    /// cancel requests): the channel is unbounded, so `wants` must let through only updates
    /// no publisher can make in bulk. Dropping the receiver ends the following.
    pub fn follow(&self, wants: fn(&Update) -> bool) -> mpsc::UnboundedReceiver<Stored> {
        let (to, from) = mpsc::unbounded_channel();
        self.inner
            .followers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Follower { wants, to });
        from
    }

    /// This node and which nodes sharing the store are alive.
    pub fn nodes(&self) -> &Arc<Nodes> {
        &self.inner.nodes
    }

    /// Validates and durably stores an update; live delivery follows from the store's feed.
    ///
    /// # Errors
    /// [`PublishError::Invalid`] for a malformed update, [`PublishError::Store`] when it could
    /// not be made durable (then nothing was acknowledged).
    pub async fn publish(&self, new: NewUpdate) -> Result<Stored, PublishError> {
        let update = publish::validate(new).inspect_err(|_| self.count_error())?;
        self.publish_valid(update).await
    }

    /// Stores an update built by the hub itself (subscription events, relay streams).
    ///
    /// # Errors
    /// [`PublishError::Store`] when it could not be made durable.
    pub async fn publish_valid(&self, update: Update) -> Result<Stored, PublishError> {
        let started = std::time::Instant::now();
        match self.inner.store.append(update).await {
            Ok(stored) => {
                self.inner.metrics.observe_publish(started.elapsed());
                Ok(stored)
            }
            Err(err) => {
                self.count_error();
                Err(err.into())
            }
        }
    }

    /// Stores several updates built by the hub itself in this order, in one round trip to the
    /// store where it can (see [`Store::append_batch`](crate::store::Store::append_batch) for
    /// what a failure leaves stored); one
    /// answer per update, counted in the metrics as that many publishes.
    pub async fn publish_valid_batch(
        &self,
        updates: Vec<Update>,
    ) -> Vec<Result<Stored, PublishError>> {
        let started = std::time::Instant::now();
        let answers = self.inner.store.append_batch(updates).await;
        let took = started.elapsed();
        answers
            .into_iter()
            .map(|answer| match answer {
                Ok(stored) => {
                    self.inner.metrics.observe_publish(took);
                    Ok(stored)
                }
                Err(err) => {
                    self.count_error();
                    Err(err.into())
                }
            })
            .collect()
    }

    fn count_error(&self) {
        self.inner
            .metrics
            .publish_errors
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Opens a subscription: replays history after `last_event_id` (`earliest` for all of it),
    /// then continues live, until shutdown, the token's expiry, or the client leaves.
    ///
    /// # Errors
    /// Fails only when history cannot be read.
    pub async fn subscribe(&self, req: SubscribeRequest<'_>) -> Result<Subscription, StoreError> {
        let inner = &self.inner;
        let filter = Arc::new(req.filter);
        let (header, unknown, stream) = match req.last_event_id {
            None => {
                let membership = inner.fanout.join(filter.clone(), Arc::default());
                let header = membership
                    .joined_after
                    .as_ref()
                    .map_or(EARLIEST.to_owned(), |(_, id)| id.to_string());
                let stream = SubscriberStream::new(
                    inner.clone(),
                    filter,
                    Vec::new(),
                    false,
                    0,
                    Some(membership),
                    req.expires_at,
                );
                (header, false, stream)
            }
            Some(requested) => {
                let cursor = if requested == EARLIEST {
                    Cursor::Earliest
                } else {
                    Cursor::Id(requested.to_owned())
                };
                let page = inner.store.read_after(cursor, inner.replay_page).await?;
                // A cursor that retention no longer keeps is as unknown as a pruned one: the
                // first update after it is past retention too.
                let expired = page.updates.first().is_some_and(|first| {
                    !inner.retention.keeps(page.head_seq, Update::now_ms())(first)
                });
                let unknown = requested != EARLIEST && (!page.found || expired);
                if unknown {
                    tracing::debug!(
                        last_event_id = requested,
                        "unknown Last-Event-ID; replaying all retained history"
                    );
                }
                let header = if requested == EARLIEST || unknown {
                    EARLIEST.to_owned()
                } else {
                    requested.to_owned()
                };
                let stream = SubscriberStream::new(
                    inner.clone(),
                    filter,
                    page.updates,
                    page.more,
                    page.head_seq,
                    None,
                    req.expires_at,
                );
                (header, unknown, stream)
            }
        };
        let (stream, subscriber_id) = match &inner.presence {
            Some(presence) => {
                let id = Update::generate_id();
                let joined = presence.join(&id, &req.topics);
                // The guard exists before the first await: a client that leaves while the
                // join events are being stored still gets its leave recorded.
                let guard = presence::PresenceGuard {
                    hub: self.clone(),
                    presence: presence.clone(),
                    subscriber: id.clone(),
                };
                let stream = stream.with_presence(guard);
                for update in joined {
                    if let Err(err) = self.publish_valid(update).await {
                        tracing::warn!(error = %err, "cannot publish a subscription event");
                    }
                }
                (stream, Some(id))
            }
            None => (stream, None),
        };
        Ok(Subscription {
            last_event_id: header,
            unknown_last_event_id: unknown,
            subscriber_id,
            stream,
        })
    }

    pub(crate) fn tracker(&self) -> &TaskTracker {
        &self.inner.tracker
    }

    /// Active subscriptions, when `--subscriptions` is on.
    pub fn presence(&self) -> Option<&Arc<presence::Presence>> {
        self.inner.presence.as_ref()
    }

    /// The id of the last update delivered live, or `earliest` when there is none yet.
    pub fn last_event_id(&self) -> String {
        self.inner
            .fanout
            .last_dispatched()
            .map_or(EARLIEST.to_owned(), |(_, id)| id.to_string())
    }

    /// Sets the silence after which streams opened from now on send a comment (open streams
    /// keep theirs until they reconnect).
    pub fn set_heartbeat(&self, heartbeat: Duration) {
        self.inner
            .heartbeat_nanos
            .store(nanos(heartbeat), Ordering::Relaxed);
    }

    /// The hub's counters.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    /// The store behind the hub.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// Whether a subscriber joined for live delivery would receive a public update on
    /// `topic` (one still replaying history is not counted yet). Lets a producer that exists
    /// only to be watched (the `--demo` publisher) stay quiet when nobody is.
    pub fn has_subscribers(&self, topic: &str) -> bool {
        self.inner.fanout.has_subscribers(topic)
    }

    /// Distinct subscriber filters currently joined.
    pub fn group_count(&self) -> usize {
        self.inner.fanout.group_count()
    }
}

/// First and longest pause before the dispatcher reads history again after a failed catch-up.
const CATCH_UP_RETRY_MIN: Duration = Duration::from_millis(50);
const CATCH_UP_RETRY_MAX: Duration = Duration::from_secs(1);

/// Most updates dispatched under one registry lock.
const DISPATCH_BATCH: usize = 256;

/// Drives the fan-out from the store's feed. If the feed overflows (this task fell behind
/// the store), it catches up by reading history by seq, so no acknowledged update is skipped.
async fn dispatch_loop(
    inner: Arc<HubInner>,
    mut feed: tokio::sync::broadcast::Receiver<Stored>,
    mut last: u64,
) {
    let mut batch: Vec<Stored> = Vec::with_capacity(DISPATCH_BATCH);
    loop {
        let first = tokio::select! {
            _ = inner.shutdown.cancelled() => return,
            r = feed.recv() => r,
        };
        let mut lagged = false;
        match first {
            Ok(s) => batch.push(s),
            Err(RecvError::Lagged(n)) => {
                tracing::warn!(
                    missed = n,
                    "dispatcher fell behind the store feed; catching up from history"
                );
                lagged = true;
            }
            Err(RecvError::Closed) => return,
        }
        while !lagged && batch.len() < DISPATCH_BATCH {
            match feed.try_recv() {
                Ok(s) => batch.push(s),
                Err(TryRecvError::Lagged(_)) => lagged = true,
                Err(_) => break,
            }
        }
        dispatch(&inner, &mut batch, &mut last);
        if lagged {
            let mut pause = CATCH_UP_RETRY_MIN;
            loop {
                let page = match inner
                    .store
                    .read_after(Cursor::Seq(last), DISPATCH_BATCH)
                    .await
                {
                    Ok(p) => p,
                    Err(err) => {
                        // Giving up would skip the missed updates for every live subscriber
                        // for good: live delivery waits for the store instead.
                        tracing::warn!(error = %err, retry_in = ?pause, "cannot read history to catch up; retrying");
                        tokio::select! {
                            _ = inner.shutdown.cancelled() => return,
                            () = tokio::time::sleep(pause) => {}
                        }
                        pause = (pause * 2).min(CATCH_UP_RETRY_MAX);
                        continue;
                    }
                };
                let more = page.more;
                batch.extend(page.updates);
                dispatch(&inner, &mut batch, &mut last);
                if !more {
                    break;
                }
            }
        }
    }
}

fn dispatch(inner: &HubInner, batch: &mut Vec<Stored>, last: &mut u64) {
    let fresh = || batch.iter().filter(|s| s.seq > *last);
    // Before the fan-out moves `last_dispatched` past them: the subscriptions API reads that
    // id, then lists, and a client subscribing from it must not miss a change.
    if let Some(presence) = &inner.presence {
        for stored in fresh().filter(|s| presence::is_event(&s.update)) {
            presence.observe(stored);
        }
    }
    {
        let mut followers = inner.followers.lock().unwrap_or_else(|e| e.into_inner());
        followers.retain(|f| !f.to.is_closed());
        for stored in fresh() {
            for f in followers.iter().filter(|f| (f.wants)(&stored.update)) {
                let _ = f.to.send(stored.clone());
            }
        }
    }
    let encoded: Vec<(u64, &Update, bytes::Bytes)> = fresh()
        .map(|s| (s.seq, &*s.update, encode::encode_update(&s.update)))
        .collect();
    if let Some((seq, _, _)) = encoded.last() {
        *last = *seq;
    }
    inner.fanout.dispatch(&encoded);
    batch.clear();
}
