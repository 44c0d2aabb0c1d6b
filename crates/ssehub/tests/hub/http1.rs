//! HTTP/1.1 on the wire: event streams are written by the hub's own writer (not hyper's), so
//! these tests read raw bytes and check the framing, keep-alive and pipelining that browsers
//! and proxies rely on.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::support::{PATIENCE, TestServer, admin_token, expiring_token};

/// How long the short-lived tokens below live, in whole seconds: long enough for a stream to
/// carry an event on a loaded machine before its token expires and ends it.
const SHORT_LIFE: u64 = 4;

/// A raw HTTP/1.1 connection with a read buffer.
struct Raw {
    stream: TcpStream,
    buf: Vec<u8>,
    /// How long a read may wait: [`PATIENCE`] plus a short token's lifetime, since some reads
    /// wait for a stream to end at its token's expiry.
    patience: Duration,
}

/// A response head.
struct Head {
    status: u16,
    headers: Vec<(String, String)>,
}

impl Head {
    fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl Raw {
    async fn connect(hub: &TestServer) -> Self {
        Raw {
            stream: TcpStream::connect(hub.addr).await.unwrap(),
            buf: Vec::new(),
            patience: PATIENCE + Duration::from_secs(SHORT_LIFE + 1),
        }
    }

    async fn send(&mut self, bytes: &str) {
        self.stream.write_all(bytes.as_bytes()).await.unwrap();
    }

    async fn fill(&mut self) {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(self.patience, self.stream.read(&mut chunk))
            .await
            .expect("the hub answered in time")
            .unwrap();
        assert!(n > 0, "the hub closed the connection");
        self.buf.extend_from_slice(&chunk[..n]);
    }

    async fn line(&mut self) -> String {
        loop {
            if let Some(at) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8(self.buf[..at].to_vec()).unwrap();
                self.buf.drain(..at + 2);
                return line;
            }
            self.fill().await;
        }
    }

    async fn exact(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            self.fill().await;
        }
        self.buf.drain(..n).collect()
    }

    async fn head(&mut self) -> Head {
        let status_line = self.line().await;
        let mut parts = status_line.splitn(3, ' ');
        assert_eq!(parts.next(), Some("HTTP/1.1"), "{status_line}");
        let status = parts.next().unwrap().parse().unwrap();
        let mut headers = Vec::new();
        loop {
            let line = self.line().await;
            if line.is_empty() {
                return Head { status, headers };
            }
            let (name, value) = line.split_once(':').expect("a header line");
            headers.push((name.to_owned(), value.trim().to_owned()));
        }
    }

    /// One chunk of a chunked body; `None` for the last (empty) chunk.
    async fn chunk(&mut self) -> Option<Vec<u8>> {
        let size = self.line().await;
        let size = usize::from_str_radix(&size, 16).expect("a hex chunk size");
        let data = self.exact(size).await;
        assert_eq!(self.exact(2).await, b"\r\n", "CRLF after the chunk");
        (size > 0).then_some(data)
    }

    /// Chunks until one contains `needle`.
    async fn chunks_until(&mut self, needle: &str) -> String {
        let mut seen = String::new();
        while !seen.contains(needle) {
            let chunk = self.chunk().await.expect("the stream went on");
            seen.push_str(std::str::from_utf8(&chunk).unwrap());
        }
        seen
    }

    /// Reads chunks to the end of the body.
    async fn rest_of_body(&mut self) -> String {
        let mut seen = String::new();
        while let Some(chunk) = self.chunk().await {
            seen.push_str(std::str::from_utf8(&chunk).unwrap());
        }
        seen
    }

    /// The body of a response framed by `Content-Length` (which it must have).
    async fn sized_body(&mut self, head: &Head) -> String {
        assert!(head.get("transfer-encoding").is_none());
        let len: usize = head.get("content-length").unwrap().parse().unwrap();
        String::from_utf8(self.exact(len).await).unwrap()
    }

    /// `GET /healthz` on this connection; passes when it answers 200.
    async fn health_check(&mut self, hub: &TestServer) {
        self.send(&format!(
            "GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n",
            hub.addr
        ))
        .await;
        let head = self.head().await;
        assert_eq!(head.status, 200);
        self.sized_body(&head).await;
    }

    async fn closed(&mut self) -> bool {
        let mut byte = [0u8; 1];
        matches!(
            tokio::time::timeout(self.patience, self.stream.read(&mut byte)).await,
            Ok(Ok(0) | Err(_))
        )
    }
}

fn subscribe_request(hub: &TestServer, query: &str, token: &str) -> String {
    format!(
        "GET /.well-known/mercure?{query} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n",
        hub.addr
    )
}

#[tokio::test]
async fn a_stream_is_a_chunked_http11_response_with_the_event_stream_headers() {
    let hub = TestServer::start().await;
    let mut raw = Raw::connect(&hub).await;
    raw.send(&subscribe_request(&hub, "topic=/wire", &admin_token()))
        .await;
    let head = raw.head().await;
    assert_eq!(head.status, 200);
    assert_eq!(head.get("transfer-encoding"), Some("chunked"));
    assert_eq!(head.get("content-type"), Some("text/event-stream"));
    assert_eq!(head.get("x-accel-buffering"), Some("no"));
    assert!(head.get("content-length").is_none());
    assert!(head.get("date").is_some_and(|d| d.ends_with(" GMT")));
    // The opening comment comes at once, so proxies and browsers see the stream open.
    assert_eq!(raw.chunk().await.as_deref(), Some(&b":\n"[..]));
    hub.wait_for_metric("ssehub_subscribers 1").await;
    let id = hub.publish_ok("/wire", "hello\nworld").await;
    let seen = raw.chunks_until("world").await;
    assert_eq!(seen, format!("id: {id}\ndata: hello\ndata: world\n\n"));
}

#[tokio::test]
async fn a_connection_carries_another_request_after_its_stream_ends() {
    let hub = TestServer::start().await;
    let mut raw = Raw::connect(&hub).await;
    let token = expiring_token(&["/short"], SHORT_LIFE);
    raw.send(&subscribe_request(&hub, "topic=/short", &token))
        .await;
    assert_eq!(raw.head().await.status, 200);
    // The token's expiry ends the stream with the last chunk, not by closing the socket.
    raw.rest_of_body().await;
    raw.health_check(&hub).await;
    // And the next stream on the same connection works as the first did.
    raw.send(&subscribe_request(&hub, "topic=/again", &admin_token()))
        .await;
    let head = raw.head().await;
    assert_eq!(head.status, 200);
    hub.wait_for_metric("ssehub_subscribers 1").await;
    let id = hub.publish_ok("/again", "second").await;
    raw.chunks_until(&id).await;
}

/// Regression (issue 15): the stream's token lived "1 s", which whole-second `exp` made
/// anywhere in 0-1 s, so the stream could end before the event the test waits for.
#[tokio::test]
async fn requests_pipelined_behind_a_stream_are_answered_after_it_in_order() {
    let hub = TestServer::start().await;
    let mut raw = Raw::connect(&hub).await;
    let token = expiring_token(&["/piped"], SHORT_LIFE);
    // Both requests in one write: the second waits in the connection while the stream runs.
    let both = format!(
        "{}GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n",
        subscribe_request(&hub, "topic=/piped", &token),
        hub.addr
    );
    raw.send(&both).await;
    assert_eq!(raw.head().await.status, 200);
    hub.wait_for_metric("ssehub_subscribers 1").await;
    let id = hub.publish_ok("/piped", "during").await;
    assert!(raw.rest_of_body().await.contains(&id));
    let health = raw.head().await;
    assert_eq!(health.status, 200);
    assert!(health.get("content-length").is_some());
}

#[tokio::test]
async fn an_error_answer_has_a_length_and_keeps_the_connection() {
    let hub = TestServer::start().await;
    let mut raw = Raw::connect(&hub).await;
    // No topic selector: a 400 naming the problem.
    raw.send(&subscribe_request(&hub, "", &admin_token())).await;
    let head = raw.head().await;
    assert_eq!(head.status, 400);
    let body = raw.sized_body(&head).await;
    assert!(body.contains("topic"), "{body}");
    // No token at all: 401 with the challenge, on the same connection.
    raw.send(&format!(
        "GET /.well-known/mercure?topic=/x HTTP/1.1\r\nHost: {}\r\n\r\n",
        hub.addr
    ))
    .await;
    let head = raw.head().await;
    assert_eq!(head.status, 401);
    assert!(head.get("www-authenticate").is_some());
    raw.sized_body(&head).await;
    raw.send(&subscribe_request(&hub, "topic=/x", &admin_token()))
        .await;
    assert_eq!(raw.head().await.status, 200);
}

#[tokio::test]
async fn a_client_that_leaves_ends_its_subscription() {
    let hub = TestServer::start().await;
    let mut raw = Raw::connect(&hub).await;
    raw.send(&subscribe_request(&hub, "topic=/leave", &admin_token()))
        .await;
    assert_eq!(raw.head().await.status, 200);
    hub.wait_for_metric("ssehub_subscribers 1").await;
    // Nothing is published: only the socket's close can tell the hub.
    drop(raw);
    hub.wait_for_metric("ssehub_subscribers 0").await;
}

#[tokio::test]
async fn other_requests_and_malformed_ones_are_answered_as_before() {
    let hub = TestServer::start().await;
    let mut raw = Raw::connect(&hub).await;
    // A publish first (a POST with a body), then a stream on the same connection.
    let form = "topic=%2Fmixed&data=one";
    raw.send(&format!(
        "POST /.well-known/mercure HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
        hub.addr,
        admin_token(),
        form.len()
    ))
    .await;
    let head = raw.head().await;
    assert_eq!(head.status, 200);
    let id = raw.sized_body(&head).await;
    raw.send(&subscribe_request(
        &hub,
        "topic=/mixed&lastEventID=earliest",
        &admin_token(),
    ))
    .await;
    assert_eq!(raw.head().await.status, 200);
    raw.chunks_until(&id).await;

    // A header line without a colon: the HTTP layer's 400, then the connection closes.
    let mut bad = Raw::connect(&hub).await;
    bad.send("GET /.well-known/mercure?topic=/x HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n")
        .await;
    let head = bad.head().await;
    assert_eq!(head.status, 400);
    bad.sized_body(&head).await;
    assert!(bad.closed().await);

    // `Connection: close` on a stream request is honoured.
    let mut once = Raw::connect(&hub).await;
    let token = expiring_token(&["/once"], SHORT_LIFE);
    once.send(&format!(
        "GET /.well-known/mercure?topic=/once HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    ))
    .await;
    assert_eq!(once.head().await.status, 200);
    once.rest_of_body().await;
    assert!(once.closed().await);
}

#[tokio::test]
async fn a_relay_stream_watch_uses_the_same_writer() {
    let hub = TestServer::start().await;
    let mut raw = Raw::connect(&hub).await;
    raw.send(&format!(
        "GET /v1/streams/strm_unknown HTTP/1.1\r\nHost: {}\r\n\r\n",
        hub.addr
    ))
    .await;
    let head = raw.head().await;
    // Unknown stream: OpenAI's error shape, framed with a length, connection kept.
    assert_eq!(head.status, 404);
    let body = raw.sized_body(&head).await;
    assert!(body.contains("\"error\""), "{body}");
    raw.health_check(&hub).await;
}

#[tokio::test]
async fn a_completion_request_whose_body_arrives_late_is_read_whole_and_answered() {
    let hub = TestServer::start().await;
    let mut raw = Raw::connect(&hub).await;
    // Not valid JSON: the relay's 400 names it, so no upstream is needed for this test.
    let body = "{\"model\": ";
    raw.send(&format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        hub.addr,
        body.len()
    ))
    .await;
    // The body comes in a later packet, then a pipelined request right behind it.
    tokio::time::sleep(Duration::from_millis(50)).await;
    raw.send(&format!(
        "{body}GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n",
        hub.addr
    ))
    .await;
    let head = raw.head().await;
    assert_eq!(head.status, 400);
    let answer = raw.sized_body(&head).await;
    assert!(answer.contains("invalid_json"), "{answer}");
    // The pipelined request was not taken for part of the body.
    let health = raw.head().await;
    assert_eq!(health.status, 200);
}

/// Regression (issue 15): hyper's own answers to requests it cannot take (400, 414, 431) had
/// empty bodies, so the client could not tell what was wrong.
#[tokio::test]
async fn the_http_layers_own_refusals_say_what_was_wrong() {
    let hub = TestServer::start().await;
    let long_target = format!("/{}", "a".repeat(70_000));
    let many_headers: String = (0..150).map(|i| format!("X-H{i}: v\r\n")).collect();
    let cases = [
        (
            "GET /.well-known/mercure?topic=/x HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n"
                .to_owned(),
            400,
            "malformed request",
        ),
        (
            format!("GET {long_target} HTTP/1.1\r\nHost: x\r\n\r\n"),
            414,
            "URI too long",
        ),
        (
            format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{many_headers}\r\n"),
            431,
            "header fields too large",
        ),
    ];
    for (request, status, needle) in cases {
        let mut raw = Raw::connect(&hub).await;
        raw.send(&request).await;
        let head = raw.head().await;
        assert_eq!(head.status, status, "{needle}");
        assert_eq!(head.get("content-type"), Some("text/plain; charset=utf-8"));
        let body = raw.sized_body(&head).await;
        assert!(body.contains(needle), "{status}: {body}");
        assert!(raw.closed().await);
    }
    // Also on a connection hyper already serves (after a request the stream path handed it).
    let mut raw = Raw::connect(&hub).await;
    raw.health_check(&hub).await;
    raw.send("GARBAGE GARBAGE\r\n\r\n").await;
    let head = raw.head().await;
    assert_eq!(head.status, 400);
    assert!(raw.sized_body(&head).await.contains("malformed request"));
}
