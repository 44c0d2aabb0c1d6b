//! The topic-prefix pass of `prune` (relay answers' own retention): entries whose topics all
//! lie under a prefix and that are older than its age, removed wherever they sit in the log.

use std::sync::Arc;

use super::scripts::{self, Read};
use super::{REDIS_CHECKSUM_SEQ, RedisStore, lock};
use crate::store::{PrefixAge, StoreError, codec};
use crate::update::Update;

/// Entries the topic-prefix prune looks at per read.
const PRUNE_SCAN: usize = 1024;

/// Where a topic-prefix prune stopped: in this history (`epoch`), every entry under `prefix`
/// up to Redis seq `through` that was too old then is gone.
pub(super) struct PrefixScan {
    /// The prefix scanned for; another prefix starts over.
    prefix: String,
    /// The history scanned; another epoch starts over.
    epoch: Arc<str>,
    /// The last Redis seq looked at.
    through: u64,
}

impl RedisStore {
    /// The topic-prefix pass of `prune`: entries whose topics all lie under the prefix and that
    /// are older than its age are removed wherever they sit. Like the embedded store's, the scan
    /// resumes after where the previous one stopped (the first entry young enough), so history
    /// kept for other topics is read once, not on every prune. Each node scans on its own;
    /// removing an entry twice is harmless.
    pub(super) async fn prune_prefix(&self, limit: &PrefixAge) -> Result<u64, StoreError> {
        let age = u64::try_from(limit.max_age.as_millis()).unwrap_or(u64::MAX);
        let cutoff = Update::now_ms().saturating_sub(age);
        let shared = &self.shared;
        let mut removed = 0;
        loop {
            let (generation, _) = lock(&shared.view).current();
            let start = match &*lock(&self.prefix_scan) {
                Some(scan) if scan.prefix == limit.prefix && *scan.epoch == *generation.epoch => {
                    scan.through
                }
                _ => 0,
            };
            let start_text = start.to_string();
            let read = shared
                .read(&generation, ("seq", &start_text), PRUNE_SCAN, &[])
                .await?;
            // Another history: the next prune starts over in it.
            let Read::Ok { more, entries, .. } = read else {
                return Ok(removed);
            };
            let mut through = start;
            let mut young = false;
            let mut doomed: Vec<(u64, String)> = Vec::new();
            for (seq, bytes) in &entries {
                match codec::decode_routing(bytes, REDIS_CHECKSUM_SEQ) {
                    // Publication order: from here on everything is young enough.
                    Ok((_, at, _)) if at >= cutoff => {
                        young = true;
                        break;
                    }
                    Ok((id, _, topics)) => {
                        if limit.covers(topics.into_iter()) {
                            doomed.push((*seq, id.to_owned()));
                        }
                    }
                    // Its topics are unknown; the front pass removes it once it is the oldest.
                    Err(_) => {}
                }
                through = *seq;
            }
            if !doomed.is_empty() {
                let mut args: Vec<Vec<u8>> = vec![generation.epoch.as_bytes().to_vec()];
                for (seq, id) in &doomed {
                    args.push(seq.to_string().into_bytes());
                    args.push(id.as_bytes().to_vec());
                }
                let args: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
                let value = shared
                    .eval("prune history", &shared.scripts.remove, &args)
                    .await?;
                removed +=
                    scripts::removed(value).map_err(|e| shared.bad_reply("prune history", e))?;
            }
            *lock(&self.prefix_scan) = Some(PrefixScan {
                prefix: limit.prefix.clone(),
                epoch: generation.epoch.clone(),
                through,
            });
            if young || !more {
                return Ok(removed);
            }
        }
    }
}
