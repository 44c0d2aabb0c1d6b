//! The in-memory tail: the entries acknowledged since the last checkpoint, which the write-ahead
//! log holds durably and redb does not hold at all yet.
//!
//! The writer puts a batch here right after the log's `fdatasync` and before it answers or
//! broadcasts, and takes everything out only after a redb commit that contains it (the
//! checkpoint, durable, which also starts the log over; or, once the tail is large, a commit
//! without sync, after which the log still keeps the entries). So at any moment every acknowledged entry is in
//! redb's committed state, here, or in both; never in neither. Readers take what they need from
//! here *before* they open their redb read transaction and use an entry from here only when its
//! seq is beyond the last seq of that transaction (redb's `last_seq`): an entry that was here and
//! has meanwhile reached redb is read from redb, once.
//!
//! Memory: the encoded entries take less than
//! [`RedbOptions::tail_bytes`](super::RedbOptions::tail_bytes) plus one batch, and never more
//! than the log holds; each is also kept decoded, shared with the live broadcast, plus its id in
//! the index (the parent module's docs give the bound at the defaults).

use std::collections::{HashMap, VecDeque};
use std::sync::{PoisonError, RwLock, RwLockReadGuard};

use crate::store::{Cursor, Stored};

/// Shared by the writer (the only one to change it, under its lock, see `writer`) and the read
/// tasks.
#[derive(Default)]
pub(super) struct Tail(RwLock<Entries>);

#[derive(Default)]
struct Entries {
    /// Seq of the front entry; the seqs here are consecutive, so an entry is found by offset.
    first: u64,
    /// The entries, oldest first.
    queue: VecDeque<Entry>,
    /// Id -> seq, for duplicate detection and `Last-Event-ID` before redb has the id.
    ids: HashMap<String, u64>,
    /// Encoded bytes held, for the writer's bound.
    bytes: usize,
}

/// One acknowledged entry.
pub(super) struct Entry {
    /// The entry as readers and the broadcast see it.
    pub(super) stored: Stored,
    /// Its `codec` encoding, as the log holds it and redb will.
    pub(super) encoded: Vec<u8>,
}

/// What a reader takes from the tail before it reads redb (see [`Tail::snapshot`]).
pub(super) struct Snapshot {
    /// First and last seq the tail held, if any.
    pub(super) bounds: Option<(u64, u64)>,
    /// The seq of a [`Cursor::Id`] found here.
    pub(super) cursor_seq: Option<u64>,
    /// Entries a read may need, oldest first, with their encoded length.
    pub(super) entries: Vec<(Stored, usize)>,
    /// Whether the tail holds more entries after `entries`.
    pub(super) cut: bool,
}

impl Entries {
    fn last(&self) -> Option<u64> {
        (!self.queue.is_empty()).then(|| self.first + self.queue.len() as u64 - 1)
    }
}

impl Tail {
    fn read(&self) -> RwLockReadGuard<'_, Entries> {
        self.0.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds entries acknowledged together; their seqs continue the tail's.
    pub(super) fn push(&self, entries: impl IntoIterator<Item = Entry>) {
        let mut tail = self.0.write().unwrap_or_else(PoisonError::into_inner);
        for entry in entries {
            let seq = entry.stored.seq;
            if tail.queue.is_empty() {
                tail.first = seq;
            }
            debug_assert_eq!(tail.last().map_or(seq, |last| last + 1), seq);
            tail.ids.insert(entry.stored.update.id.clone(), seq);
            tail.bytes += entry.encoded.len();
            tail.queue.push_back(entry);
        }
    }

    /// Empties the tail: call only once a redb commit holds every entry.
    pub(super) fn clear(&self) {
        let mut tail = self.0.write().unwrap_or_else(PoisonError::into_inner);
        tail.queue = VecDeque::new();
        tail.ids = HashMap::new();
        tail.bytes = 0;
    }

    /// Encoded bytes held.
    pub(super) fn bytes(&self) -> usize {
        self.read().bytes
    }

    pub(super) fn is_empty(&self) -> bool {
        self.read().queue.is_empty()
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.read().queue.len()
    }

    pub(super) fn contains_id(&self, id: &str) -> bool {
        self.read().ids.contains_key(id)
    }

    /// Calls `f` on each entry, oldest first, stopping at the first error.
    pub(super) fn try_for_each<E>(&self, f: impl FnMut(&Entry) -> Result<(), E>) -> Result<(), E> {
        self.read().queue.iter().try_for_each(f)
    }

    /// The entry with this id, if the tail holds it.
    pub(super) fn get(&self, id: &str) -> Option<Stored> {
        let tail = self.read();
        let seq = *tail.ids.get(id)?;
        let entry = tail.queue.get(usize::try_from(seq - tail.first).ok()?)?;
        Some(entry.stored.clone())
    }

    /// First and last seq held, if any.
    pub(super) fn bounds(&self) -> Option<(u64, u64)> {
        let tail = self.read();
        tail.last().map(|last| (tail.first, last))
    }

    /// What a read after `after` may need from the tail: the entries from the one after the
    /// cursor (or from the front, when the cursor is not in the tail, since the read may then
    /// start at the earliest entry), as many as a read of `limit` entries and `max_bytes` could
    /// return, plus one so the reader can tell whether more follow.
    pub(super) fn snapshot(&self, after: &Cursor, limit: usize, max_bytes: usize) -> Snapshot {
        let tail = self.read();
        let Some(last) = tail.last() else {
            return Snapshot {
                bounds: None,
                cursor_seq: None,
                entries: Vec::new(),
                cut: false,
            };
        };
        let cursor_seq = match after {
            Cursor::Id(id) => tail.ids.get(id.as_str()).copied(),
            _ => None,
        };
        let from = match (after, cursor_seq) {
            (_, Some(seq)) => seq + 1,
            (Cursor::Seq(seq), _) if (tail.first..=last + 1).contains(&seq.saturating_add(1)) => {
                seq + 1
            }
            _ => tail.first,
        };
        let skip = usize::try_from(from - tail.first).unwrap_or(usize::MAX);
        let mut entries = Vec::new();
        let mut bytes = 0;
        let mut cut = false;
        for entry in tail.queue.iter().skip(skip) {
            if entries.len() > limit || (!entries.is_empty() && bytes >= max_bytes) {
                cut = true;
                break;
            }
            bytes += entry.encoded.len();
            entries.push((entry.stored.clone(), entry.encoded.len()));
        }
        Snapshot {
            bounds: Some((tail.first, last)),
            cursor_seq,
            entries,
            cut,
        }
    }
}
