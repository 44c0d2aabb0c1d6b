//! Simulated share prices: a random walk per symbol, pulled gently back towards its opening
//! price so that a demo left running for days still shows plausible numbers.

use rand::Rng;
use serde::Serialize;

use super::TICKER_PREFIX;

/// Made-up companies and their opening prices.
const SYMBOLS: [(&str, f64); 6] = [
    ("ACME", 182.40),
    ("GLOBEX", 64.15),
    ("HOOLI", 412.00),
    ("INITECH", 23.80),
    ("STARK", 310.60),
    ("UMBRELLA", 97.35),
];

/// Typical relative move per step.
const VOLATILITY: f64 = 0.004;

/// Share of the distance to the opening price (in log terms) recovered per step.
const PULL: f64 = 0.002;

/// One symbol's state.
struct Quote {
    symbol: &'static str,
    open: f64,
    price: f64,
    /// Counts this symbol's updates, so a page can tell that none went missing.
    seq: u64,
}

/// What one update carries, as JSON.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct QuoteData<'a> {
    symbol: &'a str,
    price: f64,
    open: f64,
    change: f64,
    change_percent: f64,
    seq: u64,
    /// Publisher's clock, unix milliseconds.
    t: u64,
    /// Always true: the page labels the data as made up.
    simulated: bool,
}

/// Every symbol's price.
pub(super) struct Ticker {
    quotes: Vec<Quote>,
}

fn cents(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

impl Ticker {
    pub(super) fn new() -> Self {
        Ticker {
            quotes: SYMBOLS
                .iter()
                .map(|&(symbol, open)| Quote {
                    symbol,
                    open,
                    price: open,
                    seq: 0,
                })
                .collect(),
        }
    }

    /// Every symbol's topic.
    pub(super) fn topics(&self) -> Vec<String> {
        self.quotes
            .iter()
            .map(|q| format!("{TICKER_PREFIX}{}", q.symbol))
            .collect()
    }

    /// Moves every price one step: `(topic, JSON data)` per symbol.
    pub(super) fn step(&mut self, rng: &mut impl Rng, now_ms: u64) -> Vec<(String, String)> {
        self.quotes
            .iter_mut()
            .map(|q| {
                let shock: f64 = rng.random_range(-1.0..1.0) * VOLATILITY * 3f64.sqrt();
                let pull = PULL * (q.open / q.price).ln();
                q.price = (q.price * (shock + pull).exp()).max(0.01);
                q.seq += 1;
                let price = cents(q.price);
                let data = QuoteData {
                    symbol: q.symbol,
                    price,
                    open: q.open,
                    change: cents(price - q.open),
                    change_percent: cents((price / q.open - 1.0) * 100.0),
                    seq: q.seq,
                    t: now_ms,
                    simulated: true,
                };
                (
                    format!("{TICKER_PREFIX}{}", q.symbol),
                    serde_json::to_string(&data).unwrap_or_default(),
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn every_symbol_moves_with_a_counted_labelled_update() {
        let mut ticker = Ticker::new();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let first = ticker.step(&mut rng, 1);
        assert_eq!(first.len(), SYMBOLS.len());
        for step in 2..=3 {
            for (topic, data) in ticker.step(&mut rng, step) {
                let v: serde_json::Value = serde_json::from_str(&data).unwrap();
                assert_eq!(
                    topic,
                    format!("{TICKER_PREFIX}{}", v["symbol"].as_str().unwrap())
                );
                assert_eq!(v["seq"], step);
                assert_eq!(v["simulated"], true);
                assert!(v["price"].as_f64().unwrap() > 0.0);
                assert!(v["changePercent"].is_number());
            }
        }
    }

    #[test]
    fn prices_stay_plausible_over_a_long_run() {
        let mut ticker = Ticker::new();
        let mut rng = rand::rngs::StdRng::seed_from_u64(42);
        // About a day of steps at 2.5 steps a second.
        for _ in 0..200_000 {
            ticker.step(&mut rng, 0);
        }
        for q in &ticker.quotes {
            let ratio = q.price / q.open;
            assert!(
                (0.5..2.0).contains(&ratio),
                "{} drifted to {}",
                q.symbol,
                q.price
            );
        }
    }
}
