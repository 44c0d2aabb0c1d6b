//! Just enough HTTP/1.1 for the load generator: request heads, response heads and the
//! chunked transfer coding. Hand-rolled so that a subscriber costs a socket and a buffer,
//! not a client stack: the generator must stay cheaper than the servers it measures.

/// A parsed response head.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Head {
    /// Status code.
    pub(super) status: u16,
    /// Body framing.
    pub(super) framing: Framing,
    /// Bytes the head took, including the blank line.
    pub(super) len: usize,
}

/// How the body after the head is delimited.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub(super) enum Framing {
    /// `Content-Length`.
    Length(usize),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the connection closes.
    Close,
}

/// Why a response could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(super) enum HttpError {
    /// The head is not HTTP/1.x.
    #[error("malformed response head")]
    BadHead,
    /// A chunk size line is not hexadecimal.
    #[error("malformed chunk size")]
    BadChunk,
}

/// Parses a response head from the start of `buf`; `Ok(None)` until it is complete.
pub(super) fn parse_head(buf: &[u8]) -> Result<Option<Head>, HttpError> {
    let Some(end) = find(buf, b"\r\n\r\n") else {
        return Ok(None);
    };
    let text = std::str::from_utf8(&buf[..end]).map_err(|_| HttpError::BadHead)?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().ok_or(HttpError::BadHead)?;
    let mut parts = status_line.splitn(3, ' ');
    if !parts.next().is_some_and(|v| v.starts_with("HTTP/1.")) {
        return Err(HttpError::BadHead);
    }
    let status = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or(HttpError::BadHead)?;
    let mut framing = Framing::Close;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(HttpError::BadHead);
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let n = value.parse().map_err(|_| HttpError::BadHead)?;
            framing = Framing::Length(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding")
            && value.to_ascii_lowercase().contains("chunked")
        {
            framing = Framing::Chunked;
            // Chunked wins over a Content-Length (RFC 9112 section 6.3).
            break;
        }
    }
    Ok(Some(Head {
        status,
        framing,
        len: end + 4,
    }))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Incremental decoder of the chunked transfer coding.
#[derive(Debug, Default)]
pub(super) struct Dechunk {
    state: ChunkState,
    /// Whether the last chunk (size 0) has been seen.
    pub(super) done: bool,
}

#[derive(Debug, Clone, Copy)]
enum ChunkState {
    /// Reading the hex digits of a size line; holds the value so far (a size line may be
    /// split across reads).
    Size(usize),
    /// Past the digits: skipping extensions up to LF. Holds the size read.
    SizeEnd(usize),
    /// Inside a chunk with this many bytes left.
    Data(usize),
    /// Skipping the CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: trailers are ignored.
    Trailer,
}

impl Default for ChunkState {
    fn default() -> Self {
        ChunkState::Size(0)
    }
}

impl Dechunk {
    /// Feeds raw bytes; `out` receives each slice of body data in order.
    ///
    /// # Errors
    /// [`HttpError::BadChunk`] on a size line that is not hexadecimal or too large.
    pub(super) fn feed(
        &mut self,
        mut input: &[u8],
        mut out: impl FnMut(&[u8]),
    ) -> Result<(), HttpError> {
        while !input.is_empty() {
            match self.state {
                ChunkState::Size(size) => {
                    let b = input[0];
                    input = &input[1..];
                    let digit = match b {
                        b'0'..=b'9' => b - b'0',
                        b'a'..=b'f' => b - b'a' + 10,
                        b'A'..=b'F' => b - b'A' + 10,
                        b'\r' | b';' | b' ' | b'\t' => {
                            self.state = ChunkState::SizeEnd(size);
                            continue;
                        }
                        b'\n' => {
                            self.state = self.after_size(size);
                            continue;
                        }
                        _ => return Err(HttpError::BadChunk),
                    };
                    let size = size
                        .checked_mul(16)
                        .and_then(|s| s.checked_add(usize::from(digit)))
                        .filter(|s| *s < 1 << 40)
                        .ok_or(HttpError::BadChunk)?;
                    self.state = ChunkState::Size(size);
                }
                ChunkState::SizeEnd(n) => match memchr::memchr(b'\n', input) {
                    Some(i) => {
                        input = &input[i + 1..];
                        self.state = self.after_size(n);
                    }
                    None => input = &[],
                },
                ChunkState::Data(left) => {
                    let take = left.min(input.len());
                    out(&input[..take]);
                    input = &input[take..];
                    self.state = if take == left {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(left - take)
                    };
                }
                ChunkState::DataEnd => {
                    let b = input[0];
                    input = &input[1..];
                    if b == b'\n' {
                        self.state = ChunkState::Size(0);
                    }
                }
                ChunkState::Trailer => input = &[],
            }
        }
        Ok(())
    }

    fn after_size(&mut self, size: usize) -> ChunkState {
        if size == 0 {
            self.done = true;
            ChunkState::Trailer
        } else {
            ChunkState::Data(size)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_with_chunked_framing_and_its_length() {
        let raw = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n3\r\n:\n\n";
        let head = parse_head(raw).unwrap().unwrap();
        assert_eq!(head.status, 200);
        assert_eq!(head.framing, Framing::Chunked);
        assert_eq!(&raw[head.len..head.len + 1], b"3");
    }

    #[test]
    fn incomplete_head_waits_and_garbage_is_refused() {
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\nfoo: b"), Ok(None));
        assert_eq!(parse_head(b"SSH-2.0\r\n\r\n"), Err(HttpError::BadHead));
    }

    #[test]
    fn content_length_and_close_framing() {
        let h = parse_head(b"HTTP/1.1 202 Accepted\r\nContent-Length: 12\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!((h.status, h.framing), (202, Framing::Length(12)));
        let h = parse_head(b"HTTP/1.0 200 OK\r\n\r\n").unwrap().unwrap();
        assert_eq!(h.framing, Framing::Close);
    }

    #[test]
    fn chunks_split_at_every_byte_decode_the_same() {
        let raw = b"4;ext=1\r\nabcd\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\n";
        for split in 0..raw.len() {
            let mut d = Dechunk::default();
            let mut out = Vec::new();
            d.feed(&raw[..split], |b| out.extend_from_slice(b)).unwrap();
            d.feed(&raw[split..], |b| out.extend_from_slice(b)).unwrap();
            assert_eq!(out, b"abcdabcdefghijklmnopqrstuvwxyz", "split at {split}");
            assert!(d.done);
        }
    }

    #[test]
    fn bad_chunk_size_is_an_error_not_a_panic() {
        let mut d = Dechunk::default();
        assert_eq!(d.feed(b"zz\r\n", |_| {}), Err(HttpError::BadChunk));
        let mut d = Dechunk::default();
        assert_eq!(
            d.feed(b"ffffffffffffffffffff\r\n", |_| {}),
            Err(HttpError::BadChunk)
        );
    }
}
