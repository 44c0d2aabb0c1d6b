//! The Responses API front (`/v1/responses`): events numbered by `sequence_number`, resume
//! with `starting_after` at every seam, background answers polled, several watchers, cancel,
//! a restart mid-answer, and OpenAI's error shapes.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::cluster_support::{Process, relay_flags};
use super::relay_support::{drain, fake_upstream, relay_with_fake_upstream, stream_id};
use super::support::{Sse, TestServer};

async fn create(hub: &TestServer, body: Value) -> reqwest::Response {
    hub.client
        .post(hub.url("/v1/responses"))
        .bearer_auth("relay-key")
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn streaming(model: &str) -> Value {
    json!({"model": model, "input": "hi", "stream": true})
}

/// `GET /v1/responses/{id}` with this query.
async fn retrieve(hub: &TestServer, id: &str, query: &str) -> reqwest::Response {
    hub.get_as(&format!("/v1/responses/{id}{query}"), "relay-key")
        .send()
        .await
        .unwrap()
}

fn parsed(events: &[(String, String)]) -> Vec<Value> {
    events
        .iter()
        .filter(|(_, d)| d != "[DONE]")
        .map(|(_, d)| serde_json::from_str(d).unwrap())
        .collect()
}

fn text_of(events: &[Value]) -> String {
    events
        .iter()
        .filter(|e| e["type"] == "response.output_text.delta")
        .map(|e| e["delta"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn a_streamed_response_has_the_sdk_events_in_order_numbered_from_one() {
    let (hub, seen) = relay_with_fake_upstream().await;
    let res = create(&hub, streaming("fake-stream")).await;
    assert_eq!(res.status(), 200);
    let id = stream_id(&res);
    let all = drain(&mut Sse::new(res)).await;
    let events = parsed(&all);
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds[..4],
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added"
        ]
    );
    assert_eq!(
        kinds[kinds.len() - 4..],
        [
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed"
        ]
    );
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["sequence_number"], i as u64 + 1, "{e}");
    }
    let text = text_of(&events);
    assert_eq!(text, (0..8).map(|i| format!("w{i} ")).collect::<String>());
    let done = &events[events.len() - 1]["response"];
    assert_eq!(done["id"], id.as_str());
    assert_eq!(done["status"], "completed");
    assert_eq!(done["output"][0]["content"][0]["text"], text.as_str());
    assert_eq!(all.last().unwrap().1, "[DONE]");
    // The upstream was asked in Chat Completions terms.
    let asked = seen.lock().unwrap().bodies[0].clone();
    assert_eq!(
        asked["messages"],
        json!([{"role": "user", "content": "hi"}])
    );
    assert_eq!(asked["stream"], true);
    // The object, once done, is the final response.
    let object: Value = retrieve(&hub, &id, "").await.json().await.unwrap();
    assert_eq!(&object, done);
}

#[tokio::test]
async fn resuming_with_starting_after_at_every_seam_gives_exactly_the_rest() {
    let (hub, _) = relay_with_fake_upstream().await;
    let res = create(&hub, streaming("fake-stream")).await;
    let id = stream_id(&res);
    let all = drain(&mut Sse::new(res)).await;
    let numbered = all.len() - 1; // every event but [DONE] has a sequence number
    // Before the first event (absent, or 0), then after each, up to the one before the end.
    for (query, skip) in [
        ("?stream=true".to_owned(), 0),
        ("?stream=true&starting_after=0".to_owned(), 0),
    ]
    .into_iter()
    .chain((1..numbered).map(|n| (format!("?stream=true&starting_after={n}"), n)))
    {
        let res = retrieve(&hub, &id, &query).await;
        assert_eq!(res.status(), 200, "{query}");
        let got = drain(&mut Sse::new(res)).await;
        assert_eq!(got, all[skip..], "{query}");
    }
    // After the end: nothing follows.
    let res = retrieve(
        &hub,
        &id,
        &format!("?stream=true&starting_after={numbered}"),
    )
    .await;
    assert_eq!(res.status(), 204);
}

#[tokio::test]
async fn a_dropped_background_stream_resumes_mid_answer_live_with_no_gap_or_repeat() {
    let (hub, seen) = relay_with_fake_upstream().await;
    let mut body = streaming("fake-long");
    body["background"] = json!(true);
    let res = create(&hub, body).await;
    let id = stream_id(&res);
    let mut first = Sse::new(res);
    let head: Vec<(String, String)> = first
        .events(6)
        .await
        .into_iter()
        .map(|e| (e.id.unwrap_or_default(), e.data))
        .collect();
    drop(first);
    // Two watchers resume from where the first connection stopped, while it is generated.
    let last: Value = serde_json::from_str(&head[5].1).unwrap();
    let n = last["sequence_number"].as_u64().unwrap();
    let query = format!("?stream=true&starting_after={n}");
    let mut a = Sse::new(retrieve(&hub, &id, &query).await);
    let mut b = Sse::new(retrieve(&hub, &id, &query).await);
    let (rest_a, rest_b) = (drain(&mut a).await, drain(&mut b).await);
    assert_eq!(rest_a, rest_b);
    let whole: Vec<_> = head.iter().chain(&rest_a).cloned().collect();
    let events = parsed(&whole);
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["sequence_number"], i as u64 + 1, "gap or repeat at {e}");
    }
    assert_eq!(events.last().unwrap()["type"], "response.completed");
    assert_eq!(
        seen.lock().unwrap().finished,
        1,
        "the upstream was asked once"
    );
}

#[tokio::test]
async fn starting_after_beyond_what_is_recorded_waits_for_the_live_events_past_it() {
    let (hub, _) = relay_with_fake_upstream().await;
    let res = create(&hub, streaming("fake-long")).await;
    let id = stream_id(&res);
    let all = drain(&mut Sse::new(retrieve(&hub, &id, "?stream=true").await)).await;
    drop(res);
    // A second stream, resumed far ahead of its generation.
    let res = create(&hub, streaming("fake-long")).await;
    let id2 = stream_id(&res);
    let mut early = Sse::new(retrieve(&hub, &id2, "?stream=true&starting_after=20").await);
    let got = parsed(&drain(&mut early).await);
    assert_eq!(got[0]["sequence_number"], 21);
    assert_eq!(got.len(), all.len() - 1 - 20);
    drop(res);
}

#[tokio::test]
async fn a_background_request_returns_at_once_and_polling_shows_it_progress_to_the_end() {
    let (hub, _) = relay_with_fake_upstream().await;
    let res = create(
        &hub,
        json!({"model": "fake-long", "input": "hi", "background": true}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let queued: Value = res.json().await.unwrap();
    assert_eq!(queued["status"], "queued");
    assert_eq!(queued["object"], "response");
    let id = queued["id"].as_str().unwrap().to_owned();
    let mut seen_partial = false;
    let deadline = Instant::now() + Duration::from_secs(20);
    let done = loop {
        let r: Value = retrieve(&hub, &id, "").await.json().await.unwrap();
        if r["status"] != "in_progress" {
            break r;
        }
        seen_partial |= r["output"][0]["content"][0]["text"]
            .as_str()
            .is_some_and(|t| !t.is_empty());
        assert!(Instant::now() < deadline, "never finished: {r}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(done["status"], "completed");
    assert!(seen_partial, "polling never saw the answer in progress");
    assert_eq!(
        done["output"][0]["content"][0]["text"],
        (0..30).map(|i| format!("w{i} ")).collect::<String>()
    );
    // A plain request waits and gets the same object shape, completed.
    let whole: Value = create(&hub, json!({"model": "fake-stream", "input": "hi"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(whole["status"], "completed");
    assert_eq!(
        whole["output"][0]["content"][0]["text"],
        "w0 w1 w2 w3 w4 w5 w6 w7 "
    );
}

#[tokio::test]
async fn cancel_drops_the_upstream_request_and_ends_every_watcher_with_the_cancelled_response() {
    let (hub, seen) = relay_with_fake_upstream().await;
    let res = create(&hub, streaming("fake-slow")).await;
    let id = stream_id(&res);
    let mut caller = Sse::new(res);
    caller.events(5).await;
    let mut watcher = Sse::new(retrieve(&hub, &id, "?stream=true&starting_after=2").await);
    watcher.events(2).await;
    let asked = Instant::now();
    let res = hub
        .client
        .post(hub.url(&format!("/v1/responses/{id}/cancel")))
        .bearer_auth("relay-key")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let object: Value = res.json().await.unwrap();
    assert_eq!(object["status"], "cancelled", "{object}");
    let dropped = seen
        .lock()
        .unwrap()
        .dropped_at
        .expect("upstream request still open");
    assert!(dropped.duration_since(asked) < Duration::from_secs(1));
    for sse in [&mut caller, &mut watcher] {
        let rest = parsed(&drain(sse).await);
        let last = rest.last().unwrap();
        assert_eq!(last["type"], "response.cancelled");
        assert_eq!(last["response"]["status"], "cancelled");
        assert_eq!(rest[rest.len() - 2]["item"]["status"], "incomplete");
    }
}

#[tokio::test]
async fn bad_input_gets_openai_errors_naming_the_field_and_upstream_errors_keep_status_and_body() {
    let (hub, _) = relay_with_fake_upstream().await;
    for (body, field) in [
        (json!({"input": "hi"}), "model"),
        (json!({"model": "m"}), "input"),
        (
            json!({"model": "m", "input": "hi", "stream": "yes"}),
            "stream",
        ),
        (
            json!({"model": "m", "input": "hi", "tools": [{"type": "function"}]}),
            "tools",
        ),
    ] {
        let res = create(&hub, body.clone()).await;
        assert_eq!(res.status(), 400, "{body}");
        let err: Value = res.json().await.unwrap();
        assert_eq!(err["error"]["type"], "invalid_request_error");
        assert!(
            err["error"]["message"].as_str().unwrap().starts_with(field),
            "{err}"
        );
    }
    let res = retrieve(&hub, "strm_0123", "").await;
    assert_eq!(res.status(), 404);
    let err: Value = res.json().await.unwrap();
    assert_eq!(err["error"]["code"], "response_not_found");
    let res = retrieve(&hub, "strm_0123", "?stream=true&starting_after=x").await;
    assert_eq!(res.status(), 400);
    let res = create(&hub, streaming("fake-error")).await;
    assert_eq!(res.status(), 429);
    let err: Value = res.json().await.unwrap();
    assert_eq!(err["error"]["code"], "rate_limit_exceeded");
    // A chat stream is not a response.
    let res =
        super::relay_support::post_chat(&hub, super::relay_support::streaming("fake-stream")).await;
    let chat = stream_id(&res);
    drop(res);
    assert_eq!(retrieve(&hub, &chat, "").await.status(), 404);
}

/// An answer a `kill -9` cut short ends, at the first look after the restart, with
/// `response.failed` numbered after what was recorded, its item closed: a clear state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_mid_answer_the_response_ends_failed_and_resumes_cleanly() {
    let (upstream, _) = fake_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let flags = relay_flags(&upstream);
    let mut a = Process::spawn(dir.path(), &flags);
    let res = a
        .client
        .post(a.url("/v1/responses"))
        .bearer_auth("relay-key")
        .json(&streaming("fake-slow"))
        .send()
        .await
        .unwrap();
    let id = stream_id(&res);
    let head = Sse::new(res).events(6).await;
    assert_eq!(
        head.last().unwrap().id.as_deref(),
        Some(&*format!("{id}-6"))
    );
    a.kill();
    let a = Process::spawn(dir.path(), &flags);
    let res = a
        .client
        .get(a.url(&format!("/v1/responses/{id}?stream=true&starting_after=6")))
        .bearer_auth("relay-key")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let rest = parsed(&drain(&mut Sse::new(res)).await);
    // A delta or two may have been recorded between the sixth event and the kill.
    let kinds: Vec<&str> = rest.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds[kinds.len() - 4..],
        [
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.failed"
        ]
    );
    for (i, e) in rest.iter().enumerate() {
        assert_eq!(e["sequence_number"], 7 + i as u64);
    }
    let failed = &rest[rest.len() - 1]["response"];
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["error"]["code"], "stream_interrupted");
    let object: Value = a
        .client
        .get(a.url(&format!("/v1/responses/{id}")))
        .bearer_auth("relay-key")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(object["status"], "failed");
}
