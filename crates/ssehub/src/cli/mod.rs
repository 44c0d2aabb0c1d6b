//! Subcommand implementations behind `main.rs`: argument structs and `run` functions.

pub mod token;
