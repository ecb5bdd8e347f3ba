//! What only the axum adapter has, over real HTTP on 127.0.0.1: the ready-made
//! routers and the extractors. Everything a request can get as an answer, the
//! same through every receiver (the axum endpoint among them), is in
//! `tests/reliability/parity.rs` and the other modules of that suite.
#![cfg(feature = "axum")]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use retell_webhooks::adapters::axum::{function_router, router};
use retell_webhooks::adapters::{VerifiedBody, VerifiedEvent, VerifiedIncoming};
use retell_webhooks::{InboundResponse, Incoming, Verifier, WebhookEvent, sign};
use retell_webhooks::{Receiver, ReceiverConfig};
use serde_json::Value;
use tokio::net::TcpListener;

#[path = "common/http.rs"]
mod http;

use http::{Framing, Reply, call_ended_of_len, fixture, send_raw};

#[path = "common/handler.rs"]
mod handler;

use handler::TestHandler;

const KEY: &str = "key_axum_adapter_test";
const NOW: u64 = 1_785_423_600_000;
const LIMIT: usize = 8 * 1024 * 1024;

fn config() -> ReceiverConfig {
    ReceiverConfig::new()
}

/// A receiver whose one clock (its verifier's) stands at [`NOW`].
fn receiver(config: ReceiverConfig) -> Receiver {
    Receiver::new(Verifier::new(KEY).unwrap().with_clock(|| NOW), config)
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

async fn post_signed_to(addr: SocketAddr, path: &str, body: &[u8]) -> Reply {
    let sig = sign(body, KEY, NOW);
    send_raw(
        addr,
        "POST",
        path,
        &[
            ("Content-Type", "application/json"),
            ("X-Retell-Signature", &sig),
        ],
        body,
        Framing::Length,
    )
    .await
}

async fn post_signed(addr: SocketAddr, body: &[u8]) -> Reply {
    post_signed_to(addr, "/webhook", body).await
}

/// `router` and `function_router` mount the event and the function route at
/// their paths, and merge into one application.
#[tokio::test]
async fn router_and_function_router_mount_at_their_paths() {
    let receiver = receiver(config());
    let (events, events_counts) = TestHandler::new();
    let (tools, tools_counts) = TestHandler::new();
    let app =
        router("/events", &receiver, events).merge(function_router("/tool", &receiver, tools));
    let addr = serve(app).await;
    let reply = post_signed_to(addr, "/events", &fixture("call_ended_phone.json")).await;
    assert_eq!(reply.status, 204);
    let tool_call = fixture("custom_function_request.json");
    let reply = post_signed_to(addr, "/tool", &tool_call).await;
    assert_eq!(reply.status, 200);
    let answer: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(answer["booked"], true);
    let unsigned = send_raw(addr, "POST", "/events", &[], b"{}", Framing::Length).await;
    assert_eq!(unsigned.status, 401);
    // `GET` is a custom-function method: it reaches verification.
    let get = send_raw(addr, "GET", "/tool", &[], b"", Framing::Length).await;
    assert_eq!(get.status, 401);
    let options = send_raw(addr, "OPTIONS", "/tool", &[], b"", Framing::Length).await;
    assert_eq!(options.status, 405);
    // The event route is not the function route, and the other way round.
    assert_eq!(
        post_signed_to(addr, "/events", &tool_call).await.status,
        400
    );
    let elsewhere = post_signed_to(addr, "/other", &tool_call).await;
    assert_eq!(elsewhere.status, 404);
    assert_eq!(events_counts.ended.load(Ordering::SeqCst), 1);
    assert_eq!(events_counts.functions.load(Ordering::SeqCst), 0);
    assert_eq!(tools_counts.functions.load(Ordering::SeqCst), 1);
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
    let (handler, _) = TestHandler::new();
    let router_addr = serve(router("/webhook", &receiver(config()), handler)).await;
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
