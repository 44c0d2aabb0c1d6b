//! ssehub: a Server-Sent Events hub that speaks the Mercure protocol, keeps a durable
//! history, and relays OpenAI-compatible completions as resumable streams.
//!
//! Modules, from the bottom up (imports only point down):
//! - [`update`]: the update record every layer passes around, its id and clock.
//! - [`topic`]: topic selectors (exact, URI templates, URL patterns), their cache, and the
//!   topic space only the hub writes. A leaf: auth, hub, relay and http all use it.
//! - [`store`]: durable history behind the [`store::Store`] trait: embedded (`redb`, one node)
//!   or Redis (one history shared by several nodes, each delivering it live).
//! - [`auth`] (-> topic): JWS verification, both Mercure claim formats, where tokens come from.
//! - [`hub`] (-> topic, store): publish, subscribe, replay-then-live, fan-out with bounded
//!   queues, presence, and which nodes sharing the store are alive (leases); private parts
//!   behind a few re-exported names.
//! - [`relay`] (-> hub): OpenAI-compatible completions recorded as hub topics: resumable,
//!   watchable, cancellable, from any node sharing the store; also read by offset as Durable
//!   Streams (`relay::ds_view`, served at `/v1/stream/__relay/{id}`); `relay::front` translates
//!   the Responses and Messages APIs to and from a Chat Completions upstream (or passes them
//!   through).
//! - [`streams`] (leaf beside `store`): the Durable Streams protocol's store and live tail:
//!   byte streams in their own redb file (`streams.redb`), offsets, producers, forks, expiry.
//! - [`demo`] (-> hub, auth): `--demo`'s simulated producers and the topics it opens.
//! - [`http`] (-> everything below): the only layer that speaks HTTP: routes, errors,
//!   connections, TLS, shutdown, and its own HTTP/1.1 writer for event streams (an idle stream
//!   holds no hyper buffers); the spans it makes for OpenTelemetry (`http::trace`), which the
//!   binary exports only with `--otlp-endpoint`.
//! - [`config`] and [`run`]: the glue that configures and starts all of the above;
//!   [`reload`]: what a running hub changes without a restart (keys, origins, limits), swapped
//!   in where requests read them (`ArcSwap`, atomics), for `ssehub serve`'s SIGHUP.
//!
//! ```text
//!  POST /.well-known/mercure ─> auth ─> hub::publish ─> Store::append (log fsync, group commit) ─> 200 id
//!                                                             │ feed
//!                                                             ▼
//!  GET /.well-known/mercure ─> auth ─> hub::subscribe ─> replay ─> join fan-out ─> SSE bytes
//!
//!  PUT/POST /v1/stream/{path} ─> auth ─> streams writer (group commit, fsync) ─> 201/204 offset
//!  GET /v1/stream/{path}      ─> auth ─> streams read (bounded chunk) ─> body, long-poll, SSE
//!  GET /v1/stream/__relay/{id} ─> relay owner / JWT ─> Store::read_after (topic /v1/streams/{id}) ─> same
//! ```
//!
//! Key decisions:
//! - A publish is acknowledged only once durable, and live delivery is driven by the store's
//!   feed, so what subscribers see is always what history holds: replay and live cannot
//!   disagree, and a shared store (several nodes) needs no second delivery path.
//! - Each update is encoded once; its `Bytes` are shared by every subscriber.
//! - What every idle connection holds is kept small (about 3.5 KiB): the HTTP/1.1 stream path
//!   keeps no read or write buffer, the per-subscriber queue allocates nothing while empty.
//! - A slow subscriber is never waited for: past its queue bound it is cut off and resumes
//!   from history with `Last-Event-ID`, so memory stays bounded and nothing is lost.
//! - [`run`] takes a bound listener and a cancellation token, so tests run real servers on
//!   ephemeral ports and shut them down deterministically. It is [`start`] (open the store,
//!   build the routes) then [`Started::serve`], so that nothing says "listening" before the
//!   history is open and checked.

pub mod auth;
pub mod config;
pub mod demo;
pub mod http;
pub mod hub;
pub mod relay;
pub mod reload;
pub mod store;
pub mod streams;
pub mod topic;
pub mod update;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::Config;
pub use reload::Reloader;

/// Why the hub could not start or stopped abnormally. Each variant names the part that failed
/// and leaves the details to its source, so that `{:#}` prints each context once.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The history store could not be opened or read.
    #[error("history store")]
    Store(#[from] store::StoreError),
    /// TLS material could not be loaded.
    #[error("tls")]
    Tls(#[from] http::server::TlsError),
    /// The listener failed.
    #[error("listener")]
    Io(#[from] std::io::Error),
    /// The Durable Streams store could not be opened.
    #[error("stream store: {0}")]
    Streams(#[from] streams::StreamError),
}

/// Serves a hub on `listener` until `shutdown` fires, then drains within the grace period:
/// [`start`], then [`Started::serve`].
///
/// # Errors
/// Fails when the store, keys or TLS files are unusable (Redis unreachable at start
/// included), or the listener breaks.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    start(listener, config, shutdown).await?.serve().await
}

/// A hub whose store is open and whose routes are built, about to serve: see [`start`].
pub struct Started {
    /// Bound by the caller; connections wait in its backlog until [`Started::serve`].
    listener: TcpListener,
    /// Where the hub can be reached, for the log line and the caller's messages.
    url: String,
    /// The routes.
    app: axum::Router,
    /// TLS, the connection cap and the grace period.
    serve_options: http::server::ServeOptions,
    /// Ends serving, the hub's tasks and the pruner.
    shutdown: CancellationToken,
    /// Shared with the hub, counted by the server too.
    metrics: Arc<hub::Metrics>,
    /// Tracks the hub's and the relay's tasks, waited for after serving.
    tracker: TaskTracker,
    /// Waited for before the store closes, so that no prune races the close.
    pruner: tokio::task::JoinHandle<()>,
    /// Closed last, once nothing appends any more.
    store: Arc<dyn store::Store>,
    /// The Durable Streams store, closed with the history store.
    streams: streams::Streams,
    /// Swaps the live settings while serving (SIGHUP in `ssehub serve`).
    reloader: Reloader,
}

impl std::fmt::Debug for Started {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Started")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// Opens (and checks) the store in `config.data_dir`, loads TLS material and builds the hub on
/// `listener`, then logs where it listens. Nothing is accepted before [`Started::serve`].
///
/// # Errors
/// Fails when the store, keys or TLS files are unusable.
pub async fn start(
    listener: TcpListener,
    mut config: Config,
    shutdown: CancellationToken,
) -> Result<Started, RunError> {
    let tls = match &config.tls {
        Some(files) => Some(http::server::load_tls(&files.cert, &files.key)?),
        None => None,
    };
    if config.auth.resource_identifier.is_none() {
        let listening = listener.local_addr()?;
        let derived = config::default_resource_identifier(listening, tls.is_some());
        if listening.ip().is_unspecified() {
            tracing::warn!(
                resource_identifier = %derived,
                "listening on every address: 1.0 tokens must name {derived} as their aud; set --resource-identifier to the URL clients use"
            );
        }
        config.auth.resource_identifier = Some(derived);
    }
    let selectors = config.auth.selector_cache.clone();
    let auth = Arc::new(auth::Authorizer::new(config.auth.clone()));
    let store: Arc<dyn store::Store> = match &config.store {
        config::StoreConfig::Embedded => {
            let options = store::redb::RedbOptions {
                cache_bytes: config.store_cache_bytes,
                truncate_damaged_log_at: config.wal_truncate_damaged,
                ..Default::default()
            };
            let dir = config.data_dir.clone();
            // Opening verifies the file and may replay the log: blocking work of its own.
            let opened =
                tokio::task::spawn_blocking(move || store::redb::RedbStore::open(&dir, options))
                    .await
                    .map_err(|e| {
                        store::StoreError::backend("history store open task failed", e)
                    })??;
            Arc::new(opened)
        }
        config::StoreConfig::Redis(options) => {
            Arc::new(store::redis::RedisStore::open(options.clone()).await?)
        }
    };
    let streams = streams::Streams::open(
        &config.data_dir,
        streams::StreamsOptions::default(),
        shutdown.clone(),
    )?;
    let tracker = TaskTracker::new();
    let retention = store::Retention {
        max_events: config.history_max_events,
        max_age: config.history_max_age,
        prefix_max_age: config
            .relay_history_max_age
            .map(|max_age| store::PrefixAge {
                prefix: topic::RELAY_STREAMS.to_owned(),
                max_age,
            }),
    };
    let pruner = store::spawn_pruner(
        store.clone(),
        retention.clone(),
        config.prune_interval,
        shutdown.clone(),
    );
    let metrics = Arc::new(hub::Metrics::default());
    let options = hub::HubOptions {
        heartbeat: config.heartbeat,
        limits: hub::QueueLimits {
            queue_bytes: config.subscriber_queue_bytes,
            queue_events: hub::HubOptions::default().limits.queue_events,
        },
        subscriptions: config.subscriptions,
        replay_page: config.replay_page,
        retention,
        node_lease: config.node_lease,
    };
    let hub = hub::Hub::start(
        store.clone(),
        options,
        metrics.clone(),
        shutdown.clone(),
        &tracker,
    )
    .await?;
    if let Some(demo) = &config.demo {
        demo::spawn(hub.clone(), demo.clone(), shutdown.clone(), &tracker);
    }
    let addr: SocketAddr = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let url = format!("{scheme}://{addr}");
    let connections = http::server::ConnectionCap::new(config.max_connections);
    let serve_options = http::server::ServeOptions {
        tls,
        max_connections: connections.clone(),
        grace: config.shutdown_grace,
    };
    let upstream = relay::upstream::Upstream::from_config(
        config.upstream.as_deref(),
        config.upstream_api_key.clone(),
        config.upstream_api,
        config.simulator,
    );
    let relay_options = relay::RelayOptions {
        limits: relay::Limits {
            total: config.relay_max_streams,
            per_key: config.relay_max_streams_per_key,
        },
        grace: config.shutdown_grace,
    };
    let relay = relay::Relay::new(
        hub.clone(),
        upstream,
        relay_options,
        shutdown.clone(),
        tracker.clone(),
    );
    tracker.spawn(streams.clone().sweep_until_shutdown());
    tracing::info!(addr = %addr, data_dir = %config.data_dir.display(), "ssehub listening on {url}");
    let derived_resource_identifier = config.auth.resource_identifier.clone();
    let config = Arc::new(arc_swap::ArcSwap::from_pointee(config));
    let reloader = Reloader {
        config: config.clone(),
        auth: auth.clone(),
        hub: hub.clone(),
        relay: relay.clone(),
        connections,
        derived_resource_identifier,
    };
    let state = http::AppState {
        hub,
        auth,
        selectors,
        config,
        relay,
        streams: streams.clone(),
    };
    Ok(Started {
        listener,
        url,
        app: http::app(state),
        serve_options,
        shutdown,
        metrics,
        tracker,
        pruner,
        store,
        streams,
        reloader,
    })
}

impl Started {
    /// Where the hub listens, as `http://addr` or `https://addr`.
    #[must_use]
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// A handle that changes the live settings while the hub serves.
    #[must_use]
    pub fn reloader(&self) -> Reloader {
        self.reloader.clone()
    }

    /// Serves until the shutdown token fires, drains within the grace period, then closes the
    /// store.
    ///
    /// # Errors
    /// Fails when the listener breaks or the store's final commit fails.
    pub async fn serve(self) -> Result<(), RunError> {
        let served = http::server::serve(
            self.listener,
            self.app,
            self.serve_options,
            self.shutdown,
            self.metrics,
        )
        .await;
        self.tracker.close();
        self.tracker.wait().await;
        let _ = self.pruner.await;
        self.streams.close().await;
        if let Err(err) = self.store.close().await {
            tracing::error!(error = %err, "final history commit failed");
            return Err(err.into());
        }
        served.map_err(RunError::from)
    }
}
