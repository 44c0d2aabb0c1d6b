//! The pump: the hub's task that copies one generation's upstream chunks into history, as the
//! events of the stream's front (`front`), and records how it ended (the front's closing
//! events, a last event when it did not end by itself, then `[DONE]`).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures_util::stream::BoxStream;
use futures_util::{FutureExt, StreamExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::front::{End, Event, Translator};
use super::limits::Slot;
use super::upstream::{UPSTREAM_IDLE_TIMEOUT, UpstreamError};
use super::{Relay, done_id, topic_of};
use crate::hub::PublishError;
use crate::store::StoreError;
use crate::update::Update;

/// What one pump needs besides the relay.
pub(super) struct Generation {
    /// The stream id.
    pub(super) id: String,
    /// Upstream chunk payloads; dropping them drops the upstream request.
    pub(super) chunks: BoxStream<'static, Result<String, UpstreamError>>,
    /// Turns the chunks into the events of the stream's front.
    pub(super) translator: Translator,
    /// Stops the generation (`POST /v1/streams/{id}/cancel`).
    pub(super) cancel: CancellationToken,
    /// Cancelled once the end is recorded: watchers draining at shutdown wait for it.
    pub(super) recorded: CancellationToken,
    /// The generation's place under the relay's bounds, held until its end is recorded.
    pub(super) slot: Slot,
    /// Its trace spans, ended at the first token and at the end.
    pub(super) trace: StreamTrace,
}

/// A relay answer's spans for export (`http/trace.rs`): the request's server span, held until
/// the answer's end is recorded, and a child from the request to the first recorded token.
/// Both are disabled spans, and cost nothing, when tracing is off.
pub(super) struct StreamTrace {
    /// The span current when the request came in (the HTTP layer's server span).
    request: tracing::Span,
    /// Ended (dropped) when the first chunk is recorded.
    first_token: Option<tracing::Span>,
}

impl StreamTrace {
    /// Starts the first-token span under the current one; call it when the request arrives.
    pub(super) fn begin() -> Self {
        let request = tracing::Span::current();
        let first_token = (!request.is_disabled()).then(|| {
            tracing::info_span!(
                target: "ssehub::otel",
                "relay first token",
                otel.name = "relay first token",
                otel.kind = "internal",
            )
        });
        StreamTrace {
            request,
            first_token,
        }
    }
}

impl Relay {
    /// Records the translator's opening events, then each upstream chunk's events, until the
    /// end, an error, cancel or shutdown; then the events that close the stream and `[DONE]`.
    pub(super) async fn pump(self: Arc<Self>, generation: Generation) {
        let Generation {
            id,
            mut chunks,
            mut translator,
            cancel,
            recorded,
            slot,
            mut trace,
        } = generation;
        trace.request.record("ssehub.stream_id", id.as_str());
        let topic = topic_of(&id);
        let mut n: u64 = 0;
        let opening = translator.open();
        let mut failed = self.record(&id, &topic, &mut n, opening).await.err();
        // Made once for the stream's life, not once per chunk: a `cancelled()` per loop turn
        // registered and unregistered a waiter under each token's lock, and a `timeout` per
        // chunk inserted and removed a timer-wheel entry, for every token of every stream.
        let cancelled = cancel.cancelled();
        let shutdown = self.shutdown.cancelled();
        // The idle timer is moved lazily: it fires at most once per idle period, and then
        // checks when the last chunk came (`SubscriberStream` does the same for heartbeats).
        let idle = tokio::time::sleep(UPSTREAM_IDLE_TIMEOUT);
        tokio::pin!(cancelled, shutdown, idle);
        let mut last_chunk = tokio::time::Instant::now();
        let end = loop {
            if let Some(end) = failed.take() {
                break end;
            }
            let next = tokio::select! {
                biased;
                () = &mut cancelled => break End::Cancelled,
                () = &mut shutdown => break End::Failed {
                    message: "the hub is shutting down; this answer was cut short".into(),
                    code: "hub_shutdown",
                },
                next = chunks.next() => next,
                () = &mut idle => {
                    let due = last_chunk + UPSTREAM_IDLE_TIMEOUT;
                    if tokio::time::Instant::now() < due {
                        idle.as_mut().reset(due);
                        continue;
                    }
                    tracing::warn!(stream = %id, "upstream went silent; ending the stream");
                    let message = format!("the upstream sent nothing for {} s", UPSTREAM_IDLE_TIMEOUT.as_secs());
                    break End::Failed { message, code: "upstream_timeout" };
                }
            };
            match next {
                Some(Ok(data)) => {
                    // Every chunk the upstream already sent (one read holds many under load)
                    // is recorded in one store round trip, not one each.
                    let (more, then) = ready_chunks(&mut chunks);
                    let taken = 1 + more.len() as u64;
                    let mut events = translator.chunk(data);
                    for data in more {
                        events.extend(translator.chunk(data));
                    }
                    failed = self.record(&id, &topic, &mut n, events).await.err();
                    self.hub
                        .metrics()
                        .relay_chunks
                        .fetch_add(taken, Ordering::Relaxed);
                    trace.first_token = None;
                    // Silence is counted from when the pump waits again, as a fresh timeout
                    // per chunk counted it.
                    last_chunk = tokio::time::Instant::now();
                    // An end seen while draining counts only once what preceded it is recorded,
                    // and not at all when that failed (as if it had never been read).
                    if let (None, Some(next)) = (&failed, then) {
                        break upstream_end(&id, next);
                    }
                }
                Some(Err(err)) => break upstream_end(&id, Some(Err(err))),
                None => break End::Done,
            }
        };
        // Dropping the chunk stream drops the upstream request (connection or h2 stream closed).
        drop(chunks);
        self.set_finishing(&id);
        let (closing, last) = translator.end(end);
        self.finish(&id, n, closing, last).await;
        recorded.cancel();
        self.forget(&id);
        drop(slot);
        tracing::info!(stream = %id, events = n, "relay stream finished");
        // An i64: OpenTelemetry has no unsigned integers and shows a u64 as text.
        trace
            .request
            .record("ssehub.relay.chunks", i64::try_from(n).unwrap_or(i64::MAX));
        // tracing-opentelemetry ends a span at its last exit, and the handler's last exit was
        // when the response started: one more enter and exit makes the answer's end the span's.
        drop(trace.request.enter());
        // An answer that ended before any token closes its first-token span here too.
        drop(trace);
    }

    /// Records `events` as the stream's next numbered updates, in one batch, which stops at the
    /// first that fails (see `Store::append_batch`). Every event takes its number, also those
    /// not stored after a failure: the closing events are numbered after them all, as they
    /// were numbered after the failed one when events were recorded one by one.
    async fn record(
        &self,
        id: &str,
        topic: &str,
        n: &mut u64,
        events: Vec<Event>,
    ) -> Result<(), End> {
        let updates = events
            .into_iter()
            .map(|event| {
                *n += 1;
                event_update(format!("{id}-{n}"), topic, event)
            })
            .collect();
        let answers = self.hub.publish_valid_batch(updates).await;
        if let Some(err) = answers.into_iter().find_map(Result::err) {
            tracing::error!(stream = %id, error = %err, "cannot record a relay chunk; stopping the stream");
            return Err(End::Failed {
                message: "the hub could not record this answer".into(),
                code: "storage_error",
            });
        }
        Ok(())
    }

    /// Records the closing events (numbered after `n`), the last event as `{id}-end`, and
    /// `[DONE]`. Any may be recorded already, by another node that took this stream's
    /// generator for gone: then it is left as it is.
    pub(super) async fn finish(&self, id: &str, n: u64, closing: Vec<Event>, last: Option<Event>) {
        let topic = topic_of(id);
        let numbered = closing
            .into_iter()
            .zip(n + 1..)
            .map(|(event, k)| event_update(format!("{id}-{k}"), &topic, event));
        let end = last.map(|event| event_update(format!("{id}-end"), &topic, event));
        let done = chunk_update(done_id(id), &topic, "[DONE]".into());
        for update in numbered.chain(end).chain([done]) {
            match self.hub.publish_valid(update).await {
                Ok(_) => {}
                Err(PublishError::Store(StoreError::Duplicate { id: update })) => {
                    tracing::debug!(stream = %id, update, "the end of the stream was already recorded");
                }
                Err(err) => {
                    tracing::error!(stream = %id, error = %err, "cannot record the end of the stream");
                }
            }
        }
    }
}

/// How the upstream's end or failure ends the stream.
fn upstream_end(id: &str, next: Next) -> End {
    match next {
        Some(Err(err)) => {
            tracing::warn!(stream = %id, error = %err, "upstream failed mid-stream");
            End::Failed {
                message: err.to_string(),
                code: "upstream_error",
            }
        }
        // Only an end or a failure is passed here.
        Some(Ok(_)) | None => End::Done,
    }
}

/// Most chunks taken in one go after the one the pump waited for: bounds one store batch, and
/// how long a stream goes without looking at cancel and shutdown.
const MAX_READY_CHUNKS: usize = 64;

/// What the upstream's chunk stream yields next: a chunk, a failure, or its end (`None`).
type Next = Option<Result<String, UpstreamError>>;

/// The chunks `chunks` yields without waiting, up to [`MAX_READY_CHUNKS`], and what stopped the
/// draining when that was the stream's end or a failure.
fn ready_chunks(
    chunks: &mut BoxStream<'static, Result<String, UpstreamError>>,
) -> (Vec<String>, Option<Next>) {
    let mut ready = Vec::new();
    while ready.len() < MAX_READY_CHUNKS {
        match chunks.next().now_or_never() {
            Some(Some(Ok(data))) => ready.push(data),
            None => break,
            Some(end) => return (ready, Some(end)),
        }
    }
    (ready, None)
}

fn event_update(id: String, topic: &str, event: Event) -> Update {
    let mut update = chunk_update(id, topic, event.data);
    update.event_type = event.kind;
    update
}

pub(super) fn chunk_update(id: String, topic: &str, data: String) -> Update {
    Update {
        id,
        topics: vec![topic.to_owned()],
        data,
        private: true,
        event_type: None,
        retry: None,
        published_at_ms: Update::now_ms(),
    }
}

/// An OpenAI error chunk.
pub(super) fn error_chunk(message: &str, code: &str) -> String {
    json!({"error": {"message": message, "type": "server_error", "code": code}}).to_string()
}

#[cfg(test)]
mod tests {
    use futures_util::stream;

    use super::*;

    fn ready(n: usize) -> Vec<Result<String, UpstreamError>> {
        (0..n).map(|i| Ok(format!("c{i}"))).collect()
    }

    #[test]
    fn draining_stops_at_the_first_chunk_not_yet_there() {
        let mut chunks = stream::iter(ready(3)).chain(stream::pending()).boxed();
        let (taken, then) = ready_chunks(&mut chunks);
        assert_eq!(taken, ["c0", "c1", "c2"]);
        assert!(then.is_none());
    }

    #[test]
    fn draining_reports_the_end_and_a_failure_after_what_came_before() {
        let mut chunks = stream::iter(ready(2)).boxed();
        let (taken, then) = ready_chunks(&mut chunks);
        assert_eq!(taken, ["c0", "c1"]);
        assert!(matches!(then, Some(None)));
        let failure = Err(UpstreamError::Broken("cut".into()));
        let mut chunks = stream::iter(ready(1).into_iter().chain([failure])).boxed();
        let (taken, then) = ready_chunks(&mut chunks);
        assert_eq!(taken, ["c0"]);
        assert!(matches!(then, Some(Some(Err(UpstreamError::Broken(_))))));
    }

    #[test]
    fn draining_takes_at_most_the_bound_and_leaves_the_rest() {
        let mut chunks = stream::iter(ready(MAX_READY_CHUNKS + 5)).boxed();
        let (taken, then) = ready_chunks(&mut chunks);
        assert_eq!(taken.len(), MAX_READY_CHUNKS);
        assert!(then.is_none());
        let (rest, then) = ready_chunks(&mut chunks);
        assert_eq!(rest.len(), 5);
        assert_eq!(rest[0], format!("c{MAX_READY_CHUNKS}"));
        assert!(matches!(then, Some(None)));
    }
}
