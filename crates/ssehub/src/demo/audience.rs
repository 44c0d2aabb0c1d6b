//! Whether a simulated producer should publish: while someone watches, and for a while after.

use std::time::Duration;

use tokio::time::Instant;

/// Remembers when a producer's topic was last watched.
pub(super) struct Audience {
    /// How long publishing goes on after the last watcher left: long enough for a reload,
    /// which leaves for an instant and comes back asking for what it missed.
    linger: Duration,
    /// The last time someone was subscribed; `None` before anyone ever was.
    last_seen: Option<Instant>,
}

impl Audience {
    pub(super) fn new(linger: Duration) -> Self {
        Audience {
            linger,
            last_seen: None,
        }
    }

    /// Whether to publish now, given whether anyone is subscribed now.
    pub(super) fn watched(&mut self, subscribed: bool, now: Instant) -> bool {
        if subscribed {
            self.last_seen = Some(now);
            return true;
        }
        self.last_seen
            .is_some_and(|seen| now.duration_since(seen) < self.linger)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publishes_while_watched_and_for_the_linger_after() {
        let start = Instant::now();
        let linger = Duration::from_secs(60);
        let mut audience = Audience::new(linger);
        assert!(!audience.watched(false, start), "nobody ever watched");
        assert!(audience.watched(true, start));
        assert!(audience.watched(false, start + Duration::from_secs(59)));
        assert!(!audience.watched(false, start + linger));
        assert!(audience.watched(true, start + Duration::from_secs(120)));
    }
}
