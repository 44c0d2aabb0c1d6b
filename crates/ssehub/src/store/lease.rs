//! Node leases: how the nodes sharing a store tell which of them are alive (see
//! [`Store::renew_lease`](super::Store::renew_lease)).
//!
//! A lease is kept by the store, not carried in history: liveness is a question about now,
//! and heartbeats in history would grow it and count against `--history-max-events`. A node
//! renews its lease every fraction of its time to live; a node whose lease ran out stopped
//! renewing (it died, or cannot reach the store), and the others may clean up after it:
//! end the answers it was generating, remove its subscribers.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Who shares a store, as one lease renewal saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leases {
    /// Nodes whose lease is current, the caller included, in no particular order.
    pub live: Vec<String>,
    /// Whether the caller held no current lease before this renewal (its first, or its lease
    /// ran out meanwhile): the other nodes may have taken it for gone and cleaned up after it.
    pub lapsed: bool,
    /// Whether a node missing from `live` has really stopped renewing. False until the store
    /// has seen renewals go on without a break for a whole time to live (after it started,
    /// lost its data, or could be reached by nobody): a node alive then may not have had its
    /// turn to renew yet.
    pub conclusive: bool,
}

/// The leases of a store used by one process: an in-memory table.
///
/// Every answer is conclusive: only this process can use such a store (the embedded store
/// locks its file), and a hub renews its lease before it records anything, so a node that is
/// not in the table is not running.
#[derive(Debug, Default)]
pub(crate) struct LocalLeases {
    /// Node -> when its lease runs out.
    until: Mutex<HashMap<String, Instant>>,
}

impl LocalLeases {
    pub(crate) fn renew(&self, node: &str, ttl: Duration) -> Leases {
        let now = Instant::now();
        let mut until = self.until.lock().unwrap_or_else(|e| e.into_inner());
        until.retain(|_, end| *end > now);
        let lapsed = until.insert(node.to_owned(), now + ttl).is_none();
        Leases {
            live: until.keys().cloned().collect(),
            lapsed,
            conclusive: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_not_renewed_within_its_time_to_live_is_gone() {
        let leases = LocalLeases::default();
        assert!(leases.renew("a", Duration::ZERO).lapsed);
        let b = leases.renew("b", Duration::from_secs(60));
        assert!(b.lapsed && b.conclusive);
        assert_eq!(b.live, ["b"], "a's lease had no time to live");
        assert!(!leases.renew("b", Duration::from_secs(60)).lapsed);
    }
}
