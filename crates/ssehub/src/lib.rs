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
//!   watchable, cancellable, from any node sharing the store.
//! - [`http`] (-> everything below): the only layer that speaks HTTP: routes, errors,
//!   connections, TLS, shutdown, and its own HTTP/1.1 writer for event streams (an idle stream
//!   holds no hyper buffers).
//! - [`config`] and [`run`]: the glue that configures and starts all of the above.
//!
//! ```text
//!  POST /.well-known/mercure ─> auth ─> hub::publish ─> Store::append (log fsync, group commit) ─> 200 id
//!                                                             │ feed
//!                                                             ▼
//!  GET /.well-known/mercure ─> auth ─> hub::subscribe ─> replay ─> join fan-out ─> SSE bytes
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
//!   ephemeral ports and shut them down deterministically.

pub mod auth;
pub mod config;
pub mod http;
pub mod hub;
pub mod relay;
pub mod store;
pub mod topic;
pub mod update;

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::Config;

/// Why the hub could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The history store could not be opened or read.
    #[error("history store: {0}")]
    Store(#[from] store::StoreError),
    /// TLS material could not be loaded.
    #[error("tls: {0}")]
    Tls(#[from] http::server::TlsError),
    /// The listener failed.
    #[error("listener: {0}")]
    Io(#[from] std::io::Error),
}

/// Serves a hub on `listener` until `shutdown` fires, then drains within the grace period.
///
/// # Errors
/// Fails when the store, keys or TLS files are unusable (Redis unreachable at start
/// included), or the listener breaks.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    let tls = match &config.tls {
        Some(files) => Some(http::server::load_tls(&files.cert, &files.key)?),
        None => None,
    };
    let selectors = config.auth.selector_cache.clone();
    let auth = Arc::new(auth::Authorizer::new(config.auth.clone()));
    let store: Arc<dyn store::Store> = match &config.store {
        config::StoreConfig::Embedded => Arc::new(store::redb::RedbStore::open(
            &config.data_dir,
            Default::default(),
        )?),
        config::StoreConfig::Redis(options) => {
            Arc::new(store::redis::RedisStore::open(options.clone()).await?)
        }
    };
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
    let serve_options = http::server::ServeOptions {
        tls,
        max_connections: config.max_connections,
        grace: config.shutdown_grace,
    };
    let upstream = relay::upstream::Upstream::from_config(
        config.upstream.as_deref(),
        config.upstream_api_key.clone(),
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
    let config = Arc::new(config);
    let state = http::AppState {
        hub,
        auth,
        selectors,
        config,
        relay,
    };
    let app = http::app(state);
    let served = http::server::serve(listener, app, serve_options, shutdown, metrics).await;
    tracker.close();
    tracker.wait().await;
    let _ = pruner.await;
    if let Err(err) = store.close().await {
        tracing::error!(error = %err, "final history commit failed");
        return Err(err.into());
    }
    served.map_err(RunError::from)
}
