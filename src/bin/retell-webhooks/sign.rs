//! `retell-webhooks sign`: produce an `X-Retell-Signature` value.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::common;

/// Arguments of `sign`.
#[derive(clap::Args)]
pub struct Args {
    /// Retell API key (the one with the webhook badge). Never printed.
    #[arg(long, env = common::KEY_ENV, hide_env_values = true)]
    key: String,
    /// Signing time in Unix milliseconds [default: now].
    #[arg(long, value_name = "MS")]
    timestamp: Option<u64>,
    /// File holding the exact body bytes; standard input when absent or `-`.
    #[arg(value_name = "FILE")]
    file: Option<PathBuf>,
}

/// Prints the header value for the body.
pub fn run(args: &Args) -> ExitCode {
    match sign(args) {
        Ok(header) => {
            common::print(header);
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

fn sign(args: &Args) -> Result<String, ExitCode> {
    // Refuse keys that the verifier would refuse (empty, stray whitespace).
    common::verifier(&args.key)?;
    let timestamp = match args.timestamp {
        Some(ms) => ms,
        None => common::now_ms()?,
    };
    let body = common::read_body(args.file.as_deref())?;
    Ok(retell_webhooks::sign(&body, &args.key, timestamp))
}
