//! Subscriptions as data (`--subscriptions`): each subscription's start and end is published
//! as a private update on `/.well-known/mercure/subscriptions/{topic}/{subscriber}`, and the
//! active ones can be listed.
//!
//! The events go through the ordinary publish path, so they are durable, replayable and
//! delivered only to subscribers whose token grants that reserved topic.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Serialize;
use serde_json::Value;

use crate::topic::MERCURE_PATH;
use crate::update::Update;

/// Everything but RFC 3986's unreserved characters is escaped, so a topic or subscriber id
/// fits in one path segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The path under which subscriptions are published and listed.
pub const SUBSCRIPTIONS_PATH: &str = "/.well-known/mercure/subscriptions";

/// One subscriber's subscription to one topic selector, as JSON-LD.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct SubscriptionDoc {
    /// The subscription's IRI (also the topic of its events).
    pub id: String,
    /// Always `Subscription`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The selector as the subscriber wrote it.
    pub topic: String,
    /// The subscriber's id.
    pub subscriber: String,
    /// Whether the subscription is open.
    pub active: bool,
    /// The token's payload, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<Value>,
}

#[derive(Serialize)]
struct WithContext<'a> {
    #[serde(rename = "@context")]
    context: &'static str,
    #[serde(flatten)]
    doc: &'a SubscriptionDoc,
}

/// The JSON-LD context of Mercure documents.
pub const CONTEXT: &str = "https://mercure.rocks/";

impl SubscriptionDoc {
    /// The document with its `@context`, as published in subscription events.
    pub fn to_json_ld(&self) -> String {
        serde_json::to_string(&WithContext {
            context: CONTEXT,
            doc: self,
        })
        .unwrap_or_default()
    }
}

/// The IRI of a subscription to `topic` by `subscriber`.
pub fn subscription_iri(topic: &str, subscriber: &str) -> String {
    format!(
        "{}/{}",
        topic_iri(topic),
        utf8_percent_encode(subscriber, SEGMENT)
    )
}

/// The IRI listing the subscriptions to `topic`.
pub fn topic_iri(topic: &str) -> String {
    format!(
        "{SUBSCRIPTIONS_PATH}/{}",
        utf8_percent_encode(topic, SEGMENT)
    )
}

/// The registry of active subscriptions, keyed by subscriber then topic.
#[derive(Debug, Default)]
pub struct Presence {
    active: Mutex<BTreeMap<String, Vec<SubscriptionDoc>>>,
}

impl Presence {
    /// Records a new subscriber's subscriptions; returns the updates announcing them.
    ///
    /// Each topic comes with the payload the subscriber's token attaches to it (1.0 tokens
    /// can carry a different payload per authorization detail).
    pub fn join(&self, subscriber: &str, topics: &[(String, Option<Value>)]) -> Vec<Update> {
        let docs: Vec<SubscriptionDoc> = topics
            .iter()
            .map(|(t, payload)| SubscriptionDoc {
                id: subscription_iri(t, subscriber),
                kind: "Subscription",
                topic: t.clone(),
                subscriber: subscriber.to_owned(),
                active: true,
                payload: payload.clone(),
            })
            .collect();
        let updates = docs.iter().map(event).collect();
        self.active
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(subscriber.to_owned(), docs);
        updates
    }

    /// Forgets a subscriber; returns the updates announcing the end of its subscriptions.
    pub fn leave(&self, subscriber: &str) -> Vec<Update> {
        let docs = self
            .active
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(subscriber)
            .unwrap_or_default();
        docs.into_iter()
            .map(|mut d| {
                d.active = false;
                event(&d)
            })
            .collect()
    }

    /// Active subscriptions, optionally only those to `topic` and/or by `subscriber`.
    pub fn list(&self, topic: Option<&str>, subscriber: Option<&str>) -> Vec<SubscriptionDoc> {
        let active = self.active.lock().unwrap_or_else(|e| e.into_inner());
        active
            .iter()
            .filter(|(s, _)| subscriber.is_none_or(|want| want == s.as_str()))
            .flat_map(|(_, docs)| docs.iter())
            .filter(|d| topic.is_none_or(|want| want == d.topic))
            .cloned()
            .collect()
    }
}

fn event(doc: &SubscriptionDoc) -> Update {
    debug_assert!(doc.id.starts_with(MERCURE_PATH));
    Update {
        id: Update::generate_id(),
        topics: vec![doc.id.clone()],
        data: doc.to_json_ld(),
        private: true,
        event_type: None,
        retry: None,
        published_at_ms: Update::now_ms(),
    }
}

/// Ends a subscriber's presence when its stream ends, publishing the inactive events.
pub(crate) struct PresenceGuard {
    pub(crate) hub: crate::hub::Hub,
    pub(crate) presence: Arc<Presence>,
    pub(crate) subscriber: String,
}

impl Drop for PresenceGuard {
    fn drop(&mut self) {
        let updates = self.presence.leave(&self.subscriber);
        let hub = self.hub.clone();
        // Drop cannot await; the announcement is a durable publish of its own, on the hub's
        // tracker so that shutdown stores it before closing the store.
        if tokio::runtime::Handle::try_current().is_ok() {
            let tracker = hub.tracker().clone();
            tracker.spawn(async move {
                for u in updates {
                    if let Err(err) = hub.publish_valid(u).await {
                        tracing::warn!(error = %err, "cannot publish the end of a subscription");
                    }
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iri_escapes_topic_and_subscriber_into_single_segments() {
        let iri = subscription_iri("https://example.com/books/{id}", "urn:uuid:1");
        assert_eq!(
            iri,
            "/.well-known/mercure/subscriptions/https%3A%2F%2Fexample.com%2Fbooks%2F%7Bid%7D/urn%3Auuid%3A1"
        );
    }

    #[test]
    fn join_and_leave_publish_active_then_inactive_private_events() {
        let p = Presence::default();
        let joined = p.join(
            "sub1",
            &[
                ("/a".into(), Some(serde_json::json!({"u": 1}))),
                ("/b".into(), Some(serde_json::json!({"u": 2}))),
            ],
        );
        assert_eq!(joined.len(), 2);
        assert!(
            joined
                .iter()
                .all(|u| u.private && u.topics[0].starts_with(SUBSCRIPTIONS_PATH))
        );
        let doc: Value = serde_json::from_str(&joined[0].data).unwrap();
        assert_eq!(doc["@context"], CONTEXT);
        assert_eq!(doc["type"], "Subscription");
        assert_eq!(doc["active"], true);
        assert_eq!(doc["payload"]["u"], 1);
        assert_eq!(p.list(None, None).len(), 2);
        assert_eq!(p.list(Some("/b"), None).len(), 1);
        assert_eq!(p.list(None, Some("other")).len(), 0);
        // Each subscription carries its own payload.
        let second: Value = serde_json::from_str(&joined[1].data).unwrap();
        assert_eq!(second["payload"]["u"], 2);
        let left = p.leave("sub1");
        let doc: Value = serde_json::from_str(&left[1].data).unwrap();
        assert_eq!(doc["active"], false);
        assert!(p.list(None, None).is_empty());
    }
}
