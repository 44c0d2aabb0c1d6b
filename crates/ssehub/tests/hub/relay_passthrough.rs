//! `--upstream-api responses|messages`: requests through the same API pass through to fake
//! upstreams of that shape, their events stored as they came (a Responses `sequence_number`
//! renumbered from 1 and `response.id` made the stream id); cancel still drops the upstream
//! request and closes the stream in the API's own terms; other fronts are refused with a 400.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use axum::routing::post;
use serde_json::{Value, json};
use ssehub::relay::Api;

use super::relay_support::{cancel, drain, post_chat, relay_hub_with, stream_id, streaming};
use super::support::Sse;

/// What a fake upstream saw: the requests, the key header, whether a stream was dropped.
#[derive(Default)]
struct Seen {
    bodies: Vec<Value>,
    keys: Vec<Option<String>>,
    dropped: bool,
}

type Shared = Arc<Mutex<Seen>>;

struct DropFlag(Shared);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.lock().unwrap().dropped = true;
    }
}

/// The events of an answer `w0 w1 ...` in the API `path` speaks; `None` deltas forever.
fn events(path: &str, count: Option<usize>) -> impl Iterator<Item = Value> + Send + 'static {
    let responses = path == "responses";
    let head: Vec<Value> = if responses {
        vec![
            json!({"type": "response.created", "sequence_number": 0,
                   "response": {"id": "resp_up", "object": "response", "status": "in_progress", "output": []}}),
            json!({"type": "response.output_item.added", "sequence_number": 1, "output_index": 0,
                   "item": {"id": "msg_1", "type": "message", "role": "assistant", "status": "in_progress", "content": []}}),
            json!({"type": "response.content_part.added", "sequence_number": 2, "item_id": "msg_1", "output_index": 0,
                   "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": []}}),
        ]
    } else {
        vec![
            json!({"type": "message_start", "message": {"id": "msg_up", "type": "message", "role": "assistant", "content": [], "usage": {"input_tokens": 3, "output_tokens": 0}}}),
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ]
    };
    let n = head.len();
    let deltas = (0..count.unwrap_or(usize::MAX)).map(move |i| {
        if responses {
            json!({"type": "response.output_text.delta", "sequence_number": i + 3, "item_id": "msg_1",
                   "output_index": 0, "content_index": 0, "delta": format!("w{i} "), "logprobs": []})
        } else {
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": format!("w{i} ")}})
        }
    });
    let tail: Vec<Value> = match count {
        Some(c) if responses => vec![
            json!({"type": "response.completed", "sequence_number": c + n,
            "response": {"id": "resp_up", "object": "response", "status": "completed", "output": []}}),
        ],
        Some(_) => vec![
            json!({"type": "content_block_stop", "index": 0}),
            json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": 4}}),
            json!({"type": "message_stop"}),
        ],
        None => Vec::new(),
    };
    head.into_iter().chain(deltas).chain(tail)
}

async fn fake(
    State((seen, path)): State<(Shared, &'static str)>,
    headers: http::HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let key = headers
        .get(if path == "messages" {
            "x-api-key"
        } else {
            "authorization"
        })
        .map(|v| v.to_str().unwrap().to_owned());
    let slow = body["model"] == "fake-slow";
    {
        let mut s = seen.lock().unwrap();
        s.bodies.push(body);
        s.keys.push(key);
    }
    let flag = DropFlag(seen.clone());
    let frames = futures_util::stream::unfold(
        (events(path, (!slow).then_some(4)), flag),
        move |(mut it, flag)| async move {
            let event = it.next()?;
            tokio::time::sleep(Duration::from_millis(if slow { 50 } else { 5 })).await;
            let frame = format!(
                "event: {}\ndata: {event}\n\n",
                event["type"].as_str().unwrap()
            );
            Some((
                Ok::<_, std::io::Error>(bytes::Bytes::from(frame)),
                (it, flag),
            ))
        },
    );
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(frames))
        .unwrap()
}

/// A fake upstream speaking `path` (`responses` or `messages`) at `/v1/{path}`.
async fn fake_upstream(path: &'static str) -> (String, Shared) {
    let seen: Shared = Default::default();
    let app = axum::Router::new()
        .route(&format!("/v1/{path}"), post(fake))
        .with_state((seen.clone(), path));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/v1"), seen)
}

fn parsed(events: &[(String, String)]) -> Vec<Value> {
    events
        .iter()
        .filter(|(_, d)| d != "[DONE]")
        .map(|(_, d)| serde_json::from_str(d).unwrap())
        .collect()
}

#[tokio::test]
async fn responses_pass_through_renumbered_and_cancel_closes_them_as_cancelled() {
    let (upstream, seen) = fake_upstream("responses").await;
    let hub = relay_hub_with(&upstream, |c| c.upstream_api = Api::Responses).await;
    let post = |body: Value| {
        hub.client
            .post(hub.url("/v1/responses"))
            .bearer_auth("relay-key")
            .json(&body)
            .send()
    };
    let res = post(
        json!({"model": "fake", "input": "hi", "stream": true, "tools": [{"type": "web_search"}]}),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 200);
    let id = stream_id(&res);
    let got = parsed(&drain(&mut Sse::new(res)).await);
    // Passed unchanged, tools included, with the upstream's key header.
    let asked = seen.lock().unwrap().bodies[0].clone();
    assert_eq!(asked["tools"], json!([{"type": "web_search"}]));
    assert_eq!(
        seen.lock().unwrap().keys[0].as_deref(),
        Some("Bearer sk-upstream-secret")
    );
    let kinds: Vec<&str> = got.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds.len(), 8);
    assert_eq!(
        kinds[..3],
        [
            "response.created",
            "response.output_item.added",
            "response.content_part.added"
        ]
    );
    assert_eq!(kinds[7], "response.completed");
    for (i, e) in got.iter().enumerate() {
        assert_eq!(e["sequence_number"], i as u64 + 1);
    }
    assert_eq!(got[0]["response"]["id"], id.as_str());
    assert_eq!(got[3]["delta"], "w0 ");
    let object: Value = hub
        .get_as(&format!("/v1/responses/{id}"), "relay-key")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(object["status"], "completed");

    let res = post(json!({"model": "fake-slow", "input": "hi", "stream": true}))
        .await
        .unwrap();
    let id = stream_id(&res);
    let mut sse = Sse::new(res);
    sse.events(7).await;
    let cancelled: Value = hub
        .client
        .post(hub.url(&format!("/v1/responses/{id}/cancel")))
        .bearer_auth("relay-key")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(cancelled["status"], "cancelled");
    assert!(seen.lock().unwrap().dropped);
    let rest = parsed(&drain(&mut sse).await);
    assert_eq!(rest.last().unwrap()["type"], "response.cancelled");
    assert!(
        rest.last().unwrap()["response"]["output"][0]["content"][0]["text"]
            .as_str()
            .unwrap()
            .starts_with("w0 w1 w2 ")
    );

    // The other fronts are not translated to a Responses upstream.
    let res = post_chat(&hub, streaming("fake")).await;
    assert_eq!(res.status(), 400);
    let res = hub
        .client
        .post(hub.url("/v1/messages"))
        .header("x-api-key", "relay-key")
        .json(&json!({"model": "m", "max_tokens": 5, "messages": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
}

#[tokio::test]
async fn messages_pass_through_unchanged_and_resume_and_cancel_like_any_stream() {
    let (upstream, seen) = fake_upstream("messages").await;
    let hub = relay_hub_with(&upstream, |c| c.upstream_api = Api::Messages).await;
    let post = |body: Value| {
        hub.client
            .post(hub.url("/v1/messages"))
            .header("x-api-key", "relay-key")
            .json(&body)
            .send()
    };
    let ask = json!({"model": "fake", "max_tokens": 5, "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let res = post(ask.clone()).await.unwrap();
    let id = stream_id(&res);
    let all = drain(&mut Sse::new(res)).await;
    let expected: Vec<Value> = events("messages", Some(4)).collect();
    assert_eq!(parsed(&all), expected, "passed through unchanged");
    assert_eq!(
        seen.lock().unwrap().keys[0].as_deref(),
        Some("sk-upstream-secret")
    );
    assert_eq!(all[all.len() - 2].0, format!("{id}-end"));
    let rest = drain(&mut Sse::new(
        super::relay_support::watch(&hub, &id)
            .header("last-event-id", &all[3].0)
            .send()
            .await
            .unwrap(),
    ))
    .await;
    assert_eq!(rest, all[4..]);
    // Non-streaming through a streaming upstream: the whole message.
    let mut plain = ask.clone();
    plain["stream"] = json!(false);
    let m: Value = post(plain).await.unwrap().json().await.unwrap();
    assert_eq!(m["content"][0]["text"], "w0 w1 w2 w3 ");
    assert_eq!(m["stop_reason"], "end_turn");

    let mut slow = ask;
    slow["model"] = json!("fake-slow");
    let res = post(slow).await.unwrap();
    let id = stream_id(&res);
    let mut sse = Sse::new(res);
    sse.events(4).await;
    assert_eq!(cancel(&hub, &id).await.status(), 200);
    let rest = parsed(&drain(&mut sse).await);
    assert_eq!(rest.last().unwrap()["type"], "message_stop");
    assert_eq!(rest[rest.len() - 2]["delta"]["stop_reason"], "cancelled");
    assert!(seen.lock().unwrap().dropped);
}
