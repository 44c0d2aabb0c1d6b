//! Subscriptions as data (`--subscriptions`): each subscription's start and end is published
//! as a private update on `/.well-known/mercure/subscriptions/{topic}/{subscriber}`, and the
//! active ones, on every node sharing the store, can be listed.
//!
//! The events go through the ordinary publish path, so they are durable, replayable and
//! delivered only to subscribers whose token grants that reserved topic. They are also how the
//! nodes sharing a store learn of each other's subscribers: an event names the node its
//! subscriber is connected to (`"ssehub": {"node": …}`), each node applies the other nodes'
//! events from the feed (and, when it starts, from history), and keeps its own subscribers
//! itself, from join to leave.
//!
//! A node that is gone (its lease ran out, see `nodes`) cannot say goodbye, so the others end
//! its subscriptions. Such an end event's id is derived from the event that announced the
//! subscription (`{announcement id}-gone`), so nodes cleaning up at once store it once (the
//! store refuses a duplicate id). A node's own leave gets a fresh, time-ordered id like any
//! update: the hub's `Last-Event-ID` often names the newest event, and clients (the demo
//! pages) compare such ids by time; a leave that comes after a cleanup after all is a second,
//! harmless end event. A node whose lease ran out while it was still serving (it could not
//! reach the store) announces its subscribers again when it finds out.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::hub::PublishError;
use crate::hub::nodes::Liveness;
use crate::store::{Cursor, Store, StoreError, Stored};
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

/// The JSON-LD context of Mercure documents.
pub const CONTEXT: &str = "https://mercure.rocks/";

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

/// The registry of active subscriptions: this node's, and the other nodes' as their events
/// told.
#[derive(Debug)]
pub struct Presence {
    /// This node: its own subscribers are kept from join to leave, never from events.
    node: String,
    /// Locked briefly, never across an await.
    registry: Mutex<Registry>,
}

#[derive(Debug)]
struct Registry {
    /// This node's subscribers: subscriber -> its subscriptions.
    local: BTreeMap<String, Vec<Local>>,
    /// Other nodes' active subscriptions, by IRI.
    remote: HashMap<String, Remote>,
    /// While history from before this node started is being read (`Some`): IRIs whose end
    /// arrived live, so that the older announcement, read later, does not bring them back.
    ended_live: Option<HashSet<String>>,
}

/// One of this node's subscriptions.
#[derive(Debug)]
struct Local {
    doc: SubscriptionDoc,
    /// Id of the event that announced it, from which its end event's id is derived.
    announced: String,
}

/// Another node's subscription.
#[derive(Debug)]
struct Remote {
    doc: SubscriptionDoc,
    /// The node its subscriber is connected to ("" for events of versions that did not say).
    node: String,
    /// Id of the event that announced it.
    announced: String,
    /// Seq of that event: an older event read from history does not undo a newer one.
    seq: u64,
    /// When this node learnt of it: only a later answer about the node's lease counts.
    learnt: Instant,
}

/// The id of the event ending the subscription announced by event `announced`.
fn gone_id(announced: &str) -> String {
    format!("{announced}-gone")
}

impl Presence {
    /// An empty registry for node `node`; it expects history to be read (see [`recall`]).
    pub(crate) fn new(node: &str) -> Self {
        Presence {
            node: node.to_owned(),
            registry: Mutex::new(Registry {
                local: BTreeMap::new(),
                remote: HashMap::new(),
                ended_live: Some(HashSet::new()),
            }),
        }
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a new subscriber's subscriptions; returns the updates announcing them.
    ///
    /// Each topic comes with the payload the subscriber's token attaches to it (1.0 tokens
    /// can carry a different payload per authorization detail).
    pub fn join(&self, subscriber: &str, topics: &[(String, Option<Value>)]) -> Vec<Update> {
        let locals: Vec<Local> = topics
            .iter()
            .map(|(t, payload)| Local {
                doc: SubscriptionDoc {
                    id: subscription_iri(t, subscriber),
                    kind: "Subscription",
                    topic: t.clone(),
                    subscriber: subscriber.to_owned(),
                    active: true,
                    payload: payload.clone(),
                },
                announced: Update::generate_id(),
            })
            .collect();
        let updates = locals
            .iter()
            .map(|l| event(&l.doc, &self.node, l.announced.clone()))
            .collect();
        self.registry().local.insert(subscriber.to_owned(), locals);
        updates
    }

    /// Forgets a subscriber; returns the updates announcing the end of its subscriptions.
    pub fn leave(&self, subscriber: &str) -> Vec<Update> {
        let locals = self.registry().local.remove(subscriber).unwrap_or_default();
        locals
            .into_iter()
            .map(|mut l| {
                l.doc.active = false;
                event(&l.doc, &self.node, Update::generate_id())
            })
            .collect()
    }

    /// Active subscriptions on every node, optionally only those to `topic` and/or by
    /// `subscriber`, by subscriber then topic.
    pub fn list(&self, topic: Option<&str>, subscriber: Option<&str>) -> Vec<SubscriptionDoc> {
        let registry = self.registry();
        let mut docs: Vec<SubscriptionDoc> = registry
            .local
            .values()
            .flatten()
            .map(|l| &l.doc)
            .chain(registry.remote.values().map(|r| &r.doc))
            .filter(|d| subscriber.is_none_or(|want| want == d.subscriber))
            .filter(|d| topic.is_none_or(|want| want == d.topic))
            .cloned()
            .collect();
        drop(registry);
        docs.sort_by(|a, b| (&a.subscriber, &a.topic).cmp(&(&b.subscriber, &b.topic)));
        docs
    }

    /// Applies a subscription event delivered live (from any node, in seq order).
    pub(crate) fn observe(&self, stored: &Stored) {
        self.apply(stored, false);
    }

    fn apply(&self, stored: &Stored, from_history: bool) {
        let Some((doc, node)) = parse(&stored.update) else {
            return;
        };
        if node == self.node {
            return;
        }
        let mut registry = self.registry();
        let iri = doc.id.clone();
        if from_history
            && (registry
                .ended_live
                .as_ref()
                .is_some_and(|e| e.contains(&iri))
                || registry
                    .remote
                    .get(&iri)
                    .is_some_and(|r| r.seq > stored.seq))
        {
            return;
        }
        if doc.active {
            let remote = Remote {
                doc,
                node,
                announced: stored.update.id.clone(),
                seq: stored.seq,
                learnt: Instant::now(),
            };
            registry.remote.insert(iri, remote);
        } else {
            registry.remote.remove(&iri);
            if !from_history && let Some(ended) = registry.ended_live.as_mut() {
                ended.insert(iri);
            }
        }
    }

    /// Ends the subscriptions of nodes `liveness` shows gone; returns the end events to
    /// publish.
    pub(crate) fn reap(&self, liveness: &Liveness) -> Vec<Update> {
        let mut registry = self.registry();
        let gone: Vec<String> = registry
            .remote
            .iter()
            .filter(|(_, r)| liveness.gone(&r.node, r.learnt))
            .map(|(iri, _)| iri.clone())
            .collect();
        gone.iter()
            .filter_map(|iri| registry.remote.remove(iri))
            .map(|r| {
                let mut doc = r.doc;
                doc.active = false;
                event(&doc, &r.node, gone_id(&r.announced))
            })
            .collect()
    }

    /// Announces every subscription of this node again, under new ids (after its lease ran
    /// out, the others may have ended them).
    pub(crate) fn reannounce(&self) -> Vec<Update> {
        let mut registry = self.registry();
        let mut updates = Vec::new();
        for local in registry.local.values_mut().flatten() {
            local.announced = Update::generate_id();
            updates.push(event(&local.doc, &self.node, local.announced.clone()));
        }
        updates
    }
}

/// Whether `update` is a subscription event (only the hub writes that topic space).
pub(crate) fn is_event(update: &Update) -> bool {
    update.private
        && update
            .topics
            .first()
            .is_some_and(|t| t.starts_with(SUBSCRIPTIONS_PATH))
}

/// A subscription event's document and node, if it is one.
fn parse(update: &Update) -> Option<(SubscriptionDoc, String)> {
    if !is_event(update) {
        return None;
    }
    let v: Value = serde_json::from_str(&update.data).ok()?;
    if v["type"] != "Subscription" {
        return None;
    }
    let doc = SubscriptionDoc {
        id: update.topics[0].clone(),
        kind: "Subscription",
        topic: v["topic"].as_str()?.to_owned(),
        subscriber: v["subscriber"].as_str()?.to_owned(),
        active: v["active"].as_bool()?,
        payload: v.get("payload").filter(|p| !p.is_null()).cloned(),
    };
    let node = v["ssehub"]["node"].as_str().unwrap_or_default().to_owned();
    Some((doc, node))
}

/// The event publishing `doc`, whose subscriber is connected to `node`, with id `id`.
fn event(doc: &SubscriptionDoc, node: &str, id: String) -> Update {
    debug_assert!(doc.id.starts_with(MERCURE_PATH));
    #[derive(Serialize)]
    struct Published<'a> {
        #[serde(rename = "@context")]
        context: &'static str,
        #[serde(flatten)]
        doc: &'a SubscriptionDoc,
        ssehub: Extension<'a>,
    }
    /// What the hub adds to the Mercure document, under its own name.
    #[derive(Serialize)]
    struct Extension<'a> {
        node: &'a str,
    }
    let published = Published {
        context: CONTEXT,
        doc,
        ssehub: Extension { node },
    };
    Update {
        id,
        topics: vec![doc.id.clone()],
        data: serde_json::to_string(&published).unwrap_or_default(),
        private: true,
        event_type: None,
        retry: None,
        published_at_ms: Update::now_ms(),
    }
}

/// Reads the subscription events history holds through seq `through` (where this node's live
/// delivery starts), so the subscribers other nodes announced before this one started are
/// known too. A read that fails is retried every second until shutdown.
pub(crate) async fn recall(
    store: Arc<dyn Store>,
    presence: Arc<Presence>,
    through: u64,
    page: usize,
    shutdown: CancellationToken,
) {
    // Seq 0 precedes all history, pruned or not.
    let mut after = 0;
    while after < through {
        let replay = match store.read_after(Cursor::Seq(after), page).await {
            Ok(replay) => replay,
            Err(err) => {
                tracing::warn!(error = %err, "cannot read history for the subscriptions of other nodes; retrying");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        for stored in replay.updates.iter().take_while(|s| s.seq <= through) {
            presence.apply(stored, true);
        }
        match replay.updates.last() {
            Some(last) if replay.more => after = last.seq,
            _ => break,
        }
    }
    presence.registry().ended_live = None;
}

/// Ends the subscriptions of the nodes that are gone, and announces this node's again after
/// its own lease ran out, until shutdown.
pub(crate) async fn follow_nodes(
    hub: crate::hub::Hub,
    presence: Arc<Presence>,
    mut liveness: watch::Receiver<Liveness>,
    shutdown: CancellationToken,
) {
    let mut lapses = liveness.borrow().lapses();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            changed = liveness.changed() => if changed.is_err() { return },
        }
        let now = liveness.borrow_and_update().clone();
        let mut updates = presence.reap(&now);
        if !updates.is_empty() {
            tracing::info!(
                subscriptions = updates.len(),
                "ending the subscriptions of nodes that are gone"
            );
        }
        if now.lapses() > lapses {
            lapses = now.lapses();
            updates.extend(presence.reannounce());
        }
        for update in updates {
            match hub.publish_valid(update).await {
                Ok(_) | Err(PublishError::Store(StoreError::Duplicate { .. })) => {}
                Err(err) => tracing::warn!(error = %err, "cannot publish a subscription event"),
            }
        }
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
        let p = Presence::new("node_a");
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
        assert_eq!(doc["ssehub"]["node"], "node_a");
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

    fn stored(seq: u64, update: Update) -> Stored {
        Stored {
            seq,
            update: Arc::new(update),
        }
    }

    /// Node b's subscriber `sub` to `/t`: its announcement and, ended by b, its end.
    fn from_node_b(sub: &str) -> (Update, Update) {
        let b = Presence::new("node_b");
        let joined = b.join(sub, &[("/t".into(), None)]).remove(0);
        (joined, b.leave(sub).remove(0))
    }

    #[test]
    fn other_nodes_subscriptions_are_listed_from_their_events_and_this_nodes_are_kept_here() {
        let a = Presence::new("node_a");
        let (joined, left) = from_node_b("s1");
        a.observe(&stored(1, joined));
        let listed = a.list(Some("/t"), None);
        assert_eq!(listed.len(), 1);
        assert_eq!(
            (listed[0].subscriber.as_str(), listed[0].active),
            ("s1", true)
        );
        a.observe(&stored(2, left));
        assert!(a.list(None, None).is_empty());
        // This node's own events coming back from the feed change nothing: its subscriber
        // left before the feed delivered its announcement.
        let own = a.join("mine", &[("/t".into(), None)]).remove(0);
        let own_left = a.leave("mine").remove(0);
        a.observe(&stored(3, own));
        assert!(a.list(None, None).is_empty());
        a.observe(&stored(4, own_left));
    }

    #[test]
    fn history_read_at_start_does_not_bring_back_what_ended_live() {
        let a = Presence::new("node_a");
        let (joined, left) = from_node_b("ended");
        let (still, _) = from_node_b("still");
        // Live delivery starts after seq 10; the end of "ended" arrives before the history
        // holding its announcement is read.
        a.observe(&stored(11, left));
        a.apply(&stored(3, joined), true);
        a.apply(&stored(4, still), true);
        let listed: Vec<String> = a
            .list(None, None)
            .into_iter()
            .map(|d| d.subscriber)
            .collect();
        assert_eq!(listed, ["still"]);
    }

    #[test]
    fn a_gone_nodes_subscriptions_end_once_under_an_id_derived_from_the_announcement() {
        let a = Presence::new("node_a");
        let (joined, left) = from_node_b("s1");
        let announced = joined.id.clone();
        a.observe(&stored(1, joined));
        let before = Instant::now();
        let learnt_late = Liveness::for_tests(&["node_a"], before - Duration::from_secs(1));
        assert!(
            a.reap(&learnt_late).is_empty(),
            "asked before it was learnt"
        );
        assert!(
            a.reap(&Liveness::for_tests(&["node_a", "node_b"], before))
                .is_empty()
        );
        let ended = a.reap(&Liveness::for_tests(&["node_a"], Instant::now()));
        assert_eq!(ended.len(), 1);
        assert_eq!(
            ended[0].id,
            gone_id(&announced),
            "derived: nodes ending it at once store it once"
        );
        assert_ne!(
            ended[0].id, left.id,
            "a node's own leave has a fresh, time-ordered id"
        );
        assert_eq!(
            (&ended[0].topics, &ended[0].data),
            (&left.topics, &left.data)
        );
        assert!(a.list(None, None).is_empty());
    }

    #[test]
    fn reannouncing_gives_this_nodes_subscriptions_new_ids() {
        let a = Presence::new("node_a");
        let first = a.join("s1", &[("/t".into(), None)]).remove(0);
        let again = a.reannounce().remove(0);
        assert_ne!(first.id, again.id);
        assert_eq!((&first.topics, &first.data), (&again.topics, &again.data));
        let left = a.leave("s1").remove(0);
        assert!(
            left.id.starts_with("urn:uuid:") && left.id > again.id,
            "{}",
            left.id
        );
    }
}
