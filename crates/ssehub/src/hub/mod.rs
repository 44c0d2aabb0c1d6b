//! The hub layer: publish, subscribe, replay-then-live, fan-out.
//!
//! `selector` decides which topics a subscription or a token grant covers; it is
//! consulted for every update against every subscriber, hence its cache.

pub mod selector;
