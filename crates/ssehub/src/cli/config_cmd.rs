//! `ssehub config check FILE` and `ssehub config print`: the configuration of `serve`, checked
//! or shown, without starting anything.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

use super::config_file;
use super::effective::{self, Resolved, Source};

/// The `config` subcommands.
#[derive(clap::Subcommand, Debug)]
pub(crate) enum ConfigCommand {
    /// Check a config file as `serve --config FILE` would, starting nothing (exit 0 if it
    /// would start, 1 with the key and line otherwise). The environment applies as for `serve`.
    Check {
        /// The TOML file.
        file: PathBuf,
    },
    /// Print the effective configuration of `serve` as TOML: every key, where its value came
    /// from, secrets masked.
    Print {
        /// The config file (also SSEHUB_CONFIG).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
}

/// Runs a `config` subcommand.
pub(crate) fn run(command: ConfigCommand) -> anyhow::Result<ExitCode> {
    match command {
        ConfigCommand::Check { file } => {
            let resolved = resolve_with(Some(file.clone()))?;
            check(&resolved)?;
            println!("{}: ok", file.display());
        }
        ConfigCommand::Print { config } => {
            let resolved = resolve_with(config)?;
            let text = render(&resolved);
            let _ = std::io::stdout().lock().write_all(text.as_bytes());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn resolve_with(file: Option<PathBuf>) -> anyhow::Result<Resolved> {
    let mut argv: Vec<OsString> = vec!["serve".into()];
    if let Some(file) = file {
        argv.push("--config".into());
        argv.push(file.into_os_string());
    }
    Ok(effective::resolve(&argv)?)
}

/// What `serve` checks before it creates or binds anything: values between keys, key and TLS
/// files readable.
pub(crate) fn check(resolved: &Resolved) -> anyhow::Result<()> {
    let args = &resolved.args;
    // No key means one is generated on the first run; check the rest with a stand-in.
    let key = args
        .publisher_jwt_key
        .clone()
        .unwrap_or_else(|| "config-check-stand-in-key".to_owned());
    super::serve::hub_config(args, key)?;
    for (flag, path) in [("tls-cert", &args.tls_cert), ("tls-key", &args.tls_key)] {
        if let Some(path) = path {
            std::fs::metadata(path)
                .with_context(|| format!("--{flag} {}: not readable", path.display()))?;
        }
    }
    Ok(())
}

/// The effective configuration as commented TOML.
pub(crate) fn render(resolved: &Resolved) -> String {
    let command = effective::serve_command();
    let mut out = String::from(
        "# Effective configuration of `ssehub serve`\n\
         # (flag > environment > config file > default; secrets masked).\n",
    );
    if let Some(file) = &resolved.file {
        let _ = writeln!(out, "# Config file: {}", file.path.display());
    }
    for arg in config_file::keys(&command) {
        let key = arg.get_long().unwrap_or_default();
        let source = resolved.sources.get(key).cloned().unwrap_or(Source::Unset);
        match effective::toml_value(&command, &resolved.matches, key) {
            Some(value) => {
                let _ = writeln!(out, "{key} = {value}  # {source}");
            }
            None => {
                let _ = writeln!(out, "# {key} = (not set)");
            }
        }
    }
    out
}
