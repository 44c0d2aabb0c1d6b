//! `sse-wire`: the `text/event-stream` codec of ssehub, with no I/O.
//!
//! Modules: [`Event`], its borrowed twin [`EventRef`], [`Frame`] and
//! [`FrameRef`] (in `event`), the incremental [`Parser`] and its [`Feed`]
//! (in `parser`), [`encode`], [`encode_ref`] and [`encode_comment`] (in
//! `encoder`) and their errors (in `error`). The client crate feeds response
//! bytes to a parser; the relay does too, and re-encodes or keeps only the
//! data; the hub encodes each update once and shares the bytes:
//!
//! ```text
//!  hub:    Event --encode--> BytesMut --freeze--> Bytes --> every subscriber
//!  client: body chunks --Parser::feed--> Feed (iterator) --> Frame::Event (owned)
//!  relay:  body chunks --Parser::feed--> Feed::next_ref / Parser::feed_with
//!                      --> FrameRef::Event (lent) --encode_ref / to_owned--> ...
//! ```
//!
//! Decisions:
//! - The parser follows the WHATWG "Event stream interpretation" rules to the
//!   letter (BOM, CR/LF/CRLF, one leading space, NUL in `id`, digits-only
//!   `retry`, dispatch on blank line), because clients in the wild are
//!   browsers and must agree with them byte for byte.
//! - It parses complete lines straight out of the caller's chunk and copies
//!   only an unfinished trailing line, so work is linear in the input
//!   whatever the chunking (no re-scan of buffered bytes). UTF-8 is checked
//!   once per chunk; invalid bytes become U+FFFD, as in a browser.
//! - Frames come owned (the [`Feed`] iterator: each event owns its strings,
//!   for consumers that keep events) or lent ([`Feed::next_ref`],
//!   [`Parser::feed_with`]: for consumers that re-encode, deserialise or
//!   filter at once). Both come out of one parsing core, which leaves a
//!   dispatched event's strings where they are; only the last step differs,
//!   and a property test and the fuzz target hold the two equal.
//! - Owned, the only allocations per event are the event's own strings (data,
//!   and the id and type when present); lent, none once the parser's buffers
//!   have their working size: an event whose data is one line of the chunk
//!   (an LLM token stream's every event) lends that slice of the chunk, not
//!   even copied; other data is joined in the parser's buffer, reused.
//!   `tests/alloc.rs` counts both. Zero-copy *owned* strings (slices of a
//!   shared `Bytes`) were tried and were slower: see BENCHMARKS.md.
//! - A size cap ([`Parser::with_max_event_bytes`]) turns a hostile server's
//!   endless line into a typed error instead of unbounded memory.
//! - The encoder refuses what would break framing (CR/LF in `id` or `event`,
//!   NUL in `id`) with [`EncodeError`], never a panic, and leaves the output
//!   untouched then.

mod encoder;
mod error;
mod event;
mod parser;

pub use encoder::{encode, encode_comment, encode_ref, validate_event_type, validate_id};
pub use error::{EncodeError, ParseError};
pub use event::{Event, EventRef, Frame, FrameRef};
pub use parser::{DEFAULT_MAX_EVENT_BYTES, Feed, Parser};
