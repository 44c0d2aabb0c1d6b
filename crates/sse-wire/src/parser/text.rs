//! What the parser knows about the text of a chunk: the UTF-8 checked part
//! ([`Checked`]), a line with its text when that check covered it
//! ([`Line`]), and the small decoding helpers of the field rules.

/// A complete line, or a part of one, with its text when the chunk's UTF-8
/// check already covered it (then it is appended, or lent, without a second
/// check).
///
/// Two lifetimes: the bytes may come from the parser's own line buffer (a
/// line that spanned chunks), but text is only ever a slice of the caller's
/// chunk (`'b`), so it can be lent out as an event's data.
#[derive(Clone, Copy)]
pub(super) struct Line<'l, 'b> {
    pub(super) bytes: &'l [u8],
    pub(super) text: Option<&'b str>,
}

impl<'l, 'b> Line<'l, 'b> {
    /// The line from byte `n` on; `n` always follows an ASCII byte, so it is
    /// a character boundary of `text`.
    #[inline]
    pub(super) fn skip(self, n: usize) -> Line<'l, 'b> {
        Line {
            bytes: &self.bytes[n..],
            text: self.text.and_then(|text| text.get(n..)),
        }
    }

    /// Drops the one space the spec drops after a field's colon.
    #[inline]
    pub(super) fn strip_space(self) -> Line<'l, 'b> {
        if self.bytes.first() == Some(&b' ') {
            self.skip(1)
        } else {
            self
        }
    }

    #[inline]
    pub(super) fn push_to(self, out: &mut String) {
        match self.text {
            Some(text) => out.push_str(text),
            None => push_lossy(out, self.bytes),
        }
    }
}

/// The part of a borrowed chunk already known to be valid UTF-8, so lines
/// inside it are appended to strings (or lent) without a check per line
/// (which costs more than the check itself on short lines).
#[derive(Debug)]
pub(super) struct Checked<'a> {
    /// Valid text starting at byte `start` of the chunk.
    pub(super) text: &'a str,
    /// Where `text` starts in the chunk.
    pub(super) start: usize,
}

impl<'a> Checked<'a> {
    /// The text of `buf[start..end]`, a complete line, if it is valid UTF-8.
    ///
    /// A line starting past the checked part triggers a check from there to
    /// the first invalid byte, so each byte is checked at most once.
    #[inline]
    pub(super) fn text(&mut self, buf: &'a [u8], start: usize, end: usize) -> Option<&'a str> {
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
    pub(super) static UTF8_CHECKED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Appends `bytes` as UTF-8, with U+FFFD for each invalid sequence (what a
/// browser's decoder does: since line breaks are ASCII, no sequence spans
/// two lines, so decoding line by line equals decoding the stream).
#[inline]
pub(super) fn push_lossy(out: &mut String, bytes: &[u8]) {
    match simdutf8::basic::from_utf8(bytes) {
        Ok(text) => out.push_str(text),
        Err(_) => out.push_str(&String::from_utf8_lossy(bytes)),
    }
}

/// The value of a `retry` field: ASCII digits only; one too large for a
/// `u64` is ignored like any other invalid value.
pub(super) fn parse_digits(value: &[u8]) -> Option<u64> {
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
