use std::fmt::Write as _;

use super::*;
use crate::cli::effective::serve_command;

/// The example file at the repository root, kept in step with the flags by
/// `the_example_file_lists_every_flag_with_its_default`.
const EXAMPLE: &str = include_str!("../../../../../ssehub.example.toml");

/// Values shown for the keys that have no default (the example must show a valid one).
const EXAMPLES: &[(&str, &str)] = &[
    ("wal-truncate-damaged", "123456"),
    ("publisher-jwt-key", "\"/etc/ssehub/publisher.pem\""),
    ("publisher-jwt-alg", "\"RS256\""),
    ("subscriber-jwt-key", "\"/etc/ssehub/subscriber.pem\""),
    ("subscriber-jwt-alg", "\"RS256\""),
    ("jwt-issuer", "[\"https://auth.example.com\"]"),
    (
        "resource-identifier",
        "\"https://hub.example.com/.well-known/mercure\"",
    ),
    ("cors-origins", "[\"https://app.example.com\"]"),
    ("publish-origins", "[\"https://app.example.com\"]"),
    ("history-max-events", "1000000"),
    ("history-max-age", "\"7d\""),
    ("tls-cert", "\"/etc/ssehub/cert.pem\""),
    ("tls-key", "\"/etc/ssehub/key.pem\""),
    ("upstream-api-key", "\"sk-...\""),
    ("relay-api-keys", "[\"key-for-app-1\", \"key-for-app-2\"]"),
    ("otlp-endpoint", "\"http://127.0.0.1:4318\""),
];

fn serve() -> Command {
    serve_command()
}

fn parse_str(text: &str) -> Result<ConfigFile, ConfigFileError> {
    parse(Path::new("t.toml"), text, &serve())
}

/// The example file as the flags say it should be.
fn expected_example() -> String {
    let command = serve();
    let mut out = String::from(
        "# ssehub.example.toml: every key of `ssehub serve --config FILE`, commented out, with its\n\
         # default (or, for a key without one, an example). Keys are the flags' names without `--`;\n\
         # precedence: flag > environment (SSEHUB_*, MERCURE_*) > this file > default.\n\
         # `ssehub config check FILE` validates a file; `ssehub config print --config FILE` shows\n\
         # the result. SIGHUP re-reads the file (see the README's \"Configuration file\").\n\
         #\n\
         # Generated from the flags: `SSEHUB_BLESS=1 cargo test -p ssehub --bin ssehub example` rewrites it.\n",
    );
    for arg in keys(&command) {
        let key = arg.get_long().unwrap();
        let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
        let mut value = match arg.get_default_values().first() {
            _ if is_switch(arg) => "false".to_owned(),
            Some(default) => {
                let text = default.to_string_lossy();
                if crate::cli::effective::is_number(arg) {
                    text.into_owned()
                } else {
                    crate::cli::effective::quote(&text)
                }
            }
            None => EXAMPLES
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| (*v).to_owned())
                .unwrap_or_else(|| panic!("--{key} has no default: add an example to EXAMPLES")),
        };
        if arg.get_default_values().is_empty() && !is_switch(arg) {
            value.push_str("  # no default; an example");
        }
        out.push('\n');
        for line in wrap(&help, 96) {
            let _ = writeln!(out, "# {line}");
        }
        let _ = writeln!(out, "# {key} = {value}");
    }
    out
}

/// `text` in lines of at most `width` characters, broken at spaces.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for word in text.split_whitespace() {
        let line = lines.last_mut().unwrap();
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(word.to_owned());
        } else {
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
    }
    lines
}

#[test]
fn the_example_file_lists_every_flag_with_its_default() {
    let expected = expected_example();
    if std::env::var_os("SSEHUB_BLESS").is_some() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../ssehub.example.toml");
        std::fs::write(path, &expected).unwrap();
        return;
    }
    let command = serve();
    let uncommented: String = EXAMPLE
        .lines()
        .filter_map(|l| l.strip_prefix("# "))
        .filter(|l| {
            l.split_once(" = ")
                .is_some_and(|(k, _)| keys(&command).any(|a| a.get_long() == Some(k)))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    // Every shown value passes its flag's parser, and the keys are exactly the flags.
    let file = parse_str(&uncommented).expect("every example value is valid");
    let listed: Vec<&str> = file.entries.keys().map(String::as_str).collect();
    let mut flags: Vec<&str> = keys(&command).filter_map(|a| a.get_long()).collect();
    flags.sort_unstable();
    assert_eq!(
        listed, flags,
        "ssehub.example.toml and the serve flags differ"
    );
    assert_eq!(
        EXAMPLE, expected,
        "ssehub.example.toml is stale: SSEHUB_BLESS=1 cargo test -p ssehub --bin ssehub example"
    );
}

#[test]
fn an_unknown_key_names_its_line_and_the_nearest_key() {
    let err = parse_str("listen = \"127.0.0.1:0\"\n\nhearbeat = \"5s\"\n").unwrap_err();
    assert_eq!(
        err.to_string(),
        "t.toml:3: unknown key `hearbeat` (did you mean `heartbeat`?)"
    );
    let err = parse_str("[relay]\nx = 1\n").unwrap_err();
    assert!(
        err.to_string().starts_with("t.toml:1: unknown key `relay`"),
        "{err}"
    );
    let err = parse_str("config = \"other.toml\"\n").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("t.toml:1: unknown key `config`"),
        "{err}"
    );
}

#[test]
fn a_bad_value_names_its_key_and_line() {
    let cases = [
        (
            "heartbeat = \"5q\"",
            "key `heartbeat`: invalid duration \"5q\"",
        ),
        (
            "anonymous = \"yes\"",
            "key `anonymous`: expected true or false, found string",
        ),
        (
            "max-connections = \"many\"",
            "key `max-connections`: invalid value \"many\"",
        ),
        ("listen = 8080", "key `listen`: invalid value \"8080\""),
        ("replay-page = 0", "key `replay-page`: 0 is not in 1.."),
        (
            "listen = [\"a\"]",
            "key `listen`: expected a single value, found array",
        ),
        (
            "cors-origins = 3",
            "key `cors-origins`: expected an array of strings",
        ),
    ];
    for (line, want) in cases {
        let err = parse_str(&format!("# comment\n{line}\n"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&format!("t.toml:2: {want}")),
            "{line}: {err}"
        );
    }
    let err = parse_str("listen = \n").unwrap_err().to_string();
    assert!(err.starts_with("t.toml:1: "), "{err}");
}

#[test]
fn a_secret_value_is_not_echoed_in_an_error() {
    let err = parse_str("store = \"redis://u:hunter2@host:notaport\"\n");
    // The store URL is checked when the hub builds its config; the file only needs a string.
    assert!(err.is_ok());
    let err = parse_str("publisher-jwt-key = [\"hunter2\"]\n")
        .unwrap_err()
        .to_string();
    assert!(!err.contains("hunter2"), "{err}");
}

#[test]
fn values_become_flag_values() {
    let file = parse_str(
        "cors-origins = \"https://a, https://b\"\npublish-origins = [\"https://c\"]\nanonymous = false\nmax-connections = 1_000\nheartbeat = 40\nmax-body-bytes = 0x10\n",
    )
    .unwrap();
    let values = |k: &str| file.entries[k].values.clone();
    assert_eq!(values("cors-origins"), ["https://a", "https://b"]);
    assert_eq!(values("publish-origins"), ["https://c"]);
    assert!(values("anonymous").is_empty());
    assert_eq!(values("max-connections"), ["1000"]);
    assert_eq!(values("heartbeat"), ["40"]);
    assert_eq!(values("max-body-bytes"), ["16"]);
}

#[test]
fn nearest_key() {
    assert_eq!(edit_distance("heartbaet", "heartbeat"), 2);
    assert_eq!(suggestion("lissen", &serve()), " (did you mean `listen`?)");
}
