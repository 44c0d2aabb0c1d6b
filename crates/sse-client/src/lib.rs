//! An EventSource client for Rust that behaves like a browser's, and a
//! little better.
//!
//! ```text
//!  Builder --build--> EventSource (Stream)
//!                       | send request (method, headers, body, Last-Event-ID)
//!                       v
//!                  Transport::Reqwest: reqwest response (hyper; HTTP/1.1, HTTP/2, TLS)
//!                  Transport::LeanHttp1: lean::conn (own plain HTTP/1.1 socket)
//!                       | response::Body --bytes--> sse_wire::Parser --frames--> Item::Event / Item::Comment
//!                       | end, drop, idle timeout
//!                       v
//!                  Backoff delay --> Item::Reconnecting --> send again
//! ```
//!
//! - [`builder`](Builder): the request repeated on each connection, the
//!   reconnection policy and the [`Transport`].
//! - [`EventSource`]: the stream; a state machine polled by the caller (no
//!   background task, on either transport), so dropping it closes the
//!   connection.
//! - `response`: a response head and body whichever transport brought it.
//! - `lean`: the lean HTTP/1.1 transport: request head written once,
//!   response head parsed with `httparse`, body framing (length, chunked,
//!   until close) undone straight into the parser, read buffer dropped
//!   while idle; errors are [`Http1Error`].
//! - [`Backoff`]: delays between attempts.
//! - [`Error`]: everything that ends a stream.
//!
//! Browser rules it keeps (WHATWG "Server-sent events"): `Accept:
//! text/event-stream`; `Last-Event-ID` on reconnection when non-empty;
//! reconnect when the stream ends, after the server's `retry`; stop on
//! `204`; fail, without retrying, on any other non-200 status or a content
//! type other than `text/event-stream` (parameters such as `charset` are
//! fine); follow redirects, then reconnect to the original URL. The codec
//! skips a BOM, accepts CRLF split across reads and decodes invalid UTF-8
//! with U+FFFD instead of stalling or panicking.
//!
//! Beyond the browser: any method and body (reconnections resend the body),
//! exponential [`Backoff`] with jitter and a cap, a maximum number of
//! attempts, a backoff that resets only after a connection stayed healthy,
//! an idle timeout for dead connections, [`EventSource::close`], one-shot
//! streams that end instead of reconnecting, and opt-in retry of 5xx.
//! Errors the client recovers from are not `Err` items: they show up as
//! [`Item::Reconnecting`], so an `Err` always ends the stream.
//! [`EventSource::from_response`] reads a response obtained elsewhere with
//! the same checks (no reconnection).
//!
//! Costs (BENCHMARKS.md, "sse-client"): an idle stream holds about 2 KiB of
//! heap over HTTP/2, where streams share a connection, and about 30 KiB over
//! HTTP/1.1 through reqwest, almost all of it hyper's per-connection
//! buffers; share one [`reqwest::Client`] with [`Builder::client`] and
//! prefer HTTP/2 for many streams to one host. Where HTTP/2 is not an option
//! (plain `http://`, one connection per stream),
//! [`Transport::LeanHttp1`] holds under 2 KiB per idle stream: the socket,
//! the parser and the request to repeat, no buffer. Chunks are parsed a
//! line-aligned piece at a time, so a large read does not pile up hundreds
//! of events in memory.
//!
//! # Following a hub topic
//!
//! ```no_run
//! use std::time::Duration;
//! use futures_util::StreamExt;
//! use sse_client::{EventSource, Item};
//!
//! # async fn example() -> Result<(), sse_client::Error> {
//! let mut updates = EventSource::get("https://hub.example.com/.well-known/mercure?topic=https://example.com/books/1")
//!     .bearer_auth("subscriber-jwt")
//!     // Mercure sends a heartbeat every 40 s: silence beyond that is a dead link.
//!     .idle_timeout(Duration::from_secs(60))
//!     .build()?;
//! while let Some(item) = updates.next().await {
//!     match item? {
//!         Item::Event(update) => println!("{} {}", update.id.as_deref().unwrap_or(""), update.data),
//!         Item::Reconnecting(r) => eprintln!("reconnecting in {:?}", r.delay),
//!         _ => {}
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Consuming an OpenAI chat completion stream
//!
//! ```no_run
//! use futures_util::StreamExt;
//! use sse_client::{EventSource, Item};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let request = r#"{"model": "gpt-4o-mini", "stream": true,
//!                   "messages": [{"role": "user", "content": "Say hello"}]}"#;
//! let mut chunks = EventSource::post("https://api.openai.com/v1/chat/completions")
//!     .bearer_auth(std::env::var("OPENAI_API_KEY")?)
//!     .header("content-type", "application/json")
//!     .body(request)
//!     // One request, one answer: resending the POST would start over.
//!     .no_reconnect()
//!     .build()?;
//! while let Some(item) = chunks.next().await {
//!     let Item::Event(chunk) = item? else { continue };
//!     if chunk.data == "[DONE]" {
//!         break;
//!     }
//!     print!("{}", chunk.data); // a JSON `chat.completion.chunk`
//! }
//! # Ok(())
//! # }
//! ```

mod backoff;
mod builder;
mod error;
mod item;
#[doc(hidden)]
pub mod lean;
mod response;
mod source;

pub use backoff::Backoff;
pub use builder::{Builder, Transport};
pub use error::Error;
pub use item::{EndReason, Item, Open, Reconnect};
pub use lean::Http1Error;
pub use source::EventSource;
pub use sse_wire::{Event, ParseError};
