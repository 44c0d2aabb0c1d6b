//! The stream itself: headers, opening comment, heartbeats, shutdown, CORS, HTTP/2, limits,
//! and what happens to a subscriber that stops reading.

use std::time::Duration;

use sse_wire::Frame;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::support::{PATIENCE, Sse, TestServer, admin_token};

#[tokio::test]
async fn streams_carry_the_headers_proxies_and_browsers_need_and_open_with_a_comment() {
    let hub = TestServer::start().await;
    let mut sub = hub.subscribe("topic=/t").await;
    assert_eq!(sub.header("content-type"), Some("text/event-stream"));
    assert_eq!(
        sub.header("cache-control"),
        Some("private, no-cache, no-store, must-revalidate, max-age=0")
    );
    assert_eq!(sub.header("x-accel-buffering"), Some("no"));
    // Sent at once, before any update exists.
    assert!(matches!(sub.next_frame().await, Some(Frame::Comment(_))));
}

#[tokio::test]
async fn a_heartbeat_comment_follows_silence() {
    let hub = TestServer::start_with(|c| c.heartbeat = Duration::from_millis(200)).await;
    let mut sub = hub.subscribe("topic=/t").await;
    assert!(
        matches!(sub.next_frame().await, Some(Frame::Comment(_))),
        "opening comment"
    );
    assert!(
        matches!(sub.next_frame().await, Some(Frame::Comment(_))),
        "heartbeat"
    );
    assert!(
        matches!(sub.next_frame().await, Some(Frame::Comment(_))),
        "second heartbeat"
    );
}

#[tokio::test]
async fn shutdown_ends_open_streams_well_within_the_grace_period() {
    let hub = TestServer::start_with(|c| c.shutdown_grace = Duration::from_secs(120)).await;
    let mut subs = Vec::new();
    for _ in 0..5 {
        subs.push(hub.subscribe("topic=/t").await);
    }
    // With a 120 s grace, finishing in 10 s proves streams are ended, not waited out.
    tokio::time::timeout(Duration::from_secs(10), hub.stop())
        .await
        .expect("shutdown hung on open streams")
        .unwrap();
    for mut s in subs {
        s.until_end().await;
    }
}

#[tokio::test]
async fn connections_still_busy_when_the_grace_period_ends_are_closed() {
    let hub = TestServer::start_with(|c| c.shutdown_grace = Duration::from_secs(1)).await;
    // A publish whose body never finishes arriving: the handler waits for it, so graceful
    // shutdown alone would wait for this connection forever.
    let mut stalled = tokio::net::TcpStream::connect(hub.addr).await.unwrap();
    stalled
        .write_all(
            format!(
                "POST /.well-known/mercure HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\ntopic=%2Fslow",
                admin_token()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    // A full round trip on another connection, so the stalled request is in its handler before
    // shutdown begins.
    assert!(
        hub.client
            .get(hub.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status()
            .is_success()
    );
    hub.stop().await.unwrap();
    // The hub has returned: the stalled connection must be closed, not left open.
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(PATIENCE, stalled.read_to_end(&mut rest)).await;
    assert!(
        closed.is_ok(),
        "the connection was left open after the grace period"
    );
}

#[tokio::test]
async fn cors_allows_listed_origins_with_credentials_and_no_others() {
    let hub = TestServer::start_with(|c| c.cors_origins = vec!["https://app.example".into()]).await;
    let preflight = |origin: &'static str| {
        hub.client
            .request(reqwest::Method::OPTIONS, hub.hub_url())
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header(
                "access-control-request-headers",
                "authorization,last-event-id",
            )
            .send()
    };
    let ok = preflight("https://app.example").await.unwrap();
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    assert_eq!(ok.headers()["access-control-allow-credentials"], "true");
    let allowed = ok.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        allowed.contains("last-event-id") && allowed.contains("authorization"),
        "{allowed}"
    );
    let bad = preflight("https://evil.example").await.unwrap();
    assert!(bad.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn plain_sockets_accept_http2_with_prior_knowledge() {
    let hub = TestServer::start().await;
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let res = client
        .get(format!("{}?topic=/h2c", hub.hub_url()))
        .bearer_auth(admin_token())
        .send()
        .await
        .unwrap();
    assert_eq!(res.version(), reqwest::Version::HTTP_2);
    let mut sub = Sse::new(res);
    hub.publish_ok("/h2c", "over h2c").await;
    assert_eq!(sub.next_event().await.data, "over h2c");
}

/// A hub serving TLS with a fresh self-signed certificate for `localhost`, a client builder
/// that trusts it and resolves `localhost` to the hub, and the hub's `https://` base URL.
async fn tls_hub() -> (
    TestServer,
    reqwest::ClientBuilder,
    String,
    tempfile::TempDir,
) {
    let certs = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let pem = cert.cert.pem();
    let cert_path = certs.path().join("cert.pem");
    let key_path = certs.path().join("key.pem");
    std::fs::write(&cert_path, &pem).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let files = ssehub::config::TlsFiles {
        cert: cert_path,
        key: key_path,
    };
    let hub = TestServer::start_with(|c| c.tls = Some(files)).await;
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap())
        .resolve("localhost", hub.addr);
    let base = format!("https://localhost:{}", hub.addr.port());
    (hub, client, base, certs)
}

#[tokio::test]
async fn tls_negotiates_http2_and_carries_many_streams_on_one_connection() {
    let (_hub, client, base, _certs) = tls_hub().await;
    let client = client.build().unwrap();
    // Establish the connection first so every stream below shares it.
    let health = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.version(), reqwest::Version::HTTP_2);
    let opens = (0..100).map(|i| {
        client
            .get(format!(
                "{base}/.well-known/mercure?topic=/tls/{i}&topic=/tls/all"
            ))
            .bearer_auth(admin_token())
            .send()
    });
    let mut subs: Vec<Sse> = futures_util::future::join_all(opens)
        .await
        .into_iter()
        .map(|r| {
            let r = r.unwrap();
            assert_eq!(r.status(), 200);
            assert_eq!(r.version(), reqwest::Version::HTTP_2);
            Sse::new(r)
        })
        .collect();
    let res = client
        .post(format!("{base}/.well-known/mercure"))
        .bearer_auth(admin_token())
        .header("content-type", "application/x-www-form-urlencoded")
        .body("topic=/tls/all&data=to+everyone")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    for sub in &mut subs {
        assert_eq!(sub.next_event().await.data, "to everyone");
    }
    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("\nssehub_connections 1\n"), "{metrics}");
    assert!(metrics.contains("\nssehub_subscribers 100\n"), "{metrics}");
}

#[tokio::test]
async fn tls_with_only_http11_offered_streams_chunked_events() {
    let (_hub, client, base, _certs) = tls_hub().await;
    // A client that offers only HTTP/1.1 by ALPN, as many proxies and older clients do.
    let client = client.http1_only().build().unwrap();
    let res = client
        .get(format!("{base}/.well-known/mercure?topic=/tls1"))
        .bearer_auth(admin_token())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.version(), reqwest::Version::HTTP_11);
    assert_eq!(
        res.headers()["transfer-encoding"],
        "chunked",
        "an HTTP/1.1 stream is chunked"
    );
    // Live-only subscribers join the fan-out before the response head is sent.
    let mut sub = Sse::new(res);
    let res = client
        .post(format!("{base}/.well-known/mercure"))
        .bearer_auth(admin_token())
        .header("content-type", "application/x-www-form-urlencoded")
        .body("topic=/tls1&data=over+tls")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(sub.next_event().await.data, "over tls");
}

#[tokio::test]
async fn a_refused_connection_is_closed_soon_even_if_it_sends_nothing() {
    let hub = TestServer::start_with(|c| c.max_connections = 1).await;
    // Hold the only slot with a stream; the health check's connection may still hold it for a
    // moment, so retry until the stream gets in.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let _holder = loop {
        let mut holder = tokio::net::TcpStream::connect(hub.addr).await.unwrap();
        holder
            .write_all(
                format!(
                    "GET /.well-known/mercure?topic=/cap HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\r\n",
                    admin_token()
                )
                .as_bytes(),
            )
            .await
            .unwrap();
        let mut status = [0u8; 12];
        holder.read_exact(&mut status).await.unwrap();
        if &status == b"HTTP/1.1 200" {
            break holder;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slot never freed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // Beyond the cap and silent: without a bound it would hold a descriptor for the whole
    // header timeout (30 s), and an HTTP/2 one for as long as it liked.
    let mut silent = tokio::net::TcpStream::connect(hub.addr).await.unwrap();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(PATIENCE, silent.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "a refused connection was kept open");
}

#[tokio::test]
async fn connections_beyond_the_cap_get_a_503_naming_the_limit() {
    let hub = TestServer::start_with(|c| c.max_connections = 2).await;
    let a = reqwest::Client::new();
    let b = reqwest::Client::new();
    let auth = format!("Bearer {}", admin_token());
    let url = format!("{}?topic=/t", hub.hub_url());
    let _s1 = Sse::new(
        a.get(&url)
            .header("authorization", &auth)
            .send()
            .await
            .unwrap(),
    );
    let _s2 = Sse::new(
        b.get(&url)
            .header("authorization", &auth)
            .send()
            .await
            .unwrap(),
    );
    // The test server's own client may hold a pooled connection from the health check:
    // close the circle with a fresh client and retry until the two streams hold the cap.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let res = reqwest::Client::new()
            .get(&url)
            .header("authorization", &auth)
            .send()
            .await
            .unwrap();
        if res.status() == 503 {
            let body = res.text().await.unwrap();
            assert!(body.contains("--max-connections"), "{body}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no 503 at the connection cap"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A hub with a 256 KiB queue bound and a raw HTTP/1.1 subscriber on `/flood` that never
/// reads, flooded with 40 MiB until the subscriber is cut off; returns the socket (still open)
/// and the acknowledged ids.
async fn flood_a_stuck_subscriber(hub: &TestServer) -> (tokio::net::TcpStream, Vec<String>) {
    // A raw connection that sends its request and then never reads a byte.
    let mut stuck = tokio::net::TcpStream::connect(hub.addr).await.unwrap();
    let request = format!(
        "GET /.well-known/mercure?topic=/flood HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\r\n",
        hub.addr,
        admin_token()
    );
    stuck.write_all(request.as_bytes()).await.unwrap();
    // Let the subscription register before flooding.
    hub.wait_for_metric("ssehub_subscribers 1").await;
    let chunk = "z".repeat(200 * 1024);
    let mut ids = Vec::new();
    // 40 MiB: far beyond the queue bound plus what socket buffers can absorb.
    for _ in 0..200 {
        ids.push(hub.publish_ok("/flood", &chunk).await);
    }
    hub.wait_for_metric("ssehub_laggards_disconnected_total 1")
        .await;
    (stuck, ids)
}

async fn flood_hub() -> TestServer {
    TestServer::start_with(|c| {
        c.subscriber_queue_bytes = 256 * 1024;
        c.max_body_bytes = 1 << 20;
    })
    .await
}

#[tokio::test]
async fn a_subscriber_that_stops_reading_is_cut_off_and_history_still_has_everything() {
    let hub = flood_hub().await;
    let (stuck, ids) = flood_a_stuck_subscriber(&hub).await;
    // Nothing was lost: a fresh subscriber replays all of it.
    let mut fresh = hub.subscribe("topic=/flood&lastEventID=earliest").await;
    let got: Vec<String> = fresh
        .events(ids.len())
        .await
        .into_iter()
        .map(|e| e.id.unwrap())
        .collect();
    assert_eq!(got, ids);
    drop(stuck);
}

/// Regression (issue 15.9): a subscriber cut off for falling behind kept its connection (and
/// its queued backlog) until the 60 s write-stall timeout; it must go within seconds, while
/// the client still holds the socket without reading.
#[tokio::test]
async fn a_cut_off_laggard_is_disconnected_within_seconds_not_after_the_stall_timeout() {
    let hub = flood_hub().await;
    let (stuck, _ids) = flood_a_stuck_subscriber(&hub).await;
    // PATIENCE (10 s) is well under the 60 s stall timeout.
    hub.wait_for_metric("ssehub_subscribers 0").await;
    drop(stuck);
}
