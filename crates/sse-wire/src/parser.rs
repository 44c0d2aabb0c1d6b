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
mod tests {
    use super::*;

    /// Feeds `chunks` in order and returns every item and the parser.
    fn run(mut parser: Parser, chunks: &[&[u8]]) -> (Vec<Result<Frame, ParseError>>, Parser) {
        let mut out = Vec::new();
        for chunk in chunks {
            out.extend(parser.feed(chunk));
        }
        (out, parser)
    }

    fn events(chunks: &[&[u8]]) -> Vec<Event> {
        run(Parser::new(), chunks)
            .0
            .into_iter()
            .map(|item| match item {
                Ok(Frame::Event(ev)) => ev,
                other => panic!("unexpected {other:?}"),
            })
            .collect()
    }

    fn datas(chunks: &[&[u8]]) -> Vec<String> {
        events(chunks).into_iter().map(|ev| ev.data).collect()
    }

    #[test]
    fn bom_is_skipped_at_stream_start() {
        assert_eq!(datas(&[b"\xEF\xBB\xBFdata: x\n\n"]), ["x"]);
    }

    #[test]
    fn bom_split_across_chunks_is_skipped() {
        assert_eq!(datas(&[b"\xEF", b"\xBB", b"\xBFdata: x\n\n"]), ["x"]);
    }

    #[test]
    fn bom_is_skipped_only_once() {
        // The second BOM belongs to the field name, which is then unknown.
        assert_eq!(
            datas(&[b"\xEF\xBB\xBF\xEF\xBB\xBFdata: x\n\ndata: y\n\n"]),
            ["y"]
        );
    }

    #[test]
    fn bom_after_the_first_line_is_not_skipped() {
        assert_eq!(datas(&[b"\n\xEF\xBB\xBFdata: x\n\ndata: y\n\n"]), ["y"]);
    }

    #[test]
    fn partial_bom_is_kept_as_line_content() {
        // EF BB then 'd': not a BOM, so the first field name is not `data`.
        assert_eq!(datas(&[b"\xEF\xBB", b"data: x\n\ndata: y\n\n"]), ["y"]);
        assert_eq!(
            datas(&[b"\xEF\xBB:\ndata: y\n\n"]),
            ["y"],
            "a line of partial BOM then a colon is a field named U+FFFD"
        );
    }

    #[test]
    fn lines_end_in_lf_cr_or_crlf() {
        assert_eq!(datas(&[b"data: a\n\n"]), ["a"]);
        assert_eq!(datas(&[b"data: a\r\r"]), ["a"]);
        assert_eq!(datas(&[b"data: a\r\n\r\n"]), ["a"]);
        assert_eq!(datas(&[b"data: a\rdata: b\ndata: c\r\n\n"]), ["a\nb\nc"]);
    }

    #[test]
    fn crlf_split_across_chunks_is_one_line_break() {
        assert_eq!(
            datas(&[b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"]),
            ["a\nb"]
        );
    }

    #[test]
    fn cr_at_chunk_end_followed_by_other_byte() {
        assert_eq!(datas(&[b"data: a\r", b"data: b\r", b"\r"]), ["a\nb"]);
    }

    #[test]
    fn comments_are_skipped_by_default() {
        assert_eq!(datas(&[b": hi\ndata: a\n:\n\n"]), ["a"]);
    }

    #[test]
    fn comments_are_yielded_when_enabled() {
        let (out, _) = run(Parser::new().with_comments(true), &[b": hi\n:  two\n:\n"]);
        assert_eq!(
            out,
            [
                Ok(Frame::Comment("hi".into())),
                Ok(Frame::Comment(" two".into())),
                Ok(Frame::Comment(String::new())),
            ]
        );
    }

    #[test]
    fn comment_does_not_dispatch() {
        assert_eq!(datas(&[b"data: a\n: x\ndata: b\n\n"]), ["a\nb"]);
    }

    #[test]
    fn line_without_colon_is_field_with_empty_value() {
        assert_eq!(datas(&[b"data\n\n"]), [""]);
        assert_eq!(datas(&[b"data: a\ndata\n\n"]), ["a\n"]);
    }

    #[test]
    fn one_leading_space_is_dropped() {
        assert_eq!(datas(&[b"data:x\n\n"]), ["x"]);
        assert_eq!(datas(&[b"data: x\n\n"]), ["x"]);
        assert_eq!(datas(&[b"data:  x \n\n"]), [" x "]);
        let ev = &events(&[b"event:  t\nid:  1\ndata\n\n"])[0];
        assert_eq!(
            (ev.event.as_deref(), ev.id.as_deref()),
            (Some(" t"), Some(" 1"))
        );
    }

    #[test]
    fn value_may_contain_colons() {
        assert_eq!(datas(&[b"data: a: b:c\n\n"]), ["a: b:c"]);
    }

    #[test]
    fn id_with_nul_is_ignored() {
        let evs = events(&[b"id: 1\ndata: a\n\nid: 2\0x\ndata: b\n\n"]);
        assert_eq!(evs[1].id.as_deref(), Some("1"));
    }

    #[test]
    fn empty_id_resets_last_event_id() {
        let (out, parser) = run(Parser::new(), &[b"id: 1\ndata: a\n\nid\ndata: b\n\n"]);
        assert_eq!(out[1], Ok(Frame::Event(Event::new("b"))));
        assert_eq!(parser.last_event_id(), "");
    }

    #[test]
    fn id_persists_across_events() {
        let evs = events(&[b"id: 1\ndata: a\n\ndata: b\n\n"]);
        assert_eq!(evs[1].id.as_deref(), Some("1"));
    }

    #[test]
    fn last_event_id_changes_at_the_blank_line() {
        let (_, parser) = run(Parser::new(), &[b"id: 1\n\nid: 2\n"]);
        assert_eq!(parser.last_event_id(), "1");
    }

    #[test]
    fn retry_accepts_digits_only() {
        for bad in [
            &b"retry: 12a\n"[..],
            b"retry: -1\n",
            b"retry: 1.5\n",
            b"retry:\n",
            b"retry\n",
            b"retry:  10\n",
            b"retry: 99999999999999999999999\n",
        ] {
            let (_, parser) = run(Parser::new(), &[bad, b"\n"]);
            assert_eq!(parser.retry(), None, "{:?}", String::from_utf8_lossy(bad));
        }
        let (out, parser) = run(Parser::new(), &[b"retry: 1500\ndata: x\n\ndata: y\n\n"]);
        assert_eq!(parser.retry(), Some(1500));
        assert_eq!(out[0], Ok(Frame::Event(Event::new("x").with_retry(1500))));
        assert_eq!(
            out[1],
            Ok(Frame::Event(Event::new("y"))),
            "retry is per event"
        );
    }

    #[test]
    fn retry_applies_without_dispatch() {
        let (out, parser) = run(Parser::new(), &[b"retry: 10\n\n"]);
        assert!(out.is_empty());
        assert_eq!(parser.retry(), Some(10));
    }

    #[test]
    fn unknown_and_wrong_case_fields_are_ignored() {
        let evs = events(&[b"foo: bar\nData: no\nID: 9\nEvent: t\nRetry: 5\ndata: x\n\n"]);
        assert_eq!(evs, [Event::new("x")]);
        let (_, parser) = run(Parser::new(), &[b"Retry: 5\nID: 9\n\n"]);
        assert_eq!((parser.retry(), parser.last_event_id()), (None, ""));
    }

    #[test]
    fn empty_data_is_not_dispatched_but_id_sticks() {
        let (out, parser) = run(Parser::new(), &[b"id: 5\n\n"]);
        assert!(out.is_empty());
        assert_eq!(parser.last_event_id(), "5");
        assert_eq!(datas(&[b"event: t\n\n"]), Vec::<String>::new());
    }

    #[test]
    fn data_lines_are_joined_and_the_final_lf_removed() {
        assert_eq!(datas(&[b"data: a\ndata:\ndata: b\n\n"]), ["a\n\nb"]);
        assert_eq!(datas(&[b"data:\ndata:\n\n"]), ["\n"]);
    }

    #[test]
    fn event_type_resets_after_each_dispatch() {
        let evs = events(&[b"event: t\ndata: a\n\ndata: b\n\n"]);
        assert_eq!(evs[0].event_type(), "t");
        assert_eq!(evs[1].event, None);
        // Even when the blank line dispatched nothing.
        let evs = events(&[b"event: t\n\ndata: b\n\n"]);
        assert_eq!(evs[0].event, None);
    }

    #[test]
    fn empty_event_type_means_message() {
        let evs = events(&[b"event\ndata: a\n\n"]);
        assert_eq!(evs[0].event, None);
    }

    #[test]
    fn unfinished_final_event_is_dropped() {
        assert!(datas(&[b"data: a\n"]).is_empty());
        assert!(datas(&[b"data: a"]).is_empty());
        assert!(datas(&[b"data: a\n\ndata: b\n"]).len() == 1);
    }

    #[test]
    fn invalid_utf8_becomes_replacement_character() {
        assert_eq!(datas(&[b"data: a\xFFb\n\n"]), ["a\u{FFFD}b"]);
        let evs = events(&[b"event: \xC0t\nid: \xFE\ndata: x\n\n"]);
        assert_eq!(evs[0].event.as_deref(), Some("\u{FFFD}t"));
        assert_eq!(evs[0].id.as_deref(), Some("\u{FFFD}"));
    }

    #[test]
    fn truncated_utf8_does_not_stall_the_stream() {
        // A sequence cut by the line end is replaced; later events still come.
        assert_eq!(
            datas(&[b"data: \xE2\x82\n\ndata: ok\n\n"]),
            ["\u{FFFD}", "ok"]
        );
    }

    #[test]
    fn multi_byte_character_split_across_chunks() {
        assert_eq!(
            datas(&[b"data: \xE2", b"\x82", b"\xAC\n", b"\n"]),
            ["\u{20AC}"]
        );
    }

    #[test]
    fn with_last_event_id_carries_over_to_events() {
        let (out, parser) = run(
            Parser::new().with_last_event_id("41"),
            &[b"data: a\n\nid: 42\ndata: b\n\n"],
        );
        assert_eq!(out[0], Ok(Frame::Event(Event::new("a").with_id("41"))));
        assert_eq!(out[1], Ok(Frame::Event(Event::new("b").with_id("42"))));
        assert_eq!(parser.last_event_id(), "42");
    }

    #[test]
    fn dropping_feed_early_loses_no_bytes() {
        let mut parser = Parser::new();
        let first = parser.feed(b"data: a\n\ndata: b\n\ndata: c").next();
        assert_eq!(first, Some(Ok(Frame::Event(Event::new("a")))));
        // Drop a second feed before taking anything.
        drop(parser.feed(b"1\n"));
        let rest: Vec<_> = parser.feed(b"\n").collect();
        assert_eq!(
            rest,
            [
                Ok(Frame::Event(Event::new("b"))),
                Ok(Frame::Event(Event::new("c1")))
            ]
        );
    }

    #[test]
    fn line_over_the_limit_is_an_error_then_parsing_resumes() {
        for chunks in [
            &[&b"data: 0123456789\ndata: z\n\ndata: ok\n\n"[..]][..],
            &[b"data: 01234", b"56789", b"\ndata: z\n\ndata: ok\n\n"],
            &[b"data: 0123456789", b"\ndata: z\n", b"\ndata: ok\n\n"],
        ] {
            let (out, _) = run(Parser::new().with_max_event_bytes(12), chunks);
            assert_eq!(
                out,
                [
                    Err(ParseError::EventTooLarge { limit: 12 }),
                    Ok(Frame::Event(Event::new("ok")))
                ],
                "{chunks:?}"
            );
        }
    }

    #[test]
    fn data_over_the_limit_across_lines_is_an_error() {
        let (out, _) = run(
            Parser::new().with_max_event_bytes(10),
            &[b"data: abcd\ndata: efgh\ndata: ijkl\n\ndata: ok\n\n"],
        );
        assert_eq!(
            out,
            [
                Err(ParseError::EventTooLarge { limit: 10 }),
                Ok(Frame::Event(Event::new("ok")))
            ]
        );
    }

    #[test]
    fn limit_error_is_reported_once_per_event() {
        let (out, _) = run(
            Parser::new().with_max_event_bytes(4),
            &[b"data: long\ndata: longer\n", b"xxxxxxxxxxxx", b"\n\n"],
        );
        assert_eq!(out, [Err(ParseError::EventTooLarge { limit: 4 })]);
    }

    #[test]
    fn line_at_the_limit_is_accepted() {
        let (out, _) = run(
            Parser::new().with_max_event_bytes(7),
            &[b"data: a", b"b\n\n"],
        );
        assert_eq!(out, [Err(ParseError::EventTooLarge { limit: 7 })]);
        let (out, _) = run(
            Parser::new().with_max_event_bytes(8),
            &[b"data: a", b"b\n\n"],
        );
        assert_eq!(out, [Ok(Frame::Event(Event::new("ab")))]);
    }

    #[test]
    fn over_long_partial_line_is_not_buffered() {
        let mut parser = Parser::new().with_max_event_bytes(16);
        let big = vec![b'x'; 1000];
        assert_eq!(
            parser.feed(&big).collect::<Vec<_>>(),
            [Err(ParseError::EventTooLarge { limit: 16 })]
        );
        for _ in 0..100 {
            assert!(parser.feed(&big).next().is_none());
        }
        assert!(parser.line.capacity() <= 16);
        let ok: Vec<_> = parser.feed(b"\n\ndata: ok\n\n").collect();
        assert_eq!(ok, [Ok(Frame::Event(Event::new("ok")))]);
    }

    #[test]
    fn many_invalid_lines_in_one_chunk_are_utf8_checked_once() {
        let input = b"data: \xFF\n".repeat(20_000);
        let before = UTF8_CHECKED.with(std::cell::Cell::get);
        let mut parser = Parser::new();
        assert_eq!(parser.feed(&input).count(), 0);
        assert_eq!(parser.feed(b"\n").count(), 1);
        let checked = UTF8_CHECKED.with(std::cell::Cell::get) - before;
        assert!(
            checked <= input.len(),
            "checked {checked} bytes of {}",
            input.len()
        );
    }

    #[test]
    fn single_long_line_in_small_chunks_is_scanned_once() {
        let mut parser = Parser::new();
        let mut input = b"data: ".to_vec();
        input.resize(1 << 20, b'y');
        input.extend_from_slice(b"\n\n");
        let mut got = Vec::new();
        for chunk in input.chunks(7) {
            got.extend(parser.feed(chunk));
        }
        assert_eq!(got.len(), 1);
        // A constant number of times: once by the CR search, at most twice
        // by the LF search (the fast path, then the general one).
        assert!(
            parser.scanned <= 3 * input.len(),
            "scanned {} bytes of {}",
            parser.scanned,
            input.len()
        );
    }
}
