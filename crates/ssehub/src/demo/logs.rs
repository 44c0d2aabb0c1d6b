//! Simulated log lines for the log page, so that it shows something before anyone feeds it a
//! real file: the shapes of an ordinary web service's log, every level represented.

use rand::Rng;

/// Lines by level, with `{n}` standing for a small random number and `{pct}` for a percentage.
const INFO: [&str; 6] = [
    "api: GET /orders/{n} 200 in {n} ms",
    "api: POST /cart 201 in {n} ms",
    "worker: job {n} done (resize image)",
    "auth: user {n} signed in",
    "api: GET /products?page={n} 200 in {n} ms",
    "cache: warmed {n} keys",
];
const DEBUG: [&str; 3] = [
    "db: query took {n} ms (select * from orders where id = {n})",
    "cache: hit ratio {pct}%",
    "http: keep-alive connection {n} reused",
];
const WARN: [&str; 3] = [
    "api: slow request GET /search took {n} ms",
    "db: connection pool {pct}% busy",
    "worker: retrying job {n} (attempt 2 of 5)",
];
const ERROR: [&str; 2] = [
    "api: POST /checkout 500: payment provider timed out after {n} ms",
    "worker: job {n} failed: disk quota exceeded",
];

/// Makes up log lines, numbered so that one missing from the page would show.
#[derive(Default)]
pub(super) struct LogLines {
    /// Lines made so far.
    count: u64,
}

/// `HH:MM:SS.mmm` of a unix time in milliseconds, UTC.
fn clock(ms: u64) -> String {
    let day_ms = ms % 86_400_000;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        day_ms / 3_600_000,
        day_ms / 60_000 % 60,
        day_ms / 1000 % 60,
        day_ms % 1000
    )
}

impl LogLines {
    /// The next line, stamped with `now_ms`.
    pub(super) fn next(&mut self, rng: &mut impl Rng, now_ms: u64) -> String {
        self.count += 1;
        let roll: u32 = rng.random_range(0..100);
        let (level, templates): (&str, &[&str]) = match roll {
            0..5 => ("ERROR", &ERROR),
            5..17 => ("WARN", &WARN),
            17..37 => ("DEBUG", &DEBUG),
            _ => ("INFO", &INFO),
        };
        let template = templates[rng.random_range(0..templates.len())];
        let template = template.replace("{pct}", &rng.random_range(1..100).to_string());
        let mut text = String::with_capacity(template.len() + 8);
        let mut parts = template.split("{n}");
        text.push_str(parts.next().unwrap_or_default());
        for part in parts {
            text.push_str(&rng.random_range(2..1000).to_string());
            text.push_str(part);
        }
        format!("{} {level:<5} #{} {text}", clock(now_ms), self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn lines_are_numbered_stamped_and_cover_every_level() {
        let mut lines = LogLines::default();
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let made: Vec<String> = (0..400).map(|_| lines.next(&mut rng, 45_296_789)).collect();
        assert!(made[0].starts_with("12:34:56.789 "), "{}", made[0]);
        assert!(made[9].contains(" #10 "), "{}", made[9]);
        for level in ["ERROR", "WARN ", "DEBUG", "INFO "] {
            assert!(made.iter().any(|l| l[13..].starts_with(level)), "{level}");
        }
        assert!(made.iter().all(|l| !l.contains('{')));
    }
}
