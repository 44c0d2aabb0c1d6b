//! Hub configuration, independent of how it was given (flags, environment, tests).
//!
//! `cli/serve.rs` turns flags and `SSEHUB_*`/`MERCURE_*` variables into a [`Config`];
//! tests build one directly with [`Config::for_tests`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::auth::AuthConfig;
use crate::relay::simulator::SimulatorOptions;

/// Everything `run` needs to serve a hub.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where the embedded store keeps its files.
    pub data_dir: PathBuf,
    /// Authorization keys and policies for publishers and subscribers.
    pub auth: AuthConfig,
    /// Origins allowed to make credentialed cross-origin requests; `["*"]` allows any origin without credentials.
    pub cors_origins: Vec<String>,
    /// A comment is sent on a stream after this much silence so proxies keep it open.
    pub heartbeat: Duration,
    /// History retention by count.
    pub history_max_events: Option<u64>,
    /// History retention by age.
    pub history_max_age: Option<Duration>,
    /// Publish subscription events and serve the subscriptions API.
    pub subscriptions: bool,
    /// TLS certificate chain and key (PEM); HTTPS with HTTP/2 by ALPN when set.
    pub tls: Option<TlsFiles>,
    /// Connections beyond this are answered 503.
    pub max_connections: usize,
    /// Publish bodies beyond this are answered 413.
    pub max_body_bytes: usize,
    /// A subscription naming more selectors than this is answered 400.
    pub max_selectors: usize,
    /// Per-subscriber queue bound in bytes; a subscriber past it is cut off and resumes from history.
    pub subscriber_queue_bytes: usize,
    /// How long open streams and requests get to finish after shutdown begins.
    pub shutdown_grace: Duration,
    /// The relay's upstream: `None` runs the built-in simulator.
    pub upstream: Option<String>,
    /// Key sent to the upstream; never sent to browsers.
    pub upstream_api_key: Option<String>,
    /// Keys that callers of `/v1/...` must present; empty means open (local use).
    pub relay_api_keys: Vec<String>,
    /// Pace of the built-in simulator (the default upstream).
    pub simulator: SimulatorOptions,
    /// How often history is pruned to the retention policy.
    pub prune_interval: Duration,
}

/// Paths of a PEM certificate chain and private key.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// Certificate chain, leaf first.
    pub cert: PathBuf,
    /// Private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Default listen address of `ssehub serve`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

impl Config {
    /// Defaults for a hub whose store lives in `data_dir`, with the given authorization.
    pub fn new(data_dir: PathBuf, auth: AuthConfig) -> Self {
        Config {
            data_dir,
            auth,
            cors_origins: Vec::new(),
            heartbeat: Duration::from_secs(40),
            history_max_events: None,
            history_max_age: None,
            subscriptions: false,
            tls: None,
            max_connections: 19_000,
            max_body_bytes: 1 << 20,
            max_selectors: 100,
            subscriber_queue_bytes: 4 << 20,
            shutdown_grace: Duration::from_secs(10),
            upstream: None,
            upstream_api_key: None,
            relay_api_keys: Vec::new(),
            simulator: SimulatorOptions::default(),
            prune_interval: Duration::from_secs(5),
        }
    }
}

/// The default listen address as a socket address.
pub fn default_listen() -> SocketAddr {
    DEFAULT_LISTEN.parse().expect("constant address parses")
}

/// Parses durations written like `40s`, `5m`, `24h`, `250ms`, `2d`, or a bare number of seconds.
///
/// # Errors
/// Returns a message naming the accepted units when the text is not such a duration.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid duration {text:?}: expected a number followed by ms, s, m, h or d (e.g. 40s)"))?;
    let secs = |m: u64| n.checked_mul(m).map(Duration::from_secs);
    let d = match unit {
        "" | "s" => secs(1),
        "ms" => Some(Duration::from_millis(n)),
        "m" => secs(60),
        "h" => secs(3600),
        "d" => secs(86_400),
        _ => None,
    };
    d.ok_or_else(|| format!("invalid duration {text:?}: expected a number followed by ms, s, m, h or d (e.g. 40s)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("40s"), Ok(Duration::from_secs(40)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
    }

    #[test]
    fn bad_durations_say_what_is_accepted() {
        for bad in ["", "s", "5 weeks", "1y", "-3s", "99999999999999999999s"] {
            let err = parse_duration(bad).unwrap_err();
            assert!(err.contains("ms, s, m, h or d"), "{bad}: {err}");
        }
    }
}
