//! `retell-webhooks demo`: `listen` and `send` together, every sample once.

use std::process::ExitCode;

use hyper::StatusCode;
use retell_webhooks::{EventKind, samples};
use retell_webhooks::{ReceiverConfig, RouteKind};

use crate::common;
use crate::listen::Listener;
use crate::send::{Target, post};

/// The key the forged request is signed with (anything but the demo key).
const FORGED_KEY: &str = "key_forged_not_the_receivers_key";

/// Arguments of `demo`.
#[derive(clap::Args)]
#[command(after_help = "\
Starts the `listen` receiver on 127.0.0.1 with the public demo key, sends it \
every built-in sample signed with that key, then one request signed with \
another key. For each request it prints the receiver's line, then the status \
the client got. Exit status 0 when every signed sample got a 2xx answer and \
the forged one 401, 1 otherwise.")]
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
        ReceiverConfig::new(),
        shutdown,
    )
    .await?;
    common::print(format_args!(
        "demo: receiver on {} with the public demo key; sending {} signed samples and one forged request",
        receiver.base_url(),
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

    let _ = stop.send(());
    receiver.wait().await?;
    let total = samples::SAMPLES.len() + 1;
    if failures == 0 {
        common::print(format_args!(
            "demo: ok: {total} requests, every signed sample accepted, the forged one refused"
        ));
        Ok(ExitCode::SUCCESS)
    } else {
        Err(common::fail(
            common::EXIT_REJECTED,
            format_args!("demo: {failures} of {total} requests did not get the expected status"),
            None,
        ))
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
