//! What a running hub changes without a restart: [`Reloader`], which `ssehub serve` drives on
//! SIGHUP.
//!
//! Only settings read per request or per new stream are swapped (tokens' keys and rules,
//! origins, limits); the store, the listener, TLS and the tasks started with the hub are not,
//! and the caller is told which of those it asked for in vain.

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::auth::Authorizer;
use crate::config::Config;
use crate::http::server::ConnectionCap;
use crate::hub::Hub;
use crate::relay::{Limits, Relay};

/// A handle on a running hub's live settings; cheap to clone.
#[derive(Clone)]
pub struct Reloader {
    /// The configuration every request reads ([`crate::http::AppState::config`]).
    pub(crate) config: Arc<ArcSwap<Config>>,
    /// Token checks; replaced whole.
    pub(crate) auth: Arc<Authorizer>,
    /// For the heartbeat of streams opened later.
    pub(crate) hub: Hub,
    /// For the bounds on relay generations.
    pub(crate) relay: Arc<Relay>,
    /// The connection cap the server admits against.
    pub(crate) connections: Arc<ConnectionCap>,
    /// The audience [`crate::start`] derived from the listen address, kept when a new
    /// configuration names none.
    pub(crate) derived_resource_identifier: Option<String>,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader").finish_non_exhaustive()
    }
}

/// How CORS answers, which a reload cannot switch: the layer is built for one of them.
#[derive(PartialEq, Eq)]
enum CorsMode {
    Off,
    Any,
    List,
}

fn cors_mode(origins: &[String]) -> CorsMode {
    if origins.is_empty() {
        CorsMode::Off
    } else if origins.iter().any(|o| o == "*") {
        CorsMode::Any
    } else {
        CorsMode::List
    }
}

impl Reloader {
    /// Applies `new`'s live settings: authorization (keys, algorithms, issuers, resource
    /// identifier, cookie name, anonymous subscribers, publish origins), the CORS origin list,
    /// the heartbeat of new streams, the connection cap, body, selector and append limits,
    /// relay keys and bounds, and the Durable Streams timeouts. Requests that start from now
    /// on see them; streams already open keep what they started with.
    ///
    /// Returns the settings that changed but were kept as they were: `cors_origins` when it
    /// switches between none, a list and `*`. Every other field of `new` is ignored; the
    /// caller says which of those need a restart.
    pub fn apply(&self, mut new: Config) -> Vec<&'static str> {
        let old = self.config.load_full();
        let mut kept = Vec::new();
        if new.auth.resource_identifier.is_none() {
            new.auth.resource_identifier = self.derived_resource_identifier.clone();
        }
        // `--demo` opens topics; it is not live, so neither are they.
        new.auth.open_topics = old.auth.open_topics.clone();
        self.auth.replace(new.auth.clone());
        if cors_mode(&new.cors_origins) != cors_mode(&old.cors_origins) {
            kept.push("cors_origins");
            new.cors_origins = old.cors_origins.clone();
        }
        self.hub.set_heartbeat(new.heartbeat);
        self.connections.set_max(new.max_connections);
        self.relay.set_limits(Limits {
            total: new.relay_max_streams,
            per_key: new.relay_max_streams_per_key,
        });
        let mut merged = (*old).clone();
        merged.auth = new.auth;
        merged.cors_origins = new.cors_origins;
        merged.heartbeat = new.heartbeat;
        merged.max_connections = new.max_connections;
        merged.max_body_bytes = new.max_body_bytes;
        merged.max_selectors = new.max_selectors;
        merged.relay_api_keys = new.relay_api_keys;
        merged.relay_max_streams = new.relay_max_streams;
        merged.relay_max_streams_per_key = new.relay_max_streams_per_key;
        merged.anonymous_streams = new.anonymous_streams;
        merged.streams_long_poll_timeout = new.streams_long_poll_timeout;
        merged.streams_sse_max_duration = new.streams_sse_max_duration;
        merged.streams_max_append_bytes = new.streams_max_append_bytes;
        self.config.store(Arc::new(merged));
        kept
    }
}

#[cfg(test)]
mod tests {
    use tokio_util::sync::CancellationToken;

    use crate::auth::{AuthConfig, VerifyingKey};
    use crate::config::Config;

    fn config(dir: &std::path::Path, key: &str, cors: &[&str]) -> Config {
        let key = VerifyingKey::from_config(key, Some("HS256")).unwrap();
        let mut config = Config::new(dir.to_owned(), AuthConfig::new(key));
        config.cors_origins = cors.iter().map(|o| (*o).to_owned()).collect();
        config
    }

    #[tokio::test]
    async fn a_reload_keeps_the_derived_audience_and_refuses_to_switch_the_cors_mode() {
        let dir = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let shutdown = CancellationToken::new();
        let started = crate::start(
            listener,
            config(dir.path(), "k1", &["https://a"]),
            shutdown.clone(),
        )
        .await
        .unwrap();
        let reloader = started.reloader();
        let audience = reloader.auth.audience();
        assert!(audience.is_some());

        let kept = reloader.apply(config(dir.path(), "k2", &["https://a", "https://b"]));
        assert!(kept.is_empty(), "{kept:?}");
        assert_eq!(
            reloader.auth.audience(),
            audience,
            "the derived audience was lost"
        );
        assert_eq!(
            reloader.config.load().cors_origins,
            ["https://a", "https://b"]
        );

        for switch in [&["*"][..], &[][..]] {
            let kept = reloader.apply(config(dir.path(), "k2", switch));
            assert_eq!(kept, ["cors_origins"]);
            assert_eq!(
                reloader.config.load().cors_origins,
                ["https://a", "https://b"]
            );
        }
        let mut limits = config(dir.path(), "k2", &["https://a"]);
        limits.max_connections = 7;
        limits.max_body_bytes = 9;
        reloader.apply(limits);
        assert_eq!(reloader.connections.max(), 7);
        assert_eq!(reloader.config.load().max_body_bytes, 9);
        shutdown.cancel();
        started.serve().await.unwrap();
    }
}
