//! `retell-webhooks verify`: check a body against an `X-Retell-Signature` value.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use retell_webhooks::{DEFAULT_TOLERANCE, Signature, Verifier, VerifyError};

use crate::common;

/// Arguments of `verify`.
#[derive(clap::Args)]
pub struct Args {
    /// Retell API key (the one with the webhook badge). Never printed.
    #[arg(long, env = common::KEY_ENV, hide_env_values = true)]
    key: String,
    /// The `X-Retell-Signature` header value, e.g. `v=1700000000000,d=07024c…`.
    #[arg(long, value_name = "HEADER", allow_hyphen_values = true)]
    signature: String,
    /// Check as if the time were this, in Unix milliseconds [default: now].
    #[arg(long, value_name = "MS")]
    now: Option<u64>,
    /// Replay window in milliseconds, both directions; 0 requires an exact match.
    #[arg(long, value_name = "N", default_value_t = default_tolerance_ms())]
    tolerance_ms: u64,
    /// File holding the exact body bytes; standard input when absent or `-`.
    #[arg(value_name = "FILE")]
    file: Option<PathBuf>,
}

fn default_tolerance_ms() -> u64 {
    u64::try_from(DEFAULT_TOLERANCE.as_millis()).unwrap_or(u64::MAX)
}

/// Prints `ok` and exits 0, or prints the reason and a hint and exits 1.
pub fn run(args: &Args) -> ExitCode {
    match check(args) {
        Ok(()) => {
            common::print("ok");
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

fn check(args: &Args) -> Result<(), ExitCode> {
    let verifier =
        common::verifier(&args.key)?.with_tolerance(Duration::from_millis(args.tolerance_ms));
    let now = match args.now {
        Some(ms) => ms,
        None => common::now_ms()?,
    };
    let body = common::read_body(args.file.as_deref())?;
    verifier
        .verify_at(&body, &args.signature, now)
        .map_err(|err| {
            let hint = hint(&err, &verifier, &body, &args.signature);
            common::fail(common::EXIT_REJECTED, &err, hint.as_deref())
        })
}

/// What to try next for a rejected request.
fn hint(err: &VerifyError, verifier: &Verifier, body: &[u8], header: &str) -> Option<String> {
    match err {
        VerifyError::TooOld { .. } | VerifyError::TooNew { .. } => {
            let signature = Signature::parse(header).ok()?;
            Some(if verifier.digest_matches(body, &signature) {
                format!(
                    "the digest matches this body and key: the signature is genuine but stale; \
                     pass --now {} to check it at its signing time",
                    signature.timestamp_ms()
                )
            } else {
                "the digest does not match this body and key either: besides the timestamp, \
                 the key or the body is wrong"
                    .to_owned()
            })
        }
        VerifyError::Mismatch => Some(
            "FILE must hold the body byte for byte as received (an editor or `echo` may add a \
             trailing newline; pretty-printing or re-encoding JSON changes the bytes), and the \
             key must be the Retell API key with the webhook badge"
                .to_owned(),
        ),
        VerifyError::MissingSignature
        | VerifyError::SignatureTooLong { .. }
        | VerifyError::Malformed(_) => Some(
            "pass the header value exactly as received and quote it for the shell, e.g. \
             --signature 'v=1700000000000,d=<64 hex digits>'"
                .to_owned(),
        ),
        _ => None,
    }
}
