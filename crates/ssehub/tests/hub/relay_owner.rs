//! Who may watch and cancel a relay stream: the key that started it, across restarts; on an
//! open relay, whoever holds its unguessable id.

use serde_json::{Value, json};

use super::relay_support::{
    cancel_as, drain, fake_upstream, post_chat_as, relay_config, stream_id, streaming, watch_as,
};
use super::support::{Sse, TestServer, token};

/// Two keys, `keyA` and `keyB`, in front of `upstream`.
fn two_keys(c: &mut ssehub::Config, upstream: &str) {
    relay_config(c, upstream);
    c.relay_api_keys = vec!["keyA".into(), "keyB".into()];
}

/// Asserts the answer is OpenAI's 404 for an unknown stream, saying nothing of who owns it.
async fn assert_not_found(res: reqwest::Response) {
    assert_eq!(res.status(), 404);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error"]["code"], "stream_not_found", "{v}");
    assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
}

/// Regression (issue 15): with `--relay-api-keys keyA,keyB`, keyB could watch and cancel
/// keyA's running answer.
#[tokio::test]
async fn another_key_can_neither_watch_nor_cancel_a_stream_even_after_a_restart() {
    let (upstream, _) = fake_upstream().await;
    let hub = TestServer::start_with(|c| two_keys(c, &upstream)).await;
    let res = post_chat_as(&hub, "keyA", streaming("fake-slow")).await;
    let id = stream_id(&res);
    let mut caller = Sse::new(res);
    caller.events(1).await;

    assert_not_found(watch_as(&hub, "keyB", &id).send().await.unwrap()).await;
    assert_not_found(cancel_as(&hub, "keyB", &id).await).await;
    // The owner still can, and the stream was not touched by keyB's attempt.
    let mut owner = Sse::new(watch_as(&hub, "keyA", &id).send().await.unwrap());
    assert_eq!(owner.next_event().await.id, Some(format!("{id}-1")));

    // The marker records a hash bound to the stream, never the key.
    let marker_topic = format!("/v1/streams/{id}/started");
    let mut marker = hub
        .subscribe_as(
            &format!("topic={marker_topic}&lastEventID=earliest"),
            &token(&[], &[&marker_topic]),
        )
        .await;
    let data = marker.next_event().await.data;
    assert!(!data.contains("keyA"), "{data}");
    let recorded: Value = serde_json::from_str(&data).unwrap();
    assert!(
        recorded["owner"].as_str().unwrap().starts_with("sha256:"),
        "{data}"
    );
    drop((caller, owner, marker));

    let hub = hub.restart(|c| two_keys(c, &upstream)).await;
    assert_not_found(watch_as(&hub, "keyB", &id).send().await.unwrap()).await;
    assert_not_found(cancel_as(&hub, "keyB", &id).await).await;
    let all = drain(&mut Sse::new(
        watch_as(&hub, "keyA", &id).send().await.unwrap(),
    ))
    .await;
    assert_eq!(all.last().unwrap().1, "[DONE]");
    let res = cancel_as(&hub, "keyA", &id).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["cancelled"], false);
}

/// Regression (issue 15): on an open relay the stream id is the only thing between a stranger
/// and an answer, and it was a UUIDv7 whose leading digits are the time it was made.
#[tokio::test]
async fn open_relay_stream_ids_are_random_capabilities() {
    let hub = TestServer::start_with(|c| {
        c.simulator.tokens_per_second = 2000.0;
        c.simulator.first_token_delay = std::time::Duration::from_millis(1);
    })
    .await;
    let body = json!({"model": "ssehub-simulator", "stream": true, "max_tokens": 3,
                      "messages": [{"role": "user", "content": "hi"}]});
    let mut ids = Vec::new();
    for _ in 0..2 {
        let res = hub
            .client
            .post(hub.url("/v1/chat/completions"))
            .json(&body)
            .send()
            .await
            .unwrap();
        ids.push(stream_id(&res));
        drain(&mut Sse::new(res)).await;
    }
    for id in &ids {
        let hex = id.strip_prefix("strm_").unwrap();
        assert_eq!(hex.len(), 32, "128 bits: {id}");
        assert!(hex.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
    }
    // A time-ordered id shares its leading digits with the next one made; random ids share
    // 8 leading hex digits once in 4 billion.
    assert_ne!(ids[0][..13], ids[1][..13], "{ids:?}");
    // Knowing the id is enough on an open relay: that is what makes it a capability.
    let res = hub.get(&format!("/v1/streams/{}", ids[0])).await;
    assert_eq!(res.status(), 200);
}
