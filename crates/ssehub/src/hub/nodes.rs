//! The nodes sharing the hub's store: this node's id and lease, and which nodes are alive.
//!
//! Each running hub is a node, named at random when it starts, so a restarted process is a
//! new node and its predecessor is gone. It renews its lease in the store
//! ([`Store::renew_lease`]) every quarter of the lease time (`--node-lease`), so a few renewals
//! may fail or come late before the others take it for gone. Every renewal answers with the
//! nodes alive, published as a [`Liveness`] that presence and the relay watch, to remove the
//! subscribers of a node that is gone and end the answers it was generating.
//!
//! A node is taken for gone only on evidence: a conclusive answer (see
//! [`Leases::conclusive`](crate::store::Leases)) asked *after* the thing that names the node was
//! learnt, so a node that started a moment ago, and that the last answer could not list yet,
//! is never taken for gone. Bound: a node that stops is taken for gone at most a lease time
//! and a renewal period after its last renewal.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::store::{Leases, Store};

/// The shortest lease taken, whatever is asked.
const MIN_LEASE: Duration = Duration::from_millis(40);

/// Which nodes were alive at the last renewal of this node's lease.
#[derive(Clone, Debug, Default)]
pub struct Liveness {
    /// Nodes holding a current lease, this one included.
    live: Arc<HashSet<String>>,
    /// See [`Leases::conclusive`].
    conclusive: bool,
    /// When the renewal that produced this was sent; `None` before the first success.
    asked_at: Option<Instant>,
    /// Times this node found its own lease run out after it had held one: the others may have
    /// taken it for gone meanwhile, and what they cleaned up must be made good.
    lapses: u64,
    /// Whether this node ever held a lease (its first renewal always finds none).
    held: bool,
}

impl Liveness {
    /// Whether `node` is known to be gone: a conclusive answer asked at or after `known_since`
    /// does not list it. A node id that no node uses (an empty one) is gone as soon as an
    /// answer is conclusive.
    #[must_use]
    pub fn gone(&self, node: &str, known_since: Instant) -> bool {
        self.conclusive
            && self.asked_at.is_some_and(|at| at >= known_since)
            && !self.live.contains(node)
    }

    /// How many times this node's own lease ran out after it had held one.
    #[must_use]
    pub fn lapses(&self) -> u64 {
        self.lapses
    }

    /// A conclusive answer listing `live`, asked at `asked_at`.
    #[cfg(test)]
    pub(crate) fn for_tests(live: &[&str], asked_at: Instant) -> Liveness {
        Liveness {
            live: Arc::new(live.iter().map(|n| (*n).to_owned()).collect()),
            conclusive: true,
            asked_at: Some(asked_at),
            lapses: 0,
            held: true,
        }
    }

    /// This answer followed by `leases`, asked at `asked_at`.
    fn then(&self, leases: Leases, asked_at: Instant) -> Liveness {
        Liveness {
            live: Arc::new(leases.live.into_iter().collect()),
            conclusive: leases.conclusive,
            asked_at: Some(asked_at),
            lapses: self.lapses + u64::from(leases.lapsed && self.held),
            held: true,
        }
    }
}

/// This node and what it knows of the others.
pub struct Nodes {
    /// `node_` and 64 random bits: recorded with what this node owns (answers, subscribers).
    id: String,
    /// How long a lease lasts without renewal.
    lease: Duration,
    /// Where leases are kept.
    store: Arc<dyn Store>,
    /// The latest answer; renewals made for a question (see [`Nodes::is_gone`]) land here too.
    liveness: watch::Sender<Liveness>,
}

impl Nodes {
    /// Names this node, takes its lease (a failure is logged: the renewals retry) and renews
    /// it until `shutdown`. The lease is not given back at shutdown: the node's own goodbyes
    /// (the ends of its answers and subscriptions) come first, and the others clean up only
    /// what remains once it runs out.
    pub(crate) async fn start(
        store: Arc<dyn Store>,
        lease: Duration,
        shutdown: CancellationToken,
        tracker: &TaskTracker,
    ) -> Arc<Nodes> {
        let bits: u64 = rand::random();
        let nodes = Arc::new(Nodes {
            id: format!("node_{bits:016x}"),
            // Renewed every quarter: a zero period would panic, and one shorter than a few
            // round trips to the store would let the lease lapse all the time.
            lease: lease.max(MIN_LEASE),
            store,
            liveness: watch::Sender::new(Liveness::default()),
        });
        tracing::info!(node = %nodes.id, lease = ?nodes.lease, "this hub's node id");
        let ok = nodes.renew().await;
        if !ok {
            tracing::warn!(node = %nodes.id, "cannot take this node's lease; retrying");
        }
        tracker.spawn(nodes.clone().renew_loop(ok, shutdown));
        nodes
    }

    /// This node's id.
    #[must_use]
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Every answer from now on (and the latest at once).
    #[must_use]
    pub fn liveness(&self) -> watch::Receiver<Liveness> {
        self.liveness.subscribe()
    }

    /// Whether `node` is known to be gone now. Asks the store afresh unless the latest answer
    /// lists it; a store that does not answer proves nothing (false).
    pub async fn is_gone(&self, node: &str) -> bool {
        if node == self.id || self.liveness.borrow().live.contains(node) {
            return false;
        }
        let now = Instant::now();
        self.renew().await;
        self.liveness.borrow().gone(node, now)
    }

    /// One renewal; publishes the answer unless a later-asked one is already out.
    async fn renew(&self) -> bool {
        let asked_at = Instant::now();
        match self.store.renew_lease(&self.id, self.lease).await {
            Ok(leases) => {
                if leases.lapsed && self.liveness.borrow().held {
                    tracing::warn!(node = %self.id, "this node's lease had run out: the other nodes may have taken it for gone");
                }
                self.liveness.send_if_modified(|now| {
                    if now.asked_at.is_some_and(|at| at > asked_at) {
                        return false;
                    }
                    *now = now.then(leases, asked_at);
                    true
                });
                true
            }
            Err(err) => {
                tracing::debug!(node = %self.id, error = %err, "cannot renew this node's lease");
                false
            }
        }
    }

    async fn renew_loop(self: Arc<Self>, mut ok: bool, shutdown: CancellationToken) {
        let mut ticks = tokio::time::interval(self.lease / 4);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticks.tick() => {}
            }
            let was_ok = ok;
            ok = self.renew().await;
            if was_ok && !ok {
                tracing::warn!(node = %self.id, "cannot renew this node's lease; retrying (others take this node for gone once it runs out)");
            } else if ok && !was_ok {
                tracing::info!(node = %self.id, "this node's lease is renewed again");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leases(live: &[&str], lapsed: bool, conclusive: bool) -> Leases {
        Leases {
            live: live.iter().map(|n| (*n).to_owned()).collect(),
            lapsed,
            conclusive,
        }
    }

    #[tokio::test]
    async fn a_zero_lease_is_raised_so_that_renewals_go_on() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::redb::RedbStore::open(dir.path(), Default::default()).unwrap();
        let shutdown = CancellationToken::new();
        let nodes = Nodes::start(
            Arc::new(store),
            Duration::ZERO,
            shutdown.clone(),
            &TaskTracker::new(),
        )
        .await;
        let mut liveness = nodes.liveness();
        for _ in 0..3 {
            liveness.borrow_and_update();
            tokio::time::timeout(Duration::from_secs(10), liveness.changed())
                .await
                .expect("renewals stopped")
                .unwrap();
        }
        assert!(liveness.borrow().live.contains(nodes.id()));
        shutdown.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn a_node_is_gone_only_by_a_conclusive_answer_asked_after_it_was_known() {
        let start = Instant::now();
        let first = Liveness::default().then(leases(&["a"], true, true), start);
        assert!(first.gone("b", start));
        tokio::time::advance(Duration::from_secs(1)).await;
        // b was learnt of after the answer was asked: it may have started since.
        assert!(!first.gone("b", Instant::now()));
        assert!(!first.gone("a", start));
        let unsure = first.then(leases(&["a"], false, false), Instant::now());
        assert!(!unsure.gone("b", start), "inconclusive");
        assert_eq!(unsure.lapses(), 0, "the first renewal's lapse is no news");
        let lapsed = unsure.then(leases(&["a"], true, true), Instant::now());
        assert_eq!(lapsed.lapses(), 1);
    }
}
