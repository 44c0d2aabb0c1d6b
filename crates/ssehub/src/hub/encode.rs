//! An update as SSE bytes: `id:`, optional `event:` and `retry:`, one `data:` line per line.

use bytes::{Bytes, BytesMut};

use crate::update::Update;

/// Encodes an update once; the bytes are then shared by every subscriber that receives it.
///
/// Validation at publish time guarantees the id and type hold no line break, so the codec's
/// refusal cannot trigger for a stored update; if a store ever held one (a corrupted or
/// hand-edited database), the update is skipped with an error log rather than sent broken.
pub fn encode_update(update: &Update) -> Bytes {
    // Borrowed fields: encoding once per update needs no copy of the data besides the frame.
    let event = sse_wire::EventRef {
        event: update.event_type.as_deref(),
        data: &update.data,
        id: Some(&update.id),
        retry: update.retry,
    };
    let mut buf = BytesMut::with_capacity(update.data.len() + update.id.len() + 32);
    match sse_wire::encode_ref(event, &mut buf) {
        Ok(()) => buf.freeze(),
        Err(err) => {
            tracing::error!(id = %update.id, error = %err, "stored update cannot be encoded; skipping it");
            Bytes::new()
        }
    }
}
