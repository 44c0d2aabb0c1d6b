//! The built-in model simulator: an OpenAI-compatible synthetic model, `ssehub-simulator`.
//!
//! It is not a language model. It writes plausible Markdown-shaped text word by word at a set
//! pace, the same text for the same prompt and `seed`, so demos, browser tests and load tests
//! run without a real model, a key or a network. Determinism comes from a hand-written hash
//! and generator (FNV-1a, splitmix64): std's hasher and `rand`'s generators may change
//! between versions, and a recorded answer must stay reproducible.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

/// The model id the simulator answers to.
pub const MODEL_ID: &str = "ssehub-simulator";

/// Pace of the simulated model.
#[derive(Clone, Copy, Debug)]
pub struct SimulatorOptions {
    /// Tokens written per second once the first one is out.
    pub tokens_per_second: f64,
    /// Delay before the first token, like a model's prompt processing.
    pub first_token_delay: Duration,
}

impl Default for SimulatorOptions {
    fn default() -> Self {
        SimulatorOptions {
            tokens_per_second: 30.0,
            first_token_delay: Duration::from_millis(300),
        }
    }
}

const WORDS: &[&str] = &[
    "stream",
    "event",
    "server",
    "browser",
    "token",
    "answer",
    "history",
    "replay",
    "topic",
    "update",
    "network",
    "connection",
    "client",
    "reload",
    "resume",
    "latency",
    "buffer",
    "proxy",
    "header",
    "message",
    "model",
    "request",
    "response",
    "durable",
    "order",
    "gap",
    "signal",
    "backoff",
    "retry",
    "heartbeat",
    "queue",
    "memory",
    "subscriber",
    "publisher",
    "channel",
    "page",
    "typewriter",
    "word",
    "line",
    "chunk",
    "byte",
    "frame",
    "simple",
    "steady",
    "careful",
    "quick",
    "quiet",
    "bright",
    "plain",
    "small",
    "large",
    "early",
    "late",
    "every",
    "each",
    "some",
    "many",
    "few",
    "the",
    "a",
    "its",
    "our",
    "this",
    "that",
    "one",
    "two",
    "three",
    "arrives",
    "returns",
    "continues",
    "waits",
    "keeps",
    "sends",
    "reads",
    "writes",
    "follows",
    "stops",
    "starts",
    "holds",
    "carries",
    "shows",
    "makes",
    "takes",
    "finds",
    "moves",
    "joins",
    "leaves",
    "counts",
    "and",
    "but",
    "so",
    "then",
    "while",
    "because",
    "when",
    "after",
    "before",
    "with",
    "without",
    "over",
    "under",
    "through",
    "into",
    "from",
    "between",
    "across",
    "along",
    "again",
    "still",
    "already",
    "soon",
];

const HEADINGS: &[&str] = &[
    "How it works",
    "In short",
    "Details",
    "Why it matters",
    "Next steps",
    "A sketch",
];

/// FNV-1a, 64 bits: stable across platforms and versions.
fn fnv1a(bytes: &[u8], mut h: u64) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// splitmix64: a small, well-distributed generator with a stable sequence.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// The text of the last user message (string content or text parts).
fn last_user_text(request: &Value) -> String {
    let messages = request.get("messages").and_then(Value::as_array);
    let last = messages.and_then(|m| {
        m.iter()
            .rev()
            .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
    });
    match last.and_then(|m| m.get("content")) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

/// The token limit the request asks for, if any.
fn max_tokens(request: &Value) -> Option<usize> {
    ["max_completion_tokens", "max_tokens"]
        .iter()
        .find_map(|k| request.get(*k).and_then(Value::as_u64))
        .map(|n| n as usize)
}

/// The simulated answer to a request: tokens (each a word with its following space or
/// line break) and the finish reason.
pub fn answer(request: &Value) -> (Vec<String>, &'static str) {
    let seed = request.get("seed").and_then(Value::as_i64).unwrap_or(0);
    let prompt = last_user_text(request);
    let mut rng = Rng(fnv1a(
        prompt.as_bytes(),
        fnv1a(&seed.to_le_bytes(), 0xcbf2_9ce4_8422_2325),
    ));
    let natural = 40 + rng.below(120);
    let mut tokens: Vec<String> = Vec::with_capacity(natural + 16);
    if rng.below(3) == 0 {
        tokens.push("## ".into());
        for w in HEADINGS[rng.below(HEADINGS.len())].split(' ') {
            tokens.push(format!("{w} "));
        }
        tokens.push("\n\n".into());
    }
    let echo: Vec<&str> = prompt
        .split_whitespace()
        .filter(|w| w.len() > 3)
        .take(3)
        .collect();
    while tokens.len() < natural {
        if rng.below(5) == 0 {
            for _ in 0..3 {
                tokens.push("- **".into());
                tokens.push(format!("{}**: ", WORDS[rng.below(WORDS.len())]));
                for _ in 0..(3 + rng.below(5)) {
                    tokens.push(format!("{} ", WORDS[rng.below(WORDS.len())]));
                }
                tokens.push("\n".into());
            }
            tokens.push("\n".into());
            continue;
        }
        for s in 0..(2 + rng.below(3)) {
            let len = 6 + rng.below(9);
            for i in 0..len {
                let mut w = if s == 0 && i == 1 && !echo.is_empty() {
                    echo[rng.below(echo.len())].to_owned()
                } else {
                    WORDS[rng.below(WORDS.len())].to_owned()
                };
                if i == 0 {
                    w[..1].make_ascii_uppercase();
                }
                if rng.below(17) == 0 {
                    w = format!("`{w}`");
                }
                let end = if i + 1 == len { ". " } else { " " };
                tokens.push(format!("{w}{end}"));
            }
        }
        tokens.push("\n\n".into());
    }
    let last = tokens.last_mut().expect("at least one token");
    *last = last.trim_end().to_owned();
    match max_tokens(request) {
        Some(limit) if limit < tokens.len() => {
            tokens.truncate(limit.max(1));
            (tokens, "length")
        }
        _ => (tokens, "stop"),
    }
}

/// Streaming chunks of the simulated answer, with their pace.
pub struct SimulatedStream {
    request_model: String,
    id: String,
    created: u64,
    tokens: std::vec::IntoIter<String>,
    finish_reason: &'static str,
    include_usage: bool,
    prompt_tokens: usize,
    completion_tokens: usize,
    /// Next chunk's index: 0 is the role chunk.
    index: usize,
    state: Phase,
    start: tokio::time::Instant,
    options: SimulatorOptions,
}

#[derive(PartialEq)]
enum Phase {
    Tokens,
    Finish,
    Usage,
    Done,
}

/// A chunk id like OpenAI's: `chatcmpl-` and random hex.
fn completion_id() -> String {
    format!("chatcmpl-sim{}", uuid::Uuid::now_v7().simple())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl SimulatedStream {
    /// Starts a simulated streaming completion for `request`.
    pub fn new(request: &Value, options: SimulatorOptions) -> Self {
        let (tokens, finish_reason) = answer(request);
        let include_usage = request
            .pointer("/stream_options/include_usage")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        SimulatedStream {
            request_model: request
                .get("model")
                .and_then(Value::as_str)
                .unwrap_or(MODEL_ID)
                .to_owned(),
            id: completion_id(),
            created: unix_now(),
            completion_tokens: tokens.len(),
            tokens: tokens.into_iter(),
            finish_reason,
            include_usage,
            prompt_tokens: last_user_text(request).split_whitespace().count(),
            index: 0,
            state: Phase::Tokens,
            start: tokio::time::Instant::now(),
            options,
        }
    }

    fn chunk(&self, delta: Value, finish_reason: Option<&str>) -> String {
        json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.request_model,
            "system_fingerprint": "ssehub-simulator",
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason}],
        })
        .to_string()
    }

    /// The next chunk's JSON after waiting for its time, or `None` when the stream is over.
    pub async fn next_chunk(&mut self) -> Option<String> {
        match self.state {
            Phase::Done => None,
            Phase::Usage => {
                self.state = Phase::Done;
                Some(
                    json!({
                        "id": self.id, "object": "chat.completion.chunk", "created": self.created,
                        "model": self.request_model, "choices": [],
                        "usage": {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                                  "total_tokens": self.prompt_tokens + self.completion_tokens},
                    })
                    .to_string(),
                )
            }
            Phase::Finish => {
                self.state = if self.include_usage {
                    Phase::Usage
                } else {
                    Phase::Done
                };
                Some(self.chunk(json!({}), Some(self.finish_reason)))
            }
            Phase::Tokens if self.index == 0 => {
                self.index = 1;
                Some(self.chunk(json!({"role": "assistant", "content": ""}), None))
            }
            Phase::Tokens => match self.tokens.next() {
                Some(token) => {
                    // Paced from the start, so timer jitter never accumulates into drift.
                    let period =
                        Duration::from_secs_f64(1.0 / self.options.tokens_per_second.max(0.001));
                    let due = self.start
                        + self.options.first_token_delay
                        + period.mul_f64((self.index - 1) as f64);
                    tokio::time::sleep_until(due).await;
                    self.index += 1;
                    Some(self.chunk(json!({"content": token}), None))
                }
                None => {
                    self.state = Phase::Finish;
                    Box::pin(self.next_chunk()).await
                }
            },
        }
    }
}

/// The whole simulated completion as one `chat.completion` object (`stream: false`).
pub fn complete(request: &Value) -> Value {
    let (tokens, finish_reason) = answer(request);
    let prompt_tokens = last_user_text(request).split_whitespace().count();
    json!({
        "id": completion_id(),
        "object": "chat.completion",
        "created": unix_now(),
        "model": request.get("model").and_then(Value::as_str).unwrap_or(MODEL_ID),
        "system_fingerprint": "ssehub-simulator",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": tokens.concat()},
            "logprobs": null,
            "finish_reason": finish_reason,
        }],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": tokens.len(), "total_tokens": prompt_tokens + tokens.len()},
    })
}

/// `GET /v1/models` as the simulator answers it.
pub fn models() -> Value {
    json!({"object": "list", "data": [{"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "ssehub"}]})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(prompt: &str, seed: i64) -> Value {
        json!({"model": MODEL_ID, "seed": seed, "messages": [{"role": "user", "content": prompt}]})
    }

    #[test]
    fn the_same_prompt_and_seed_give_the_same_answer() {
        assert_eq!(
            answer(&req("hello there", 1)),
            answer(&req("hello there", 1))
        );
        assert_ne!(
            answer(&req("hello there", 1)).0,
            answer(&req("hello there", 2)).0
        );
        assert_ne!(
            answer(&req("hello there", 1)).0,
            answer(&req("something else", 1)).0
        );
    }

    #[test]
    fn max_tokens_truncates_with_finish_reason_length() {
        let mut r = req("x", 0);
        r["max_tokens"] = json!(5);
        let (tokens, reason) = answer(&r);
        assert_eq!(tokens.len(), 5);
        assert_eq!(reason, "length");
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_is_role_then_tokens_then_finish_then_usage_at_its_pace() {
        let mut r = req("pace", 3);
        r["stream_options"] = json!({"include_usage": true});
        let options = SimulatorOptions {
            tokens_per_second: 10.0,
            first_token_delay: Duration::from_millis(500),
        };
        let mut s = SimulatedStream::new(&r, options);
        let start = tokio::time::Instant::now();
        let role: Value = serde_json::from_str(&s.next_chunk().await.unwrap()).unwrap();
        assert_eq!(role["choices"][0]["delta"]["role"], "assistant");
        let first: Value = serde_json::from_str(&s.next_chunk().await.unwrap()).unwrap();
        assert_eq!(start.elapsed(), Duration::from_millis(500));
        assert!(first["choices"][0]["delta"]["content"].is_string());
        s.next_chunk().await.unwrap();
        assert_eq!(start.elapsed(), Duration::from_millis(600));
        let mut text = first["choices"][0]["delta"]["content"]
            .as_str()
            .unwrap()
            .to_owned();
        let mut last = Value::Null;
        while let Some(c) = s.next_chunk().await {
            last = serde_json::from_str(&c).unwrap();
            if let Some(t) = last["choices"][0]["delta"]["content"].as_str() {
                text.push_str(t);
            }
        }
        assert!(last["usage"]["completion_tokens"].as_u64().unwrap() > 0);
        assert!(!text.is_empty());
    }
}
