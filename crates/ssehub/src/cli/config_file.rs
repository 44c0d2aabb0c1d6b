//! The TOML file of `ssehub serve --config`: its keys are the `serve` flags' names, read from
//! the clap definitions so that a new flag is a new key with nothing else to change.
//!
//! Every value is checked here, once, by the flag's own value parser, so that a bad value is
//! reported with the file's line rather than as a flag the user never typed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::{Arg, ArgAction, Command};
use toml::de::{DeTable, DeValue};

/// Serve arguments that are not file keys: the file cannot name itself.
const NOT_KEYS: &[&str] = &["config", "help", "version"];

/// Why a configuration file was refused; each names the file, the line and the key.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfigFileError {
    /// The file could not be read.
    #[error("reading the config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Not TOML.
    #[error("{}:{line}: {message}", path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        message: String,
    },
    /// A key that is not a `serve` flag.
    #[error("{}:{line}: unknown key `{key}`{hint}", path.display())]
    UnknownKey {
        path: PathBuf,
        line: usize,
        key: String,
        hint: String,
    },
    /// A value of the wrong TOML type or one the flag's parser refuses.
    #[error("{}:{line}: key `{key}`: {message}", path.display())]
    BadValue {
        path: PathBuf,
        line: usize,
        key: String,
        message: String,
    },
}

/// One key of the file: the values as they would be typed after `--key=`, and where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FileEntry {
    /// Empty for a boolean flag set to `false`; one value for a scalar; any number for a list.
    pub(crate) values: Vec<String>,
    /// Whether the key is a boolean flag (`--anonymous` takes no value).
    pub(crate) flag: bool,
    /// 1-based line of the key, for messages.
    pub(crate) line: usize,
}

/// A parsed and checked configuration file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ConfigFile {
    /// Where it was read from, for messages and `config print`.
    pub(crate) path: PathBuf,
    /// Its keys, each checked against the flag of the same name.
    pub(crate) entries: BTreeMap<String, FileEntry>,
}

/// The arguments of `serve` that a file may set, in the order `--help` lists them.
pub(crate) fn keys(serve: &Command) -> impl Iterator<Item = &Arg> {
    serve
        .get_arguments()
        .filter(|a| a.get_long().is_some() && !NOT_KEYS.contains(&a.get_id().as_str()))
}

/// Whether `arg` is a switch (`--anonymous`) rather than a flag with a value.
pub(crate) fn is_switch(arg: &Arg) -> bool {
    matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::SetFalse)
}

/// Whether `arg` takes a list (`--cors-origins a,b`).
pub(crate) fn is_list(arg: &Arg) -> bool {
    matches!(arg.get_action(), ArgAction::Append)
}

/// Reads and checks `path` against the flags of `serve`.
pub(crate) fn load(path: &Path, serve: &Command) -> Result<ConfigFile, ConfigFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(path, &text, serve)
}

/// Checks `text` (the contents of `path`) against the flags of `serve`.
pub(crate) fn parse(
    path: &Path,
    text: &str,
    serve: &Command,
) -> Result<ConfigFile, ConfigFileError> {
    let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
    let table = DeTable::parse(text).map_err(|e| ConfigFileError::Syntax {
        path: path.to_owned(),
        line: e.span().map_or(1, |s| line_of(s.start)),
        message: e.message().trim_end().to_owned(),
    })?;
    let mut entries = BTreeMap::new();
    for (key, value) in table.get_ref() {
        let name: &str = key.get_ref();
        let line = line_of(key.span().start);
        let Some(arg) = keys(serve).find(|a| a.get_long() == Some(name)) else {
            return Err(ConfigFileError::UnknownKey {
                path: path.to_owned(),
                line,
                key: name.to_owned(),
                hint: suggestion(name, serve),
            });
        };
        let bad = |message: String| ConfigFileError::BadValue {
            path: path.to_owned(),
            line,
            key: name.to_owned(),
            message,
        };
        let values = values_of(arg, value.get_ref()).map_err(bad)?;
        for v in &values {
            check_value(arg, v).map_err(bad)?;
        }
        entries.insert(
            name.to_owned(),
            FileEntry {
                values,
                flag: is_switch(arg),
                line,
            },
        );
    }
    Ok(ConfigFile {
        path: path.to_owned(),
        entries,
    })
}

/// The TOML value as the strings the flag would be given; a type the flag cannot take is an error.
fn values_of(arg: &Arg, value: &DeValue<'_>) -> Result<Vec<String>, String> {
    if is_switch(arg) {
        return match value {
            DeValue::Boolean(true) => Ok(vec!["true".to_owned()]),
            DeValue::Boolean(false) => Ok(Vec::new()),
            other => Err(format!(
                "expected true or false, found {}",
                other.type_str()
            )),
        };
    }
    if is_list(arg) {
        let delimiter = arg.get_value_delimiter().unwrap_or(',');
        return match value {
            DeValue::Array(items) => items
                .iter()
                .map(|item| {
                    scalar(item.get_ref()).ok_or_else(|| {
                        format!(
                            "expected an array of strings, found an array holding {}",
                            item.get_ref().type_str()
                        )
                    })
                })
                .collect(),
            DeValue::String(s) => Ok(s
                .split(delimiter)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
                .collect()),
            other => Err(format!(
                "expected an array of strings or a {delimiter}-separated string, found {}",
                other.type_str()
            )),
        };
    }
    scalar(value)
        .map(|v| vec![v])
        .ok_or_else(|| format!("expected a single value, found {}", value.type_str()))
}

/// A string or number as its text; anything else is not a flag's value.
fn scalar(value: &DeValue<'_>) -> Option<String> {
    match value {
        DeValue::String(s) => Some(s.to_string()),
        DeValue::Integer(i) => i128::from_str_radix(i.as_str(), i.radix())
            .ok()
            .map(|n| n.to_string()),
        DeValue::Float(f) => Some(f.as_str().replace('_', "")),
        _ => None,
    }
}

/// Runs the flag's own value parser on `value`, the message without clap's usage text.
///
/// clap keeps a parser's `parse_ref` to itself, so the flag is parsed alone in a command of
/// its own (without its `requires`, which name flags absent there).
fn check_value(arg: &Arg, value: &str) -> Result<(), String> {
    if is_switch(arg) {
        return Ok(());
    }
    let long = arg.get_long().unwrap_or_default();
    let alone = Command::new("serve").no_binary_name(true).arg(
        arg.clone()
            .requires(clap::builder::Resettable::<clap::Id>::Reset)
            .env(None::<&str>)
            .required(false),
    );
    alone
        .try_get_matches_from([format!("--{long}={value}")])
        .map(drop)
        .map_err(|e| clap_message(&e, arg, value))
}

/// The reason inside a clap error, as one line.
pub(crate) fn clap_message(err: &clap::Error, arg: &Arg, value: &str) -> String {
    let secret = arg.is_hide_env_values_set();
    if let Some(source) = std::error::Error::source(err) {
        let reason = source.to_string();
        return if secret || reason.contains(value) {
            reason
        } else {
            format!("invalid value {value:?}: {reason}")
        };
    }
    let rendered = err.to_string();
    let first = rendered.lines().next().unwrap_or_default();
    let first = first.strip_prefix("error: ").unwrap_or(first).to_owned();
    if secret {
        first.replace(value, "***")
    } else {
        first
    }
}

/// ` (did you mean `x`?)` for the nearest key, or nothing when none is near.
fn suggestion(name: &str, serve: &Command) -> String {
    keys(serve)
        .filter_map(|a| a.get_long())
        .map(|k| (edit_distance(name, k), k))
        .filter(|(d, k)| *d <= 3.max(k.len() / 3))
        .min()
        .map(|(_, k)| format!(" (did you mean `{k}`?)"))
        .unwrap_or_else(|| {
            " (keys are the `ssehub serve` flags without `--`; see ssehub.example.toml)".to_owned()
        })
}

/// Levenshtein distance; the key names are short, so the simple table is enough.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests;
