//! Bodies for the answers hyper writes by itself.
//!
//! hyper answers an HTTP/1 request it cannot parse (400), whose target is too long (414) or
//! whose head is too large (431) before any handler runs, with an empty body and no hook to
//! change it; a client is left guessing which of its bytes were wrong. [`Explained`] sits
//! between hyper and the socket and, when hyper writes exactly that answer, writes the same
//! head with a short `text/plain` body saying what the limit or problem was.
//!
//! The answer is recognised by its whole shape, not its status alone: one write holding a
//! complete `HTTP/1.1` head with status 400, 414 or 431 and exactly the headers hyper gives
//! it (`connection: close`, `content-length: 0`, `date`). The hub's own handlers never answer
//! these statuses with an empty body, and no response body the hub writes starts with a status
//! line, so nothing else is touched.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The most a hyper error answer's head can be: a status line and three short headers.
const MAX_HEAD: usize = 256;

/// A connection whose hyper error answers get a body. See the module docs.
pub(crate) struct Explained<IO> {
    /// The connection.
    io: IO,
    /// An answer being written in place of the one hyper gave, while the socket takes it.
    /// Boxed: it exists once per refused request, and inline it would size every connection
    /// hyper serves, HTTP/2 subscribers included.
    rewrite: Option<Box<Rewrite>>,
}

/// The replacement bytes, how many went out, and how many of hyper's bytes they stand for.
struct Rewrite {
    /// Head with the body's length, then the body.
    bytes: Vec<u8>,
    /// How much of `bytes` the socket has taken.
    written: usize,
    /// The length of hyper's answer, reported back to hyper once all of `bytes` are out.
    replaces: usize,
}

impl<IO> Explained<IO> {
    pub(crate) fn new(io: IO) -> Self {
        Explained { io, rewrite: None }
    }
}

/// What a client is told for each status hyper answers by itself (hyper's default limits).
fn explanation(status: u16) -> Option<&'static str> {
    Some(match status {
        400 => {
            "malformed request: the request line or a header is not valid HTTP/1.1 (or its Content-Length/Transfer-Encoding cannot be used)\n"
        }
        414 => "URI too long: the request target is limited to 65534 bytes\n",
        431 => {
            "request header fields too large: a request may carry at most 100 header fields in about 400 KiB\n"
        }
        _ => return None,
    })
}

/// When `buf` is exactly hyper's empty error answer, the same answer with a body.
fn explain(buf: &[u8]) -> Option<Vec<u8>> {
    if buf.len() > MAX_HEAD || !buf.starts_with(b"HTTP/1.1 4") {
        return None;
    }
    let mut headers = [httparse::EMPTY_HEADER; 4];
    let mut head = httparse::Response::new(&mut headers);
    match head.parse(buf) {
        Ok(httparse::Status::Complete(len)) if len == buf.len() => {}
        _ => return None,
    }
    let body = explanation(head.code?)?;
    let mut length = false;
    let mut close = false;
    let mut date = None;
    for h in head.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") && h.value == b"0" {
            length = true;
        } else if h.name.eq_ignore_ascii_case("connection") && h.value == b"close" {
            close = true;
        } else if h.name.eq_ignore_ascii_case("date") {
            date = Some(h.value);
        } else {
            return None;
        }
    }
    let date = date.filter(|_| length && close)?;
    let mut out = Vec::with_capacity(MAX_HEAD + body.len());
    let status_line = buf.split(|b| *b == b'\n').next()?;
    out.extend_from_slice(status_line);
    out.extend_from_slice(b"\nconnection: close\r\ncontent-type: text/plain; charset=utf-8\r\n");
    out.extend_from_slice(format!("content-length: {}\r\ndate: ", body.len()).as_bytes());
    out.extend_from_slice(date);
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(body.as_bytes());
    Some(out)
}

impl<IO: AsyncWrite + Unpin> Explained<IO> {
    /// Writes the rest of the replacement; ready with hyper's length once it is all out.
    fn poll_rewrite(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let Some(r) = self.rewrite.as_mut() else {
            return Poll::Ready(Ok(0));
        };
        while r.written < r.bytes.len() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &r.bytes[r.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            r.written += n;
        }
        let replaces = r.replaces;
        self.rewrite = None;
        Poll::Ready(Ok(replaces))
    }

    /// Starts a rewrite when `buf` is hyper's error answer; `false` leaves `buf` as it is.
    fn start_rewrite(&mut self, buf: &[u8]) -> bool {
        match explain(buf) {
            Some(bytes) => {
                self.rewrite = Some(Box::new(Rewrite {
                    bytes,
                    written: 0,
                    replaces: buf.len(),
                }));
                true
            }
            None => false,
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Explained<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Explained<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        // hyper offers the same bytes again after `Pending`, so a rewrite under way goes on.
        if self.rewrite.is_some() || self.start_rewrite(buf) {
            return self.poll_rewrite(cx);
        }
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let mut parts = bufs.iter().filter(|b| !b.is_empty());
        let first = parts.next();
        // hyper's error answer is its head alone, so it comes as a single non-empty slice.
        if self.rewrite.is_some()
            || (parts.next().is_none() && first.is_some_and(|b| self.start_rewrite(b)))
        {
            return self.poll_rewrite(cx);
        }
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const HYPER_400: &[u8] = b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\ndate: Fri, 04 Dec 2026 15:23:27 GMT\r\n\r\n";

    #[test]
    fn hypers_empty_answers_get_a_body_with_its_length() {
        let out = String::from_utf8(explain(HYPER_400).unwrap()).unwrap();
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{head}");
        assert!(head.contains(&format!("content-length: {}\r\n", body.len())));
        assert!(head.contains("content-type: text/plain"));
        assert!(head.ends_with("date: Fri, 04 Dec 2026 15:23:27 GMT"));
        assert!(body.starts_with("malformed request"), "{body}");
        for (status, needle) in [("414 URI Too Long", "65534"), ("431 X", "100 header")] {
            let answer = String::from_utf8_lossy(HYPER_400).replace("400 Bad Request", status);
            let out = String::from_utf8(explain(answer.as_bytes()).unwrap()).unwrap();
            assert!(out.contains(needle), "{out}");
        }
    }

    #[test]
    fn anything_else_is_left_alone() {
        let other = |from: &str, to: &str| {
            let s = String::from_utf8_lossy(HYPER_400).replace(from, to);
            explain(s.as_bytes())
        };
        // Other statuses, a body, extra headers, or a head cut short.
        assert!(other("400 Bad Request", "404 Not Found").is_none());
        assert!(other("content-length: 0", "content-length: 2").is_none());
        assert!(other("connection: close", "x-other: 1").is_none());
        assert!(other("\r\n\r\n", "\r\ncontent-type: text/plain\r\n\r\n").is_none());
        assert!(explain(&HYPER_400[..HYPER_400.len() - 2]).is_none());
        let mut with_body = HYPER_400.to_vec();
        with_body.extend_from_slice(b"x");
        assert!(explain(&with_body).is_none());
        assert!(explain(b"HTTP/1.1 400 Bad Request").is_none());
        assert!(explain(b"data: HTTP/1.1 400\n\n").is_none());
    }

    #[tokio::test]
    async fn a_rewrite_survives_a_socket_that_takes_a_few_bytes_at_a_time() {
        // A pipe of 7 bytes: every write is partial, and most are `Pending` first.
        let (client, server) = tokio::io::duplex(7);
        let reader = tokio::spawn(async move {
            let mut client = client;
            let mut all = Vec::new();
            client.read_to_end(&mut all).await.unwrap();
            all
        });
        let mut io = Explained::new(server);
        // As hyper does: the same buffer until it is reported written.
        let mut left = HYPER_400;
        while !left.is_empty() {
            let n = io.write(left).await.unwrap();
            left = &left[n..];
        }
        io.write_all(b"").await.unwrap();
        io.shutdown().await.unwrap();
        drop(io);
        let all = String::from_utf8(reader.await.unwrap()).unwrap();
        assert!(all.ends_with("malformed request: the request line or a header is not valid HTTP/1.1 (or its Content-Length/Transfer-Encoding cannot be used)\n"), "{all}");
    }
}
