//! placeholder

pub mod auth;
pub mod cli;
pub mod hub;
