//! `GET ?live=sse`: a stream's data as Server-Sent Events, then its live tail.
//!
//! Each chunk read from the store becomes one `data` event followed by one `control` event
//! (`streamNextOffset`, `streamCursor`, `upToDate`, `streamClosed`), written as one frame.
//! Text and JSON streams carry text (every line of the payload its own `data:` line, so no
//! payload can forge an event); other content types carry base64.
//!
//! Backpressure: the body is pulled. The next chunk is read from the store only when hyper
//! asks for the next frame, which it does once the previous one is handed to the socket, so
//! a reader that stops reading holds one chunk (bounded by the store's read size) and the
//! socket's buffers, never a growing backlog. When caught up it waits on the stream's commit
//! counter; a keep-alive control event goes out after each long-poll timeout of silence. The
//! response ends when the stream ends (after the closing control event), at shutdown, when the
//! stream goes away, or after `--streams-sse-max-duration` (at a quiet moment, so CDNs can
//! collapse reconnecting clients).

use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use tokio::time::Instant;

use super::error::DsError;
use super::headers::STREAM_SSE_DATA_ENCODING;
use super::read::body_bytes;
use crate::http::AppState;
use crate::streams::content;
use crate::streams::cursor::response_cursor;
use crate::streams::offset::{Offset, Start};
use crate::streams::{Chunk, ReaderGuard, Streams, Watch};

/// Input bytes per `data:` line of base64 (a multiple of 3, so each line is whole base64).
const BASE64_LINE_INPUT: usize = 48 * 1024;

/// Most payload bytes read for one event. A frame waits in the connection until the client
/// takes it, so this bounds what a stuck reader pins (about 4/3 of it, as base64).
const SSE_READ_BYTES: usize = 256 * 1024;

/// One SSE response in progress.
struct Tail {
    /// Where chunks are read and commits watched.
    streams: Streams,
    /// The stream's path (its key).
    path: String,
    /// The stream's id when the response started: a stream created again at the same path is
    /// another stream, and ends this response.
    id: u64,
    /// Where the next read starts.
    from: Offset,
    /// Subscribed before the first read, so no commit is missed.
    watch: Watch,
    /// The client's `cursor` parameter.
    cursor: Option<String>,
    /// Data events carry base64 (binary content types).
    base64: bool,
    /// A control event has been sent (the first one goes out even when there is no data).
    announced: bool,
    /// The closing control event has been sent: the response ends.
    finished: bool,
    /// Silence after which a keep-alive control event goes out.
    keep_alive: Duration,
    /// When the response ends (at a quiet moment) so the client reconnects.
    ends_at: Instant,
    /// Counts this connection in `ssehub_ds_readers` while it lasts.
    _reader: ReaderGuard,
}

/// Starts an SSE response.
pub(super) async fn respond(
    state: &AppState,
    path: &str,
    start: Start,
    cursor: Option<String>,
) -> Result<Response, DsError> {
    let meta = state.streams.head(path).await?;
    let watch = state.streams.watch(meta.id);
    let from = match start {
        Start::Beginning => Offset::ZERO,
        Start::Now => meta.tail_offset(),
        Start::At(o) => o,
    };
    let base64 = content::sse_is_base64(&meta.content_type);
    let tail = Tail {
        streams: state.streams.clone(),
        path: path.to_owned(),
        id: meta.id,
        from,
        watch,
        cursor,
        base64,
        announced: false,
        finished: false,
        keep_alive: state.config.load().streams_long_poll_timeout,
        ends_at: Instant::now() + state.config.load().streams_sse_max_duration,
        _reader: state.streams.metrics().reader(),
    };
    let frames = futures_util::stream::unfold(tail, |mut tail| async move {
        let frame = tail.next_frame().await?;
        Some((Ok::<Bytes, std::convert::Infallible>(frame), tail))
    });
    let mut res = (StatusCode::OK, Body::from_stream(frames)).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    if base64 {
        h.insert(STREAM_SSE_DATA_ENCODING, HeaderValue::from_static("base64"));
    }
    Ok(res)
}

impl Tail {
    /// The next frame to write, or `None` when the response is over.
    async fn next_frame(&mut self) -> Option<Bytes> {
        if self.finished {
            return None;
        }
        loop {
            let read = self
                .streams
                .read_at_most(&self.path, Start::At(self.from), SSE_READ_BYTES);
            let chunk = match read.await {
                Ok(chunk) if chunk.meta.id == self.id => chunk,
                Ok(_) => return None,
                Err(err) => {
                    tracing::debug!(stream = %self.path, error = %err, "sse read ended");
                    return None;
                }
            };
            self.from = Offset(chunk.next);
            if !chunk.is_empty() {
                let mut frame = self.data_event(&chunk);
                frame.extend_from_slice(&self.control_event(&chunk));
                return Some(self.sent(frame, &chunk));
            }
            if chunk.at_end() || !self.announced {
                let frame = self.control_event(&chunk);
                return Some(self.sent(frame, &chunk));
            }
            let shutdown = self.streams.shutdown().clone();
            tokio::select! {
                () = self.watch.changed() => {}
                () = tokio::time::sleep(self.keep_alive) => {
                    return Some(Bytes::from(self.control_event(&chunk)));
                }
                () = tokio::time::sleep_until(self.ends_at) => return None,
                () = shutdown.cancelled() => return None,
            }
        }
    }

    fn sent(&mut self, frame: Vec<u8>, chunk: &Chunk) -> Bytes {
        self.announced = true;
        self.finished = chunk.at_end();
        Bytes::from(frame)
    }

    fn data_event(&self, chunk: &Chunk) -> Vec<u8> {
        let mut out = Vec::with_capacity(chunk.len() * 4 / 3 + 64);
        out.extend_from_slice(b"event: data\n");
        if self.base64 {
            let bytes = chunk.parts.concat();
            let engine = base64::engine::general_purpose::STANDARD;
            let mut line = String::new();
            for input in bytes.chunks(BASE64_LINE_INPUT) {
                line.clear();
                engine.encode_string(input, &mut line);
                out.extend_from_slice(b"data:");
                out.extend_from_slice(line.as_bytes());
                out.push(b'\n');
            }
        } else {
            let bytes = body_bytes(chunk);
            let text = String::from_utf8_lossy(&bytes);
            data_lines(&mut out, &text);
        }
        out.push(b'\n');
        out
    }

    fn control_event(&self, chunk: &Chunk) -> Vec<u8> {
        let next = Offset(chunk.next);
        let json = if chunk.at_end() {
            format!(r#"{{"streamNextOffset":"{next}","streamClosed":true,"upToDate":true}}"#)
        } else {
            let cursor = response_cursor(self.cursor.as_deref());
            let up_to_date = if chunk.up_to_date() {
                r#","upToDate":true"#
            } else {
                ""
            };
            format!(r#"{{"streamNextOffset":"{next}","streamCursor":"{cursor}"{up_to_date}}}"#)
        };
        format!("event: control\ndata:{json}\n\n").into_bytes()
    }
}

/// Writes `text` as `data:` lines, one per line of the text (CR, LF and CRLF all end a line,
/// as SSE parsers see them). No space follows `data:`, so leading spaces survive.
fn data_lines(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\n' | b'\r' => {
                out.extend_from_slice(b"data:");
                out.extend_from_slice(&bytes[start..i]);
                out.push(b'\n');
                if bytes[i] == b'\r' && bytes.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    out.extend_from_slice(b"data:");
    out.extend_from_slice(&bytes[start..]);
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::data_lines;

    #[test]
    fn every_line_ending_starts_a_new_data_line() {
        let mut out = Vec::new();
        data_lines(&mut out, "a\r\n\r\nevent: control\rb\nc");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "data:a\ndata:\ndata:event: control\ndata:b\ndata:c\n"
        );
    }
}
