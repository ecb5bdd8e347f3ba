//! The routes of one `Receiver` do not starve each other, through every
//! receiver served over HTTP: events and custom functions have in-flight
//! places of their own.

use std::sync::Arc;
use std::time::{Duration, Instant};

use retell_webhooks::RouteKind;

use crate::http::Framing;
use crate::receivers::{Behaviour, Receiver, config, http_vias, signature, verifier};

/// Retell signs the body and the timestamp only, so one captured signature of
/// a `GET` tool call (an empty body) can be replayed within its window. 32
/// replays on a slow tool hold every place of the function route; event
/// deliveries on the same `Receiver` are still answered at once, while every
/// place of the function route is taken (the control: with one set of places,
/// as before, the events would wait for the deadline).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replays_on_a_slow_tool_do_not_hold_the_places_of_events() {
    for via in http_vias() {
        let shared = retell_webhooks::Receiver::new(
            verifier(),
            config().with_function_deadline(Duration::from_secs(30)),
        );
        let (events, functions) =
            Receiver::start_both_routes(via, &shared, Behaviour::Ok, Behaviour::Gated).await;
        let functions = Arc::new(functions);
        let captured = signature(b"");
        let places = shared.config().max_in_flight();
        let mut replays = Vec::new();
        for _ in 0..places {
            let functions = Arc::clone(&functions);
            let captured = captured.clone();
            replays.push(tokio::spawn(async move {
                functions
                    .send(
                        "GET",
                        &[("X-Retell-Signature", captured.as_str())],
                        b"",
                        Framing::Length,
                    )
                    .await
                    .status
            }));
        }
        for _ in 0..places {
            functions.probe.entered().await;
        }
        assert_eq!(
            shared.available_permits(RouteKind::Function),
            0,
            "via {via}"
        );
        let mut slowest = Duration::ZERO;
        for n in 0..10 {
            let body = format!(r#"{{"event":"call_ended","call":{{"call_id":"call_route_{n}"}}}}"#);
            let sig = signature(body.as_bytes());
            let sent = Instant::now();
            let reply = events
                .send(
                    "POST",
                    &[("X-Retell-Signature", sig.as_str())],
                    body.as_bytes(),
                    Framing::Length,
                )
                .await;
            slowest = slowest.max(sent.elapsed());
            assert_eq!(reply.status, 204, "delivery {n} via {via}");
        }
        assert!(slowest < Duration::from_secs(1), "via {via}: {slowest:?}");
        assert_eq!(
            shared.available_permits(RouteKind::Events),
            places,
            "via {via}"
        );
        functions.probe.open(places);
        for replay in replays {
            assert_eq!(replay.await.unwrap(), 200, "via {via}");
        }
        println!(
            "{places} replays holding the function route via {via}: 10/10 events, slowest {slowest:?}"
        );
    }
}
