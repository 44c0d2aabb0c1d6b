//! Fan-out: who receives which update, and the bounded queue between the hub and each subscriber.
//!
//! ```text
//! store feed ──> dispatcher task ──encode once──> Bytes ──try_send──> [queue] ──> subscriber stream
//!                     │                                                 (bounded: bytes and count)
//!                     └── matches once per *group* of subscribers that share the same filter
//! ```
//!
//! Subscribers that asked for the same selectors with the same grants form a group, so an
//! update is matched once per distinct filter rather than once per connection: a thousand
//! browsers on one topic cost one match. Groups whose selectors are all exact topics are
//! indexed by topic, so many-topic traffic looks up its candidates instead of scanning.
//!
//! Backpressure: each subscriber's queue is bounded by [`QueueLimits`]. The dispatcher never
//! waits for a subscriber: one whose queue is full is cut off (its queue drains, then its
//! stream ends) and the client resumes from history with `Last-Event-ID`, losing nothing.
//! Empty groups and empty index entries are removed as soon as their last member leaves.
//!
//! Shutdown reaches live streams through their queues ([`Fanout::shut_down`]), and members
//! of a group share its filter: an idle subscriber holds no token registration and no copy of
//! the filter of its own (BENCHMARKS.md, idle memory).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use crate::hub::filter::Filter;
use crate::hub::metrics::Metrics;
use crate::hub::queue::{Delivery, Push, Queue, QueueLimits};
use crate::update::Update;
use bytes::Bytes;

/// A subscriber as the registry holds it: the dispatcher's end of its queue.
struct Member {
    queue: Arc<Queue>,
}

impl Drop for Member {
    fn drop(&mut self) {
        // Gone (a cut-off queue is already empty): the stream writes what is queued, then ends.
        self.queue.close();
    }
}

struct Group {
    filter: Arc<Filter>,
    members: HashMap<u64, Member>,
}

#[derive(Default)]
struct Registry {
    groups: HashMap<Arc<str>, Group>,
    /// Groups whose selectors are all exact topics, by topic.
    by_topic: HashMap<Arc<str>, HashSet<Arc<str>>>,
    /// Groups with at least one wildcard, template or URL-pattern selector: checked against every update.
    scan: HashSet<Arc<str>>,
    /// The hub is shutting down: members joining now are told at once (see [`Fanout::shut_down`]).
    shut_down: bool,
}

/// The subscriber registry and the dispatch step.
pub(crate) struct Fanout {
    registry: RwLock<Registry>,
    /// The last update dispatched; read under the registry's write lock it tells a new
    /// subscriber exactly which update precedes the first one it will receive live.
    last_dispatched: Mutex<Option<(u64, Arc<str>)>>,
    next_member: AtomicU64,
    limits: QueueLimits,
    metrics: Arc<Metrics>,
}

/// What a new member gets: its queue and where live delivery starts.
pub(crate) struct Membership {
    /// The member's queue, closed when the member leaves the registry.
    pub queue: Arc<Queue>,
    /// Seq and id of the last update dispatched before this member joined.
    pub joined_after: Option<(u64, Arc<str>)>,
    /// The group's filter, equal in effect to the one the member joined with (same key): a
    /// stream keeps this one, so a thousand subscribers to one topic hold one filter, not a
    /// thousand copies of it.
    pub filter: Arc<Filter>,
    /// Removes the member when dropped.
    pub guard: MemberGuard,
}

/// Removes a member from the registry when its stream ends.
pub(crate) struct MemberGuard {
    fanout: Arc<Fanout>,
    key: Arc<str>,
    id: u64,
}

impl Drop for MemberGuard {
    fn drop(&mut self) {
        self.fanout.remove(&self.key, self.id);
    }
}

impl Fanout {
    /// An empty registry.
    pub(crate) fn new(limits: QueueLimits, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Fanout {
            registry: RwLock::new(Registry::default()),
            last_dispatched: Mutex::new(None),
            next_member: AtomicU64::new(1),
            limits,
            metrics,
        })
    }

    /// Adds a subscriber with this filter, delivering into `queue`.
    pub(crate) fn join(self: &Arc<Self>, filter: Arc<Filter>, queue: Arc<Queue>) -> Membership {
        let id = self.next_member.fetch_add(1, Ordering::Relaxed);
        let member = Member {
            queue: queue.clone(),
        };
        let joined_after;
        let key;
        let filter = {
            let mut reg = self.registry.write().unwrap_or_else(|e| e.into_inner());
            joined_after = self
                .last_dispatched
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            let reg = &mut *reg;
            if reg.shut_down {
                queue.shut_down();
            }
            // An existing group's key is shared, not allocated again for every member.
            key = match reg.groups.get_key_value(filter.key()) {
                Some((key, _)) => key.clone(),
                None => {
                    let key: Arc<str> = filter.key().into();
                    match filter.exact_topics() {
                        Some(topics) => {
                            for t in topics {
                                reg.by_topic
                                    .entry(t.into())
                                    .or_default()
                                    .insert(key.clone());
                            }
                        }
                        None => {
                            reg.scan.insert(key.clone());
                        }
                    }
                    reg.groups.insert(
                        key.clone(),
                        Group {
                            filter,
                            members: HashMap::new(),
                        },
                    );
                    key
                }
            };
            let group = reg.groups.get_mut(&key).expect("group present");
            group.members.insert(id, member);
            group.filter.clone()
        };
        Membership {
            queue,
            joined_after,
            filter,
            guard: MemberGuard {
                fanout: self.clone(),
                key,
                id,
            },
        }
    }

    /// Tells every member, and every member joining from now on, that the hub is shutting
    /// down: one pass at shutdown instead of a shutdown registration held by every stream.
    pub(crate) fn shut_down(&self) {
        let mut reg = self.registry.write().unwrap_or_else(|e| e.into_inner());
        reg.shut_down = true;
        for group in reg.groups.values() {
            for m in group.members.values() {
                m.queue.shut_down();
            }
        }
    }

    fn remove(&self, key: &Arc<str>, id: u64) {
        let mut reg = self.registry.write().unwrap_or_else(|e| e.into_inner());
        let reg = &mut *reg;
        let Some(group) = reg.groups.get_mut(key) else {
            return;
        };
        group.members.remove(&id);
        if !group.members.is_empty() {
            return;
        }
        let group = reg.groups.remove(key).expect("group present");
        match group.filter.exact_topics() {
            Some(topics) => {
                for t in topics {
                    if let Some(set) = reg.by_topic.get_mut(t) {
                        set.remove(key);
                        if set.is_empty() {
                            reg.by_topic.remove(t);
                        }
                    }
                }
            }
            None => {
                reg.scan.remove(key);
            }
        }
    }

    /// Records where history stood before this process dispatched anything.
    pub(crate) fn seed(&self, seq: u64, id: &str) {
        let mut last = self
            .last_dispatched
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if last.is_none() {
            *last = Some((seq, id.into()));
        }
    }

    /// Seq and id of the last update dispatched.
    pub(crate) fn last_dispatched(&self) -> Option<(u64, Arc<str>)> {
        self.last_dispatched
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Number of distinct filters currently subscribed (for metrics and tests).
    pub(crate) fn group_count(&self) -> usize {
        self.registry
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .groups
            .len()
    }

    /// Whether anyone joined would receive a public update on `topic`: an index lookup, then
    /// the groups that must be scanned anyway.
    pub(crate) fn has_subscribers(&self, topic: &str) -> bool {
        let reg = self.registry.read().unwrap_or_else(|e| e.into_inner());
        reg.by_topic.contains_key(topic)
            || reg
                .scan
                .iter()
                .filter_map(|key| reg.groups.get(key))
                .any(|group| group.filter.selects(topic))
    }

    /// Delivers a batch of stored updates, each encoded once, to every matching member.
    ///
    /// Never blocks on a subscriber: a member whose queue is full is cut off.
    pub(crate) fn dispatch(&self, batch: &[(u64, &Update, Bytes)]) {
        let mut cut: Vec<(Arc<str>, u64)> = Vec::new();
        let mut delivered = 0u64;
        {
            let reg = self.registry.read().unwrap_or_else(|e| e.into_inner());
            let mut seen: HashSet<&Arc<str>> = HashSet::new();
            for (seq, update, bytes) in batch {
                seen.clear();
                let by_topic = update
                    .topics
                    .iter()
                    .filter_map(|t| reg.by_topic.get(t.as_str()))
                    .flatten();
                for key in reg.scan.iter().chain(by_topic) {
                    if update.topics.len() > 1 && !seen.insert(key) {
                        continue;
                    }
                    let Some(group) = reg.groups.get(key) else {
                        continue;
                    };
                    if !group.filter.matches(update) {
                        continue;
                    }
                    for (id, m) in &group.members {
                        match self.offer(m, *seq, bytes) {
                            Push::Queued => delivered += 1,
                            // Counted and removed once, however many updates follow in the batch.
                            Push::Overflowed => cut.push((key.clone(), *id)),
                            Push::Closed => {}
                        }
                    }
                }
            }
            if let Some((seq, update, _)) = batch.last() {
                *self
                    .last_dispatched
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = Some((*seq, update.id.as_str().into()));
            }
        }
        self.metrics
            .deliveries
            .fetch_add(delivered, Ordering::Relaxed);
        if !cut.is_empty() {
            self.metrics
                .laggards_cut
                .fetch_add(cut.len() as u64, Ordering::Relaxed);
            for (key, id) in cut {
                tracing::debug!(
                    subscriber = id,
                    "subscriber fell behind; cutting it off so it resumes from history"
                );
                self.remove(&key, id);
            }
        }
    }

    /// Queues one delivery; [`Push::Overflowed`] when the member just went over its bounds (and
    /// must be cut off).
    fn offer(&self, m: &Member, seq: u64, bytes: &Bytes) -> Push {
        m.queue.push(
            Delivery {
                seq,
                bytes: bytes.clone(),
            },
            &self.limits,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::HubOptions;
    use crate::topic::Selector;

    fn update(n: u64) -> Update {
        Update {
            id: format!("u{n}"),
            topics: vec!["/t".into()],
            data: "x".into(),
            private: false,
            event_type: None,
            retry: None,
            published_at_ms: 0,
        }
    }

    #[test]
    fn a_laggard_is_cut_off_and_counted_once_however_long_the_batch() {
        let metrics = Arc::new(Metrics::default());
        let limits = QueueLimits {
            queue_bytes: usize::MAX,
            queue_events: 2,
        };
        let fanout = Fanout::new(limits, metrics.clone());
        let topic = Arc::new(Selector::Exact("/t".into()));
        let member = fanout.join(
            Arc::new(Filter::new(vec![("/t".into(), topic)], Vec::new())),
            Arc::default(),
        );
        let updates: Vec<Update> = (1..=10).map(update).collect();
        let batch: Vec<(u64, &Update, Bytes)> = updates
            .iter()
            .enumerate()
            .map(|(i, u)| (i as u64 + 1, u, Bytes::from_static(b"data: x\n\n")))
            .collect();
        fanout.dispatch(&batch);
        assert_eq!(metrics.laggards_cut.load(Ordering::Relaxed), 1);
        assert_eq!(metrics.deliveries.load(Ordering::Relaxed), 2);
        assert_eq!(fanout.group_count(), 0, "the laggard left the registry");
        // Its backlog is dropped with the cut: its stream ends at once.
        assert!(member.queue.try_pop().is_none());
    }

    #[test]
    fn has_subscribers_sees_exact_and_template_members_until_they_leave() {
        let fanout = Fanout::new(HubOptions::default().limits, Arc::default());
        let exact = Arc::new(Selector::Exact("/demo/a".into()));
        let template = Arc::new(Selector::parse_topic("/demo/ticker/{symbol}").unwrap());
        assert!(!fanout.has_subscribers("/demo/a"));
        let a = fanout.join(
            Arc::new(Filter::new(vec![("e:/demo/a".into(), exact)], Vec::new())),
            Arc::default(),
        );
        let b = fanout.join(
            Arc::new(Filter::new(
                vec![("t:/demo/ticker/{symbol}".into(), template)],
                Vec::new(),
            )),
            Arc::default(),
        );
        assert!(fanout.has_subscribers("/demo/a"));
        assert!(fanout.has_subscribers("/demo/ticker/ACME"));
        assert!(!fanout.has_subscribers("/demo/b"));
        drop(a);
        assert!(!fanout.has_subscribers("/demo/a"));
        drop(b);
        assert!(!fanout.has_subscribers("/demo/ticker/ACME"));
    }
}
