//! The incremental `text/event-stream` parser (WHATWG HTML, "Server-sent
//! events", section "Event stream interpretation").
//!
//! Bytes go in through [`Parser::feed`] in chunks of any size; complete lines
//! are parsed straight out of the caller's chunk and only an unfinished
//! trailing line is copied into the parser, so every input byte is scanned a
//! bounded number of times whatever the chunking.
//!
//! Per chunk, a [`Feed`] keeps what it learnt ahead of the parse position
//! (`ChunkState`, in `feed`): where the next CR is (so line ends are found
//! with a plain LF search) and how far the chunk is valid UTF-8 (checked
//! once, with SIMD; `Checked`, in `text`). Lines inside that valid part are
//! sliced as `&str` without a check per line. `data:`/`id:`/blank lines take
//! a fast path (`fast_lines`); everything else, and every line that spans
//! chunks, takes the general path, which implements each rule once.
//!
//! A dispatched event leaves [`Parser::step`] as a `Done`: its strings stay
//! where they are, the data as a slice of the chunk while it is one line
//! there (`ChunkState::data`), else in the parser's `data` buffer; type and
//! id in the parser's buffers. The caller then either lends them
//! ([`Feed::next_ref`], no allocation, buffers reused) or takes them
//! ([`Feed`]'s `Iterator`, one `String` per field, buffers moved out). So
//! both APIs share every rule and differ only in that last step.

use std::mem;

use memchr::memchr;

use crate::{Event, EventRef, Frame, FrameRef, ParseError};

mod feed;
mod text;

use feed::ChunkState;
pub use feed::Feed;
#[cfg(test)]
use text::UTF8_CHECKED;
use text::{Checked, Line, parse_digits, push_lossy};

/// The default cap on one line and on one event's data: 16 MiB.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

const BOM: [u8; 3] = [0xEF, 0xBB, 0xBF];

/// An incremental event-stream parser: one per connection.
///
/// Feed it the response body chunk by chunk with [`Parser::feed`] and iterate
/// over what each chunk completes, owned; or have the same frames lent with
/// [`Feed::next_ref`] or [`Parser::feed_with`], which allocate nothing per
/// event. Whatever the chunking (a CRLF or a multi-byte character split
/// across chunks included), the same bytes give the same frames.
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
    /// Unused while the data is one line lent from the chunk
    /// (`ChunkState::data`); kept, with its capacity, across lent events.
    data: String,
    /// A `data` field was seen in this event: even an empty one dispatches.
    has_data: bool,
    /// The length of the last dispatched data: the next event reserves that
    /// much at its first data line, so a large multi-line event is not grown
    /// by repeated doubling and copying.
    data_hint: usize,
    /// The event type buffer.
    event_type: String,
    /// The last dispatched event may still be lent: clear its type before
    /// the next line (its data is replaced at the next first data line).
    dispatched: bool,
    /// The last comment line, lent or taken as a frame.
    comment: String,
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
            dispatched: false,
            comment: String::new(),
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
    /// end of `buf`; then a data line lent from `buf` is copied into the
    /// parser, since the next chunk is another buffer.
    fn step<'b>(
        &mut self,
        buf: &'b [u8],
        pos: &mut usize,
        chunk: &mut ChunkState<'b>,
    ) -> Option<Result<Done<'b>, ParseError>> {
        if self.dispatched {
            self.dispatched = false;
            self.event_type.clear();
        }
        let out = self.scan(buf, pos, chunk);
        if out.is_none() {
            self.keep_lent_data(&mut chunk.data);
        }
        out
    }

    fn scan<'b>(
        &mut self,
        buf: &'b [u8],
        pos: &mut usize,
        chunk: &mut ChunkState<'b>,
    ) -> Option<Result<Done<'b>, ParseError>> {
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
                    if let Some(done) =
                        self.fast_lines(buf, pos, checked, &mut chunk.next_cr, &mut chunk.data)
                    {
                        return Some(Ok(done));
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
            if let Some(out) = self.end_line(line, &mut chunk.data) {
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
        lent: &mut Option<&'b str>,
    ) -> Option<Done<'b>> {
        loop {
            let rest = &buf[*pos..];
            let name_len = match rest.first() {
                Some(b'\n') => {
                    *pos += 1;
                    match self.dispatch(lent) {
                        Some(done) => return Some(done),
                        None => continue,
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
                if !self.has_data {
                    self.has_data = true;
                    *lent = Some(value);
                } else {
                    if self.data_overflows(value.len(), *lent) {
                        return None;
                    }
                    if lent.is_some() {
                        self.unlend_data(lent);
                    }
                    self.data.push('\n');
                    self.data.push_str(value);
                }
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
    fn end_line<'b>(
        &mut self,
        content: Line<'_, 'b>,
        lent: &mut Option<&'b str>,
    ) -> Option<Result<Done<'b>, ParseError>> {
        if self.discard_event {
            // The line buffer stays empty while discarding.
            let blank = content.bytes.is_empty() && !self.discard_line;
            self.discard_line = false;
            if blank {
                self.discard_event = false;
                // Still a blank line: it commits the last event ID.
                return self.dispatch(lent).map(Ok);
            }
            return None;
        }
        if self.line.is_empty() {
            if content.bytes.len() > self.max_event_bytes {
                return Some(Err(self.start_discard()));
            }
            return self.process_line(content, lent);
        }
        if self.line.len() + content.bytes.len() > self.max_event_bytes {
            self.line = Vec::new();
            return Some(Err(self.start_discard()));
        }
        let mut line = mem::take(&mut self.line);
        line.extend_from_slice(content.bytes);
        let out = self.process_line(
            Line {
                bytes: &line,
                text: None,
            },
            lent,
        );
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
    fn process_line<'b>(
        &mut self,
        line: Line<'_, 'b>,
        lent: &mut Option<&'b str>,
    ) -> Option<Result<Done<'b>, ParseError>> {
        let bytes = line.bytes;
        if bytes.starts_with(b"data:") {
            return self.data_line(line.skip(5).strip_space(), lent);
        }
        if bytes.is_empty() {
            return self.dispatch(lent).map(Ok);
        }
        // Every known field name is at most 5 bytes, so its colon is within
        // the first 6: no need to search a long line for one.
        let (name, value) = match bytes[..bytes.len().min(6)].iter().position(|&b| b == b':') {
            Some(0) => return self.comment(line.skip(1).strip_space()),
            Some(colon) => (&bytes[..colon], line.skip(colon + 1).strip_space()),
            None if bytes.len() > 5 => return None,
            None => (bytes, line.skip(bytes.len())),
        };
        match name {
            b"data" => return self.data_line(value, lent),
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
    fn data_line<'b>(
        &mut self,
        value: Line<'_, 'b>,
        lent: &mut Option<&'b str>,
    ) -> Option<Result<Done<'b>, ParseError>> {
        if self.data_overflows(value.bytes.len(), *lent) {
            return Some(Err(self.start_discard()));
        }
        self.push_data(value, lent);
        None
    }

    /// Whether one more data line of `len` bytes takes the event over the
    /// limit (the first line was checked as a line already).
    #[inline]
    fn data_overflows(&self, len: usize, lent: Option<&str>) -> bool {
        self.has_data && lent.map_or(self.data.len(), str::len) + 1 + len > self.max_event_bytes
    }

    /// Appends a data line: the first one of an event is lent from the chunk
    /// when it lies there; a second one (or one from the parser's line
    /// buffer) puts the data in the parser's buffer.
    #[inline]
    fn push_data<'b>(&mut self, value: Line<'_, 'b>, lent: &mut Option<&'b str>) {
        if !self.has_data {
            self.has_data = true;
            *lent = value.text;
            if lent.is_none() {
                self.start_data(value.bytes.len());
                push_lossy(&mut self.data, value.bytes);
            }
            return;
        }
        if lent.is_some() {
            self.unlend_data(lent);
        }
        self.data.push('\n');
        value.push_to(&mut self.data);
    }

    /// Moves the event's first data line, lent from the chunk, into the
    /// data buffer, for a second line to follow it.
    #[cold]
    #[inline(never)]
    fn unlend_data(&mut self, lent: &mut Option<&str>) {
        if let Some(first) = lent.take() {
            // Room for a second line like the first, at least.
            self.start_data(2 * first.len() + 1);
            self.data.push_str(first);
        }
    }

    /// Empties the data buffer for a new event, with room for `need` bytes
    /// or the last event's size, whichever is more, so a large multi-line
    /// event is not grown by repeated doubling and copying.
    #[inline]
    fn start_data(&mut self, need: usize) {
        let want = self.data_hint.min(self.max_event_bytes).max(need);
        if self.data.capacity() > 2 * want + 4096 {
            // A lent buffer sized by a much larger event: give it back.
            self.data = String::with_capacity(want);
        } else {
            self.data.clear();
            self.data.reserve(want);
        }
    }

    /// Copies a data line lent from a chunk into the parser, before that
    /// chunk goes away with its event unfinished.
    fn keep_lent_data(&mut self, lent: &mut Option<&str>) {
        if let Some(text) = lent.take() {
            if self.has_data {
                self.start_data(text.len());
                self.data.push_str(text);
            }
        }
    }

    fn comment<'b>(&mut self, text: Line<'_, 'b>) -> Option<Result<Done<'b>, ParseError>> {
        self.comments.then(|| {
            self.comment.clear();
            text.push_to(&mut self.comment);
            Ok(Done::Comment)
        })
    }

    /// The blank-line step of the spec. The event's type, id and (unless
    /// lent from the chunk) data stay in the parser for [`Parser::lend`] or
    /// [`Parser::take`].
    #[inline]
    fn dispatch<'b>(&mut self, lent: &mut Option<&'b str>) -> Option<Done<'b>> {
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
        let data = lent.take();
        self.data_hint = data.map_or(self.data.len(), str::len);
        self.dispatched = true;
        Some(Done::Event { data, retry })
    }

    /// A completed frame, lent from the chunk and the parser's buffers.
    #[inline]
    fn lend<'s>(&'s self, done: Done<'s>) -> FrameRef<'s> {
        match done {
            Done::Event { data, retry } => FrameRef::Event(EventRef {
                event: (!self.event_type.is_empty()).then_some(self.event_type.as_str()),
                data: data.unwrap_or(&self.data),
                id: (!self.last_event_id.is_empty()).then_some(self.last_event_id.as_str()),
                retry,
            }),
            Done::Comment => FrameRef::Comment(&self.comment),
        }
    }

    /// A completed frame, owned: the data and type buffers move into it
    /// (a data line lent from the chunk is copied once), the id is copied
    /// (the parser keeps it as the last event ID).
    #[inline]
    fn take(&mut self, done: Done<'_>) -> Frame {
        match done {
            Done::Event { data, retry } => {
                let data = match data {
                    Some(text) => text.to_owned(),
                    None => {
                        let mut data = mem::take(&mut self.data);
                        // A hint from a much larger event over-reserved.
                        if data.capacity() > 2 * data.len() + 64 {
                            data.shrink_to_fit();
                        }
                        data
                    }
                };
                let event = (!self.event_type.is_empty()).then(|| mem::take(&mut self.event_type));
                let id = (!self.last_event_id.is_empty()).then(|| self.last_event_id.clone());
                Frame::Event(Event {
                    event,
                    data,
                    id,
                    retry,
                })
            }
            Done::Comment => Frame::Comment(mem::take(&mut self.comment)),
        }
    }
}

/// What [`Parser::step`] completed, its strings left in place until the
/// caller lends ([`Parser::lend`]) or takes ([`Parser::take`]) them.
#[derive(Debug)]
enum Done<'b> {
    /// A dispatched event: its data is `data` (one line of the chunk) or
    /// else the parser's `data`; its type and id are in the parser.
    Event {
        data: Option<&'b str>,
        retry: Option<u64>,
    },
    /// A comment line, in the parser's `comment`.
    Comment,
}

impl Done<'_> {
    /// The same frame with nothing lent from the chunk (for bytes the
    /// parser owns, where nothing is).
    fn unlent<'x>(self) -> Done<'x> {
        match self {
            Done::Event { data, retry } => {
                debug_assert!(data.is_none(), "data lent from owned bytes");
                Done::Event { data: None, retry }
            }
            Done::Comment => Done::Comment,
        }
    }
}

#[cfg(test)]
mod tests;
