//! `sse-wire`: the `text/event-stream` codec of ssehub, with no I/O.
//!
//! Modules: [`Event`], its borrowed twin [`EventRef`] and [`Frame`] (in
//! `event`), the incremental [`Parser`] (in `parser`), [`encode`],
//! [`encode_ref`] and [`encode_comment`] (in `encoder`) and their errors (in
//! `error`). The client crate feeds response bytes to a parser;
//! the hub encodes each update once and shares the bytes:
//!
//! ```text
//!  hub:    Event --encode--> BytesMut --freeze--> Bytes --> every subscriber
//!  client: body chunks --Parser::feed--> Feed (iterator) --> Frame::Event
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
//!   once per chunk; each data line is copied once, into the `String` the
//!   event then owns; invalid bytes become U+FFFD, as in a browser.
//! - The only allocations per event are the event's own strings (data, and
//!   the id and type when present): `tests/alloc.rs` counts them.
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
pub use event::{Event, EventRef, Frame};
pub use parser::{DEFAULT_MAX_EVENT_BYTES, Feed, Parser};
