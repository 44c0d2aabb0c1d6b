//! The subscriptions API across nodes sharing one Redis history: every node lists the
//! subscribers of all nodes, those announced before it started included, and a node that dies
//! has its subscribers removed once its lease runs out.

use serde_json::Value;

use super::cluster_support::{Process, Proxy, eventually, node, node_at, redis_flags};
use super::redis_server::RedisServer;
use super::support::{Sse, TestServer, admin_token, token};

/// The selector granting subscription events and the subscriptions API.
const SUBSCRIPTIONS: &str = "/.well-known/mercure/subscriptions{/topic}{/subscriber}";

async fn subscriptions_node(redis: &RedisServer, namespace: &str) -> TestServer {
    node(redis, namespace, |c| c.subscriptions = true).await
}

/// The subscribers `hub` lists on topic `/room`.
async fn listed(hub: &TestServer) -> Vec<String> {
    let list: Value = hub
        .get_as(
            "/.well-known/mercure/subscriptions/%2Froom",
            &token(&[], &[SUBSCRIPTIONS]),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    list["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["subscriber"].as_str().unwrap().to_owned())
        .collect()
}

/// Waits until `hub` lists exactly `n` subscribers on `/room`; returns them.
async fn listed_n(hub: &TestServer, n: usize) -> Vec<String> {
    eventually(
        &format!("{n} subscribers listed"),
        || listed(hub),
        |l| l.len() == n,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_lists_the_subscribers_of_all_nodes() {
    let redis = RedisServer::start();
    let a = subscriptions_node(&redis, "list").await;
    let b = subscriptions_node(&redis, "list").await;
    let on_a = a.subscribe("topic=/room").await;
    let on_b = b.subscribe("topic=/room").await;
    let from_b = listed_n(&b, 2).await;
    assert_eq!(
        listed_n(&a, 2).await,
        from_b,
        "both nodes list the same two"
    );
    drop(on_a);
    let left = listed_n(&b, 1).await;
    assert_eq!(listed_n(&a, 1).await, left);
    drop(on_b);
    listed_n(&a, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_lists_the_subscribers_announced_before_it_started() {
    let redis = RedisServer::start();
    let a = subscriptions_node(&redis, "recall").await;
    let _on_a = a.subscribe("topic=/room").await;
    let early = a.subscribe("topic=/room").await;
    let before = listed_n(&a, 2).await;
    // One left before b started: its end is in history too.
    drop(early);
    let remaining = listed_n(&a, 1).await;
    assert!(before.contains(&remaining[0]));
    let b = subscriptions_node(&redis, "recall").await;
    assert_eq!(listed_n(&b, 1).await, remaining);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_nodes_subscribers_are_removed_once_its_lease_runs_out() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut flags = redis_flags(&redis, "death");
    flags.push("--subscriptions".into());
    let mut a = Process::spawn(dir.path(), &flags);
    let b = subscriptions_node(&redis, "death").await;
    let mut events = b
        .subscribe_as(
            "topic=/.well-known/mercure/subscriptions%7B/topic%7D%7B/subscriber%7D",
            &token(&[], &[SUBSCRIPTIONS]),
        )
        .await;
    let res = a
        .client
        .get(a.url("/.well-known/mercure?topic=/room"))
        .bearer_auth(admin_token())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let _on_a = Sse::new(res);
    let subscriber = listed_n(&b, 1).await.remove(0);
    a.kill();
    listed_n(&b, 0).await;
    // Mercure subscribers of subscription events learn of it too.
    let mut ends = Vec::new();
    while ends.is_empty() {
        let event: Value = serde_json::from_str(&events.next_event().await.data).unwrap();
        if event["subscriber"] == subscriber.as_str() && event["active"] == false {
            ends.push(event);
        }
    }
    assert_eq!(ends[0]["topic"], "/room");
}

/// A node cut off from Redis past its lease is taken for gone and its subscribers removed;
/// back, it announces them again: they were connected to it all along.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_back_after_its_lease_ran_out_announces_its_subscribers_again() {
    let redis = RedisServer::start();
    let proxy = Proxy::start(&redis).await;
    let a = node_at(&proxy.url(), "cut", |c| c.subscriptions = true).await;
    let b = subscriptions_node(&redis, "cut").await;
    let _on_a = a.subscribe("topic=/room").await;
    let subscriber = listed_n(&b, 1).await;
    proxy.cut();
    listed_n(&b, 0).await;
    proxy.restore();
    assert_eq!(listed_n(&b, 1).await, subscriber);
}
