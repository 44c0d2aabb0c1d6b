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
