//! The Anthropic Messages API front: a request becomes a Chat Completions request, and the
//! upstream's chunks become the Messages stream events: `message_start`,
//! `content_block_start`, `content_block_delta` (`text_delta`), `content_block_stop`,
//! `message_delta` (`stop_reason`, `usage`), `message_stop`; a failure ends with `error`.
//!
//! Anthropic's API cannot resume a stream; here the events carry ids like every relay stream's,
//! so `GET /v1/streams/{id}` with `Last-Event-ID` resumes one, and the response's `X-Stream-Id`
//! names it. A cancelled answer ends like a finished one, with `stop_reason: "cancelled"` (no
//! Anthropic value says it; the SDKs keep the string as it is) and `ssehub.cancelled`.
//!
//! One answer is one text block; tools, images and documents are refused with a 400 naming
//! them (README).

use serde_json::{Map, Value, json};

use super::{ChunkParts, End, Event, content_text, copy_sampling};

/// The Chat Completions request for a Messages request, always streaming.
///
/// # Errors
/// A message naming the field that is missing, malformed, or not translated.
pub(crate) fn to_chat(request: &Value) -> Result<Value, String> {
    let model = request["model"]
        .as_str()
        .ok_or("model: required, a string")?;
    let max_tokens = request["max_tokens"]
        .as_u64()
        .filter(|n| *n > 0)
        .ok_or("max_tokens: required, a positive integer")?;
    if request["tools"].as_array().is_some_and(|t| !t.is_empty()) {
        return Err("tools: not supported, this relay translates text conversations only".into());
    }
    let mut messages = Vec::new();
    match &request["system"] {
        Value::Null => {}
        system => {
            let text = content_text(system, "system")?;
            messages.push(json!({"role": "system", "content": text}));
        }
    }
    let list = request["messages"]
        .as_array()
        .ok_or("messages: required, an array")?;
    for (i, m) in list.iter().enumerate() {
        let role = match m["role"].as_str() {
            Some(r @ ("user" | "assistant")) => r,
            _ => return Err(format!("messages.{i}.role: must be user or assistant")),
        };
        let text = content_text(&m["content"], &format!("messages.{i}.content"))?;
        messages.push(json!({"role": role, "content": text}));
    }
    let mut chat = Map::new();
    chat.insert("model".into(), json!(model));
    chat.insert("messages".into(), Value::Array(messages));
    chat.insert("max_tokens".into(), json!(max_tokens));
    chat.insert("stream".into(), json!(true));
    chat.insert("stream_options".into(), json!({"include_usage": true}));
    match &request["stop_sequences"] {
        Value::Null => {}
        Value::Array(s) if s.iter().all(Value::is_string) => {
            chat.insert("stop".into(), json!(s));
        }
        _ => return Err("stop_sequences: must be an array of strings".into()),
    }
    copy_sampling(request, &mut chat);
    Ok(Value::Object(chat))
}

/// Anthropic's name for a Chat Completions `finish_reason`.
fn stop_reason(finish: Option<&str>) -> &'static str {
    match finish {
        Some("length") => "max_tokens",
        Some("tool_calls") => "tool_use",
        _ => "end_turn",
    }
}

/// One Messages stream being translated, or rebuilt from history.
pub(crate) struct Translator {
    /// The message as `message_start` gave it.
    base: Value,
    /// Whether the text block was opened.
    block_open: bool,
    /// The text so far.
    text: String,
    /// `finish_reason` of the upstream's last choice.
    finish: Option<String>,
    /// Input and output tokens, when the upstream told.
    usage: Option<(u64, u64)>,
    /// An error the upstream sent as a chunk: the answer fails with it.
    failure: Option<String>,
    /// From history: the stop reason the stream ended with, if it did.
    stopped: Option<Value>,
}

impl Translator {
    /// A translator for a new stream `id` asked with `request`.
    pub(crate) fn new(id: &str, request: &Value) -> Self {
        let base = json!({
            "id": format!("msg_{}", id.trim_start_matches("strm_")),
            "type": "message",
            "role": "assistant",
            "content": [],
            "model": request["model"],
            "stop_reason": null,
            "stop_sequence": null,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        });
        Translator::with_base(base)
    }

    fn with_base(base: Value) -> Self {
        Translator {
            base,
            block_open: false,
            text: String::new(),
            finish: None,
            usage: None,
            failure: None,
            stopped: None,
        }
    }

    /// Rebuilds a stream's state from its stored events, oldest first.
    pub(crate) fn from_events<'a>(events: impl Iterator<Item = &'a str>) -> Self {
        let mut t = Translator::with_base(json!({"type": "message", "role": "assistant"}));
        for data in events {
            t.observe(data);
        }
        t
    }

    /// Takes in one event of this front as stored, whoever made it.
    pub(crate) fn observe(&mut self, data: &str) {
        let Ok(v) = serde_json::from_str::<Value>(data) else {
            return;
        };
        match v["type"].as_str() {
            Some("message_start") => self.base = v["message"].clone(),
            Some("content_block_start") => self.block_open = true,
            Some("content_block_delta") => {
                self.text
                    .push_str(v["delta"]["text"].as_str().unwrap_or_default());
            }
            Some("message_delta") => {
                self.stopped = Some(v["delta"]["stop_reason"].clone());
                if let Some(out) = v["usage"]["output_tokens"].as_u64() {
                    let input = self.base["usage"]["input_tokens"].as_u64().unwrap_or(0);
                    self.usage = Some((input, out));
                }
            }
            Some("error") => self.failure = v["error"]["message"].as_str().map(str::to_owned),
            _ => {}
        }
    }

    /// The message as it stands (the non-streaming answer, once the stream ended).
    pub(crate) fn message(&self) -> Value {
        let mut m = self.base.clone();
        if self.block_open {
            m["content"] = json!([{"type": "text", "text": self.text}]);
        }
        if let Some(stop) = &self.stopped {
            m["stop_reason"] = stop.clone();
        }
        if let Some((input, output)) = self.usage {
            m["usage"] = json!({"input_tokens": input, "output_tokens": output});
        }
        m
    }

    /// The error a stream rebuilt from history ended with, if it did.
    pub(crate) fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    /// `message_start`, then a `ping` as Anthropic sends.
    pub(crate) fn open(&mut self) -> Vec<Event> {
        vec![
            Event::typed(
                "message_start",
                &json!({"type": "message_start", "message": self.base}),
            ),
            Event::typed("ping", &json!({"type": "ping"})),
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
        if let Some(text) = parts.text {
            if !self.block_open {
                self.block_open = true;
                out.push(Event::typed(
                    "content_block_start",
                    &json!({"type": "content_block_start", "index": 0,
                            "content_block": {"type": "text", "text": ""}}),
                ));
            }
            self.text.push_str(&text);
            out.push(Event::typed(
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": 0,
                        "delta": {"type": "text_delta", "text": text}}),
            ));
        }
        out
    }

    /// The events that close the answer: `message_stop` last, or `error` for a failure.
    pub(crate) fn end(&mut self, end: End) -> (Vec<Event>, Option<Event>) {
        let cancelled = matches!(end, End::Cancelled);
        let failure = match end {
            End::Failed { message, .. } => Some(message),
            End::Done => self.failure.take(),
            End::Cancelled => None,
        };
        if let Some(message) = failure {
            let error = json!({"type": "error",
                               "error": {"type": "api_error", "message": message}});
            return (Vec::new(), Some(Event::typed("error", &error)));
        }
        let mut out = Vec::new();
        if self.block_open {
            out.push(Event::typed(
                "content_block_stop",
                &json!({"type": "content_block_stop", "index": 0}),
            ));
        }
        let reason = if cancelled {
            "cancelled"
        } else {
            stop_reason(self.finish.as_deref())
        };
        let output_tokens = self.usage.map_or(0, |(_, o)| o);
        let mut delta = json!({"type": "message_delta",
            "delta": {"stop_reason": reason, "stop_sequence": null},
            "usage": {"output_tokens": output_tokens}});
        if cancelled {
            delta["ssehub"] = json!({"cancelled": true});
        }
        out.push(Event::typed("message_delta", &delta));
        let stop = Event::typed("message_stop", &json!({"type": "message_stop"}));
        (out, Some(stop))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_translates_or_names_the_bad_field() {
        let chat = to_chat(&json!({"model": "m", "max_tokens": 9, "system": "be brief",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
            "stop_sequences": ["\n\n"]}))
        .unwrap();
        assert_eq!(
            chat["messages"],
            json!([{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}])
        );
        assert_eq!(chat["max_tokens"], 9);
        assert_eq!(chat["stop"], json!(["\n\n"]));
        for (body, field) in [
            (json!({"max_tokens": 1, "messages": []}), "model"),
            (json!({"model": "m", "messages": []}), "max_tokens"),
            (json!({"model": "m", "max_tokens": 1}), "messages"),
            (
                json!({"model": "m", "max_tokens": 1, "messages": [{"role": "tool", "content": "x"}]}),
                "messages.0.role",
            ),
            (
                json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": [{"type": "image"}]}]}),
                "messages.0.content",
            ),
        ] {
            let err = to_chat(&body).unwrap_err();
            assert!(err.starts_with(field), "{body}: {err}");
        }
    }

    #[test]
    fn events_follow_anthropics_order_and_the_message_rebuilds() {
        let chunk = |t: Option<&str>, f: Option<&str>| {
            json!({"choices": [{"index": 0, "delta": {"content": t}, "finish_reason": f}],
                   "usage": null})
            .to_string()
        };
        let mut t = Translator::new("strm_1", &json!({"model": "m"}));
        let mut events = t.open();
        events.extend(t.chunk(&chunk(Some("Hi"), None)));
        events.extend(t.chunk(&chunk(Some(" there"), Some("length"))));
        let (closing, last) = t.end(End::Done);
        events.extend(closing);
        events.extend(last);
        let kinds: Vec<_> = events.iter().map(|e| e.kind.as_deref().unwrap()).collect();
        assert_eq!(
            kinds,
            [
                "message_start",
                "ping",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop",
            ]
        );
        let m = Translator::from_events(events.iter().map(|e| &*e.data)).message();
        assert_eq!(m["content"][0]["text"], "Hi there");
        assert_eq!(m["stop_reason"], "max_tokens");
    }
}
