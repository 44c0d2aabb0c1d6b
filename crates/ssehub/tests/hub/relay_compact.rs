//! Compact catch-up (`GET /v1/streams/{id}?compact=1`): the missed history with its text deltas
//! merged into one event per run, then live; the same final text as a full replay, and ids that
//! resume exactly.

use serde_json::Value;

use super::relay_support::{
    drain, post_chat, relay_with_fake_upstream, stream_id, streaming, watch,
};
use super::support::{Sse, TestServer};

fn chat_text(events: &[(String, String)]) -> String {
    events
        .iter()
        .filter_map(|(_, d)| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect()
}

async fn compact(hub: &TestServer, id: &str, last: Option<&str>) -> Vec<(String, String)> {
    let mut req = hub.get_as(&format!("/v1/streams/{id}?compact=1"), "relay-key");
    if let Some(l) = last {
        req = req.header("last-event-id", l);
    }
    let res = req.send().await.unwrap();
    assert_eq!(res.status(), 200);
    drain(&mut Sse::new(res)).await
}

#[tokio::test]
async fn a_finished_answer_comes_as_one_event_and_resumes_from_its_id() {
    let (hub, _) = relay_with_fake_upstream().await;
    let res = post_chat(&hub, streaming("fake-long")).await;
    let id = stream_id(&res);
    let full = drain(&mut Sse::new(res)).await;
    assert_eq!(full.len(), 31);
    let short = compact(&hub, &id, None).await;
    // The 30 deltas as one chunk, then [DONE].
    assert_eq!(short.len(), 2, "{short:?}");
    assert_eq!(short[0].0, format!("{id}-30"));
    assert_eq!(chat_text(&short), chat_text(&full));
    // From the middle: the rest merged, the same text as the rest of a full replay.
    let rest = compact(&hub, &id, Some(&format!("{id}-10"))).await;
    assert_eq!(rest.len(), 2);
    assert_eq!(chat_text(&rest), chat_text(&full[10..]));
    // The merged event's id resumes exactly after it.
    let after = drain(&mut Sse::new(
        watch(&hub, &id)
            .header("last-event-id", &short[0].0)
            .send()
            .await
            .unwrap(),
    ))
    .await;
    assert_eq!(after, full[30..]);
    // Bad values are named.
    let res = hub
        .get_as(&format!("/v1/streams/{id}?compact=yes"), "relay-key")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
}

#[tokio::test]
async fn joining_mid_answer_gets_the_text_so_far_in_one_event_then_the_live_deltas() {
    let (hub, _) = relay_with_fake_upstream().await;
    let res = post_chat(&hub, streaming("fake-long")).await;
    let id = stream_id(&res);
    let mut caller = Sse::new(res);
    caller.events(12).await;
    let joined = compact(&hub, &id, None).await;
    let full = drain(&mut caller).await;
    let whole = drain(&mut Sse::new(watch(&hub, &id).send().await.unwrap())).await;
    assert!(joined.len() < 25, "not compacted: {} events", joined.len());
    assert_eq!(chat_text(&joined), chat_text(&whole));
    assert_eq!(joined.last(), whole.last());
    drop(full);
}

/// A streamed Responses answer of model `fake-long`, read to its end: its id and events.
async fn streamed_response(hub: &TestServer) -> (String, Vec<(String, String)>) {
    let res = hub
        .client
        .post(hub.url("/v1/responses"))
        .bearer_auth("relay-key")
        .json(&serde_json::json!({"model": "fake-long", "input": "hi", "stream": true}))
        .send()
        .await
        .unwrap();
    let id = stream_id(&res);
    (id, drain(&mut Sse::new(res)).await)
}

#[tokio::test]
async fn responses_and_messages_streams_compact_in_their_own_shape() {
    let (hub, _) = relay_with_fake_upstream().await;
    let (id, full) = streamed_response(&hub).await;
    let short = compact(&hub, &id, None).await;
    let kinds: Vec<String> = short
        .iter()
        .filter_map(|(_, d)| serde_json::from_str::<Value>(d).ok())
        .map(|v| v["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        kinds
            .iter()
            .filter(|k| *k == "response.output_text.delta")
            .count(),
        1
    );
    assert_eq!(short.len(), full.len() - 29);
    let merged: Value = serde_json::from_str(&short[4].1).unwrap();
    assert_eq!(merged["sequence_number"], 34);
    assert_eq!(short[4].0, format!("{id}-34"));
    assert_eq!(
        merged["delta"].as_str().unwrap(),
        (0..30).map(|i| format!("w{i} ")).collect::<String>()
    );

    let res = hub
        .client
        .post(hub.url("/v1/messages"))
        .header("x-api-key", "relay-key")
        .json(
            &serde_json::json!({"model": "fake-long", "max_tokens": 9, "stream": true,
                                  "messages": [{"role": "user", "content": "hi"}]}),
        )
        .send()
        .await
        .unwrap();
    let id = stream_id(&res);
    let full = drain(&mut Sse::new(res)).await;
    let short = compact(&hub, &id, None).await;
    assert_eq!(short.len(), full.len() - 29);
}

#[tokio::test]
async fn responses_retrieve_compacts_what_follows_starting_after() {
    let (hub, _) = relay_with_fake_upstream().await;
    let (id, full) = streamed_response(&hub).await;
    let text = |events: &[(String, String)]| -> String {
        events
            .iter()
            .filter_map(|(_, d)| serde_json::from_str::<Value>(d).ok())
            .filter(|v| v["type"] == "response.output_text.delta")
            .map(|v| v["delta"].as_str().unwrap().to_owned())
            .collect()
    };
    let retrieve = |query: String| {
        let (hub, id) = (&hub, &id);
        async move {
            let res = hub
                .get_as(
                    &format!("/v1/responses/{id}?stream=true{query}"),
                    "relay-key",
                )
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
            drain(&mut Sse::new(res)).await
        }
    };
    // After event 10 (the 6th delta): the rest of the text in one delta, numbered as the last
    // one it merges, then the closing events, exactly as a full replay ends.
    let plain = retrieve("&starting_after=10".into()).await;
    let short = retrieve("&starting_after=10&compact=1".into()).await;
    assert!(short.len() < plain.len(), "{short:?}");
    assert_eq!(text(&short), text(&plain));
    assert_eq!(short.last(), plain.last());
    assert_eq!(text(&retrieve("&compact=1".into()).await), text(&full));
    let bad = hub
        .get_as(
            &format!("/v1/responses/{id}?stream=true&compact=maybe"),
            "relay-key",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}
