//! The connection: connect, write the request head, read the response head,
//! follow redirects; then [`Body`], the socket and a read buffer that exists
//! only while it holds bytes.

use std::io::ErrorKind;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use http::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE, LOCATION, PROXY_AUTHORIZATION};
use http::{HeaderMap, Method, StatusCode, Version};
use reqwest::Url;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::Http1Error;
use super::body::{Decoded, Framing};
use super::head::{self, MAX_HEAD};

/// Redirects followed before giving up (reqwest's default too).
const MAX_REDIRECTS: usize = 10;
/// First size of the buffer the response head is read into; it doubles up
/// to [`MAX_HEAD`] while the head is incomplete.
const HEAD_BUF: usize = 1024;
/// Body reads: the first one reserves this much...
const MIN_READ: usize = 4 * 1024;
/// ...and each read that fills the space doubles it, up to this.
const MAX_READ: usize = 64 * 1024;
/// Request bodies up to this size go out in the same write as the head.
const INLINE_BODY: usize = 4 * 1024;

/// A response whose head was read; the body is still on the socket.
#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) status: StatusCode,
    pub(crate) version: Version,
    pub(crate) headers: HeaderMap,
    /// The URL that answered, after redirects.
    pub(crate) url: Url,
    pub(crate) body: Body,
}

/// Sends the request, following redirects like reqwest's default policy:
/// at most [`MAX_REDIRECTS`]; 301 and 302 turn a `POST` into a bodiless
/// `GET`, 303 anything but `HEAD`; credentials are dropped when the origin
/// changes. Each hop is a new connection.
pub(crate) async fn send(
    mut method: Method,
    mut url: Url,
    mut headers: HeaderMap,
    mut body: Option<Bytes>,
) -> Result<Response, Http1Error> {
    for _ in 0..MAX_REDIRECTS {
        let response = once(&method, &url, &headers, body.as_ref()).await?;
        let status = response.status;
        if !status.is_redirection() || matches!(status.as_u16(), 300 | 304 | 305 | 306) {
            return Ok(response);
        }
        let Some(location) = response.headers.get(LOCATION) else {
            return Ok(response);
        };
        let text = String::from_utf8_lossy(location.as_bytes()).into_owned();
        let next = url
            .join(&text)
            .map_err(|_| Http1Error::Redirect(text.clone()))?;
        if next.scheme() != "http" {
            return Err(Http1Error::Redirect(text));
        }
        let to_get = match status {
            StatusCode::SEE_OTHER => method != Method::HEAD,
            StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND => method == Method::POST,
            _ => false,
        };
        if to_get {
            method = Method::GET;
            body = None;
            headers.remove(CONTENT_TYPE);
        }
        if next.origin() != url.origin() {
            for name in [AUTHORIZATION, COOKIE, PROXY_AUTHORIZATION] {
                headers.remove(name);
            }
        }
        tracing::debug!(from = %url, to = %next, %status, "following redirect");
        url = next;
    }
    Err(Http1Error::TooManyRedirects(MAX_REDIRECTS))
}

/// One request on a new connection, up to the end of the response head.
async fn once(
    method: &Method,
    url: &Url,
    headers: &HeaderMap,
    body: Option<&Bytes>,
) -> Result<Response, Http1Error> {
    let host = url.host_str().ok_or(Http1Error::NoHost)?;
    // An IPv6 literal is bracketed in the URL, not in a socket address.
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = url.port_or_known_default().unwrap_or(80);
    let mut io = TcpStream::connect((host, port)).await?;
    io.set_nodelay(true)?;
    {
        let mut out = head::request(method, url, headers, body);
        match body {
            Some(b) if b.len() <= INLINE_BODY => out.extend_from_slice(b),
            _ => {}
        }
        io.write_all(&out).await?;
        if let Some(b) = body.filter(|b| b.len() > INLINE_BODY) {
            io.write_all(b).await?;
        }
    }
    let mut buf = BytesMut::with_capacity(HEAD_BUF);
    loop {
        let head = loop {
            if let Some(head) = head::parse(&buf)? {
                break head;
            }
            if buf.len() >= MAX_HEAD {
                return Err(Http1Error::HeadTooLarge(MAX_HEAD));
            }
            if buf.len() == buf.capacity() {
                buf.reserve(buf.capacity().min(MAX_HEAD - buf.len()));
            }
            if io.read_buf(&mut buf).await? == 0 {
                return Err(Http1Error::EndedEarly("head"));
            }
        };
        buf.advance(head.len);
        // Interim answers (100 Continue, 103 Early Hints) precede the real one.
        if head.status.is_informational() && head.status != StatusCode::SWITCHING_PROTOCOLS {
            continue;
        }
        let framing = head::framing(&head, method)?;
        let body = Body {
            io,
            buf,
            framing,
            read_size: MIN_READ,
        };
        return Ok(Response {
            status: head.status,
            version: head.version,
            headers: head.headers,
            url: url.clone(),
            body,
        });
    }
}

/// The response body: its socket, the bytes read but not yet decoded, and
/// where the framing stands.
#[derive(Debug)]
pub(crate) struct Body {
    io: TcpStream,
    /// Empty, without an allocation, while the connection idles: it is
    /// given away with the last bytes decoded, and dropped whenever the
    /// socket has nothing to read and nothing is left.
    buf: BytesMut,
    framing: Framing,
    /// Space to reserve for the next read.
    read_size: usize,
}

impl Body {
    /// The next piece of payload; `None` at the end of the body.
    pub(crate) fn poll_chunk(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Http1Error>>> {
        loop {
            match self.framing.decode(&mut self.buf) {
                Ok(Decoded::Data(data)) => {
                    if self.buf.is_empty() {
                        // Everything read is handed out: the allocation now
                        // belongs to `data` alone and goes once it is parsed,
                        // even if the stream is not polled again for a while.
                        self.buf = BytesMut::new();
                    }
                    return Poll::Ready(Some(Ok(data)));
                }
                Ok(Decoded::End) => return Poll::Ready(None),
                Ok(Decoded::NeedMore) => {}
                Err(e) => return Poll::Ready(Some(Err(e))),
            }
            match ready!(self.poll_read(cx)) {
                Ok(0) => {
                    return Poll::Ready(self.framing.at_eof().err().map(Err));
                }
                Ok(_) => {}
                Err(e) => return Poll::Ready(Some(Err(e.into()))),
            }
        }
    }

    /// Reads once: waits for readiness first, so that no buffer is held
    /// while the server is silent.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
        loop {
            if self.io.poll_read_ready(cx)?.is_pending() {
                if self.buf.is_empty() {
                    // Idle: the read buffer goes (up to 64 KiB per stream).
                    self.buf = BytesMut::new();
                }
                return Poll::Pending;
            }
            let spare = self.buf.capacity() - self.buf.len();
            if spare < self.read_size / 4 {
                self.buf.reserve(self.read_size);
            }
            let spare = self.buf.capacity() - self.buf.len();
            match self.io.try_read_buf(&mut self.buf) {
                Ok(n) => {
                    if n == spare && self.read_size < MAX_READ {
                        self.read_size *= 2;
                    }
                    return Poll::Ready(Ok(n));
                }
                // Readiness was stale; polling it again registers interest.
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The memory claim (BENCHMARKS.md, "sse-client"): once a chunk is
    /// handed out, the stream holds no read buffer, polled again or not.
    #[tokio::test]
    async fn no_read_buffer_is_held_between_chunks() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut head = [0; 1024];
            let _ = s.read(&mut head).await.unwrap();
            s.write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n6\r\n: hi\n\n\r\n")
                .await
                .unwrap();
            s
        });
        let mut response = send(Method::GET, url, HeaderMap::new(), None)
            .await
            .unwrap();
        let _server = server.await.unwrap();
        let body = &mut response.body;
        let chunk = std::future::poll_fn(|cx| body.poll_chunk(cx)).await;
        assert_eq!(chunk.unwrap().unwrap(), ": hi\n\n");
        assert_eq!(body.buf.capacity(), 0);
        assert_eq!(
            body.framing,
            Framing::Chunked(super::super::body::Chunk::Size)
        );
    }
}
