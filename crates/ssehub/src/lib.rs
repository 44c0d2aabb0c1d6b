//! ssehub: a Mercure-compatible Server-Sent Events hub with durable history and an OpenAI-compatible relay.

pub mod store;
pub mod update;
