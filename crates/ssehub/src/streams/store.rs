//! The `streams.redb` file: its tables, and the read path.
//!
//! Tables:
//! - `ds_streams`: path -> [`StreamMeta`] (JSON).
//! - `ds_records`: (stream id, end position) -> flags byte + payload. Keyed by where a record
//!   ends, so "everything after position p" is the range starting at `(id, p + 1)`, and a
//!   position inside a record (a binary fork's sub-offset) finds the record that holds it.
//! - `ds_producers`: (stream id, producer id) -> [`ProducerState`](super::producer).
//! - `ds_counters`: `next_id`, so ids are never reused.
//!
//! A fork stores only its own records. What it reads is a chain of segments: each ancestor's
//! records up to where the next generation forked, then its own. [`walk`] visits a stream's
//! records in that order from a position, clipping records that cross a segment's end.
//! Reads run in their own redb read transaction: one consistent snapshot of metadata and
//! data, concurrent with the writer.

use std::ops::ControlFlow;

use bytes::Bytes;
use redb::{ReadableTable, TableDefinition};

use super::content;
use super::error::StreamError;
use super::meta::StreamMeta;

pub(crate) const STREAMS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("ds_streams");
pub(crate) const RECORDS: TableDefinition<'_, (u64, u64), &[u8]> =
    TableDefinition::new("ds_records");
pub(crate) const PRODUCERS: TableDefinition<'_, (u64, &str), &[u8]> =
    TableDefinition::new("ds_producers");
pub(crate) const COUNTERS: TableDefinition<'_, &str, u64> = TableDefinition::new("ds_counters");
pub(crate) const NEXT_ID: &str = "next_id";

/// Flag bit of a record's first byte: the last record of its append.
pub(crate) const BATCH_END: u8 = 1;

/// The name of the database file in the data directory.
pub const FILE_NAME: &str = "streams.redb";

/// Reads a stream's metadata from any table handle.
pub(crate) fn load(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    path: &str,
) -> Result<Option<StreamMeta>, StreamError> {
    match table.get(path).map_err(StreamError::storage)? {
        Some(v) => StreamMeta::decode(v.value()).map(Some),
        None => Ok(None),
    }
}

/// One part of a stream's readable history: stream `id`'s records in `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Segment {
    /// Whose records.
    id: u64,
    /// First position read from them.
    start: u64,
    /// Position where the next generation took over (`u64::MAX`: the reading stream's own).
    end: u64,
}

/// The segments `meta` reads, oldest ancestor first.
fn segments(
    streams: &impl ReadableTable<&'static str, &'static [u8]>,
    meta: &StreamMeta,
) -> Result<Vec<Segment>, StreamError> {
    let mut chain = Vec::new();
    let mut cap = u64::MAX;
    let mut current = meta.clone();
    loop {
        let start = current.fork.as_ref().map_or(0, |f| f.offset);
        if start < cap {
            chain.push(Segment {
                id: current.id,
                start,
                end: cap,
            });
        }
        let Some(fork) = current.fork else { break };
        cap = cap.min(fork.offset);
        match load(streams, &fork.source)? {
            Some(source) if source.id == fork.source_id => current = source,
            // Unreachable while the fork holds its reference; read what is left.
            _ => break,
        }
    }
    chain.reverse();
    Ok(chain)
}

/// A record as a stream sees it, clipped to the stream's view.
#[derive(Debug)]
pub(crate) struct Seen<'a> {
    /// Position of the first byte of `payload`.
    pub(crate) start: u64,
    /// The visible bytes.
    pub(crate) payload: &'a [u8],
    /// A data boundary follows: the end of an append, or where a fork diverged.
    pub(crate) boundary: bool,
}

impl Seen<'_> {
    pub(crate) fn end(&self) -> u64 {
        self.start + self.payload.len() as u64
    }
}

/// Visits the records `meta` reads from position `from` on, in order, until `visit` breaks.
///
/// A JSON record that starts before `from` is skipped whole (its messages cannot be split);
/// other records are cut at `from`.
pub(crate) fn walk(
    streams: &impl ReadableTable<&'static str, &'static [u8]>,
    records: &impl ReadableTable<(u64, u64), &'static [u8]>,
    meta: &StreamMeta,
    from: u64,
    mut visit: impl FnMut(Seen<'_>) -> ControlFlow<()>,
) -> Result<(), StreamError> {
    let json = content::is_json(&meta.content_type);
    for seg in segments(streams, meta)? {
        if seg.end <= from {
            continue;
        }
        let low = from.max(seg.start);
        let range = records
            .range((seg.id, low + 1)..=(seg.id, u64::MAX))
            .map_err(StreamError::storage)?;
        for item in range {
            let (key, value) = item.map_err(StreamError::storage)?;
            let end = key.value().1;
            let value = value.value();
            let (flags, payload) = value.split_first().unwrap_or((&0, &[]));
            let start = end - payload.len() as u64;
            if start >= seg.end {
                break;
            }
            let (mut skip, mut keep) = (0usize, payload.len());
            if start < low {
                // A JSON record's messages cannot be split: skip it, visibly empty, so the
                // reader still moves past it.
                skip = if json {
                    payload.len()
                } else {
                    usize::try_from(low - start).unwrap_or(usize::MAX)
                };
            }
            let clipped = end > seg.end;
            if clipped {
                if json {
                    break;
                }
                keep = usize::try_from(seg.end - start).unwrap_or(usize::MAX);
            }
            let seen = Seen {
                start: start + skip as u64,
                payload: &payload[skip..keep.max(skip)],
                boundary: clipped || end == seg.end || flags & BATCH_END != 0,
            };
            if visit(seen).is_break() {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// What one read returned.
#[derive(Clone, Debug)]
pub struct Chunk {
    /// The stream as of the read (same snapshot as the data).
    pub meta: StreamMeta,
    /// The records' bytes in order: JSON messages for a JSON stream, pieces of the byte
    /// sequence otherwise.
    pub parts: Vec<Bytes>,
    /// The position after the returned data: the `Stream-Next-Offset` to answer.
    pub next: u64,
}

impl Chunk {
    /// The read reached the tail.
    pub fn up_to_date(&self) -> bool {
        self.next >= self.meta.tail
    }

    /// The read reached the tail of a closed stream: end of stream.
    pub fn at_end(&self) -> bool {
        self.meta.closed && self.up_to_date()
    }

    /// No data was returned.
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// Total payload bytes.
    pub fn len(&self) -> usize {
        self.parts.iter().map(Bytes::len).sum()
    }
}

/// Reads `meta`'s data from `from`, stopping after the record that reaches `max_bytes`.
pub(crate) fn read_chunk(
    streams: &impl ReadableTable<&'static str, &'static [u8]>,
    records: &impl ReadableTable<(u64, u64), &'static [u8]>,
    meta: StreamMeta,
    from: u64,
    max_bytes: usize,
) -> Result<Chunk, StreamError> {
    let mut parts = Vec::new();
    let mut taken = 0usize;
    // A position past the tail reads as the tail, as the reference server answers it.
    let mut next = from.min(meta.tail);
    walk(streams, records, &meta, from, |seen| {
        next = seen.end();
        if seen.payload.is_empty() {
            return ControlFlow::Continue(());
        }
        taken += seen.payload.len();
        parts.push(Bytes::copy_from_slice(seen.payload));
        if taken >= max_bytes {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })?;
    Ok(Chunk { meta, parts, next })
}
