//! The axum adapter over real HTTP on 127.0.0.1, with a minimal raw HTTP/1.1
//! client (so header names, duplicate headers and early responses are under the
//! test's control).
#![cfg(feature = "axum")]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use retell_webhooks::adapters::axum::{endpoint, function_router, router};
use retell_webhooks::adapters::{VerifiedBody, VerifiedEvent, VerifiedIncoming};
use retell_webhooks::{InboundResponse, Incoming, Verifier, WebhookEvent, sign};
use retell_webhooks::{
    Receiver, ReceiverConfig, RouteKind,
    receiver::{IpRange, Outcome, SourceAllowlist, UNAUTHORIZED_BODY},
};
use serde_json::Value;
use tokio::net::TcpListener;

#[path = "common/http.rs"]
mod http;

use http::{Framing, Reply, call_ended_of_len, fixture, long_call_analyzed, send_raw};

#[path = "common/handler.rs"]
mod handler;

use handler::{Mode, TestHandler};

const KEY: &str = "key_axum_adapter_test";
const NOW: u64 = 1_785_423_600_000;
const LIMIT: usize = 8 * 1024 * 1024;

// ---------------------------------------------------------------------------
// Handler under test
// ---------------------------------------------------------------------------

// ---------------------------------------------------------------------------
// Server and client
// ---------------------------------------------------------------------------

fn config() -> ReceiverConfig {
    ReceiverConfig::new()
}

fn verifier() -> Verifier {
    Verifier::new(KEY).unwrap().with_clock(|| NOW)
}

fn receiver(config: ReceiverConfig) -> Receiver {
    Receiver::new(verifier(), config)
}

/// Serves `app` on an ephemeral loopback port, with the peer address available.
async fn serve(app: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    addr
}

/// Router at `/webhook` plus the outcomes seen by a logging middleware.
async fn start(
    handler: TestHandler,
    config: ReceiverConfig,
) -> (SocketAddr, Arc<Mutex<Vec<Outcome>>>) {
    let outcomes = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&outcomes);
    let app = router("/webhook", &receiver(config), handler).layer(axum::middleware::map_response(
        move |response: Response| {
            let seen = Arc::clone(&seen);
            async move {
                if let Some(outcome) = response.extensions().get::<Outcome>() {
                    seen.lock().unwrap().push(outcome.clone());
                }
                response
            }
        },
    ));
    (serve(app).await, outcomes)
}

async fn post_signed(addr: SocketAddr, body: &[u8]) -> Reply {
    let sig = sign(body, KEY, NOW);
    send_raw(
        addr,
        "POST",
        "/webhook",
        &[
            ("Content-Type", "application/json"),
            ("X-Retell-Signature", &sig),
        ],
        body,
        Framing::Length,
    )
    .await
}

#[tokio::test]
async fn valid_event_is_204_and_outcome_is_attached() {
    let (handler, counts) = TestHandler::new(Mode::Ok);
    let (addr, outcomes) = start(handler, config()).await;
    let reply = post_signed(addr, &fixture("call_ended_phone.json")).await;
    assert_eq!(reply.status, 204);
    assert!(reply.body.is_empty());
    assert_eq!(counts.ended.load(Ordering::SeqCst), 1);
    let outcomes = outcomes.lock().unwrap();
    assert_eq!(outcomes.len(), 1);
    assert_eq!(outcomes[0].event.as_deref(), Some("call_ended"));
    assert!(outcomes[0].call_id.is_some());
}

#[tokio::test]
async fn every_verification_failure_is_the_same_401() {
    let (handler, counts) = TestHandler::new(Mode::Ok);
    let (addr, _) = start(handler, config()).await;
    let body = fixture("call_ended_phone.json");
    let good = sign(&body, KEY, NOW);
    let stale = sign(&body, KEY, NOW - 300_001);
    let wrong_key = sign(&body, "some_other_key", NOW);
    let malformed = format!("v={NOW},d=xyz");
    let cases: Vec<Vec<(&str, &str)>> = vec![
        vec![],
        vec![("X-Retell-Signature", malformed.as_str())],
        vec![("X-Retell-Signature", stale.as_str())],
        vec![("X-Retell-Signature", wrong_key.as_str())],
        vec![
            ("X-Retell-Signature", good.as_str()),
            ("X-Retell-Signature", good.as_str()),
        ],
        vec![
            ("X-Retell-Signature", ""),
            ("x-retell-signature", good.as_str()),
        ],
    ];
    let mut fingerprints = Vec::new();
    for headers in &cases {
        let reply = send_raw(addr, "POST", "/webhook", headers, &body, Framing::Length).await;
        assert_eq!(reply.status, 401, "{headers:?}");
        assert_eq!(reply.body, UNAUTHORIZED_BODY);
        fingerprints.push(reply.fingerprint());
    }
    assert!(fingerprints.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(counts.ended.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn header_name_is_case_insensitive_and_content_type_is_ignored() {
    let (handler, counts) = TestHandler::new(Mode::Ok);
    let (addr, _) = start(handler, config()).await;
    let body = fixture("call_ended_phone.json");
    let sig = sign(&body, KEY, NOW);
    for name in [
        "X-Retell-Signature",
        "x-retell-signature",
        "X-RETELL-SIGNATURE",
    ] {
        let reply = send_raw(
            addr,
            "POST",
            "/webhook",
            &[(name, &sig)],
            &body,
            Framing::Length,
        )
        .await;
        assert_eq!(reply.status, 204, "{name}");
    }
    // The signature is the authority, not the content type.
    for content_type in ["application/json; charset=utf-8", "text/plain"] {
        let headers = [
            ("X-Retell-Signature", sig.as_str()),
            ("Content-Type", content_type),
        ];
        let reply = send_raw(addr, "POST", "/webhook", &headers, &body, Framing::Length).await;
        assert_eq!(reply.status, 204, "{content_type}");
    }
    assert_eq!(counts.ended.load(Ordering::SeqCst), 5);
}

#[tokio::test]
async fn body_limit_is_exact_and_enforced_while_reading() {
    let (handler, counts) = TestHandler::new(Mode::Ok);
    let (addr, _) = start(handler, config()).await;

    let at_limit = call_ended_of_len(LIMIT);
    assert_eq!(post_signed(addr, &at_limit).await.status, 204);
    assert_eq!(counts.ended.load(Ordering::SeqCst), 1);

    let over = call_ended_of_len(LIMIT + 1);
    let reply = post_signed(addr, &over).await;
    assert_eq!(reply.status, 413);
    assert_eq!(reply.body, b"payload too large\n");

    // Chunked, no Content-Length: refused once the limit is crossed.
    let sig = sign(&over, KEY, NOW);
    let reply = send_raw(
        addr,
        "POST",
        "/webhook",
        &[("X-Retell-Signature", &sig)],
        &over,
        Framing::Chunked,
    )
    .await;
    assert_eq!(reply.status, 413);

    // A declared length over the limit is refused before any byte is read.
    let reply = send_raw(
        addr,
        "POST",
        "/webhook",
        &[],
        b"{}",
        Framing::DeclaredLength(100 * 1024 * 1024),
    )
    .await;
    assert_eq!(reply.status, 413);
    assert_eq!(counts.ended.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn configured_body_limit_applies() {
    let (handler, counts) = TestHandler::new(Mode::Ok);
    let (addr, _) = start(handler, config().with_body_limit(1024)).await;
    assert_eq!(
        post_signed(addr, &call_ended_of_len(1024)).await.status,
        204
    );
    assert_eq!(
        post_signed(addr, &call_ended_of_len(1025)).await.status,
        413
    );
    assert_eq!(counts.ended.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn long_call_payload_is_accepted() {
    let body = long_call_analyzed();
    assert!(
        (2_900_000..4_000_000).contains(&body.len()),
        "generated {} bytes",
        body.len()
    );
    let (handler, counts) = TestHandler::new(Mode::Ok);
    let (addr, _) = start(handler, config()).await;
    assert_eq!(post_signed(addr, &body).await.status, 204);
    assert_eq!(counts.analyzed.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn bad_json_after_a_valid_signature_is_400() {
    let (handler, counts) = TestHandler::new(Mode::Ok);
    let (addr, _) = start(handler, config()).await;
    for body in [&b"{\"event\":"[..], b"[1,2,3]", b"\xff\xfe", b""] {
        let reply = post_signed(addr, body).await;
        assert_eq!(reply.status, 400, "{body:?}");
    }
    assert_eq!(counts.ended.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn handler_error_is_500() {
    let (handler, counts) = TestHandler::new(Mode::Fail);
    let (addr, outcomes) = start(handler, config()).await;
    let reply = post_signed(addr, &fixture("call_ended_phone.json")).await;
    assert_eq!(reply.status, 500);
    assert_eq!(reply.body, b"internal server error\n");
    assert_eq!(counts.ended.load(Ordering::SeqCst), 1);
    let reason = outcomes.lock().unwrap()[0].reason.to_string();
    assert!(reason.contains("storage unavailable"), "{reason}");
}

#[tokio::test]
async fn handler_panic_is_500_and_the_server_keeps_serving() {
    let (handler, counts) = TestHandler::new(Mode::PanicOnce);
    let (addr, _) = start(handler, config()).await;
    let body = fixture("call_ended_phone.json");
    let reply = post_signed(addr, &body).await;
    assert_eq!(reply.status, 500);
    assert_eq!(reply.body, b"internal server error\n");
    assert_eq!(post_signed(addr, &body).await.status, 204);
    assert_eq!(counts.ended.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn handler_deadline_is_503() {
    let (handler, counts) = TestHandler::new(Mode::Hang);
    let config = config().with_handler_deadline(Duration::from_millis(50));
    let (addr, _) = start(handler, config).await;
    let reply = post_signed(addr, &fixture("call_ended_phone.json")).await;
    assert_eq!(reply.status, 503);
    assert_eq!(counts.ended.load(Ordering::SeqCst), 1);
    // Other requests are unaffected.
    assert_eq!(
        post_signed(addr, &fixture("call_started.json"))
            .await
            .status,
        204
    );
}

#[tokio::test]
async fn inbound_call_gets_the_handlers_json_answer() {
    let (handler, counts) = TestHandler::new(Mode::Ok);
    let (addr, _) = start(handler, config()).await;
    let reply = post_signed(addr, &fixture("call_inbound_request.json")).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let answer: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(
        answer["call_inbound"]["dynamic_variables"]["caller"], "+14155550142",
        "{answer}"
    );
    assert_eq!(counts.inbound.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn unknown_event_is_acknowledged() {
    let (handler, counts) = TestHandler::new(Mode::Ok);
    let (addr, _) = start(handler, config()).await;
    let body = br#"{"event":"call_teleported","call":{"call_id":"call_1"}}"#;
    let reply = post_signed(addr, body).await;
    assert!((200..300).contains(&reply.status), "{}", reply.status);
    assert_eq!(counts.unknown.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn wrong_method_and_encoding() {
    let (handler, counts) = TestHandler::new(Mode::Ok);
    let (addr, _) = start(handler, config()).await;
    let body = fixture("call_ended_phone.json");
    let sig = sign(&body, KEY, NOW);
    for method in ["GET", "PUT"] {
        let reply = send_raw(
            addr,
            method,
            "/webhook",
            &[("X-Retell-Signature", &sig)],
            &body,
            Framing::Length,
        )
        .await;
        assert_eq!(reply.status, 405, "{method}");
        assert_eq!(reply.header("allow"), Some("POST"));
    }
    let reply = send_raw(
        addr,
        "POST",
        "/webhook",
        &[("X-Retell-Signature", &sig), ("Content-Encoding", "gzip")],
        &body,
        Framing::Length,
    )
    .await;
    assert_eq!(reply.status, 415);
    assert_eq!(counts.ended.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn source_allowlist_ignores_spoofed_forwarded_for() {
    let body = fixture("call_ended_phone.json");
    let sig = sign(&body, KEY, NOW);
    let headers = [
        ("X-Retell-Signature", sig.as_str()),
        ("X-Forwarded-For", "100.20.5.228"),
    ];

    // 127.0.0.1 is not a trusted proxy: the header is ignored.
    let (handler, counts) = TestHandler::new(Mode::Ok);
    let strict = config().with_source_allowlist(SourceAllowlist::retell());
    let (addr, _) = start(handler, strict).await;
    let reply = send_raw(addr, "POST", "/webhook", &headers, &body, Framing::Length).await;
    assert_eq!(reply.status, 403);
    assert_eq!(counts.ended.load(Ordering::SeqCst), 0);

    // Behind a trusted proxy on 127.0.0.1, the forwarded address counts.
    let (handler, counts) = TestHandler::new(Mode::Ok);
    let loopback: IpRange = "127.0.0.0/8".parse().unwrap();
    let proxied =
        config().with_source_allowlist(SourceAllowlist::retell().with_trusted_proxies([loopback]));
    let (addr, _) = start(handler, proxied).await;
    let reply = send_raw(addr, "POST", "/webhook", &headers, &body, Framing::Length).await;
    assert_eq!(reply.status, 204);
    // ... and the signature is still required.
    let unsigned = send_raw(
        addr,
        "POST",
        "/webhook",
        &[("X-Forwarded-For", "100.20.5.228")],
        &body,
        Framing::Length,
    )
    .await;
    assert_eq!(unsigned.status, 401);
    assert_eq!(counts.ended.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn missing_verifier_fails_closed() {
    let (handler, counts) = TestHandler::new(Mode::Ok);
    let app = Router::new().route(
        "/webhook",
        endpoint(
            RouteKind::Events,
            &Receiver::unconfigured(ReceiverConfig::new()),
            Arc::new(handler),
        ),
    );
    let addr = serve(app).await;
    let reply = post_signed(addr, &fixture("call_ended_phone.json")).await;
    assert_eq!(reply.status, 500);
    assert_eq!(counts.ended.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn function_route_answers_with_the_handler_body() {
    let (handler, counts) = TestHandler::new(Mode::Ok);
    let addr = serve(function_router("/webhook", &receiver(config()), handler)).await;
    let reply = post_signed(addr, &fixture("custom_function_request.json")).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let answer: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(answer["booked"], true);
    let reply = post_signed(addr, &fixture("custom_function_request_args_only.json")).await;
    assert_eq!(reply.status, 200);
    assert_eq!(counts.functions.load(Ordering::SeqCst), 2);
}

#[derive(Clone)]
struct AppState {
    receiver: Receiver,
    seen: Arc<AtomicUsize>,
}

impl axum::extract::FromRef<AppState> for Receiver {
    fn from_ref(state: &AppState) -> Self {
        state.receiver.clone()
    }
}

async fn typed(State(state): State<AppState>, VerifiedEvent(event): VerifiedEvent) -> StatusCode {
    if matches!(event, WebhookEvent::CallEnded(_)) {
        state.seen.fetch_add(1, Ordering::SeqCst);
    }
    StatusCode::NO_CONTENT
}

async fn incoming(
    State(state): State<AppState>,
    VerifiedIncoming(incoming): VerifiedIncoming,
) -> Vec<u8> {
    state.seen.fetch_add(1, Ordering::SeqCst);
    match incoming {
        Incoming::CallInbound(request) => {
            let answer = InboundResponse::call().dynamic_variables([(
                "caller",
                request.call_inbound.from_number.unwrap_or_default(),
            )]);
            serde_json::to_vec(&answer).unwrap()
        }
        _ => b"{}".to_vec(),
    }
}

async fn raw(State(state): State<AppState>, VerifiedBody(body): VerifiedBody) -> StatusCode {
    assert!(body.starts_with(b"{"));
    state.seen.fetch_add(1, Ordering::SeqCst);
    StatusCode::ACCEPTED
}

#[tokio::test]
async fn extractors_verify_and_reject_like_the_router() {
    let seen = Arc::new(AtomicUsize::new(0));
    let state = AppState {
        receiver: receiver(config()),
        seen: Arc::clone(&seen),
    };
    let app = Router::new()
        .route("/webhook", post(typed))
        .route("/raw", post(raw))
        .route("/incoming", post(incoming))
        .with_state(state);
    let addr = serve(app).await;
    let body = fixture("call_ended_phone.json");
    assert_eq!(post_signed(addr, &body).await.status, 204);
    let sig = sign(&body, KEY, NOW);
    let reply = send_raw(
        addr,
        "POST",
        "/raw",
        &[("X-Retell-Signature", &sig)],
        &body,
        Framing::Length,
    )
    .await;
    assert_eq!(reply.status, 202);
    let inbound = fixture("call_inbound_request.json");
    let sig = sign(&inbound, KEY, NOW);
    let headers = [("X-Retell-Signature", sig.as_str())];
    let reply = send_raw(
        addr,
        "POST",
        "/incoming",
        &headers,
        &inbound,
        Framing::Length,
    )
    .await;
    assert_eq!(reply.status, 200);
    let answer: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(
        answer["call_inbound"]["dynamic_variables"]["caller"],
        "+14155550142"
    );
    assert_eq!(seen.load(Ordering::SeqCst), 3);

    // Same 401 bytes as the router.
    let (handler, _) = TestHandler::new(Mode::Ok);
    let (router_addr, _) = start(handler, config()).await;
    let wrong = sign(&body, "wrong", NOW);
    let from_extractor = send_raw(
        addr,
        "POST",
        "/webhook",
        &[("X-Retell-Signature", &wrong)],
        &body,
        Framing::Length,
    )
    .await;
    let from_router = send_raw(
        router_addr,
        "POST",
        "/webhook",
        &[("X-Retell-Signature", &wrong)],
        &body,
        Framing::Length,
    )
    .await;
    assert_eq!(from_extractor.status, 401);
    assert_eq!(from_extractor.fingerprint(), from_router.fingerprint());
    let too_big = call_ended_of_len(LIMIT + 1);
    assert_eq!(post_signed(addr, &too_big).await.status, 413);
    assert_eq!(post_signed(addr, b"not json").await.status, 400);
    assert_eq!(seen.load(Ordering::SeqCst), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_deliveries_on_a_multi_threaded_runtime() {
    let (handler, counts) = TestHandler::new(Mode::Ok);
    let (addr, outcomes) = start(handler, config()).await;
    let body = Arc::new(fixture("call_ended_phone.json"));
    let tasks: Vec<_> = (0..40)
        .map(|_| {
            let body = Arc::clone(&body);
            tokio::spawn(async move { post_signed(addr, &body).await.status })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), 204);
    }
    assert_eq!(counts.ended.load(Ordering::SeqCst), 40);
    assert_eq!(outcomes.lock().unwrap().len(), 40);
}

#[tokio::test]
async fn in_flight_cap_bounds_concurrent_requests() {
    let (handler, counts) = TestHandler::new(Mode::Gated);
    let (addr, _) = start(handler, config().with_max_in_flight(2)).await;
    let body = Arc::new(fixture("call_ended_phone.json"));
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let body = Arc::clone(&body);
            tokio::spawn(async move { post_signed(addr, &body).await.status })
        })
        .collect();
    // Two requests reach the handler; the other four wait for a place.
    counts.wait_for_active(2).await;
    counts.open_gate();
    for task in tasks {
        assert_eq!(task.await.unwrap(), 204);
    }
    assert_eq!(counts.ended.load(Ordering::SeqCst), 6);
    assert_eq!(counts.max_active.load(Ordering::SeqCst), 2);
}
