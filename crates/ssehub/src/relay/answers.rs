//! The relay's Responses and Messages fronts: starting a stream through them, reading a stream
//! as the front's object (a Responses `response`, a Messages `message`), resuming by sequence
//! number, and ending a stream whose generator is gone in the front's own terms.
//!
//! A stream's state is never kept apart from its history: the object a `GET` returns is folded
//! from the stored events (`front::*::Translator::from_events`), so it is the same on every
//! node and after a restart.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use serde_json::Value;
use sse_wire::{FrameRef, Parser};

use super::front::{self, Api, Event, messages, responses};
use super::pump::StreamTrace;
use super::upstream::Reply;
use super::{Caller, Relay, RelayError, Watch, done_id, owner, topic_of};
use crate::store::Cursor;
use crate::update::Update;

/// How long `cancel` waits for the cancelled answer's end to be recorded, to return it.
const CANCEL_WAIT: Duration = Duration::from_secs(2);

/// Most events read to fold one stream (a bound on a hostile or runaway stream's cost).
const MAX_FOLD_EVENTS: usize = 1 << 20;

/// The answer to a Responses or Messages request.
pub enum FrontStarted {
    /// The upstream's error, passed through with its status and body.
    Whole {
        /// Upstream status.
        status: http::StatusCode,
        /// Upstream content type.
        content_type: String,
        /// Upstream body.
        body: Bytes,
    },
    /// A recorded stream.
    Stream {
        /// The stream id (also the response id).
        id: String,
        /// The caller's view of it.
        watch: Box<Watch>,
        /// The front's object as the stream starts (a background request's answer).
        initial: Value,
    },
}

/// A stream read as its front's object.
pub enum Snapshot {
    /// A Responses `response` object, its `status` saying whether it is done.
    Response(Value),
    /// A Messages `message` object, and the error the stream ended with, if any.
    Message {
        /// The message so far.
        message: Value,
        /// Set when the answer failed.
        failure: Option<String>,
        /// Whether the stream has ended.
        done: bool,
    },
}

impl Relay {
    /// Starts a stream through the `api` front (Responses or Messages) for `caller`: the
    /// request is translated to Chat Completions and always streamed upstream, so every
    /// answer is recorded, whether its caller streams or not.
    ///
    /// # Errors
    /// [`RelayError::BadRequest`] naming the field a request gets wrong or that is not
    /// translated, and those of [`Relay::start`].
    pub async fn start_front(
        self: &Arc<Self>,
        caller: &Caller,
        api: Api,
        request: Value,
    ) -> Result<FrontStarted, RelayError> {
        if !request.is_object() {
            return Err(RelayError::BadRequest(
                "the request body must be a JSON object".into(),
            ));
        }
        let upstream_api = self.upstream.api();
        let passing = upstream_api == api;
        let ask = if passing {
            let mut pass = request.clone();
            pass["stream"] = serde_json::json!(true);
            Ok(pass)
        } else {
            match (upstream_api, api) {
                (Api::Chat, Api::Responses) => responses::to_chat(&request),
                (Api::Chat, Api::Messages) => messages::to_chat(&request),
                _ => Err(format!(
                    "this hub's upstream speaks the {} API (--upstream-api); {} requests are translated only to chat completions",
                    upstream_api.name(),
                    api.name()
                )),
            }
        }
        .map_err(RelayError::BadRequest)?;
        let slot = self.slots.take(caller).map_err(RelayError::Busy)?;
        let reply = if passing {
            self.upstream.pass(api, &ask).await?
        } else {
            self.upstream.chat(&ask).await?
        };
        let chunks = match reply {
            Reply::Whole {
                status,
                content_type,
                body,
            } => {
                return Ok(FrontStarted::Whole {
                    status,
                    content_type,
                    body,
                });
            }
            Reply::Stream(chunks) => chunks,
        };
        let id = owner::new_stream_id();
        let (translator, initial) = match api {
            Api::Responses => {
                let t = responses::Translator::new(&id, &request);
                let initial = t.response("in_progress");
                (front::Translator::Responses(Box::new(t)), initial)
            }
            Api::Messages | Api::Chat => {
                let t = messages::Translator::new(&id, &request);
                let initial = t.message();
                (front::Translator::Messages(Box::new(t)), initial)
            }
        };
        let translator = if passing {
            front::Translator::Passthrough(Box::new(front::passthrough::Passthrough::new(&id, api)))
        } else {
            translator
        };
        let watch = self
            .launch(
                caller,
                api,
                &request,
                &id,
                chunks,
                slot,
                translator,
                StreamTrace::begin(),
            )
            .await?;
        tracing::info!(stream = %id, api = api.name(), "relay stream started");
        Ok(FrontStarted::Stream {
            id,
            watch: Box::new(watch),
            initial,
        })
    }

    /// Stream `id`, started through `api`, read as its object so far.
    ///
    /// # Errors
    /// [`RelayError::UnknownStream`] when there is no such stream for `caller` through `api`.
    pub async fn snapshot(
        &self,
        caller: &Caller,
        api: Api,
        id: &str,
    ) -> Result<Snapshot, RelayError> {
        let marker = self.accessible_marker(caller, id).await?;
        if marker.api != api {
            return Err(RelayError::UnknownStream(id.to_owned()));
        }
        self.settle(id, marker).await?;
        let events = self.history(id).await?;
        let done = events.iter().any(|u| u.id == done_id(id));
        let data = || events.iter().map(|u| u.data.as_str());
        Ok(match api {
            Api::Messages | Api::Chat => {
                let t = messages::Translator::from_events(data());
                Snapshot::Message {
                    message: t.message(),
                    failure: t.failure().map(str::to_owned),
                    done,
                }
            }
            Api::Responses => {
                let end = events
                    .iter()
                    .find(|u| u.id == format!("{id}-end"))
                    .and_then(|u| serde_json::from_str::<Value>(&u.data).ok());
                let response = match end {
                    Some(mut end) => end["response"].take(),
                    None => responses::Translator::from_events(id, data()).response("in_progress"),
                };
                Snapshot::Response(response)
            }
        })
    }

    /// Checks that stream `id` exists for `caller` and was started through `api`.
    ///
    /// # Errors
    /// [`RelayError::UnknownStream`] otherwise.
    pub async fn check_front(&self, caller: &Caller, api: Api, id: &str) -> Result<(), RelayError> {
        let marker = self.accessible_marker(caller, id).await?;
        if marker.api != api {
            return Err(RelayError::UnknownStream(id.to_owned()));
        }
        Ok(())
    }

    /// Watches a Responses stream from after its event `starting_after` (all of it when
    /// `None`). A number not recorded yet waits for the live events past it.
    ///
    /// # Errors
    /// Those of [`Relay::watch`]; [`RelayError::Complete`] when the stream ended at or
    /// before `starting_after`.
    pub async fn watch_after(
        &self,
        caller: &Caller,
        id: &str,
        starting_after: Option<u64>,
    ) -> Result<Watch, RelayError> {
        let Some(n) = starting_after.filter(|n| *n > 0) else {
            return self.watch(caller, id, None).await;
        };
        let at = format!("{id}-{n}");
        if self.hub.store().get(&at).await?.is_some() {
            return self.watch(caller, id, Some(&at)).await;
        }
        if let Some(end) = self.hub.store().get(&format!("{id}-end")).await? {
            let seq = serde_json::from_str::<Value>(&end.update.data)
                .ok()
                .and_then(|v| v["sequence_number"].as_u64())
                .unwrap_or(0);
            if seq <= n {
                return Err(RelayError::Complete(id.to_owned()));
            }
        }
        let mut watch = self.watch(caller, id, None).await?;
        watch.skip_through = Some((format!("{id}-"), n, Parser::new()));
        Ok(watch)
    }

    /// Whether stream `id` has recorded its event number `n` (a Responses `sequence_number`).
    pub async fn has_event(&self, id: &str, n: u64) -> bool {
        matches!(
            self.hub.store().get(&format!("{id}-{n}")).await,
            Ok(Some(_))
        )
    }

    /// Watches stream `id` like [`Relay::watch`], but sends what follows `last_event_id` in
    /// history with each run of text deltas merged into one event (see `front::compact`), then
    /// the live events.
    ///
    /// # Errors
    /// Those of [`Relay::watch`].
    pub async fn watch_compact(
        &self,
        caller: &Caller,
        id: &str,
        last_event_id: Option<&str>,
    ) -> Result<Watch, RelayError> {
        let marker = self.accessible_marker(caller, id).await?;
        let api = marker.api;
        self.settle(id, marker).await?;
        let done = done_id(id);
        if last_event_id == Some(done.as_str()) {
            return Err(RelayError::Complete(id.to_owned()));
        }
        let events = self.history(id).await?;
        let start = last_event_id
            .and_then(|last| events.iter().position(|u| u.id == last))
            .map_or(0, |i| i + 1);
        let end = events
            .iter()
            .position(|u| u.id == done)
            .unwrap_or(events.len());
        let missed: Vec<&Update> = events[start.min(end)..end].iter().map(|u| &**u).collect();
        let Some(last) = missed.last() else {
            return self.watch(caller, id, last_event_id).await;
        };
        let mut prefix = BytesMut::new();
        for event in front::compact::compact(api, &missed) {
            let event = sse_wire::Event {
                event: event.kind,
                data: event.data,
                id: Some(event.id),
                retry: None,
            };
            // Ids and types come from history, which the codec accepted when they were stored.
            let _ = sse_wire::encode(&event, &mut prefix);
        }
        let mut watch = self.watch(caller, id, Some(&last.id)).await?;
        watch.prefix = Some(prefix.freeze());
        Ok(watch)
    }

    /// Cancels stream `id` and waits (briefly) for its end to be recorded, so the answer's
    /// final state can be returned.
    ///
    /// # Errors
    /// Those of [`Relay::cancel`].
    pub async fn cancel_and_wait(&self, caller: &Caller, id: &str) -> Result<bool, RelayError> {
        let was_running = self.cancel(caller, id).await?;
        let deadline = tokio::time::Instant::now() + CANCEL_WAIT;
        while tokio::time::Instant::now() < deadline
            && self.hub.store().get(&done_id(id)).await?.is_none()
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(was_running)
    }

    /// The stream's events, oldest first (marker excluded).
    async fn history(&self, id: &str) -> Result<Vec<Arc<Update>>, RelayError> {
        let topic = topic_of(id);
        let done = done_id(id);
        let mut cursor = Cursor::Id(id.to_owned());
        let mut out = Vec::new();
        loop {
            let page = self.hub.store().read_after(cursor, 1024).await?;
            let Some(last) = page.updates.last().map(|s| s.seq) else {
                break;
            };
            for stored in page.updates {
                if stored.update.topics.first() == Some(&topic) {
                    let end = stored.update.id == done;
                    out.push(stored.update);
                    if end {
                        return Ok(out);
                    }
                }
            }
            if !page.more || out.len() >= MAX_FOLD_EVENTS {
                break;
            }
            cursor = Cursor::Seq(last);
        }
        Ok(out)
    }

    /// The events that end stream `id`, whose generator is gone, in its front's terms: the
    /// number of its last numbered event, the closing events after it, the last event.
    pub(super) async fn interrupted_end(&self, id: &str) -> (u64, Vec<Event>, Option<Event>) {
        let end = super::cluster::interrupted();
        let api = match self.marker(id).await {
            Ok(marker) => marker.api,
            Err(_) => Api::Chat,
        };
        if api == Api::Chat {
            return front::Translator::Chat { meta: None }
                .end(end)
                .into_counted(0);
        }
        let events = match self.history(id).await {
            Ok(events) => events,
            Err(err) => {
                tracing::warn!(stream = %id, error = %err, "cannot read an interrupted stream; ending it without closing its items");
                Vec::new()
            }
        };
        let prefix = format!("{id}-");
        let n = events
            .iter()
            .filter_map(|u| u.id.strip_prefix(&prefix)?.parse::<u64>().ok())
            .max()
            .unwrap_or(0);
        let data = events.iter().map(|u| u.data.as_str());
        let mut translator = match api {
            Api::Responses => {
                front::Translator::Responses(Box::new(responses::Translator::from_events(id, data)))
            }
            _ => front::Translator::Messages(Box::new(messages::Translator::from_events(data))),
        };
        translator.end(end).into_counted(n)
    }
}

trait Counted {
    fn into_counted(self, n: u64) -> (u64, Vec<Event>, Option<Event>);
}

impl Counted for (Vec<Event>, Option<Event>) {
    fn into_counted(self, n: u64) -> (u64, Vec<Event>, Option<Event>) {
        (n, self.0, self.1)
    }
}

/// Drops from an SSE chunk the events of stream `prefix`… numbered up to `after`.
pub(super) fn skip_through(chunk: &[u8], parser: &mut Parser, prefix: &str, after: u64) -> Bytes {
    let mut out = BytesMut::new();
    // Lent frames: each kept event is re-encoded at once, so none needs its own strings.
    parser.feed_with(chunk, |frame| {
        let Ok(FrameRef::Event(event)) = frame else {
            return;
        };
        let number = event
            .id
            .and_then(|i| i.strip_prefix(prefix))
            .and_then(|n| n.parse::<u64>().ok());
        if number.is_none_or(|k| k > after) {
            // Ids and types come from history, which the codec accepted when they were stored.
            let _ = sse_wire::encode_ref(event, &mut out);
        }
    });
    out.freeze()
}
