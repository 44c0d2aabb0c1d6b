//! The [`Event`] value shared by the parser (what it dispatches) and the
//! encoder (what it writes), its borrowed twin [`EventRef`] (what the
//! encoder can write without owning, and what the parser lends), and the
//! [`Frame`] / [`FrameRef`] the parser yields / lends.

/// One server-sent event.
///
/// The same type serves both directions. Parsed, `id` is the last event ID in
/// force when the event was dispatched and `retry` a valid `retry:` seen in
/// the event's own block. Encoded, each `Some` field becomes one line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Event {
    /// The `event:` field; `None` means the default type `message`.
    pub event: Option<String>,
    /// The data lines joined with `\n`.
    pub data: String,
    /// Parsed: the last event ID at dispatch (`None` if empty or unset).
    /// Encoded: the `id:` line to write (`Some("")` resets the client's ID).
    pub id: Option<String>,
    /// The `retry:` field: the reconnection delay in milliseconds.
    pub retry: Option<u64>,
}

impl Event {
    /// An event of the default type carrying `data`.
    ///
    /// # Examples
    /// ```
    /// let ev = sse_wire::Event::new("hello").with_id("1");
    /// assert_eq!(ev.event_type(), "message");
    /// ```
    pub fn new(data: impl Into<String>) -> Self {
        Event {
            data: data.into(),
            ..Event::default()
        }
    }

    /// The event type as an `EventSource` listener sees it: `message` when
    /// none (or an empty one) was given.
    pub fn event_type(&self) -> &str {
        match self.event.as_deref() {
            None | Some("") => "message",
            Some(name) => name,
        }
    }

    /// Sets the `id:` field.
    #[must_use]
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Sets the `event:` field (the event type).
    #[must_use]
    pub fn with_event(mut self, event: impl Into<String>) -> Self {
        self.event = Some(event.into());
        self
    }

    /// Sets the `retry:` field, in milliseconds.
    #[must_use]
    pub fn with_retry(mut self, retry_ms: u64) -> Self {
        self.retry = Some(retry_ms);
        self
    }
}

/// An [`Event`]'s fields borrowed: what [`encode_ref`](crate::encode_ref)
/// writes, and what [`Feed::next_ref`](crate::Feed::next_ref) lends (with
/// the same meaning as a parsed [`Event`]'s fields: `id` the last event ID
/// at dispatch, `None` when empty; `event` `None` when empty).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventRef<'a> {
    /// The `event:` field; `None` (or empty) writes no such line.
    pub event: Option<&'a str>,
    /// The data, written as one `data:` line per line.
    pub data: &'a str,
    /// The `id:` field.
    pub id: Option<&'a str>,
    /// The `retry:` field, in milliseconds.
    pub retry: Option<u64>,
}

impl EventRef<'_> {
    /// The event type as an `EventSource` listener sees it: `message` when
    /// none (or an empty one) was given.
    pub fn event_type(&self) -> &str {
        match self.event {
            None | Some("") => "message",
            Some(name) => name,
        }
    }
}

impl Event {
    /// The fields borrowed, for [`encode_ref`](crate::encode_ref).
    pub fn as_ref(&self) -> EventRef<'_> {
        EventRef {
            event: self.event.as_deref(),
            data: &self.data,
            id: self.id.as_deref(),
            retry: self.retry,
        }
    }
}

impl From<EventRef<'_>> for Event {
    fn from(ev: EventRef<'_>) -> Self {
        Event {
            event: ev.event.map(str::to_owned),
            data: ev.data.to_owned(),
            id: ev.id.map(str::to_owned),
            retry: ev.retry,
        }
    }
}

/// What the parser yields: a dispatched event or, when enabled with
/// [`Parser::with_comments`](crate::Parser::with_comments), a comment line.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Frame {
    /// A dispatched event.
    Event(Event),
    /// The text of one `:` comment line, with one leading space dropped.
    Comment(String),
}

/// A [`Frame`] lent by [`Feed::next_ref`](crate::Feed::next_ref) or
/// [`Parser::feed_with`](crate::Parser::feed_with): valid until the next
/// frame is asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameRef<'a> {
    /// A dispatched event.
    Event(EventRef<'a>),
    /// The text of one `:` comment line, with one leading space dropped.
    Comment(&'a str),
}

impl From<FrameRef<'_>> for Frame {
    fn from(frame: FrameRef<'_>) -> Self {
        match frame {
            FrameRef::Event(ev) => Frame::Event(ev.into()),
            FrameRef::Comment(text) => Frame::Comment(text.to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_type_defaults_to_message() {
        assert_eq!(Event::new("x").event_type(), "message");
        assert_eq!(Event::new("x").with_event("").event_type(), "message");
        assert_eq!(Event::new("x").with_event("ping").event_type(), "ping");
        for ev in [
            Event::new("x"),
            Event::new("x").with_event(""),
            Event::new("x").with_event("ping"),
        ] {
            assert_eq!(ev.as_ref().event_type(), ev.event_type());
        }
    }

    #[test]
    fn builders_set_fields() {
        let ev = Event::new("d").with_id("7").with_event("t").with_retry(10);
        assert_eq!(
            ev,
            Event {
                event: Some("t".into()),
                data: "d".into(),
                id: Some("7".into()),
                retry: Some(10),
            }
        );
    }
}
