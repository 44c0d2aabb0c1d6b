//! What the writer does after a failed write (a full disk, an I/O error) until it can write
//! again, without a restart.
//!
//! redb latches the first I/O error and refuses every later transaction, so a store whose disk
//! filled up stays failed however much space is freed, unless its file is opened again. After a
//! failure the writer therefore refuses appends and prunes with the error, and retries recovery
//! (at the next request, at a health probe, or on its timer) no sooner than the retry delay,
//! which starts at [`RedbOptions::recovery_interval`](super::RedbOptions::recovery_interval) and
//! doubles up to [`MAX_RETRY`] (a zero delay retries at every request, never on the timer).
//! Recovery:
//!
//! 1. puts the marker over a refused batch in the log, if one is pending (see `wal`): before
//!    anything else is written, so that neither a replay now nor a restart later stores it;
//! 2. checks that the data directory takes the bytes a replay needs, so that while the disk is
//!    still full an attempt neither closes the handle the read tasks use nor has redb verify the
//!    whole file again;
//! 3. closes and reopens the database exactly as [`RedbStore::open`](super::RedbStore::open)
//!    does: redb returns to its last durable commit, and the log (which holds every batch
//!    acknowledged since) is replayed into it and made durable;
//! 4. starts the log over in a new generation.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::recover::open_database;
use super::wal::Wal;
use super::writer::Writer;
use crate::store::StoreError;

/// The retry delay stops doubling here.
const MAX_RETRY: Duration = Duration::from_secs(30);

/// Name of the scratch file of step 2 in the data directory.
const PROBE_FILE: &str = "space-probe";

/// A failed write, until recovery succeeds.
pub(super) struct Failure {
    /// What failed; appends are answered with it until recovery succeeds.
    error: StoreError,
    /// Offset in the log of a refused batch still waiting for its marker.
    cut_at: Option<u64>,
    /// No recovery attempt before this.
    next_attempt: Instant,
    /// How long to wait after the next failed attempt.
    retry: Duration,
}

impl Failure {
    /// When the writer's timer should retry, if it should.
    pub(super) fn retry_at(&self) -> Option<Instant> {
        (!self.retry.is_zero()).then_some(self.next_attempt)
    }
}

impl Writer {
    /// Marks the writer failed by `error`; `refused_at` is where a refused batch may have left
    /// records in the log. The marker goes over them at once if it can, so that a crash before
    /// recovery does not replay them either.
    pub(super) fn fail(&mut self, error: StoreError, refused_at: Option<u64>) {
        tracing::error!(error = %error, source = ?std::error::Error::source(&error), "history write failed; refusing appends until the store recovers");
        self.writable.store(false, Ordering::Release);
        let retry = self.options.recovery_interval;
        let pending = self.failure.take().and_then(|f| f.cut_at);
        let mut failure = Failure {
            error,
            cut_at: refused_at.or(pending),
            next_attempt: Instant::now() + retry,
            retry,
        };
        if let Err(error) = self.cut(&mut failure) {
            tracing::error!(error = %error, source = ?std::error::Error::source(&error), "a restart before the store recovers would replay the refused batch");
        }
        self.failure = Some(failure);
    }

    /// Recovers if a retry is due; otherwise answers with the failure.
    ///
    /// # Errors
    /// The failure, or why recovery failed.
    pub(super) fn recover_if_due(&mut self) -> Result<(), StoreError> {
        match &self.failure {
            None => Ok(()),
            Some(failure) if Instant::now() < failure.next_attempt => Err(failure.error.clone()),
            Some(_) => self.recover(),
        }
    }

    /// Tries to recover now (see the module docs).
    ///
    /// # Errors
    /// Why recovery failed; the next attempt is scheduled.
    pub(super) fn recover(&mut self) -> Result<(), StoreError> {
        let Some(mut failure) = self.failure.take() else {
            return Ok(());
        };
        match self.reopen(&mut failure) {
            Ok(()) => {
                self.writable.store(true, Ordering::Release);
                tracing::info!("history store recovered: accepting appends again");
                Ok(())
            }
            Err(error) => {
                tracing::warn!(error = %error, source = ?std::error::Error::source(&error), retry_in = ?failure.retry, "history store cannot recover yet");
                failure.next_attempt = Instant::now() + failure.retry;
                failure.retry = (failure.retry * 2).min(MAX_RETRY);
                failure.error = error.clone();
                self.failure = Some(failure);
                Err(error)
            }
        }
    }

    fn reopen(&mut self, failure: &mut Failure) -> Result<(), StoreError> {
        self.cut(failure)?;
        // Rather less than the replay may take (pages of the failed commits are free again and
        // reused): asking more could keep a store down that would fit.
        let needed = self.wal.as_ref().map_or(0, Wal::used) + (1 << 20);
        probe_space(&self.dir, needed).map_err(|e| {
            StoreError::backend(
                format!(
                    "the data directory {} has no room for {needed} bytes yet",
                    self.dir.display()
                ),
                e,
            )
        })?;
        self.slot.close();
        let mut options = self.options.clone();
        // That flag is for the operator's start, not for the log this process wrote.
        options.truncate_damaged_log_at = None;
        let opened = open_database(&self.dir, &options)?;
        let last_seq = opened.last_seq;
        self.slot.put(opened.db);
        if last_seq != self.last_seq {
            // The log should hold exactly what was acknowledged since the last checkpoint.
            return Err(StoreError::Corrupt {
                seq: last_seq.min(self.last_seq) + 1,
                reason: format!(
                    "after reopening, the history ends at seq {last_seq} but seq {} was the last \
                     acknowledged",
                    self.last_seq
                ),
            });
        }
        // The replay made everything in the log durable in redb.
        self.checkpointed();
        Ok(())
    }

    /// Puts the marker over a refused batch, if one is waiting for it.
    fn cut(&mut self, failure: &mut Failure) -> Result<(), StoreError> {
        let (Some(at), Some(wal)) = (failure.cut_at, self.wal.as_mut()) else {
            return Ok(());
        };
        wal.cut_at(at).map_err(|e| {
            StoreError::backend(
                format!(
                    "cannot mark a refused batch at byte {at} of the write-ahead log {}",
                    wal.path().display()
                ),
                e,
            )
        })?;
        failure.cut_at = None;
        Ok(())
    }
}

/// Writes `bytes` zeroes to a scratch file in `dir` and removes it: an error means the
/// filesystem cannot take them now. Only a hint (a compressing filesystem takes zeroes for
/// free), but a cheap one compared with reopening the database.
fn probe_space(dir: &Path, bytes: u64) -> io::Result<()> {
    let path = dir.join(PROBE_FILE);
    let written = (|| {
        let mut file = File::create(&path)?;
        let chunk = [0u8; 64 << 10];
        let mut left = bytes;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            file.write_all(&chunk[..n])?;
            left -= n as u64;
        }
        file.sync_data()
    })();
    let removed = std::fs::remove_file(&path);
    written.and(removed)
}
