//! Hub configuration, independent of how it was given (flags, environment, tests).
//!
//! `cli/serve.rs` turns flags, `SSEHUB_*`/`MERCURE_*` variables and the `--config` file into
//! a [`Config`]; tests build one directly with [`Config::for_tests`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::auth::AuthConfig;
use crate::demo::DemoOptions;
use crate::relay::simulator::SimulatorOptions;
use crate::store::redis::RedisOptions;

/// Everything `run` needs to serve a hub.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where the embedded store keeps its files (and `ssehub serve` its generated key).
    pub data_dir: PathBuf,
    /// Which history store to open.
    pub store: StoreConfig,
    /// The embedded store's page cache in bytes, its largest use of memory.
    pub store_cache_bytes: usize,
    /// Start although the write-ahead log is damaged at this byte offset, dropping the updates
    /// after it (see [`crate::store::redb::RedbOptions::truncate_damaged_log_at`]).
    pub wal_truncate_damaged: Option<u64>,
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
    /// Most updates one replay page reads from history (the store also bounds a page in bytes).
    pub replay_page: usize,
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
    /// The API the upstream speaks (`--upstream-api`).
    pub upstream_api: crate::relay::Api,
    /// Keys that callers of `/v1/...` must present; empty means open (local use).
    pub relay_api_keys: Vec<String>,
    /// Relay generations running at once, all callers together; beyond it callers get 429.
    pub relay_max_streams: usize,
    /// Relay generations one key may run at once (with `relay_api_keys`); beyond it, 429.
    pub relay_max_streams_per_key: usize,
    /// How long relay answers stay in history (`None`: as long as the general retention keeps
    /// them); kept apart so answers cannot crowd out Mercure history or fill the disk.
    pub relay_history_max_age: Option<Duration>,
    /// Pace of the built-in simulator (the default upstream).
    pub simulator: SimulatorOptions,
    /// How often history is pruned to the retention policy.
    pub prune_interval: Duration,
    /// Serve `/v1/stream/*` (Durable Streams) without tokens: local development, conformance.
    pub anonymous_streams: bool,
    /// How long a Durable Streams long-poll waits for data before answering 204; also the
    /// silence after which an SSE reader gets a keep-alive control event.
    pub streams_long_poll_timeout: Duration,
    /// A Durable Streams SSE response ends after this long (at a quiet moment), so clients
    /// reconnect and CDNs can collapse them.
    pub streams_sse_max_duration: Duration,
    /// Durable Streams appends (and initial `PUT` bodies) beyond this are answered 413.
    pub streams_max_append_bytes: usize,
    /// How long this node's lease in the store lasts without renewal (it renews every quarter
    /// of it): with a shared store, the other nodes end the answers and subscriptions of a
    /// node that stopped at most this long, and a quarter, after it stopped.
    pub node_lease: Duration,
    /// `--demo`: simulated producers for the demo pages run ([`Config::enable_demo`]).
    pub demo: Option<DemoOptions>,
    /// The token `ssehub serve` printed at first run, which the console offers to fill in when
    /// it is opened on this machine (`GET /console/dev-token`, loopback only); `None`: never.
    pub console_token: Option<String>,
}

/// Which history store [`crate::run`] opens.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub enum StoreConfig {
    /// The embedded store in [`Config::data_dir`]: one node.
    #[default]
    Embedded,
    /// One history in Redis, shared by every hub pointed at it.
    Redis(RedisOptions),
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

/// Default of [`Config::relay_max_streams`]: generously above what one hub serves to people,
/// far below what a flood of abandoned requests would start.
pub const DEFAULT_RELAY_MAX_STREAMS: usize = 256;

/// Default of [`Config::relay_max_streams_per_key`]: a few tabs and agents per key.
pub const DEFAULT_RELAY_MAX_STREAMS_PER_KEY: usize = 16;

/// Default of [`Config::relay_history_max_age`]: long enough to reload, resume or watch an
/// answer, short enough that abandoned answers do not pile up.
pub const DEFAULT_RELAY_HISTORY_MAX_AGE: Duration = Duration::from_secs(3600);

impl Config {
    /// Defaults for a hub whose store lives in `data_dir`, with the given authorization.
    pub fn new(data_dir: PathBuf, auth: AuthConfig) -> Self {
        Config {
            data_dir,
            store: StoreConfig::Embedded,
            store_cache_bytes: crate::store::redb::DEFAULT_CACHE_BYTES,
            wal_truncate_damaged: None,
            auth,
            cors_origins: Vec::new(),
            heartbeat: Duration::from_secs(40),
            history_max_events: None,
            history_max_age: None,
            replay_page: 512,
            subscriptions: false,
            tls: None,
            max_connections: 19_000,
            max_body_bytes: 1 << 20,
            max_selectors: 100,
            subscriber_queue_bytes: 4 << 20,
            shutdown_grace: Duration::from_secs(10),
            upstream: None,
            upstream_api_key: None,
            upstream_api: crate::relay::Api::Chat,
            relay_api_keys: Vec::new(),
            relay_max_streams: DEFAULT_RELAY_MAX_STREAMS,
            relay_max_streams_per_key: DEFAULT_RELAY_MAX_STREAMS_PER_KEY,
            relay_history_max_age: Some(DEFAULT_RELAY_HISTORY_MAX_AGE),
            simulator: SimulatorOptions::default(),
            prune_interval: Duration::from_secs(5),
            anonymous_streams: false,
            streams_long_poll_timeout: Duration::from_secs(30),
            streams_sse_max_duration: Duration::from_secs(60),
            streams_max_append_bytes: 16 << 20,
            node_lease: crate::hub::DEFAULT_NODE_LEASE,
            demo: None,
            console_token: None,
        }
    }

    /// Turns on the demo pages' data (`--demo`): the simulated producers, the demo topics open
    /// to browsers without a token ([`crate::demo::open_topics`]), and subscription events,
    /// which the online counter reads.
    pub fn enable_demo(&mut self, options: DemoOptions) {
        self.demo = Some(options);
        self.auth.open_topics = crate::demo::open_topics();
        self.subscriptions = true;
    }
}

/// The resource identifier 1.0 tokens must name when none is configured: this hub's
/// `/.well-known/mercure` URL at the address it listens on. It comes from configuration
/// only: a request's `Host` is chosen by the client, so deriving the audience from it would
/// let a token minted for any other hub pass here.
pub fn default_resource_identifier(listening: SocketAddr, tls: bool) -> String {
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://{listening}{}", crate::topic::MERCURE_PATH)
}

/// The default listen address as a socket address.
pub fn default_listen() -> SocketAddr {
    DEFAULT_LISTEN.parse().expect("constant address parses")
}

/// Why a duration could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DurationError {
    /// The text is empty.
    #[error("empty duration (write it like 40s, 5m, 24h)")]
    Empty,
    /// A number without a unit, or an unknown unit.
    #[error("invalid duration {0:?} (write it like 40s, 5m, 24h; units: ms, s, m, h, d)")]
    Invalid(String),
    /// The value does not fit.
    #[error("duration {0:?} is too large")]
    Overflow(String),
}

/// Parses durations like `40s`, `5m`, `24h`, `1h30m`, `500ms`, `7d`; a bare
/// number is seconds.
///
/// # Errors
///
/// [`DurationError`] for empty, malformed or overflowing input.
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    let s = s.trim();
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| DurationError::Overflow(s.to_owned()));
    }
    let invalid = || DurationError::Invalid(s.to_owned());
    let overflow = || DurationError::Overflow(s.to_owned());
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(invalid());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| overflow())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let part = match &rest[..unit_len] {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.checked_mul(60).ok_or_else(overflow)?),
            "h" => Duration::from_secs(n.checked_mul(3600).ok_or_else(overflow)?),
            "d" => Duration::from_secs(n.checked_mul(86_400).ok_or_else(overflow)?),
            _ => return Err(invalid()),
        };
        total = total.checked_add(part).ok_or_else(overflow)?;
        rest = &rest[unit_len..];
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_resource_identifier_is_the_listen_address() {
        assert_eq!(
            default_resource_identifier(default_listen(), false),
            "http://127.0.0.1:8080/.well-known/mercure"
        );
        assert_eq!(
            default_resource_identifier("[::1]:8443".parse().unwrap(), true),
            "https://[::1]:8443/.well-known/mercure"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("40s").unwrap(), Duration::from_secs(40));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("24h").unwrap(), Duration::from_secs(86_400));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(
            parse_duration("7d").unwrap(),
            Duration::from_secs(7 * 86_400)
        );
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration(""), Err(DurationError::Empty));
        for bad in ["5x", "m", "1.5h", "-3s", "5 m"] {
            assert!(
                matches!(parse_duration(bad), Err(DurationError::Invalid(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            parse_duration("99999999999999999999d"),
            Err(DurationError::Overflow(_))
        ));
    }
}
