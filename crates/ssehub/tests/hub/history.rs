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

/// Replay pages of 3 updates, so every resume crosses many pages and then the seam while a
/// publisher keeps going. Subscribers join when the publisher reaches given counts, not after
/// sleeps: the concurrency comes from the burst itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_seam_has_no_gap_and_no_duplicate_under_a_concurrent_burst() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let hub = std::sync::Arc::new(TestServer::start_with(|c| c.replay_page = 3).await);
    let first = publish_n(&hub, "/burst", 50).await;
    let total = 400;
    let published = std::sync::Arc::new(AtomicUsize::new(0));
    let publisher = {
        let (hub, published) = (hub.clone(), published.clone());
        tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..total {
                ids.push(hub.publish_ok("/burst", &format!("b{i}")).await);
                published.store(i + 1, Ordering::SeqCst);
            }
            ids
        })
    };
    let mut subs = Vec::new();
    for (from, when) in [(0usize, 10usize), (10, 60), (25, 150), (49, 250)] {
        while published.load(Ordering::SeqCst) < when {
            tokio::task::yield_now().await;
        }
        subs.push((
            from,
            hub.subscribe(&format!("topic=/burst&lastEventID={}", first[from]))
                .await,
        ));
    }
    assert!(
        published.load(Ordering::SeqCst) < total,
        "the publisher finished before the last subscriber joined: nothing crossed the seam"
    );
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

/// Regression (issue 15.9): retention held only after the pruner's next run; a replay with a
/// bound of 5 sent 20.
#[tokio::test]
async fn retention_by_count_holds_at_replay_time_before_any_prune() {
    let hub = TestServer::start_with(|c| {
        c.history_max_events = Some(5);
        c.prune_interval = std::time::Duration::from_secs(3600);
    })
    .await;
    // The pruner's first run is at startup; these come after it.
    let ids = publish_n(&hub, "/kept", 20).await;
    let mut sub = hub.subscribe("topic=/kept&lastEventID=earliest").await;
    assert_eq!(sub.event_ids(5).await, ids[15..]);
    let live = hub.publish_ok("/kept", "live").await;
    assert_eq!(
        sub.next_event().await.id.unwrap(),
        live,
        "replay sent more than 5"
    );
    // An id retention no longer keeps is unknown, as if pruned.
    let mut old = hub
        .subscribe(&format!("topic=/kept&lastEventID={}", ids[3]))
        .await;
    assert_eq!(old.header("last-event-id"), Some("earliest"));
    assert_eq!(old.next_event().await.id.unwrap(), ids[16]);
}

/// Regression (issue 15.9): 3-second-old updates were replayed with a 2-second bound.
#[tokio::test]
async fn retention_by_age_holds_at_replay_time_before_any_prune() {
    let hub = TestServer::start_with(|c| {
        c.history_max_age = Some(std::time::Duration::from_secs(1));
        c.prune_interval = std::time::Duration::from_secs(3600);
    })
    .await;
    let old = publish_n(&hub, "/aged", 3).await;
    // Real time must pass for an update to age; this is a wait, not a timing assertion.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let fresh = publish_n(&hub, "/aged", 2).await;
    let mut sub = hub.subscribe("topic=/aged&lastEventID=earliest").await;
    assert_eq!(sub.event_ids(2).await, fresh);
    let mut resumed = hub
        .subscribe(&format!("topic=/aged&lastEventID={}", old[0]))
        .await;
    assert_eq!(resumed.header("last-event-id"), Some("earliest"));
    assert_eq!(resumed.next_event().await.id.unwrap(), fresh[0]);
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
