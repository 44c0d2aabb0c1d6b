//! Byte-level misbehaviour: the client must deliver exactly the events a
//! browser would, however the bytes are cut.

use std::time::Duration;

use sse_client::Backoff;

use crate::support::*;

fn quick() -> Backoff {
    Backoff {
        initial: Duration::from_secs(1),
        max: Duration::from_secs(30),
        jitter: 0.0,
    }
}

/// Every byte its own write, with a pause so that nothing coalesces.
fn drip(bytes: &[u8]) -> Vec<Step> {
    let mut steps = Vec::new();
    for b in bytes {
        steps.push(Step::Send(vec![*b]));
        steps.push(Step::Sleep(Duration::from_millis(1)));
    }
    steps.push(Step::Stall);
    steps
}

async fn byte_at_a_time_stream_with_bom_crlf_and_utf8(via: Via) {
    let stream = "\u{feff}id: 1\r\nevent: greet\r\ndata: h\u{e9}llo \u{1F600}\r\ndata: second\r\n\r\n: ping\r\ndata: two\r\r";
    let server = TestServer::start(vec![Reply::stream(drip(stream.as_bytes()))]).await;
    let mut es = get_via(via, server.url("/")).build().unwrap();
    let items = collect(&mut es, 2).await;
    assert_eq!(
        kinds(&items),
        [
            "open",
            "event greet:h\u{e9}llo \u{1F600}\nsecond:1",
            "event message:two:1"
        ]
    );
}

async fn crlf_and_utf8_split_across_writes(via: Via) {
    let server = TestServer::start(vec![Reply::stream(vec![
        send(b"data: caf\xC3"),
        Step::Sleep(Duration::from_millis(5)),
        send(b"\xA9\r"),
        Step::Sleep(Duration::from_millis(5)),
        send(b"\n\r"),
        Step::Sleep(Duration::from_millis(5)),
        // The LF completing the split CRLF must not count as a second blank line.
        send(b"\ndata: x\r\n\r\n"),
        Step::Stall,
    ])])
    .await;
    let mut es = get_via(via, server.url("/")).build().unwrap();
    let items = collect(&mut es, 2).await;
    assert_eq!(data(&items), ["caf\u{e9}", "x"]);
}

async fn invalid_utf8_is_replaced_and_the_stream_goes_on(via: Via) {
    let server = TestServer::start(vec![Reply::stream(vec![
        send(b"data: a\xFFb\n\ndata: next\n\n"),
        Step::Stall,
    ])])
    .await;
    let mut es = get_via(via, server.url("/")).build().unwrap();
    let items = collect(&mut es, 2).await;
    assert_eq!(data(&items), ["a\u{FFFD}b", "next"]);
}

async fn event_cut_by_the_end_of_the_stream_is_dropped(via: Via) {
    let server = TestServer::start(vec![
        Reply::stream(vec![send("data: a\n\ndata: partial")]),
        // Were the partial event kept, this blank line would dispatch it.
        Reply::stream(vec![send("\ndata: b\n\n"), Step::Stall]),
    ])
    .await;
    let mut es = get_via(via, server.url("/"))
        .backoff(quick())
        .build()
        .unwrap();
    let items = collect(&mut es, 2).await;
    assert_eq!(
        kinds(&items),
        [
            "open",
            "event message:a:",
            "reconnect ended",
            "open",
            "event message:b:"
        ]
    );
}

async fn comments_only_when_asked(via: Via) {
    let body = vec![send(":hello\n: ping\ndata: a\n\n"), Step::Stall];
    let server = TestServer::start(vec![Reply::stream(body)]).await;
    let mut es = get_via(via, server.url("/"))
        .comments(true)
        .build()
        .unwrap();
    let items = collect(&mut es, 1).await;
    assert_eq!(
        kinds(&items),
        ["open", "comment hello", "comment ping", "event message:a:"]
    );

    let mut es = get_via(via, server.url("/")).build().unwrap();
    let items = collect(&mut es, 1).await;
    assert_eq!(kinds(&items), ["open", "event message:a:"]);
}

async fn oversized_event_ends_the_stream_without_reconnecting(via: Via) {
    let big = format!("data: {}\n\ndata: after\n\n", "x".repeat(100));
    let server = TestServer::start(vec![Reply::stream(vec![
        send("data: ok\n\n"),
        send(big),
        Step::Stall,
    ])])
    .await;
    let mut es = get_via(via, server.url("/"))
        .max_event_bytes(64)
        .build()
        .unwrap();
    let items = drain(&mut es).await;
    assert_eq!(kinds(&items), ["open", "event message:ok:", "error parse"]);
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(server.seen().len(), 1);
}

each_transport!(
    byte_at_a_time_stream_with_bom_crlf_and_utf8,
    crlf_and_utf8_split_across_writes,
    invalid_utf8_is_replaced_and_the_stream_goes_on,
    event_cut_by_the_end_of_the_stream_is_dropped,
    comments_only_when_asked,
    oversized_event_ends_the_stream_without_reconnecting,
);
