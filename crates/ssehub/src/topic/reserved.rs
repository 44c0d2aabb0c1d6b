//! The parts of the topic space that only the hub writes, so no publisher can forge a
//! subscription event or end a relay answer. Each prefix is also the HTTP path of the same
//! thing, which is why one constant serves the router, the HTTP/1.1 writer and the topics.

/// The Mercure endpoint, and the root of subscription events' topics.
pub const MERCURE_PATH: &str = "/.well-known/mercure";

/// Relay streams: topic and HTTP path `/v1/streams/{id}`.
pub const RELAY_STREAMS: &str = "/v1/streams/";

/// Whether a topic (a path or an absolute URL) lies in the hub's own space: under
/// [`MERCURE_PATH`] or [`RELAY_STREAMS`].
#[must_use]
pub fn is_reserved(topic: &str) -> bool {
    let path = match topic.find("://") {
        Some(i) => {
            let rest = &topic[i + 3..];
            rest.find('/').map_or("", |p| &rest[p..])
        }
        None => topic,
    };
    let under_mercure = path
        .strip_prefix(MERCURE_PATH)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/') || rest.starts_with('?'));
    under_mercure || path.starts_with(RELAY_STREAMS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_space_in_paths_and_urls() {
        for t in [
            "/.well-known/mercure",
            "/.well-known/mercure?x",
            "/.well-known/mercure/subscriptions/x/y",
            "https://example.com/.well-known/mercure/subscriptions",
            "/v1/streams/strm_0123/started",
            "https://hub.example/v1/streams/strm_0123",
        ] {
            assert!(is_reserved(t), "{t}");
        }
        for t in [
            "/.well-known/mercurey",
            "https://example.com/books/.well-known/mercure",
            "urn:x",
            "/v1/streamsx",
        ] {
            assert!(!is_reserved(t), "{t}");
        }
    }
}
