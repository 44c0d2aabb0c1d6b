//! The APIs a relay stream can be asked through (its *front*): OpenAI Chat Completions,
//! OpenAI Responses, Anthropic Messages.
//!
//! Translation happens at ingest: the pump reads the upstream's Chat Completions chunks and a
//! [`Translator`] for the stream's front turns them into the front's own events, which are
//! what history stores. So a stream holds exactly what its clients see, and replay, resume
//! (`Last-Event-ID`), several watchers, cancel and the cluster work for every front without
//! knowing it: the stored update `{stream}-{n}` is the front's event number `n` (a Responses
//! `sequence_number`), and the stream's last event is always stored as `{stream}-end`, with the
//! next number, so whoever records an end (the generator, or another node after it died)
//! writes it once.
//!
//! ```text
//! upstream chunk ──> Translator::chunk ──> [events] ──> {stream}-{n}, {stream}-{n+1}, ...
//! end (done, cancel, error, shutdown) ──> Translator::end ──> [events..., last] ──> ..., {stream}-end
//! ```

pub(crate) mod compact;
pub(crate) mod messages;
pub(crate) mod passthrough;
pub(crate) mod responses;

use serde_json::Value;

use super::pump::error_chunk;

/// The API a stream was started through; recorded in its marker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    /// `POST /v1/chat/completions`: upstream chunks are stored unchanged.
    Chat,
    /// `POST /v1/responses`.
    Responses,
    /// `POST /v1/messages`.
    Messages,
}

impl Api {
    /// The name recorded in the marker.
    pub fn name(self) -> &'static str {
        match self {
            Api::Chat => "chat",
            Api::Responses => "responses",
            Api::Messages => "messages",
        }
    }

    /// The API a marker names; markers of versions before fronts are chat.
    pub fn from_name(name: Option<&str>) -> Api {
        match name {
            Some("responses") => Api::Responses,
            Some("messages") => Api::Messages,
            _ => Api::Chat,
        }
    }
}

/// One event as a front's clients see it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Event {
    /// The SSE `event:` field (Chat Completions has none).
    pub(crate) kind: Option<String>,
    /// The `data:` payload.
    pub(crate) data: String,
}

impl Event {
    pub(crate) fn data(data: String) -> Self {
        Event { kind: None, data }
    }

    pub(crate) fn typed(kind: &'static str, data: &Value) -> Self {
        Event {
            kind: Some(kind.to_owned()),
            data: data.to_string(),
        }
    }
}

/// How a generation ended.
#[derive(Clone, Debug)]
pub(crate) enum End {
    /// The upstream finished its answer.
    Done,
    /// Stopped by cancel.
    Cancelled,
    /// Cut short: shutdown, an upstream failure, a storage failure, or (recorded by another
    /// process) a generator that died.
    Failed {
        /// Said to the client.
        message: String,
        /// A stable code: `hub_shutdown`, `upstream_error`, `stream_interrupted`, ...
        code: &'static str,
    },
}

/// Turns one stream's upstream chunks into its front's events, numbering them.
pub(crate) enum Translator {
    /// Chunks pass through; an end other than the upstream's own adds one last chunk.
    Chat {
        /// The first chunk, whose `id`, `created`, `model` a cancelled chunk repeats.
        meta: Option<Value>,
    },
    /// See [`responses::Translator`].
    Responses(Box<responses::Translator>),
    /// See [`messages::Translator`].
    Messages(Box<messages::Translator>),
    /// The upstream speaks the front's API: its events are kept (see `passthrough`).
    Passthrough(Box<passthrough::Passthrough>),
}

impl Translator {
    /// The events that open the stream, before any upstream chunk (the Responses API's
    /// `response.created`: a client sees the response exist at once).
    pub(crate) fn open(&mut self) -> Vec<Event> {
        match self {
            Translator::Chat { .. } => Vec::new(),
            Translator::Responses(t) => t.open(),
            Translator::Messages(t) => t.open(),
            Translator::Passthrough(_) => Vec::new(),
        }
    }

    /// The events one upstream chunk payload becomes.
    pub(crate) fn chunk(&mut self, data: String) -> Vec<Event> {
        match self {
            Translator::Chat { meta } => {
                if meta.is_none() {
                    *meta = serde_json::from_str::<Value>(&data).ok();
                }
                vec![Event::data(data)]
            }
            Translator::Responses(t) => t.chunk(&data),
            Translator::Messages(t) => t.chunk(&data),
            Translator::Passthrough(t) => t.chunk(&data),
        }
    }

    /// The events that close the stream: the last of them is stored as `{stream}-end`
    /// (`None`: nothing to add, as when a chat upstream ends by itself).
    pub(crate) fn end(&mut self, end: End) -> (Vec<Event>, Option<Event>) {
        match self {
            Translator::Chat { meta } => match end {
                End::Done => (Vec::new(), None),
                End::Cancelled => (
                    Vec::new(),
                    Some(Event::data(cancelled_chunk(meta.as_ref()))),
                ),
                End::Failed { message, code } => {
                    (Vec::new(), Some(Event::data(error_chunk(&message, code))))
                }
            },
            Translator::Responses(t) => t.end(end),
            Translator::Messages(t) => t.end(end),
            Translator::Passthrough(t) => t.end(end),
        }
    }
}

/// The last chunk of a cancelled answer: `finish_reason: "cancelled"`. OpenAI defines no such
/// value, but clients pass the string through (the official SDKs do not validate it), and it
/// says what happened where "stop" would claim the model finished; `ssehub.cancelled` repeats
/// it for clients that only know OpenAI's values.
fn cancelled_chunk(meta: Option<&Value>) -> String {
    let field = |k: &str| meta.and_then(|m| m.get(k)).cloned();
    let created = field("created")
        .unwrap_or_else(|| serde_json::json!(crate::update::Update::now_ms() / 1000));
    serde_json::json!({
        "id": field("id").unwrap_or_else(|| serde_json::json!("chatcmpl-cancelled")),
        "object": "chat.completion.chunk",
        "created": created,
        "model": field("model").unwrap_or_else(|| serde_json::json!("unknown")),
        "choices": [{"index": 0, "delta": {}, "finish_reason": "cancelled"}],
        "ssehub": {"cancelled": true},
    })
    .to_string()
}

/// What a Chat Completions chunk carries that the other fronts use.
#[derive(Debug, Default)]
pub(crate) struct ChunkParts {
    /// Text of `choices[0].delta.content`.
    pub(crate) text: Option<String>,
    /// `choices[0].finish_reason`.
    pub(crate) finish: Option<String>,
    /// `usage.prompt_tokens`, `usage.completion_tokens`.
    pub(crate) usage: Option<(u64, u64)>,
    /// An `{"error": ...}` chunk: its message.
    pub(crate) error: Option<String>,
}

impl ChunkParts {
    /// Reads a chunk payload; anything unreadable carries nothing.
    pub(crate) fn parse(data: &str) -> Self {
        let Ok(v) = serde_json::from_str::<Value>(data) else {
            return ChunkParts::default();
        };
        if let Some(err) = v.get("error").filter(|e| !e.is_null()) {
            let message = err["message"].as_str().unwrap_or("the upstream failed");
            return ChunkParts {
                error: Some(message.to_owned()),
                ..ChunkParts::default()
            };
        }
        let choice = &v["choices"][0];
        let usage = v.get("usage").filter(|u| u.is_object()).map(|u| {
            (
                u["prompt_tokens"].as_u64().unwrap_or(0),
                u["completion_tokens"].as_u64().unwrap_or(0),
            )
        });
        ChunkParts {
            text: choice["delta"]["content"]
                .as_str()
                .filter(|t| !t.is_empty())
                .map(str::to_owned),
            finish: choice["finish_reason"].as_str().map(str::to_owned),
            usage,
            error: None,
        }
    }
}

/// The text of a message `content`: a string, or blocks of which the text ones count
/// (`text`, `input_text`, `output_text`).
///
/// # Errors
/// Names what is not text (images, files, tool results are not translated).
pub(crate) fn content_text(content: &Value, field: &str) -> Result<String, String> {
    match content {
        Value::String(s) => Ok(s.clone()),
        Value::Array(blocks) => {
            let mut out = String::new();
            for (i, b) in blocks.iter().enumerate() {
                match b["type"].as_str() {
                    Some("text" | "input_text" | "output_text") => {
                        out.push_str(
                            b["text"]
                                .as_str()
                                .ok_or_else(|| format!("{field}[{i}].text must be a string"))?,
                        );
                    }
                    Some(other) => {
                        return Err(format!(
                            "{field}[{i}] is a {other:?} block; this relay translates text only"
                        ));
                    }
                    None => return Err(format!("{field}[{i}].type is missing")),
                }
            }
            Ok(out)
        }
        _ => Err(format!(
            "{field} must be a string or an array of content blocks"
        )),
    }
}

/// Copies the sampling fields both APIs share with Chat Completions.
pub(crate) fn copy_sampling(from: &Value, to: &mut serde_json::Map<String, Value>) {
    for key in ["temperature", "top_p", "seed", "user"] {
        if let Some(v) = from.get(key).filter(|v| !v.is_null()) {
            to.insert(key.into(), v.clone());
        }
    }
}
