//! `retell-webhooks`: test a Retell webhook receiver locally, from the command line.
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

mod backfill;
mod common;
mod demo;
mod forward;
mod inbox;
mod listen;
mod metrics;
mod parse;
mod send;
mod sign;
mod store;
mod verify;

/// Test Retell AI webhook receivers locally: parse bodies, sign and verify
/// `X-Retell-Signature`, run a local receiver and send it signed samples.
#[derive(Parser)]
#[command(
    name = "retell-webhooks",
    version,
    long_about = None,
    after_help = "\
Try it with no configuration (public demo key, no public URL needed):
  retell-webhooks demo                           # receiver + every sample, one run
  retell-webhooks listen                         # in one terminal
  retell-webhooks send --url http://127.0.0.1:3000/webhook --event call_ended

Exit status: 0 success; 1 the request or body was checked and rejected; \
2 the command could not run (bad arguments, unreadable input, invalid key)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the `X-Retell-Signature` value Retell would send for a body.
    Sign(sign::Args),
    /// Check a body against an `X-Retell-Signature` value.
    Verify(verify::Args),
    /// Parse a body with the typed models and print it back as compact JSON.
    Parse(parse::Args),
    /// Run a local receiver (the crate's axum router) that logs one line per
    /// request.
    Listen(listen::Args),
    /// Sign a built-in sample or a file and POST it to a receiver (http://).
    Send(send::Args),
    /// Start the receiver, send it every sample and a forged request, check
    /// the answers.
    Demo(demo::Args),
    /// Look into a durable inbox (`listen --inbox`): stats, list, show,
    /// replay, prune.
    Inbox(inbox::Args),
    /// Rebuild from Retell's API the call_ended, call_analyzed, chat_ended
    /// and chat_analyzed events the inbox lacks (missed while down).
    Backfill(backfill::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Sign(args) => sign::run(&args),
        Command::Verify(args) => verify::run(&args),
        Command::Parse(args) => parse::run(&args),
        Command::Listen(args) => listen::run(&args),
        Command::Send(args) => send::run(&args),
        Command::Demo(args) => demo::run(&args),
        Command::Inbox(args) => inbox::run(&args),
        Command::Backfill(args) => backfill::run(&args),
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
