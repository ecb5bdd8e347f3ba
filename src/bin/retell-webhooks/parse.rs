//! `retell-webhooks parse`: read a body with the typed models.

use std::path::PathBuf;
use std::process::ExitCode;

use retell_webhooks::{Call, Chat, EventKind, FunctionCall, Incoming, ParseError, models::Untyped};
use serde::Serialize;

use crate::common;

/// What the body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// Anything POSTed to the event webhook URL (`Incoming`): the eleven
    /// events, events unknown to this version (kept as raw JSON) and the
    /// inbound call/SMS requests.
    Event,
    /// A bare Call object (no event envelope).
    Call,
    /// A bare Chat object (no event envelope).
    Chat,
    /// An inbound call or SMS request (`call_inbound` / `chat_inbound`).
    Inbound,
    /// A custom-function request (`{name, call, args}` or args only).
    Function,
}

/// Arguments of `parse`.
#[derive(clap::Args)]
#[command(after_help = "\
Prints the parsed value written back as compact JSON on standard output \
(exit 0): unknown fields and enum values are kept, so what you see is what \
your handler gets. On failure prints the JSON path, position, and when \
readable the event name and call/chat id on standard error (exit 1); never \
a value from the body.

With --untyped, prints instead the JSON paths this version keeps only as raw \
JSON (unknown keys, enum values and item kinds, values of an unexpected type), \
one per line with array indices written as [], each path once (exit 0). \
Nothing printed means every field was typed.")]
pub struct Args {
    /// What the body is.
    #[arg(long, value_enum, default_value_t = Kind::Event)]
    kind: Kind,
    /// Print the paths kept only as raw JSON instead of the parsed value.
    #[arg(long)]
    untyped: bool,
    /// File holding the body; standard input when absent or `-`.
    #[arg(value_name = "FILE")]
    file: Option<PathBuf>,
}

/// Why a body was refused.
enum Refusal {
    Parse(ParseError),
    /// `--kind inbound` on a body that is another event (`None`: unknown).
    NotInbound(Option<EventKind>),
    /// The parsed value could not be written back (not expected to happen).
    Serialize,
}

/// Prints the parsed value as compact JSON and exits 0, or prints where and
/// why it failed (never a value from the body) and exits 1.
pub fn run(args: &Args) -> ExitCode {
    let body = match common::read_body(args.file.as_deref()) {
        Ok(body) => body,
        Err(code) => return code,
    };
    let output = |json: Result<String, Refusal>, untyped: Vec<Untyped>| {
        if args.untyped {
            Ok(untyped_lines(&untyped))
        } else {
            json
        }
    };
    let printed = match args.kind {
        Kind::Event => Incoming::from_slice(&body)
            .map_err(Refusal::Parse)
            .and_then(|incoming| output(to_json(&incoming), incoming.untyped_paths())),
        Kind::Call => Call::from_slice(&body)
            .map_err(Refusal::Parse)
            .and_then(|call| output(to_json(&call), call.untyped_paths())),
        Kind::Chat => Chat::from_slice(&body)
            .map_err(Refusal::Parse)
            .and_then(|chat| output(to_json(&chat), chat.untyped_paths())),
        Kind::Inbound => match Incoming::from_slice(&body) {
            Ok(inbound @ (Incoming::CallInbound(_) | Incoming::ChatInbound(_))) => {
                output(to_json(&inbound), inbound.untyped_paths())
            }
            Ok(other) => Err(Refusal::NotInbound(other.kind())),
            Err(err) => Err(Refusal::Parse(err)),
        },
        Kind::Function => FunctionCall::from_slice(&body)
            .map_err(Refusal::Parse)
            .and_then(|call| output(to_json(&call), call.untyped_paths())),
    };
    match printed {
        Ok(text) => {
            // `--untyped` with nothing untyped prints nothing at all.
            if !text.is_empty() {
                common::print(text);
            }
            ExitCode::SUCCESS
        }
        Err(Refusal::Parse(err)) => report(&err),
        Err(Refusal::Serialize) => common::fail(
            common::EXIT_REJECTED,
            "the parsed body could not be written back as JSON",
            None,
        ),
        Err(Refusal::NotInbound(kind)) => {
            // Only names from the catalogue are echoed, never an arbitrary string.
            let got = kind.map_or_else(
                || "an event unknown to this version".to_owned(),
                |e| format!("event `{e}`"),
            );
            common::fail(
                common::EXIT_REJECTED,
                format_args!(
                    "not an inbound request: expected `call_inbound` or `chat_inbound`, got {got}"
                ),
                Some("use --kind event for events"),
            )
        }
    }
}

/// One line per distinct path, indices as `[]`, in order of first appearance.
fn untyped_lines(untyped: &[Untyped]) -> String {
    let mut seen = std::collections::BTreeSet::new();
    let mut out = String::new();
    for path in untyped.iter().map(Untyped::generic_path) {
        if seen.insert(path.clone()) {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(&path);
        }
    }
    out
}

fn to_json<T: Serialize>(value: &T) -> Result<String, Refusal> {
    // Serializing the models is not expected to fail (string keys, finite
    // numbers); should it ever, say so without a value.
    serde_json::to_string(value).map_err(|_| Refusal::Serialize)
}

/// `error: …` with the path, then the event and id when they could be read.
fn report(err: &ParseError) -> ExitCode {
    let mut context = format!("  at: {}", err.path());
    // Only names from the catalogue are echoed, never an arbitrary string.
    if let Some(event) = err.event().and_then(|e| e.parse::<EventKind>().ok()) {
        context.push_str(&format!("\n  event: {event}"));
    }
    if let Some(id) = err.call_id() {
        context.push_str(&format!("\n  call_id: {}", common::printable_id(id)));
    }
    if let Some(id) = err.chat_id() {
        context.push_str(&format!("\n  chat_id: {}", common::printable_id(id)));
    }
    common::fail(
        common::EXIT_REJECTED,
        format_args!("{err}\n{context}"),
        None,
    )
}
