//! Forks: a stream that starts as a view of another's data up to a divergence point, then
//! takes its own appends. No data is copied: the fork stores its own records only, and reads
//! walk the chain of sources (`store::walk`). A source keeps its data while forks reference
//! it (`refs`): deleting it only hides it (410) until the last fork is gone.
//!
//! Here: where a fork diverges (`Stream-Fork-Offset` plus `Stream-Fork-Sub-Offset`), which
//! expiry it inherits, and when a repeated `PUT` names the same fork.

use std::ops::ControlFlow;

use redb::ReadableTable;

use super::content;
use super::error::StreamError;
use super::expiry::Deadline;
use super::meta::{ForkOf, StreamMeta};
use super::store;
use super::{CreateRequest, ForkRequest};

/// Where a fork at `anchor` plus `sub` diverges from `source`: `sub` bytes (or, for JSON,
/// messages) past the anchor, without passing the next data boundary.
pub(crate) fn resolve_sub_offset(
    streams: &impl ReadableTable<&'static str, &'static [u8]>,
    records: &impl ReadableTable<(u64, u64), &'static [u8]>,
    source: &StreamMeta,
    anchor: u64,
    sub: u64,
) -> Result<u64, StreamError> {
    let json = content::is_json(&source.content_type);
    let (mut found, mut seen_any, mut available) = (None, false, 0u64);
    store::walk(streams, records, source, anchor, |seen| {
        if seen.payload.is_empty() {
            return ControlFlow::Continue(());
        }
        seen_any = true;
        if json {
            available += 1;
            if available == sub {
                found = Some(seen.end());
                return ControlFlow::Break(());
            }
        } else {
            available = seen.end() - anchor;
            if available >= sub {
                found = Some(anchor + sub);
                return ControlFlow::Break(());
            }
        }
        if seen.boundary {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })?;
    if !seen_any {
        return Err(StreamError::SubOffset(
            "the source has no data past the fork offset".into(),
        ));
    }
    let unit = if json { "messages" } else { "bytes" };
    found.ok_or_else(|| {
        StreamError::SubOffset(format!(
            "{sub} {unit} is past the next data boundary ({available} {unit} past the fork offset)"
        ))
    })
}

/// The expiry of a fork: its own if it asked for one, else its source's (PROTOCOL.md 4.2:
/// a fork inherits a TTL value or a deadline, and never has its own capped by the source's).
pub(crate) fn inherited_expiry(
    req: &CreateRequest,
    source: &StreamMeta,
) -> (Option<u64>, Option<Deadline>) {
    if req.ttl_secs.is_some() || req.expires_at.is_some() {
        (req.ttl_secs, req.expires_at.clone())
    } else {
        (source.ttl_secs, source.expires_at.clone())
    }
}

/// Whether a repeated `PUT` names the same fork (or both name none). An omitted
/// `Stream-Fork-Offset` matches whatever the first `PUT` resolved it to.
pub(crate) fn same_fork(requested: Option<&ForkRequest>, existing: Option<&ForkOf>) -> bool {
    match (requested, existing) {
        (None, None) => true,
        (Some(r), Some(e)) => {
            r.source == e.source
                && r.offset.is_none_or(|o| o.0 == e.anchor)
                && r.sub_offset == e.sub_offset
        }
        _ => false,
    }
}
