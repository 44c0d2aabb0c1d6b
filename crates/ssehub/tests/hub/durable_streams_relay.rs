//! Relay answers read as Durable Streams at `/v1/stream/__relay/{id}`: catch-up, resume by
//! offset with long-poll, SSE tail to the close, writes refused, and who may read.

use reqwest::StatusCode;
use serde_json::Value;

use super::relay_support::{drain, fake_upstream, post_chat, relay_hub, stream_id, streaming};
use super::support::{Sse, TestServer, token};

fn ds_url(hub: &TestServer, id: &str, query: &str) -> String {
    hub.url(&format!("/v1/stream/__relay/{id}{query}"))
}

fn header<'a>(res: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    res.headers().get(name).map(|v| v.to_str().unwrap())
}

/// The `n` field the fake upstream numbers its chunks with.
fn numbers(chunks: &[Value]) -> Vec<u64> {
    chunks.iter().map(|c| c["n"].as_u64().unwrap()).collect()
}

/// Reads the whole answer by catch-up from the start; fails unless it is closed.
async fn read_closed(hub: &TestServer, id: &str, key: &str) -> Vec<Value> {
    let res = hub
        .client
        .get(ds_url(hub, id, "?offset=-1"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(header(&res, "content-type"), Some("application/json"));
    assert_eq!(header(&res, "stream-closed"), Some("true"));
    assert_eq!(header(&res, "stream-up-to-date"), Some("true"));
    res.json().await.unwrap()
}

#[tokio::test]
async fn a_running_answer_resumes_by_offset_with_long_poll_until_closed() {
    let (upstream, _) = fake_upstream().await;
    let hub = relay_hub(&upstream).await;
    // 30 chunks, 50 ms apart: read while it is generated.
    let res = post_chat(&hub, streaming("fake-long")).await;
    let id = stream_id(&res);
    let mut caller = Sse::new(res);
    caller.events(2).await;

    let first = hub
        .client
        .get(ds_url(&hub, &id, "?offset=-1"))
        .bearer_auth("relay-key")
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(header(&first, "stream-closed"), None);
    let mut offset = header(&first, "stream-next-offset").unwrap().to_owned();
    let mut got: Vec<Value> = first.json().await.unwrap();
    assert!(!got.is_empty() && got.len() < 30, "{}", got.len());

    // Resume from the offset, as a client after a reload, until the close.
    let mut polls = 0;
    loop {
        polls += 1;
        assert!(polls < 200, "the answer never closed");
        let res = hub
            .client
            .get(ds_url(
                &hub,
                &id,
                &format!("?offset={offset}&live=long-poll"),
            ))
            .bearer_auth("relay-key")
            .send()
            .await
            .unwrap();
        let closed = header(&res, "stream-closed") == Some("true");
        offset = header(&res, "stream-next-offset").unwrap().to_owned();
        match res.status() {
            StatusCode::OK => got.extend(res.json::<Vec<Value>>().await.unwrap()),
            StatusCode::NO_CONTENT => {}
            other => panic!("long-poll answered {other}"),
        }
        if closed {
            break;
        }
    }
    assert_eq!(numbers(&got), (0..30).collect::<Vec<_>>());
    assert_eq!(got, read_closed(&hub, &id, "relay-key").await);
    drain(&mut caller).await;

    // At the closed tail: nothing new, and closed.
    let res = hub
        .client
        .get(ds_url(
            &hub,
            &id,
            &format!("?offset={offset}&live=long-poll"),
        ))
        .bearer_auth("relay-key")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(&res, "stream-closed"), Some("true"));
}

#[tokio::test]
async fn an_sse_tail_delivers_every_chunk_and_ends_at_the_close() {
    let (upstream, _) = fake_upstream().await;
    let hub = relay_hub(&upstream).await;
    let res = post_chat(&hub, streaming("fake-long")).await;
    let id = stream_id(&res);
    let mut caller = Sse::new(res);
    caller.events(1).await;

    let res = hub
        .client
        .get(ds_url(&hub, &id, "?offset=-1&live=sse"))
        .bearer_auth("relay-key")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(header(&res, "content-type"), Some("text/event-stream"));
    let mut tail = Sse::new(res);
    let mut got = Vec::new();
    let mut last_control = Value::Null;
    for e in tail.until_end().await {
        match e.event.as_deref() {
            Some("data") => got.extend(serde_json::from_str::<Vec<Value>>(&e.data).unwrap()),
            Some("control") => last_control = serde_json::from_str(&e.data).unwrap(),
            other => panic!("unexpected event {other:?}"),
        }
    }
    assert_eq!(last_control["streamClosed"], true, "{last_control}");
    assert_eq!(numbers(&got), (0..30).collect::<Vec<_>>());
    assert_eq!(got, read_closed(&hub, &id, "relay-key").await);
    // The close's offset is where a HEAD says the answer ends.
    let head = hub
        .client
        .head(ds_url(&hub, &id, ""))
        .bearer_auth("relay-key")
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(header(&head, "stream-closed"), Some("true"));
    assert_eq!(
        header(&head, "stream-next-offset"),
        last_control["streamNextOffset"].as_str()
    );
    drain(&mut caller).await;
}

#[tokio::test]
async fn writes_are_refused_with_405_and_reads_follow_the_owner_rules() {
    let (upstream, _) = fake_upstream().await;
    let hub = relay_hub(&upstream).await;
    let res = post_chat(&hub, streaming("fake-model")).await;
    let id = stream_id(&res);
    drain(&mut Sse::new(res)).await;
    let all = read_closed(&hub, &id, "relay-key").await;
    assert_eq!(numbers(&all), (0..8).collect::<Vec<_>>());

    for method in ["PUT", "POST", "DELETE", "PATCH"] {
        let res = hub
            .client
            .request(method.parse().unwrap(), ds_url(&hub, &id, ""))
            .bearer_auth("relay-key")
            .header("content-type", "application/json")
            .body("[{}]")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED, "{method}");
        assert_eq!(header(&res, "allow"), Some("GET, HEAD, OPTIONS"));
        assert!(res.text().await.unwrap().contains("read-only"), "{method}");
    }
    assert_eq!(
        read_closed(&hub, &id, "relay-key").await,
        all,
        "nothing was written"
    );
    // The prefix itself cannot become an ordinary stream.
    let res = hub
        .client
        .put(hub.url("/v1/stream/__relay"))
        .bearer_auth(token(&["*"], &[]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);

    let get = |auth: Option<String>| {
        let mut req = hub.client.get(ds_url(&hub, &id, "?offset=-1"));
        if let Some(a) = auth {
            req = req.bearer_auth(a);
        }
        req.send()
    };
    assert_eq!(get(None).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    // A subscriber JWT granting the answer's topic reads it, as a Mercure subscriber would.
    let topic = format!("/v1/streams/{id}");
    let res = get(Some(token(&[], &[&topic]))).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Vec<Value>>().await.unwrap(), all);
    let res = get(Some(token(&[], &["/v1/streams/strm_other"])))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    // Unknown answers and malformed offsets.
    let res = hub
        .client
        .get(ds_url(&hub, "strm_0000", "?offset=-1"))
        .bearer_auth("relay-key")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let res = hub
        .client
        .get(ds_url(&hub, &id, "?offset=abc"))
        .bearer_auth("relay-key")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn another_key_is_told_the_answer_does_not_exist() {
    let (upstream, _) = fake_upstream().await;
    let hub = TestServer::start_with(|c| {
        super::relay_support::relay_config(c, &upstream);
        c.relay_api_keys = vec!["keyA".into(), "keyB".into()];
    })
    .await;
    let res = super::relay_support::post_chat_as(&hub, "keyA", streaming("fake-model")).await;
    let id = stream_id(&res);
    drain(&mut Sse::new(res)).await;
    let res = hub
        .client
        .get(ds_url(&hub, &id, "?offset=-1"))
        .bearer_auth("keyB")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(numbers(&read_closed(&hub, &id, "keyA").await).len(), 8);
}
