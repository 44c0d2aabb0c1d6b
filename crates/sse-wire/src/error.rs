//! Typed errors of the encoder and the parser.

/// Why an [`Event`](crate::Event) cannot be encoded.
///
/// Nothing is written to the output buffer when encoding fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The `id` holds CR or LF, which would end the `id:` line early and let
    /// the rest be read as other fields.
    #[error("event id contains a line break (CR or LF), which would break the stream framing")]
    IdContainsLineBreak,
    /// The `id` holds NUL; clients ignore such an `id:` line, so the event
    /// would silently not be resumable.
    #[error("event id contains a NUL character, which clients ignore")]
    IdContainsNul,
    /// The `event` type holds CR or LF.
    #[error("event type contains a line break (CR or LF), which would break the stream framing")]
    EventTypeContainsLineBreak,
}

/// Why the parser refused part of a stream.
///
/// The parser stays usable after an error: see each variant for the state it
/// is left in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// A line, or the data of one event, grew beyond the configured limit.
    ///
    /// The event being built is discarded: its data, type and `retry` are
    /// dropped, the rest of the offending line is skipped without being
    /// buffered, and every further line up to the blank line that ends the
    /// event is ignored. That blank line dispatches nothing (it still
    /// commits the last event ID, as every blank line does). Fields applied
    /// before the limit was hit (an `id:` or `retry:` earlier in the same
    /// event) stay applied, as a browser would have applied them already.
    #[error(
        "event exceeds the limit of {limit} bytes (raise it with Parser::with_max_event_bytes)"
    )]
    EventTooLarge {
        /// The limit in force, in bytes.
        limit: usize,
    },
}
