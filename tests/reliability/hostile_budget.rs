//! Forged bodies against the body budget and the in-flight places, through
//! every receiver served over HTTP. The forged header needs no key
//! (`v=<now>,d=<64 zeros>`): well formed and fresh, it passes the checks on
//! the head, and its digest can only be refuted once the whole body is in.
//! Meanwhile signed deliveries must go through.
//!
//! Outcomes and the time bounds that are the property under test are
//! asserted; figures are printed (`--nocapture`).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use crate::forged_bodies::{Attackers, Forged};
use crate::http::{Framing, call_ended_of_len, long_call_analyzed};
use crate::receivers::{Behaviour, NOW, PATH, Probe, Receiver, config, http_vias, signature};

/// The forged request of [`Attackers`], fresh for the receivers' clock.
fn forged_request(declared: usize, burst: usize, every: Duration) -> Forged {
    Forged {
        path: PATH.to_owned(),
        declared,
        burst,
        every,
        now_ms: || NOW,
    }
}

/// Every attacker connects from 127.0.0.1: these receivers have no
/// per-source limit.
fn localhost() -> [IpAddr; 1] {
    [IpAddr::V4(Ipv4Addr::LOCALHOST)]
}

/// Sends `body` signed and returns the status and how long the answer took.
async fn deliver(receiver: &Receiver, body: &[u8]) -> (u16, Duration) {
    let sig = signature(body);
    let sent = Instant::now();
    let reply = receiver
        .send(
            "POST",
            &[("X-Retell-Signature", sig.as_str())],
            body,
            Framing::Length,
        )
        .await;
    (reply.status, sent.elapsed())
}

/// Forged bodies on the custom-function route (whose deadline is two
/// minutes): 33 connections declare 8 MiB, send 4 MiB and a byte, then one
/// byte every 4 s, enough to claim more than the whole body budget; 700 more
/// on the events route declare 100 bytes and trickle them. Both routes are
/// served by one `Receiver`, as `listen` does. 20 signed event deliveries
/// (975 B, 30 KB and 3 MB) are each answered `2xx`, the small ones within a
/// second and the 3 MB ones (whose verification and parse alone take a good
/// part of a second in a debug build on a loaded machine) within 5 s, far
/// from the 9 s deadline at which they were answered `503` when both routes
/// shared one budget: the function route has its own share of the budget and
/// its own places. The control: meanwhile a signed function call waits over
/// a second for its turn (the forged bodies really hold the function route's
/// share), and is answered once they are cut off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_function_bodies_do_not_starve_event_deliveries() {
    let _heavy = crate::HEAVY.lock().await;
    let large = long_call_analyzed();
    let bodies = [call_ended_of_len(975), call_ended_of_len(30_000), large];
    for via in http_vias() {
        let shared = retell_webhooks::Receiver::new(crate::receivers::verifier(), config());
        let (events, functions) =
            Receiver::start_both_routes(via, &shared, Behaviour::Ok, Behaviour::Ok).await;
        let functions = Arc::new(functions);
        let big = Attackers::start(
            functions.addr(),
            &localhost(),
            33,
            forged_request(8 * 1024 * 1024, 4 * 1024 * 1024 + 1, Duration::from_secs(4)),
        );
        let small = Attackers::start(
            events.addr(),
            &localhost(),
            700,
            forged_request(100, 1, Duration::from_millis(400)),
        );
        big.wait_for_bursts(33, Duration::from_secs(20)).await;
        small.wait_for_bursts(700, Duration::from_secs(20)).await;
        let waiting_call = function_call_kept_waiting(&functions)
            .await
            .unwrap_or_else(|| panic!("via {via}: the forged bodies never filled the budget"));
        let mut slowest = [Duration::ZERO; 3];
        for n in 0..20 {
            let kind = if n % 10 == 9 { 2 } else { n % 2 };
            let (status, took) = deliver(&events, &bodies[kind]).await;
            slowest[kind] = slowest[kind].max(took);
            assert!(
                (200..300).contains(&status),
                "delivery {n} ({} bytes) via {via}: {status}",
                bodies[kind].len()
            );
            let bound = Duration::from_secs(if kind == 2 { 5 } else { 1 });
            assert!(
                took < bound,
                "delivery {n} ({} bytes) via {via} took {took:?}",
                bodies[kind].len()
            );
        }
        let (status, call_took) = waiting_call.await.unwrap();
        assert_eq!(status, 200, "the waiting function call via {via}");
        let (big_answered, small_answered) = (big.stop(), small.stop());
        println!(
            "forged function bodies via {via}: 20/20 event deliveries, slowest \
             975 B {:?}, 30 KB {:?}, 3 MB {:?}; a function call waited {call_took:?}; \
             forged answered: {big_answered} large, {small_answered} small",
            slowest[0], slowest[1], slowest[2]
        );
    }
}

/// Sends signed function calls until one is not answered within a second:
/// the function route's budget is held. Returns that call, still running.
async fn function_call_kept_waiting(
    functions: &Arc<Receiver>,
) -> Option<JoinHandle<(u16, Duration)>> {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(20) {
        let functions = Arc::clone(functions);
        let call = tokio::spawn(async move {
            let body = br#"{"args":{"table_for":2}}"#;
            let sig = signature(body);
            let sent = Instant::now();
            let reply = functions
                .send(
                    "POST",
                    &[("X-Retell-Signature", sig.as_str())],
                    body,
                    Framing::Length,
                )
                .await;
            (reply.status, sent.elapsed())
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        if !call.is_finished() {
            return Some(call);
        }
    }
    None
}

/// Many forged connections each holding 512 KiB of the events route's budget,
/// more than all of it, and grabbing again whenever they are cut off: a 3 MB
/// signed delivery, which must wait for budget several times as its buffer
/// grows, gets its turn instead of losing every race to the small grabs
/// (with one budget for all, every delivery was answered `503` at the 9 s
/// deadline). Like Retell, each delivery is attempted up to 4 times (a `503`
/// is retried). Every attempt is answered within the deadline, and
/// deliveries get through (most of them here; the figures are printed): a
/// forged body that arrived before a delivery and waits for budget itself
/// can still evict it, so this attack is weakened, not closed. Scaled down (4 places: a 24 MiB share for events,
/// 60 attackers) from the default's 192 MiB and 540 attackers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_grabs_leave_large_deliveries_answered_within_the_deadline() {
    let _heavy = crate::HEAVY.lock().await;
    let large = long_call_analyzed();
    for via in http_vias() {
        let receiver = Receiver::start(
            via,
            Probe::new(Behaviour::Ok),
            config().with_max_in_flight(4),
        )
        .await;
        let grabs = Attackers::start(
            receiver.addr(),
            &localhost(),
            60,
            forged_request(1024 * 1024, 512 * 1024, Duration::from_secs(1)),
        );
        grabs.wait_for_bursts(48, Duration::from_secs(20)).await;
        let mut attempts = Vec::new();
        for _ in 0..4 {
            let mut tries = Vec::new();
            loop {
                let (status, took) = deliver(&receiver, &large).await;
                tries.push((status, took));
                if status == 204 || tries.len() == 4 {
                    break;
                }
            }
            attempts.push(tries);
        }
        let delivered = attempts
            .iter()
            .filter(|t| t.last().is_some_and(|t| t.0 == 204))
            .count();
        assert!(delivered >= 1, "via {via}: {attempts:?}");
        let deadline = receiver.config().handler_deadline() + Duration::from_millis(500);
        assert!(
            attempts.iter().flatten().all(|t| t.1 < deadline),
            "via {via}: {attempts:?}"
        );
        let answered = grabs.stop();
        let first = attempts.iter().filter(|t| t.len() == 1).count();
        println!(
            "512 KiB grabs via {via}: {delivered}/4 3 MB deliveries, {first}/4 at the first attempt; \
             attempts (status, time): {attempts:?}; {answered} grabs answered"
        );
    }
}
