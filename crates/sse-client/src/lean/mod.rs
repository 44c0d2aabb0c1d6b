//! The lean HTTP/1.1 transport ([`Transport::LeanHttp1`](crate::Transport)):
//! one plain-`http` connection per stream, driven by the stream itself
//! rather than by hyper, so that an idle stream holds a socket and a few
//! hundred bytes instead of hyper's three 8 KiB buffers (BENCHMARKS.md,
//! "sse-client").
//!
//! ```text
//!  conn::send: connect --request head (temporary buffer)--> read head (head::parse, <= 16 KiB)
//!       | 3xx + Location: reconnect to the target (<= 10 times)
//!       v
//!  conn::Body: socket --read buffer (dropped while idle)--> body::Framing --Bytes--> the parser
//! ```
//!
//! - `head`: the request head written once, the response head parsed with
//!   `httparse`, and the body framing it announces.
//! - `body`: the framing undone (length, chunked with extensions and
//!   trailers, read to close); pure, fed from the read buffer.
//! - `conn`: the socket, redirects, and the read buffer that exists only
//!   while bytes wait to be decoded.

pub(crate) mod body;
pub(crate) mod conn;
pub(crate) mod head;

/// Why the lean HTTP/1.1 transport could not get or read a response.
///
/// Carried by [`Error::Http1`](crate::Error::Http1). Like network errors on
/// the default transport, these are retried (with backoff) unless
/// [`Builder::retry_network_errors`](crate::Builder::retry_network_errors)
/// is off, except the redirect errors, which end the stream.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Http1Error {
    /// Connecting, writing or reading failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The URL has no host to connect to.
    #[error("the url has no host")]
    NoHost,
    /// The response head did not fit in the limit.
    #[error("response head larger than {0} bytes")]
    HeadTooLarge(usize),
    /// The response head is not valid HTTP/1.x.
    #[error("malformed response head: {0}")]
    Head(String),
    /// A `Content-Length` that is not one number.
    #[error("invalid content-length")]
    ContentLength,
    /// A transfer coding other than `chunked` (the request asks for none).
    #[error("unsupported transfer coding {0:?}")]
    TransferCoding(String),
    /// A chunk-size line that is not a hexadecimal size, optionally
    /// followed by extensions.
    #[error("invalid chunk size line {0:?}")]
    ChunkSize(String),
    /// Chunk data not followed by CRLF.
    #[error("chunk data is not followed by a line end")]
    ChunkEnd,
    /// A chunk-size or trailer line longer than the limit.
    #[error("chunk size or trailer line longer than {0} bytes")]
    LineTooLong(usize),
    /// Trailers longer than the limit.
    #[error("trailers longer than {0} bytes")]
    TrailersTooLarge(usize),
    /// The connection closed before the response head or the announced
    /// body was complete.
    #[error("the connection closed before the end of the response {0}")]
    EndedEarly(&'static str),
    /// More redirects than the limit, as on the default transport.
    #[error("more than {0} redirects")]
    TooManyRedirects(usize),
    /// A redirect to somewhere this transport cannot go (https, say).
    #[error("cannot follow the redirect to {0:?}: the lean transport speaks plain http only")]
    Redirect(String),
}

impl Http1Error {
    /// Errors that would come again on a retry: the stream ends.
    pub(crate) fn is_fatal(&self) -> bool {
        matches!(self, Self::TooManyRedirects(_) | Self::Redirect(_))
    }
}

/// Decodes a whole response held in memory, fed in pieces cut at `cuts`,
/// and returns its head and body: the entry point of the `http1_response`
/// fuzz target (`fuzz/`), which checks that no input panics and that the
/// cuts change nothing. Not part of the API.
#[doc(hidden)]
pub fn decode_response(input: &[u8], cuts: &[usize]) -> Result<(u16, Vec<u8>, bool), Http1Error> {
    use bytes::BytesMut;

    let mut pieces = Vec::new();
    let mut at = 0;
    for &c in cuts {
        let c = c.clamp(at, input.len());
        pieces.push(&input[at..c]);
        at = c;
    }
    pieces.push(&input[at..]);
    let mut pieces = pieces.into_iter();
    let mut buf = BytesMut::new();
    let parsed = loop {
        let Some(h) = head::parse(&buf)? else {
            if buf.len() >= head::MAX_HEAD {
                return Err(Http1Error::HeadTooLarge(head::MAX_HEAD));
            }
            match pieces.next() {
                Some(p) => buf.extend_from_slice(p),
                None => return Err(Http1Error::EndedEarly("head")),
            }
            continue;
        };
        bytes::Buf::advance(&mut buf, h.len);
        // As `conn` does: interim answers precede the real one.
        if !(h.status.is_informational() && h.status != http::StatusCode::SWITCHING_PROTOCOLS) {
            break h;
        }
    };
    let mut framing = head::framing(&parsed, &http::Method::GET)?;
    let mut out = Vec::new();
    loop {
        match framing.decode(&mut buf)? {
            body::Decoded::Data(d) => out.extend_from_slice(&d),
            body::Decoded::End => return Ok((parsed.status.as_u16(), out, true)),
            body::Decoded::NeedMore => match pieces.next() {
                Some(p) => buf.extend_from_slice(p),
                None => {
                    let complete = framing.at_eof().is_ok();
                    return Ok((parsed.status.as_u16(), out, complete));
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the fuzz target checks, on a few inputs: the cuts change nothing.
    #[test]
    fn decoding_does_not_depend_on_where_reads_end() {
        let inputs: [&[u8]; 5] = [
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nt: 1\r\n\r\n",
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nabcdef",
            b"HTTP/1.0 200 OK\r\n\r\nuntil close",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n10\r\nshort",
        ];
        for input in inputs {
            let whole = decode_response(input, &[]);
            for step in 1..input.len() {
                let cuts: Vec<usize> = (step..input.len()).step_by(step).collect();
                let pieces = decode_response(input, &cuts);
                match (&whole, &pieces) {
                    (Ok(a), Ok(b)) => assert_eq!(a, b),
                    (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
                    _ => panic!("{whole:?} / {pieces:?}"),
                }
            }
        }
        assert_eq!(
            decode_response(inputs[0], &[]).unwrap(),
            (200, b"abc".to_vec(), true)
        );
        assert_eq!(
            decode_response(inputs[1], &[]).unwrap(),
            (200, b"abcd".to_vec(), true)
        );
        assert_eq!(
            decode_response(inputs[2], &[]).unwrap(),
            (200, b"until close".to_vec(), true)
        );
        assert!(matches!(
            decode_response(inputs[3], &[]),
            Err(Http1Error::ChunkSize(_))
        ));
        assert_eq!(
            decode_response(inputs[4], &[]).unwrap(),
            (200, b"short".to_vec(), false)
        );
    }

    /// The fuzz target's property on seeded random mutations of valid
    /// responses, so that `cargo test` runs some of it without libFuzzer.
    #[test]
    fn mutated_responses_decode_alike_whatever_the_cuts() {
        use rand::{Rng, SeedableRng};

        let base: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
            transfer-encoding: chunked\r\n\r\n5;a=b\r\nhello\r\n3\r\n\r\n\n\r\n0\r\nt: 1\r\n\r\n";
        let alphabet = b"0123456789abcdefABCDEF;= \t\r\n:xX\x00\xff";
        let mut rng = rand::rngs::StdRng::seed_from_u64(16);
        for _ in 0..3000 {
            let mut input = base.to_vec();
            for _ in 0..rng.random_range(1..4) {
                let at = rng.random_range(0..input.len());
                let byte = alphabet[rng.random_range(0..alphabet.len())];
                match rng.random_range(0..3) {
                    0 => input[at] = byte,
                    1 => input.insert(at, byte),
                    _ => {
                        input.remove(at);
                    }
                }
            }
            let whole = decode_response(&input, &[]);
            let step = rng.random_range(1..17);
            let cuts: Vec<usize> = (step..input.len()).step_by(step).collect();
            let pieces = decode_response(&input, &cuts);
            match (&whole, &pieces) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "{input:?}"),
                (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{input:?}"),
                _ => panic!("{input:?}: whole {whole:?}, in pieces of {step} {pieces:?}"),
            }
        }
    }
}
