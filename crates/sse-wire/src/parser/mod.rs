//! The incremental `text/event-stream` parser (WHATWG HTML, "Server-sent
//! events", section "Event stream interpretation").
//!
//! Bytes go in through [`Parser::feed`] in chunks of any size; complete lines
//! are parsed straight out of the caller's chunk and only an unfinished
//! trailing line is copied into the parser, so every input byte is scanned a
//! bounded number of times whatever the chunking.
//!
//! Per chunk, a [`Feed`] keeps what it learnt ahead of the parse position
//! (`ChunkState`): where the next CR is (so line ends are found with a plain
//! LF search) and how far the chunk is valid UTF-8 (checked once, with
//! SIMD). Lines inside that valid part are sliced as `&str` and appended to
//! the event's `String` without a check per line; that `String` then moves
//! into the dispatched [`Event`] without a copy. `data:`/`id:`/blank lines
//! take a fast path (`fast_lines`); everything else, and every line that
//! spans chunks, takes the general path, which implements each rule once.

use std::iter::FusedIterator;
use std::mem;

use memchr::memchr;

use crate::{Event, Frame, ParseError};

/// The default cap on one line and on one event's data: 16 MiB.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

const BOM: [u8; 3] = [0xEF, 0xBB, 0xBF];

/// An incremental event-stream parser: one per connection.
///
/// Feed it the response body chunk by chunk with [`Parser::feed`] and iterate
/// over what each chunk completes. Whatever the chunking (a CRLF or a
/// multi-byte character split across chunks included), the same bytes give
/// the same frames.
///
/// # Examples
/// ```
/// use sse_wire::{Frame, Parser};
///
/// let mut parser = Parser::new();
/// let mut got = Vec::new();
/// for chunk in [&b"id: 7\ndata: hel"[..], b"lo\n\n"] {
///     for frame in parser.feed(chunk) {
///         if let Frame::Event(ev) = frame? {
///             got.push(ev.data);
///         }
///     }
/// }
/// assert_eq!(got, ["hello"]);
/// assert_eq!(parser.last_event_id(), "7");
/// # Ok::<(), sse_wire::ParseError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Parser {
    /// Cap on one line and on one event's data, so a hostile server cannot
    /// make the client buffer without bound.
    max_event_bytes: usize,
    /// Whether comment lines are yielded as [`Frame::Comment`].
    comments: bool,
    /// Bytes of a leading BOM matched so far; `None` once past the stream
    /// start, since a BOM is only skipped there.
    bom_matched: Option<usize>,
    /// The last chunk ended in CR, so an LF opening the next chunk is the
    /// second half of a CRLF, not a blank line.
    after_cr: bool,
    /// The start of a line whose end has not arrived yet.
    line: Vec<u8>,
    /// The rest of a chunk whose [`Feed`] was dropped before its end, parsed
    /// ahead of the next chunk so no byte is lost.
    pending: Vec<u8>,
    /// The data buffer, without the trailing LF the spec appends and then
    /// strips (`has_data` keeps the difference between no data and `""`).
    data: String,
    /// A `data` field was seen in this event: even an empty one dispatches.
    has_data: bool,
    /// The length of the last dispatched data: the next event reserves that
    /// much at its first data line, so a large multi-line event is not grown
    /// by repeated doubling and copying.
    data_hint: usize,
    /// The event type buffer.
    event_type: String,
    /// A valid `retry` seen in this event's block, reported with the event.
    event_retry: Option<u64>,
    /// The last event ID buffer: set by each `id` field at once; stale
    /// while `id_changed` is false (then `last_event_id` holds its value).
    id_buffer: String,
    /// `id_buffer` changed since the last blank line.
    id_changed: bool,
    /// The last event ID string: what a reconnect sends, updated from
    /// `id_buffer` at each blank line as the spec does.
    last_event_id: String,
    /// The last valid reconnection time seen, in milliseconds.
    retry: Option<u64>,
    /// The current line overflowed: skip its bytes up to its end.
    discard_line: bool,
    /// The current event overflowed: ignore lines up to the next blank one.
    discard_event: bool,
    /// Bytes read by the line scanner, to prove no byte is scanned twice.
    #[cfg(test)]
    scanned: usize,
}

impl Default for Parser {
    fn default() -> Self {
        Parser::new()
    }
}

impl Parser {
    /// A parser with the default limit ([`DEFAULT_MAX_EVENT_BYTES`]), no
    /// comment frames and an empty last event ID.
    pub fn new() -> Self {
        Parser {
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
            comments: false,
            bom_matched: Some(0),
            after_cr: false,
            line: Vec::new(),
            pending: Vec::new(),
            data: String::new(),
            has_data: false,
            data_hint: 0,
            event_type: String::new(),
            event_retry: None,
            id_buffer: String::new(),
            id_changed: false,
            last_event_id: String::new(),
            retry: None,
            discard_line: false,
            discard_event: false,
            #[cfg(test)]
            scanned: 0,
        }
    }

    /// Caps the length of one line and of one event's data at `n` bytes of
    /// input; beyond it [`Feed`] yields [`ParseError::EventTooLarge`].
    #[must_use]
    pub fn with_max_event_bytes(mut self, n: usize) -> Self {
        self.max_event_bytes = n;
        self
    }

    /// Yields comment lines as [`Frame::Comment`] (they are skipped by
    /// default, as `EventSource` does).
    #[must_use]
    pub fn with_comments(mut self, yes: bool) -> Self {
        self.comments = yes;
        self
    }

    /// Starts from a known last event ID: a reconnecting client makes a new
    /// parser for the new connection but keeps the ID it resumed from, and
    /// events without an `id` field carry it.
    #[must_use]
    pub fn with_last_event_id(mut self, id: impl Into<String>) -> Self {
        self.last_event_id = id.into();
        self.id_buffer.clone_from(&self.last_event_id);
        self.id_changed = false;
        self
    }

    /// Parses `chunk`, yielding each frame it completes.
    ///
    /// Dropping the returned [`Feed`] before it is exhausted loses nothing:
    /// the unparsed rest of the chunk is kept and parsed ahead of the next
    /// chunk.
    pub fn feed<'a>(&'a mut self, chunk: &'a [u8]) -> Feed<'a> {
        let input = if self.pending.is_empty() {
            Input::Borrowed(chunk)
        } else {
            let mut owned = mem::take(&mut self.pending);
            owned.extend_from_slice(chunk);
            Input::Owned(owned)
        };
        Feed {
            parser: self,
            input,
            pos: 0,
            chunk: ChunkState {
                next_cr: None,
                checked: None,
            },
        }
    }

    /// The last event ID: what a reconnect sends as `Last-Event-ID`. It
    /// changes when the blank line ending an event arrives (even an event
    /// with no data), not at the `id` line itself.
    pub fn last_event_id(&self) -> &str {
        &self.last_event_id
    }

    /// The last valid reconnection time the stream set, in milliseconds.
    pub fn retry(&self) -> Option<u64> {
        self.retry
    }

    /// The cap on one line and one event's data, in bytes.
    pub fn max_event_bytes(&self) -> usize {
        self.max_event_bytes
    }

    /// Parses from `buf[*pos..]` up to the next frame or error, or to the
    /// end of `buf`.
    fn step<'b>(
        &mut self,
        buf: &'b [u8],
        pos: &mut usize,
        chunk: &mut ChunkState<'b>,
    ) -> Option<Result<Frame, ParseError>> {
        if self.bom_matched.is_some() {
            self.skip_bom(buf, pos);
        }
        while *pos < buf.len() {
            let rest = &buf[*pos..];
            if self.after_cr {
                self.after_cr = false;
                if rest[0] == b'\n' {
                    *pos += 1;
                    continue;
                }
            }
            if let Some(checked) = &mut chunk.checked {
                if self.line.is_empty() && !self.discard_event {
                    if let Some(frame) = self.fast_lines(buf, pos, checked, &mut chunk.next_cr) {
                        return Some(Ok(frame));
                    }
                    if *pos == buf.len() {
                        break;
                    }
                }
            }
            let rest = &buf[*pos..];
            // A blank line (the end of every event) needs no scan.
            let found = if matches!(rest[0], b'\n' | b'\r') {
                Some(0)
            } else {
                self.find_line_end(buf, *pos, &mut chunk.next_cr)
            };
            let Some(end) = found else {
                *pos = buf.len();
                return self.buffer_partial(rest).err().map(Err);
            };
            let mut next = end + 1;
            if rest[end] == b'\r' {
                match rest.get(next) {
                    Some(b'\n') => next += 1,
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
            let start = *pos;
            *pos += next;
            let text = match &mut chunk.checked {
                Some(checked) if end > 0 && self.line.is_empty() => {
                    checked.text(buf, start, start + end)
                }
                _ => None,
            };
            let line = Line {
                bytes: &rest[..end],
                text,
            };
            if let Some(out) = self.end_line(line) {
                return Some(out);
            }
        }
        None
    }

    /// The hot path: LF-terminated `data:` and `id:` lines and blank lines
    /// lying in the UTF-8 checked part of a borrowed chunk, handled without
    /// the general line machinery. It returns a dispatched event, or `None`
    /// at the first line it leaves to the general path of [`Parser::step`]
    /// (any other line, a line over the limit, a CR, an unfinished line),
    /// which gives the same result for every line.
    #[inline]
    fn fast_lines<'b>(
        &mut self,
        buf: &'b [u8],
        pos: &mut usize,
        checked: &mut Checked<'b>,
        next_cr: &mut Option<usize>,
    ) -> Option<Frame> {
        loop {
            let rest = &buf[*pos..];
            let name_len = match rest.first() {
                Some(b'\n') => {
                    *pos += 1;
                    match self.dispatch() {
                        Some(Ok(frame)) => return Some(frame),
                        _ => continue,
                    }
                }
                Some(b'd') if rest.starts_with(b"data:") => 4,
                Some(b'i') if rest.starts_with(b"id:") => 2,
                _ => return None,
            };
            let end = *pos + self.find_line_end(buf, *pos, next_cr)?;
            if buf[end] != b'\n' || end - *pos > self.max_event_bytes {
                return None;
            }
            let mut start = *pos + name_len + 1;
            if start < end && buf[start] == b' ' {
                start += 1;
            }
            let value = checked.text(buf, start, end)?;
            if name_len == 4 {
                if self.has_data {
                    if self.data.len() + 1 + value.len() > self.max_event_bytes {
                        return None;
                    }
                    self.data.push('\n');
                } else {
                    let hint = self.data_hint.min(self.max_event_bytes);
                    self.data = String::with_capacity(value.len().max(hint));
                    self.has_data = true;
                }
                self.data.push_str(value);
            } else {
                if memchr(0, value.as_bytes()).is_some() {
                    return None;
                }
                self.id_buffer.clear();
                self.id_buffer.push_str(value);
                self.id_changed = true;
            }
            *pos = end + 1;
        }
    }

    /// The offset from `pos` of the first CR or LF in `buf[pos..]`.
    ///
    /// A plain `memchr` for LF is much cheaper per call than `memchr2` for
    /// CR and LF, and most streams have no CR at all: so the next CR is
    /// located once (`next_cr`, reused until passed) and LF is searched only
    /// up to it. Each byte is read at most twice, by the two searches.
    #[inline]
    fn find_line_end(
        &mut self,
        buf: &[u8],
        pos: usize,
        next_cr: &mut Option<usize>,
    ) -> Option<usize> {
        let cr = match *next_cr {
            Some(cr) if cr >= pos => cr,
            _ => {
                let cr = memchr(b'\r', &buf[pos..]).map_or(buf.len(), |i| pos + i);
                #[cfg(test)]
                {
                    self.scanned += (cr + 1).min(buf.len()) - pos;
                }
                *next_cr = Some(cr);
                cr
            }
        };
        let lf = memchr(b'\n', &buf[pos..cr]);
        #[cfg(test)]
        {
            self.scanned += lf.map_or(cr - pos, |i| i + 1);
        }
        match lf {
            Some(i) => Some(i),
            None => (cr < buf.len()).then_some(cr - pos),
        }
    }

    fn skip_bom(&mut self, buf: &[u8], pos: &mut usize) {
        while let Some(matched) = self.bom_matched {
            let Some(&byte) = buf.get(*pos) else {
                return;
            };
            if byte == BOM[matched] {
                *pos += 1;
                self.bom_matched = (matched < 2).then_some(matched + 1);
            } else {
                // Not a BOM after all: the bytes taken so far open the first
                // line (and decode to U+FFFD there, as a browser's would).
                self.line.extend_from_slice(&BOM[..matched]);
                self.bom_matched = None;
            }
        }
    }

    /// Keeps the unfinished tail of a chunk until its line ends.
    fn buffer_partial(&mut self, tail: &[u8]) -> Result<(), ParseError> {
        if self.discard_event {
            self.discard_line |= !tail.is_empty();
            return Ok(());
        }
        if self.line.len() + tail.len() > self.max_event_bytes {
            self.line = Vec::new();
            let err = self.start_discard();
            self.discard_line = true;
            return Err(err);
        }
        self.line.extend_from_slice(tail);
        Ok(())
    }

    /// Handles a line whose terminator has just been seen; `content` is the
    /// part of it in the current chunk.
    #[inline]
    fn end_line(&mut self, content: Line<'_>) -> Option<Result<Frame, ParseError>> {
        if self.discard_event {
            // The line buffer stays empty while discarding.
            let blank = content.bytes.is_empty() && !self.discard_line;
            self.discard_line = false;
            if blank {
                self.discard_event = false;
                // Still a blank line: it commits the last event ID.
                return self.dispatch();
            }
            return None;
        }
        if self.line.is_empty() {
            if content.bytes.len() > self.max_event_bytes {
                return Some(Err(self.start_discard()));
            }
            return self.process_line(content);
        }
        if self.line.len() + content.bytes.len() > self.max_event_bytes {
            self.line = Vec::new();
            return Some(Err(self.start_discard()));
        }
        let mut line = mem::take(&mut self.line);
        line.extend_from_slice(content.bytes);
        let out = self.process_line(Line {
            bytes: &line,
            text: None,
        });
        line.clear();
        self.line = line;
        out
    }

    fn start_discard(&mut self) -> ParseError {
        self.discard_event = true;
        self.data = String::new();
        self.has_data = false;
        self.event_type.clear();
        self.event_retry = None;
        ParseError::EventTooLarge {
            limit: self.max_event_bytes,
        }
    }

    #[inline]
    fn process_line(&mut self, line: Line<'_>) -> Option<Result<Frame, ParseError>> {
        let bytes = line.bytes;
        if bytes.starts_with(b"data:") {
            return self.data_line(line.skip(5).strip_space());
        }
        if bytes.is_empty() {
            return self.dispatch();
        }
        // Every known field name is at most 5 bytes, so its colon is within
        // the first 6: no need to search a long line for one.
        let (name, value) = match bytes[..bytes.len().min(6)].iter().position(|&b| b == b':') {
            Some(0) => return self.comment(&bytes[1..]),
            Some(colon) => (&bytes[..colon], line.skip(colon + 1).strip_space()),
            None if bytes.len() > 5 => return None,
            None => (bytes, line.skip(bytes.len())),
        };
        match name {
            b"data" => return self.data_line(value),
            b"event" => {
                self.event_type.clear();
                value.push_to(&mut self.event_type);
            }
            // An id holding NUL is ignored as a whole.
            b"id" if memchr(0, value.bytes).is_none() => {
                self.id_buffer.clear();
                value.push_to(&mut self.id_buffer);
                self.id_changed = true;
            }
            b"retry" => {
                if let Some(ms) = parse_digits(value.bytes) {
                    self.retry = Some(ms);
                    self.event_retry = Some(ms);
                }
            }
            _ => {}
        }
        None
    }

    #[inline]
    fn data_line(&mut self, value: Line<'_>) -> Option<Result<Frame, ParseError>> {
        if self.has_data {
            if self.data.len() + 1 + value.bytes.len() > self.max_event_bytes {
                return Some(Err(self.start_discard()));
            }
            self.data.push('\n');
        } else {
            // The buffer is empty here (it moved into the last event).
            let hint = self.data_hint.min(self.max_event_bytes);
            self.data = String::with_capacity(value.bytes.len().max(hint));
            self.has_data = true;
        }
        value.push_to(&mut self.data);
        None
    }

    fn comment(&mut self, text: &[u8]) -> Option<Result<Frame, ParseError>> {
        self.comments.then(|| {
            Ok(Frame::Comment(
                String::from_utf8_lossy(strip_space(text)).into_owned(),
            ))
        })
    }

    /// The blank-line step of the spec.
    #[inline]
    fn dispatch(&mut self) -> Option<Result<Frame, ParseError>> {
        if self.id_changed {
            self.id_changed = false;
            // A swap, not a copy: `id_buffer` is only read again after the
            // next `id` field has overwritten it.
            mem::swap(&mut self.last_event_id, &mut self.id_buffer);
        }
        let retry = self.event_retry.take();
        if !self.has_data {
            self.event_type.clear();
            return None;
        }
        self.has_data = false;
        let mut data = mem::take(&mut self.data);
        self.data_hint = data.len();
        // A hint from a much larger event over-reserved: give it back.
        if data.capacity() > 2 * data.len() + 64 {
            data.shrink_to_fit();
        }
        let event = (!self.event_type.is_empty()).then(|| mem::take(&mut self.event_type));
        let id = (!self.last_event_id.is_empty()).then(|| self.last_event_id.clone());
        Some(Ok(Frame::Event(Event {
            event,
            data,
            id,
            retry,
        })))
    }
}

/// A complete line, or a part of one, with its text when the chunk's UTF-8
/// check already covered it (then it is appended without a second check).
#[derive(Clone, Copy)]
struct Line<'a> {
    bytes: &'a [u8],
    text: Option<&'a str>,
}

impl<'a> Line<'a> {
    /// The line from byte `n` on; `n` always follows an ASCII byte, so it is
    /// a character boundary of `text`.
    #[inline]
    fn skip(self, n: usize) -> Line<'a> {
        Line {
            bytes: &self.bytes[n..],
            text: self.text.and_then(|text| text.get(n..)),
        }
    }

    /// Drops the one space the spec drops after a field's colon.
    #[inline]
    fn strip_space(self) -> Line<'a> {
        if self.bytes.first() == Some(&b' ') {
            self.skip(1)
        } else {
            self
        }
    }

    #[inline]
    fn push_to(self, out: &mut String) {
        match self.text {
            Some(text) => out.push_str(text),
            None => push_lossy(out, self.bytes),
        }
    }
}

/// What a [`Feed`] knows about its chunk beyond the parse position.
#[derive(Debug)]
struct ChunkState<'a> {
    /// The next CR at or after the position it was searched from (the chunk
    /// length if none); `None` until searched.
    next_cr: Option<usize>,
    /// The UTF-8 checked part, for a borrowed chunk only.
    checked: Option<Checked<'a>>,
}

/// The part of a borrowed chunk already known to be valid UTF-8, so lines
/// inside it are appended to strings without a check per line (which costs
/// more than the check itself on short lines).
#[derive(Debug)]
struct Checked<'a> {
    /// Valid text starting at byte `start` of the chunk.
    text: &'a str,
    /// Where `text` starts in the chunk.
    start: usize,
}

impl<'a> Checked<'a> {
    /// The text of `buf[start..end]`, a complete line, if it is valid UTF-8.
    ///
    /// A line starting past the checked part triggers a check from there to
    /// the first invalid byte, so each byte is checked at most once.
    #[inline]
    fn text(&mut self, buf: &'a [u8], start: usize, end: usize) -> Option<&'a str> {
        if start >= self.start + self.text.len() {
            self.check_from(buf, start);
        }
        // A line starting before the checked part (the general path taking
        // over a line the fast path gave up on) is checked on its own.
        let from = start.checked_sub(self.start)?;
        self.text.get(from..end - self.start)
    }

    /// Checks `buf[start..]` up to its first invalid byte.
    #[cold]
    fn check_from(&mut self, buf: &'a [u8], start: usize) {
        let rest = &buf[start..];
        // `compat` stops at the first invalid block (and says where the
        // error is): after an invalid line the next check starts past it, so
        // no byte is checked twice. `basic` would read to the end each time.
        self.text = match simdutf8::compat::from_utf8(rest) {
            Ok(text) => text,
            Err(err) => simdutf8::basic::from_utf8(&rest[..err.valid_up_to()]).unwrap_or(""),
        };
        #[cfg(test)]
        UTF8_CHECKED.with(|n| n.set(n.get() + (self.text.len() + 1).min(rest.len())));
        self.start = start;
    }
}

#[cfg(test)]
thread_local! {
    /// Bytes handed to the chunk UTF-8 check, up to its first error.
    static UTF8_CHECKED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

fn strip_space(value: &[u8]) -> &[u8] {
    value.strip_prefix(b" ").unwrap_or(value)
}

/// Appends `bytes` as UTF-8, with U+FFFD for each invalid sequence (what a
/// browser's decoder does: since line breaks are ASCII, no sequence spans
/// two lines, so decoding line by line equals decoding the stream).
#[inline]
fn push_lossy(out: &mut String, bytes: &[u8]) {
    match simdutf8::basic::from_utf8(bytes) {
        Ok(text) => out.push_str(text),
        Err(_) => out.push_str(&String::from_utf8_lossy(bytes)),
    }
}

/// The value of a `retry` field: ASCII digits only; one too large for a
/// `u64` is ignored like any other invalid value.
fn parse_digits(value: &[u8]) -> Option<u64> {
    if value.is_empty() {
        return None;
    }
    value.iter().try_fold(0u64, |acc, &b| {
        if !b.is_ascii_digit() {
            return None;
        }
        acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

/// The frames one chunk completes: an iterator returned by [`Parser::feed`].
///
/// It yields `Err` for an event over the limit and then carries on (see
/// [`ParseError`]). Dropping it early keeps the unparsed rest of the chunk
/// in the parser.
#[derive(Debug)]
pub struct Feed<'a> {
    /// The parser the frames come from and where leftovers go.
    parser: &'a mut Parser,
    /// The bytes to parse: the caller's chunk, or bytes left over by a
    /// dropped `Feed` with this chunk appended.
    input: Input<'a>,
    /// How far `input` has been parsed.
    pos: usize,
    /// What is known of `input` ahead of `pos`.
    chunk: ChunkState<'a>,
}

#[derive(Debug)]
enum Input<'a> {
    Borrowed(&'a [u8]),
    Owned(Vec<u8>),
}

impl Iterator for Feed<'_> {
    type Item = Result<Frame, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.input {
            Input::Borrowed(chunk) => {
                if self.chunk.checked.is_none() {
                    self.chunk.checked = Some(Checked { text: "", start: 0 });
                }
                self.parser.step(chunk, &mut self.pos, &mut self.chunk)
            }
            // Rare (a Feed was dropped early): the owned bytes cannot lend
            // text to the Feed holding them, so each line is checked alone.
            Input::Owned(ref owned) => {
                let mut chunk = ChunkState {
                    next_cr: self.chunk.next_cr,
                    checked: None,
                };
                let out = self.parser.step(owned, &mut self.pos, &mut chunk);
                self.chunk.next_cr = chunk.next_cr;
                out
            }
        }
    }
}

impl FusedIterator for Feed<'_> {}

impl Drop for Feed<'_> {
    fn drop(&mut self) {
        match &mut self.input {
            Input::Borrowed(chunk) => {
                // `feed` only borrows when nothing was pending.
                self.parser
                    .pending
                    .extend_from_slice(chunk.get(self.pos..).unwrap_or_default());
            }
            Input::Owned(owned) => {
                let mut rest = mem::take(owned);
                rest.drain(..self.pos.min(rest.len()));
                self.parser.pending = rest;
            }
        }
    }
}

#[cfg(test)]
mod tests;
