//! What goes beyond the browser: backoff, limits, idle timeout, close,
//! one-shot streams, retried 5xx.

use std::time::Duration;

use futures_util::StreamExt;
use sse_client::{Backoff, EndReason, Error, EventSource, Item};

use crate::support::*;

fn backoff(initial_ms: u64) -> Backoff {
    Backoff {
        initial: Duration::from_millis(initial_ms),
        max: Duration::from_secs(30),
        jitter: 0.0,
    }
}

fn delays(items: &[Result<Item, Error>]) -> Vec<u128> {
    items
        .iter()
        .filter_map(|i| match i {
            Ok(Item::Reconnecting(r)) => Some(r.delay.as_millis()),
            _ => None,
        })
        .collect()
}

/// A port with nothing listening on it.
async fn refused_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/")
}

async fn backoff_doubles_while_connections_end_at_once(via: Via) {
    let server = TestServer::start(vec![Reply::stream(vec![send("data: a\n\n")])]).await;
    let mut es = get_via(via, server.url("/"))
        .backoff(backoff(1000))
        .build()
        .unwrap();
    let items = collect(&mut es, 4).await;
    assert_eq!(delays(&items), [1000, 2000, 4000]);
    let seen = server.seen();
    let gaps: Vec<u64> = seen
        .windows(2)
        .map(|w| (w[1].at - w[0].at).as_secs())
        .collect();
    assert_eq!(gaps, [1, 2, 4]);
}

async fn backoff_resets_only_after_a_healthy_period(via: Via) {
    let server = TestServer::start(vec![
        Reply::stream(vec![send("data: a\n\n")]),
        Reply::stream(vec![send("data: b\n\n")]),
        // Open for 6 s: longer than the 5 s healthy period.
        Reply::stream(vec![
            send("data: c\n\n"),
            Step::Sleep(Duration::from_secs(6)),
        ]),
        Reply::stream(vec![send("data: d\n\n")]),
        Reply::stream(vec![send("data: e\n\n"), Step::Stall]),
    ])
    .await;
    let mut es = get_via(via, server.url("/"))
        .backoff(backoff(1000))
        .build()
        .unwrap();
    let items = collect(&mut es, 5).await;
    assert_eq!(delays(&items), [1000, 2000, 1000, 2000]);
    let attempts: Vec<u32> = items
        .iter()
        .filter_map(|i| match i {
            Ok(Item::Reconnecting(r)) => Some(r.attempt),
            _ => None,
        })
        .collect();
    assert_eq!(attempts, [1, 2, 1, 2]);
}

async fn gives_up_after_the_maximum_number_of_attempts(via: Via) {
    let url = refused_url().await;
    let mut es = get_via(via, &url)
        .backoff(backoff(100))
        .max_retries(3)
        .build()
        .unwrap();
    let items = drain(&mut es).await;
    assert_eq!(
        kinds(&items),
        [
            "reconnect request",
            "reconnect request",
            "reconnect request",
            "error exhausted"
        ]
    );
    assert_eq!(delays(&items), [100, 200, 400]);
    let Err(Error::RetriesExhausted { attempts, last }) = &items[3] else {
        unreachable!()
    };
    assert_eq!(*attempts, 3);
    assert!(matches!(
        last.as_deref(),
        Some(Error::Request(_) | Error::Http1(_))
    ));
}

async fn network_errors_end_the_stream_when_not_retried(via: Via) {
    let url = refused_url().await;
    let mut es = get_via(via, &url)
        .retry_network_errors(false)
        .build()
        .unwrap();
    let items = drain(&mut es).await;
    assert_eq!(kinds(&items), ["error request"]);
}

async fn server_errors_are_retried_when_asked(via: Via) {
    let server = TestServer::start(vec![
        Reply::status(503, "busy"),
        Reply::status(502, "bad gateway"),
        Reply::stream(vec![send("data: a\n\n"), Step::Stall]),
    ])
    .await;
    let mut es = get_via(via, server.url("/"))
        .backoff(backoff(500))
        .retry_server_errors(true)
        .build()
        .unwrap();
    let items = collect(&mut es, 1).await;
    assert_eq!(
        kinds(&items),
        [
            "reconnect status",
            "reconnect status",
            "open",
            "event message:a:"
        ]
    );
    assert_eq!(delays(&items), [500, 1000]);
}

async fn client_errors_are_not_retried_even_when_server_errors_are(via: Via) {
    let server = TestServer::start(vec![Reply::status(401, "bad token")]).await;
    let mut es = get_via(via, server.url("/"))
        .retry_server_errors(true)
        .build()
        .unwrap();
    assert_eq!(kinds(&drain(&mut es).await), ["error status"]);
    assert_eq!(server.seen().len(), 1);
}

async fn silent_connection_is_dropped_after_the_idle_timeout(via: Via) {
    let server = TestServer::start(vec![
        Reply::stream(vec![send("id: 1\ndata: a\n\n"), Step::Stall]),
        Reply::stream(vec![send("data: b\n\n"), Step::Stall]),
    ])
    .await;
    let mut es = get_via(via, server.url("/"))
        .idle_timeout(Duration::from_secs(30))
        .backoff(backoff(1000))
        .build()
        .unwrap();
    let items = collect(&mut es, 2).await;
    assert_eq!(
        kinds(&items),
        [
            "open",
            "event message:a:1",
            "reconnect idle",
            "open",
            "event message:b:1"
        ]
    );
    let seen = server.seen();
    assert_eq!(seen[1].header("last-event-id"), Some("1"));
    let gap = seen[1].at - seen[0].at;
    assert!(
        gap >= Duration::from_secs(31) && gap < Duration::from_secs(33),
        "{gap:?}"
    );
}

async fn heartbeats_keep_an_idle_connection_alive(via: Via) {
    let mut body = vec![send("data: a\n\n")];
    for _ in 0..10 {
        body.push(Step::Sleep(Duration::from_secs(20)));
        body.push(send(":\n"));
    }
    body.push(send("data: b\n\n"));
    body.push(Step::Stall);
    let server = TestServer::start(vec![Reply::stream(body)]).await;
    let mut es = get_via(via, server.url("/"))
        .idle_timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let items = collect(&mut es, 2).await;
    assert_eq!(
        kinds(&items),
        ["open", "event message:a:", "event message:b:"]
    );
    assert_eq!(server.seen().len(), 1);
}

async fn one_shot_stream_ends_when_the_server_closes_after_a_good_event(via: Via) {
    let server =
        TestServer::start(vec![Reply::stream(vec![send("id: 9\ndata: [DONE]\n\n")])]).await;
    let mut es = get_via(via, server.url("/"))
        .reconnect_on_end(false)
        .build()
        .unwrap();
    let items = drain(&mut es).await;
    assert_eq!(kinds(&items), ["open", "event message:[DONE]:9"]);
    assert_eq!(es.end_reason(), Some(EndReason::StreamEnded));
    assert_eq!(es.last_event_id(), "9");
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(server.seen().len(), 1);
}

async fn close_stops_the_stream_and_cancels_reconnection(via: Via) {
    let server = TestServer::start(vec![Reply::stream(vec![send("data: a\n\n")])]).await;
    let mut es = get_via(via, server.url("/"))
        .backoff(backoff(1000))
        .build()
        .unwrap();
    let items = collect(&mut es, 1).await;
    assert_eq!(data(&items), ["a"]);
    // The server ended the stream: a reconnection is now pending.
    assert!(matches!(es.next().await, Some(Ok(Item::Reconnecting(_)))));
    es.close();
    assert!(es.next().await.is_none());
    assert_eq!(es.end_reason(), Some(EndReason::Closed));
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(server.seen().len(), 1);
}

async fn close_while_streaming_drops_the_connection(via: Via) {
    let server =
        TestServer::start(vec![Reply::stream(vec![send("data: a\n\n"), Step::Stall])]).await;
    let mut es = get_via(via, server.url("/")).build().unwrap();
    collect(&mut es, 1).await;
    es.close();
    assert!(es.next().await.is_none());
    assert!(es.next().await.is_none());
}

/// Real time here: with paused time, a server response that sleeps on a
/// pooled (reused) connection never wakes, a test artifact; the reuse
/// itself must work.
#[tokio::test]
async fn reconnects_over_a_reused_pooled_connection() {
    let server = TestServer::start(vec![
        Reply::stream(vec![send("data: a\n\n")]),
        Reply::stream(vec![
            send("data: b\n\n"),
            Step::Sleep(Duration::from_millis(50)),
            send("data: c\n\n"),
            Step::Stall,
        ]),
    ])
    .await;
    let mut es = EventSource::get(server.url("/"))
        .backoff(backoff(10))
        .build()
        .unwrap();
    let items = collect(&mut es, 3).await;
    assert_eq!(data(&items), ["a", "b", "c"]);
    assert_eq!(server.seen().len(), 2);
}

async fn dropped_connection_is_retried_with_the_last_event_id(via: Via) {
    let server = TestServer::start(vec![
        Reply::stream(vec![
            send("id: 3\ndata: a\n\ndata: half"),
            Step::Sleep(Duration::from_millis(10)),
            Step::Fail,
        ]),
        Reply::stream(vec![send("data: b\n\n"), Step::Stall]),
    ])
    .await;
    let mut es = get_via(via, server.url("/"))
        .backoff(backoff(1000))
        .build()
        .unwrap();
    let items = collect(&mut es, 2).await;
    assert_eq!(
        kinds(&items),
        [
            "open",
            "event message:a:3",
            "reconnect request",
            "open",
            "event message:b:3"
        ]
    );
    assert_eq!(server.seen()[1].header("last-event-id"), Some("3"));
}

async fn dropped_connection_fails_a_one_shot_stream(via: Via) {
    let server = TestServer::start(vec![Reply::stream(vec![
        send("data: a\n\n"),
        Step::Sleep(Duration::from_millis(10)),
        Step::Fail,
    ])])
    .await;
    let mut es = get_via(via, server.url("/"))
        .no_reconnect()
        .build()
        .unwrap();
    let items = drain(&mut es).await;
    assert_eq!(kinds(&items), ["open", "event message:a:", "error request"]);
    assert_eq!(server.seen().len(), 1);
}

async fn idle_timeout_also_bounds_the_wait_for_the_response_head(via: Via) {
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            held.push(listener.accept().await.unwrap().0);
        }
    });
    let mut es = get_via(via, &url)
        .idle_timeout(Duration::from_secs(30))
        .backoff(backoff(1000))
        .max_retries(1)
        .build()
        .unwrap();
    let items = drain(&mut es).await;
    assert_eq!(kinds(&items), ["reconnect idle", "error exhausted"]);
    silent.abort();
}

each_transport!(
    backoff_doubles_while_connections_end_at_once,
    backoff_resets_only_after_a_healthy_period,
    gives_up_after_the_maximum_number_of_attempts,
    network_errors_end_the_stream_when_not_retried,
    server_errors_are_retried_when_asked,
    client_errors_are_not_retried_even_when_server_errors_are,
    silent_connection_is_dropped_after_the_idle_timeout,
    heartbeats_keep_an_idle_connection_alive,
    one_shot_stream_ends_when_the_server_closes_after_a_good_event,
    close_stops_the_stream_and_cancels_reconnection,
    close_while_streaming_drops_the_connection,
    dropped_connection_is_retried_with_the_last_event_id,
    dropped_connection_fails_a_one_shot_stream,
    idle_timeout_also_bounds_the_wait_for_the_response_head,
);
