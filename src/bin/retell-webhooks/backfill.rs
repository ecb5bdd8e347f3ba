//! `retell-webhooks backfill`: rebuild from Retell's API what it could not
//! deliver, into the inbox; and the settings `listen --backfill-every`
//! shares with it.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use retell_webhooks::api::{Client, DEFAULT_BASE_URL};
use retell_webhooks::backfill::{Backfill, Outcome, Progress, RecoveredEvent, Report};
use retell_webhooks::inbox::{Inbox, State, Worker};

use crate::common;
use crate::forward::Forwarder;

/// How long `backfill --forward` waits for the app at most.
const FORWARD_LIMIT: Duration = Duration::from_secs(600);

/// Arguments of `backfill`.
#[derive(clap::Args)]
#[command(after_help = "\
Lists the calls and chats that started in the window, and for each that has \
ended stores the call_ended / call_analyzed (chat_ended / chat_analyzed) the \
inbox lacks, rebuilt from the call fetched in full, under the key Retell's own \
delivery has: whichever is stored first is processed, once. Rebuilt events \
carry the top-level key \"retell_webhooks_recovered\" (and, forwarded, the \
header X-Retell-Webhooks-Recovered).

Without --since the window starts at the watermark the last run stored, less \
--overlap (the first run: 2h back), and ends --settle before now. TIME is a \
duration ago (30m, 2h, 7d) or Unix milliseconds. One line per rebuilt event \
(ids only, never a body), then a summary. Exit status 1 when the run stopped \
early (it resumes from there next time).

The key comes from --key-file, RETELL_API_KEY or --key: Retell's API key, the \
same that signs the webhooks.")]
pub struct Args {
    /// The inbox: sqlite:PATH or a Redis URL.
    #[arg(long, value_name = "URL")]
    inbox: String,
    /// Calls and chats that started since TIME [default: from the watermark].
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// … and up to TIME [default: now less --settle].
    #[arg(long, value_name = "TIME", requires = "since")]
    until: Option<String>,
    /// List, look up and fetch, but store nothing (the watermark stays).
    #[arg(long)]
    dry_run: bool,
    /// Then POST the inbox's ready events to this http:// URL, as `listen
    /// --forward` does, until none is left (failures wait for a retry).
    #[arg(long, value_name = "URL", conflicts_with = "dry_run")]
    forward: Option<String>,
    /// Retell API key. Visible in `ps`: prefer --key-file or RETELL_API_KEY.
    #[arg(long, env = common::KEY_ENV, hide_env_values = true)]
    key: Option<String>,
    /// File holding the Retell API key (surrounding whitespace ignored).
    #[arg(long, value_name = "PATH", conflicts_with = "key")]
    key_file: Option<std::path::PathBuf>,
    #[command(flatten)]
    settings: Settings,
}

/// What `backfill` and `listen --backfill-every` share.
#[derive(clap::Args, Debug, Clone)]
pub struct Settings {
    /// Retell's API, or a stand-in for tests.
    #[arg(long, value_name = "URL", default_value = DEFAULT_BASE_URL)]
    api_base: String,
    /// How far before the watermark each run reaches: at least the longest
    /// call plus its analysis.
    #[arg(long, value_name = "DURATION", default_value = "2h")]
    overlap: String,
    /// How far behind now each window ends.
    #[arg(long, value_name = "DURATION", default_value = "5m")]
    settle: String,
    /// Requests per second to Retell's API at most.
    #[arg(long, value_name = "N", default_value_t = 10.0)]
    requests_per_second: f64,
    /// Pages of calls, and of chats, per run at most (500 per page).
    #[arg(long, value_name = "N", default_value_t = 50)]
    max_pages: u32,
}

impl Settings {
    /// The backfill into `store`, printing each rebuilt event.
    pub fn backfill(
        &self,
        key: &str,
        store: Arc<dyn Inbox>,
    ) -> Result<Backfill<Arc<dyn Inbox>>, ExitCode> {
        let usage = |flag: &str, why: String| {
            common::fail(common::EXIT_USAGE, format_args!("{flag}: {why}"), None)
        };
        let overlap = common::parse_duration(&self.overlap).map_err(|w| usage("--overlap", w))?;
        let settle = common::parse_duration(&self.settle).map_err(|w| usage("--settle", w))?;
        let client = Client::builder(key)
            .base_url(&self.api_base)
            .build()
            .map_err(|err| common::fail(common::EXIT_USAGE, err, None))?;
        Ok(Backfill::new(client, store)
            .with_overlap(overlap)
            .with_settle(settle)
            .with_first_lookback(overlap)
            .with_requests_per_second(self.requests_per_second)
            .with_max_pages(self.max_pages)
            .with_observer(print_event))
    }
}

/// `recovered call_ended call_1 started 2026-07-30 15:00:00 UTC: stored`.
fn print_event(event: &RecoveredEvent) {
    let started = event
        .start_ms
        .map(|ms| format!(" started {} UTC", common::format_ms(ms)))
        .unwrap_or_default();
    let outcome = match event.outcome {
        Outcome::Stored => "stored",
        Outcome::Duplicate => "Retell's delivery was stored first",
        Outcome::DryRun => "would be stored (dry run)",
        _ => "-",
    };
    common::print(format_args!(
        "{} recovered {} {}{started} key {:.12}: {outcome}",
        crate::listen::clock(),
        event.event.as_str(),
        common::printable_id(&event.id),
        event.key.to_hex(),
    ));
}

/// The summary of a run: one line per kind, then the totals.
pub fn print_report(report: &Report) {
    for (kind, progress) in [("calls", &report.calls), ("chats", &report.chats)] {
        if let Some(line) = describe(kind, progress) {
            common::print(line);
        }
    }
    let calls = report.calls.fetched + report.chats.fetched;
    let per_call = if calls == 0 {
        String::new()
    } else {
        format!(
            ", {:.2} per call fetched",
            report.requests as f64 / calls as f64
        )
    };
    common::print(format_args!(
        "{} events recovered, {} requests to Retell's API{per_call}, {:.1} s",
        report.recovered(),
        report.requests,
        report.elapsed.as_secs_f64()
    ));
}

fn describe(kind: &str, p: &Progress) -> Option<String> {
    let (from, to) = p.window?;
    let stored = if p.would_recover > 0 {
        format!("{} would be recovered (dry run)", p.would_recover)
    } else {
        format!(
            "{} recovered, {} delivered by Retell meanwhile",
            p.recovered, p.duplicates
        )
    };
    let watermark = p
        .watermark
        .map(|ms| format!("; watermark {} UTC", common::format_ms(ms)))
        .unwrap_or_default();
    let state = match (&p.error, p.complete) {
        (Some(err), _) => format!("; stopped: {err}"),
        (None, false) => "; stopped at the page limit (--max-pages)".to_owned(),
        (None, true) => String::new(),
    };
    Some(format!(
        "{kind}: started {} – {} UTC: {} listed, {} not ended, {} already stored, {} fetched, {stored}{watermark}{state}",
        common::format_ms(from),
        common::format_ms(to),
        p.listed,
        p.not_ended,
        p.already_stored,
        p.fetched,
    ))
}

/// Runs the subcommand.
pub fn run(args: &Args) -> ExitCode {
    let runtime = match common::runtime() {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    match runtime.block_on(backfill(args)) {
        Ok(code) => code,
        Err(code) => code,
    }
}

async fn backfill(args: &Args) -> Result<ExitCode, ExitCode> {
    let from_file = match &args.key_file {
        Some(path) => Some(common::read_key_file(path)?),
        None => None,
    };
    if from_file.is_none() && common::key_flag_on_command_line() {
        common::warn(
            "--key is visible to other users in `ps`: prefer --key-file or RETELL_API_KEY",
        );
    }
    let Some(key) = from_file.as_deref().or(args.key.as_deref()) else {
        return Err(common::fail(
            common::EXIT_USAGE,
            "backfill needs Retell's API key",
            Some("set RETELL_API_KEY, or pass --key-file PATH"),
        ));
    };
    let now_ms = common::now_ms()?;
    let window = match &args.since {
        Some(since) => {
            let usage = |why: String| common::fail(common::EXIT_USAGE, why, None);
            let from = common::parse_instant(since, now_ms).map_err(usage)?;
            let to = match &args.until {
                Some(until) => common::parse_instant(until, now_ms).map_err(usage)?,
                None => {
                    let settle = common::parse_duration(&args.settings.settle).map_err(usage)?;
                    now_ms.saturating_sub(u64::try_from(settle.as_millis()).unwrap_or(u64::MAX))
                }
            };
            if from > to {
                return Err(usage("--since is after --until".to_owned()));
            }
            Some((from, to))
        }
        None => None,
    };
    let store = crate::store::open(&args.inbox).await?;
    let backfill = args
        .settings
        .backfill(key, Arc::clone(&store))?
        .with_dry_run(args.dry_run);
    if args.dry_run {
        common::print("dry run: nothing is stored, the watermark stays");
    }
    let report = match window {
        Some((from, to)) => backfill.run_window(from, to).await,
        None => backfill.run().await,
    };
    print_report(&report);
    if let Some(url) = &args.forward {
        forward(url, key, store).await?;
    }
    match report.error() {
        Some(error) => Err(common::fail(
            common::EXIT_REJECTED,
            format_args!("the backfill stopped early: {error}"),
            Some("run it again: it resumes from the last event it stored"),
        )),
        None if !report.is_complete() => {
            common::warn("the page limit stopped the run: run it again to go on");
            Ok(ExitCode::from(common::EXIT_REJECTED))
        }
        None => Ok(ExitCode::SUCCESS),
    }
}

/// Forwards the inbox's ready events until none is ready or leased.
async fn forward(url: &str, key: &str, store: Arc<dyn Inbox>) -> Result<(), ExitCode> {
    let forwarder = Forwarder::new(url, key)
        .map_err(|why| common::fail(common::EXIT_USAGE, format_args!("--forward: {why}"), None))?;
    let worker = Worker::raw(Arc::clone(&store), forwarder)
        .with_poll_interval(Duration::from_millis(100))
        .spawn();
    let started = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now_ms = common::now_ms()?;
        let stats = store
            .stats(now_ms)
            .await
            .map_err(|err| common::fail(common::EXIT_USAGE, err, None))?;
        let busy = stats.count(State::Ready) + stats.count(State::Leased);
        if busy == 0 || started.elapsed() > FORWARD_LIMIT {
            if stats.retry > 0 {
                common::warn(format_args!(
                    "{} events wait for a retry: keep `listen --inbox … --forward …` running",
                    stats.retry
                ));
            }
            break;
        }
    }
    worker.shutdown().await;
    Ok(())
}
