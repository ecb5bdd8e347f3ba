//! The route's deadline against a slow parse, through every receiver served
//! over HTTP: a correctly signed body that is accepted but takes long to parse
//! into typed events is still answered within the deadline (`2xx` when the
//! parse and the handler finish in time, `503` otherwise), and it does not
//! hold up the other deliveries' answers.
//!
//! The time bound is the property under test; figures are printed
//! (`--nocapture`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use retell_webhooks::WebhookEvent;

use crate::http::{Framing, send_raw};
use crate::receivers::{Behaviour, PATH, Probe, Receiver, config, http_vias, signature};

const DEADLINE: Duration = Duration::from_secs(1);

/// How late after the deadline an answer may come: the time to write it and
/// for a loaded machine to schedule it, not enough for a parse of these bodies.
const MARGIN: Duration = Duration::from_millis(500);

const BODIES: usize = 6;

/// A `call_analyzed` body of about 7.5 MiB (under the 8 MiB limit) whose
/// `transcript_with_tool_calls` holds millions of `0` items: each is kept as
/// an unknown item, so the body is accepted, but its typed parse is slow.
fn slow_to_parse(n: usize) -> Vec<u8> {
    const LEN: usize = 7_680 * 1024;
    let head = format!(
        r#"{{"event":"call_analyzed","call":{{"call_id":"call_slow_{n}","transcript_with_tool_calls":[0"#
    );
    let mut body = Vec::with_capacity(LEN + 16);
    body.extend_from_slice(head.as_bytes());
    while body.len() < LEN - 3 {
        body.extend_from_slice(b",0");
    }
    body.extend_from_slice(b"]}}");
    body
}

/// Sends `body` signed to `addr` and returns the status and how long the
/// answer took from the start of sending.
async fn deliver(addr: SocketAddr, body: &[u8]) -> (u16, Duration) {
    let sig = signature(body);
    let sent = Instant::now();
    let headers = [("X-Retell-Signature", sig.as_str())];
    let reply = send_raw(addr, "POST", PATH, &headers, body, Framing::Length).await;
    (reply.status, sent.elapsed())
}

/// Six such bodies at once with a 1 s deadline: every answer, `2xx` or `503`,
/// comes within the deadline and a margin of its sending. A parse that runs
/// on the async worker before the deadline is raced holds the answer (and the
/// worker's other requests) until it ends, whatever the deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deadline_bounds_the_answer_to_slow_parses() {
    let bodies: Vec<Arc<Vec<u8>>> = (0..BODIES).map(|n| Arc::new(slow_to_parse(n))).collect();
    let started = Instant::now();
    let event = WebhookEvent::from_slice(&bodies[0]).expect("the body is accepted");
    let parse = started.elapsed();
    let WebhookEvent::CallAnalyzed(call) = &event else {
        panic!("not call_analyzed: {event:?}");
    };
    let items = call.call.transcript_with_tool_calls.as_ref().map_or(0, Vec::len);
    assert!(items > 3_000_000, "{items} items");
    drop(event);
    println!(
        "slow parse: {} bytes, {items} items, one typed parse alone {parse:?}",
        bodies[0].len()
    );
    for via in http_vias() {
        let receiver = Receiver::start(
            via,
            Probe::new(Behaviour::Ok),
            config().with_handler_deadline(DEADLINE),
        )
        .await;
        let addr = receiver.addr();
        let runs: Vec<_> = bodies
            .iter()
            .map(|body| {
                let body = Arc::clone(body);
                tokio::spawn(async move { deliver(addr, &body).await })
            })
            .collect();
        let mut answers = Vec::new();
        for run in runs {
            answers.push(run.await.unwrap());
        }
        let mut slowest = Duration::ZERO;
        for (n, &(status, took)) in answers.iter().enumerate() {
            assert!(
                (200..300).contains(&status) || status == 503,
                "delivery {n} via {via}: {status} after {took:?}"
            );
            assert!(
                took <= DEADLINE + MARGIN,
                "delivery {n} via {via}: {status} after {took:?}, deadline {DEADLINE:?}"
            );
            slowest = slowest.max(took);
        }
        let statuses: Vec<u16> = answers.iter().map(|&(status, _)| status).collect();
        println!(
            "slow parses via {via}: statuses {statuses:?}, slowest answer {slowest:?} \
             (deadline {DEADLINE:?})"
        );
    }
}
