//! The read path: redb's committed state merged with the in-memory tail (see `tail`).
//!
//! Each read takes what it needs from the tail first, then opens one redb read transaction, and
//! uses a tail entry only when its seq is beyond that transaction's `last_seq`. Why that sees
//! every acknowledged entry exactly once: the writer takes entries out of the tail only after the
//! redb commit holding them, so an entry missing from the tail's snapshot was already committed
//! when the read transaction began; and redb commits tail entries all at once, with `last_seq`,
//! so an entry in both is recognised by its seq.

use std::ops::Bound;
use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata};

use super::tail::Tail;
use super::{IDS, LAST_SEQ, META, UPDATES, read_error};
use crate::store::{Cursor, Replay, StoreError, Stored, codec};

/// What `stats` reports of the history itself.
pub(super) struct Counts {
    pub(super) retained: u64,
    pub(super) first_seq: Option<u64>,
    pub(super) last_seq: u64,
}

pub(super) fn get(db: &Database, tail: &Tail, id: &str) -> Result<Option<Stored>, StoreError> {
    if let Some(stored) = tail.get(id) {
        return Ok(Some(stored));
    }
    let txn = db.begin_read().map_err(read_error)?;
    let ids = txn.open_table(IDS).map_err(read_error)?;
    let Some(seq) = ids.get(id).map_err(read_error)?.map(|s| s.value()) else {
        return Ok(None);
    };
    let updates = txn.open_table(UPDATES).map_err(read_error)?;
    // An index entry can outlive a corrupt entry pruned without its id (see `prune`).
    let Some(value) = updates.get(seq).map_err(read_error)? else {
        return Ok(None);
    };
    let update = decode(value.value(), seq)?;
    Ok(Some(Stored {
        seq,
        update: Arc::new(update),
    }))
}

pub(super) fn counts(db: &Database, tail: &Tail) -> Result<Counts, StoreError> {
    let bounds = tail.bounds();
    let txn = db.begin_read().map_err(read_error)?;
    let updates = txn.open_table(UPDATES).map_err(read_error)?;
    let meta = txn.open_table(META).map_err(read_error)?;
    let committed = last_seq(&meta)?;
    let first = updates
        .first()
        .map_err(read_error)?
        .map(|(seq, _)| seq.value());
    // The tail's seqs are consecutive; those up to `committed` are counted in redb already.
    let beyond = bounds.filter(|&(_, last)| last > committed);
    let extra = beyond.map_or(0, |(first, last)| last - first.max(committed + 1) + 1);
    Ok(Counts {
        retained: updates.len().map_err(read_error)? + extra,
        first_seq: first.or(beyond.map(|(first, _)| first.max(committed + 1))),
        last_seq: beyond.map_or(committed, |(_, last)| last),
    })
}

pub(super) fn read_after(
    db: &Database,
    tail: &Tail,
    after: &Cursor,
    limit: usize,
    max_bytes: usize,
) -> Result<Replay, StoreError> {
    // Before the read transaction: see the module docs.
    let snapshot = tail.snapshot(after, limit, max_bytes);
    let txn = db.begin_read().map_err(read_error)?;
    let updates = txn.open_table(UPDATES).map_err(read_error)?;
    let meta = txn.open_table(META).map_err(read_error)?;
    let committed = last_seq(&meta)?;
    let beyond = snapshot.bounds.filter(|&(_, last)| last > committed);
    let head_seq = beyond.map_or(committed, |(_, last)| last);
    let (found, start_after) = match after {
        Cursor::Earliest => (true, 0),
        Cursor::Id(id) => match snapshot.cursor_seq {
            Some(seq) => (true, seq),
            None => {
                let ids = txn.open_table(IDS).map_err(read_error)?;
                match ids.get(id.as_str()).map_err(read_error)? {
                    Some(seq) => (true, seq.value()),
                    None => (false, 0),
                }
            }
        },
        Cursor::Seq(seq) => {
            let first_seq = updates
                .first()
                .map_err(read_error)?
                .map(|(s, _)| s.value())
                .or(beyond.map(|(first, _)| first.max(committed + 1)));
            // The cursor is in history exactly when nothing between it and the oldest retained
            // entry has been removed. Entries removed from the middle (by topic prefix) do not
            // matter: what follows the cursor is still exactly what is retained after it.
            let in_history = *seq <= head_seq
                && (*seq == head_seq || first_seq.is_some_and(|f| seq.saturating_add(1) >= f));
            if in_history { (true, *seq) } else { (false, 0) }
        }
    };
    let mut out = Vec::with_capacity(limit.min(1024));
    let mut more = false;
    let mut bytes = 0;
    let full = |out: &Vec<Stored>, bytes: usize| {
        out.len() == limit || (!out.is_empty() && bytes >= max_bytes)
    };
    let range = updates
        .range::<u64>((Bound::Excluded(start_after), Bound::Unbounded))
        .map_err(read_error)?;
    for entry in range {
        let (seq, value) = entry.map_err(read_error)?;
        if full(&out, bytes) {
            more = true;
            break;
        }
        bytes += value.value().len();
        let seq = seq.value();
        out.push(Stored {
            seq,
            update: Arc::new(decode(value.value(), seq)?),
        });
    }
    if !more {
        let floor = start_after.max(committed);
        // What the snapshot left out follows what it took; if all it took is at or below the
        // floor (in redb, or before the cursor), so is the rest, and there is no more to read.
        let last_taken = snapshot.entries.last().map(|(stored, _)| stored.seq);
        let rest = snapshot
            .entries
            .into_iter()
            .filter(|(stored, _)| stored.seq > floor);
        for (stored, len) in rest {
            if full(&out, bytes) {
                more = true;
                break;
            }
            bytes += len;
            out.push(stored);
        }
        // The snapshot stopped where this read would have stopped anyway, or earlier.
        more = more || (snapshot.cut && last_taken.is_none_or(|seq| seq > floor));
    }
    Ok(Replay {
        found,
        updates: out,
        more,
        head_seq,
    })
}

fn last_seq(meta: &redb::ReadOnlyTable<&'static str, u64>) -> Result<u64, StoreError> {
    Ok(meta
        .get(LAST_SEQ)
        .map_err(read_error)?
        .map_or(0, |v| v.value()))
}

fn decode(bytes: &[u8], seq: u64) -> Result<crate::update::Update, StoreError> {
    codec::decode(bytes, seq).map_err(|reason| StoreError::Corrupt {
        seq,
        reason: reason.into(),
    })
}
