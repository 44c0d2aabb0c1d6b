//! Passthrough: the upstream speaks the front's own API (`--upstream-api responses|messages`),
//! so its events are stored as they came, with three changes that make them this hub's: a
//! Responses `sequence_number` is renumbered from 1 to match the stored index (what
//! `starting_after` counts), a `response.id` becomes the stream id (what `GET /v1/responses/{id}`
//! finds), and the upstream's last event is held back one step so that it is stored as
//! `{stream}-end`, like every stream's last event.
//!
//! When the stream does not end by itself (cancel, shutdown, an upstream failure), the front's
//! translator, fed the same events, closes it in the front's terms as a translated stream would
//! be closed.

use serde_json::{Value, json};

use super::{Api, End, Event, messages, responses};

/// The front's own state, kept from the passed events.
enum State {
    Responses(responses::Translator),
    Messages(messages::Translator),
}

/// One passed-through stream.
pub(crate) struct Passthrough {
    /// The stream id (the response id the front shows).
    id: String,
    /// What the events so far amount to, to close the stream if need be.
    state: State,
    /// The latest event, not stored yet: if the upstream ends after it, it is the stream's end.
    held: Option<Value>,
    /// Events stored so far (numbered).
    n: u64,
}

/// Event types that end a stream by themselves.
fn is_terminal(kind: &str) -> bool {
    matches!(
        kind,
        "response.completed"
            | "response.incomplete"
            | "response.failed"
            | "response.cancelled"
            | "message_stop"
            | "error"
    )
}

impl Passthrough {
    /// A passthrough for stream `id` of front `api` (Responses or Messages).
    pub(crate) fn new(id: &str, api: Api) -> Self {
        let state = match api {
            Api::Messages => State::Messages(messages::Translator::from_events(std::iter::empty())),
            _ => State::Responses(responses::Translator::with_base(id, json!({"id": id}))),
        };
        Passthrough {
            id: id.to_owned(),
            state,
            held: None,
            n: 0,
        }
    }

    /// `event` numbered as the stream's event `n`, and taken into the state.
    fn emit(&mut self, mut event: Value, n: u64) -> Event {
        let kind = event["type"].as_str().unwrap_or("message").to_owned();
        let data = match &mut self.state {
            State::Responses(t) => {
                event["sequence_number"] = json!(n);
                if event["response"].is_object() {
                    event["response"]["id"] = json!(self.id);
                }
                let data = event.to_string();
                t.observe(&data);
                data
            }
            State::Messages(t) => {
                let data = event.to_string();
                t.observe(&data);
                data
            }
        };
        Event {
            kind: Some(kind),
            data,
        }
    }

    /// The event the previous chunk held back, now that another follows it.
    pub(crate) fn chunk(&mut self, data: &str) -> Vec<Event> {
        let Ok(event) = serde_json::from_str::<Value>(data) else {
            tracing::debug!("an upstream event is not JSON; dropped");
            return Vec::new();
        };
        match self.held.replace(event) {
            Some(previous) => {
                self.n += 1;
                vec![self.emit(previous, self.n)]
            }
            None => Vec::new(),
        }
    }

    /// The held event as the end, or, when the upstream did not end the stream itself, the
    /// front's own closing events.
    pub(crate) fn end(&mut self, end: End) -> (Vec<Event>, Option<Event>) {
        let held = self.held.take();
        let ended = held
            .as_ref()
            .and_then(|e| e["type"].as_str())
            .is_some_and(is_terminal);
        if ended || matches!(end, End::Done) {
            let last = held.map(|e| self.emit(e, self.n + 1));
            return (Vec::new(), last);
        }
        let mut closing = Vec::new();
        if let Some(e) = held {
            self.n += 1;
            closing.push(self.emit(e, self.n));
        }
        let (more, last) = match &mut self.state {
            State::Responses(t) => t.end(end),
            State::Messages(t) => t.end(end),
        };
        closing.extend(more);
        (closing, last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_events_are_renumbered_their_id_replaced_and_the_last_held_for_the_end() {
        let mut p = Passthrough::new("strm_1", Api::Responses);
        let upstream = [
            json!({"type": "response.created", "sequence_number": 0, "response": {"id": "resp_x", "status": "in_progress"}}),
            json!({"type": "response.output_text.delta", "sequence_number": 1, "delta": "Hi"}),
            json!({"type": "response.completed", "sequence_number": 2, "response": {"id": "resp_x", "status": "completed"}}),
        ];
        let mut stored = Vec::new();
        for e in &upstream {
            stored.extend(p.chunk(&e.to_string()));
        }
        assert_eq!(stored.len(), 2);
        let (closing, last) = p.end(End::Cancelled);
        assert!(
            closing.is_empty(),
            "a stream that ended itself is not closed again"
        );
        let last: Value = serde_json::from_str(&last.unwrap().data).unwrap();
        assert_eq!(last["sequence_number"], 3);
        assert_eq!(last["response"]["id"], "strm_1");
        let first: Value = serde_json::from_str(&stored[0].data).unwrap();
        assert_eq!(
            (
                first["sequence_number"].as_u64(),
                first["response"]["id"].as_str()
            ),
            (Some(1), Some("strm_1"))
        );
    }

    #[test]
    fn a_cancelled_passthrough_is_closed_in_the_fronts_terms() {
        let mut p = Passthrough::new("strm_1", Api::Messages);
        for e in [
            json!({"type": "message_start", "message": {"id": "msg_1", "content": []}}),
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}}),
        ] {
            p.chunk(&e.to_string());
        }
        let (closing, last) = p.end(End::Cancelled);
        let kinds: Vec<_> = closing.iter().map(|e| e.kind.as_deref().unwrap()).collect();
        assert_eq!(
            kinds,
            ["content_block_delta", "content_block_stop", "message_delta"]
        );
        assert_eq!(last.unwrap().kind.as_deref(), Some("message_stop"));
    }
}
