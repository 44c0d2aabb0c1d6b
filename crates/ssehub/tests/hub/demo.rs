//! `--demo`: the demo topics (and the online topic's subscription events) are readable without a
//! token, nothing else is, and the simulated producers publish through the ordinary path.

use std::time::Duration;

use serde_json::Value;
use ssehub::demo::{DemoOptions, ONLINE_TOPIC, SIMULATED_LOGS_TOPIC, TICKER_PREFIX};

use super::support::{Sse, TestServer, admin_token};

/// A demo hub whose producers move quickly, so tests wait little.
async fn demo_hub() -> TestServer {
    TestServer::start_with(|c| {
        c.enable_demo(DemoOptions {
            ticker_interval: Duration::from_millis(50),
            log_interval: Duration::from_millis(50),
            linger: Duration::from_secs(5),
        })
    })
    .await
}

fn query(selectors: &[&str]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(selectors.iter().map(|s| ("topic", *s)))
        .finish()
}

async fn anonymous(hub: &TestServer, selectors: &[&str]) -> reqwest::Response {
    hub.subscribe_raw(&query(selectors), &[]).await
}

#[tokio::test]
async fn demo_topics_are_readable_without_a_token_and_the_simulation_feeds_them() {
    let hub = demo_hub().await;
    let res = anonymous(
        &hub,
        &[&format!("{TICKER_PREFIX}{{symbol}}"), SIMULATED_LOGS_TOPIC],
    )
    .await;
    assert_eq!(res.status(), 200);
    let mut stream = Sse::new(res);
    let (mut quotes, mut lines) = (0, 0);
    while quotes < 6 || lines < 1 {
        let event = stream.next_event().await;
        assert!(event.id.as_deref().unwrap().starts_with("urn:uuid:"));
        if event.data.starts_with('{') {
            let quote: Value = serde_json::from_str(&event.data).unwrap();
            assert_eq!(quote["simulated"], true);
            quotes += 1;
        } else {
            assert!(event.data.contains(" #"), "{}", event.data);
            assert_eq!(event.event_type(), "simulated");
            lines += 1;
        }
    }
}

#[tokio::test]
async fn without_a_token_nothing_outside_the_demo_topics_is_readable() {
    let hub = demo_hub().await;
    for refused in [
        vec!["*"],
        vec!["/private"],
        vec!["{+anything}"],
        vec!["/demo"],
        vec!["/demo/ticker/ACME", "/elsewhere"],
        vec!["/.well-known/mercure/subscriptions{/topic}{/subscriber}"],
    ] {
        let res = anonymous(&hub, &refused).await;
        assert_eq!(res.status(), 401, "{refused:?}");
        assert_eq!(res.headers()["www-authenticate"], "Bearer");
        let body = res.text().await.unwrap();
        assert!(
            body.contains("only subscribe to topics under /demo/"),
            "{body}"
        );
    }
    // URL patterns are never taken as confined, even under the prefix.
    let res = hub.subscribe_raw("match_urlpattern=%2Fdemo%2F*", &[]).await;
    assert_eq!(res.status(), 401);
    // A token still reads everything it grants, and publishing still needs one.
    assert_eq!(
        hub.subscribe_raw(
            "topic=*",
            &[("authorization", &format!("Bearer {}", admin_token()))]
        )
        .await
        .status(),
        200
    );
    let publish = hub
        .client
        .post(hub.hub_url())
        .header("content-type", "application/x-www-form-urlencoded")
        .body("topic=/demo/x&data=forged")
        .send()
        .await
        .unwrap();
    assert_eq!(publish.status(), 401);
}

#[tokio::test]
async fn private_updates_on_demo_topics_stay_private() {
    let hub = demo_hub().await;
    let mut stream = Sse::new(anonymous(&hub, &["/demo/board"]).await);
    hub.publish(&[
        ("topic", "/demo/board"),
        ("data", "secret"),
        ("private", "on"),
    ])
    .await;
    hub.publish_ok("/demo/board", "public").await;
    assert_eq!(stream.next_event().await.data, "public");
}

#[tokio::test]
async fn without_demo_the_same_topics_need_a_token() {
    let hub = TestServer::start().await;
    let res = anonymous(&hub, &["/demo/ticker/ACME"]).await;
    assert_eq!(res.status(), 401);
    assert!(res.text().await.unwrap().contains("anonymous"));
}

#[tokio::test]
async fn the_online_topics_presence_is_listed_and_streamed_without_a_token() {
    let hub = demo_hub().await;
    let online_list = "/.well-known/mercure/subscriptions/%2Fdemo%2Fonline";
    let events = format!("{online_list}{{/subscriber}}");
    let mut watcher = Sse::new(anonymous(&hub, &[ONLINE_TOPIC, &events]).await);
    // The watcher's own arrival, in the list and as an event.
    let joined: Value = serde_json::from_str(&watcher.next_event().await.data).unwrap();
    assert_eq!(joined["topic"], ONLINE_TOPIC);
    assert_eq!(joined["active"], true);
    let list: Value = hub.get(online_list).await.json().await.unwrap();
    let subscribers = list["subscriptions"].as_array().unwrap();
    assert_eq!(subscribers.len(), 1, "{list}");
    assert!(
        list["lastEventID"]
            .as_str()
            .unwrap()
            .starts_with("urn:uuid:")
    );

    let other = anonymous(&hub, &[ONLINE_TOPIC]).await;
    assert_eq!(other.status(), 200);
    let came: Value = serde_json::from_str(&watcher.next_event().await.data).unwrap();
    assert_eq!(came["active"], true);
    assert_ne!(came["subscriber"], joined["subscriber"]);
    drop(other);
    let left: Value = serde_json::from_str(&watcher.next_event().await.data).unwrap();
    assert_eq!(left["active"], false);
    assert_eq!(left["subscriber"], came["subscriber"]);

    // Other topics' subscriptions are not listed to anonymous readers: without a token that
    // is a 401 with a challenge (RFC 6750), as everywhere else.
    for closed in [
        "/.well-known/mercure/subscriptions",
        "/.well-known/mercure/subscriptions/%2Fprivate",
        "/.well-known/mercure/subscriptions/%2Fdemo%2Fticker%2FACME",
    ] {
        assert_eq!(hub.get(closed).await.status(), 401, "{closed}");
    }
}
