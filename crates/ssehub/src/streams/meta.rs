//! A stream's stored metadata: its configuration, tail, closure, fork link and lifecycle.
//! One JSON document per stream in the `ds_streams` table, keyed by the stream's path;
//! rewritten by the writer thread with every change, in the transaction of that change.

use serde::{Deserialize, Serialize};

use super::error::StreamError;
use super::expiry::{self, Deadline};
use super::offset::Offset;
use super::producer::Producer;

/// Everything the store knows about one stream but its data and producers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamMeta {
    /// Internal id, never reused: keys the stream's records and producers, so a path that is
    /// deleted and created again starts from nothing.
    pub id: u64,
    /// The content type as given at creation (compared by media type).
    pub content_type: String,
    /// Sliding time-to-live in seconds.
    pub ttl_secs: Option<u64>,
    /// Absolute expiry.
    pub expires_at: Option<Deadline>,
    /// When the stream was created (unix ms).
    pub created_ms: u64,
    /// Last write (unix ms); reads are tracked in memory only (see `live::Activity`).
    pub touched_ms: u64,
    /// The position after the last byte.
    pub tail: u64,
    /// Closed streams accept no appends, ever.
    pub closed: bool,
    /// The producer request that closed the stream, so its retry is recognised.
    pub closed_by: Option<Producer>,
    /// The last `Stream-Seq` accepted (compared bytewise).
    pub stream_seq: Option<String>,
    /// Set when the stream is a fork.
    pub fork: Option<ForkOf>,
    /// Forks reading this stream's data; while non-zero, a delete only hides the stream.
    pub refs: u64,
    /// Deleted (or expired) while forks still read it: its URL answers 410.
    pub soft_deleted: bool,
}

/// Where a fork's inherited data comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForkOf {
    /// The source's path.
    pub source: String,
    /// The source's id when forked, to detect a path that changed hands (it cannot while this
    /// fork holds a reference, but reads check rather than trust).
    pub source_id: u64,
    /// The divergence point: data before it is the source's, from it on the fork's own.
    pub offset: u64,
    /// `Stream-Fork-Offset` as resolved (the source's tail when omitted), for idempotent `PUT`.
    pub anchor: u64,
    /// `Stream-Fork-Sub-Offset` as requested (0 when omitted), for idempotent `PUT`.
    pub sub_offset: u64,
}

impl StreamMeta {
    /// The stored form.
    pub(crate) fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("metadata serializes")
    }

    /// Reads [`StreamMeta::encode`]'s form.
    pub(crate) fn decode(bytes: &[u8]) -> Result<StreamMeta, StreamError> {
        serde_json::from_slice(bytes)
            .map_err(|e| StreamError::Storage(format!("unreadable stream metadata: {e}")))
    }

    /// The tail as an offset.
    pub fn tail_offset(&self) -> Offset {
        Offset(self.tail)
    }

    /// Whether the stream has expired, given its last read seen by this process.
    pub fn is_expired(&self, last_read_ms: Option<u64>, now_ms: u64) -> bool {
        let last_active = self.touched_ms.max(last_read_ms.unwrap_or(0));
        expiry::is_expired(self.ttl_secs, self.expires_at.as_ref(), last_active, now_ms)
    }
}
