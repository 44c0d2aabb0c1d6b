//! What bounds the relay: concurrent generations per key and in total (429 beyond), and a
//! history retention of its own; and a flood of abandoned requests against both.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};

use super::relay_support::{
    cancel_as, drain, fake_upstream, post_chat, post_chat_as, relay_config, relay_hub_with,
    stream_id, streaming, watch,
};
use super::support::{Sse, TestServer};

/// Asserts a 429 in OpenAI's rate-limit shape, with `Retry-After`.
async fn assert_busy(res: reqwest::Response) {
    assert_eq!(res.status(), 429);
    let retry_after: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error"]["code"], "rate_limit_exceeded", "{v}");
    assert_eq!(v["error"]["type"], "requests", "{v}");
}

/// Regression (issue 15): generations were unbounded, so any number of callers (or one
/// caller's abandoned requests) kept upstream generations and history writes going.
#[tokio::test]
async fn generations_beyond_the_per_key_or_total_bound_get_429_with_retry_after() {
    let (upstream, _) = fake_upstream().await;
    let hub = TestServer::start_with(|c| {
        relay_config(c, &upstream);
        c.relay_api_keys = vec!["keyA".into(), "keyB".into()];
        c.relay_max_streams = 3;
        c.relay_max_streams_per_key = 2;
    })
    .await;
    let mut a = Vec::new();
    for _ in 0..2 {
        let res = post_chat_as(&hub, "keyA", streaming("fake-slow")).await;
        assert_eq!(res.status(), 200);
        a.push(stream_id(&res));
    }
    assert_busy(post_chat_as(&hub, "keyA", streaming("fake-slow")).await).await;
    let res = post_chat_as(&hub, "keyB", streaming("fake-slow")).await;
    assert_eq!(res.status(), 200);
    let b = stream_id(&res);
    // keyB is under its own bound, but the hub is at its total.
    assert_busy(post_chat_as(&hub, "keyB", streaming("fake-slow")).await).await;
    hub.wait_for_metric("ssehub_relay_streams_running 3").await;

    // A slot comes back once a generation's end is recorded.
    assert_eq!(cancel_as(&hub, "keyA", &a[0]).await.status(), 200);
    hub.wait_for_metric("ssehub_relay_streams_running 2").await;
    let res = post_chat_as(&hub, "keyA", streaming("fake-slow")).await;
    assert_eq!(res.status(), 200);
    let a2 = stream_id(&res);
    for (key, id) in [("keyA", &a[1]), ("keyA", &a2), ("keyB", &b)] {
        cancel_as(&hub, key, id).await;
    }
    hub.wait_for_metric("ssehub_relay_streams_running 0").await;
    hub.wait_for_metric("ssehub_relay_streams_refused_total 2")
        .await;
}

/// Regression (issue 15): relay answers stayed in history as long as Mercure updates, so
/// abandoned answers piled up (137 MB in seconds) and crowded out the rest.
#[tokio::test]
async fn relay_answers_expire_on_their_own_age_and_leave_mercure_history_alone() {
    let (upstream, _) = fake_upstream().await;
    let hub = relay_hub_with(&upstream, |c| {
        c.relay_history_max_age = Some(Duration::from_millis(300));
        c.prune_interval = Duration::from_millis(50);
    })
    .await;
    let kept = hub
        .publish_ok("/chat/room", "an older Mercure update")
        .await;
    let res = post_chat(&hub, streaming("fake-stream")).await;
    let id = stream_id(&res);
    assert_eq!(drain(&mut Sse::new(res)).await.len(), 9);
    // Gone once older than its age: the marker first, so watchers are told it no longer exists.
    let deadline = tokio::time::Instant::now() + super::support::PATIENCE;
    loop {
        let res = watch(&hub, &id).send().await.unwrap();
        if res.status() == 404 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the relay answer was never pruned"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    hub.wait_for_metric("ssehub_history_events 1").await;
    let mut sub = hub.subscribe("topic=/chat/room&lastEventID=earliest").await;
    assert_eq!(sub.next_event().await.id, Some(kept));
}

/// Fault: 300 requests whose clients hang up right after the response head, against small
/// bounds. Beyond the bounds they are refused; the generations running never exceed them;
/// and afterwards the hub is healthy and answers in full.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_abandoned_requests_stays_within_the_bounds() {
    const REQUESTS: usize = 300;
    const TOTAL: u64 = 6;
    let hub = TestServer::start_with(|c| {
        c.relay_api_keys = vec!["flood-a".into(), "flood-b".into()];
        c.relay_max_streams = TOTAL as usize;
        c.relay_max_streams_per_key = 4;
        c.simulator.tokens_per_second = 1000.0;
        c.simulator.first_token_delay = Duration::from_millis(1);
    })
    .await;
    let hub = Arc::new(hub);
    let body = json!({"model": "ssehub-simulator", "stream": true, "max_tokens": 4,
                      "messages": [{"role": "user", "content": "flood"}]});

    // Reads the gauge for as long as the flood lasts.
    let flooding = Arc::new(AtomicBool::new(true));
    let most = Arc::new(AtomicU64::new(0));
    let monitor = tokio::spawn({
        let (hub, flooding, most) = (hub.clone(), flooding.clone(), most.clone());
        async move {
            while flooding.load(Ordering::Relaxed) {
                let metrics = hub.get("/metrics").await.text().await.unwrap();
                let running: u64 = metrics
                    .lines()
                    .find_map(|l| l.strip_prefix("ssehub_relay_streams_running "))
                    .expect("the gauge is exported")
                    .parse()
                    .unwrap();
                most.fetch_max(running, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    });

    let statuses: Vec<u16> = futures_util::stream::iter(0..REQUESTS)
        .map(|i| {
            let (hub, body) = (hub.clone(), body.clone());
            async move {
                let key = if i % 2 == 0 { "flood-a" } else { "flood-b" };
                let res = post_chat_as(&hub, key, body).await;
                let status = res.status().as_u16();
                if status == 429 {
                    assert_busy(res).await;
                }
                // Any other response is dropped here, right after its head.
                status
            }
        })
        .buffer_unordered(25)
        .collect()
        .await;
    flooding.store(false, Ordering::Relaxed);
    monitor.await.unwrap();

    let accepted = statuses.iter().filter(|s| **s == 200).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(accepted + refused, REQUESTS, "{statuses:?}");
    assert!(
        accepted >= 1 && refused >= 1,
        "{accepted} accepted, {refused} refused"
    );
    let most = most.load(Ordering::Relaxed);
    assert!(most <= TOTAL, "{most} generations at once");

    // Every abandoned generation ends, and the hub serves as before.
    hub.wait_for_metric("ssehub_relay_streams_running 0").await;
    hub.wait_for_metric(&format!("ssehub_relay_streams_refused_total {refused}"))
        .await;
    assert_eq!(hub.get("/healthz").await.status(), 200);
    let res = post_chat_as(&hub, "flood-a", body).await;
    assert_eq!(res.status(), 200);
    let all = drain(&mut Sse::new(res)).await;
    assert_eq!(all.last().unwrap().1, "[DONE]");
}
