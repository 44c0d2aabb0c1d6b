//! Writing a response on the HTTP/1.1 stream path: its head, then its body's frames straight
//! to the socket, chunked or with a length, as they come; see [`WriteBody`] for why it is
//! written by hand and how a stalled client is bounded.

use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http::header;
use http::{HeaderMap, Response, StatusCode};
use http_body::Body as _;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::{END_GRACE, MAX_PIPELINED, WRITE_STALL, contains_token};
use crate::hub::CutOff;

/// Whether the connection can carry another request.
#[derive(Clone, Copy)]
pub(super) enum Reuse {
    Yes,
    No,
}

/// A response's head, encoded, and what writing its body needs to know.
pub(super) struct Outgoing {
    bytes: Vec<u8>,
    framing: Framing,
    /// For a subscriber's stream: tells the writer its subscriber was cut off.
    cut_off: Option<CutOff>,
    /// What a response that ends as announced leaves the connection for.
    done: Reuse,
}

/// Splits `res` into its encoded head and its body (with a `Content-Length` when the body's
/// size is known, chunked otherwise), so that the response's parts are gone before the
/// body's first wait.
pub(super) fn split(res: Response<Body>) -> (Outgoing, Body) {
    let (mut parts, body) = res.into_parts();
    let cut_off = parts.extensions.remove::<CutOff>();
    let done = if parts
        .headers
        .get(header::CONNECTION)
        .is_some_and(|v| contains_token(v.as_bytes(), b"close"))
    {
        Reuse::No
    } else {
        Reuse::Yes
    };
    let no_body = parts.status.is_informational()
        || parts.status == StatusCode::NO_CONTENT
        || parts.status == StatusCode::NOT_MODIFIED;
    let framing = match body.size_hint().exact() {
        _ if no_body => Framing::None,
        Some(n) => Framing::Length(n),
        None => Framing::Chunked,
    };
    let head = Outgoing {
        bytes: encode_head(parts.status, &parts.headers, framing),
        framing,
        cut_off,
        done,
    };
    (head, body)
}

/// Writes a response: its head, then its body as the frames come, watching the socket for a
/// close between frames. Resolves `Reuse::Yes` when the body ended as announced and the
/// response leaves the connection open.
///
/// Hand-written rather than `async`: an idle subscriber's connection spends the stream's
/// whole life in here, and an `async fn` keeps room for every await it may reach (the write
/// path's slices, timers and futures, and copies of its arguments), where this is its
/// fields. Each write fails after [`WRITE_STALL`] without progress, its timer armed only
/// while the socket takes nothing; once the subscriber is cut off for falling behind (its
/// client stopped reading), a write still stuck gets only [`END_GRACE`] more, and so does
/// the chunked body's last chunk.
pub(super) struct WriteBody<'a, IO> {
    io: &'a mut IO,
    /// Bytes the client pipelined while the stream is open, kept for the next request.
    pending: &'a mut Vec<u8>,
    body: Body,
    framing: Framing,
    /// For a subscriber's stream: tells the writer its subscriber was cut off.
    cut_off: Option<CutOff>,
    /// Bytes a `Content-Length` body still owes.
    remaining: u64,
    /// What the connection is left for when the body ends as announced.
    done: Reuse,
    /// The write under way, if any.
    out: Option<Out>,
    /// Whether the socket is still read between frames (not after too much was pipelined).
    reading: bool,
    /// The body has ended: `out` (if any) is the last write.
    ended: bool,
    /// Fails the write under way: armed when the socket takes nothing, or for the grace.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    /// The timer is the grace (cut off, or the last chunk): progress does not disarm it.
    grace: bool,
}

/// One write: bytes, or a chunk (its size line, its data, its `\r\n`), then a flush.
struct Out {
    data: Bytes,
    /// Framed as a chunk; the size line is made again from the data's length when needed.
    chunk: bool,
    /// Bytes of the whole (framing included) the socket has taken.
    written: usize,
}

impl Out {
    fn plain(data: Bytes) -> Out {
        Out {
            data,
            chunk: false,
            written: 0,
        }
    }

    fn chunk(data: Bytes) -> Out {
        Out {
            data,
            chunk: true,
            written: 0,
        }
    }

    /// Writes what is left (in one `writev` when the socket takes it all), then flushes: TLS
    /// keeps what the socket did not take in its own buffer, and a stream must not leave an
    /// event there until the next one comes (TCP's flush is a no-op). `Ready(Ok(true))` once
    /// done; `Ready(Ok(false))` after progress short of done.
    fn poll_write<IO: AsyncWrite + Unpin>(
        &mut self,
        io: &mut IO,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<bool>> {
        let mut size_line = [0u8; 18];
        let parts: [&[u8]; 3] = if self.chunk {
            let size = chunk_size_line(self.data.len(), &mut size_line);
            [size, &self.data, b"\r\n"]
        } else {
            [&self.data, b"", b""]
        };
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if self.written < len {
            let mut storage = [IoSlice::new(&[]); 3];
            let mut count = 0;
            let mut skip = self.written;
            for part in parts {
                if skip >= part.len() {
                    skip -= part.len();
                    continue;
                }
                storage[count] = IoSlice::new(&part[skip..]);
                skip = 0;
                count += 1;
            }
            let n = ready!(Pin::new(&mut *io).poll_write_vectored(cx, &storage[..count]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
            return Poll::Ready(Ok(false));
        }
        ready!(Pin::new(&mut *io).poll_flush(cx))?;
        Poll::Ready(Ok(true))
    }
}

impl<'a, IO> WriteBody<'a, IO> {
    pub(super) fn new(
        io: &'a mut IO,
        head: Outgoing,
        body: Body,
        pending: &'a mut Vec<u8>,
    ) -> Self {
        WriteBody {
            io,
            pending,
            body,
            framing: head.framing,
            cut_off: head.cut_off,
            remaining: match head.framing {
                Framing::Length(n) => n,
                Framing::None | Framing::Chunked => 0,
            },
            done: head.done,
            out: Some(Out::plain(Bytes::from(head.bytes))),
            reading: true,
            // A response without a body is over once its head is out.
            ended: matches!(head.framing, Framing::None),
            timer: None,
            grace: false,
        }
    }

    fn arm(&mut self, limit: Duration) {
        self.timer = Some(Box::pin(tokio::time::sleep(limit)));
    }

    /// The body has ended: what is left to write, and then what the connection is left for.
    fn end(&mut self) -> Option<Reuse> {
        self.ended = true;
        if let Framing::Chunked = self.framing {
            // The body is over: a client that takes nothing more gets END_GRACE, not
            // WRITE_STALL, from now on.
            self.out = Some(Out::plain(Bytes::from_static(b"0\r\n\r\n")));
            self.arm(END_GRACE);
            self.grace = true;
            return None;
        }
        Some(self.finished())
    }

    fn finished(&self) -> Reuse {
        if self.remaining > 0 {
            // Shorter than announced: the client cannot find the end, so close.
            tracing::debug!(missing = self.remaining, "response body ended early");
            return Reuse::No;
        }
        self.done
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> Future for WriteBody<'_, IO> {
    type Output = io::Result<Reuse>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        loop {
            if let Some(out) = &mut this.out {
                match out.poll_write(this.io, cx) {
                    Poll::Ready(Ok(true)) => {
                        this.out = None;
                        this.timer = None;
                        this.grace = false;
                        if this.ended {
                            return Poll::Ready(Ok(this.finished()));
                        }
                        continue;
                    }
                    Poll::Ready(Ok(false)) => {
                        if !this.grace {
                            // Progress: the stall timer counts from the next wait.
                            this.timer = None;
                        }
                        continue;
                    }
                    Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
                    Poll::Pending => {}
                }
                if !this.grace {
                    if this
                        .cut_off
                        .as_ref()
                        .is_some_and(|c| c.poll_wait(cx).is_ready())
                    {
                        this.arm(END_GRACE);
                        this.grace = true;
                    } else if this.timer.is_none() {
                        this.arm(WRITE_STALL);
                    }
                }
                if let Some(timer) = &mut this.timer
                    && timer.as_mut().poll(cx).is_ready()
                {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the client stopped reading; closing its connection",
                    )));
                }
                return Poll::Pending;
            }
            if this.ended {
                return Poll::Ready(Ok(this.finished()));
            }
            let frame = match Pin::new(&mut this.body).poll_frame(cx) {
                Poll::Ready(frame) => frame,
                Poll::Pending => {
                    if this.reading {
                        match poll_client(this.io, this.pending, cx) {
                            // The client left: dropping the body ends the subscription.
                            Poll::Ready(true) => return Poll::Ready(Ok(Reuse::No)),
                            // Too much pipelined: stop reading until the stream ends.
                            Poll::Ready(false) => {
                                this.reading = false;
                                continue;
                            }
                            Poll::Pending => {}
                        }
                    }
                    return Poll::Pending;
                }
            };
            let data = match frame {
                None => match this.end() {
                    Some(reuse) => return Poll::Ready(Ok(reuse)),
                    None => continue,
                },
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) if !data.is_empty() => data,
                    _ => continue,
                },
                Some(Err(err)) => {
                    // Without its end the client sees the response as cut off, which it is.
                    tracing::debug!(error = %err, "response body failed");
                    return Poll::Ready(Ok(Reuse::No));
                }
            };
            this.out = Some(match this.framing {
                Framing::Length(_) => {
                    let Some(left) = this.remaining.checked_sub(data.len() as u64) else {
                        tracing::warn!("response body longer than its length; closing");
                        return Poll::Ready(Ok(Reuse::No));
                    };
                    this.remaining = left;
                    Out::plain(data)
                }
                Framing::Chunked | Framing::None => Out::chunk(data),
            });
        }
    }
}

/// Reads whatever the client sends while a stream is open. `Ready(true)` when the client
/// closed (or the socket failed), `Ready(false)` when too many pipelined bytes are waiting;
/// pending otherwise.
fn poll_client<IO: AsyncRead + Unpin>(
    io: &mut IO,
    pending: &mut Vec<u8>,
    cx: &mut Context<'_>,
) -> Poll<bool> {
    loop {
        if pending.len() >= MAX_PIPELINED {
            return Poll::Ready(false);
        }
        // A stack buffer: an idle stream keeps no read buffer.
        let mut scratch = [0u8; 512];
        let mut buf = ReadBuf::new(&mut scratch);
        match Pin::new(&mut *io).poll_read(cx, &mut buf) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(_)) => return Poll::Ready(true),
            Poll::Ready(Ok(())) if buf.filled().is_empty() => return Poll::Ready(true),
            Poll::Ready(Ok(())) => pending.extend_from_slice(buf.filled()),
        }
    }
}

/// How the body is delimited.
#[derive(Clone, Copy)]
enum Framing {
    /// No body at all (1xx, 204, 304).
    None,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding, for bodies whose size is not known up front.
    Chunked,
}

fn encode_head(status: StatusCode, headers: &HeaderMap, framing: Framing) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("Unknown").as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        // Framing is this writer's to decide.
        if name == header::CONTENT_LENGTH || name == header::TRANSFER_ENCODING {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !headers.contains_key(header::DATE) {
        out.extend_from_slice(b"date: ");
        out.extend_from_slice(httpdate::fmt_http_date(std::time::SystemTime::now()).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    match framing {
        Framing::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        Framing::None => {}
        Framing::Length(n) => {
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(n.to_string().as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// `{len:x}\r\n` in `buf`, without an allocation per delivery.
fn chunk_size_line(len: usize, buf: &mut [u8; 18]) -> &[u8] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digits = (usize::BITS - len.leading_zeros()).div_ceil(4).max(1) as usize;
    for (i, slot) in buf[..digits].iter_mut().enumerate() {
        *slot = HEX[(len >> (4 * (digits - 1 - i))) & 0xf];
    }
    buf[digits..digits + 2].copy_from_slice(b"\r\n");
    &buf[..digits + 2]
}

/// Runs one socket operation, failing it if the client takes nothing for `stall`. The
/// timer is armed only when the operation cannot complete at once.
pub(super) async fn unless_stalled<T>(
    op: impl Future<Output = io::Result<T>>,
    stall: Duration,
) -> io::Result<T> {
    let mut op = std::pin::pin!(op);
    if let Poll::Ready(done) = futures_util::poll!(op.as_mut()) {
        return done;
    }
    within(stall, op).await
}

/// `op`, failed with `TimedOut` unless it completes within `limit`: `tokio::time::timeout`
/// with its timer boxed, so that a caller's future does not carry a timer it hardly ever arms.
async fn within<T>(limit: Duration, op: impl Future<Output = io::Result<T>>) -> io::Result<T> {
    let deadline = Box::pin(tokio::time::sleep(limit));
    tokio::select! {
        biased;
        done = op => done,
        () = deadline => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the client stopped reading; closing its connection",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_size_lines_are_lowercase_hex_without_padding() {
        let mut buf = [0u8; 18];
        for (len, want) in [
            (0, "0\r\n"),
            (1, "1\r\n"),
            (15, "f\r\n"),
            (16, "10\r\n"),
            (4096, "1000\r\n"),
            (usize::MAX, "ffffffffffffffff\r\n"),
        ] {
            assert_eq!(chunk_size_line(len, &mut buf), want.as_bytes());
        }
    }
}
