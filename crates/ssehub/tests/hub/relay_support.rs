//! The relay's test fixture: a fake OpenAI-compatible upstream started by the test, a hub in
//! front of it, and the requests the relay tests make.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use ssehub::Config;

use super::support::{PATIENCE, Sse, TestServer};

/// What the fake upstream saw.
#[derive(Default)]
pub(crate) struct Seen {
    pub(crate) authorization: Vec<Option<String>>,
    pub(crate) bodies: Vec<Value>,
    /// When a slow stream's body was dropped by the hub (the upstream saw the request end).
    pub(crate) dropped_at: Option<Instant>,
    /// When a stream ran to its end.
    pub(crate) finished: usize,
}

pub(crate) type Shared = Arc<Mutex<Seen>>;

/// How long model `fake-pause` is silent after its second chunk.
pub(crate) const PAUSE: Duration = Duration::from_secs(8);

pub(crate) fn chunk(i: usize, text: &str) -> String {
    json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1, "model": "fake",
           "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": null}], "n": i})
    .to_string()
}

struct DropSignal(Shared);

impl Drop for DropSignal {
    fn drop(&mut self) {
        self.0.lock().unwrap().dropped_at = Some(Instant::now());
    }
}

async fn fake_chat(
    State(seen): State<Shared>,
    headers: http::HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    {
        let mut s = seen.lock().unwrap();
        s.authorization.push(
            headers
                .get("authorization")
                .map(|v| v.to_str().unwrap().to_owned()),
        );
        s.bodies.push(body.clone());
    }
    let model = body["model"].as_str().unwrap_or("").to_owned();
    let streaming = body["stream"].as_bool().unwrap_or(false);
    if model == "fake-error" {
        let err = json!({"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}});
        return (http::StatusCode::TOO_MANY_REQUESTS, Json(err)).into_response();
    }
    if !streaming {
        return Json(json!({"id": "chatcmpl-whole", "object": "chat.completion", "model": "fake",
                           "choices": [{"index": 0, "message": {"role": "assistant", "content": "whole answer"},
                                        "finish_reason": "stop"}]}))
        .into_response();
    }
    if let Some(rest) = model.strip_prefix("fake-burst") {
        return burst(&seen, rest == "-broken");
    }
    let (count, delay, broken) = match model.as_str() {
        "fake-slow" => (usize::MAX, Duration::from_millis(100), false),
        // Long enough to be watched live from another node, and still finite.
        "fake-long" => (30, Duration::from_millis(50), false),
        // Two chunks, silence for PAUSE, then a long tail.
        "fake-pause" => (100, Duration::from_millis(100), false),
        "fake-broken" => (2, Duration::ZERO, true),
        _ => (8, Duration::from_millis(20), false),
    };
    let guard = DropSignal(seen.clone());
    let seen2 = seen.clone();
    let frames = futures_util::stream::unfold((0usize, guard), move |(i, guard)| {
        let seen = seen2.clone();
        let model = model.clone();
        async move {
            if i == count {
                if broken {
                    return Some((
                        Err(std::io::Error::other("upstream crashed")),
                        (i + 1, guard),
                    ));
                }
                seen.lock().unwrap().finished += 1;
                std::mem::forget(guard);
                return Some((
                    Ok(bytes::Bytes::from("data: [DONE]\n\n")),
                    (i + 1, DropSignal(seen)),
                ));
            }
            if i > count {
                std::mem::forget(guard);
                return None;
            }
            if i == 2 && model == "fake-pause" {
                tokio::time::sleep(PAUSE).await;
            }
            tokio::time::sleep(delay).await;
            Some((
                Ok(bytes::Bytes::from(format!(
                    "data: {}\n\n",
                    chunk(i, &format!("w{i} "))
                ))),
                (i + 1, guard),
            ))
        }
    });
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(frames))
        .unwrap()
}

/// Chunks that models `fake-burst` and `fake-burst-broken` send in one body frame.
pub(crate) const BURST: usize = 150;

/// Every chunk in one frame, so that they arrive in one read, then `[DONE]` or a failure.
fn burst(seen: &Shared, broken: bool) -> Response {
    let mut frame: String = (0..BURST)
        .map(|i| format!("data: {}\n\n", chunk(i, &format!("w{i} "))))
        .collect();
    let end = if broken {
        Err(std::io::Error::other("upstream crashed"))
    } else {
        seen.lock().unwrap().finished += 1;
        frame.push_str("data: [DONE]\n\n");
        Ok(bytes::Bytes::new())
    };
    // The failure after a yield, as `fake-broken`'s: an error at once can abort the response
    // before its head is sent.
    let end = futures_util::stream::once(async move {
        tokio::task::yield_now().await;
        end
    });
    let frames = futures_util::StreamExt::chain(
        futures_util::stream::iter([Ok(bytes::Bytes::from(frame))]),
        end,
    );
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(frames))
        .unwrap()
}

async fn fake_models() -> Json<Value> {
    Json(json!({"object": "list", "data": [{"id": "fake-model", "object": "model"}]}))
}

/// A fake OpenAI-compatible upstream on an ephemeral port.
pub(crate) async fn fake_upstream() -> (String, Shared) {
    let seen: Shared = Default::default();
    let app = axum::Router::new()
        .route("/v1/chat/completions", post(fake_chat))
        .route("/v1/models", get(fake_models))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/v1"), seen)
}

/// A relay hub in front of `upstream`, accepting the key `relay-key`.
pub(crate) async fn relay_hub(upstream: &str) -> TestServer {
    relay_hub_with(upstream, |_| {}).await
}

/// Like [`relay_hub`], with the configuration adjusted further.
pub(crate) async fn relay_hub_with(upstream: &str, adjust: impl FnOnce(&mut Config)) -> TestServer {
    TestServer::start_with(|c| {
        relay_config(c, upstream);
        adjust(c);
    })
    .await
}

/// Points `c` at `upstream` with the relay key `relay-key`.
pub(crate) fn relay_config(c: &mut Config, upstream: &str) {
    c.upstream = Some(upstream.to_owned());
    c.upstream_api_key = Some("sk-upstream-secret".into());
    c.relay_api_keys = vec!["relay-key".into()];
}

/// A fake upstream and a relay hub in front of it.
pub(crate) async fn relay_with_fake_upstream() -> (TestServer, Shared) {
    let (upstream, seen) = fake_upstream().await;
    (relay_hub(&upstream).await, seen)
}

/// A POST to the chat completions endpoint, with no key yet.
pub(crate) fn chat_request(hub: &TestServer) -> reqwest::RequestBuilder {
    hub.client.post(hub.url("/v1/chat/completions"))
}

pub(crate) async fn post_chat(hub: &TestServer, body: Value) -> reqwest::Response {
    post_chat_as(hub, "relay-key", body).await
}

/// Posts a completion request with this key.
pub(crate) async fn post_chat_as(hub: &TestServer, key: &str, body: Value) -> reqwest::Response {
    chat_request(hub)
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// The stream id the hub gave a relayed completion.
pub(crate) fn stream_id(res: &reqwest::Response) -> String {
    res.headers()["x-stream-id"].to_str().unwrap().to_owned()
}

/// A GET of a relay stream with the relay key, to send or extend.
pub(crate) fn watch(hub: &TestServer, id: &str) -> reqwest::RequestBuilder {
    watch_as(hub, "relay-key", id)
}

/// A GET of a relay stream with this key, to send or extend.
pub(crate) fn watch_as(hub: &TestServer, key: &str, id: &str) -> reqwest::RequestBuilder {
    hub.get_as(&format!("/v1/streams/{id}"), key)
}

/// Asks the hub, with the relay key, to cancel a relay stream.
pub(crate) async fn cancel(hub: &TestServer, id: &str) -> reqwest::Response {
    cancel_as(hub, "relay-key", id).await
}

/// Asks the hub, with this key, to cancel a relay stream.
pub(crate) async fn cancel_as(hub: &TestServer, key: &str, id: &str) -> reqwest::Response {
    hub.client
        .post(hub.url(&format!("/v1/streams/{id}/cancel")))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
}

/// Waits (up to PATIENCE, a liveness bound, not a timing claim) until the fake upstream has
/// seen its streaming request end without running to its end.
pub(crate) async fn upstream_dropped(seen: &Shared) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while seen.lock().unwrap().dropped_at.is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the upstream never saw its request end"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        seen.lock().unwrap().finished,
        0,
        "the upstream ran to its end"
    );
}

pub(crate) fn streaming(model: &str) -> Value {
    json!({"model": model, "stream": true, "messages": [{"role": "user", "content": "hi"}]})
}

/// Reads events to the end: (id, data) pairs.
pub(crate) async fn drain(sse: &mut Sse) -> Vec<(String, String)> {
    sse.until_end()
        .await
        .into_iter()
        .map(|e| (e.id.unwrap_or_default(), e.data))
        .collect()
}
