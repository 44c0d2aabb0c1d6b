//! `ssehub serve`: flags, environment and config file (resolved by `effective.rs`) into a
//! [`ssehub::Config`], first-run key setup, signals (SIGHUP: `reload.rs`), then
//! [`ssehub::start`] (the store opens) and [`ssehub::Started::serve`].

use std::io::{IsTerminal as _, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use std::sync::Arc;

use anyhow::{Context as _, bail};
use ssehub::auth::{AuthConfig, VerifyingKey};
use ssehub::config::{StoreConfig, TlsFiles, parse_duration};
use ssehub::demo::DemoOptions;
use ssehub::relay::simulator::SimulatorOptions;
use ssehub::store::redis::RedisOptions;
use tokio_util::sync::CancellationToken;

use super::banner::{Banner, first_run_help, first_run_token};

/// Arguments of `ssehub serve`; every flag can also come from `SSEHUB_<FLAG>` and, but for
/// `--config`, from the config file's key of the same name (`cli/config_file.rs`).
#[derive(clap::Args, Debug)]
#[command(after_help = PRECEDENCE_HELP)]
pub(crate) struct ServeArgs {
    /// TOML file whose keys are these flags' names without `--` (see ssehub.example.toml).
    #[arg(long, env = "SSEHUB_CONFIG", value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Address to bind.
    #[arg(long, env = "SSEHUB_LISTEN", default_value = ssehub::config::DEFAULT_LISTEN)]
    pub(crate) listen: SocketAddr,
    /// Where the embedded store keeps its files.
    #[arg(long, env = "SSEHUB_DATA_DIR", default_value = "./ssehub-data")]
    pub(crate) data_dir: PathBuf,
    /// History store: `embedded` (in --data-dir, one node), or
    /// `redis://[[user]:password@]host[:port][/db]` (`rediss://` for TLS): one history shared
    /// by every hub pointed at it.
    #[arg(
        long,
        env = "SSEHUB_STORE",
        default_value = "embedded",
        hide_env_values = true
    )]
    pub(crate) store: String,
    /// With a Redis store: keys are `ssehub:{NAMESPACE}:...`, so several hub clusters can
    /// share one Redis.
    #[arg(long, env = "SSEHUB_REDIS_NAMESPACE", default_value = ssehub::store::redis::DEFAULT_NAMESPACE)]
    pub(crate) redis_namespace: String,
    /// Page cache of the embedded store in bytes, the store's largest use of memory.
    #[arg(long, env = "SSEHUB_STORE_CACHE_BYTES", default_value_t = ssehub::store::redb::DEFAULT_CACHE_BYTES)]
    pub(crate) store_cache_bytes: usize,
    /// Start although the write-ahead log is damaged at this byte offset (as the refusal to start
    /// names it): keep the updates before the damage, drop those after it. Use once.
    #[arg(long, env = "SSEHUB_WAL_TRUNCATE_DAMAGED", value_name = "OFFSET")]
    pub(crate) wal_truncate_damaged: Option<u64>,
    /// HS256 secret, or a PEM public key / JWKS file for RS256/ES256 (also MERCURE_PUBLISHER_JWT_KEY).
    ///
    /// A value that looks like a path (starting with /, ./, ../ or ~, or ending in .pem,
    /// .json, .key, .jwk or .jwks) must name a readable file, or the hub does not start; to
    /// use such text as the HMAC secret itself, also pass --publisher-jwt-alg HS256.
    #[arg(long, env = "SSEHUB_PUBLISHER_JWT_KEY", hide_env_values = true)]
    pub(crate) publisher_jwt_key: Option<String>,
    /// Algorithm of the publisher key (HS256, RS256, ES256, ...; also MERCURE_PUBLISHER_JWT_ALG).
    #[arg(long, env = "SSEHUB_PUBLISHER_JWT_ALG")]
    pub(crate) publisher_jwt_alg: Option<String>,
    /// Subscriber key; defaults to the publisher key (also MERCURE_SUBSCRIBER_JWT_KEY).
    ///
    /// Read as --publisher-jwt-key is: a path-shaped value must name a readable file; pass
    /// --subscriber-jwt-alg HS256 to use such text as the HMAC secret itself.
    #[arg(long, env = "SSEHUB_SUBSCRIBER_JWT_KEY", hide_env_values = true)]
    pub(crate) subscriber_jwt_key: Option<String>,
    /// Algorithm of the subscriber key (also MERCURE_SUBSCRIBER_JWT_ALG).
    #[arg(long, env = "SSEHUB_SUBSCRIBER_JWT_ALG")]
    pub(crate) subscriber_jwt_alg: Option<String>,
    /// Trusted issuers of 1.0 tokens (comma-separated); none means `iss` is not checked.
    #[arg(long, env = "SSEHUB_JWT_ISSUER", value_delimiter = ',')]
    pub(crate) jwt_issuer: Vec<String>,
    /// The `aud` 1.0 tokens must carry (default: http(s)://<listen address>/.well-known/mercure).
    ///
    /// The default comes from --listen (https with --tls-cert), never from a request's Host
    /// header, which the client chooses. Set this to the URL clients use when the hub is
    /// behind a proxy, has a DNS name, or listens on 0.0.0.0 or [::].
    #[arg(long, env = "SSEHUB_RESOURCE_IDENTIFIER")]
    pub(crate) resource_identifier: Option<String>,
    /// Allow subscribers without a token (public updates only).
    #[arg(long, env = "SSEHUB_ANONYMOUS")]
    pub(crate) anonymous: bool,
    /// Cookie holding the token for browsers.
    #[arg(
        long,
        env = "SSEHUB_COOKIE_NAME",
        default_value = "mercureAuthorization"
    )]
    pub(crate) cookie_name: String,
    /// Origins allowed to subscribe cross-origin with credentials (comma-separated), or `*` without credentials.
    #[arg(long, env = "SSEHUB_CORS_ORIGINS", value_delimiter = ',')]
    pub(crate) cors_origins: Vec<String>,
    /// Origins allowed to publish with cookie authentication (comma-separated), or `*`.
    #[arg(long, env = "SSEHUB_PUBLISH_ORIGINS", value_delimiter = ',')]
    pub(crate) publish_origins: Vec<String>,
    /// Send a comment after this much silence.
    #[arg(long, env = "SSEHUB_HEARTBEAT", default_value = "40s", value_parser = parse_duration)]
    pub(crate) heartbeat: Duration,
    /// Keep at most this many updates in history.
    #[arg(long, env = "SSEHUB_HISTORY_MAX_EVENTS")]
    pub(crate) history_max_events: Option<u64>,
    /// Drop updates older than this from history.
    #[arg(long, env = "SSEHUB_HISTORY_MAX_AGE", value_parser = parse_duration)]
    pub(crate) history_max_age: Option<Duration>,
    /// Most updates read from history per replay page (pages are also bounded to 1 MiB).
    #[arg(long, env = "SSEHUB_REPLAY_PAGE", default_value_t = 512, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) replay_page: u64,
    /// Publish subscription events and serve the subscriptions API.
    #[arg(long, env = "SSEHUB_SUBSCRIPTIONS")]
    pub(crate) subscriptions: bool,
    /// Feed the demo pages (/demo/ticker, /demo/logs, /demo/online) with simulated data, and
    /// let browsers without a token read the /demo/ topics (only those); implies --subscriptions.
    /// With a shared store, give it to one node only: each would run its own simulation.
    #[arg(long, env = "SSEHUB_DEMO")]
    pub(crate) demo: bool,
    /// PEM certificate chain: serve HTTPS with HTTP/2 (ALPN).
    // The pair is checked in `hub_config`, not by clap's `requires`: one of the two may come
    // from the config file, which clap's first parse does not see.
    #[arg(long, env = "SSEHUB_TLS_CERT")]
    pub(crate) tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, env = "SSEHUB_TLS_KEY")]
    pub(crate) tls_key: Option<PathBuf>,
    /// Connections beyond this are answered 503.
    #[arg(long, env = "SSEHUB_MAX_CONNECTIONS", default_value_t = 19_000)]
    pub(crate) max_connections: usize,
    /// Publish bodies beyond this many bytes are answered 413.
    #[arg(long, env = "SSEHUB_MAX_BODY_BYTES", default_value_t = 1 << 20)]
    pub(crate) max_body_bytes: usize,
    /// Selectors one subscription may name (more: 400).
    #[arg(long, env = "SSEHUB_MAX_SELECTORS", default_value_t = 100)]
    pub(crate) max_selectors: usize,
    /// Bytes a subscriber may fall behind before it is cut off (it resumes from history).
    #[arg(long, env = "SSEHUB_SUBSCRIBER_QUEUE_BYTES", default_value_t = 4 << 20)]
    pub(crate) subscriber_queue_bytes: usize,
    /// Time open streams get to end after SIGTERM/SIGINT.
    #[arg(long, env = "SSEHUB_SHUTDOWN_GRACE", default_value = "10s", value_parser = parse_duration)]
    pub(crate) shutdown_grace: Duration,
    /// The relay's OpenAI-compatible upstream base URL (ending in /v1), or `simulate`.
    #[arg(long, env = "SSEHUB_UPSTREAM", default_value = "simulate")]
    pub(crate) upstream: String,
    /// Key sent to the upstream (never to browsers).
    #[arg(long, env = "SSEHUB_UPSTREAM_API_KEY", hide_env_values = true)]
    pub(crate) upstream_api_key: Option<String>,
    /// The API the upstream speaks: chat (Chat Completions; Responses and Messages requests are
    /// translated), responses or messages (requests through that API pass through unchanged).
    #[arg(long, env = "SSEHUB_UPSTREAM_API", default_value = "chat", value_parser = ["chat", "responses", "messages"])]
    pub(crate) upstream_api: String,
    /// Keys callers of /v1/... must present as Authorization: Bearer (comma-separated; none = open).
    #[arg(
        long,
        env = "SSEHUB_RELAY_API_KEYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub(crate) relay_api_keys: Vec<String>,
    /// Relay answers generated at once, all callers together (beyond: 429 with Retry-After).
    #[arg(long, env = "SSEHUB_RELAY_MAX_STREAMS", default_value_t = ssehub::config::DEFAULT_RELAY_MAX_STREAMS)]
    pub(crate) relay_max_streams: usize,
    /// Relay answers one --relay-api-keys key may have generated at once (beyond: 429).
    #[arg(long, env = "SSEHUB_RELAY_MAX_STREAMS_PER_KEY", default_value_t = ssehub::config::DEFAULT_RELAY_MAX_STREAMS_PER_KEY)]
    pub(crate) relay_max_streams_per_key: usize,
    /// Drop relay answers (topics under /v1/streams/) older than this from history; `off`
    /// leaves them to the general retention (--history-max-age, --history-max-events).
    #[arg(long, env = "SSEHUB_RELAY_HISTORY_MAX_AGE", default_value = "1h", value_parser = parse_optional_duration)]
    pub(crate) relay_history_max_age: MaybeDuration,
    /// Pace of the built-in simulator, in tokens per second.
    #[arg(
        long,
        env = "SSEHUB_SIMULATOR_TOKENS_PER_SECOND",
        default_value_t = 30.0
    )]
    pub(crate) simulator_tokens_per_second: f64,
    /// The simulator's delay before its first token.
    #[arg(long, env = "SSEHUB_SIMULATOR_FIRST_TOKEN_DELAY", default_value = "300ms", value_parser = parse_duration)]
    pub(crate) simulator_first_token_delay: Duration,
    /// Serve Durable Streams (/v1/stream/*) without tokens: local development, conformance runs.
    #[arg(long, env = "SSEHUB_ANONYMOUS_STREAMS")]
    pub(crate) anonymous_streams: bool,
    /// How long a Durable Streams long-poll waits before answering 204 (also the SSE keep-alive).
    #[arg(long, env = "SSEHUB_STREAMS_LONG_POLL_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub(crate) streams_long_poll_timeout: Duration,
    /// A Durable Streams SSE response ends after this long; clients resume from their offset.
    #[arg(long, env = "SSEHUB_STREAMS_SSE_MAX_DURATION", default_value = "60s", value_parser = parse_duration)]
    pub(crate) streams_sse_max_duration: Duration,
    /// Durable Streams appends beyond this many bytes are answered 413.
    #[arg(long, env = "SSEHUB_STREAMS_MAX_APPEND_BYTES", default_value_t = 16 << 20)]
    pub(crate) streams_max_append_bytes: usize,
    /// With a shared store: how long this node's lease lasts without renewal (renewed every
    /// quarter of it; at least 40ms). Other nodes end the answers and subscriptions of a node
    /// that stopped this long (and a quarter) after it stopped.
    #[arg(long, env = "SSEHUB_NODE_LEASE", default_value = "4s", value_parser = parse_duration)]
    pub(crate) node_lease: Duration,
    /// Log format: `text` or `json`.
    #[arg(long, env = "SSEHUB_LOG_FORMAT", default_value = "text")]
    pub(crate) log_format: String,
    /// Send OpenTelemetry traces over OTLP/HTTP to this collector (e.g. http://127.0.0.1:4318;
    /// /v1/traces is added): a span per publish and per relay answer. Off by default; the
    /// standard OTEL_EXPORTER_OTLP_ENDPOINT and OTEL_SERVICE_NAME are honoured too.
    #[arg(long, env = "SSEHUB_OTLP_ENDPOINT", value_name = "URL")]
    pub(crate) otlp_endpoint: Option<String>,
}

/// The end of `ssehub serve --help`.
const PRECEDENCE_HELP: &str = "\
Every flag can also be set by its environment variable or by the key of the same name (without \
`--`) in the --config file. Precedence: flag > environment (SSEHUB_*, then MERCURE_PUBLISHER_JWT_KEY, \
MERCURE_SUBSCRIBER_JWT_KEY, MERCURE_JWT_KEY and their _ALG forms) > config file > default. \
`ssehub config print` shows the result and where each value came from; SIGHUP re-reads the file \
and applies what can change live (keys, CORS and publish origins, limits).";

/// A duration or `off`; its own type because clap reads an `Option` field as "flag absent".
#[derive(Clone, Copy, Debug)]
pub(crate) struct MaybeDuration(pub(crate) Option<Duration>);

fn parse_optional_duration(s: &str) -> Result<MaybeDuration, ssehub::config::DurationError> {
    if s.trim().eq_ignore_ascii_case("off") {
        return Ok(MaybeDuration(None));
    }
    parse_duration(s).map(|d| MaybeDuration(Some(d)))
}

fn init_logging(format: &str, otlp_endpoint: Option<&str>) -> anyhow::Result<super::otlp::Traces> {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;

    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
        // Spans made for trace export are not log lines (and cost nothing when not exported).
        .add_directive(format!("{}=off", ssehub::http::trace::TARGET).parse()?);
    // Colour only for a person at a terminal: escape codes in a file or a log collector are noise.
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    let fmt = match format {
        "text" => fmt.boxed(),
        "json" => fmt.json().boxed(),
        other => bail!("unknown --log-format {other:?}: use text or json"),
    };
    let (traces_layer, traces) = super::otlp::layer(otlp_endpoint)?;
    tracing_subscriber::registry()
        .with(fmt.with_filter(filter))
        .with(traces_layer)
        .try_init()?;
    traces.announce(otlp_endpoint);
    Ok(traces)
}

/// Runs the hub with `argv` (the words from `serve` on) resolved against the environment and
/// the config file.
pub(crate) async fn run(argv: Vec<std::ffi::OsString>) -> anyhow::Result<ExitCode> {
    // Before anything starts (not even the logger): a refused file stops here.
    let resolved = Arc::new(super::effective::resolve(&argv)?);
    super::config_cmd::check(&resolved)?;
    let args = &resolved.args;
    let traces = init_logging(&args.log_format, args.otlp_endpoint.as_deref())?;
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating the data directory {}", args.data_dir.display()))?;
    let (publisher_key, generated) = match args.publisher_jwt_key.clone() {
        Some(k) => (k, false),
        None => (first_run_key(&args.data_dir)?, true),
    };
    let mut config = hub_config(args, publisher_key.clone())?;
    // The console offers the printed token to a browser on this machine (never a given key's).
    let first_token = generated
        .then(|| first_run_token(&publisher_key))
        .transpose()?;
    config.console_token.clone_from(&first_token);
    if generated && matches!(config.store, StoreConfig::Redis(_)) {
        tracing::warn!(
            "no --publisher-jwt-key given: this node made its own key, so tokens minted for it are refused by the other nodes on the shared store; give every node the same key"
        );
    }
    let listener = ssehub::http::server::bind(args.listen)
        .with_context(|| format!("binding {}", args.listen))?;
    let shutdown = CancellationToken::new();
    tokio::spawn(signal_shutdown(shutdown.clone()));
    // Before the hub says it listens: a SIGHUP from then on reloads, never kills it.
    #[cfg(unix)]
    let hup = super::reload::listen_for_sighup();
    // Opens the store (and says where it listens) before anything tells a user to connect.
    let started = ssehub::start(listener, config, shutdown.clone()).await?;
    #[cfg(unix)]
    {
        let reload =
            super::reload::on_sighup(hup, argv, resolved.clone(), started.reloader(), shutdown);
        tokio::spawn(reload);
    }
    let base = started.url();
    let banner = Banner {
        base: &base,
        demo: args.demo,
        upstream: Some(args.upstream.as_str()).filter(|u| *u != "simulate"),
    };
    let mut text = banner.text();
    if let Some(token) = &first_token {
        let key_file = args.data_dir.join(KEY_FILE);
        text = format!("{text}\n{}", first_run_help(token, &base, &key_file));
    }
    // One write, and a closed standard output (a supervisor that stopped reading) must not
    // stop the hub the way `print!` would, by panicking.
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    started.serve().await.context("serving")?;
    traces.shutdown().await;
    tracing::info!("ssehub stopped");
    Ok(ExitCode::SUCCESS)
}

/// The hub's configuration from resolved arguments and the publisher key (given, or generated
/// on the first run); reads key files but starts nothing, so `config check` and a reload use it.
pub(crate) fn hub_config(
    args: &ServeArgs,
    publisher_key: String,
) -> anyhow::Result<ssehub::Config> {
    let store = store_config(args)?;
    let auth = build_auth(
        args,
        publisher_key,
        args.publisher_jwt_alg.clone(),
        args.subscriber_jwt_key.clone(),
        args.subscriber_jwt_alg.clone(),
    )?;
    let mut config = ssehub::Config::new(args.data_dir.clone(), auth);
    config.store = store;
    config.store_cache_bytes = args.store_cache_bytes;
    config.wal_truncate_damaged = args.wal_truncate_damaged;
    config.cors_origins = args.cors_origins.clone();
    config.heartbeat = args.heartbeat;
    config.history_max_events = args.history_max_events;
    config.history_max_age = args.history_max_age;
    config.replay_page = usize::try_from(args.replay_page).unwrap_or(usize::MAX);
    config.subscriptions = args.subscriptions;
    if args.demo {
        config.enable_demo(DemoOptions::default());
    }
    config.tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
        }),
        (None, None) => None,
        _ => bail!("--tls-cert and --tls-key go together: give both or neither"),
    };
    config.max_connections = args.max_connections;
    config.max_body_bytes = args.max_body_bytes;
    config.max_selectors = args.max_selectors;
    config.subscriber_queue_bytes = args.subscriber_queue_bytes;
    config.shutdown_grace = args.shutdown_grace;
    config.upstream = Some(args.upstream.clone()).filter(|u| u != "simulate");
    config.upstream_api_key = args.upstream_api_key.clone();
    config.upstream_api = ssehub::relay::Api::from_name(Some(&args.upstream_api));
    config.relay_api_keys = args
        .relay_api_keys
        .iter()
        .map(|k| k.trim().to_owned())
        .filter(|k| !k.is_empty())
        .collect();
    if args.relay_max_streams == 0 || args.relay_max_streams_per_key == 0 {
        bail!(
            "--relay-max-streams and --relay-max-streams-per-key must be at least 1 (0 would refuse every answer)"
        );
    }
    config.relay_max_streams = args.relay_max_streams;
    config.relay_max_streams_per_key = args.relay_max_streams_per_key;
    config.relay_history_max_age = args.relay_history_max_age.0;
    config.anonymous_streams = args.anonymous_streams;
    config.streams_long_poll_timeout = args.streams_long_poll_timeout;
    config.streams_sse_max_duration = args.streams_sse_max_duration;
    config.streams_max_append_bytes = args.streams_max_append_bytes;
    config.node_lease = args.node_lease;
    config.simulator = SimulatorOptions {
        tokens_per_second: args.simulator_tokens_per_second,
        first_token_delay: args.simulator_first_token_delay,
    };
    let rate = config.simulator.tokens_per_second;
    if !rate.is_finite() || rate <= 0.0 {
        bail!("--simulator-tokens-per-second must be a positive number");
    }
    if !matches!(args.log_format.as_str(), "text" | "json") {
        bail!(
            "unknown --log-format {:?}: use text or json",
            args.log_format
        );
    }
    Ok(config)
}

/// `--store` as a [`StoreConfig`].
fn store_config(args: &ServeArgs) -> anyhow::Result<StoreConfig> {
    let store = args.store.trim();
    if store == "embedded" {
        return Ok(StoreConfig::Embedded);
    }
    if store.starts_with("redis://") || store.starts_with("rediss://") {
        let mut options = RedisOptions::new(store);
        options.namespace.clone_from(&args.redis_namespace);
        return Ok(StoreConfig::Redis(options));
    }
    // Not echoed: a mistyped Redis URL may hold a password.
    bail!(
        "unsupported --store value: use `embedded`, or a redis://host:port/db (rediss:// for TLS) URL"
    )
}

/// The name of the file that keeps a generated publisher key between runs.
const KEY_FILE: &str = "publisher-jwt-key";

/// Reads the key generated on an earlier run, or makes and stores a new random one.
pub(crate) fn first_run_key(dir: &Path) -> anyhow::Result<String> {
    let path = dir.join(KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(k) if !k.trim().is_empty() => return Ok(k.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    }
    let bytes: [u8; 32] = rand::random();
    let key: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    write_private(&path, &key)
        .with_context(|| format!("storing the generated key in {}", path.display()))?;
    Ok(key)
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

async fn signal_shutdown(token: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::terminate(),
        ) {
            Ok(s) => s,
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for SIGTERM; only Ctrl-C stops the hub gracefully");
                let _ = ctrl_c.await;
                token.cancel();
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down: ending streams so clients reconnect elsewhere");
    token.cancel();
}

/// Authorization settings from the flags (with Mercure's variable names as fallbacks).
fn build_auth(
    args: &ServeArgs,
    publisher_key: String,
    publisher_alg: Option<String>,
    subscriber_key: Option<String>,
    subscriber_alg: Option<String>,
) -> anyhow::Result<AuthConfig> {
    let publisher = VerifyingKey::from_config(&publisher_key, publisher_alg.as_deref())
        .context("loading the publisher key (--publisher-jwt-key, --publisher-jwt-alg)")?;
    let mut auth = AuthConfig::new(publisher);
    if let Some(key) = subscriber_key {
        let alg = subscriber_alg.or(publisher_alg);
        let subscriber = VerifyingKey::from_config(&key, alg.as_deref())
            .context("loading the subscriber key (--subscriber-jwt-key, --subscriber-jwt-alg)")?;
        auth.subscriber_key = Some(Arc::new(subscriber));
    }
    auth.issuers = args
        .jwt_issuer
        .iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    auth.resource_identifier = args.resource_identifier.clone();
    auth.cookie_name = args.cookie_name.clone();
    auth.anonymous = args.anonymous;
    auth.publish_origins = args
        .publish_origins
        .iter()
        .map(|s| s.trim().to_owned())
        .collect();
    Ok(auth)
}
