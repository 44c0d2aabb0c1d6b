//! Reconnection delays: exponential growth from the server's `retry` (or the
//! configured initial delay), capped, with jitter so that a hub restart does
//! not see every client return in the same millisecond.

use std::time::Duration;

/// How long to wait before reconnection attempts.
///
/// The delay before the `n`th consecutive attempt (counting from zero) is
/// `min(max(cap, base), base * 2^n)`, then lengthened by a random fraction of
/// at most `jitter`. `base` is the server's last `retry:` value when it sent
/// one, else [`Backoff::initial`]. Neither the cap nor the jitter ever
/// undercuts `base`, because a server that asks for a delay (to shed load)
/// knows better than we do: jitter spreads clients out after it, never before.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// Delay before the first reconnection, until the server sends `retry:`.
    pub initial: Duration,
    /// Upper bound for the exponential growth (jitter comes on top).
    pub max: Duration,
    /// Fraction in `0.0..=1.0` by which a delay may be randomly lengthened.
    pub jitter: f64,
}

impl Default for Backoff {
    /// 3 s initial delay (what browsers use in practice), a 30 s cap and up to
    /// 20 % added by jitter.
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(3),
            max: Duration::from_secs(30),
            jitter: 0.2,
        }
    }
}

impl Backoff {
    /// The delay before attempt `failures` (0 = first reconnection after a
    /// healthy connection), given the server's `retry` and a random `unit` in
    /// `0.0..1.0`.
    pub(crate) fn delay(&self, retry: Option<Duration>, failures: u32, unit: f64) -> Duration {
        let base = retry.unwrap_or(self.initial);
        let grown = base.saturating_mul(2u32.saturating_pow(failures.min(31)));
        let capped = grown.min(self.max.max(base));
        let jitter = self.jitter.clamp(0.0, 1.0) * unit.clamp(0.0, 1.0);
        capped.saturating_add(capped.mul_f64(jitter))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_jitter() -> Backoff {
        Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(1000),
            jitter: 0.0,
        }
    }

    #[test]
    fn doubles_per_consecutive_failure_up_to_the_cap() {
        let b = no_jitter();
        let got: Vec<u128> = (0..6).map(|n| b.delay(None, n, 0.5).as_millis()).collect();
        assert_eq!(got, [100, 200, 400, 800, 1000, 1000]);
    }

    #[test]
    fn server_retry_replaces_the_initial_delay() {
        let b = no_jitter();
        assert_eq!(
            b.delay(Some(Duration::from_millis(7)), 0, 0.0).as_millis(),
            7
        );
        assert_eq!(
            b.delay(Some(Duration::from_millis(7)), 2, 0.0).as_millis(),
            28
        );
    }

    #[test]
    fn cap_never_undercuts_the_server_retry() {
        let b = no_jitter();
        let long = Duration::from_secs(5);
        assert_eq!(b.delay(Some(long), 0, 0.0), long);
        assert_eq!(b.delay(Some(long), 9, 0.0), long);
    }

    #[test]
    fn jitter_only_lengthens_within_its_fraction() {
        let b = Backoff {
            jitter: 0.5,
            ..no_jitter()
        };
        assert_eq!(b.delay(None, 0, 0.0).as_millis(), 100);
        assert_eq!(b.delay(None, 0, 1.0).as_millis(), 150);
        let mid = b.delay(None, 0, 0.5).as_millis();
        assert!((100..=150).contains(&mid));
    }

    /// Regression (issue 15): jitter was subtracted, so `ssehub listen` came back up to 20 %
    /// sooner than the `retry` the server asked for.
    #[test]
    fn jitter_never_reconnects_sooner_than_the_server_retry() {
        let b = Backoff::default();
        let retry = Duration::from_millis(10_000);
        let most = retry.mul_f64(1.0 + b.jitter);
        // Both ends of the random unit, then many real draws.
        let units = [0.0, f64::EPSILON, 0.5, 1.0 - f64::EPSILON]
            .into_iter()
            .chain(std::iter::repeat_with(rand::random::<f64>).take(10_000));
        for unit in units {
            let d = b.delay(Some(retry), 0, unit);
            assert!(d >= retry && d <= most, "unit {unit}: {d:?}");
        }
        // Past the cap too: never below the capped delay.
        for failures in 0..40 {
            let d = b.delay(None, failures, 0.999);
            let floor = b.delay(None, failures, 0.0);
            assert!(
                d >= floor && floor <= b.max,
                "{failures}: {d:?} < {floor:?}"
            );
        }
    }

    #[test]
    fn huge_failure_counts_saturate_instead_of_overflowing() {
        let b = no_jitter();
        assert_eq!(b.delay(None, u32::MAX, 0.0).as_millis(), 1000);
        let big = Backoff {
            max: Duration::MAX,
            ..no_jitter()
        };
        assert!(big.delay(None, 200, 0.0) > Duration::from_secs(1_000_000));
    }

    #[test]
    fn out_of_range_jitter_is_clamped() {
        let b = Backoff {
            jitter: 7.0,
            ..no_jitter()
        };
        assert_eq!(b.delay(None, 0, 1.0).as_millis(), 200);
        let negative = Backoff {
            jitter: -3.0,
            ..no_jitter()
        };
        assert_eq!(negative.delay(None, 0, 1.0).as_millis(), 100);
    }
}
