//! This node's numbering of the shared history: Redis seqs shifted by a per-generation offset.
//!
//! The hub orders everything by seq and assumes seqs only grow: the dispatcher drops an entry
//! whose seq it has passed, a stream skips live entries up to the head it replayed. Redis can
//! lose history, though: FLUSHALL, a restart without persistence or failover to an empty
//! replica start a new history (a new epoch) numbered from 1 again, and a restart from an AOF
//! synced every second, or failover to a lagging replica, keeps the epoch but forgets the last
//! entries, whose seqs are then assigned to new updates. Handed to the hub as they are, those
//! seqs would be dropped as already seen.
//!
//! So the seq this store hands out is `offset + redis seq`. Each time this node learns that the
//! history it follows is gone (another epoch) or shorter than what it saw (same epoch, head
//! below the highest seq it saw, or a delivered entry replaced), it starts a new *generation*
//! whose offset lies [`GAP`] beyond every seq handed out before. Seqs keep growing on this
//! node, every position from before is recognisably stale, and the hub needs no second path.
//! Seqs are therefore this node's own: two nodes may number one update differently (only ids
//! cross nodes, in `Last-Event-ID`), and equal Redis seqs on all nodes until history is lost.

use std::collections::VecDeque;
use std::sync::Arc;

/// Distance between generations. A generation's seqs stay below the next one's as long as
/// fewer than this many entries were appended that this node never heard of (4 billion).
pub(super) const GAP: u64 = 1 << 32;

/// Generations remembered for mapping old positions; older ones are simply stale.
const KEPT: usize = 16;

/// A stretch of time during which this node followed one unbroken history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Generation {
    /// Counts generations on this node: a reply only counts for the generation it was asked in.
    pub(super) id: u64,
    /// The Redis epoch followed.
    pub(super) epoch: Arc<str>,
    /// Added to a Redis seq to make the seq this store hands out.
    pub(super) offset: u64,
    /// Redis seqs up to here were already in history when the generation began: the live feed
    /// starts after it, and a stale position replays from after it.
    pub(super) base: u64,
}

impl Generation {
    /// The seq handed out for Redis seq `redis_seq` of this generation.
    pub(super) fn seq(&self, redis_seq: u64) -> u64 {
        self.offset + redis_seq
    }
}

/// Where a seq handed out earlier points in the current history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Position {
    /// This Redis seq of the current generation.
    Seq(u64),
    /// A place in a history that is gone: replay after this Redis seq and report the cursor
    /// unknown.
    Stale {
        /// Usually the current generation's base.
        after: u64,
    },
}

/// Why a new generation begins.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Change<'a> {
    /// Redis follows another epoch, which starts after `base` and ends at `head`.
    Epoch {
        /// The epoch Redis reported.
        epoch: &'a str,
        /// Its base (where its numbering began).
        base: u64,
        /// Its last seq.
        head: u64,
    },
    /// Same epoch, but history lost entries this node saw: `head` is Redis' head now.
    Behind {
        /// Redis' head.
        head: u64,
    },
    /// Same epoch, and the newest delivered entry Redis still holds is `agreed`.
    Diverged {
        /// Redis' head.
        head: u64,
        /// The newest delivered entry still in history.
        agreed: u64,
    },
}

/// Generations, the highest Redis seq seen and what the live feed delivered.
#[derive(Debug)]
pub(super) struct View {
    /// Oldest first; the last is current.
    generations: VecDeque<Generation>,
    /// Highest Redis seq seen in the current generation: a head below it means lost entries.
    high: u64,
    /// Redis seq through which the live feed delivered in the current generation.
    delivered: u64,
}

impl View {
    /// The view of a node that just opened a history `epoch` whose head is `head`.
    pub(super) fn new(epoch: &str, head: u64) -> Self {
        View {
            generations: VecDeque::from([Generation {
                id: 0,
                epoch: epoch.into(),
                offset: 0,
                base: head,
            }]),
            high: head,
            delivered: head,
        }
    }

    /// The current generation and the highest Redis seq seen in it.
    pub(super) fn current(&self) -> (Generation, u64) {
        (self.now().clone(), self.high)
    }

    fn now(&self) -> &Generation {
        self.generations
            .back()
            .expect("a view always has a generation")
    }

    /// Records Redis' head (or an appended seq) from a reply to a request made in generation
    /// `asked`. Returns false when the generation changed meanwhile: the reply is then stale.
    pub(super) fn observe(&mut self, asked: u64, head: u64) -> bool {
        if self.now().id != asked {
            return false;
        }
        self.high = self.high.max(head);
        true
    }

    /// Records that the live feed delivered through `redis_seq` of generation `asked`.
    pub(super) fn delivered(&mut self, asked: u64, redis_seq: u64) {
        if self.observe(asked, redis_seq) {
            self.delivered = self.delivered.max(redis_seq);
        }
    }

    /// Starts a new generation because of `change`, seen in a reply to a request made in
    /// generation `asked`, unless another request already started one since. Returns the
    /// current generation.
    pub(super) fn rebase(&mut self, asked: u64, change: Change<'_>) -> Generation {
        let now = self.now().clone();
        if now.id != asked {
            return now;
        }
        let (epoch, base, head): (Arc<str>, u64, u64) = match change {
            Change::Epoch { epoch, base, head } => (epoch.into(), base, head),
            // Entries after what the feed delivered and still in history are new to this node.
            Change::Behind { head } => (now.epoch.clone(), head.min(self.delivered), head),
            Change::Diverged { head, agreed } => {
                (now.epoch.clone(), agreed.min(self.delivered), head)
            }
        };
        let next = Generation {
            id: now.id + 1,
            epoch,
            offset: now.offset + self.high.max(self.delivered) + GAP,
            base,
        };
        tracing::warn!(
            epoch = %next.epoch,
            redis.head = head,
            redis.base = base,
            seen = self.high,
            "the shared history changed under this node (data lost or replaced in redis); positions from before are now unknown"
        );
        self.generations.push_back(next.clone());
        if self.generations.len() > KEPT {
            self.generations.pop_front();
        }
        self.high = head.max(base);
        self.delivered = base;
        next
    }

    /// Where `seq`, handed out by this store, points in the current history.
    pub(super) fn position(&self, seq: u64) -> Position {
        let now = self.now();
        let stale = Position::Stale { after: now.base };
        // The generation that handed it out: the newest whose offset is not above it.
        let Some(i) = self.generations.iter().rposition(|g| g.offset <= seq) else {
            return stale;
        };
        let from = &self.generations[i];
        let redis_seq = seq - from.offset;
        // Same history since, and not past the point where a later generation began: the
        // entries up to it are the ones this node saw.
        let unbroken = self
            .generations
            .range(i + 1..)
            .all(|later| later.epoch == from.epoch && redis_seq <= later.base);
        if unbroken {
            Position::Seq(redis_seq)
        } else {
            stale
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seqs_map_one_to_one_until_history_changes() {
        let view = View::new("e1", 5);
        let (generation, high) = view.current();
        assert_eq!((generation.seq(7), high), (7, 5));
        assert_eq!(view.position(3), Position::Seq(3));
        assert_eq!(view.position(9), Position::Seq(9));
    }

    #[test]
    fn a_new_epoch_moves_seqs_past_everything_handed_out_and_stales_old_positions() {
        let mut view = View::new("e1", 0);
        assert!(view.observe(0, 100));
        let epoch = Change::Epoch {
            epoch: "e2",
            base: 0,
            head: 3,
        };
        let next = view.rebase(0, epoch);
        assert_eq!((next.id, &*next.epoch, next.base), (1, "e2", 0));
        assert!(next.seq(1) > 100 + GAP - 1);
        assert_eq!(view.position(100), Position::Stale { after: 0 });
        assert_eq!(view.position(next.seq(2)), Position::Seq(2));
        // A reply to a request made before the change counts for nothing.
        assert!(!view.observe(0, 500));
        assert_eq!(view.current().1, 3);
    }

    #[test]
    fn only_the_first_reply_showing_a_change_starts_a_generation() {
        let mut view = View::new("e1", 10);
        let change = || Change::Epoch {
            epoch: "e2",
            base: 0,
            head: 0,
        };
        let first = view.rebase(0, change());
        let second = view.rebase(0, change());
        assert_eq!(first, second);
    }

    #[test]
    fn lost_entries_keep_the_epoch_and_positions_before_the_loss() {
        let mut view = View::new("e1", 0);
        view.delivered(0, 100);
        let next = view.rebase(0, Change::Behind { head: 97 });
        assert_eq!((&*next.epoch, next.base), ("e1", 97));
        // Seen before the loss and still in history: the same entry.
        assert_eq!(view.position(50), Position::Seq(50));
        assert_eq!(view.position(97), Position::Seq(97));
        // Lost: a position in another history.
        assert_eq!(view.position(99), Position::Stale { after: 97 });
        // Entries the feed had not delivered yet stay new to this node.
        let mut view = View::new("e1", 0);
        view.delivered(0, 90);
        assert!(view.observe(0, 100));
        assert_eq!(view.rebase(0, Change::Behind { head: 97 }).base, 90);
    }

    #[test]
    fn a_replaced_entry_starts_after_the_newest_one_that_agrees() {
        let mut view = View::new("e1", 0);
        view.delivered(0, 100);
        let diverged = Change::Diverged {
            head: 103,
            agreed: 96,
        };
        let next = view.rebase(0, diverged);
        assert_eq!(next.base, 96);
        assert_eq!(view.current().1, 103);
        assert_eq!(view.position(98), Position::Stale { after: 96 });
    }

    #[test]
    fn positions_older_than_the_remembered_generations_are_stale() {
        let mut view = View::new("e1", 0);
        for i in 0..(KEPT as u64 + 2) {
            let epoch = format!("e{}", i + 2);
            let change = Change::Epoch {
                epoch: &epoch,
                base: 0,
                head: 0,
            };
            view.rebase(i, change);
        }
        assert_eq!(view.position(0), Position::Stale { after: 0 });
    }
}
