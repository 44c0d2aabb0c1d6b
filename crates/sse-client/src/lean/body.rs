//! The response body's framing undone (RFC 9112, sections 6 and 7.1): a
//! length, the chunked coding (extensions ignored, trailers skipped), or
//! everything until the server closes.
//!
//! Pure and incremental: [`Framing::decode`] takes what it can from the read
//! buffer and hands the payload out as `Bytes` cut from that buffer, so no
//! byte is copied and a split anywhere (inside a size line, between CR and
//! LF) only means "read more".

use bytes::{Buf, Bytes, BytesMut};

use super::Http1Error;

/// Longest chunk-size line (extensions included) or trailer line accepted:
/// the read buffer must hold a whole one.
pub(crate) const MAX_LINE: usize = 4096;
/// Most trailer bytes accepted after the last chunk.
pub(crate) const MAX_TRAILERS: usize = 16 * 1024;

/// Where the body stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// This many bytes are still to come.
    Length(u64),
    /// Chunked coding, at this step.
    Chunked(Chunk),
    /// Everything until the server closes (no length announced).
    Close,
    /// The body is complete.
    Done,
}

/// A step of the chunked coding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Chunk {
    /// Expecting a chunk-size line.
    Size,
    /// This many bytes of chunk data are still to come.
    Data(u64),
    /// Expecting the CRLF after chunk data.
    DataEnd,
    /// After the last chunk: trailer lines until a blank one (bytes seen).
    Trailers(usize),
}

/// What one call to [`Framing::decode`] got.
#[derive(Debug)]
pub(crate) enum Decoded {
    /// Payload bytes.
    Data(Bytes),
    /// The buffer holds no complete step: read more.
    NeedMore,
    /// The body is complete.
    End,
}

impl Framing {
    /// Takes the next payload bytes (or framing) out of `buf`.
    pub(crate) fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, Http1Error> {
        loop {
            match self {
                Self::Done | Self::Length(0) => {
                    *self = Self::Done;
                    return Ok(Decoded::End);
                }
                Self::Length(n) => return Ok(take(n, buf)),
                Self::Close if buf.is_empty() => return Ok(Decoded::NeedMore),
                Self::Close => return Ok(Decoded::Data(buf.split().freeze())),
                Self::Chunked(Chunk::Data(0)) => *self = Self::Chunked(Chunk::DataEnd),
                Self::Chunked(Chunk::Data(n)) => {
                    let data = take(n, buf);
                    // The line end after the data, when already read, goes
                    // now: it would otherwise keep the read buffer alive
                    // while the stream idles until the next chunk.
                    if *n == 0 {
                        let end = match &buf[..] {
                            [b'\r', b'\n', ..] => 2,
                            [b'\n', ..] => 1,
                            _ => 0,
                        };
                        if end > 0 {
                            buf.advance(end);
                            *self = Self::Chunked(Chunk::Size);
                        }
                    }
                    return Ok(data);
                }
                Self::Chunked(Chunk::Size) => {
                    let Some(end) = line_end(buf)? else {
                        return Ok(Decoded::NeedMore);
                    };
                    let size = chunk_size(trim_cr(&buf[..end]))?;
                    buf.advance(end + 1);
                    *self = Self::Chunked(match size {
                        0 => Chunk::Trailers(0),
                        n => Chunk::Data(n),
                    });
                }
                Self::Chunked(Chunk::DataEnd) => {
                    match buf.first().copied() {
                        None => return Ok(Decoded::NeedMore),
                        Some(b'\n') => buf.advance(1),
                        Some(b'\r') => match buf.get(1).copied() {
                            None => return Ok(Decoded::NeedMore),
                            Some(b'\n') => buf.advance(2),
                            Some(_) => return Err(Http1Error::ChunkEnd),
                        },
                        Some(_) => return Err(Http1Error::ChunkEnd),
                    }
                    *self = Self::Chunked(Chunk::Size);
                }
                Self::Chunked(Chunk::Trailers(seen)) => {
                    let Some(end) = line_end(buf)? else {
                        return Ok(Decoded::NeedMore);
                    };
                    let blank = trim_cr(&buf[..end]).is_empty();
                    *seen += end + 1;
                    buf.advance(end + 1);
                    if blank {
                        *self = Self::Done;
                    } else if *seen > MAX_TRAILERS {
                        return Err(Http1Error::TrailersTooLarge(MAX_TRAILERS));
                    }
                }
            }
        }
    }

    /// The server closed the connection: fine only where the body may end.
    pub(crate) fn at_eof(&self) -> Result<(), Http1Error> {
        match self {
            Self::Close | Self::Done | Self::Length(0) => Ok(()),
            _ => Err(Http1Error::EndedEarly("body")),
        }
    }
}

/// Up to `*left` bytes of payload from `buf`.
fn take(left: &mut u64, buf: &mut BytesMut) -> Decoded {
    if buf.is_empty() {
        return Decoded::NeedMore;
    }
    let n = usize::try_from(*left).map_or(buf.len(), |l| l.min(buf.len()));
    *left -= n as u64;
    Decoded::Data(buf.split_to(n).freeze())
}

/// Index of the LF ending the first line, if the buffer holds one.
fn line_end(buf: &[u8]) -> Result<Option<usize>, Http1Error> {
    match memchr::memchr(b'\n', buf) {
        Some(i) if i > MAX_LINE => Err(Http1Error::LineTooLong(MAX_LINE)),
        Some(i) => Ok(Some(i)),
        None if buf.len() > MAX_LINE => Err(Http1Error::LineTooLong(MAX_LINE)),
        None => Ok(None),
    }
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// `chunk-size [ BWS ";" chunk-ext ]`: the size, extensions ignored.
fn chunk_size(line: &[u8]) -> Result<u64, Http1Error> {
    let invalid =
        || Http1Error::ChunkSize(String::from_utf8_lossy(&line[..line.len().min(64)]).into());
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return Err(invalid());
    }
    let mut size: u64 = 0;
    for &b in &line[..digits] {
        let d = (b as char).to_digit(16).unwrap_or_default();
        size = size
            .checked_mul(16)
            .and_then(|s| s.checked_add(u64::from(d)))
            .ok_or_else(invalid)?;
    }
    let rest = &line[digits..];
    let rest = &rest[rest
        .iter()
        .take_while(|b| matches!(b, b' ' | b'\t'))
        .count()..];
    if !(rest.is_empty() || rest[0] == b';') || rest.iter().any(|&b| b < b' ' && b != b'\t') {
        return Err(invalid());
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` fed in pieces of `step` bytes.
    fn decode(
        mut framing: Framing,
        input: &[u8],
        step: usize,
    ) -> Result<(Vec<u8>, bool), Http1Error> {
        let mut buf = BytesMut::new();
        let mut pieces = input.chunks(step);
        let mut out = Vec::new();
        loop {
            match framing.decode(&mut buf)? {
                Decoded::Data(d) => out.extend_from_slice(&d),
                Decoded::End => return Ok((out, true)),
                Decoded::NeedMore => match pieces.next() {
                    Some(p) => buf.extend_from_slice(p),
                    None => return Ok((out, framing.at_eof().is_ok())),
                },
            }
        }
    }

    const CHUNKED: Framing = Framing::Chunked(Chunk::Size);

    #[test]
    fn chunked_body_split_at_every_byte_boundary() {
        let body = b"7;name=\"va;lue\"\r\ndata: a\r\n3 ; ext\r\n\n\n\n\r\n1A\r\n: 26 bytes of comment....\n\r\n0\r\nx-trailer: 1\r\n\r\n";
        let expected = b"data: a\n\n\n: 26 bytes of comment....\n".to_vec();
        for step in 1..=body.len() {
            assert_eq!(
                decode(CHUNKED, body, step).unwrap(),
                (expected.clone(), true),
                "step {step}"
            );
        }
        // Cut in two at every position too (the pieces above are regular).
        for cut in 0..=body.len() {
            let mut f = CHUNKED;
            let mut buf = BytesMut::from(&body[..cut]);
            let mut out = Vec::new();
            while let Decoded::Data(d) = f.decode(&mut buf).unwrap() {
                out.extend_from_slice(&d);
            }
            buf.extend_from_slice(&body[cut..]);
            loop {
                match f.decode(&mut buf).unwrap() {
                    Decoded::Data(d) => out.extend_from_slice(&d),
                    Decoded::End => break,
                    Decoded::NeedMore => panic!("cut {cut}: incomplete"),
                }
            }
            assert_eq!(out, expected, "cut {cut}");
        }
    }

    #[test]
    fn bare_lf_line_ends_are_accepted() {
        assert_eq!(
            decode(CHUNKED, b"2\nab\n0\n\n", 1).unwrap(),
            (b"ab".to_vec(), true)
        );
    }

    #[test]
    fn malformed_chunk_sizes_are_typed_errors() {
        for bad in [
            &b"zz\r\n"[..],
            b"\r\n",
            b"-1\r\n",
            b"5 x\r\n",
            b"11111111111111111\r\n",
            b"4\x00\r\n",
        ] {
            let e = decode(CHUNKED, bad, 1).unwrap_err();
            assert!(matches!(e, Http1Error::ChunkSize(_)), "{bad:?}: {e}");
        }
        let e = decode(CHUNKED, b"2\r\nabX\r\n", 1).unwrap_err();
        assert!(matches!(e, Http1Error::ChunkEnd), "{e}");
        let long = format!("1;{}\r\n", "x".repeat(MAX_LINE));
        let e = decode(CHUNKED, long.as_bytes(), 100).unwrap_err();
        assert!(matches!(e, Http1Error::LineTooLong(_)), "{e}");
        let trailers = format!("0\r\n{}\r\n", "x-t: 1\r\n".repeat(MAX_TRAILERS / 8 + 1));
        let e = decode(CHUNKED, trailers.as_bytes(), 100).unwrap_err();
        assert!(matches!(e, Http1Error::TrailersTooLarge(_)), "{e}");
    }

    #[test]
    fn a_body_cut_short_is_incomplete() {
        assert_eq!(
            decode(CHUNKED, b"5\r\nab", 1).unwrap(),
            (b"ab".to_vec(), false)
        );
        assert_eq!(
            decode(CHUNKED, b"2\r\nab\r\n", 1).unwrap(),
            (b"ab".to_vec(), false)
        );
        assert_eq!(
            decode(Framing::Length(5), b"abc", 2).unwrap(),
            (b"abc".to_vec(), false)
        );
        assert_eq!(
            decode(Framing::Length(3), b"abcdef", 2).unwrap(),
            (b"abc".to_vec(), true)
        );
        assert_eq!(
            decode(Framing::Close, b"abc", 2).unwrap(),
            (b"abc".to_vec(), true)
        );
    }
}
