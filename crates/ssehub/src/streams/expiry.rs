//! When a stream stops existing: a sliding TTL (`Stream-TTL`, renewed by every read and write
//! but not by `HEAD`) or an absolute deadline (`Stream-Expires-At`, RFC 3339).
//!
//! The header syntax is checked here so the HTTP front and the store agree on it. Expiry is
//! judged at each access from the stream's metadata and its last activity; the store removes an
//! expired stream on the next write that meets it or on the periodic sweep, so what clients see
//! never depends on when the sweep runs.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the unix epoch, the clock every expiry decision uses.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A header value that is not a valid TTL or deadline.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExpiryError {
    /// `Stream-TTL` is not a plain non-negative decimal integer.
    #[error(
        "invalid Stream-TTL {0:?}: use whole seconds in plain decimal (3600; no sign, leading zeros, decimals or exponent)"
    )]
    Ttl(String),
    /// `Stream-Expires-At` is not an RFC 3339 timestamp.
    #[error("invalid Stream-Expires-At {0:?}: use an RFC 3339 timestamp like 2030-01-02T03:04:05Z")]
    ExpiresAt(String),
}

/// Parses `Stream-TTL`: `0` or a decimal without leading zeros.
///
/// # Errors
///
/// [`ExpiryError::Ttl`] for anything else, or a value that does not fit in 64 bits.
pub fn parse_ttl(text: &str) -> Result<u64, ExpiryError> {
    let bad = || ExpiryError::Ttl(text.to_owned());
    if !is_plain_decimal(text) {
        return Err(bad());
    }
    text.parse().map_err(|_| bad())
}

/// True for `0` and for decimal digits not starting with `0`; the syntax the protocol gives
/// `Stream-TTL` and `Stream-Fork-Sub-Offset`.
pub fn is_plain_decimal(text: &str) -> bool {
    !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'))
}

/// A `Stream-Expires-At` deadline: the text as the client sent it (returned by `HEAD` and
/// compared by idempotent `PUT`) and the instant it names.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Deadline {
    /// The header value as sent.
    pub text: String,
    /// The instant, in unix milliseconds (0 for instants before 1970).
    pub at_ms: u64,
}

impl Deadline {
    /// Parses an RFC 3339 timestamp (`T` or space between date and time, optional fraction,
    /// `Z` or a numeric offset).
    ///
    /// # Errors
    ///
    /// [`ExpiryError::ExpiresAt`] for anything else, including impossible dates.
    pub fn parse(text: &str) -> Result<Deadline, ExpiryError> {
        let bad = || ExpiryError::ExpiresAt(text.to_owned());
        let at_ms = rfc3339_ms(text.trim()).ok_or_else(bad)?;
        Ok(Deadline {
            text: text.to_owned(),
            at_ms,
        })
    }
}

/// Unix milliseconds of an RFC 3339 timestamp, clamped at 0.
fn rfc3339_ms(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = b.get(from..from + len)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    let year = num(0, 4)?;
    let month = num(5, 2)?;
    let day = num(8, 2)?;
    let hour = num(11, 2)?;
    let minute = num(14, 2)?;
    let second = num(17, 2)?;
    if b.get(4) != Some(&b'-')
        || b.get(7) != Some(&b'-')
        || !matches!(b.get(10), Some(b'T' | b't' | b' '))
        || b.get(13) != Some(&b':')
        || b.get(16) != Some(&b':')
    {
        return None;
    }
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut i = 19;
    let mut millis = 0i64;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return None;
        }
        // Only the first three digits matter at millisecond precision.
        let digits = &s[start..i.min(start + 3)];
        millis = format!("{digits:0<3}").parse().ok()?;
    }
    let offset_minutes = match b.get(i) {
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(sign @ (b'+' | b'-')) if i + 6 == b.len() && b.get(i + 3) == Some(&b':') => {
            let h = num(i + 1, 2)?;
            let m = num(i + 4, 2)?;
            if h > 23 || m > 59 {
                return None;
            }
            let total = h * 60 + m;
            if *sign == b'+' { total } else { -total }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
    let ms = secs.checked_mul(1000)?.checked_add(millis)?;
    Some(u64::try_from(ms).unwrap_or(0))
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to the given civil date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Whether a stream with this TTL/deadline, last active at `last_active_ms`, has expired.
pub fn is_expired(
    ttl_secs: Option<u64>,
    deadline: Option<&Deadline>,
    last_active_ms: u64,
    now_ms: u64,
) -> bool {
    if deadline.is_some_and(|d| now_ms >= d.at_ms) {
        return true;
    }
    ttl_secs.is_some_and(|ttl| now_ms >= last_active_ms.saturating_add(ttl.saturating_mul(1000)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_syntax_is_strict() {
        assert_eq!(parse_ttl("0"), Ok(0));
        assert_eq!(parse_ttl("3600"), Ok(3600));
        for bad in [
            "",
            "-1",
            "+60",
            "00060",
            "60.5",
            "1e3",
            "abc",
            " 60",
            "99999999999999999999999",
        ] {
            assert!(parse_ttl(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn rfc3339_timestamps_parse_to_unix_millis() {
        let at = |s: &str| Deadline::parse(s).map(|d| d.at_ms);
        assert_eq!(at("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(at("2024-10-09T00:00:00Z"), Ok(1_728_432_000_000));
        assert_eq!(at("2024-10-09T00:00:00.123Z"), Ok(1_728_432_000_123));
        assert_eq!(at("2024-10-09T00:00:00.1234567Z"), Ok(1_728_432_000_123));
        assert_eq!(at("2024-10-09T02:00:00+02:00"), Ok(1_728_432_000_000));
        assert_eq!(at("2024-10-08T22:00:00.5-02:00"), Ok(1_728_432_000_500));
        assert_eq!(at("2000-02-29 12:00:00z"), Ok(951_825_600_000));
        for bad in [
            "not-a-timestamp",
            "2024-10-09",
            "2024-10-09T00:00:00",
            "2023-02-29T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-10-09T24:00:00Z",
            "2024-10-09T00:00:00.Z",
            "2024-10-09T00:00:00+0200",
        ] {
            assert!(Deadline::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn expiry_slides_with_activity_but_deadlines_do_not() {
        assert!(!is_expired(Some(2), None, 1000, 2999));
        assert!(is_expired(Some(2), None, 1000, 3000));
        let deadline = Deadline::parse("1970-01-01T00:00:05Z").unwrap();
        assert!(!is_expired(None, Some(&deadline), 4999, 4999));
        assert!(is_expired(None, Some(&deadline), 5000, 5000));
        assert!(!is_expired(None, None, 0, u64::MAX));
    }
}
