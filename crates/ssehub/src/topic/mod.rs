//! Topic selectors: which topics a subscription (or a token's grant) covers. A leaf: it
//! imports neither the hub nor auth, which both use it (as do the relay and HTTP). It also
//! names the parts of the topic space that only the hub writes ([`is_reserved`]).
//!
//! Three generations of syntax meet here:
//! - 0.x `topic=` selectors and 0.x `mercure.publish`/`mercure.subscribe` claims:
//!   `*` matches everything, otherwise the selector matches the identical topic,
//!   otherwise, when it contains `{`, it is an RFC 6570 URI template compiled to an
//!   anchored regular expression (the approach of the reference Go hub).
//! - 1.0 `match=`/`match_exact=`: exact, byte-for-byte comparison (`*` = all).
//! - 1.0 `match_urlpattern=`: a WHATWG URL Pattern. Relative patterns and relative
//!   topics are resolved against a base URL (the hub's URL when configured).
//!
//! Matching runs for every update against every subscriber's selectors, so a
//! [`SelectorCache`] interns compiled selectors (thousands of subscribers with the
//! same selector string share one `Arc<Selector>`) and memoizes
//! `(selector, topic) -> bool` for the kinds that cost more than a string compare.
//! Both are bounded. Fan-out should [`SelectorCache::prepare`] an update's topics once
//! and test each subscriber with [`SelectorCache::matches_any_prepared`], so the topic
//! is hashed once per update rather than once per subscriber. Both regex engines in play (the `regex` crate for templates,
//! and the one inside `urlpattern`) match in linear time, so a hostile pattern cannot
//! trigger catastrophic backtracking; pattern length is capped as well.

mod cache;
mod error;
mod reserved;
mod selector;
mod template;
#[cfg(test)]
mod tests;

pub use cache::{CacheLimits, PreparedTopic, SelectorCache};
pub use error::SelectorError;
pub use reserved::{MERCURE_PATH, RELAY_STREAMS, is_reserved};
pub use selector::{MAX_SELECTOR_LEN, Selector, SelectorKind, Template, UrlPatternSelector};
