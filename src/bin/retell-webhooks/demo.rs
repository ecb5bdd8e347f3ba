//! `retell-webhooks demo`: `listen` and `send` together, every sample once.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use hyper::StatusCode;
use retell_webhooks::inbox::{Inbox, RetrySchedule, Stats, Worker};
use retell_webhooks::{EventKind, samples};
use retell_webhooks::{ReceiverConfig, RouteKind};

use crate::common;
use crate::forward::Printer;
use crate::listen::Listener;
use crate::send::{Target, post};

/// The key the forged request is signed with (anything but the demo key).
const FORGED_KEY: &str = "key_forged_not_the_receivers_key";

/// Arguments of `demo`.
#[derive(clap::Args)]
#[command(after_help = "\
Starts the `listen` receiver on 127.0.0.1 with the public demo key and a \
durable inbox in a temporary SQLite file, sends it every built-in sample \
signed with that key, then one request signed with another key. For each \
request it prints the receiver's line, then the status the client got. The \
inbox's worker processes the stored events; the first attempt of \
call_analyzed fails, as an outage of the app's database would, and is \
retried a second later. Exit status 0 when every signed sample got a 2xx \
answer, the forged one 401, and every stored event was processed; 1 \
otherwise.")]
pub struct Args {
    /// Port for the receiver (0: any free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
}

/// Runs the demo.
pub fn run(args: &Args) -> ExitCode {
    let runtime = match common::runtime() {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    match runtime.block_on(demo(args.port)) {
        Ok(code) | Err(code) => code,
    }
}

async fn demo(port: u16) -> Result<ExitCode, ExitCode> {
    let verifier = common::verifier(common::DEMO_KEY)?;
    let dir = TempDir::new()?;
    let inbox_url = format!("sqlite:{}", dir.path.join("inbox.sqlite3").display());
    let store = crate::store::open(&inbox_url).await?;
    let worker = Worker::raw(
        Arc::clone(&store),
        Printer {
            fail_first: Some("call_analyzed"),
        },
    )
    .with_retry_schedule(RetrySchedule::new([Duration::from_secs(1)]).with_jitter_percent(0))
    .with_poll_interval(Duration::from_millis(100))
    .spawn();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        let _ = stopped.await;
    };
    let receiver = Listener::start(
        "127.0.0.1",
        port,
        "/webhook",
        "/function",
        verifier,
        ReceiverConfig::new().with_inbox_store(Arc::clone(&store)),
        shutdown,
    )
    .await?;
    common::print(format_args!(
        "demo: receiver on {} with the public demo key and an inbox in {}; sending {} signed samples and one forged request",
        receiver.base_url(),
        common::escape_for_terminal(inbox_url.as_bytes()),
        samples::SAMPLES.len()
    ));
    let mut failures = 0_usize;
    for sample in samples::SAMPLES {
        let expected = |status: StatusCode| status.is_success();
        let sent = exchange(&receiver, sample.route, sample.body, common::DEMO_KEY).await?;
        failures += usize::from(!report(sample.name, sent, expected, "2xx"));
    }
    // One request whose signature was made with another key: must be refused.
    let forged_kind = EventKind::CallEnded;
    let forged = samples::body(forged_kind.as_str()).unwrap_or_default();
    let sent = exchange(&receiver, RouteKind::Events, forged, FORGED_KEY).await?;
    let refused = |status: StatusCode| status == StatusCode::UNAUTHORIZED;
    let what = format!("forged {forged_kind}");
    failures += usize::from(!report(&what, sent, refused, "401"));

    let drained = drain(store.as_ref()).await;
    let _ = stop.send(());
    receiver.wait().await?;
    worker.shutdown().await;
    let total = samples::SAMPLES.len() + 1;
    match drained {
        Ok(stats) => common::print(format_args!(
            "demo: inbox: {} events processed, {} dead, none waiting",
            stats.done, stats.dead
        )),
        Err(why) => {
            common::print(format_args!("demo: inbox: {why}"));
            failures += 1;
        }
    }
    if failures == 0 {
        common::print(format_args!(
            "demo: ok: {total} requests, every signed sample accepted, the forged one refused, every stored event processed"
        ));
        Ok(ExitCode::SUCCESS)
    } else {
        Err(common::fail(
            common::EXIT_REJECTED,
            format_args!("demo: {failures} checks did not pass"),
            None,
        ))
    }
}

/// Waits (up to 30 s) until the worker has processed everything stored.
async fn drain(store: &dyn Inbox) -> Result<Stats, String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let now_ms = common::now_ms().map_err(|_| "the clock is before 1970".to_owned())?;
        let stats = store.stats(now_ms).await.map_err(|err| err.to_string())?;
        let waiting = stats.ready + stats.leased + stats.retry;
        if waiting == 0 && stats.dead == 0 {
            return Ok(stats);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!(
                "{waiting} events still waiting and {} dead after 30 s",
                stats.dead
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A directory removed when dropped.
struct TempDir {
    path: PathBuf,
}

impl TempDir {
    fn new() -> Result<Self, ExitCode> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_nanos());
        let path = std::env::temp_dir().join(format!(
            "retell-webhooks-demo-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&path).map_err(|err| {
            common::fail(
                common::EXIT_USAGE,
                format_args!("cannot create a temporary directory: {err}"),
                None,
            )
        })?;
        Ok(Self { path })
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Signs `body` with `key` at the current time and posts it to the route's URL.
async fn exchange(
    receiver: &Listener,
    route: RouteKind,
    body: &[u8],
    key: &str,
) -> Result<Result<StatusCode, String>, ExitCode> {
    let url = receiver.url(route);
    let target = Target::parse(&url)
        .map_err(|why| common::fail(common::EXIT_USAGE, format_args!("{url}: {why}"), None))?;
    let signature = retell_webhooks::sign(body, key, common::now_ms()?);
    Ok(post(&target, body.to_vec(), Some(&signature))
        .await
        .map(|answer| answer.status))
}

/// Prints the client's line; whether the status was the expected one.
fn report(
    what: &str,
    sent: Result<StatusCode, String>,
    expected: impl Fn(StatusCode) -> bool,
    wanted: &str,
) -> bool {
    match sent {
        Ok(status) if expected(status) => {
            common::print(format_args!("  sent {what}: got {}", status.as_u16()));
            true
        }
        Ok(status) => {
            common::print(format_args!(
                "  sent {what}: got {}, expected {wanted}",
                status.as_u16()
            ));
            false
        }
        Err(why) => {
            common::print(format_args!("  sent {what}: no answer: {why}"));
            false
        }
    }
}
