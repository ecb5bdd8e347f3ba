//! `retell-webhooks inbox`: look into a durable inbox and replay from it.

use std::process::ExitCode;

use retell_webhooks::dedupe::DedupeKey;
use retell_webhooks::inbox::{Entry, Inbox, ListFilter, Replay, State};

use crate::common;

/// Arguments of `inbox`.
#[derive(clap::Args)]
#[command(after_help = "\
TIME is a duration ago (30m, 2h, 7d) or Unix milliseconds. Keys are the \
64-hex-digit event keys that `list` prints. Bodies are shown only by \
`show --body`. The store may be in use by a running `listen`: both see the \
same entries.")]
pub struct Args {
    /// The store: sqlite:PATH or a Redis URL.
    #[arg(long, value_name = "URL")]
    inbox: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Counts by state, and the age of the oldest ready event.
    Stats,
    /// Entries, oldest first.
    List {
        /// Only this state: ready, leased, retry, dead or done.
        #[arg(long)]
        state: Option<String>,
        /// Only entries received since TIME.
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// One entry; with --body, its body as stored.
    Show {
        /// The entry's key.
        key: String,
        /// Print the body too (it holds the call's data: transcripts, numbers).
        #[arg(long)]
        body: bool,
    },
    /// Make entries ready again (attempts reset): keys, every dead letter
    /// (--dead), or everything received since TIME (--received-since).
    Replay {
        /// Keys of the entries to replay.
        keys: Vec<String>,
        /// Every dead letter (with --since: received since TIME).
        #[arg(long, conflicts_with_all = ["keys", "received_since"])]
        dead: bool,
        /// With --dead: only those received since TIME.
        #[arg(long, value_name = "TIME", requires = "dead")]
        since: Option<String>,
        /// Every entry received since TIME, processed or not (after a bug fix).
        #[arg(long, value_name = "TIME", conflicts_with = "keys")]
        received_since: Option<String>,
    },
    /// Delete processed entries received before a time (they stop counting
    /// as duplicates).
    Prune {
        /// Processed entries older than this (a duration).
        #[arg(long, value_name = "DURATION", default_value = "7d")]
        older_than: String,
    },
}

/// Runs the subcommand.
pub fn run(args: &Args) -> ExitCode {
    let runtime = match common::runtime() {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    match runtime.block_on(inbox(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(code) => code,
    }
}

async fn inbox(args: &Args) -> Result<(), ExitCode> {
    let store = crate::store::open(&args.inbox).await?;
    let now_ms = common::now_ms()?;
    let failed =
        |err: retell_webhooks::inbox::InboxError| common::fail(common::EXIT_USAGE, err, None);
    match &args.command {
        Command::Stats => {
            let stats = store.stats(now_ms).await.map_err(failed)?;
            for state in State::ALL {
                common::print(format_args!("{state:<7} {}", stats.count(state)));
            }
            if let Some(oldest) = stats.oldest_ready_ms {
                common::print(format_args!(
                    "oldest ready event: received {} UTC ({} s ago)",
                    common::format_ms(oldest),
                    now_ms.saturating_sub(oldest) / 1000
                ));
            }
        }
        Command::List {
            state,
            since,
            limit,
        } => {
            let state = state
                .as_deref()
                .map(str::parse::<State>)
                .transpose()
                .map_err(|err| usage(&format!("--state: {}", err.0)))?;
            let since_ms = instant(since.as_deref(), now_ms)?;
            let filter = ListFilter {
                state,
                since_ms,
                limit: *limit,
            };
            let entries = store.list(filter).await.map_err(failed)?;
            for entry in &entries {
                common::print(line(entry));
            }
            common::print(format_args!("{} entries", entries.len()));
        }
        Command::Show { key, body } => {
            let key = parse_key(key)?;
            let Some((entry, bytes)) = store.show(&key).await.map_err(failed)? else {
                return Err(common::fail(
                    common::EXIT_REJECTED,
                    "no entry with this key",
                    None,
                ));
            };
            common::print(line(&entry));
            if let Some(error) = &entry.last_error {
                common::print(format_args!(
                    "last error: {}",
                    common::escape_for_terminal(error.as_bytes())
                ));
            }
            if *body {
                common::print(common::escape_for_terminal(&bytes));
            } else {
                common::print(format_args!(
                    "body: {} bytes (--body to print it)",
                    bytes.len()
                ));
            }
        }
        Command::Replay {
            keys,
            dead,
            since,
            received_since,
        } => {
            let mut selections = Vec::new();
            for key in keys {
                selections.push(Replay::Key(parse_key(key)?));
            }
            if *dead {
                let since_ms = instant(since.as_deref(), now_ms)?;
                selections.push(Replay::Dead { since_ms });
            }
            if let Some(from) = instant(received_since.as_deref(), now_ms)? {
                selections.push(Replay::Received {
                    from_ms: from,
                    to_ms: now_ms.saturating_add(1),
                });
            }
            if selections.is_empty() {
                return Err(usage("replay needs keys, --dead or --received-since"));
            }
            let mut total = 0;
            for which in selections {
                total += store.replay(which, now_ms).await.map_err(failed)?;
            }
            common::print(format_args!("{total} entries ready again"));
        }
        Command::Prune { older_than } => {
            let age = common::parse_duration(older_than)
                .map_err(|why| usage(&format!("--older-than: {why}")))?;
            let before = now_ms.saturating_sub(u64::try_from(age.as_millis()).unwrap_or(u64::MAX));
            let pruned = store.prune(before).await.map_err(failed)?;
            common::print(format_args!("{pruned} processed entries deleted"));
        }
    }
    Ok(())
}

/// `KEY STATE EVENT ORDER RECEIVED ATTEMPTS [DUE]`, ids escaped.
fn line(entry: &Entry) -> String {
    let event = entry.event.as_deref().map_or("-", common::printable_id);
    let order = entry.order.as_deref().map_or("-", common::printable_id);
    let due = entry
        .due_ms
        .map(|due| format!(" due {} UTC", common::format_ms(due)))
        .unwrap_or_default();
    format!(
        "{} {:<6} {event} {order} received {} UTC, {} failed attempts{due}",
        entry.key.to_hex(),
        entry.state,
        common::format_ms(entry.received_ms),
        entry.attempts
    )
}

fn parse_key(text: &str) -> Result<DedupeKey, ExitCode> {
    DedupeKey::from_hex(text).ok_or_else(|| usage("a key is 64 hex digits, as `list` prints it"))
}

fn instant(text: Option<&str>, now_ms: u64) -> Result<Option<u64>, ExitCode> {
    text.map(|text| common::parse_instant(text, now_ms))
        .transpose()
        .map_err(|why| usage(&why))
}

fn usage(message: &str) -> ExitCode {
    common::fail(common::EXIT_USAGE, message, None)
}
