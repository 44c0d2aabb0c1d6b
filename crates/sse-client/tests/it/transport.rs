//! Methods, bodies and HTTP versions.

use std::time::Duration;

use http::Method;
use sse_client::{Backoff, EventSource, Item};

use crate::support::*;

#[tokio::test(start_paused = true)]
async fn post_body_and_headers_are_sent_on_every_attempt() {
    let server = TestServer::start(vec![
        Reply::stream(vec![send("id: c1\ndata: {\"x\":1}\n\n")]),
        Reply::stream(vec![send("data: [DONE]\n\n"), Step::Stall]),
    ])
    .await;
    let body = r#"{"model":"m","stream":true}"#;
    let mut es = post(server.url("/v1/chat/completions"))
        .bearer_auth("sk-test")
        .header("content-type", "application/json")
        .body(body)
        .backoff(Backoff {
            jitter: 0.0,
            ..Backoff::default()
        })
        .build()
        .unwrap();
    let items = collect(&mut es, 2).await;
    assert_eq!(data(&items), ["{\"x\":1}", "[DONE]"]);
    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    for s in &seen {
        assert_eq!(s.method, Method::POST);
        assert_eq!(s.body, body.as_bytes());
        assert_eq!(s.header("authorization"), Some("Bearer sk-test"));
        assert_eq!(s.header("content-type"), Some("application/json"));
        assert_eq!(s.header("accept"), Some("text/event-stream"));
    }
    assert_eq!(seen[1].header("last-event-id"), Some("c1"));
}

#[tokio::test(start_paused = true)]
async fn any_method_is_allowed() {
    let server =
        TestServer::start(vec![Reply::stream(vec![send("data: a\n\n"), Step::Stall])]).await;
    let method = Method::from_bytes(b"QUERY").unwrap();
    let mut es = EventSource::builder(method.clone(), server.url("/.well-known/mercure"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("match=*")
        .build()
        .unwrap();
    collect(&mut es, 1).await;
    let seen = server.seen();
    assert_eq!(seen[0].method, method);
    assert_eq!(seen[0].body, "match=*".as_bytes());
}

#[tokio::test(start_paused = true)]
async fn works_over_http2() {
    let server =
        TestServer::start(vec![Reply::stream(vec![send("data: a\n\n"), Step::Stall])]).await;
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let mut es = get(server.url("/")).client(client).build().unwrap();
    let items = collect(&mut es, 1).await;
    let Ok(Item::Open(open)) = &items[0] else {
        panic!()
    };
    assert_eq!(open.version, http::Version::HTTP_2);
    assert_eq!(data(&items), ["a"]);
    assert_eq!(server.seen()[0].header("accept"), Some("text/event-stream"));
    let _ = Duration::ZERO;
}
