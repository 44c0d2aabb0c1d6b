//! Where completions come from: the built-in simulator, or an OpenAI-compatible server
//! (OpenAI, Ollama, vLLM, llama.cpp's server) reached over HTTP with the hub's own key.
//!
//! A streaming reply is a stream of chunk payloads (the text after `data: `), ending before
//! `[DONE]`. Dropping it drops the upstream request: the upstream sees its connection (or
//! HTTP/2 stream) closed, which is what makes "stop" stop the model.

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use http::StatusCode;
use serde_json::Value;
use sse_wire::{FrameRef, Parser};

use crate::relay::front::Api;
use crate::relay::simulator::{self, SimulatedStream, SimulatorOptions};

/// A streaming upstream silent for this long is taken as hung: the stream ends with an
/// error chunk instead of waiting forever (and the HTTP client's read times out).
pub const UPSTREAM_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// Largest chunk accepted from an upstream: a hostile or broken upstream cannot grow the
/// hub's memory without bound.
const MAX_UPSTREAM_EVENT: usize = 4 << 20;

/// A failure talking to the upstream.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpstreamError {
    /// The upstream could not be reached or the request failed before any answer.
    #[error("upstream unreachable: {0}")]
    Unreachable(String),
    /// The answer broke off or was malformed mid-stream.
    #[error("upstream stream failed: {0}")]
    Broken(String),
}

/// What the upstream answered.
pub enum Reply {
    /// A whole answer passed through as is: a non-streaming completion, or an error status
    /// with its OpenAI error body.
    Whole {
        /// Upstream status.
        status: StatusCode,
        /// Upstream content type.
        content_type: String,
        /// Upstream body.
        body: Bytes,
    },
    /// A streaming answer: chunk payloads in order.
    Stream(BoxStream<'static, Result<String, UpstreamError>>),
}

/// The relay's model source.
pub enum Upstream {
    /// The built-in simulator.
    Simulator(SimulatorOptions),
    /// An OpenAI-compatible server.
    Http {
        /// Base URL ending in `/v1` (no trailing slash).
        base: String,
        /// Sent as `Authorization: Bearer`; never sent to browsers.
        api_key: Option<String>,
        /// Shared connection pool.
        client: reqwest::Client,
        /// The API it speaks (`--upstream-api`): requests through the same front pass
        /// through, others are translated to Chat Completions when it speaks that.
        api: Api,
    },
}

impl Upstream {
    /// An upstream from `--upstream` (`simulate` or a base URL) and `--upstream-api-key`.
    pub fn from_config(
        upstream: Option<&str>,
        api_key: Option<String>,
        api: Api,
        simulator: SimulatorOptions,
    ) -> Self {
        match upstream {
            None | Some("simulate") | Some("") => Upstream::Simulator(simulator),
            Some(base) => Upstream::Http {
                base: base.trim_end_matches('/').to_owned(),
                api_key,
                client: reqwest::Client::builder()
                    .connect_timeout(std::time::Duration::from_secs(10))
                    .read_timeout(UPSTREAM_IDLE_TIMEOUT)
                    .build()
                    .expect("a default reqwest client builds"),
                api,
            },
        }
    }

    /// The API the upstream speaks (the simulator: Chat Completions).
    pub fn api(&self) -> Api {
        match self {
            Upstream::Simulator(_) => Api::Chat,
            Upstream::Http { api, .. } => *api,
        }
    }

    /// Passes a Responses or Messages request through, streaming, to an upstream that speaks
    /// that API: `POST {base}/responses` or `{base}/messages` (Anthropic's key header and
    /// version for the latter).
    ///
    /// # Errors
    /// [`UpstreamError::Unreachable`] when no answer came back at all.
    pub async fn pass(&self, api: Api, request: &Value) -> Result<Reply, UpstreamError> {
        let Upstream::Http {
            base,
            api_key,
            client,
            ..
        } = self
        else {
            return Err(UpstreamError::Unreachable(
                "the simulator speaks Chat Completions only".into(),
            ));
        };
        let path = if api == Api::Messages {
            "messages"
        } else {
            "responses"
        };
        let mut req = client
            .post(format!("{base}/{path}"))
            .json(request)
            .header(http::header::ACCEPT, "text/event-stream");
        if let Some(key) = api_key {
            req = if api == Api::Messages {
                req.header("x-api-key", key)
                    .header("anthropic-version", "2023-06-01")
            } else {
                req.bearer_auth(key)
            };
        }
        send(req, true).await
    }

    /// Asks for a chat completion; `request` is forwarded unchanged.
    ///
    /// # Errors
    /// [`UpstreamError::Unreachable`] when no answer came back at all.
    pub async fn chat(&self, request: &Value) -> Result<Reply, UpstreamError> {
        let streaming = request
            .get("stream")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        match self {
            Upstream::Simulator(options) => Ok(if streaming {
                let sim = SimulatedStream::new(request, *options);
                Reply::Stream(
                    futures_util::stream::unfold(sim, |mut s| async move {
                        s.next_chunk().await.map(|c| (Ok(c), s))
                    })
                    .boxed(),
                )
            } else {
                Reply::Whole {
                    status: StatusCode::OK,
                    content_type: "application/json".into(),
                    body: Bytes::from(simulator::complete(request).to_string()),
                }
            }),
            Upstream::Http {
                base,
                api_key,
                client,
                ..
            } => {
                let mut req = client
                    .post(format!("{base}/chat/completions"))
                    .json(request);
                if let Some(key) = api_key {
                    req = req.bearer_auth(key);
                }
                if streaming {
                    req = req.header(http::header::ACCEPT, "text/event-stream");
                }
                send(req, streaming).await
            }
        }
    }

    /// `GET /v1/models`, passed through.
    ///
    /// # Errors
    /// [`UpstreamError::Unreachable`] when no answer came back.
    pub async fn models(&self) -> Result<(StatusCode, Bytes), UpstreamError> {
        match self {
            Upstream::Simulator(_) => {
                Ok((StatusCode::OK, Bytes::from(simulator::models().to_string())))
            }
            Upstream::Http {
                base,
                api_key,
                client,
                ..
            } => {
                let mut req = client.get(format!("{base}/models"));
                if let Some(key) = api_key {
                    req = req.bearer_auth(key);
                }
                let res = req
                    .send()
                    .await
                    .map_err(|e| UpstreamError::Unreachable(e.to_string()))?;
                let status = res.status();
                let body = res
                    .bytes()
                    .await
                    .map_err(|e| UpstreamError::Unreachable(e.to_string()))?;
                Ok((status, body))
            }
        }
    }
}

/// Sends `req`: an event stream when `streaming` and the upstream answered with one, else the
/// whole answer.
async fn send(req: reqwest::RequestBuilder, streaming: bool) -> Result<Reply, UpstreamError> {
    let res = req
        .send()
        .await
        .map_err(|e| UpstreamError::Unreachable(e.to_string()))?;
    let status = res.status();
    let content_type = res
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_owned();
    if streaming && status.is_success() && content_type.starts_with("text/event-stream") {
        return Ok(Reply::Stream(chunks(res)));
    }
    let body = res
        .bytes()
        .await
        .map_err(|e| UpstreamError::Unreachable(e.to_string()))?;
    Ok(Reply::Whole {
        status,
        content_type,
        body,
    })
}

/// The `data:` payloads of an upstream event stream, up to `[DONE]`.
fn chunks(res: reqwest::Response) -> BoxStream<'static, Result<String, UpstreamError>> {
    struct State {
        body: BoxStream<'static, reqwest::Result<Bytes>>,
        parser: Parser,
        ready: std::collections::VecDeque<String>,
        finished: bool,
    }
    let state = State {
        body: res.bytes_stream().boxed(),
        parser: Parser::new().with_max_event_bytes(MAX_UPSTREAM_EVENT),
        ready: Default::default(),
        finished: false,
    };
    futures_util::stream::unfold(state, |mut s| async move {
        loop {
            if let Some(c) = s.ready.pop_front() {
                return Some((Ok(c), s));
            }
            if s.finished {
                return None;
            }
            match s.body.next().await {
                Some(Ok(bytes)) => {
                    let mut failure = None;
                    // Lent: only the data is kept, so the event's type and id
                    // (an Anthropic stream names every event) cost nothing.
                    {
                        let mut feed = s.parser.feed(&bytes);
                        while let Some(frame) = feed.next_ref() {
                            match frame {
                                Ok(FrameRef::Event(ev)) if ev.data == "[DONE]" => {
                                    s.finished = true;
                                    break;
                                }
                                Ok(FrameRef::Event(ev)) => s.ready.push_back(ev.data.to_owned()),
                                Ok(_) => {}
                                Err(e) => {
                                    failure = Some(UpstreamError::Broken(e.to_string()));
                                    break;
                                }
                            }
                        }
                    }
                    if let Some(err) = failure {
                        s.finished = true;
                        return Some((Err(err), s));
                    }
                }
                Some(Err(e)) => {
                    s.finished = true;
                    return Some((Err(UpstreamError::Broken(e.to_string())), s));
                }
                // An upstream that closes without [DONE] has still finished its answer.
                None => s.finished = true,
            }
        }
    })
    .boxed()
}
