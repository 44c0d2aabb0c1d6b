//! `ssehub serve --demo`: simulated data for the demo pages (`/demo/ticker`, `/demo/logs`,
//! `/demo/online`), published through the hub's own publish path, so it is stored and replayed
//! like any update, and the topics those pages need opened to browsers without a token.
//!
//! ```text
//! ticker (random walk) ──> Hub::publish ──> /demo/ticker/{symbol}    ──> /demo/ticker page
//! log lines (made up)  ──> Hub::publish ──> /demo/logs/simulated     ──> /demo/logs page
//!      ssehub publish --follow FILE ──────> /demo/logs               ──┘
//! presence (--subscriptions) ──> /.well-known/mercure/subscriptions/%2Fdemo%2Fonline/{id} ──> /demo/online
//! ```
//!
//! Decisions:
//! - Off by default, and every update says `"simulated": true` (the pages label it too): made-up
//!   prices must never pass for real ones.
//! - A producer publishes only while someone watches its topic, and for a while after
//!   ([`DemoOptions::linger`]), so a reload misses nothing and a forgotten `--demo` hub does not
//!   grow its history by a dozen updates a second forever.
//! - Browsers need no token: [`open_topics`] opens the `/demo/` topics, and the subscription
//!   events of `/demo/online`, to subscribers without one; nothing else is opened (see
//!   [`crate::auth::OpenTopics`]).

mod audience;
mod logs;
mod ticker;

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::OpenTopics;
use crate::hub::{Hub, NewUpdate, topic_iri};
use audience::Audience;

/// Every demo topic starts with this: the part of the topic space `--demo` opens.
pub const PREFIX: &str = "/demo/";

/// Ticker topics are this followed by the symbol.
pub const TICKER_PREFIX: &str = "/demo/ticker/";

/// Where `ssehub publish --follow FILE --topic /demo/logs` sends lines for the log page.
pub const LOGS_TOPIC: &str = "/demo/logs";

/// Where the simulated log lines go, with this SSE event type so a page can label them.
pub const SIMULATED_LOGS_TOPIC: &str = "/demo/logs/simulated";

/// The event type of simulated log lines.
pub const SIMULATED_TYPE: &str = "simulated";

/// The topic whose subscribers the online counter counts.
pub const ONLINE_TOPIC: &str = "/demo/online";

/// Pace of the simulated data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DemoOptions {
    /// Every symbol moves once per interval.
    pub ticker_interval: Duration,
    /// One simulated log line per interval.
    pub log_interval: Duration,
    /// How long a producer goes on after the last watcher left.
    pub linger: Duration,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            ticker_interval: Duration::from_millis(400),
            log_interval: Duration::from_millis(700),
            linger: Duration::from_secs(60),
        }
    }
}

/// What `--demo` opens to subscribers without a token: topics under [`PREFIX`], and the
/// subscription events and list of [`ONLINE_TOPIC`] (the online counter reads them).
pub fn open_topics() -> OpenTopics {
    let online = topic_iri(ONLINE_TOPIC);
    OpenTopics::new(
        vec![PREFIX.to_owned(), online.clone()],
        vec![format!("{online}{{/subscriber}}")],
    )
}

/// Starts the simulated producers on `tracker`; they stop when `shutdown` fires.
pub fn spawn(hub: Hub, options: DemoOptions, shutdown: CancellationToken, tracker: &TaskTracker) {
    tracker.spawn(run_ticker(hub.clone(), options.clone(), shutdown.clone()));
    tracker.spawn(run_logs(hub, options, shutdown));
}

async fn run_ticker(hub: Hub, options: DemoOptions, shutdown: CancellationToken) {
    let mut ticker = ticker::Ticker::new();
    let topics = ticker.topics();
    let mut audience = Audience::new(options.linger);
    let mut interval = tokio::time::interval(options.ticker_interval);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = interval.tick() => {}
        }
        let watched = topics.iter().any(|t| hub.has_subscribers(t));
        if !audience.watched(watched, tokio::time::Instant::now()) {
            continue;
        }
        let quotes = ticker.step(&mut rand::rng(), crate::update::Update::now_ms());
        for (topic, data) in quotes {
            publish(&hub, topic, data, None).await;
        }
    }
}

async fn run_logs(hub: Hub, options: DemoOptions, shutdown: CancellationToken) {
    let mut lines = logs::LogLines::default();
    let mut audience = Audience::new(options.linger);
    let mut interval = tokio::time::interval(options.log_interval);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = interval.tick() => {}
        }
        let watched = hub.has_subscribers(SIMULATED_LOGS_TOPIC);
        if !audience.watched(watched, tokio::time::Instant::now()) {
            continue;
        }
        let line = lines.next(&mut rand::rng(), crate::update::Update::now_ms());
        let kind = Some(SIMULATED_TYPE.to_owned());
        publish(&hub, SIMULATED_LOGS_TOPIC.to_owned(), line, kind).await;
    }
}

/// Publishes one simulated update; a failure (a full disk) is logged and the next one tried,
/// since simulated data is worth no more than that.
async fn publish(hub: &Hub, topic: String, data: String, event_type: Option<String>) {
    let update = NewUpdate {
        topics: vec![topic],
        data,
        event_type,
        ..NewUpdate::default()
    };
    if let Err(err) = hub.publish(update).await {
        tracing::debug!(error = %err, "demo update not published");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topic::SelectorCache;

    #[test]
    fn demo_topics_are_open_and_nothing_else() {
        let open = open_topics();
        let cache = SelectorCache::default();
        let granted = open.compile_subscribe(&cache).unwrap();
        let online = crate::hub::subscription_iri(ONLINE_TOPIC, "urn:uuid:0190-ab");
        assert!(granted.iter().any(|s| s.matches(&online)));
        assert!(granted.iter().any(|s| s.matches(&topic_iri(ONLINE_TOPIC))));
        for closed in [
            crate::hub::subscription_iri("/demo/other", "urn:uuid:1"),
            crate::hub::subscription_iri("/private", "urn:uuid:1"),
            crate::hub::SUBSCRIPTIONS_PATH.to_owned(),
        ] {
            assert!(!granted.iter().any(|s| s.matches(&closed)), "{closed}");
        }
        assert!(
            open.prefixes
                .iter()
                .all(|p| p.starts_with(PREFIX) || p.starts_with(&topic_iri(ONLINE_TOPIC)))
        );
    }
}
