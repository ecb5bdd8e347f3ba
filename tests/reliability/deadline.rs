//! The route's deadline against slow parses, through every receiver served
//! over HTTP: correctly signed bodies that are accepted but take long to parse
//! into typed events are still answered within the deadline (`2xx` when the
//! parse and the handler finish in time, `503` otherwise), and do not hold up
//! each other's answers.
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
/// for a loaded machine to schedule it, less than the parses of the bodies a
/// worker holds.
const MARGIN: Duration = Duration::from_millis(500);

/// Concurrent deliveries, three for each of the two workers.
const BODIES: usize = 6;

/// Bytes of each body: large enough to be parsed off the async workers, small
/// enough that reading and verifying six of them leaves most of the deadline
/// (in a debug build, each 7.5 MiB body's digest alone takes a quarter to
/// half a second of an async worker).
const LEN: usize = 2 * 1024 * 1024;

/// A `call_analyzed` body of about [`LEN`] bytes whose `transcript_with_tool_calls`
/// holds a million `0` items: each is kept as an unknown item, so the body is
/// accepted, but its typed parse is slow.
fn slow_to_parse(n: usize) -> Vec<u8> {
    let head = format!(
        r#"{{"event":"call_analyzed","call":{{"call_id":"call_slow_{n}","transcript_with_tool_calls":[0"#
    );
    let mut body = Vec::with_capacity(LEN + 1);
    body.extend_from_slice(head.as_bytes());
    while body.len() < LEN - 3 {
        body.extend_from_slice(b",0");
    }
    body.extend_from_slice(b"]}}");
    body
}

/// Waits (at most 30 s) until this process has been nearly idle for 200 ms,
/// and returns how long that took: the parses a deadline cut short finish in
/// the background, and would otherwise slow the next receiver's reads.
async fn wait_for_idle_cpu() -> Duration {
    let started = Instant::now();
    let mut before = cpu_ticks();
    while started.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = cpu_ticks();
        // Clock ticks are 10 ms: at most 40 ms of CPU time in 200 ms.
        if now.saturating_sub(before) <= 4 {
            break;
        }
        before = now;
    }
    started.elapsed()
}

/// User and system CPU time of this process so far, in clock ticks (`0`
/// where `/proc` is not there).
fn cpu_ticks() -> u64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0;
    };
    // The fields after the command name, from the state (field 3) on.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    fields
        .get(11..13)
        .map_or(0, |t| t.iter().filter_map(|f| f.parse::<u64>().ok()).sum())
}

/// Sends `body` with its signature `sig` to `addr` and returns the status and
/// how long the answer took from the start of sending.
async fn deliver(addr: SocketAddr, body: &[u8], sig: &str) -> (u16, Duration) {
    let sent = Instant::now();
    let headers = [("X-Retell-Signature", sig)];
    let reply = send_raw(addr, "POST", PATH, &headers, body, Framing::Length).await;
    (reply.status, sent.elapsed())
}

/// Six such bodies at once with a 1 s deadline: every answer, `2xx` or `503`,
/// comes within the deadline and a margin of its sending. A parse that runs
/// on an async worker before the deadline is raced holds its answer, and the
/// answers of the worker's other requests, until it ends, whatever the
/// deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deadline_bounds_the_answer_to_slow_parses() {
    let _heavy = crate::HEAVY.lock().await;
    let bodies: Vec<Arc<Vec<u8>>> = (0..BODIES).map(|n| Arc::new(slow_to_parse(n))).collect();
    // Signed beforehand: signing on the runtime would hold up the servers.
    let started = Instant::now();
    let sigs: Vec<Arc<str>> = bodies.iter().map(|b| signature(b).into()).collect();
    let signing = started.elapsed() / BODIES as u32;
    let started = Instant::now();
    let event = WebhookEvent::from_slice(&bodies[0]).expect("the body is accepted");
    let parse = started.elapsed();
    let WebhookEvent::CallAnalyzed(call) = &event else {
        panic!("not call_analyzed: {event:?}");
    };
    let items = call
        .call
        .transcript_with_tool_calls
        .as_ref()
        .map_or(0, Vec::len);
    assert!(items > bodies[0].len() / 3, "{items} items");
    drop(event);
    println!(
        "slow parses: {} bytes, {items} items; one signature {signing:?}, one typed parse {parse:?}",
        bodies[0].len()
    );
    let mut late = Vec::new();
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
            .zip(&sigs)
            .map(|(body, sig)| {
                let (body, sig) = (Arc::clone(body), Arc::clone(sig));
                tokio::spawn(async move { deliver(addr, &body, &sig).await })
            })
            .collect();
        let mut answers = Vec::new();
        for run in runs {
            answers.push(run.await.unwrap());
        }
        let slowest = answers.iter().map(|&(_, took)| took).max().unwrap();
        let idle = wait_for_idle_cpu().await;
        println!(
            "slow parses via {via}: slowest answer {slowest:?} (deadline {DEADLINE:?}); \
             answers {answers:?}; idle again {idle:?} later"
        );
        for (n, &(status, took)) in answers.iter().enumerate() {
            if !((200..300).contains(&status) || status == 503) || took > DEADLINE + MARGIN {
                late.push(format!("delivery {n} via {via}: {status} after {took:?}"));
            }
        }
    }
    assert!(
        late.is_empty(),
        "answers not within {DEADLINE:?} + {MARGIN:?}: {late:#?}"
    );
}
