//! One keep-alive HTTP/1.1 connection for the Durable Streams scenarios: a request out,
//! its whole response back (head text kept for the protocol's headers, body counted or kept).

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::http::{Dechunk, Framing, parse_head};

/// A response read to its end.
#[derive(Debug, Default)]
pub(super) struct Answer {
    /// Status code.
    pub(super) status: u16,
    /// The head as text, to look headers up in.
    pub(super) head: String,
    /// Body bytes received.
    pub(super) body_len: usize,
}

impl Answer {
    /// The value of header `name` (case-insensitive), if present.
    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.head.split("\r\n").skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// A connection to the server under test.
pub(super) struct Conn {
    stream: TcpStream,
    /// Bytes read past the current response head.
    buf: Vec<u8>,
    host: String,
}

impl Conn {
    /// Connects with Nagle off (appends are small and latency is measured).
    pub(super) async fn open(addr: SocketAddr) -> anyhow::Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            buf: Vec::with_capacity(64 * 1024),
            host: addr.to_string(),
        })
    }

    /// Sends `method path` with `headers` (each `Name: value\r\n`) and `body`; reads the
    /// whole answer. The connection stays usable unless the server closes it.
    pub(super) async fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &str,
        body: &[u8],
    ) -> anyhow::Result<Answer> {
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\n{headers}Content-Length: {}\r\n\r\n",
            self.host,
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(body);
        self.stream.write_all(&req).await?;
        self.read_answer(method == "HEAD").await
    }

    /// Sends a `GET` and returns once its head is read; the body is then read with
    /// [`Conn::read_body`] (an SSE stream never ends by itself).
    pub(super) async fn open_get(&mut self, path: &str) -> anyhow::Result<Answer> {
        let req = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", self.host);
        self.stream.write_all(req.as_bytes()).await?;
        let (answer, framing) = self.read_head().await?;
        anyhow::ensure!(
            framing == Framing::Chunked || answer.status != 200,
            "a live stream should be chunked"
        );
        Ok(answer)
    }

    /// Reads the rest of a streamed chunked body, passing each decoded slice to `out`, until
    /// the body ends (`Ok`) or the connection fails.
    pub(super) async fn read_body(&mut self, mut out: impl FnMut(&[u8])) -> anyhow::Result<()> {
        let mut d = Dechunk::default();
        d.feed(&self.buf, &mut out)?;
        self.buf.clear();
        let mut chunk = vec![0u8; 64 * 1024];
        while !d.done {
            let n = self.stream.read(&mut chunk).await?;
            anyhow::ensure!(n > 0, "connection closed in the body");
            d.feed(&chunk[..n], &mut out)?;
        }
        Ok(())
    }

    async fn read_head(&mut self) -> anyhow::Result<(Answer, Framing)> {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            if let Some(head) = parse_head(&self.buf)? {
                let answer = Answer {
                    status: head.status,
                    head: String::from_utf8_lossy(&self.buf[..head.len]).into_owned(),
                    body_len: 0,
                };
                self.buf.drain(..head.len);
                return Ok((answer, head.framing));
            }
            anyhow::ensure!(self.buf.len() < 64 * 1024, "response head too large");
            let n = self.stream.read(&mut chunk).await?;
            anyhow::ensure!(n > 0, "connection closed before a response");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    async fn read_answer(&mut self, head_only: bool) -> anyhow::Result<Answer> {
        let (mut a, framing) = self.read_head().await?;
        if head_only || a.status == 204 || a.status == 304 {
            return Ok(a);
        }
        match framing {
            Framing::Chunked => {
                let mut len = 0;
                self.read_body(|b| len += b.len()).await?;
                a.body_len = len;
            }
            Framing::Close => {
                anyhow::bail!("a response without length cannot keep the connection")
            }
            Framing::Length(len) => {
                // Requests are not pipelined, so nothing follows the body.
                let mut have = self.buf.len().min(len);
                self.buf.clear();
                let mut chunk = vec![0u8; 256 * 1024];
                while have < len {
                    let n = self.stream.read(&mut chunk).await?;
                    anyhow::ensure!(n > 0, "connection closed in the body");
                    have += n;
                }
                a.body_len = len;
            }
        }
        Ok(a)
    }
}
