//! The typewriter relay: OpenAI-compatible chat completions (and the Responses and Messages
//! APIs) whose streams outlive the request that started them.
//!
//! ```text
//! POST /v1/chat/completions ──> Upstream::chat ──> pump task ──append──> Store (topic /v1/streams/{id})
//!                                                   (owned by the hub,          │
//!                                                    not by the caller)         ▼
//! caller / GET /v1/streams/{id} (Last-Event-ID) ──────────────> hub replay-then-live ──> until [DONE]
//! POST /v1/streams/{id}/cancel ──> cancel token ──> pump drops the upstream request
//!        (on another node) ──> cancel request in history ──> the generating node's relay ──┘
//! ```
//!
//! A relay stream *is* a hub topic: every chunk is a durable, private update with id
//! `{stream}-{n}`, so a reload resumes with `Last-Event-ID`, several tabs watch one
//! answer, and any Mercure subscriber granted `/v1/streams/{id}` can follow it too. The
//! generation belongs to a task of the hub, so a caller that disconnects does not stop it;
//! only cancel (or shutdown) does, and then the upstream request is dropped at once.
//!
//! Each stream starts with a marker update (id `{stream}`, topic `/v1/streams/{id}/started`):
//! it proves the stream exists after a restart, records who owns it (`owner`) and which node
//! generates it (`node`), and is the cursor a new watcher replays from. With nodes sharing a
//! store, any node can watch and cancel any answer (`cluster`).
//!
//! Three APIs front the same streams (`front`): Chat Completions, OpenAI Responses and
//! Anthropic Messages. The marker records which; the pump translates the upstream's Chat
//! Completions chunks into that front's events as they arrive (or keeps them, when the upstream
//! speaks the front's own API: `--upstream-api`), and history stores what the front's clients
//! see. So replay, resume, watchers, cancel and the cluster are the same code for all three;
//! `answers` adds what only the other fronts need (their objects folded from history, resume
//! by sequence number) and compact catch-up.
//!
//! Bounds: generations run per key and in total up to [`Limits`] (`limits`); beyond, 429.
//! Relay history has its own, shorter retention (`--relay-history-max-age`, applied by the
//! store's pruner to topics under `/v1/streams/`). At shutdown every live watcher is drained
//! rather than cut: it gets the `hub_shutdown` chunk and `[DONE]` the pump records, within the
//! shutdown grace.

mod answers;
mod cluster;
mod ds_view;
pub mod front;
mod limits;
mod owner;
mod pump;
pub mod simulator;
pub mod upstream;

pub use answers::{FrontStarted, Snapshot};
pub use ds_view::AnswerRead;
pub use front::Api;
pub use limits::{Bound, Limits};
pub use owner::Caller;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::hub::{Filter, Hub, PublishError, SubscribeRequest, SubscriberStream};
use crate::store::StoreError;
use crate::topic::{RELAY_STREAMS, Selector};
use crate::update::Update;
use limits::Slots;
use pump::{Generation, StreamTrace};
use upstream::{Reply, Upstream, UpstreamError};

/// Why a relay call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    /// The request body is not what the endpoint takes.
    #[error("{0}")]
    BadRequest(String),
    /// No stream with this id is retained, or it belongs to another key (which is not told
    /// apart, so ids cannot be probed).
    #[error("no stream {0:?}: it never existed here or its history was pruned")]
    UnknownStream(String),
    /// Too many generations are running (for this key or on the hub); retry later.
    #[error("too many answers at once: {0}; retry when one has finished")]
    Busy(Bound),
    /// The upstream could not be reached.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// The caller already has the whole stream (its last event id is the end).
    #[error("stream {0:?} is complete: nothing follows the given Last-Event-ID")]
    Complete(String),
    /// The stream could not be recorded.
    #[error("cannot record the stream: {0}")]
    Store(#[from] StoreError),
}

impl From<PublishError> for RelayError {
    fn from(err: PublishError) -> Self {
        match err {
            PublishError::Store(e) => RelayError::Store(e),
            other => RelayError::BadRequest(other.to_string()),
        }
    }
}

/// The answer to `POST /v1/chat/completions`.
pub enum Started {
    /// Passed through from the upstream (non-streaming answer or upstream error).
    Whole {
        /// Upstream status.
        status: http::StatusCode,
        /// Upstream content type.
        content_type: String,
        /// Upstream body.
        body: Bytes,
    },
    /// A recorded stream and the caller's view of it.
    Stream {
        /// The stream id (`X-Stream-Id`).
        id: String,
        /// The caller's stream of SSE bytes.
        watch: Box<Watch>,
    },
}

/// A watcher's view of a relay stream: the hub's SSE bytes, ending after `data: [DONE]`.
pub struct Watch {
    inner: SubscriberStream,
    /// For a stream another node generates: keeps it watched for that node's end.
    remote: Option<cluster::RemoteWatch>,
    /// Resuming past what is recorded yet: events `{prefix}{n}` up to this `n` are dropped
    /// (see [`Relay::watch_after`]).
    skip_through: Option<(String, u64, sse_wire::Parser)>,
    /// Sent before the stream's own events: a compact catch-up (see [`Relay::watch_compact`]).
    prefix: Option<Bytes>,
}

impl Watch {
    /// SSE byte chunks; the stream ends right after the chunk carrying `[DONE]`.
    pub fn into_stream(self) -> impl futures_util::Stream<Item = Bytes> + Send + 'static {
        let state = (self.inner, false, self.remote, self.skip_through);
        let prefix = futures_util::stream::iter(self.prefix);
        futures_util::StreamExt::chain(
            prefix,
            futures_util::stream::unfold(state, |(mut s, done, remote, mut skip)| async move {
                // Ends on shutdown only after the pump's last chunk and [DONE] (see `watch_from`).
                if done {
                    return None;
                }
                let mut chunk = s.next_chunk().await?;
                // [DONE] is the topic's last update, so it always ends a chunk.
                let done = chunk.ends_with(b"data: [DONE]\n\n");
                if let Some((prefix, after, parser)) = &mut skip {
                    chunk = answers::skip_through(&chunk, parser, prefix, *after);
                }
                Some((chunk, (s, done, remote, skip)))
            }),
        )
    }
}

/// How the relay runs, beyond its upstream.
#[derive(Clone, Copy, Debug)]
pub struct RelayOptions {
    /// Concurrent generations allowed.
    pub limits: Limits,
    /// How long a watcher waits at shutdown for its stream's last chunk and `[DONE]`.
    pub grace: Duration,
}

/// The relay: upstream, hub, and the streams this process is generating.
pub struct Relay {
    hub: Hub,
    upstream: Upstream,
    /// Streams being generated by this process.
    active: Mutex<HashMap<String, Active>>,
    /// Bounds the generations running at once.
    slots: Arc<Slots>,
    /// See [`RelayOptions::grace`].
    grace: Duration,
    /// Pumps stop on shutdown, after recording why.
    shutdown: CancellationToken,
    /// Pumps are waited for before the store closes.
    tracker: TaskTracker,
    /// Streams watched here that another node generates.
    remote: Arc<cluster::Remote>,
}

/// What a stream's marker records.
struct Marker {
    /// See [`owner::owner_tag`].
    owner: Option<String>,
    /// The node generating it (absent in markers of versions before nodes).
    node: Option<String>,
    /// The API it was started through, whose events it holds.
    api: Api,
}

/// A stream this process is generating.
struct Active {
    /// Stops the generation.
    cancel: CancellationToken,
    /// Set once the generation is over and its end is being recorded: too late to cancel,
    /// but not an orphan either.
    finishing: bool,
    /// The owner recorded in the marker, kept here so cancel needs no history read.
    owner: Option<String>,
    /// Cancelled once the end is recorded (see [`Generation::recorded`]).
    recorded: CancellationToken,
}

fn topic_of(id: &str) -> String {
    format!("{RELAY_STREAMS}{id}")
}

fn done_id(id: &str) -> String {
    format!("{id}-done")
}

/// Stream ids are generated, so a syntactically foreign id can be refused without a lookup.
/// Ids of earlier versions (`strm_` and a UUIDv7) stay valid.
fn valid_stream_id(id: &str) -> bool {
    id.len() <= 64
        && id.starts_with("strm_")
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

impl Relay {
    /// Replaces the bounds on generations running at once (a reload); running ones go on.
    pub fn set_limits(&self, limits: Limits) {
        self.slots.set_limits(limits);
    }

    /// A relay over `upstream`, recording into `hub`.
    pub fn new(
        hub: Hub,
        upstream: Upstream,
        options: RelayOptions,
        shutdown: CancellationToken,
        tracker: TaskTracker,
    ) -> Arc<Self> {
        let slots = Slots::new(options.limits, hub.metrics().clone());
        let relay = Arc::new(Relay {
            hub,
            upstream,
            active: Mutex::new(HashMap::new()),
            slots,
            grace: options.grace,
            shutdown,
            tracker,
            remote: Arc::default(),
        });
        relay.follow_cluster();
        relay
    }

    fn active(&self) -> std::sync::MutexGuard<'_, HashMap<String, Active>> {
        self.active.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The upstream (for `/v1/models`).
    pub fn upstream(&self) -> &Upstream {
        &self.upstream
    }

    /// Starts a completion for `caller`, who will own the stream. Streaming requests are
    /// recorded and watched; everything else, including upstream errors before the stream
    /// starts, is passed through unchanged.
    ///
    /// # Errors
    /// [`RelayError::Busy`] beyond the generation bounds, [`RelayError::Upstream`] when the
    /// upstream cannot be reached, [`RelayError::Store`] when the stream cannot be recorded.
    pub async fn start(
        self: &Arc<Self>,
        caller: &Caller,
        request: Value,
    ) -> Result<Started, RelayError> {
        if !request.is_object() {
            return Err(RelayError::BadRequest(
                "the request body must be a JSON object".into(),
            ));
        }
        if self.upstream.api() != Api::Chat {
            return Err(RelayError::BadRequest(format!(
                "this hub's upstream speaks the {} API (--upstream-api); chat completions are not translated to it",
                self.upstream.api().name()
            )));
        }
        let trace = StreamTrace::begin();
        // Taken before the upstream is asked, and held by the pump to the end: a non-streaming
        // answer is a generation too, while it is being made.
        let slot = self.slots.take(caller).map_err(|bound| {
            tracing::debug!(%bound, "relay generation refused at its bound");
            RelayError::Busy(bound)
        })?;
        let chunks = match self.upstream.chat(&request).await? {
            Reply::Whole {
                status,
                content_type,
                body,
            } => {
                return Ok(Started::Whole {
                    status,
                    content_type,
                    body,
                });
            }
            Reply::Stream(chunks) => chunks,
        };
        let id = owner::new_stream_id();
        let translator = front::Translator::Chat { meta: None };
        let watch = self
            .launch(
                caller,
                Api::Chat,
                &request,
                &id,
                chunks,
                slot,
                translator,
                trace,
            )
            .await?;
        Ok(Started::Stream {
            id,
            watch: Box::new(watch),
        })
    }

    /// Records a new stream for `caller` and starts its pump over `chunks`: the marker (with
    /// the front `api`), the caller's own watch, the generation.
    #[allow(clippy::too_many_arguments)]
    async fn launch(
        self: &Arc<Self>,
        caller: &Caller,
        api: Api,
        request: &Value,
        id: &str,
        chunks: futures_util::stream::BoxStream<'static, Result<String, UpstreamError>>,
        slot: limits::Slot,
        translator: front::Translator,
        trace: StreamTrace,
    ) -> Result<Watch, RelayError> {
        let id = id.to_owned();
        let owner = owner::owner_tag(&id, caller);
        // Registered before anything is recorded: a watcher arriving between the marker and
        // the pump must see a running stream, not an orphan to close.
        let cancel = CancellationToken::new();
        let recorded = CancellationToken::new();
        let entry = Active {
            cancel: cancel.clone(),
            finishing: false,
            owner: owner.clone(),
            recorded: recorded.clone(),
        };
        self.active().insert(id.clone(), entry);
        let marker = Update {
            id: id.clone(),
            topics: vec![format!("{}/started", topic_of(&id))],
            data: json!({"stream": id, "model": request.get("model"),
                         "created_ms": Update::now_ms(), "owner": owner,
                         "node": self.hub.nodes().id(), "api": api.name()})
            .to_string(),
            private: true,
            event_type: None,
            retry: None,
            published_at_ms: Update::now_ms(),
        };
        // The caller's own watch joins the live fan-out before anything is recorded, so it
        // needs no history read: replaying "everything after the marker" scans every stream's
        // updates recorded meanwhile, which with many concurrent streams cost more than the
        // tokens themselves (BENCHMARKS.md, typewriter relay).
        let watch = match self.watch_from(&id, None).await {
            Ok(watch) => match self.hub.publish_valid(marker).await {
                Ok(_) => Ok(watch),
                Err(e) => Err(RelayError::from(e)),
            },
            Err(e) => Err(e),
        };
        let watch = match watch {
            Ok(w) => w,
            Err(e) => {
                self.forget(&id);
                return Err(e);
            }
        };
        let generation = Generation {
            id: id.clone(),
            chunks,
            translator,
            cancel,
            recorded,
            slot,
            trace,
        };
        self.tracker.spawn(self.clone().pump(generation));
        tracing::info!(stream = %id, "relay stream started");
        Ok(watch)
    }

    /// Subscribes to stream `id`: after its update `after`, or live only when `None`.
    ///
    /// At shutdown the hub ends its streams, but this one is drained instead: it waits for the
    /// pump to record the stream's end (bounded by the grace) and sends it from history, so a
    /// live watcher gets the `hub_shutdown` chunk and `[DONE]` too.
    async fn watch_from(&self, id: &str, after: Option<&str>) -> Result<Watch, RelayError> {
        let topic = topic_of(id);
        let selector = Arc::new(Selector::Exact(topic.clone()));
        let text = format!("e:{topic}");
        let filter = Filter::new(
            vec![(text.clone(), selector.clone())],
            vec![(text, selector)],
        );
        let sub = self
            .hub
            .subscribe(SubscribeRequest {
                filter,
                last_event_id: after,
                expires_at: None,
                topics: vec![(topic, None)],
            })
            .await?;
        Ok(Watch {
            inner: sub.stream.drain_on_shutdown(self.recorded(id)),
            remote: None,
            skip_through: None,
            prefix: None,
        })
    }

    /// Resolves once stream `id`'s end is in history (at once if no pump of this process is
    /// generating it), or after the grace.
    fn recorded(&self, id: &str) -> impl Future<Output = ()> + Send + 'static {
        let recorded = self.active().get(id).map(|a| a.recorded.clone());
        let grace = self.grace;
        async move {
            if let Some(recorded) = recorded {
                let _ = tokio::time::timeout(grace, recorded.cancelled_owned()).await;
            }
        }
    }

    /// Watches a stream `caller` may see, whichever node generates it: replays what follows
    /// `last_event_id` (or all of it), then live, ending after `[DONE]`. A stream whose
    /// generator is gone, now or later, is ended as interrupted (see `cluster`).
    ///
    /// # Errors
    /// [`RelayError::UnknownStream`] when no such stream is retained or it is not the
    /// caller's.
    pub async fn watch(
        &self,
        caller: &Caller,
        id: &str,
        last_event_id: Option<&str>,
    ) -> Result<Watch, RelayError> {
        let marker = self.accessible_marker(caller, id).await?;
        let generator = self.settle(id, marker).await?;
        if last_event_id == Some(done_id(id).as_str()) {
            return Err(RelayError::Complete(id.to_owned()));
        }
        // Only this stream's own ids are accepted as a position; anything else starts over.
        let after = last_event_id
            .filter(|l| l.strip_prefix(id).is_some_and(|r| r.starts_with('-')))
            .unwrap_or(id);
        let mut watch = self.watch_from(id, Some(after)).await?;
        watch.remote = generator.map(|node| self.remote.watch(id, &node));
        Ok(watch)
    }

    /// The marker of stream `id` if `caller` may see it.
    ///
    /// # Errors
    /// [`RelayError::UnknownStream`] when there is none or it is not the caller's.
    async fn accessible_marker(&self, caller: &Caller, id: &str) -> Result<Marker, RelayError> {
        let marker = self.marker(id).await?;
        if !owner::may_access(id, marker.owner.as_deref(), caller) {
            return Err(RelayError::UnknownStream(id.to_owned()));
        }
        Ok(marker)
    }

    /// Before stream `id` is read: ends it as interrupted if its generator is gone, and says
    /// which other node generates it if one does.
    async fn settle(&self, id: &str, marker: Marker) -> Result<Option<String>, RelayError> {
        let running_here = self.active().contains_key(id);
        let mut generator = None;
        if !running_here && self.hub.store().get(&done_id(id)).await?.is_none() {
            match marker.node {
                Some(node) if !self.nodes_gone(&node).await => generator = Some(node),
                // Its generator is gone (an earlier process of this hub, or another node):
                // end it for good, so watchers finish.
                _ => self.end_interrupted(id).await,
            }
        }
        Ok(generator)
    }

    /// Whether `node`, named by the marker of a stream that is not running here, is gone. If
    /// it names this node, the stream lost its pump: as good as gone.
    async fn nodes_gone(&self, node: &str) -> bool {
        node == self.hub.nodes().id() || self.hub.nodes().is_gone(node).await
    }

    /// Stops a stream `caller` may see that is being generated, here or on another live node
    /// (which is asked through history): the upstream request is dropped and watchers get a
    /// final chunk with `finish_reason: "cancelled"`, then `[DONE]`. Returns whether it was
    /// still running.
    ///
    /// # Errors
    /// [`RelayError::UnknownStream`] when no such stream is retained or it is not the
    /// caller's; [`RelayError::Store`] when another node's stream cannot be asked to stop.
    pub async fn cancel(&self, caller: &Caller, id: &str) -> Result<bool, RelayError> {
        let running = self.active().get(id).map(|a| {
            let token = (!a.finishing).then(|| a.cancel.clone());
            (a.owner.clone(), token)
        });
        if let Some((owner, token)) = running {
            if !owner::may_access(id, owner.as_deref(), caller) {
                return Err(RelayError::UnknownStream(id.to_owned()));
            }
            return Ok(token.inspect(CancellationToken::cancel).is_some());
        }
        let marker = self.marker(id).await?;
        if !owner::may_access(id, marker.owner.as_deref(), caller) {
            return Err(RelayError::UnknownStream(id.to_owned()));
        }
        let Some(node) = marker.node else {
            return Ok(false);
        };
        if self.hub.store().get(&done_id(id)).await?.is_some() || self.nodes_gone(&node).await {
            return Ok(false);
        }
        self.request_cancel(id, &node).await?;
        Ok(true)
    }

    /// What stream `id`'s marker records.
    ///
    /// # Errors
    /// [`RelayError::UnknownStream`] when there is no such marker.
    async fn marker(&self, id: &str) -> Result<Marker, RelayError> {
        let unknown = || RelayError::UnknownStream(id.to_owned());
        if !valid_stream_id(id) {
            return Err(unknown());
        }
        let marker = self.hub.store().get(id).await?.ok_or_else(unknown)?;
        let data: Value = serde_json::from_str(&marker.update.data).unwrap_or_default();
        let text = |field: &str| data[field].as_str().map(str::to_owned);
        Ok(Marker {
            owner: text("owner"),
            node: text("node"),
            api: Api::from_name(data["api"].as_str()),
        })
    }

    fn set_finishing(&self, id: &str) {
        if let Some(a) = self.active().get_mut(id) {
            a.finishing = true;
        }
    }

    fn forget(&self, id: &str) {
        self.active().remove(id);
    }
}
