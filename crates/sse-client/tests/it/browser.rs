//! The rules a browser's EventSource follows.

use std::time::Duration;

use sse_client::{Backoff, EndReason, Error, Item};

use crate::support::*;

fn quick() -> Backoff {
    Backoff {
        initial: Duration::from_secs(1),
        max: Duration::from_secs(30),
        jitter: 0.0,
    }
}

async fn sends_accept_and_last_event_id_only_on_reconnect(via: Via) {
    let server = TestServer::start(vec![
        Reply::stream(vec![send("id: 1\ndata: a\n\n")]),
        Reply::stream(vec![send("data: b\n\n"), Step::Stall]),
    ])
    .await;
    let mut es = get_via(via, server.url("/events"))
        .backoff(quick())
        .build()
        .unwrap();
    let items = collect(&mut es, 2).await;
    assert_eq!(
        kinds(&items),
        [
            "open",
            "event message:a:1",
            "reconnect ended",
            "open",
            "event message:b:1"
        ]
    );
    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    for s in &seen {
        assert_eq!(s.header("accept"), Some("text/event-stream"));
        // Proxies must not serve a cached copy of a live stream.
        assert_eq!(s.header("cache-control"), Some("no-cache"));
        assert_eq!(s.path, "/events");
    }
    assert_eq!(seen[0].header("last-event-id"), None);
    assert_eq!(seen[1].header("last-event-id"), Some("1"));
}

async fn initial_last_event_id_is_sent_on_the_first_connection(via: Via) {
    let server =
        TestServer::start(vec![Reply::stream(vec![send("data: a\n\n"), Step::Stall])]).await;
    let mut es = get_via(via, server.url("/"))
        .last_event_id("urn:uuid:42")
        .build()
        .unwrap();
    let items = collect(&mut es, 1).await;
    assert_eq!(kinds(&items), ["open", "event message:a:urn:uuid:42"]);
    assert_eq!(
        server.seen()[0].header("last-event-id"),
        Some("urn:uuid:42")
    );
}

async fn last_event_id_given_as_a_header_is_not_sent_twice(via: Via) {
    let server = TestServer::start(vec![
        Reply::stream(vec![send("id: 2\ndata: a\n\n")]),
        Reply::stream(vec![Step::Stall]),
    ])
    .await;
    let mut es = get_via(via, server.url("/"))
        .header("Last-Event-ID", "1")
        .backoff(quick())
        .build()
        .unwrap();
    until_opens(&mut es, 2).await;
    let seen = server.seen();
    assert_eq!(seen[0].headers.get_all("last-event-id").iter().count(), 1);
    assert_eq!(seen[0].header("last-event-id"), Some("1"));
    assert_eq!(seen[1].header("last-event-id"), Some("2"));
}

async fn empty_id_resets_and_no_last_event_id_is_sent(via: Via) {
    let server = TestServer::start(vec![
        Reply::stream(vec![send("id: 1\ndata: a\n\nid\ndata: b\n\n")]),
        Reply::stream(vec![send("data: c\n\n"), Step::Stall]),
    ])
    .await;
    let mut es = get_via(via, server.url("/"))
        .backoff(quick())
        .build()
        .unwrap();
    let items = collect(&mut es, 3).await;
    assert_eq!(data(&items), ["a", "b", "c"]);
    assert_eq!(server.seen()[1].header("last-event-id"), None);
}

async fn waits_the_retry_the_server_asked_for(via: Via) {
    let server = TestServer::start(vec![
        Reply::stream(vec![send("retry: 10000\ndata: a\n\n")]),
        Reply::stream(vec![send("data: b\n\n"), Step::Stall]),
    ])
    .await;
    let mut es = get_via(via, server.url("/")).build().unwrap();
    let items = collect(&mut es, 2).await;
    let Ok(Item::Reconnecting(r)) = &items[2] else {
        panic!("{:?}", kinds(&items))
    };
    // Default jitter lengthens by at most 20 %, and never shortens.
    assert!(
        r.delay >= Duration::from_secs(10) && r.delay <= Duration::from_secs(12),
        "{:?}",
        r.delay
    );
    assert_eq!(es.retry(), Some(Duration::from_secs(10)));
    let seen = server.seen();
    let gap = seen[1].at - seen[0].at;
    assert!(
        gap >= Duration::from_secs(10) && gap < Duration::from_secs(13),
        "{gap:?}"
    );
}

async fn no_content_stops_without_reconnecting(via: Via) {
    let server = TestServer::start(vec![Reply::status(204, "")]).await;
    let mut es = get_via(via, server.url("/"))
        .backoff(quick())
        .build()
        .unwrap();
    let items = drain(&mut es).await;
    assert!(items.is_empty(), "{:?}", kinds(&items));
    assert_eq!(es.end_reason(), Some(EndReason::NoContent));
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(server.seen().len(), 1);
}

async fn server_error_fails_without_retrying_by_default(via: Via) {
    let server = TestServer::start(vec![Reply::status(500, "boom")]).await;
    let mut es = get_via(via, server.url("/"))
        .backoff(quick())
        .build()
        .unwrap();
    let items = drain(&mut es).await;
    assert_eq!(kinds(&items), ["error status"]);
    let Err(Error::Status { status, body, .. }) = &items[0] else {
        unreachable!()
    };
    assert_eq!((status.as_u16(), body.as_str()), (500, "boom"));
    assert_eq!(es.end_reason(), Some(EndReason::Failed));
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(server.seen().len(), 1);
}

async fn not_found_fails_with_the_body_the_server_explained_itself_in(via: Via) {
    let server =
        TestServer::start(vec![Reply::status(404, "{\"error\": \"no such stream\"}")]).await;
    let mut es = get_via(via, server.url("/nope")).build().unwrap();
    let items = drain(&mut es).await;
    let [Err(e)] = &items[..] else {
        panic!("{:?}", kinds(&items))
    };
    assert_eq!(
        e.to_string(),
        "server answered 404 Not Found, expected 200 OK: {\"error\": \"no such stream\"}"
    );
    assert_eq!(server.seen().len(), 1);
}

async fn wrong_content_type_fails_without_retrying(via: Via) {
    let server = TestServer::start(vec![
        Reply::stream(vec![send("data: a\n\n")]).header("content-type", "text/plain"),
    ])
    .await;
    let mut es = get_via(via, server.url("/"))
        .backoff(quick())
        .build()
        .unwrap();
    let items = drain(&mut es).await;
    assert_eq!(kinds(&items), ["error content-type"]);
    let Err(Error::ContentType { content_type }) = &items[0] else {
        unreachable!()
    };
    assert_eq!(content_type.as_deref(), Some("text/plain"));
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(server.seen().len(), 1);
}

async fn charset_parameter_is_accepted(via: Via) {
    let server = TestServer::start(vec![
        Reply::stream(vec![send("data: a\n\n"), Step::Stall])
            .header("content-type", "text/event-stream; charset=utf-8"),
    ])
    .await;
    let mut es = get_via(via, server.url("/")).build().unwrap();
    assert_eq!(data(&collect(&mut es, 1).await), ["a"]);
}

async fn follows_redirects_and_reconnects_to_the_original_url(via: Via) {
    let server = TestServer::start(vec![
        Reply::status(307, "").header("location", "/moved"),
        Reply::stream(vec![send("id: 5\ndata: a\n\n")]),
        Reply::status(307, "").header("location", "/moved"),
        Reply::stream(vec![send("data: b\n\n"), Step::Stall]),
    ])
    .await;
    let mut es = get_via(via, server.url("/start"))
        .bearer_auth("t0k3n")
        .backoff(quick())
        .build()
        .unwrap();
    let items = collect(&mut es, 2).await;
    assert_eq!(data(&items), ["a", "b"]);
    let Ok(Item::Open(open)) = &items[0] else {
        panic!()
    };
    assert_eq!(open.url.path(), "/moved");
    let seen = server.seen();
    let paths: Vec<&str> = seen.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(paths, ["/start", "/moved", "/start", "/moved"]);
    // Same origin: the redirected request keeps the headers.
    assert_eq!(seen[1].header("authorization"), Some("Bearer t0k3n"));
    assert_eq!(seen[1].header("accept"), Some("text/event-stream"));
    assert_eq!(seen[3].header("last-event-id"), Some("5"));
}

async fn error_body_is_kept_up_to_4_kib(via: Via) {
    let big: &'static str = Box::leak("e".repeat(10_000).into_boxed_str());
    let server = TestServer::start(vec![Reply::status(400, big)]).await;
    let mut es = get_via(via, server.url("/")).build().unwrap();
    let items = drain(&mut es).await;
    let [Err(Error::Status { body, .. })] = &items[..] else {
        panic!("{:?}", kinds(&items))
    };
    assert_eq!(body.len(), 4096);
}

async fn accept_cannot_be_overridden(via: Via) {
    let server = TestServer::start(vec![Reply::stream(vec![Step::Stall])]).await;
    let mut es = get_via(via, server.url("/"))
        .header("accept", "application/json")
        .build()
        .unwrap();
    until_opens(&mut es, 1).await;
    let seen = server.seen();
    let accepts: Vec<_> = seen[0].headers.get_all("accept").iter().collect();
    assert_eq!(accepts, ["text/event-stream"]);
}

each_transport!(
    sends_accept_and_last_event_id_only_on_reconnect,
    initial_last_event_id_is_sent_on_the_first_connection,
    last_event_id_given_as_a_header_is_not_sent_twice,
    empty_id_resets_and_no_last_event_id_is_sent,
    waits_the_retry_the_server_asked_for,
    no_content_stops_without_reconnecting,
    server_error_fails_without_retrying_by_default,
    not_found_fails_with_the_body_the_server_explained_itself_in,
    wrong_content_type_fails_without_retrying,
    charset_parameter_is_accepted,
    follows_redirects_and_reconnects_to_the_original_url,
    error_body_is_kept_up_to_4_kib,
    accept_cannot_be_overridden,
);
