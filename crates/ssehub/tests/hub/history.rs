//! History: replay by `Last-Event-ID` from every source, `earliest`, unknown ids, the seam.

use std::collections::HashSet;

use super::support::TestServer;

async fn publish_n(hub: &TestServer, topic: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(hub.publish_ok(topic, &format!("{i}")).await);
    }
    ids
}

#[tokio::test]
async fn last_event_id_header_replays_what_followed() {
    let hub = TestServer::start().await;
    let ids = publish_n(&hub, "/h", 5).await;
    let mut sub = hub.subscribe_after("topic=/h", &ids[1]).await;
    assert_eq!(sub.header("last-event-id"), Some(ids[1].as_str()));
    assert_eq!(sub.header("mercure-last-event-id"), Some(ids[1].as_str()));
    let got = sub.event_ids(3).await;
    assert_eq!(got, ids[2..]);
    // Then live.
    let live = hub.publish_ok("/h", "live").await;
    assert_eq!(sub.next_event().await.id.unwrap(), live);
}

#[tokio::test]
async fn query_parameters_of_both_generations_work_and_the_header_wins() {
    let hub = TestServer::start().await;
    let ids = publish_n(&hub, "/q", 4).await;
    let mut v0 = hub
        .subscribe(&format!("topic=/q&lastEventID={}", ids[2]))
        .await;
    assert_eq!(v0.next_event().await.id.unwrap(), ids[3]);
    let mut v1 = hub
        .subscribe(&format!("topic=/q&last_event_id={}", ids[1]))
        .await;
    assert_eq!(v1.next_event().await.id.unwrap(), ids[2]);
    let mut both = hub
        .subscribe_after(&format!("topic=/q&lastEventID={}", ids[0]), &ids[2])
        .await;
    assert_eq!(both.next_event().await.id.unwrap(), ids[3]);
}

#[tokio::test]
async fn earliest_replays_all_retained_history_and_says_so() {
    let hub = TestServer::start().await;
    let ids = publish_n(&hub, "/e", 3).await;
    let mut sub = hub.subscribe("topic=/e&lastEventID=earliest").await;
    assert_eq!(sub.header("last-event-id"), Some("earliest"));
    let got = sub.event_ids(3).await;
    assert_eq!(got, ids);
}

#[tokio::test]
async fn an_unknown_id_is_reported_and_replays_everything_retained() {
    let hub = TestServer::start().await;
    let ids = publish_n(&hub, "/u", 2).await;
    let mut sub = hub.subscribe("topic=/u&lastEventID=no-such-id").await;
    assert_eq!(sub.header("last-event-id"), Some("earliest"));
    assert_eq!(sub.header("mercure-last-event-id"), Some("earliest"));
    let got = sub.event_ids(2).await;
    assert_eq!(got, ids);
}

#[tokio::test]
async fn without_a_last_event_id_the_header_names_the_latest_update() {
    let hub = TestServer::start().await;
    let fresh = hub.subscribe("topic=/x").await;
    assert_eq!(fresh.header("last-event-id"), Some("earliest"));
    let ids = publish_n(&hub, "/x", 2).await;
    // Wait until the second update was delivered live, so the dispatcher has seen it.
    let mut watcher = fresh;
    watcher.events(2).await;
    let later = hub.subscribe("topic=/x").await;
    assert_eq!(later.header("last-event-id"), Some(ids[1].as_str()));
}

#[tokio::test]
async fn replay_seam_has_no_gap_and_no_duplicate_under_a_concurrent_burst() {
    let hub = std::sync::Arc::new(TestServer::start_with(|_| {}).await);
    let first = publish_n(&hub, "/burst", 50).await;
    let total = 400;
    let publisher = {
        let hub = hub.clone();
        tokio::spawn(async move { publish_n(&hub, "/burst", total).await })
    };
    // Subscribers join mid-burst from several points in history.
    let mut subs = Vec::new();
    for (i, from) in [0usize, 10, 49].into_iter().enumerate() {
        tokio::time::sleep(std::time::Duration::from_millis(5 * i as u64)).await;
        subs.push((
            from,
            hub.subscribe(&format!("topic=/burst&lastEventID={}", first[from]))
                .await,
        ));
    }
    let rest = publisher.await.unwrap();
    let all: Vec<String> = first.iter().chain(rest.iter()).cloned().collect();
    for (from, mut sub) in subs {
        let expected = &all[from + 1..];
        let got = sub.event_ids(expected.len()).await;
        let unique: HashSet<_> = got.iter().collect();
        assert_eq!(
            unique.len(),
            got.len(),
            "duplicate at the seam (from {from})"
        );
        assert_eq!(got, expected, "gap or reordering at the seam (from {from})");
    }
}

#[tokio::test]
async fn history_is_pruned_to_the_configured_count() {
    let hub = TestServer::start_with(|c| {
        c.history_max_events = Some(3);
        c.prune_interval = std::time::Duration::from_millis(100);
    })
    .await;
    let ids = publish_n(&hub, "/p", 6).await;
    // Pruning runs in the background: wait until the oldest ids are gone.
    let deadline = tokio::time::Instant::now() + super::support::PATIENCE;
    loop {
        let mut sub = hub.subscribe("topic=/p&lastEventID=earliest").await;
        let first = sub.next_event().await.id.unwrap();
        if first == ids[3] {
            let rest = sub.event_ids(2).await;
            assert_eq!(rest, ids[4..]);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "history was not pruned to 3 events"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // A pruned id is now unknown: reported, and what is retained is replayed.
    let mut sub = hub
        .subscribe(&format!("topic=/p&lastEventID={}", ids[0]))
        .await;
    assert_eq!(sub.header("last-event-id"), Some("earliest"));
    assert_eq!(sub.next_event().await.id.unwrap(), ids[3]);
}

/// Regression: a client resuming from the newest id was sent the whole history again.
#[tokio::test]
async fn resuming_from_the_newest_id_replays_nothing_already_seen() {
    let hub = TestServer::start().await;
    let ids = publish_n(&hub, "/newest", 3).await;
    let mut sub = hub
        .subscribe(&format!("topic=/newest&lastEventID={}", ids[2]))
        .await;
    assert_eq!(sub.header("last-event-id"), Some(ids[2].as_str()));
    let next = hub.publish_ok("/newest", "after").await;
    assert_eq!(sub.next_event().await.id.unwrap(), next);
}
