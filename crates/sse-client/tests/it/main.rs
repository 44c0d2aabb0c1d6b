//! Integration tests: real HTTP on loopback against servers that misbehave
//! on purpose. One module per topic.

#[macro_use]
mod support;

mod browser;
mod lean;
mod policy;
mod transport;
mod wire;
