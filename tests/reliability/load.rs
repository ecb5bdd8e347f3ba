//! Load over real HTTP on 127.0.0.1 for every receiver served over HTTP
//! (axum, actix-web and the tower service on hyper): many distinct events,
//! handlers that wait, the in-flight cap, mixed traffic and long calls at once.
//! A storm of duplicates is in [`crate::idempotency`]; that the dedupe store
//! stays within its capacity is a unit test of `MemoryDedupe`.
//! Bounded counts; the assertions are on counts, never on timings. Elapsed
//! times are printed (`--nocapture`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use retell_webhooks::RouteKind;

use crate::http::Framing;
use crate::receivers::{Behaviour, Probe, Receiver, Via, config, http_vias, signature};

const CONCURRENCY: usize = 64;

async fn start(via: Via, behaviour: Behaviour) -> Arc<Receiver> {
    // These tests count answers, not times: a debug build on a busy 2-core
    // machine may take seconds per 3 MiB body, so the answer deadline and the
    // read timeout (tested in `hostile_load`) are out of the way here.
    let config = config()
        .with_handler_deadline(Duration::from_secs(120))
        .with_body_read_timeout(Duration::from_secs(120));
    Arc::new(Receiver::start_with(via, Probe::new(behaviour), config, RouteKind::Events, 2).await)
}

fn call_ended(id: &str) -> Vec<u8> {
    format!(r#"{{"event":"call_ended","call":{{"call_id":"{id}"}}}}"#).into_bytes()
}

/// Sends every `(headers, body)` over `CONCURRENCY` client tasks (one
/// connection per request, so up to `CONCURRENCY` at a time) and counts the
/// statuses.
async fn blast(
    r: &Arc<Receiver>,
    requests: Vec<(Option<String>, Arc<Vec<u8>>)>,
) -> BTreeMap<u16, usize> {
    let queue = Arc::new(std::sync::Mutex::new(requests));
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (r, queue) = (Arc::clone(r), Arc::clone(&queue));
            tokio::spawn(async move {
                let mut seen = BTreeMap::<u16, usize>::new();
                loop {
                    let Some((sig, body)) = queue.lock().unwrap().pop() else {
                        return seen;
                    };
                    let headers: Vec<(&str, &str)> = sig
                        .iter()
                        .map(|s| ("X-Retell-Signature", s.as_str()))
                        .collect();
                    let status = r
                        .send("POST", &headers, &body, Framing::Length)
                        .await
                        .status;
                    *seen.entry(status).or_default() += 1;
                }
            })
        })
        .collect();
    let mut total = BTreeMap::new();
    for worker in workers {
        for (status, n) in worker.await.unwrap() {
            *total.entry(status).or_default() += n;
        }
    }
    total
}

fn signed(body: Vec<u8>) -> (Option<String>, Arc<Vec<u8>>) {
    (Some(signature(&body)), Arc::new(body))
}

/// 1 000 distinct events over 64 concurrent connections: 1 000 × `204`,
/// each call id handled exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_distinct_events_over_64_connections() {
    let _heavy = crate::HEAVY.lock().await;
    for via in http_vias() {
        let r = start(via, Behaviour::Ok).await;
        let requests = (0..1000)
            .map(|i| signed(call_ended(&format!("call_distinct_{i}"))))
            .collect();
        let started = Instant::now();
        let statuses = blast(&r, requests).await;
        println!(
            "1000 events / 64 connections via {via}: {:?}",
            started.elapsed()
        );
        assert_eq!(statuses, BTreeMap::from([(204, 1000)]), "via {via}");
        let effects = r.probe.effects();
        assert_eq!(effects.len(), 1000, "via {via}");
        assert!(effects.values().all(|n| *n == 1), "via {via}");
        assert_eq!(
            r.outcomes().len(),
            1000,
            "via {via}: one outcome per request"
        );
    }
}

/// Without a clock: 64 handlers are all waiting at the same time (a gate
/// the test opens only once all 64 have started), so a waiting handler never
/// blocks the server; then all 64 finish with `204`. The in-flight cap is
/// raised to 64 here: at the default of 32, half of them would (rightly) queue
/// for an in-flight place, which [`the_in_flight_cap_bounds_concurrent_handlers`]
/// pins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_handlers_do_not_block_the_server() {
    for via in http_vias() {
        let config = config().with_max_in_flight(CONCURRENCY);
        let probe = Probe::new(Behaviour::Gated);
        let r = Arc::new(Receiver::start_with(via, probe, config, RouteKind::Events, 2).await);
        let started = Instant::now();
        let tasks: Vec<_> = (0..CONCURRENCY)
            .map(|i| {
                let r = Arc::clone(&r);
                tokio::spawn(async move {
                    r.post_signed(&call_ended(&format!("call_waiting_{i}")))
                        .await
                        .status
                })
            })
            .collect();
        for _ in 0..CONCURRENCY {
            r.probe.entered().await;
        }
        r.probe.open(CONCURRENCY);
        for task in tasks {
            assert_eq!(task.await.unwrap(), 204, "via {via}");
        }
        println!(
            "64 concurrently waiting handlers via {via}: {:?}",
            started.elapsed()
        );
        assert_eq!(r.probe.effect_count(), CONCURRENCY);
    }
}

/// The in-flight cap of the receivers served over HTTP holds across
/// connections and across actix-web's workers: with two places, six concurrent
/// deliveries reach the handler two at a time while the others wait for a
/// place, and all six are answered `204`. (The entry point leaves the places
/// to its caller: `Receiver::in_flight_permit`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_in_flight_cap_bounds_concurrent_handlers() {
    for via in http_vias() {
        let config = config().with_max_in_flight(2);
        let probe = Probe::new(Behaviour::Gated);
        let r = Arc::new(Receiver::start_with(via, probe, config, RouteKind::Events, 2).await);
        let tasks: Vec<_> = (0..6)
            .map(|i| {
                let r = Arc::clone(&r);
                tokio::spawn(async move {
                    r.post_signed(&call_ended(&format!("call_cap_{i}")))
                        .await
                        .status
                })
            })
            .collect();
        // Two requests reach the handler; the other four wait for a place.
        r.probe.entered().await;
        r.probe.entered().await;
        r.probe.open(6);
        for task in tasks {
            assert_eq!(task.await.unwrap(), 204, "via {via}");
        }
        assert_eq!(r.probe.calls(), 6, "via {via}");
        assert_eq!(r.probe.most_waiting(), 2, "via {via}");
    }
}

/// Valid, badly signed and oversized deliveries all at once: every valid
/// one is handled once, the others are `401` / `413`. The oversized count is
/// scaled down from 100 to 8 (9 MiB each) to keep the suite fast.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_mixed_traffic_every_valid_event_is_handled() {
    let _heavy = crate::HEAVY.lock().await;
    let oversized = Arc::new(vec![b'x'; 9 * 1024 * 1024]);
    let oversized_sig = signature(&oversized);
    for via in http_vias() {
        let r = start(via, Behaviour::Ok).await;
        let mut requests = Vec::new();
        for i in 0..1000 {
            requests.push(signed(call_ended(&format!("call_mixed_{i}"))));
            let body = call_ended(&format!("call_mixed_bad_{i}"));
            let bad = retell_webhooks::sign(&body, "key_attacker", crate::receivers::NOW);
            requests.push((Some(bad), Arc::new(body)));
        }
        for _ in 0..8 {
            requests.push((Some(oversized_sig.clone()), Arc::clone(&oversized)));
        }
        // Interleave so every kind is in flight at once.
        requests.sort_by_key(|(_, body)| body.len() % 7);
        let started = Instant::now();
        let statuses = blast(&r, requests).await;
        println!(
            "1000 valid + 1000 bad signature + 8 × 9 MiB via {via}: {:?}",
            started.elapsed()
        );
        assert_eq!(
            statuses,
            BTreeMap::from([(204, 1000), (401, 1000), (413, 8)]),
            "via {via}"
        );
        let effects = r.probe.effects();
        assert_eq!(effects.len(), 1000, "via {via}");
        assert!(effects.keys().all(|id| !id.contains("bad")), "via {via}");
    }
}

/// 16 concurrent deliveries of a ~3 MiB two-hour call: 16 × `204`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_concurrent_long_calls() {
    let _heavy = crate::HEAVY.lock().await;
    let body = crate::http::long_call_analyzed();
    let sig = signature(&body);
    let body = Arc::new(body);
    for via in http_vias() {
        let r = start(via, Behaviour::Ok).await;
        let requests = (0..16)
            .map(|_| (Some(sig.clone()), Arc::clone(&body)))
            .collect();
        let started = Instant::now();
        let statuses = blast(&r, requests).await;
        println!(
            "16 × {} bytes via {via}: {:?}",
            body.len(),
            started.elapsed()
        );
        assert_eq!(statuses, BTreeMap::from([(204, 16)]), "via {via}");
        assert_eq!(r.probe.calls(), 16, "via {via}");
    }
}
