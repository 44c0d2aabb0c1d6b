//! [`Feed`], the frames one chunk completes, handed out owned (its
//! [`Iterator`]) or lent ([`Feed::next_ref`], [`Parser::feed_with`]); both
//! come from the same [`Parser::step`], which leaves a dispatched event's
//! strings where they are until the caller picks one of the two.

use std::iter::FusedIterator;
use std::mem;

use super::text::Checked;
use super::{Done, Parser};
use crate::{Frame, FrameRef, ParseError};

impl Parser {
    /// Parses `chunk`, yielding each frame it completes.
    ///
    /// The [`Feed`] is an iterator of owned frames; [`Feed::next_ref`] lends
    /// them instead, without allocating. Dropping the `Feed` before it is
    /// exhausted loses nothing: the unparsed rest of the chunk is kept and
    /// parsed ahead of the next chunk.
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
                data: None,
            },
        }
    }

    /// Parses `chunk` and calls `f` with each frame it completes, lent:
    /// `while let Some(frame) = feed.next_ref()` over [`Parser::feed`],
    /// for a consumer that never stops early.
    ///
    /// # Examples
    /// ```
    /// use sse_wire::{FrameRef, Parser};
    ///
    /// let mut parser = Parser::new();
    /// let mut total = 0;
    /// for chunk in [&b"id: 7\ndata: hel"[..], b"lo\n\ndata: world\n\n"] {
    ///     parser.feed_with(chunk, |frame| {
    ///         if let Ok(FrameRef::Event(ev)) = frame {
    ///             assert_eq!(ev.id, Some("7"));
    ///             total += ev.data.len();
    ///         }
    ///     });
    /// }
    /// assert_eq!(total, "hello".len() + "world".len());
    /// ```
    pub fn feed_with(&mut self, chunk: &[u8], mut f: impl FnMut(Result<FrameRef<'_>, ParseError>)) {
        let mut feed = self.feed(chunk);
        while let Some(frame) = feed.next_ref() {
            f(frame);
        }
    }
}

/// What a [`Feed`] knows about its chunk beyond the parse position.
#[derive(Debug)]
pub(super) struct ChunkState<'a> {
    /// The next CR at or after the position it was searched from (the chunk
    /// length if none); `None` until searched.
    pub(super) next_cr: Option<usize>,
    /// The UTF-8 checked part, for a borrowed chunk only.
    pub(super) checked: Option<Checked<'a>>,
    /// The current event's data while it is one line of this chunk: lent
    /// as it is if the event ends in the chunk, copied into the parser's
    /// buffer if a second data line comes or the chunk ends first. It means
    /// something only while the parser's `has_data` is set.
    pub(super) data: Option<&'a str>,
}

/// The frames one chunk completes: returned by [`Parser::feed`].
///
/// As an [`Iterator`] it yields owned frames; [`Feed::next_ref`] lends the
/// same frames instead. It yields `Err` for an event over the limit and then
/// carries on (see [`ParseError`]). Dropping it early keeps the unparsed
/// rest of the chunk in the parser.
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

impl<'a> Feed<'a> {
    /// The next frame, lent: an event's data comes straight from the chunk
    /// when it is one line lying in it (from the parser's buffer
    /// otherwise), its type and id from the parser, so no frame costs an
    /// allocation or, mostly, a copy. The frame is the same as the owned one
    /// [`Iterator::next`] would give (convert with `Frame::from`).
    ///
    /// # Examples
    /// ```
    /// use sse_wire::{FrameRef, Parser};
    ///
    /// let mut parser = Parser::new();
    /// let mut feed = parser.feed(b"event: delta\ndata: [1]\n\ndata: [DONE]\n\n");
    /// while let Some(frame) = feed.next_ref() {
    ///     let FrameRef::Event(ev) = frame? else { continue };
    ///     if ev.data == "[DONE]" {
    ///         break;
    ///     }
    ///     assert_eq!((ev.event, ev.data), (Some("delta"), "[1]"));
    /// }
    /// # Ok::<(), sse_wire::ParseError>(())
    /// ```
    #[allow(clippy::should_implement_trait)] // A lending iterator: `Iterator` cannot lend.
    pub fn next_ref(&mut self) -> Option<Result<FrameRef<'_>, ParseError>> {
        let done = self.advance()?;
        Some(done.map(|done| self.parser.lend(done)))
    }

    /// Parses up to the next frame, leaving its strings in place.
    #[inline]
    fn advance(&mut self) -> Option<Result<Done<'a>, ParseError>> {
        match self.input {
            Input::Borrowed(chunk) => {
                if self.chunk.checked.is_none() {
                    self.chunk.checked = Some(Checked { text: "", start: 0 });
                }
                self.parser.step(chunk, &mut self.pos, &mut self.chunk)
            }
            // Rare (a Feed was dropped early): the owned bytes cannot lend
            // text to the Feed holding them, so each line is checked alone
            // and every string is the parser's.
            Input::Owned(ref owned) => {
                let mut chunk = ChunkState {
                    next_cr: self.chunk.next_cr,
                    checked: None,
                    data: None,
                };
                let out = self.parser.step(owned, &mut self.pos, &mut chunk);
                debug_assert!(chunk.data.is_none(), "unchecked bytes lent");
                self.chunk.next_cr = chunk.next_cr;
                out.map(|done| done.map(Done::unlent))
            }
        }
    }
}

impl Iterator for Feed<'_> {
    type Item = Result<Frame, ParseError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let done = self.advance()?;
        Some(done.map(|done| self.parser.take(done)))
    }
}

impl FusedIterator for Feed<'_> {}

impl Drop for Feed<'_> {
    fn drop(&mut self) {
        // A data line lent from the chunk must outlive it.
        self.parser.keep_lent_data(&mut self.chunk.data);
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
