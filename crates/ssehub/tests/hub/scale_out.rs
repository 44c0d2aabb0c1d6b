//! Several hubs on one Redis history: what is published on one node reaches subscribers of
//! another, ids resume across nodes, lost history is reported, Redis going away and coming back.

use std::time::Duration;

use sse_wire::Frame;
use ssehub::config::StoreConfig;
use ssehub::store::redis::RedisOptions;

use super::redis_server::RedisServer;
use super::support::{PATIENCE, TestServer};

/// A hub whose history is the `namespace` history on `redis`.
async fn node(redis: &RedisServer, namespace: &str) -> TestServer {
    node_with(redis, namespace, |_| {}).await
}

async fn node_with(
    redis: &RedisServer,
    namespace: &str,
    adjust: impl FnOnce(&mut ssehub::Config),
) -> TestServer {
    let mut options = RedisOptions::new(redis.url());
    options.namespace = namespace.to_owned();
    TestServer::start_with(|config| {
        config.store = StoreConfig::Redis(options);
        adjust(config);
    })
    .await
}

#[tokio::test]
async fn an_update_published_on_one_node_reaches_a_subscriber_on_another() {
    let redis = RedisServer::start();
    let a = node(&redis, "reach").await;
    let b = node(&redis, "reach").await;
    let mut on_b = b.subscribe("topic=/s").await;
    let id = a.publish_ok("/s", "from a").await;
    let event = on_b.next_event().await;
    assert_eq!(
        (event.id.as_deref(), event.data.as_str()),
        (Some(&*id), "from a")
    );
    // And the other way round, on the same stream.
    let id = b.publish_ok("/s", "from b").await;
    assert_eq!(on_b.next_event().await.id.unwrap(), id);
}

#[tokio::test]
async fn a_last_event_id_from_one_node_resumes_on_another_without_gap_or_duplicate() {
    let redis = RedisServer::start();
    let a = node(&redis, "resume").await;
    let b = node(&redis, "resume").await;
    let mut on_a = a.subscribe("topic=/r").await;
    let mut ids = Vec::new();
    for i in 0..6 {
        ids.push(a.publish_ok("/r", &i.to_string()).await);
    }
    assert_eq!(on_a.event_ids(6).await, ids);
    // The client moves to node b with the last id it got from a two updates ago.
    let mut on_b = b.subscribe_after("topic=/r", &ids[3]).await;
    assert_eq!(on_b.header("last-event-id"), Some(ids[3].as_str()));
    assert_eq!(on_b.event_ids(2).await, ids[4..]);
    let next = a.publish_ok("/r", "after the move").await;
    let marker = b.publish_ok("/r", "marker").await;
    assert_eq!(on_b.event_ids(2).await, [next, marker]);
}

#[tokio::test]
async fn after_redis_lost_its_data_a_stale_id_is_answered_earliest() {
    let redis = RedisServer::start();
    let a = node(&redis, "flush").await;
    let b = node(&redis, "flush").await;
    let mut watching = b.subscribe("topic=/f").await;
    a.publish_ok("/f", "lost 1").await;
    let stale = a.publish_ok("/f", "lost 2").await;
    assert_eq!(watching.event_ids(2).await[1], stale);
    assert_eq!(redis.command(&["FLUSHALL"]), "+OK");
    let mut resumed = b.subscribe_after("topic=/f", &stale).await;
    assert_eq!(resumed.header("last-event-id"), Some("earliest"));
    // The new history is delivered live, on the node that published it and the others, to
    // streams opened before and after the loss.
    let fresh = a.publish_ok("/f", "new").await;
    assert_eq!(resumed.next_event().await.id.unwrap(), fresh);
    assert_eq!(watching.next_event().await.id.unwrap(), fresh);
    let mut on_a = a.subscribe_after("topic=/f", &stale).await;
    assert_eq!(on_a.header("last-event-id"), Some("earliest"));
    assert_eq!(on_a.next_event().await.id.unwrap(), fresh);
}

#[tokio::test]
async fn while_redis_is_away_publishes_get_503_and_open_streams_continue_after_it_returns() {
    let mut redis = RedisServer::start_durable();
    let heartbeat = Duration::from_millis(100);
    let a = node_with(&redis, "away", |c| c.heartbeat = heartbeat).await;
    let b = node_with(&redis, "away", |c| c.heartbeat = heartbeat).await;
    let mut on_b = b.subscribe("topic=/w").await;
    let before = a.publish_ok("/w", "before").await;
    assert_eq!(on_b.next_event().await.id.unwrap(), before);
    redis.stop();

    let refused = a.publish(&[("topic", "/w"), ("data", "while away")]).await;
    assert_eq!(refused.status(), 503);
    let reason = refused.text().await.unwrap();
    assert!(reason.contains("redis at 127.0.0.1"), "{reason}");
    let health = a.get("/healthz").await;
    assert_eq!(health.status(), 503);
    // The open stream stays open: heartbeats go on.
    loop {
        match on_b.next_frame().await {
            Some(Frame::Comment(_)) => break,
            Some(Frame::Event(e)) => panic!("unexpected event {e:?}"),
            Some(_) => {}
            None => panic!("the stream ended while redis was away"),
        }
    }

    redis.restart();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let after = loop {
        let res = a.publish(&[("topic", "/w"), ("data", "after")]).await;
        if res.status() == 200 {
            break res.text().await.unwrap();
        }
        assert_eq!(res.status(), 503);
        assert!(
            tokio::time::Instant::now() < deadline,
            "redis never came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // The same stream, never reconnected, gets it: b's feed resumed where it stopped.
    let event = loop {
        if let Some(Frame::Event(e)) = on_b.next_frame().await {
            break e;
        }
    };
    assert_eq!(event.id.unwrap(), after);
    assert_eq!(b.get("/healthz").await.status(), 200);
    // The AOF kept the history through the restart.
    let mut replay = b.subscribe_after("topic=/w", "earliest").await;
    assert_eq!(replay.event_ids(2).await, [before, after]);
}
