//! The OpenAI Responses API front: a request becomes a Chat Completions request, and the
//! upstream's chunks become the Responses stream events, numbered by `sequence_number`.
//!
//! The events and their fields are those the official SDKs parse: `response.created`,
//! `response.in_progress`, `response.output_item.added`, `response.content_part.added`,
//! `response.output_text.delta` ..., then one of `response.completed`, `response.incomplete`
//! (the answer hit `max_output_tokens`), `response.failed` (with `response.error`), or, for a
//! cancelled answer, `response.cancelled` carrying the response with status `cancelled` (the
//! status OpenAI's cancel gives; the SDKs keep an event type they do not know as it is).
//!
//! One answer is one output message with one `output_text` part; tools, images, files,
//! reasoning items and `previous_response_id` are refused with a 400 naming them, since a
//! Chat Completions upstream would need them translated too (README).

use serde_json::{Map, Value, json};

use super::{ChunkParts, End, Event, content_text, copy_sampling};
use crate::update::Update;

/// The event type of a cancelled answer's last event.
pub(crate) const CANCELLED: &str = "response.cancelled";

/// The Chat Completions request for a Responses request, always streaming (the relay records
/// every answer, whether its caller streams or not).
///
/// # Errors
/// A message naming the field that is missing, malformed, or not translated.
pub(crate) fn to_chat(request: &Value) -> Result<Value, String> {
    let model = request["model"]
        .as_str()
        .ok_or("model is required and must be a string")?;
    for field in ["tools", "previous_response_id", "conversation", "prompt"] {
        let given = match &request[field] {
            Value::Null => false,
            Value::Array(a) => !a.is_empty(),
            _ => true,
        };
        if given {
            return Err(format!(
                "{field} is not supported: this relay translates text conversations only"
            ));
        }
    }
    let mut messages = Vec::new();
    match &request["instructions"] {
        Value::Null => {}
        Value::String(s) => messages.push(json!({"role": "system", "content": s})),
        _ => return Err("instructions must be a string".into()),
    }
    match &request["input"] {
        Value::String(s) => messages.push(json!({"role": "user", "content": s})),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let kind = item["type"].as_str().unwrap_or("message");
                if kind != "message" {
                    return Err(format!(
                        "input[{i}] is a {kind:?} item; this relay translates messages only"
                    ));
                }
                let role = match item["role"].as_str() {
                    Some("developer" | "system") => "system",
                    Some(r @ ("user" | "assistant")) => r,
                    _ => {
                        return Err(format!(
                            "input[{i}].role must be user, assistant, system or developer"
                        ));
                    }
                };
                let text = content_text(&item["content"], &format!("input[{i}].content"))?;
                messages.push(json!({"role": role, "content": text}));
            }
        }
        Value::Null => return Err("input is required".into()),
        _ => return Err("input must be a string or an array of messages".into()),
    }
    let mut chat = Map::new();
    chat.insert("model".into(), json!(model));
    chat.insert("messages".into(), Value::Array(messages));
    chat.insert("stream".into(), json!(true));
    chat.insert("stream_options".into(), json!({"include_usage": true}));
    match &request["max_output_tokens"] {
        Value::Null => {}
        v if v.as_u64().is_some() => {
            chat.insert("max_tokens".into(), v.clone());
        }
        _ => return Err("max_output_tokens must be a positive integer".into()),
    }
    copy_sampling(request, &mut chat);
    Ok(Value::Object(chat))
}

/// One Responses stream being translated, or rebuilt from history.
pub(crate) struct Translator {
    /// The response object as created: what every later event's `response` starts from.
    base: Value,
    /// The message item's id.
    item_id: String,
    /// The last `sequence_number` given.
    seq: u64,
    /// Whether the message item (and its one text part) was opened.
    item_open: bool,
    /// The text so far.
    text: String,
    /// `finish_reason` of the upstream's last choice.
    finish: Option<String>,
    /// Input and output tokens, when the upstream told.
    usage: Option<(u64, u64)>,
    /// An error the upstream sent as a chunk: the answer fails with it.
    failure: Option<String>,
}

impl Translator {
    /// A translator for a new stream `id` (also the response id) asked with `request`.
    pub(crate) fn new(id: &str, request: &Value) -> Self {
        let echo = |k: &str| request.get(k).cloned().unwrap_or(Value::Null);
        let base = json!({
            "id": id,
            "object": "response",
            "created_at": Update::now_ms() / 1000,
            "status": "in_progress",
            "background": request["background"].as_bool().unwrap_or(false),
            "error": null,
            "incomplete_details": null,
            "instructions": echo("instructions"),
            "max_output_tokens": echo("max_output_tokens"),
            "metadata": request.get("metadata").cloned().unwrap_or_else(|| json!({})),
            "model": echo("model"),
            "output": [],
            "parallel_tool_calls": true,
            "temperature": echo("temperature"),
            "tool_choice": "auto",
            "tools": [],
            "top_p": echo("top_p"),
            "usage": null,
        });
        Translator::with_base(id, base)
    }

    pub(crate) fn with_base(id: &str, base: Value) -> Self {
        Translator {
            base,
            item_id: format!("msg_{}", id.trim_start_matches("strm_")),
            seq: 0,
            item_open: false,
            text: String::new(),
            finish: None,
            usage: None,
            failure: None,
        }
    }

    /// Rebuilds the state of stream `id` from its stored events (oldest first), as the pump
    /// left it: for a snapshot, or to end a stream whose pump is gone.
    pub(crate) fn from_events<'a>(id: &str, events: impl Iterator<Item = &'a str>) -> Self {
        let mut t = Translator::with_base(id, Value::Null);
        for data in events {
            t.observe(data);
        }
        if t.base.is_null() {
            t.base = json!({"id": id, "object": "response", "status": "in_progress", "output": []});
        }
        t
    }

    /// Takes in one event of this front as stored (numbered), whoever made it.
    pub(crate) fn observe(&mut self, data: &str) {
        let Ok(v) = serde_json::from_str::<Value>(data) else {
            return;
        };
        if let Some(seq) = v["sequence_number"].as_u64() {
            self.seq = self.seq.max(seq);
        }
        match v["type"].as_str() {
            Some("response.created") => self.base = v["response"].clone(),
            Some("response.output_item.added") => self.item_open = true,
            Some("response.output_text.delta") => {
                self.text.push_str(v["delta"].as_str().unwrap_or_default());
            }
            _ => {}
        }
    }

    /// The response object as it stands, with `status`.
    pub(crate) fn response(&self, status: &str) -> Value {
        let mut r = self.base.clone();
        r["status"] = json!(status);
        if self.item_open {
            let item_status = match status {
                "completed" => "completed",
                "in_progress" | "queued" => "in_progress",
                _ => "incomplete",
            };
            r["output"] = json!([self.item(item_status)]);
        }
        if let Some((input, output)) = self.usage {
            r["usage"] = json!({
                "input_tokens": input,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": output,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": input + output,
            });
        }
        r
    }

    fn item(&self, status: &str) -> Value {
        let content = if status == "in_progress" && self.text.is_empty() {
            json!([])
        } else {
            json!([self.part()])
        };
        json!({"id": self.item_id, "type": "message", "role": "assistant",
               "status": status, "content": content})
    }

    fn part(&self) -> Value {
        json!({"type": "output_text", "text": self.text, "annotations": [], "logprobs": []})
    }

    /// The next event: `fields` plus its type and `sequence_number`.
    fn event(&mut self, kind: &'static str, mut fields: Value) -> Event {
        self.seq += 1;
        fields["type"] = json!(kind);
        fields["sequence_number"] = json!(self.seq);
        Event::typed(kind, &fields)
    }

    /// `response.created` and `response.in_progress`.
    pub(crate) fn open(&mut self) -> Vec<Event> {
        let r = self.response("in_progress");
        vec![
            self.event("response.created", json!({"response": r})),
            self.event("response.in_progress", json!({"response": r})),
        ]
    }

    /// The events of one upstream chunk.
    pub(crate) fn chunk(&mut self, data: &str) -> Vec<Event> {
        let parts = ChunkParts::parse(data);
        let mut out = Vec::new();
        if let Some(error) = parts.error {
            self.failure = Some(error);
        }
        if let Some(usage) = parts.usage {
            self.usage = Some(usage);
        }
        if let Some(finish) = parts.finish {
            self.finish = Some(finish);
        }
        if let Some(delta) = parts.text {
            if !self.item_open {
                self.item_open = true;
                let item = self.item("in_progress");
                out.push(self.event(
                    "response.output_item.added",
                    json!({"output_index": 0, "item": item}),
                ));
                let part =
                    json!({"type": "output_text", "text": "", "annotations": [], "logprobs": []});
                out.push(self.event(
                    "response.content_part.added",
                    json!({"item_id": self.item_id, "output_index": 0, "content_index": 0, "part": part}),
                ));
            }
            self.text.push_str(&delta);
            out.push(self.event(
                "response.output_text.delta",
                json!({"item_id": self.item_id, "output_index": 0, "content_index": 0,
                       "delta": delta, "logprobs": []}),
            ));
        }
        out
    }

    /// The events that close the answer; the last is the response's final state.
    pub(crate) fn end(&mut self, end: End) -> (Vec<Event>, Option<Event>) {
        let (status, kind) = match (&end, &self.failure) {
            (End::Done, Some(_)) | (End::Failed { .. }, _) => ("failed", "response.failed"),
            (End::Done, None) if self.finish.as_deref() == Some("length") => {
                ("incomplete", "response.incomplete")
            }
            (End::Done, None) => ("completed", "response.completed"),
            (End::Cancelled, _) => ("cancelled", CANCELLED),
        };
        let mut out = Vec::new();
        if self.item_open {
            let ids = json!({"item_id": self.item_id, "output_index": 0, "content_index": 0});
            let mut done = ids.clone();
            done["text"] = json!(self.text);
            done["logprobs"] = json!([]);
            out.push(self.event("response.output_text.done", done));
            let mut part_done = ids;
            part_done["part"] = self.part();
            out.push(self.event("response.content_part.done", part_done));
            let item = self.item(if status == "completed" {
                "completed"
            } else {
                "incomplete"
            });
            out.push(self.event(
                "response.output_item.done",
                json!({"output_index": 0, "item": item}),
            ));
        }
        let mut r = self.response(status);
        match end {
            End::Failed { message, code } => {
                r["error"] = json!({"code": code, "message": message});
            }
            End::Done if status == "failed" => {
                r["error"] = json!({"code": "upstream_error", "message": self.failure});
            }
            End::Done if status == "incomplete" => {
                r["incomplete_details"] = json!({"reason": "max_output_tokens"});
            }
            _ => {}
        }
        let last = self.event(kind, json!({"response": r}));
        (out, Some(last))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(text: Option<&str>, finish: Option<&str>) -> String {
        json!({"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}]})
            .to_string()
    }

    #[test]
    fn a_request_translates_to_a_streaming_chat_request_or_names_the_bad_field() {
        let chat = to_chat(&json!({"model": "m", "instructions": "be brief",
            "input": [{"role": "user", "content": [{"type": "input_text", "text": "hi"}]}],
            "max_output_tokens": 5, "temperature": 0.5}))
        .unwrap();
        assert_eq!(
            chat["messages"],
            json!([{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}])
        );
        assert_eq!(chat["max_tokens"], 5);
        assert_eq!(chat["stream"], true);
        assert_eq!(chat["temperature"], 0.5);
        for (body, field) in [
            (json!({"input": "x"}), "model"),
            (json!({"model": "m"}), "input"),
            (json!({"model": "m", "input": 3}), "input"),
            (
                json!({"model": "m", "input": [{"role": "user", "content": [{"type": "input_image"}]}]}),
                "input[0]",
            ),
            (json!({"model": "m", "input": "x", "tools": [{}]}), "tools"),
            (
                json!({"model": "m", "input": "x", "max_output_tokens": "9"}),
                "max_output_tokens",
            ),
        ] {
            let err = to_chat(&body).unwrap_err();
            assert!(err.starts_with(field), "{body}: {err}");
        }
    }

    #[test]
    fn events_are_numbered_and_the_state_rebuilds_from_them() {
        let mut t = Translator::new("strm_1", &json!({"model": "m"}));
        let mut events = t.open();
        events.extend(t.chunk(&chunk(Some("Hel"), None)));
        events.extend(t.chunk(&chunk(Some("lo"), None)));
        events.extend(t.chunk(&chunk(None, Some("stop"))));
        let (closing, last) = t.end(End::Done);
        events.extend(closing);
        let kinds: Vec<_> = events.iter().map(|e| e.kind.as_deref().unwrap()).collect();
        assert_eq!(
            kinds,
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
            ]
        );
        for (i, e) in events.iter().enumerate() {
            let v: Value = serde_json::from_str(&e.data).unwrap();
            assert_eq!(v["sequence_number"], i as u64 + 1);
        }
        let last: Value = serde_json::from_str(&last.unwrap().data).unwrap();
        assert_eq!(last["type"], "response.completed");
        assert_eq!(last["sequence_number"], 10);
        assert_eq!(last["response"]["output"][0]["content"][0]["text"], "Hello");

        // A pump that died after the first delta: its end follows on.
        let mut rebuilt = Translator::from_events("strm_1", events[..5].iter().map(|e| &*e.data));
        assert_eq!(
            rebuilt.response("in_progress")["output"][0]["content"][0]["text"],
            "Hel"
        );
        let (closing, last) = rebuilt.end(End::Failed {
            message: "gone".into(),
            code: "stream_interrupted",
        });
        assert_eq!(closing.len(), 3);
        let last: Value = serde_json::from_str(&last.unwrap().data).unwrap();
        assert_eq!(last["sequence_number"], 9);
        assert_eq!(last["response"]["status"], "failed");
        assert_eq!(last["response"]["error"]["code"], "stream_interrupted");
    }

    #[test]
    fn a_length_finish_is_incomplete_and_cancel_is_cancelled() {
        let mut t = Translator::new("strm_1", &json!({"model": "m"}));
        t.open();
        t.chunk(&chunk(Some("a"), Some("length")));
        let (_, last) = t.end(End::Done);
        let last: Value = serde_json::from_str(&last.unwrap().data).unwrap();
        assert_eq!(last["type"], "response.incomplete");
        assert_eq!(
            last["response"]["incomplete_details"]["reason"],
            "max_output_tokens"
        );

        let mut t = Translator::new("strm_1", &json!({"model": "m"}));
        t.open();
        let (closing, last) = t.end(End::Cancelled);
        assert!(closing.is_empty());
        let last: Value = serde_json::from_str(&last.unwrap().data).unwrap();
        assert_eq!(last["response"]["status"], "cancelled");
    }
}
