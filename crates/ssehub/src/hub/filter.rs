//! What one subscriber receives: its topic selectors and, for private updates, its grants.

use std::fmt::Write as _;
use std::sync::Arc;

use crate::topic::Selector;
use crate::update::Update;

/// A subscriber's filter. Two subscribers with equal [`Filter::key`]s receive exactly the
/// same updates, which is what lets the fan-out match once per group.
#[derive(Debug)]
pub struct Filter {
    /// Selectors the subscriber asked for, each with the text it was written as.
    selectors: Vec<(String, Arc<Selector>)>,
    /// Topic selectors the subscriber's token grants: a private update reaches the subscriber
    /// only if one of these matches one of the update's topics.
    grants: Vec<(String, Arc<Selector>)>,
    key: String,
}

impl Filter {
    /// A filter from (text, compiled) pairs; text identifies the selector in the group key.
    pub fn new(
        mut selectors: Vec<(String, Arc<Selector>)>,
        mut grants: Vec<(String, Arc<Selector>)>,
    ) -> Self {
        selectors.sort_by(|a, b| a.0.cmp(&b.0));
        selectors.dedup_by(|a, b| a.0 == b.0);
        grants.sort_by(|a, b| a.0.cmp(&b.0));
        grants.dedup_by(|a, b| a.0 == b.0);
        // Length-prefixed parts make the key unambiguous whatever characters selectors contain.
        let mut key = String::new();
        for (text, _) in &selectors {
            let _ = write!(key, "s{}:{text}", text.len());
        }
        key.push('|');
        for (text, _) in &grants {
            let _ = write!(key, "g{}:{text}", text.len());
        }
        Filter {
            selectors,
            grants,
            key,
        }
    }

    /// Identifies the set of updates this filter lets through.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The topics, when every selector is an exact topic (so the fan-out can index it).
    pub fn exact_topics(&self) -> Option<impl Iterator<Item = &str>> {
        fn exact(s: &Selector) -> Option<&str> {
            match s {
                Selector::Exact(t) => Some(t.as_str()),
                _ => None,
            }
        }
        if self.selectors.iter().all(|(_, s)| exact(s).is_some()) {
            Some(self.selectors.iter().filter_map(|(_, s)| exact(s)))
        } else {
            None
        }
    }

    /// Whether this update reaches a subscriber with this filter.
    pub fn matches(&self, update: &Update) -> bool {
        let wanted = update
            .topics
            .iter()
            .any(|t| self.selectors.iter().any(|(_, s)| s.matches(t)));
        wanted && (!update.private || self.grants_any(&update.topics))
    }

    /// Whether one of the selectors matches `topic` (grants aside).
    pub fn selects(&self, topic: &str) -> bool {
        self.selectors.iter().any(|(_, s)| s.matches(topic))
    }

    /// Whether the grants cover at least one of these topics.
    pub fn grants_any(&self, topics: &[String]) -> bool {
        topics
            .iter()
            .any(|t| self.grants.iter().any(|(_, s)| s.matches(t)))
    }
}
