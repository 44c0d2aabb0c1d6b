//! Compact catch-up: a watcher far behind gets the history it missed with each run of text
//! deltas merged into one event, then the live events, instead of thousands of deltas.
//!
//! The merged event is in the front's own shape (a chat chunk, a Responses
//! `response.output_text.delta`, an Anthropic `content_block_delta`) and carries the id (and
//! the `sequence_number`) of the last delta folded into it, so a client that drops the
//! connection resumes with `Last-Event-ID` (or `starting_after`) exactly after it. Everything
//! that is not a plain text delta (a role, a finish reason, usage, an item boundary, an error,
//! the end) is sent as it was recorded: the final text and state are the same as a full replay.

use serde_json::{Value, json};

use super::Api;
use crate::update::Update;

/// One event of the compact catch-up: the id, type and data to send.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Compacted {
    /// The update id (of the last delta merged in).
    pub(crate) id: String,
    /// The SSE event type.
    pub(crate) kind: Option<String>,
    /// The payload.
    pub(crate) data: String,
}

/// A text delta: its payload parsed, and the text it adds.
fn delta(api: Api, data: &str) -> Option<(Value, String)> {
    let v: Value = serde_json::from_str(data).ok()?;
    let text = match api {
        Api::Chat => {
            let choices = v["choices"].as_array().filter(|c| c.len() == 1)?;
            let choice = &choices[0];
            let d = choice["delta"].as_object()?;
            let plain = choice["finish_reason"].is_null()
                && v.get("usage").is_none_or(Value::is_null)
                && d.keys().all(|k| k == "content" || k == "role");
            if !plain {
                return None;
            }
            d.get("content")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        }
        Api::Responses => {
            (v["type"] == "response.output_text.delta").then_some(())?;
            v["delta"].as_str()?.to_owned()
        }
        Api::Messages => {
            (v["type"] == "content_block_delta" && v["delta"]["type"] == "text_delta")
                .then_some(())?;
            v["delta"]["text"].as_str()?.to_owned()
        }
    };
    Some((v, text))
}

/// Writes `text` into a delta's payload, and the last merged event's number.
fn rewrite(api: Api, mut v: Value, text: &str, last: &Value) -> String {
    match api {
        Api::Chat => v["choices"][0]["delta"]["content"] = json!(text),
        Api::Responses => {
            v["delta"] = json!(text);
            v["sequence_number"] = last["sequence_number"].clone();
        }
        Api::Messages => v["delta"]["text"] = json!(text),
    }
    v.to_string()
}

/// The events of `updates` (one stream's, oldest first) with each run of text deltas merged.
pub(crate) fn compact(api: Api, updates: &[&Update]) -> Vec<Compacted> {
    let mut out = Vec::new();
    // The run being merged: its first payload, its text, the last id and payload.
    let mut run: Option<(Value, String, String, Value, Option<String>)> = None;
    let flush = |run: &mut Option<(Value, String, String, Value, Option<String>)>,
                 out: &mut Vec<Compacted>| {
        if let Some((first, text, id, last, kind)) = run.take() {
            out.push(Compacted {
                id,
                kind,
                data: rewrite(api, first, &text, &last),
            });
        }
    };
    for update in updates {
        match delta(api, &update.data) {
            Some((v, text)) => match &mut run {
                Some((_, all, id, last, _)) => {
                    all.push_str(&text);
                    *id = update.id.clone();
                    *last = v;
                }
                None => {
                    run = Some((
                        v.clone(),
                        text,
                        update.id.clone(),
                        v,
                        update.event_type.clone(),
                    ));
                }
            },
            None => {
                flush(&mut run, &mut out);
                out.push(Compacted {
                    id: update.id.clone(),
                    kind: update.event_type.clone(),
                    data: update.data.clone(),
                });
            }
        }
    }
    flush(&mut run, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(id: &str, kind: Option<&str>, data: Value) -> Update {
        Update {
            id: id.into(),
            topics: vec!["/v1/streams/s".into()],
            data: data.to_string(),
            private: true,
            event_type: kind.map(str::to_owned),
            retry: None,
            published_at_ms: 0,
        }
    }

    #[test]
    fn chat_deltas_merge_into_one_chunk_with_the_last_id_and_the_rest_stays() {
        let chunk = |content: &str, finish: Value| json!({"id": "c", "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish}]});
        let first = json!({"id": "c", "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]});
        let updates = [
            update("s-1", None, first),
            update("s-2", None, chunk("Hel", Value::Null)),
            update("s-3", None, chunk("lo", Value::Null)),
            update("s-4", None, chunk("", json!("stop"))),
        ];
        let refs: Vec<&Update> = updates.iter().collect();
        let out = compact(Api::Chat, &refs);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].id, "s-3");
        let merged: Value = serde_json::from_str(&out[0].data).unwrap();
        assert_eq!(
            merged["choices"][0]["delta"],
            json!({"role": "assistant", "content": "Hello"})
        );
        assert_eq!(out[1].id, "s-4");
    }

    #[test]
    fn responses_deltas_merge_keeping_the_last_sequence_number() {
        let d = |n: u64, t: &str| {
            update(
                &format!("s-{n}"),
                Some("response.output_text.delta"),
                json!({"type": "response.output_text.delta", "delta": t, "sequence_number": n}),
            )
        };
        let created = update(
            "s-1",
            Some("response.created"),
            json!({"type": "response.created", "sequence_number": 1}),
        );
        let updates = [created, d(2, "a"), d(3, "b"), d(4, "c")];
        let refs: Vec<&Update> = updates.iter().collect();
        let out = compact(Api::Responses, &refs);
        assert_eq!(out.len(), 2);
        let merged: Value = serde_json::from_str(&out[1].data).unwrap();
        assert_eq!(
            (merged["delta"].as_str(), merged["sequence_number"].as_u64()),
            (Some("abc"), Some(4))
        );
        assert_eq!(out[1].kind.as_deref(), Some("response.output_text.delta"));
    }
}
