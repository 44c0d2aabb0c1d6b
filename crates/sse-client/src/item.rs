//! What the stream yields.

use std::time::Duration;

use http::{HeaderMap, StatusCode, Version};
use reqwest::Url;
use sse_wire::Event;

use crate::Error;

/// One item of an [`EventSource`](crate::EventSource).
#[derive(Debug)]
#[non_exhaustive]
pub enum Item {
    /// A connection was established (after each reconnection too). Boxed
    /// to keep every item, events included, small to move.
    Open(Box<Open>),
    /// A dispatched event. Its `id` is the last event ID in force.
    Event(Event),
    /// A comment line (heartbeats), only when asked for with
    /// [`Builder::comments`](crate::Builder::comments).
    Comment(String),
    /// The connection ended and the client will reconnect after `delay`.
    Reconnecting(Reconnect),
}

/// A connection that the server accepted as an event stream.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Open {
    /// Always `200 OK`; kept so that logs can show what was received.
    pub status: StatusCode,
    /// The response headers (Mercure's `Last-Event-ID`, `X-Stream-Id`, ...).
    pub headers: HeaderMap,
    /// The URL that answered, after redirects.
    pub url: Url,
    /// The HTTP version in use.
    pub version: Version,
}

/// A scheduled reconnection.
#[derive(Debug)]
#[non_exhaustive]
pub struct Reconnect {
    /// Consecutive attempts since the last healthy connection, this one
    /// included (1 for the first).
    pub attempt: u32,
    /// How long the client waits before connecting again.
    pub delay: Duration,
    /// Why the connection ended: `None` when the server ended the stream.
    pub cause: Option<Error>,
}

/// Why an [`EventSource`](crate::EventSource) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EndReason {
    /// The server answered `204 No Content`: it asks clients to stop.
    NoContent,
    /// The server ended the stream and reconnecting on end was disabled.
    StreamEnded,
    /// [`EventSource::close`](crate::EventSource::close) was called.
    Closed,
    /// The stream yielded an error.
    Failed,
}
