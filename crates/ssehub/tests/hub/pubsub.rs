//! Publish and live delivery: fields, alternates, every selector kind, private updates.

use super::support::{TestServer, token};

#[tokio::test]
async fn a_publish_reaches_a_live_subscriber_with_every_field() {
    let hub = TestServer::start().await;
    let mut sub = hub.subscribe("topic=/books/1").await;
    let r = hub
        .publish(&[
            ("topic", "/books/1"),
            ("data", "line one\nline two\r\nline three"),
            ("id", "book-1-v2"),
            ("type", "book.updated"),
            ("retry", "1500"),
        ])
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/plain; charset=utf-8");
    assert_eq!(r.text().await.unwrap(), "book-1-v2");
    let ev = sub.next_event().await;
    assert_eq!(ev.data, "line one\nline two\nline three");
    assert_eq!(ev.id.as_deref(), Some("book-1-v2"));
    assert_eq!(ev.event_type(), "book.updated");
    assert_eq!(ev.retry, Some(1500));
}

#[tokio::test]
async fn generated_ids_are_urn_uuid_v7_and_empty_data_is_still_an_event() {
    let hub = TestServer::start().await;
    let mut sub = hub.subscribe("topic=/t").await;
    let id = hub.publish_ok("/t", "").await;
    assert!(id.starts_with("urn:uuid:"), "{id}");
    let ev = sub.next_event().await;
    assert_eq!(ev.id.as_deref(), Some(id.as_str()));
    assert_eq!(ev.data, "");
}

#[tokio::test]
async fn alternate_topics_match_like_the_canonical_one() {
    let hub = TestServer::start().await;
    let mut sub = hub.subscribe("topic=/alternate").await;
    let r = hub
        .publish(&[
            ("topic", "/canonical"),
            ("topic", "/alternate"),
            ("data", "x"),
        ])
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(sub.next_event().await.data, "x");
}

#[tokio::test]
async fn every_selector_kind_selects_what_it_should() {
    let hub = TestServer::start().await;
    let mut all = hub.subscribe("topic=*").await;
    let mut template = hub
        .subscribe("topic=https%3A%2F%2Fexample.com%2Fbooks%2F%7Bid%7D")
        .await;
    let mut exact_v1 = hub
        .subscribe("match=https%3A%2F%2Fexample.com%2Fbooks%2F7")
        .await;
    let mut pattern = hub
        .subscribe("match_urlpattern=https%3A%2F%2Fexample.com%2Fbooks%2F%3Aid")
        .await;
    let mut draft08 = hub
        .subscribe("matchURLPattern=https%3A%2F%2Fexample.com%2Fbooks%2F%3Aid")
        .await;
    hub.publish_ok("https://example.com/authors/1", "author")
        .await;
    hub.publish_ok("https://example.com/books/7", "book").await;
    assert_eq!(all.next_event().await.data, "author");
    assert_eq!(all.next_event().await.data, "book");
    // The others skip the author: their first event is the book.
    assert_eq!(template.next_event().await.data, "book");
    assert_eq!(exact_v1.next_event().await.data, "book");
    assert_eq!(pattern.next_event().await.data, "book");
    assert_eq!(draft08.next_event().await.data, "book");
}

#[tokio::test]
async fn many_subscribers_on_one_topic_each_get_every_update_in_order() {
    let hub = TestServer::start().await;
    let mut subs = Vec::new();
    for _ in 0..20 {
        subs.push(hub.subscribe("topic=/room").await);
    }
    let mut ids = Vec::new();
    for i in 0..30 {
        ids.push(hub.publish_ok("/room", &format!("m{i}")).await);
    }
    for sub in &mut subs {
        let got = sub.event_ids(30).await;
        assert_eq!(got, ids);
    }
}

#[tokio::test]
async fn private_updates_reach_only_subscribers_granted_one_of_their_topics() {
    let hub = TestServer::start_with(|c| c.auth.anonymous = true).await;
    let mut anonymous = hub
        .subscribe_with("topic=/secret/{id}&topic=/public", &[])
        .await;
    let other = token(&[], &["/secret/other"]);
    let mut unauthorized = hub
        .subscribe_as("topic=/secret/1&topic=/public", &other)
        .await;
    // Granted through the update's alternate topic, not its canonical one.
    let granted = token(&[], &["/alias/{x}"]);
    let mut authorized = hub
        .subscribe_as("topic=/secret/1&topic=/public", &granted)
        .await;

    let r = hub
        .publish(&[
            ("topic", "/secret/1"),
            ("topic", "/alias/1"),
            ("data", "private"),
            ("private", "on"),
        ])
        .await;
    assert_eq!(r.status(), 200);
    hub.publish_ok("/public", "public").await;

    // Delivery is in order, so seeing "public" first proves "private" was never sent.
    assert_eq!(anonymous.next_event().await.data, "public");
    assert_eq!(unauthorized.next_event().await.data, "public");
    assert_eq!(authorized.next_event().await.data, "private");
    assert_eq!(authorized.next_event().await.data, "public");
}

/// Regression (issue 15.10): the old version ignored the publish status and had no authorised
/// subscriber, so it passed even when private publishes were refused.
#[tokio::test]
async fn private_updates_are_not_replayed_to_unauthorized_subscribers_either() {
    let hub = TestServer::start_with(|c| c.auth.anonymous = true).await;
    let r = hub
        .publish(&[("topic", "/s"), ("data", "private"), ("private", "on")])
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    hub.publish_ok("/s", "public").await;
    let mut anonymous = hub
        .subscribe_with("topic=/s&lastEventID=earliest", &[])
        .await;
    assert_eq!(anonymous.next_event().await.data, "public");
    // The control: a subscriber granted /s gets both, in order.
    let mut granted = hub
        .subscribe_as("topic=/s&lastEventID=earliest", &token(&[], &["/s"]))
        .await;
    assert_eq!(granted.next_event().await.data, "private");
    assert_eq!(granted.next_event().await.data, "public");
}
