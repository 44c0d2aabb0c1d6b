//! The Anthropic Messages front (`/v1/messages`): Anthropic's events in order, resumable and
//! watchable through `/v1/streams/{id}`, cancellable, and Anthropic's error shape.

use serde_json::{Value, json};

use super::relay_support::{cancel, drain, relay_with_fake_upstream, stream_id, watch};
use super::support::{Sse, TestServer};

async fn create(hub: &TestServer, body: Value) -> reqwest::Response {
    hub.client
        .post(hub.url("/v1/messages"))
        .header("x-api-key", "relay-key")
        .header("anthropic-version", "2023-06-01")
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn request(model: &str, stream: bool) -> Value {
    json!({"model": model, "max_tokens": 64, "stream": stream,
           "messages": [{"role": "user", "content": "hi"}]})
}

#[tokio::test]
async fn a_streamed_message_has_anthropics_events_and_resumes_at_every_seam() {
    let (hub, _) = relay_with_fake_upstream().await;
    let res = create(&hub, request("fake-stream", true)).await;
    assert_eq!(res.status(), 200);
    let id = stream_id(&res);
    let mut sse = Sse::new(res);
    let mut kinds = Vec::new();
    let mut all = Vec::new();
    for e in sse.until_end().await {
        kinds.push(e.event.clone().unwrap_or_default());
        all.push((e.id.unwrap_or_default(), e.data));
    }
    assert_eq!(kinds[..3], ["message_start", "ping", "content_block_start"]);
    assert_eq!(
        kinds[kinds.len() - 4..],
        ["content_block_stop", "message_delta", "message_stop", ""]
    );
    let text: String = all
        .iter()
        .filter_map(|(_, d)| serde_json::from_str::<Value>(d).ok())
        .filter(|v| v["type"] == "content_block_delta")
        .map(|v| v["delta"]["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(text, "w0 w1 w2 w3 w4 w5 w6 w7 ");
    for k in 0..all.len() - 1 {
        let mut req = watch(&hub, &id);
        if k > 0 {
            req = req.header("last-event-id", &all[k - 1].0);
        }
        let got = drain(&mut Sse::new(req.send().await.unwrap())).await;
        assert_eq!(got, all[k..], "resume after event {k}");
    }
}

#[tokio::test]
async fn a_plain_message_is_the_whole_answer_and_cancel_ends_a_stream_with_its_stop() {
    let (hub, seen) = relay_with_fake_upstream().await;
    let res = create(&hub, request("fake-stream", false)).await;
    assert_eq!(res.status(), 200);
    let m: Value = res.json().await.unwrap();
    assert_eq!(m["type"], "message");
    assert_eq!(m["content"][0]["text"], "w0 w1 w2 w3 w4 w5 w6 w7 ");
    assert_eq!(m["stop_reason"], "end_turn");

    let res = create(&hub, request("fake-slow", true)).await;
    let id = stream_id(&res);
    let mut sse = Sse::new(res);
    sse.events(4).await;
    assert_eq!(cancel(&hub, &id).await.status(), 200);
    let rest = drain(&mut sse).await;
    let delta: Value = serde_json::from_str(&rest[rest.len() - 3].1).unwrap();
    assert_eq!(delta["delta"]["stop_reason"], "cancelled");
    assert!(seen.lock().unwrap().dropped_at.is_some());
}

#[tokio::test]
async fn bad_input_gets_anthropic_errors_naming_the_field() {
    let (hub, _) = relay_with_fake_upstream().await;
    for (body, field) in [
        (json!({"max_tokens": 5, "messages": []}), "model"),
        (json!({"model": "m", "messages": []}), "max_tokens"),
        (json!({"model": "m", "max_tokens": 5}), "messages"),
        (
            json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "image"}]}]}),
            "messages.0.content",
        ),
    ] {
        let res = create(&hub, body.clone()).await;
        assert_eq!(res.status(), 400, "{body}");
        let err: Value = res.json().await.unwrap();
        assert_eq!(err["type"], "error");
        assert_eq!(err["error"]["type"], "invalid_request_error");
        assert!(
            err["error"]["message"].as_str().unwrap().starts_with(field),
            "{err}"
        );
    }
    let res = hub
        .client
        .post(hub.url("/v1/messages"))
        .header("x-api-key", "wrong")
        .json(&request("fake-stream", true))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let err: Value = res.json().await.unwrap();
    assert_eq!(err["error"]["type"], "authentication_error");
}
