//! The pump: the hub's task that copies one generation's upstream chunks into history, and
//! records how it ended (a last chunk when it did not end by itself, then `[DONE]`).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

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
    /// Copies upstream chunks into history until the end, an error, cancel or shutdown.
    pub(super) async fn pump(self: Arc<Self>, generation: Generation) {
        let Generation {
            id,
            mut chunks,
            cancel,
            recorded,
            slot,
            mut trace,
        } = generation;
        trace.request.record("ssehub.stream_id", id.as_str());
        let topic = topic_of(&id);
        let mut n: u64 = 0;
        let mut meta: Option<Value> = None;
        let last = loop {
            let next = tokio::select! {
                biased;
                _ = cancel.cancelled() => break Some(cancelled_chunk(meta.as_ref())),
                _ = self.shutdown.cancelled() => {
                    break Some(error_chunk("the hub is shutting down; this answer was cut short", "hub_shutdown"))
                }
                next = tokio::time::timeout(UPSTREAM_IDLE_TIMEOUT, chunks.next()) => match next {
                    Ok(next) => next,
                    Err(_) => {
                        tracing::warn!(stream = %id, "upstream went silent; ending the stream");
                        let message = format!("the upstream sent nothing for {} s", UPSTREAM_IDLE_TIMEOUT.as_secs());
                        break Some(error_chunk(&message, "upstream_timeout"));
                    }
                },
            };
            match next {
                Some(Ok(data)) => {
                    if meta.is_none() {
                        meta = serde_json::from_str::<Value>(&data).ok();
                    }
                    n += 1;
                    let update = chunk_update(format!("{id}-{n}"), &topic, data);
                    if let Err(err) = self.hub.publish_valid(update).await {
                        tracing::error!(stream = %id, error = %err, "cannot record a relay chunk; stopping the stream");
                        break Some(error_chunk(
                            "the hub could not record this answer",
                            "storage_error",
                        ));
                    }
                    self.hub
                        .metrics()
                        .relay_chunks
                        .fetch_add(1, Ordering::Relaxed);
                    trace.first_token = None;
                }
                Some(Err(err)) => {
                    tracing::warn!(stream = %id, error = %err, "upstream failed mid-stream");
                    break Some(error_chunk(&err.to_string(), "upstream_error"));
                }
                None => break None,
            }
        };
        // Dropping the chunk stream drops the upstream request (connection or h2 stream closed).
        drop(chunks);
        self.set_finishing(&id);
        self.finish(&id, last).await;
        recorded.cancel();
        self.forget(&id);
        drop(slot);
        tracing::info!(stream = %id, chunks = n, "relay stream finished");
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

    /// Records an optional last chunk and `[DONE]`. Either may be recorded already, by
    /// another node that took this stream's generator for gone: then it is left as it is.
    pub(super) async fn finish(&self, id: &str, last: Option<String>) {
        let topic = topic_of(id);
        let end = last.map(|data| chunk_update(format!("{id}-end"), &topic, data));
        let done = chunk_update(done_id(id), &topic, "[DONE]".into());
        for update in end.into_iter().chain([done]) {
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

/// The last chunk of a cancelled answer: `finish_reason: "cancelled"`. OpenAI defines no such
/// value, but clients pass the string through (the official SDKs do not validate it), and it
/// says what happened where "stop" would claim the model finished; `ssehub.cancelled` repeats
/// it for clients that only know OpenAI's values.
fn cancelled_chunk(meta: Option<&Value>) -> String {
    let field = |k: &str| meta.and_then(|m| m.get(k)).cloned();
    let created = field("created").unwrap_or_else(|| json!(Update::now_ms() / 1000));
    json!({
        "id": field("id").unwrap_or_else(|| json!("chatcmpl-cancelled")),
        "object": "chat.completion.chunk",
        "created": created,
        "model": field("model").unwrap_or_else(|| json!("unknown")),
        "choices": [{"index": 0, "delta": {}, "finish_reason": "cancelled"}],
        "ssehub": {"cancelled": true},
    })
    .to_string()
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
