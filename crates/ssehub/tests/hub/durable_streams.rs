//! Durable Streams (`/v1/stream/*`) beyond what the official conformance suite checks
//! (scripts/test-durable-streams.sh runs that): durability across restarts and `kill -9`,
//! authorization, refusals that must store nothing, a slow SSE reader's memory, shutdown.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use ssehub::Config;

use super::binary::{rss_kib, serve};
use super::support::{PATIENCE, SECRET, TestServer, base_config, token};

/// An open hub keeping its files in `dir`, which outlives it.
async fn start_on(dir: &std::path::Path) -> TestServer {
    let mut config: Config = base_config(dir);
    config.anonymous_streams = true;
    TestServer::start_config(config, tempfile::tempdir().unwrap()).await
}

/// A hub whose streams need no token.
async fn open_hub() -> TestServer {
    TestServer::start_with(|c| c.anonymous_streams = true).await
}

fn next_offset(res: &reqwest::Response) -> String {
    res.headers()["stream-next-offset"]
        .to_str()
        .unwrap()
        .to_owned()
}

async fn put(hub: &TestServer, path: &str, content_type: &str) -> reqwest::Response {
    hub.client
        .put(hub.url(path))
        .header("content-type", content_type)
        .send()
        .await
        .unwrap()
}

async fn post(hub: &TestServer, path: &str, content_type: &str, body: &str) -> reqwest::Response {
    hub.client
        .post(hub.url(path))
        .header("content-type", content_type)
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
}

/// Reads a stream from `offset` to its tail, following `Stream-Next-Offset`.
async fn read_all(client: &reqwest::Client, url: &str, offset: &str) -> (Vec<u8>, String) {
    let mut data = Vec::new();
    let mut offset = offset.to_owned();
    loop {
        let res = client
            .get(format!("{url}?offset={offset}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "reading {url} at {offset}");
        let up_to_date = res.headers().contains_key("stream-up-to-date");
        offset = next_offset(&res);
        data.extend_from_slice(&res.bytes().await.unwrap());
        if up_to_date {
            return (data, offset);
        }
    }
}

#[tokio::test]
async fn appends_keep_their_offsets_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let hub = start_on(dir.path()).await;
    assert_eq!(
        put(&hub, "/v1/stream/keep", "text/plain").await.status(),
        201
    );
    let mut offsets = Vec::new();
    for word in ["one ", "two ", "three"] {
        let res = post(&hub, "/v1/stream/keep", "text/plain", word).await;
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        offsets.push(next_offset(&res));
    }
    let closed = hub
        .client
        .post(hub.url("/v1/stream/keep"))
        .header("stream-closed", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(closed.status(), StatusCode::NO_CONTENT);
    hub.stop().await.unwrap();

    let hub = start_on(dir.path()).await;
    let head = hub
        .client
        .head(hub.url("/v1/stream/keep"))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(next_offset(&head), offsets[2], "the tail moved");
    assert_eq!(head.headers()["stream-closed"], "true", "closure was lost");
    let url = hub.url("/v1/stream/keep");
    assert_eq!(read_all(&hub.client, &url, "-1").await.0, b"one two three");
    let (after_first, _) = read_all(&hub.client, &url, &offsets[0]).await;
    assert_eq!(
        after_first, b"two three",
        "an offset names another position"
    );
    assert_eq!(read_all(&hub.client, &url, &offsets[1]).await.0, b"three");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_append_survives_kill_9_with_its_offset() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--publisher-jwt-key", SECRET, "--anonymous-streams"];
    let hub = serve(dir.path(), &args);
    let client = reqwest::Client::new();
    let url = format!("http://{}/v1/stream/crash", hub.addr);
    let created = client
        .put(&url)
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    // Several writers at once, so the kill lands while acknowledged appends share commits.
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(Value, String)>::new()));
    let mut tasks = Vec::new();
    for writer in 0..4 {
        let (client, url, acked) = (client.clone(), url.clone(), acked.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0.. {
                let message = serde_json::json!({ "writer": writer, "i": i });
                let res = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(message.to_string())
                    .send()
                    .await;
                match res {
                    Ok(r) if r.status() == StatusCode::NO_CONTENT => {
                        let offset = next_offset(&r);
                        acked.lock().unwrap().push((message, offset));
                    }
                    _ => return,
                }
            }
        }));
    }
    while acked.lock().unwrap().len() < 120 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    drop(hub); // SIGKILL
    for t in tasks {
        t.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();

    let hub = serve(dir.path(), &args);
    let url = format!("http://{}/v1/stream/crash", hub.addr);
    let (body, _) = read_all(&client, &url, "-1").await;
    let all: Vec<Value> = serde_json::from_slice(&body).unwrap();
    for (message, offset) in &acked {
        let at = all
            .iter()
            .position(|m| m == message)
            .unwrap_or_else(|| panic!("acknowledged {message} is missing after kill -9"));
        // The offset acknowledged then still names the position right after the message.
        let (rest, _) = read_all(&client, &url, offset).await;
        let rest: Vec<Value> = serde_json::from_slice(&rest).unwrap();
        assert_eq!(rest, all[at + 1..], "offset {offset} moved");
    }
}

#[tokio::test]
async fn writes_need_a_publisher_token_granting_the_stream() {
    let hub = TestServer::start().await;
    let url = hub.url("/v1/stream/owned");
    let res = hub.client.put(&url).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let other = token(&["/v1/stream/other"], &[]);
    let res = hub
        .client
        .put(&url)
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let reader = token(&[], &["/v1/stream/owned"]);
    let res = hub
        .client
        .put(&url)
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::FORBIDDEN,
        "a subscriber-only token wrote"
    );
    let owner = token(&["/v1/stream/owned"], &[]);
    let res = hub
        .client
        .put(&url)
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let res = hub
        .client
        .post(&url)
        .bearer_auth(&other)
        .header("content-type", "application/octet-stream")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = hub.client.delete(&url).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn reads_need_a_subscriber_token_whose_selectors_match_the_stream() {
    let hub = TestServer::start().await;
    let url = hub.url("/v1/stream/rooms/1");
    let owner = token(&["/v1/stream/rooms/1"], &[]);
    let res = hub
        .client
        .put(&url)
        .bearer_auth(&owner)
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let res = hub.client.get(&url).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let elsewhere = token(&[], &["/v1/stream/rooms/2"]);
    for req in [hub.client.get(&url), hub.client.head(&url)] {
        let res = req.bearer_auth(&elsewhere).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
    }
    let sse = hub
        .client
        .get(format!("{url}?offset=-1&live=sse"))
        .bearer_auth(&elsewhere)
        .send()
        .await
        .unwrap();
    assert_eq!(sse.status(), StatusCode::FORBIDDEN);
    // A URI template selector grants every room.
    let rooms = token(&[], &["/v1/stream/rooms/{id}"]);
    let res = hub
        .client
        .get(&url)
        .bearer_auth(&rooms)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.text().await.unwrap(), "hello");
}

#[tokio::test]
async fn anonymous_streams_serve_every_method_without_a_token() {
    let hub = open_hub().await;
    assert_eq!(
        put(&hub, "/v1/stream/open", "text/plain").await.status(),
        201
    );
    let res = post(&hub, "/v1/stream/open", "text/plain", "hi").await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = hub.get("/v1/stream/open").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.text().await.unwrap(), "hi");
    let res = hub
        .client
        .delete(hub.url("/v1/stream/open"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn a_fork_needs_a_grant_on_its_source_too() {
    let hub = TestServer::start().await;
    let source = token(&["/v1/stream/secret"], &[]);
    let res = hub
        .client
        .put(hub.url("/v1/stream/secret"))
        .bearer_auth(&source)
        .body("classified")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let fork = |t: &str| {
        hub.client
            .put(hub.url("/v1/stream/copy"))
            .bearer_auth(t)
            .header("stream-forked-from", "/v1/stream/secret")
    };
    let only_fork = token(&["/v1/stream/copy"], &[]);
    let res = fork(&only_fork).send().await.unwrap();
    assert_eq!(
        res.status(),
        StatusCode::FORBIDDEN,
        "forked a stream it cannot write"
    );
    let both = token(&["/v1/stream/copy", "/v1/stream/secret"], &[]);
    let res = fork(&both).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn an_append_over_the_limit_is_refused_with_413_and_stores_nothing() {
    let hub = TestServer::start_with(|c| {
        c.anonymous_streams = true;
        c.streams_max_append_bytes = 1024;
    })
    .await;
    assert_eq!(
        put(&hub, "/v1/stream/small", "text/plain").await.status(),
        201
    );
    let res = post(&hub, "/v1/stream/small", "text/plain", &"x".repeat(2048)).await;
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(res.text().await.unwrap().contains("1024 bytes"));
    let res = hub.get("/v1/stream/small").await;
    assert_eq!(next_offset(&res), "0000000000000000_0000000000000000");
    assert_eq!(res.text().await.unwrap(), "");
    // An oversized initial body creates nothing either.
    let res = hub
        .client
        .put(hub.url("/v1/stream/big"))
        .body("y".repeat(4096))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        hub.get("/v1/stream/big").await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn malformed_offsets_and_modes_are_refused_with_400_naming_the_problem() {
    let hub = open_hub().await;
    let res = hub
        .client
        .put(hub.url("/v1/stream/offsets"))
        .body("data")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    for query in [
        "offset=abc",
        "offset=1_",
        "offset=0%2C1",
        "offset=",
        "offset=-2",
        "offset=-1&offset=now",
    ] {
        let res = hub.get(&format!("/v1/stream/offsets?{query}")).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{query}");
        assert!(res.text().await.unwrap().contains("offset"), "{query}");
    }
    for query in ["live=sse", "live=long-poll", "offset=-1&live=forever"] {
        let res = hub.get(&format!("/v1/stream/offsets?{query}")).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{query}");
    }
}

#[tokio::test]
async fn bad_producer_headers_are_refused_with_400_and_store_nothing() {
    let hub = open_hub().await;
    assert_eq!(
        put(&hub, "/v1/stream/prod", "text/plain").await.status(),
        201
    );
    let cases: [(&[(&str, &str)], &str); 6] = [
        (&[("producer-id", "p")], "go together"),
        (
            &[("producer-epoch", "0"), ("producer-seq", "0")],
            "go together",
        ),
        (
            &[
                ("producer-id", ""),
                ("producer-epoch", "0"),
                ("producer-seq", "0"),
            ],
            "must not be empty",
        ),
        (
            &[
                ("producer-id", "p"),
                ("producer-epoch", "1e3"),
                ("producer-seq", "0"),
            ],
            "Producer-Epoch",
        ),
        (
            &[
                ("producer-id", "p"),
                ("producer-epoch", "0"),
                ("producer-seq", "-1"),
            ],
            "Producer-Seq",
        ),
        (
            &[
                ("producer-id", "p"),
                ("producer-epoch", "0"),
                ("producer-seq", "9007199254740992"),
            ],
            "2^53-1",
        ),
    ];
    for (headers, says) in cases {
        let mut req = hub
            .client
            .post(hub.url("/v1/stream/prod"))
            .header("content-type", "text/plain")
            .body("payload");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{headers:?}");
        let text = res.text().await.unwrap();
        assert!(text.contains(says), "{headers:?}: {text}");
    }
    let res = hub.get("/v1/stream/prod").await;
    assert_eq!(
        res.text().await.unwrap(),
        "",
        "a refused append stored data"
    );
    // Nor did any of them register the producer: seq 0 is still its first request.
    let res = hub
        .client
        .post(hub.url("/v1/stream/prod"))
        .header("content-type", "text/plain")
        .header("producer-id", "p")
        .header("producer-epoch", "0")
        .header("producer-seq", "0")
        .body("first")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn invalid_json_is_refused_with_400_and_stores_nothing() {
    let hub = open_hub().await;
    assert_eq!(
        put(&hub, "/v1/stream/j", "application/json").await.status(),
        201
    );
    for body in ["{ nope }", "[1,", "[]", "\u{1}"] {
        let res = post(&hub, "/v1/stream/j", "application/json", body).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{body:?}");
    }
    let res = post(&hub, "/v1/stream/j", "application/json", "[1, [2]]").await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = hub.get("/v1/stream/j").await;
    assert_eq!(res.text().await.unwrap(), "[1,[2]]");
}

#[tokio::test]
async fn shutdown_ends_open_sse_readers_and_long_polls() {
    let hub = TestServer::start_with(|c| {
        c.anonymous_streams = true;
        c.shutdown_grace = Duration::from_secs(120);
        c.streams_long_poll_timeout = Duration::from_secs(120);
        c.streams_sse_max_duration = Duration::from_secs(120);
    })
    .await;
    assert_eq!(
        put(&hub, "/v1/stream/idle", "text/plain").await.status(),
        201
    );
    let mut sse = hub
        .client
        .get(hub.url("/v1/stream/idle?offset=-1&live=sse"))
        .send()
        .await
        .unwrap();
    // The first control event says the reader is caught up; then it waits.
    let first = sse.chunk().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("\"upToDate\":true"));
    let poll = {
        let req = hub
            .client
            .get(hub.url("/v1/stream/idle?offset=now&live=long-poll"));
        tokio::spawn(async move { req.send().await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    // With a 120 s grace, finishing within PATIENCE proves reads are ended, not waited out.
    tokio::time::timeout(PATIENCE, hub.stop())
        .await
        .expect("shutdown hung on open stream reads")
        .unwrap();
    while let Ok(Some(_)) = sse.chunk().await {}
    let poll = poll.await.unwrap().unwrap();
    assert_eq!(poll.status(), StatusCode::NO_CONTENT);
}

/// A reader that stops reading holds one chunk, not the stream: 8 of them over 40 MB of
/// binary data (SSE base64) would pin over 400 MiB if the tail were pushed instead of pulled.
/// Pulled in 256 KiB reads they grow the hub by about 15 MiB (frames, allocator arenas).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stuck_sse_readers_do_not_grow_the_hubs_memory() {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().unwrap();
    let hub = serve(
        dir.path(),
        &["--publisher-jwt-key", SECRET, "--anonymous-streams"],
    );
    let client = reqwest::Client::new();
    let url = format!("http://{}/v1/stream/flood", hub.addr);
    let res = client
        .put(&url)
        .header("content-type", "application/octet-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let chunk = vec![7u8; 200 * 1024];
    for _ in 0..200 {
        let res = client
            .post(&url)
            .header("content-type", "application/octet-stream")
            .body(chunk.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = rss_kib(hub.child.id());
    let mut sockets = Vec::new();
    for _ in 0..8 {
        let mut s = tokio::net::TcpStream::connect(hub.addr).await.unwrap();
        let req = format!(
            "GET /v1/stream/flood?offset=-1&live=sse HTTP/1.1\r\nHost: {}\r\n\r\n",
            hub.addr
        );
        s.write_all(req.as_bytes()).await.unwrap();
        sockets.push(s);
    }
    // Let each reader's response run until its socket is full.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let grown = rss_kib(hub.child.id()).saturating_sub(before);
    assert!(
        grown < 8 * 4 * 1024,
        "8 stuck SSE readers grew the hub by {grown} KiB"
    );
    drop(sockets);
}
