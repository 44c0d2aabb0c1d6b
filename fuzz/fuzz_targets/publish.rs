//! Fuzzes the publish path's input handling: a form body as a publisher sends it, decoded
//! and validated exactly as the hub does. Either a valid update that encodes to a
//! well-formed SSE frame, or a typed refusal; never a panic, never an injected field.
//!
//! Run: `RUSTC_BOOTSTRAP=1 cargo fuzz run publish -- -max_total_time=180`

#![no_main]

use libfuzzer_sys::fuzz_target;
use ssehub::hub::{NewUpdate, encode_update, validate};
use sse_wire::{Frame, Parser};

fuzz_target!(|body: &[u8]| {
    let Ok(new) = NewUpdate::from_form(body) else {
        return;
    };
    let Ok(update) = validate(new) else {
        return;
    };
    // The frame must parse back to exactly one event carrying the update's fields.
    let bytes = encode_update(&update);
    let mut parser = Parser::new();
    let events: Vec<_> = parser.feed(&bytes).filter_map(|f| match f {
        Ok(Frame::Event(e)) => Some(e),
        _ => None,
    }).collect();
    assert_eq!(events.len(), 1, "one update must be one event");
    let ev = &events[0];
    assert_eq!(ev.id.as_deref(), Some(update.id.as_str()));
    assert_eq!(ev.event.as_deref(), update.event_type.as_deref());
    assert_eq!(ev.data, update.data.replace("\r\n", "\n").replace('\r', "\n"));
});
