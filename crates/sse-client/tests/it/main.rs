//! Integration tests: real HTTP on loopback against servers that misbehave
//! on purpose. One module per topic.

mod browser;
mod policy;
mod support;
mod transport;
mod wire;
