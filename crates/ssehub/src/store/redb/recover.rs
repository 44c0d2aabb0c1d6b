//! Opening the history: the tables on first open, then the write-ahead log's entries beyond
//! redb's last durable commit (see the parent module's docs on durability).

use std::path::Path;

use redb::{Database, ReadableTable};

use super::wal;
use super::{FILE_NAME, IDS, LAST_SEQ, META, UPDATES, write_error};
use crate::store::{StoreError, codec};

/// Creates the tables on first open and returns the last seq ever assigned.
pub(super) fn init_tables(db: &Database) -> Result<u64, StoreError> {
    let txn = db.begin_write().map_err(write_error)?;
    let last_seq = {
        let updates = txn.open_table(UPDATES).map_err(write_error)?;
        txn.open_table(IDS).map_err(write_error)?;
        let meta = txn.open_table(META).map_err(write_error)?;
        let recorded = meta
            .get(LAST_SEQ)
            .map_err(write_error)?
            .map_or(0, |v| v.value());
        let newest = updates
            .last()
            .map_err(write_error)?
            .map_or(0, |(seq, _)| seq.value());
        recorded.max(newest)
    };
    txn.commit().map_err(write_error)?;
    Ok(last_seq)
}

/// Stores the write-ahead log's entries beyond `last_seq` (the last seq of redb's durable state)
/// in one durable commit and returns the new last seq; see the module docs.
pub(super) fn replay_wal(db: &Database, dir: &Path, last_seq: u64) -> Result<u64, StoreError> {
    let path = dir.join(wal::FILE_NAME);
    let found = wal::recover(dir).map_err(|e| {
        StoreError::backend(format!("cannot read write-ahead log {}", path.display()), e)
    })?;
    // Records up to `last_seq` are already in redb: the log outlived a checkpoint.
    let pending: Vec<_> = found
        .records
        .iter()
        .filter(|(seq, _)| *seq > last_seq)
        .collect();
    let Some(&&(first, _)) = pending.first() else {
        if let Some(reason) = found.invalid {
            tracing::debug!(
                offset = found.end,
                reason,
                "write-ahead log holds nothing to replay"
            );
        }
        return Ok(last_seq);
    };
    if first != last_seq + 1 {
        return Err(StoreError::Corrupt {
            seq: first,
            reason: format!(
                "the write-ahead log {} resumes at seq {first} but the history ends at seq \
                 {last_seq}; remove the log only if the history file was replaced on purpose",
                path.display()
            ),
        });
    }
    let mut last = last_seq;
    let txn = db.begin_write().map_err(write_error)?;
    {
        let mut updates = txn.open_table(UPDATES).map_err(write_error)?;
        let mut ids = txn.open_table(IDS).map_err(write_error)?;
        for (seq, payload) in pending {
            let (id, _) = codec::decode_head(payload).map_err(|reason| StoreError::Corrupt {
                seq: *seq,
                reason: format!("in the write-ahead log: {reason}"),
            })?;
            updates
                .insert(*seq, payload.as_slice())
                .map_err(write_error)?;
            ids.insert(id, *seq).map_err(write_error)?;
            last = *seq;
        }
        let mut meta = txn.open_table(META).map_err(write_error)?;
        meta.insert(LAST_SEQ, last).map_err(write_error)?;
    }
    txn.commit().map_err(write_error)?;
    tracing::info!(
        first,
        last,
        "replayed history entries from the write-ahead log into {}",
        FILE_NAME
    );
    if let Some(reason) = found.invalid {
        tracing::info!(
            offset = found.end,
            reason,
            "the write-ahead log ends in an incomplete record, as is normal after a crash (a batch \
             cut short before it was acknowledged); ignoring it and the rest of the log"
        );
    }
    Ok(last)
}
