//! `Stream-Cursor`: the value live responses carry so CDNs collapse waiting clients per time
//! interval without ever serving an old empty answer forever.
//!
//! Time is cut into 20-second intervals counted from 2024-10-09T00:00:00Z (the protocol's
//! defaults); a cursor is an interval number. A client echoes the last cursor it saw; when
//! that echo is not behind the current interval, the answer jumps ahead by a random 1 s..1 h
//! worth of intervals, so cursors a client sees never repeat or go backwards (a repeated
//! cache key could loop a client on a cached response).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The protocol's default cursor epoch, in unix seconds (2024-10-09T00:00:00Z).
const EPOCH_SECS: u64 = 1_728_432_000;
/// Length of one cursor interval.
const INTERVAL: Duration = Duration::from_secs(20);
/// Largest jump ahead when a client's cursor is current, in seconds.
const MAX_JITTER_SECS: u64 = 3600;

/// The interval number of `now`.
fn interval_at(now: SystemTime) -> u64 {
    let since = now
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
        .saturating_sub(EPOCH_SECS);
    since / INTERVAL.as_secs()
}

/// The cursor for a live response, given the `cursor` query parameter the client echoed.
pub fn response_cursor(client: Option<&str>) -> String {
    next_cursor(
        client,
        SystemTime::now(),
        rand::random_range(1..=MAX_JITTER_SECS),
    )
}

fn next_cursor(client: Option<&str>, now: SystemTime, jitter_secs: u64) -> String {
    let current = interval_at(now);
    match client.and_then(|c| c.parse::<u64>().ok()) {
        Some(echoed) if echoed >= current => {
            let jump = jitter_secs.div_ceil(INTERVAL.as_secs()).max(1);
            echoed.saturating_add(jump).to_string()
        }
        _ => current.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_current_echo_moves_ahead_and_a_stale_one_gets_the_current_interval() {
        let now = UNIX_EPOCH + Duration::from_secs(EPOCH_SECS + 20 * 1000 + 5);
        assert_eq!(next_cursor(None, now, 1), "1000");
        assert_eq!(next_cursor(Some("999"), now, 1), "1000");
        assert_eq!(next_cursor(Some("junk"), now, 1), "1000");
        assert_eq!(next_cursor(Some("1000"), now, 1), "1001");
        assert_eq!(next_cursor(Some("1000"), now, 3600), "1180");
        assert_eq!(next_cursor(Some("5000"), now, 21), "5002");
    }
}
