//! Opening the history: redb's file, checked; the tables on first open; then the write-ahead
//! log's entries beyond redb's last durable commit (see the parent module's docs on durability).
//! The same steps reopen the file after a write failure (see `failure`).

use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use redb::{Database, DatabaseError, ReadableTable, StorageError};

use super::wal;
use super::{FILE_NAME, IDS, LAST_SEQ, META, RedbOptions, UPDATES, write_error};
use crate::store::{StoreError, codec};

/// A database brought up to date with the log.
pub(super) struct Opened {
    pub(super) db: Database,
    /// The last seq ever assigned.
    pub(super) last_seq: u64,
}

/// Opens (or creates) `history.redb` in `dir`, verifies it, creates the tables on first open and
/// replays the log into it.
pub(super) fn open_database(dir: &Path, options: &RedbOptions) -> Result<Opened, StoreError> {
    let path = dir.join(FILE_NAME);
    // redb trusts its file: a damaged page can trip an assertion or an `unreachable!` deep inside
    // it (1 MiB of garbage in the middle of the file does, while it opens). Caught here, that is
    // a typed error naming the file instead of a panic that ends the process without saying which
    // file is at fault. Everything the closure creates is dropped by the unwind, so no state it
    // left half-changed is used afterwards.
    let opened = panic::catch_unwind(AssertUnwindSafe(|| open_checked(dir, &path, options)));
    opened.unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_owned());
        Err(StoreError::DatabaseDamaged {
            path,
            reason: format!("redb panicked while reading it ({what})"),
        })
    })
}

fn open_checked(dir: &Path, path: &Path, options: &RedbOptions) -> Result<Opened, StoreError> {
    let repaired = Rc::new(Cell::new(false));
    let mut builder = Database::builder();
    builder.set_cache_size(options.cache_bytes);
    let flag = Rc::clone(&repaired);
    let shown = path.display().to_string();
    builder.set_repair_callback(move |_| {
        if !flag.replace(true) {
            tracing::warn!(path = %shown, "history database was not closed cleanly; verifying and repairing it, which reads the whole file");
        }
    });
    let mut db = builder.create(path).map_err(|e| open_error(path, e))?;
    if !repaired.get() {
        // redb verifies its pages' checksums only when it repairs a file, which a clean shutdown
        // spares it; damage since then would otherwise surface in the middle of serving, as a
        // panic or as entries gone missing from a range.
        match db.check_integrity() {
            Ok(true) => {}
            Ok(false) => tracing::warn!(
                path = %path.display(),
                "history database failed its integrity check and was repaired to its last intact commit"
            ),
            Err(e) => return Err(open_error(path, e)),
        }
    }
    let last_seq = init_tables(&db)?;
    let last_seq = replay_wal(&db, dir, last_seq, options.truncate_damaged_log_at)?;
    Ok(Opened { db, last_seq })
}

fn open_error(path: &Path, e: DatabaseError) -> StoreError {
    let damaged = |reason: String| StoreError::DatabaseDamaged {
        path: path.to_owned(),
        reason,
    };
    match e {
        DatabaseError::DatabaseAlreadyOpen => StoreError::backend(
            format!(
                "history database {} is already open (is another ssehub using this data directory?)",
                path.display()
            ),
            e,
        ),
        DatabaseError::Storage(StorageError::Corrupted(reason)) => damaged(reason),
        // Not a redb file at all, e.g. its first page overwritten.
        DatabaseError::Storage(StorageError::Io(io))
            if io.kind() == std::io::ErrorKind::InvalidData =>
        {
            damaged(io.to_string())
        }
        e => StoreError::backend(
            format!("cannot open history database {}", path.display()),
            e,
        ),
    }
}

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
/// in one durable commit and returns the new last seq; see the module docs. Damage followed by
/// acknowledged records stops here unless `truncate_at` names its offset.
fn replay_wal(
    db: &Database,
    dir: &Path,
    last_seq: u64,
    truncate_at: Option<u64>,
) -> Result<u64, StoreError> {
    let path = dir.join(wal::FILE_NAME);
    let found = wal::recover(dir, last_seq).map_err(|e| {
        StoreError::backend(format!("cannot read write-ahead log {}", path.display()), e)
    })?;
    check_damage(&path, found.damage.as_ref(), truncate_at)?;
    let last = replay_records(db, &path, last_seq, &found)?;
    if found.damage.is_some() {
        // Out of the way, or the next start would find the same damage (the new log only
        // overwrites it as far as it gets); kept for whoever wants to look at it.
        let aside = path.with_extension("damaged");
        std::fs::rename(&path, &aside).map_err(|e| {
            StoreError::backend(
                format!(
                    "cannot move the damaged write-ahead log to {}",
                    aside.display()
                ),
                e,
            )
        })?;
        tracing::warn!(path = %aside.display(), "moved the damaged write-ahead log aside");
    }
    Ok(last)
}

fn replay_records(
    db: &Database,
    path: &Path,
    last_seq: u64,
    found: &wal::Recovered,
) -> Result<u64, StoreError> {
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
            let (id, _) =
                codec::decode_head(payload, *seq).map_err(|reason| StoreError::Corrupt {
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
    if found.damage.is_none() {
        if let Some(reason) = found.invalid {
            tracing::info!(
                offset = found.end,
                reason,
                "the write-ahead log ends in an incomplete record, as is normal after a crash (a \
                 batch cut short before it was acknowledged); ignoring it and the rest of the log"
            );
        }
    }
    Ok(last)
}

/// Refuses damage with acknowledged records after it, unless the operator asked to drop them by
/// naming its offset; naming it (rather than a yes/no switch) keeps a flag left in place from
/// silently truncating some later, different damage.
fn check_damage(
    path: &Path,
    damage: Option<&wal::Damage>,
    truncate_at: Option<u64>,
) -> Result<(), StoreError> {
    match (damage, truncate_at) {
        (Some(damage), Some(at)) if damage.offset == at => {
            tracing::warn!(
                path = %path.display(),
                offset = at,
                reason = damage.reason,
                later_seq = damage.later_seq,
                "the write-ahead log is damaged; as asked by --wal-truncate-damaged, replaying what \
                 precedes the damage and dropping the acknowledged updates after it"
            );
            Ok(())
        }
        (Some(damage), _) => Err(StoreError::LogDamaged {
            path: PathBuf::from(path),
            offset: damage.offset,
            reason: damage.reason.to_owned(),
            later_offset: damage.later_offset,
            later_seq: damage.later_seq,
        }),
        (None, Some(at)) => {
            tracing::warn!(
                path = %path.display(),
                offset = at,
                "--wal-truncate-damaged was given but the write-ahead log is not damaged; nothing \
                 was dropped (remove the flag)"
            );
            Ok(())
        }
        (None, None) => Ok(()),
    }
}
