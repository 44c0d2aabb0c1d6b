//! Durable Streams operations: the reserved `__ds` control paths and the streams' counters
//! in `/metrics`.

use reqwest::StatusCode;

use super::support::TestServer;

async fn open_hub() -> TestServer {
    TestServer::start_with(|c| c.anonymous_streams = true).await
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} missing from /metrics:\n{text}"))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn reserved_control_paths_answer_404_for_every_method_and_create_nothing() {
    let hub = open_hub().await;
    for path in [
        "/v1/stream/__ds",
        "/v1/stream/__ds/jwks.json",
        "/v1/stream/__ds/subscriptions/s1",
        "/v1/stream/__ds/subscriptions/s1/ack",
    ] {
        for method in ["GET", "HEAD", "PUT", "POST", "DELETE"] {
            let res = hub
                .client
                .request(method.parse().unwrap(), hub.url(path))
                .header("content-type", "text/plain")
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::NOT_FOUND, "{method} {path}");
            if method != "HEAD" {
                let text = res.text().await.unwrap();
                assert!(text.contains("reserved"), "{method} {path}: {text}");
            }
        }
    }
    let text = hub.get("/metrics").await.text().await.unwrap();
    assert_eq!(metric(&text, "ssehub_ds_streams"), 0);
}

#[tokio::test]
async fn metrics_count_streams_appends_bytes_errors_and_live_readers() {
    let hub = open_hub().await;
    for name in ["a", "b"] {
        let res = hub
            .client
            .put(hub.url(&format!("/v1/stream/{name}")))
            .header("content-type", "text/plain")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
    }
    for body in ["hello", "world!"] {
        let res = hub
            .client
            .post(hub.url("/v1/stream/a"))
            .header("content-type", "text/plain")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
    }
    // A content type that is not the stream's: refused, counted as an error.
    let res = hub
        .client
        .post(hub.url("/v1/stream/a"))
        .header("content-type", "application/json")
        .body("[1]")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CONFLICT);
    // One SSE reader held open.
    let sse = hub
        .client
        .get(hub.url("/v1/stream/b?offset=-1&live=sse"))
        .send()
        .await
        .unwrap();
    assert_eq!(sse.status(), StatusCode::OK);
    hub.wait_for_metric("ssehub_ds_readers 1").await;
    let text = hub.get("/metrics").await.text().await.unwrap();
    assert_eq!(metric(&text, "ssehub_ds_streams"), 2);
    assert_eq!(metric(&text, "ssehub_ds_appends_total"), 2);
    assert_eq!(metric(&text, "ssehub_ds_append_bytes_total"), 11);
    assert_eq!(metric(&text, "ssehub_ds_append_errors_total"), 1);
    drop(sse);
    hub.wait_for_metric("ssehub_ds_readers 0").await;
}
