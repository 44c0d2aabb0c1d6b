//! The `ssehub` command: parses arguments and hands off to the library or a subcommand.

mod cli;

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("ssehub: error: {err:#}");
            ExitCode::from(1)
        }
    }
}
