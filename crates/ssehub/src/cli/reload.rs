//! SIGHUP in `ssehub serve`: reads the config file and the environment again with the same
//! precedence, applies what a running hub can change ([`ssehub::Reloader`]), and logs one
//! line saying what changed and one naming the changed keys that need a restart. A file that
//! is refused changes nothing.

use std::collections::BTreeMap;
use std::ffi::OsString;

use ssehub::Reloader;
use tokio::signal::unix::{Signal, SignalKind};
use tokio_util::sync::CancellationToken;

use super::effective::{self, Resolved, SECRET_KEYS};

/// The keys a reload applies; any other changed key is named as needing a restart.
pub(crate) const LIVE_KEYS: &[&str] = &[
    "publisher-jwt-key",
    "publisher-jwt-alg",
    "subscriber-jwt-key",
    "subscriber-jwt-alg",
    "jwt-issuer",
    "resource-identifier",
    "anonymous",
    "cookie-name",
    "cors-origins",
    "publish-origins",
    "heartbeat",
    "max-connections",
    "max-body-bytes",
    "max-selectors",
    "relay-api-keys",
    "relay-max-streams",
    "relay-max-streams-per-key",
    "anonymous-streams",
    "streams-long-poll-timeout",
    "streams-sse-max-duration",
    "streams-max-append-bytes",
];

/// Every key's values as clap holds them, to tell what a reload changed.
type Values = BTreeMap<String, Vec<String>>;

fn values(resolved: &Resolved) -> Values {
    let command = effective::serve_command();
    super::config_file::keys(&command)
        .map(|arg| {
            let id = arg.get_id().as_str();
            let key = arg.get_long().unwrap_or_default().to_owned();
            let values = if super::config_file::is_switch(arg) {
                vec![resolved.matches.get_flag(id).to_string()]
            } else {
                resolved
                    .matches
                    .get_raw(id)
                    .map(|raw| raw.map(|v| v.to_string_lossy().into_owned()).collect())
                    .unwrap_or_default()
            };
            (key, values)
        })
        .collect()
}

/// SIGHUP as a stream, or `None` (logged) when it cannot be had.
pub(crate) fn listen_for_sighup() -> Option<Signal> {
    match tokio::signal::unix::signal(SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(err) => {
            tracing::warn!(error = %err, "cannot listen for SIGHUP; the configuration is not reloadable");
            None
        }
    }
}

/// Reloads on every SIGHUP until `shutdown`.
pub(crate) async fn on_sighup(
    hup: Option<Signal>,
    argv: Vec<OsString>,
    started_with: std::sync::Arc<Resolved>,
    reloader: Reloader,
    shutdown: CancellationToken,
) {
    let Some(mut hup) = hup else { return };
    let mut running = values(&started_with);
    let data_dir = started_with.args.data_dir.clone();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            got = hup.recv() => if got.is_none() { return },
        }
        reload(&argv, &data_dir, &mut running, &reloader);
    }
}

/// One reload; `running` holds what the hub runs with and is updated with what was applied.
fn reload(
    argv: &[OsString],
    data_dir: &std::path::Path,
    running: &mut Values,
    reloader: &Reloader,
) {
    let resolved = match effective::resolve(argv) {
        Ok(r) => r,
        Err(err) => {
            tracing::error!("reload refused, the running configuration stays: {err}");
            return;
        }
    };
    let key = match resolved.args.publisher_jwt_key.clone() {
        Some(k) => k,
        // The key generated on the first run, in the running hub's data directory.
        None => match super::serve::first_run_key(data_dir) {
            Ok(k) => k,
            Err(err) => {
                tracing::error!("reload refused, the running configuration stays: {err:#}");
                return;
            }
        },
    };
    let config = match super::serve::hub_config(&resolved.args, key) {
        Ok(c) => c,
        Err(err) => {
            tracing::error!("reload refused, the running configuration stays: {err:#}");
            return;
        }
    };
    let new = values(&resolved);
    let changed: Vec<&str> = new
        .iter()
        .filter(|(k, v)| running.get(*k) != Some(v))
        .map(|(k, _)| k.as_str())
        .collect();
    let kept = reloader.apply(config);
    let (mut live, mut restart): (Vec<&str>, Vec<&str>) =
        changed.iter().partition(|k| LIVE_KEYS.contains(k));
    if kept.contains(&"cors_origins") && live.contains(&"cors-origins") {
        live.retain(|k| *k != "cors-origins");
        restart.push("cors-origins");
    }
    let described: Vec<String> = live
        .iter()
        .map(|k| describe(k, running.get(*k), &new[*k]))
        .collect();
    for key in &live {
        running.insert((*key).to_owned(), new[*key].clone());
    }
    if described.is_empty() {
        tracing::info!("configuration reloaded: no live setting changed");
    } else {
        tracing::info!("configuration reloaded: {}", described.join(", "));
    }
    if !restart.is_empty() {
        tracing::warn!(
            "configuration reloaded, but these changed keys need a restart to take effect: {} (cors-origins: when switching between none, a list and *)",
            restart.join(", ")
        );
    }
}

/// `key old -> new`, secrets not shown.
fn describe(key: &str, old: Option<&Vec<String>>, new: &[String]) -> String {
    if SECRET_KEYS.contains(&key) {
        return format!("{key} changed (secret, not shown)");
    }
    let command = effective::serve_command();
    let list = super::config_file::keys(&command)
        .find(|a| a.get_long() == Some(key))
        .is_some_and(super::config_file::is_list);
    let show = |v: &[String]| match v {
        [] if !list => "(none)".to_owned(),
        [one] if !list => one.clone(),
        many => format!("[{}]", many.join(", ")),
    };
    format!(
        "{key} {} -> {}",
        show(old.map_or(&[][..], Vec::as_slice)),
        show(new)
    )
}
