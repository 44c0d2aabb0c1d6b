//! Why a Durable Streams operation was refused or failed. The HTTP front maps each case to
//! the status and headers the protocol names (`http/streams/error.rs`), in one place.

use super::content::ContentError;
use super::offset::Offset;

/// A refused or failed stream operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    /// No stream at this path (or it expired).
    #[error("stream not found")]
    NotFound,
    /// The stream was deleted but forks still read its data; its URL stays gone.
    #[error("stream is gone: it was deleted (its data lives on only for its forks)")]
    Gone,
    /// `PUT` on a path whose stream has a different configuration.
    #[error("stream already exists with a different configuration ({0})")]
    ConfigMismatch(String),
    /// `PUT` on the path of a deleted stream that forks still use.
    #[error(
        "stream was deleted but still has active forks: the path cannot be reused until all forks are removed"
    )]
    PathBlocked,
    /// The fork source does not exist.
    #[error("fork source {0:?} not found")]
    SourceNotFound(String),
    /// The fork source was deleted (its forks keep it alive, but it cannot be forked again).
    #[error("fork source {0:?} was deleted and cannot be forked")]
    SourceGone(String),
    /// A fork offset past the source's tail.
    #[error("fork offset {offset} is beyond the source stream's tail {tail}")]
    ForkOffsetBeyondTail {
        /// The requested offset.
        offset: Offset,
        /// The source's tail.
        tail: Offset,
    },
    /// A fork sub-offset that names a position past the next data boundary.
    #[error("invalid Stream-Fork-Sub-Offset: {0}")]
    SubOffset(String),
    /// The request's content type differs from the stream's.
    #[error("content type mismatch: the stream is {expected}, the request is {got}")]
    ContentTypeMismatch {
        /// The stream's content type.
        expected: String,
        /// The request's content type.
        got: String,
    },
    /// An append to a closed stream.
    #[error("stream is closed: no more appends are accepted")]
    Closed {
        /// The final offset.
        tail: Offset,
    },
    /// A `Stream-Seq` not greater than the last one.
    #[error("Stream-Seq {got:?} is not greater than the last one, {last:?}")]
    StreamSeqConflict {
        /// The last accepted `Stream-Seq`.
        last: String,
        /// The one this request carried.
        got: String,
    },
    /// A producer epoch older than the producer's current one (a zombie).
    #[error("stale producer epoch: the producer is at epoch {current}")]
    StaleEpoch {
        /// The producer's current epoch.
        current: u64,
    },
    /// A new producer epoch that does not start at seq 0.
    #[error("a new producer epoch must start with Producer-Seq 0")]
    NewEpochNotAtZero,
    /// A producer seq that skips ahead.
    #[error("producer sequence gap: expected Producer-Seq {expected}, got {received}")]
    SequenceGap {
        /// The seq expected next.
        expected: u64,
        /// The seq received.
        received: u64,
    },
    /// A body the stream's content type does not accept.
    #[error(transparent)]
    Content(#[from] ContentError),
    /// The database failed; nothing of the request was stored.
    #[error("stream store failure: {0}")]
    Storage(String),
    /// The hub is shutting down.
    #[error("the stream store is shutting down")]
    ShuttingDown,
}

impl StreamError {
    /// Wraps any database error.
    pub(crate) fn storage(err: impl std::fmt::Display) -> Self {
        StreamError::Storage(err.to_string())
    }
}
