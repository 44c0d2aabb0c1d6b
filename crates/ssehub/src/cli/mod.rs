//! Subcommands of the `ssehub` binary: one module per subcommand, each with its `Args` and `run`;
//! `serve`'s configuration file, its layering and its reload have modules of their own
//! (`config_file`, `effective`, `reload`).

mod banner;
mod completions;
mod config_cmd;
mod config_file;
mod effective;
mod follow;
mod listen;
mod man;
mod otlp;
mod parse;
mod publish;
#[cfg(unix)]
mod reload;
mod serve;
mod token;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Server-Sent Events hub, relay and tools.
#[derive(Parser, Debug)]
#[command(name = "ssehub", version, about, propagate_version = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the hub (Mercure publish/subscribe, history, relay, pages).
    Serve(Box<serve::ServeArgs>),
    /// Check or print the configuration of `serve` (config file, environment, flags).
    #[command(subcommand)]
    Config(config_cmd::ConfigCommand),
    /// Subscribe to any SSE URL and print its events (curl for SSE).
    Listen(listen::ListenArgs),
    /// Read an event stream on stdin, print one JSON line per dispatched event.
    Parse(parse::ParseArgs),
    /// Publish an update to a hub.
    Publish(publish::PublishArgs),
    /// Mint a JWT for publishers and subscribers.
    Token(token::TokenArgs),
    /// Print a shell completion script (bash, zsh, fish).
    Completions(completions::CompletionsArgs),
    /// Write manual pages (ssehub.1 and one per subcommand), for packagers.
    #[command(hide = true)]
    Man(man::ManArgs),
}

/// Runs the chosen subcommand.
pub(crate) fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Parse(args) => parse::run(args),
        Command::Listen(args) => runtime()?
            .block_on(listen::run(args))
            .map(|()| ExitCode::SUCCESS),
        // `serve` parses its words again: the config file layer needs clap's value sources.
        Command::Serve(_) => runtime()?.block_on(serve::run(serve_argv())),
        Command::Config(command) => config_cmd::run(command),
        Command::Publish(args) => runtime()?.block_on(publish::run(args)),
        Command::Token(args) => token::run(args).map(|()| ExitCode::SUCCESS),
        Command::Completions(args) => completions::run(args).map(|()| ExitCode::SUCCESS),
        Command::Man(args) => man::run(args).map(|()| ExitCode::SUCCESS),
    }
}

/// The command line from the word `serve` on (it is the first: `ssehub` has no global flags).
fn serve_argv() -> Vec<std::ffi::OsString> {
    std::env::args_os().skip(1).collect()
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // A publish's acknowledgement and the fan-out of its update are woken from the store's
        // writer thread (the runtime's global queue), and new requests arrive as I/O events;
        // by default a worker busy writing to subscribers looks at either only every 61 tasks.
        // Every 8: fanout100 p99 2.30-2.56 -> 1.92-1.98 ms in 3 paired runs (BENCHMARKS.md).
        .global_queue_interval(8)
        .event_interval(8)
        .build()?)
}
