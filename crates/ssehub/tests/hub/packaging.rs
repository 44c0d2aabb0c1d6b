//! `packaging/`: the systemd unit's hardening keys (systemd-analyze checks the rest in
//! scripts/test-packaging.sh) and the Grafana dashboard against a running hub's `/metrics`.

use std::collections::HashMap;
use std::path::PathBuf;

fn packaging(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../packaging")
        .join(name)
}

/// The unit's `[Service]` keys; a key given several times keeps every value, in order.
fn service_keys() -> HashMap<String, Vec<String>> {
    let text = std::fs::read_to_string(packaging("ssehub.service")).unwrap();
    let mut section = String::new();
    let mut keys: HashMap<String, Vec<String>> = HashMap::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
            continue;
        }
        let (key, value) = line.split_once('=').expect("key=value");
        if section == "Service" {
            keys.entry(key.to_owned())
                .or_default()
                .push(value.to_owned());
        }
    }
    keys
}

#[test]
fn the_unit_is_hardened_and_keeps_its_data_in_the_state_directory() {
    let keys = service_keys();
    let one = |key: &str| -> &str {
        let values = keys.get(key).unwrap_or_else(|| panic!("no {key}="));
        values.last().unwrap()
    };
    for (key, want) in [
        ("DynamicUser", "yes"),
        ("StateDirectory", "ssehub"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("CapabilityBoundingSet", ""),
        ("Restart", "on-failure"),
        ("LimitNOFILE", "1048576"),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
    ] {
        assert_eq!(one(key), want, "{key}");
    }
    assert!(one("ExecStart").starts_with("/usr/local/bin/ssehub serve"));
    assert!(
        one("ExecStart").contains("--data-dir ${STATE_DIRECTORY}"),
        "the store lives in the state directory, the only place the service may write"
    );
    assert!(one("EnvironmentFile").starts_with("-/etc/ssehub/"));
    assert_eq!(keys["SystemCallFilter"][0], "@system-service");
    let families = one("RestrictAddressFamilies");
    for family in ["AF_INET", "AF_INET6", "AF_UNIX"] {
        assert!(families.contains(family), "{family} in {families}");
    }
    assert!(!families.contains("AF_NETLINK") && !families.contains("AF_PACKET"));
    // The descriptor limit must leave room above the hub's own connection cap.
    let limit: usize = one("LimitNOFILE").parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    assert!(limit > super::support::base_config(dir.path()).max_connections * 2);
}

/// Metric names a PromQL expression reads: identifiers that are not functions, keywords,
/// grouping labels, label matchers, durations or numbers. A Grafana `label_values(metric,
/// label)` query counts its metric only.
fn promql_metrics(expr: &str) -> Vec<String> {
    let strip = |re: &str, s: &str| {
        regex::Regex::new(re)
            .unwrap()
            .replace_all(s, " ")
            .into_owned()
    };
    // `label_values(metric, label)`: the metric only.
    let label_values =
        regex::Regex::new(r"label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,[^)]*\)").unwrap();
    let mut s = label_values.replace_all(expr, " $1 ").into_owned();
    s = strip(r#""(?:[^"\\]|\\.)*""#, &s);
    s = strip(r"\{[^}]*\}", &s);
    s = strip(r"\[[^\]]*\]", &s);
    s = strip(
        r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)",
        &s,
    );
    let keywords = [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "offset",
        "and",
        "or",
        "unless",
    ];
    let token = regex::Regex::new(r"[0-9.]*[a-zA-Z_:][a-zA-Z0-9_:]*(\s*\()?").unwrap();
    let mut names = Vec::new();
    for m in token.find_iter(&s) {
        let t = m.as_str();
        if t.ends_with('(') || t.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
            continue;
        }
        if !keywords.contains(&t) && !names.iter().any(|n| n == t) {
            names.push(t.to_owned());
        }
    }
    names
}

#[test]
fn promql_metric_names_are_found_and_only_those() {
    assert_eq!(
        promql_metrics(
            r#"histogram_quantile(0.99, sum by (le, instance) (rate(a_bucket{instance=~"$instance", x="y{z}"}[$__rate_interval]))) / on (instance) b_total offset 5m"#
        ),
        ["a_bucket", "b_total"]
    );
    assert_eq!(
        promql_metrics("label_values(up_gauge, instance)"),
        ["up_gauge"]
    );
    assert_eq!(
        promql_metrics("sum(rate(c_total[5m])) * 1e3 and d"),
        ["c_total", "d"]
    );
}

/// Every PromQL string of the dashboard: panel targets and template variable queries.
fn dashboard_queries(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("expr" | "definition", serde_json::Value::String(q)) => out.push(q.clone()),
                    ("query", serde_json::Value::String(q)) => out.push(q.clone()),
                    _ => dashboard_queries(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| dashboard_queries(v, out)),
        _ => {}
    }
}

/// The names a `/metrics` scrape exports (sample names, so a histogram gives its `_bucket`,
/// `_sum` and `_count`), with their values summed over label sets.
fn exported(text: &str) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let name_end = line.find(['{', ' ']).unwrap();
        let value: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        *out.entry(line[..name_end].to_owned()).or_default() += value;
    }
    out
}

#[tokio::test]
async fn every_metric_the_dashboard_queries_is_exported_by_a_running_hub() {
    use super::relay_support::{post_chat, relay_with_fake_upstream, streaming};

    let text = std::fs::read_to_string(packaging("grafana-dashboard.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut queries = Vec::new();
    dashboard_queries(&dashboard, &mut queries);
    let mut wanted: Vec<String> = queries.iter().flat_map(|q| promql_metrics(q)).collect();
    wanted.sort();
    wanted.dedup();
    for needed in [
        "ssehub_connections",
        "ssehub_subscribers",
        "ssehub_publishes_total",
        "ssehub_deliveries_total",
        "ssehub_publish_duration_seconds_bucket",
        "ssehub_laggards_disconnected_total",
        "ssehub_store_bytes",
        "ssehub_relay_streams_running",
        "ssehub_relay_chunks_total",
        "ssehub_connections_refused_total",
        "ssehub_relay_streams_refused_total",
    ] {
        assert!(
            wanted.iter().any(|w| w == needed),
            "the dashboard has no panel on {needed}"
        );
    }

    // A hub that has done one of everything the dashboard shows.
    let (hub, _seen) = relay_with_fake_upstream().await;
    let mut sub = hub.subscribe("topic=/dash").await;
    hub.publish_ok("/dash", "1").await;
    sub.events(1).await;
    let answer = post_chat(&hub, streaming("fake")).await;
    assert_eq!(answer.status(), 200);
    let body = answer.text().await.unwrap();
    assert!(body.contains("[DONE]"), "{body}");
    let scrape = hub.get("/metrics").await.text().await.unwrap();
    let exported = exported(&scrape);

    let missing: Vec<&String> = wanted
        .iter()
        .filter(|w| !exported.contains_key(*w))
        .collect();
    assert!(
        missing.is_empty(),
        "queried by the dashboard, not exported: {missing:?}\n{scrape}"
    );
    assert!(exported["ssehub_store_bytes"] > 0.0, "{scrape}");
    assert!(
        exported["ssehub_relay_chunks_total"] >= 8.0,
        "the fake upstream sends 8 chunks:\n{scrape}"
    );
    assert!(exported["ssehub_publishes_total"] >= 1.0);
}
