//! Retries, copies in flight and duplicates with deduplication on
//! (`ReceiverConfig::with_dedupe`), through every receiver; the alert for a
//! wrong key, and verified bodies the models cannot read.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use retell_webhooks::receiver::{Fallback, Reason};

use crate::receivers::{
    Behaviour, Probe, Receiver, SHORT_DEADLINE, all_vias, config, dedupe_config,
};

fn call_ended(id: &str) -> Vec<u8> {
    format!(r#"{{"event":"call_ended","call":{{"call_id":"{id}"}}}}"#).into_bytes()
}

/// Retell's retries after failures are processed; exactly one
/// attempt has the side effect; later copies are `204` without a handler call.
#[tokio::test]
async fn fail_fail_succeed_has_exactly_one_side_effect() {
    for behaviour in [Behaviour::FailFirst(2), Behaviour::PanicFirst(2)] {
        for via in all_vias() {
            let r = Receiver::start(via, Probe::new(behaviour), dedupe_config()).await;
            let body = call_ended("call_retried");
            let mut statuses = Vec::new();
            for _ in 0..5 {
                statuses.push(r.post_signed(&body).await.status);
            }
            assert_eq!(
                statuses,
                [500, 500, 204, 204, 204],
                "{behaviour:?} via {via}"
            );
            assert_eq!(r.probe.calls(), 3, "{behaviour:?} via {via}");
            assert_eq!(r.probe.effect_count(), 1, "{behaviour:?} via {via}");
        }
    }
}

/// A copy that arrives while the first is running gets `409`, never `2xx`;
/// once the first succeeds, copies get `204` without a handler call.
#[tokio::test]
async fn a_copy_in_flight_is_409_then_204() {
    for via in all_vias() {
        let r = Arc::new(Receiver::start(via, Probe::new(Behaviour::Gated), dedupe_config()).await);
        let body = call_ended("call_copied");
        let first = {
            let (r, body) = (Arc::clone(&r), body.clone());
            tokio::spawn(async move { r.post_signed(&body).await.status })
        };
        r.probe.entered().await;
        assert_eq!(r.post_signed(&body).await.status, 409, "via {via}");
        r.probe.open(1);
        assert_eq!(first.await.unwrap(), 204, "via {via}");
        assert_eq!(r.post_signed(&body).await.status, 204, "via {via}");
        assert_eq!(r.probe.calls(), 1, "via {via}");
        let reasons: Vec<Reason> = r.outcomes().into_iter().map(|o| o.reason).collect();
        assert_eq!(
            reasons,
            [Reason::InFlight, Reason::Handled, Reason::Duplicate],
            "via {via}"
        );
    }
}

/// Past the deadline the answer is `503`, the handler
/// future is dropped and the key released, so the retry reaches the handler.
#[tokio::test]
async fn the_deadline_is_503_and_releases_the_key() {
    for via in all_vias() {
        let config = dedupe_config().with_handler_deadline(SHORT_DEADLINE);
        let r = Receiver::start(via, Probe::new(Behaviour::Hang), config).await;
        let body = call_ended("call_stuck");
        assert_eq!(r.post_signed(&body).await.status, 503, "via {via}");
        assert_eq!(r.post_signed(&body).await.status, 503, "via {via}");
        assert_eq!(r.probe.calls(), 2, "via {via}: the key was not released");
    }
}

/// Requests that expect an answer are never deduplicated: Retell needs the
/// answer each time.
#[tokio::test]
async fn inbound_webhook_is_answered_every_time() {
    let body = crate::http::fixture("call_inbound_request.json");
    for via in all_vias() {
        let r = Receiver::start(via, Probe::new(Behaviour::Ok), dedupe_config()).await;
        for _ in 0..3 {
            assert_eq!(r.post_signed(&body).await.status, 200, "via {via}");
        }
        assert_eq!(r.probe.answers.load(Ordering::SeqCst), 3, "via {via}");
    }
}

/// 200 events × 3 concurrent copies: the handler runs exactly 200 times,
/// every other answer is `204` (already done) or `409` (in flight); sending
/// them all again afterwards gives `204` without a handler call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_storm_runs_each_handler_once() {
    for via in all_vias() {
        let r = Arc::new(
            Receiver::start_with(
                via,
                Probe::new(Behaviour::Yield(20)),
                dedupe_config(),
                retell_webhooks::RouteKind::Events,
                2,
            )
            .await,
        );
        let started = Instant::now();
        let bodies: Vec<Arc<Vec<u8>>> = (0..200)
            .map(|i| Arc::new(call_ended(&format!("call_storm_{i}"))))
            .collect();
        let tasks: Vec<_> = (0..3)
            .flat_map(|_| bodies.iter().cloned())
            .map(|body| {
                let r = Arc::clone(&r);
                tokio::spawn(async move { r.post_signed(&body).await.status })
            })
            .collect();
        let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
        for task in tasks {
            *statuses.entry(task.await.unwrap()).or_default() += 1;
        }
        let elapsed = started.elapsed();
        assert_eq!(r.probe.calls(), 200, "via {via}: {statuses:?}");
        assert!(r.probe.effects().values().all(|n| *n == 1), "via {via}");
        assert!(
            statuses.keys().all(|s| *s == 204 || *s == 409),
            "via {via}: {statuses:?}"
        );
        for body in &bodies {
            assert_eq!(r.post_signed(body).await.status, 204, "via {via}");
        }
        assert_eq!(r.probe.calls(), 200, "via {via}");
        println!("duplicate storm via {via}: 600 requests in {elapsed:?}, statuses {statuses:?}");
    }
}

/// A verified object the models cannot read goes to `on_unparsed`; `204`
/// only when the fallback accepts it, `400` otherwise (never a silent drop).
#[tokio::test]
async fn an_unreadable_verified_body_goes_to_the_fallback() {
    let body = br#"{"event":"call_ended","call":{"call_id":987654}}"#;
    for (fallback, status) in [(Fallback::Accepted, 204), (Fallback::Declined, 400)] {
        for via in all_vias() {
            let probe = Probe::with_fallback(Behaviour::Ok, fallback);
            let r = Receiver::start(via, probe, config()).await;
            assert_eq!(
                r.post_signed(body).await.status,
                status,
                "{fallback:?} via {via}"
            );
            assert_eq!(r.probe.unparsed.load(Ordering::SeqCst), 1, "via {via}");
            assert_eq!(r.probe.calls(), 0, "via {via}");
        }
    }
}

/// With the wrong key every delivery is the same `401`; each outcome says
/// what to check, and the 10th mismatch in a row raises a `key_alert` (once per
/// minute of the configured clock); a verified request resets the streak.
#[tokio::test]
async fn a_wrong_key_raises_a_rate_limited_alert() {
    let body = call_ended("call_wrong_key");
    let wrong = retell_webhooks::sign(&body, "key_without_the_badge", crate::receivers::NOW);
    for via in all_vias() {
        let r = Receiver::start(via, Probe::new(Behaviour::Ok), config()).await;
        for _ in 0..12 {
            let headers = [("X-Retell-Signature", wrong.as_str())];
            let reply = r
                .send("POST", &headers, &body, crate::http::Framing::Length)
                .await;
            assert_eq!(reply.status, 401, "via {via}");
        }
        assert_eq!(r.receiver().signature_mismatch_streak(), 12, "via {via}");
        let outcomes = r.outcomes();
        assert_eq!(outcomes.len(), 12, "via {via}");
        let alerts: Vec<_> = outcomes.iter().map(|o| o.key_alert).collect();
        let mut expected = vec![None; 12];
        expected[9] = Some(10);
        assert_eq!(alerts, expected, "via {via}");
        for outcome in &outcomes {
            assert!(outcome.to_string().contains("webhook badge"), "{outcome}");
        }
        assert_eq!(r.post_signed(&body).await.status, 204, "via {via}");
        assert_eq!(r.receiver().signature_mismatch_streak(), 0, "via {via}");
        assert_eq!(r.probe.calls(), 1);
    }
}
