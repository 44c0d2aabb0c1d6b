//! Operations: `/healthz`, `/metrics`, and the subscriptions API with its events.

use super::support::{TestServer, token};

/// The subscriptions API's JSON answer at `path` to a bearer of `token`.
async fn subscriptions(hub: &TestServer, path: &str, token: &str) -> serde_json::Value {
    hub.get_as(path, token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn healthz_is_200_while_the_store_accepts_writes() {
    let hub = TestServer::start().await;
    let res = hub.get("/healthz").await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn metrics_count_what_happened() {
    let hub = TestServer::start().await;
    let mut sub = hub.subscribe("topic=/m").await;
    hub.publish_ok("/m", "1").await;
    hub.publish_ok("/m", "2").await;
    sub.events(2).await;
    let res = hub.get("/metrics").await;
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = res.text().await.unwrap();
    for line in [
        "\nssehub_subscribers 1\n",
        "\nssehub_publishes_total 2\n",
        "\nssehub_deliveries_total 2\n",
        "\nssehub_history_events 2\n",
        "\nssehub_publish_duration_seconds_count 2\n",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
}

#[tokio::test]
async fn subscriptions_are_published_as_private_events_and_listed() {
    let hub = TestServer::start_with(|c| c.subscriptions = true).await;
    let watcher_token = token(
        &[],
        &["/.well-known/mercure/subscriptions{/topic}{/subscriber}"],
    );
    let mut watcher = hub
        .subscribe_as(
            "topic=/.well-known/mercure/subscriptions%7B/topic%7D%7B/subscriber%7D",
            &watcher_token,
        )
        .await;
    // The watcher's own subscription is announced first.
    let own: serde_json::Value = serde_json::from_str(&watcher.next_event().await.data).unwrap();
    assert_eq!(own["type"], "Subscription");

    let with_payload = {
        let mut claims = ssehub::auth::MintClaims::default();
        claims.subscribe = vec![ssehub::auth::MintTopic::exact("/room")];
        claims.payload = Some(serde_json::json!({"user": "ada"}));
        ssehub::auth::mint(&super::support::key(), claims).unwrap()
    };
    let member = hub.subscribe_as("topic=/room", &with_payload).await;
    let joined: serde_json::Value = serde_json::from_str(&watcher.next_event().await.data).unwrap();
    assert_eq!(joined["@context"], "https://mercure.rocks/");
    assert_eq!(joined["topic"], "/room");
    assert_eq!(joined["active"], true);
    assert_eq!(joined["payload"]["user"], "ada");
    let subscriber = joined["subscriber"].as_str().unwrap().to_owned();

    let list = subscriptions(
        &hub,
        "/.well-known/mercure/subscriptions/%2Froom",
        &watcher_token,
    )
    .await;
    assert_eq!(list["type"], "Subscriptions");
    assert_eq!(list["subscriptions"].as_array().unwrap().len(), 1);
    assert_eq!(list["subscriptions"][0]["subscriber"], subscriber.as_str());
    assert!(list["lastEventID"].is_string());

    drop(member);
    let left: serde_json::Value = serde_json::from_str(&watcher.next_event().await.data).unwrap();
    assert_eq!(left["subscriber"], subscriber.as_str());
    assert_eq!(left["active"], false);

    // Without a grant on the subscriptions topic, the API refuses.
    let res = hub
        .get_as(
            "/.well-known/mercure/subscriptions",
            &token(&[], &["/room"]),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let challenge = res.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.contains("insufficient_scope"), "{challenge}");
}

/// Regression (issue 15): with `--anonymous`, asking the subscriptions API without any token
/// was a 403, where RFC 6750 asks for a 401 with a `WWW-Authenticate` challenge.
#[tokio::test]
async fn the_subscriptions_api_without_a_token_is_401_with_a_challenge() {
    for anonymous in [true, false] {
        let hub = TestServer::start_with(|c| {
            c.subscriptions = true;
            c.auth.anonymous = anonymous;
        })
        .await;
        for path in [
            "/.well-known/mercure/subscriptions",
            "/.well-known/mercure/subscriptions/%2Froom",
        ] {
            let res = hub.get(path).await;
            assert_eq!(res.status(), 401, "anonymous {anonymous}: {path}");
            assert_eq!(res.headers()["www-authenticate"], "Bearer");
            let body = res.text().await.unwrap();
            assert!(body.contains("JWT"), "{body}");
        }
    }
}

#[tokio::test]
async fn the_subscriptions_api_is_404_when_disabled() {
    let hub = TestServer::start().await;
    let res = hub
        .get_as("/.well-known/mercure/subscriptions", &token(&[], &["*"]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert!(res.text().await.unwrap().contains("--subscriptions"));
}

/// Regression: a client that left while its subscription events were being stored stayed
/// listed as active forever.
#[tokio::test]
async fn clients_leaving_mid_subscribe_leave_no_phantom_subscriptions() {
    use tokio::io::AsyncWriteExt;
    let hub = TestServer::start_with(|c| c.subscriptions = true).await;
    let admin = super::support::admin_token();
    for _ in 0..50 {
        let mut s = tokio::net::TcpStream::connect(hub.addr).await.unwrap();
        let req = format!(
            "GET /.well-known/mercure?topic=/a&topic=/b HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {admin}\r\n\r\n",
            hub.addr
        );
        s.write_all(req.as_bytes()).await.unwrap();
        drop(s);
    }
    let deadline = tokio::time::Instant::now() + super::support::PATIENCE;
    loop {
        let list = subscriptions(&hub, "/.well-known/mercure/subscriptions", &admin).await;
        if list["subscriptions"].as_array().unwrap().is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "phantom subscriptions remain: {list}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
