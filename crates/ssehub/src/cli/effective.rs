//! The effective `serve` configuration and where each value came from:
//! flag > environment (`SSEHUB_*`, then Mercure's names) > config file > default.
//!
//! clap knows whether a value came from the command line, the environment or a default
//! (`ArgMatches::value_source`); a file value is given to clap as if typed after the flags,
//! for the keys the command line and the environment left alone, so every value still passes
//! through the flag's parser and its `requires` rules.

use std::any::TypeId;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{Arg, ArgMatches, Args as _, Command, FromArgMatches as _};

use super::config_file::{self, ConfigFile, ConfigFileError};
use super::serve::ServeArgs;

/// Mercure's variable names the hub also reads, in order, when neither the flag nor its
/// `SSEHUB_*` variable is set.
pub(crate) const MERCURE_ALIASES: &[(&str, &[&str])] = &[
    (
        "publisher-jwt-key",
        &["MERCURE_PUBLISHER_JWT_KEY", "MERCURE_JWT_KEY"],
    ),
    (
        "subscriber-jwt-key",
        &["MERCURE_SUBSCRIBER_JWT_KEY", "MERCURE_JWT_KEY"],
    ),
    (
        "publisher-jwt-alg",
        &["MERCURE_PUBLISHER_JWT_ALG", "MERCURE_JWT_ALG"],
    ),
    (
        "subscriber-jwt-alg",
        &["MERCURE_SUBSCRIBER_JWT_ALG", "MERCURE_JWT_ALG"],
    ),
];

/// Keys whose values are secrets: masked by `config print` and in reload logs.
pub(crate) const SECRET_KEYS: &[&str] = &[
    "publisher-jwt-key",
    "subscriber-jwt-key",
    "upstream-api-key",
    "relay-api-keys",
];

/// Where one key's value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    /// Typed on the command line.
    Flag,
    /// The named environment variable.
    Env(String),
    /// The config file, at this line.
    File(PathBuf, usize),
    /// The flag's default.
    Default,
    /// Not set anywhere and no default.
    Unset,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Flag => f.write_str("command line"),
            Source::Env(name) => write!(f, "environment {name}"),
            Source::File(path, line) => write!(f, "file {}:{line}", path.display()),
            Source::Default => f.write_str("default"),
            Source::Unset => f.write_str("not set"),
        }
    }
}

/// Why the effective configuration could not be made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ResolveError {
    /// The config file was refused.
    #[error(transparent)]
    File(#[from] ConfigFileError),
    /// The arguments, with the file's values, were refused (a rule between flags); clap's
    /// message without its usage text.
    #[error("{0}")]
    Args(String),
}

impl From<clap::Error> for ResolveError {
    fn from(err: clap::Error) -> Self {
        let text = err.to_string();
        let message: Vec<&str> = text
            .lines()
            .take_while(|l| !l.starts_with("Usage:"))
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        let message = message.join(" ");
        let message = message.strip_prefix("error: ").unwrap_or(&message);
        ResolveError::Args(message.replace(":: ", ": "))
    }
}

/// The effective configuration of `serve`.
#[derive(Debug)]
pub(crate) struct Resolved {
    /// The arguments with every layer applied.
    pub(crate) args: ServeArgs,
    /// The config file, when one was named.
    pub(crate) file: Option<ConfigFile>,
    /// Where each key's value came from, by key.
    pub(crate) sources: BTreeMap<String, Source>,
    /// The final matches, to print values as clap holds them.
    pub(crate) matches: ArgMatches,
}

/// `serve` as a command of its own, the one source of its flags and thus of the file keys.
pub(crate) fn serve_command() -> Command {
    ServeArgs::augment_args(Command::new("serve"))
}

/// Applies the layers to `argv` (starting with the word `serve`) and the process environment.
///
/// # Errors
///
/// [`ResolveError`] for a refused file or flags that do not go together.
pub(crate) fn resolve(argv: &[OsString]) -> Result<Resolved, ResolveError> {
    let command = serve_command();
    let first = command.clone().try_get_matches_from(argv)?;
    let file = match first.get_one::<PathBuf>("config") {
        Some(path) => Some(config_file::load(path, &command)?),
        None => None,
    };
    let mut extra: Vec<OsString> = Vec::new();
    let mut sources = BTreeMap::new();
    for arg in config_file::keys(&command) {
        let key = arg.get_long().unwrap_or_default();
        let source = match first.value_source(arg.get_id().as_str()) {
            Some(ValueSource::CommandLine) => Source::Flag,
            Some(ValueSource::EnvVariable) => Source::Env(env_name(arg)),
            _ => {
                if let Some((name, value)) = alias_value(key) {
                    extra.push(format!("--{key}={value}").into());
                    Source::Env(name)
                } else if let Some(entry) = file.as_ref().and_then(|f| f.entries.get(key)) {
                    if entry.flag {
                        if !entry.values.is_empty() {
                            extra.push(format!("--{key}").into());
                        }
                    } else {
                        extra.extend(entry.values.iter().map(|v| format!("--{key}={v}").into()));
                    }
                    let path = file.as_ref().map(|f| f.path.clone()).unwrap_or_default();
                    Source::File(path, entry.line)
                } else if first.value_source(arg.get_id().as_str())
                    == Some(ValueSource::DefaultValue)
                {
                    Source::Default
                } else {
                    Source::Unset
                }
            }
        };
        sources.insert(key.to_owned(), source);
    }
    let mut full: Vec<OsString> = argv.to_vec();
    full.extend(extra);
    let matches = command.try_get_matches_from(full)?;
    let args = ServeArgs::from_arg_matches(&matches)?;
    Ok(Resolved {
        args,
        file,
        sources,
        matches,
    })
}

/// The first of Mercure's variables set for `key`, and its value.
fn alias_value(key: &str) -> Option<(String, String)> {
    let (_, names) = MERCURE_ALIASES.iter().find(|(k, _)| *k == key)?;
    names.iter().find_map(|n| {
        std::env::var(n)
            .ok()
            .filter(|v| !v.is_empty())
            .map(|v| ((*n).to_owned(), v))
    })
}

fn env_name(arg: &Arg) -> String {
    arg.get_env()
        .map(|e| e.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// A key's value as clap holds it, as TOML; `None` when it has none.
pub(crate) fn toml_value(command: &Command, matches: &ArgMatches, key: &str) -> Option<String> {
    let arg = config_file::keys(command).find(|a| a.get_long() == Some(key))?;
    let id = arg.get_id().as_str();
    if config_file::is_switch(arg) {
        return Some(matches.get_flag(id).to_string());
    }
    let raw: Vec<String> = matches
        .get_raw(id)?
        .map(|v| v.to_string_lossy().into_owned())
        .collect();
    let secret = SECRET_KEYS.contains(&key);
    let shown = |v: &str| -> String {
        if secret {
            quote("********")
        } else if key == "store" {
            quote(&mask_url_password(v))
        } else if is_number(arg) && v.parse::<f64>().is_ok() {
            v.to_owned()
        } else {
            quote(v)
        }
    };
    if config_file::is_list(arg) {
        let items: Vec<String> = raw.iter().map(|v| shown(v)).collect();
        return Some(format!("[{}]", items.join(", ")));
    }
    raw.first().map(|v| shown(v))
}

pub(crate) fn is_number(arg: &Arg) -> bool {
    let id = arg.get_value_parser().type_id();
    [
        TypeId::of::<usize>(),
        TypeId::of::<u64>(),
        TypeId::of::<f64>(),
    ]
    .iter()
    .any(|t| id == *t)
}

/// A TOML basic string.
pub(crate) fn quote(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// `redis://user:secret@host` as `redis://user:********@host`.
pub(crate) fn mask_url_password(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            let masked = if userinfo.contains(':') {
                format!("{user}:********")
            } else {
                "********".to_owned()
            };
            format!("{}{masked}{}", &url[..scheme_end + 3], &rest[at..])
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve_words(words: &[&str]) -> Result<Resolved, ResolveError> {
        let argv: Vec<OsString> = std::iter::once("serve")
            .chain(words.iter().copied())
            .map(OsString::from)
            .collect();
        resolve(&argv)
    }

    #[test]
    fn a_flag_beats_the_file_and_the_file_beats_the_default() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.toml");
        std::fs::write(
            &path,
            "heartbeat = \"5s\"\ncookie-name = \"fromfile\"\nanonymous = true\ncors-origins = [\"https://a\", \"https://b\"]\n",
        )
        .unwrap();
        let path = path.to_str().unwrap();
        let r = resolve_words(&["--config", path, "--cookie-name", "fromflag"]).unwrap();
        assert_eq!(r.args.heartbeat, std::time::Duration::from_secs(5));
        assert_eq!(r.args.cookie_name, "fromflag");
        assert!(r.args.anonymous);
        assert_eq!(r.args.cors_origins, ["https://a", "https://b"]);
        assert_eq!(r.sources["cookie-name"], Source::Flag);
        assert_eq!(r.sources["heartbeat"], Source::File(path.into(), 1));
        assert_eq!(r.sources["max-connections"], Source::Default);
        assert_eq!(r.sources["tls-cert"], Source::Unset);
    }

    #[test]
    fn a_rule_between_flags_holds_for_file_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.toml");
        std::fs::write(&path, "tls-cert = \"c.pem\"\n").unwrap();
        let r = resolve_words(&["--config", path.to_str().unwrap()]).unwrap();
        let err = crate::cli::serve::hub_config(&r.args, "k".into()).unwrap_err();
        assert!(err.to_string().contains("--tls-key"), "{err}");
        let r = resolve_words(&["--config", path.to_str().unwrap(), "--tls-key", "k.pem"]).unwrap();
        assert!(crate::cli::serve::hub_config(&r.args, "k".into()).is_ok());
    }

    #[test]
    fn passwords_in_urls_are_masked() {
        assert_eq!(
            mask_url_password("redis://user:pw@host:6379/0"),
            "redis://user:********@host:6379/0"
        );
        assert_eq!(
            mask_url_password("rediss://:pw@host"),
            "rediss://:********@host"
        );
        assert_eq!(mask_url_password("redis://host:6379"), "redis://host:6379");
        assert_eq!(mask_url_password("embedded"), "embedded");
    }
}
