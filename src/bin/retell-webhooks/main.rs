//! `retell-webhooks`: sign and check Retell webhook requests from the command line.
//!
//! Each subcommand lives in its own module next to this file; this file only holds
//! the argument definitions' entry point and the dispatch.
//!
//! Exit codes: `0` success, `1` the request was checked and rejected, `2` the
//! command could not run (bad arguments, unreadable input, invalid key).
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable,
    clippy::todo,
    clippy::unimplemented
)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod common;
mod sign;
mod verify;

/// Sign and verify Retell AI webhook requests (`X-Retell-Signature`).
#[derive(Debug, Parser)]
#[command(name = "retell-webhooks", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the `X-Retell-Signature` value Retell would send for a body.
    Sign(sign::Args),
    /// Check a body against an `X-Retell-Signature` value.
    Verify(verify::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Sign(args) => sign::run(&args),
        Command::Verify(args) => verify::run(&args),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
