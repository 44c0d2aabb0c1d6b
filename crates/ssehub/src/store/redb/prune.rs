//! Pruning on the writer thread, one bounded transaction ("chunk") at a time so appends are
//! committed between chunks and a large backlog never stalls publishers for long.
//!
//! Two passes per request:
//! 1. *front*: history is in publication order, so what count and age remove is a prefix of it:
//!    remove from the oldest entry until neither limit applies;
//! 2. *topic prefix* ([`Retention::prefix_max_age`]): entries under the prefix that are older
//!    than its age are removed wherever they sit, stepping over the other entries. The scan
//!    resumes where the previous one stopped (see [`PrefixScan`]), so a long history kept for
//!    other topics is read once, not on every prune.

use std::ops::Bound;
use std::sync::atomic::Ordering;

use redb::{ReadableTable, ReadableTableMetadata};

use super::writer::Writer;
use super::{IDS, Reply, UPDATES, prune_error};
use crate::store::{PrefixAge, Retention, StoreError, codec};
use crate::update::Update;

/// Entries removed per pruning transaction; appends waiting meanwhile are committed between
/// chunks.
pub(super) const PRUNE_CHUNK: u64 = 4096;

/// Entries the topic-prefix pass looks at per transaction, removed or not.
const PRUNE_SCAN: u64 = 4 * PRUNE_CHUNK;

/// A prune request in progress, advanced one chunk at a time between append batches.
pub(super) struct PruneJob {
    /// Count limit of the request.
    max_events: Option<u64>,
    /// Entries published before this unix millisecond are too old; fixed when the request
    /// arrived so a long prune does not chase a moving cutoff.
    cutoff_ms: Option<u64>,
    /// The topic-prefix limit and its cutoff, fixed like `cutoff_ms`.
    prefix: Option<(PrefixAge, u64)>,
    /// Whether the front pass is complete.
    front_done: bool,
    /// Entries removed so far by earlier chunks.
    pub(super) removed: u64,
    /// Who asked.
    pub(super) reply: Reply<u64>,
}

/// Where the topic-prefix pass stopped: every entry under `prefix` up to `through` that was
/// older than the cutoff then is gone. Cutoffs only move forward (barring a clock stepped
/// back), so the next scan can start after `through`.
pub(super) struct PrefixScan {
    /// The prefix scanned for; another prefix starts over.
    prefix: String,
    /// The last seq looked at.
    through: u64,
}

fn cutoff(age: std::time::Duration) -> u64 {
    let age = u64::try_from(age.as_millis()).unwrap_or(u64::MAX);
    Update::now_ms().saturating_sub(age)
}

impl PruneJob {
    pub(super) fn new(retention: &Retention, reply: Reply<u64>) -> Self {
        PruneJob {
            max_events: retention.max_events,
            cutoff_ms: retention.max_age.map(cutoff),
            prefix: retention
                .prefix_max_age
                .as_ref()
                .map(|p| (p.clone(), cutoff(p.max_age))),
            front_done: false,
            removed: 0,
            reply,
        }
    }
}

impl Writer {
    /// Runs one chunk of `job`; returns whether the job is complete. A failure marks the
    /// store failed, as a failed append batch does (see `failure`).
    pub(super) fn prune_chunk(&mut self, job: &mut PruneJob) -> Result<bool, StoreError> {
        let pruned = self.try_prune_chunk(job);
        if let Err(error) = &pruned {
            self.fail(error.clone(), None);
        }
        pruned
    }

    fn try_prune_chunk(&mut self, job: &mut PruneJob) -> Result<bool, StoreError> {
        if !job.front_done {
            job.front_done = self.prune_front(job)?;
            return Ok(job.front_done && job.prefix.is_none());
        }
        self.prune_prefix(job)
    }

    /// Removes up to [`PRUNE_CHUNK`] of the oldest entries; returns whether the pass is over.
    fn prune_front(&mut self, job: &mut PruneJob) -> Result<bool, StoreError> {
        // The tail goes into the same transaction first, so the prune sees every entry.
        let txn = self.begin_checkpoint(self.last_seq)?;
        let mut removed = 0;
        let done = {
            let mut updates = txn.open_table(UPDATES).map_err(prune_error)?;
            let mut ids = txn.open_table(IDS).map_err(prune_error)?;
            let excess = match job.max_events {
                Some(max) => updates.len().map_err(prune_error)?.saturating_sub(max),
                None => 0,
            };
            loop {
                if removed == PRUNE_CHUNK {
                    break false;
                }
                let Some((seq, head)) = updates.first().map_err(prune_error)?.map(|(k, v)| {
                    let seq = k.value();
                    let head =
                        codec::decode_head(v.value(), seq).map(|(id, at)| (id.to_owned(), at));
                    (seq, head)
                }) else {
                    break true;
                };
                // History is in publication order, so the oldest entries come first; a clock
                // step backwards can leave an old entry behind a newer one until that one ages.
                // An undecodable entry counts as too old: kept, it would stop age pruning and
                // fail every replay that reaches it.
                let too_old = match &head {
                    Ok((_, at)) => job.cutoff_ms.is_some_and(|cutoff| *at < cutoff),
                    Err(_) => true,
                };
                if removed >= excess && !too_old {
                    break true;
                }
                updates.remove(seq).map_err(prune_error)?;
                match head {
                    Ok((id, _)) => {
                        // Only drop the index entry if it still points here.
                        let points_here = ids
                            .get(id.as_str())
                            .map_err(prune_error)?
                            .is_some_and(|s| s.value() == seq);
                        if points_here {
                            ids.remove(id.as_str()).map_err(prune_error)?;
                        }
                    }
                    Err(reason) => {
                        // Its id is unreadable, so its index entry (if any) stays and points at
                        // nothing; reads treat that id as a cursor just before the next entry.
                        tracing::warn!(seq, reason, "pruned a corrupt history entry");
                    }
                }
                removed += 1;
            }
        };
        self.finish_chunk(txn, removed, job)?;
        Ok(done)
    }

    /// Looks at up to [`PRUNE_SCAN`] entries after where the last scan stopped and removes
    /// those under the prefix that are too old; returns whether the pass is over.
    fn prune_prefix(&mut self, job: &mut PruneJob) -> Result<bool, StoreError> {
        let Some((limit, cutoff_ms)) = &job.prefix else {
            return Ok(true);
        };
        let start = match &self.prefix_scanned {
            Some(scan) if scan.prefix == limit.prefix => scan.through,
            _ => 0,
        };
        // The tail goes into the same transaction first, so the prune sees every entry.
        let txn = self.begin_checkpoint(self.last_seq)?;
        let mut through = start;
        let mut doomed: Vec<(u64, String)> = Vec::new();
        let done = {
            let mut updates = txn.open_table(UPDATES).map_err(prune_error)?;
            let mut ids = txn.open_table(IDS).map_err(prune_error)?;
            let mut done = true;
            let range = updates
                .range::<u64>((Bound::Excluded(start), Bound::Unbounded))
                .map_err(prune_error)?;
            for (looked, entry) in (0..).zip(range) {
                if looked == PRUNE_SCAN || doomed.len() as u64 == PRUNE_CHUNK {
                    done = false;
                    break;
                }
                let (seq, value) = entry.map_err(prune_error)?;
                let seq = seq.value();
                match codec::decode_routing(value.value(), seq) {
                    // Publication order: from here on everything is young enough.
                    Ok((_, at, _)) if at >= *cutoff_ms => break,
                    Ok((id, _, topics)) => {
                        if limit.covers(topics.into_iter()) {
                            doomed.push((seq, id.to_owned()));
                        }
                    }
                    // Its topics are unknown; the front pass removes it once it is the oldest.
                    Err(_) => {}
                }
                through = seq;
            }
            for (seq, id) in &doomed {
                updates.remove(*seq).map_err(prune_error)?;
                let points_here = ids
                    .get(id.as_str())
                    .map_err(prune_error)?
                    .is_some_and(|s| s.value() == *seq);
                if points_here {
                    ids.remove(id.as_str()).map_err(prune_error)?;
                }
            }
            done
        };
        let prefix = limit.prefix.clone();
        self.finish_chunk(txn, doomed.len() as u64, job)?;
        // Only once the removal is committed: a failed chunk is scanned again.
        self.prefix_scanned = Some(PrefixScan { prefix, through });
        Ok(done)
    }

    /// Commits a chunk that removed something (durably: a crash must not undo a prune after
    /// which a removed id was reused) or applied the tail, or drops one that did neither.
    fn finish_chunk(
        &mut self,
        txn: redb::WriteTransaction,
        removed: u64,
        job: &mut PruneJob,
    ) -> Result<(), StoreError> {
        if removed == 0 && self.tail.is_empty() {
            txn.abort().map_err(prune_error)?;
            return Ok(());
        }
        txn.commit().map_err(prune_error)?;
        self.checkpointed();
        if removed > 0 {
            self.commits.fetch_add(1, Ordering::Relaxed);
            job.removed += removed;
        }
        Ok(())
    }
}
