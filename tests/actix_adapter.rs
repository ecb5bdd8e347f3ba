//! The actix-web adapter over real HTTP on 127.0.0.1, with a minimal raw
//! HTTP/1.1 client: the same cases as the axum adapter's tests, so both
//! frameworks answer alike, plus actix-specific ones.
#![cfg(feature = "actix")]

#[path = "common/http.rs"]
mod http;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::dev::{ServerHandle, Service as _};
use actix_web::{App, HttpResponse, HttpServer, post, web};
use http::{Framing, Reply, call_ended_of_len, fixture, long_call_analyzed, send_raw};
use retell_webhooks::adapters::actix::{endpoint, function_service, service};
use retell_webhooks::adapters::{VerifiedBody, VerifiedEvent, VerifiedIncoming};
use retell_webhooks::{InboundResponse, Incoming, Verifier, WebhookEvent, sign};
use retell_webhooks::{
    Receiver, ReceiverConfig, RouteKind,
    receiver::{IpRange, Outcome, SourceAllowlist, UNAUTHORIZED_BODY},
};
use serde_json::Value;

#[path = "common/handler.rs"]
mod handler;

use handler::{Mode, TestHandler};

const KEY: &str = "key_actix_adapter_test";
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

/// A running `HttpServer` with one worker on an ephemeral loopback port.
struct Server {
    addr: SocketAddr,
    handle: ServerHandle,
}

impl Server {
    fn serve<F>(configure: F) -> Self
    where
        F: Fn(&mut web::ServiceConfig) + Clone + Send + 'static,
    {
        Self::serve_app(move || App::new().configure(configure.clone()))
    }

    fn serve_app<F, T>(factory: F) -> Self
    where
        F: Fn() -> App<T> + Send + Clone + 'static,
        T: actix_web::dev::ServiceFactory<
                actix_web::dev::ServiceRequest,
                Config = (),
                Response = actix_web::dev::ServiceResponse,
                Error = actix_web::Error,
                InitError = (),
            > + 'static,
    {
        Self::serve_app_on(factory, 1)
    }

    /// Like [`serve_app`](Self::serve_app) with `workers` worker threads.
    fn serve_app_on<F, T>(factory: F, workers: usize) -> Self
    where
        F: Fn() -> App<T> + Send + Clone + 'static,
        T: actix_web::dev::ServiceFactory<
                actix_web::dev::ServiceRequest,
                Config = (),
                Response = actix_web::dev::ServiceResponse,
                Error = actix_web::Error,
                InitError = (),
            > + 'static,
    {
        let server = HttpServer::new(factory)
            .workers(workers)
            .disable_signals()
            .bind(("127.0.0.1", 0))
            .unwrap();
        let addr = server.addrs()[0];
        let server = server.run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Self { addr, handle }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Stops accepting at once; the test runtime ends with the test.
        drop(self.handle.stop(false));
    }
}

/// `endpoint` at `/webhook`, plus the outcomes seen by a logging middleware.
fn start(handler: TestHandler, config: ReceiverConfig) -> (Server, Arc<Mutex<Vec<Outcome>>>) {
    start_on(handler, config, 1)
}

/// Like [`start`] with `workers` worker threads.
fn start_on(
    handler: TestHandler,
    config: ReceiverConfig,
    workers: usize,
) -> (Server, Arc<Mutex<Vec<Outcome>>>) {
    let outcomes = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&outcomes);
    // One receiver for every worker: its clones share the in-flight places.
    let receiver = receiver(config);
    let handler = Arc::new(handler);
    let server = Server::serve_app_on(
        move || {
            let seen = Arc::clone(&seen);
            App::new()
                .wrap_fn(move |req, srv| {
                    let seen = Arc::clone(&seen);
                    let response = srv.call(req);
                    async move {
                        let response = response.await?;
                        if let Some(outcome) = response.response().extensions().get::<Outcome>() {
                            seen.lock().unwrap().push(outcome.clone());
                        }
                        Ok(response)
                    }
                })
                .route(
                    "/webhook",
                    endpoint(RouteKind::Events, &receiver, Arc::clone(&handler)),
                )
        },
        workers,
    );
    (server, outcomes)
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

// ---------------------------------------------------------------------------
// The same cases as the axum adapter
// ---------------------------------------------------------------------------

#[actix_web::test]
async fn valid_event_is_204_and_outcome_is_attached() {
    let (handler, counts) = TestHandler::new(Mode::Ok);
    let (server, outcomes) = start(handler, config());
    let reply = post_signed(server.addr, &fixture("call_ended_phone.json")).await;
    assert_eq!(reply.status, 204);
    assert!(reply.body.is_empty());
    assert_eq!(counts.ended.load(Ordering::SeqCst), 1);
    let outcomes = outcomes.lock().unwrap();
    assert_eq!(outcomes.len(), 1);
    assert_eq!(outcomes[0].status, 204);
    assert_eq!(outcomes[0].event.as_deref(), Some("call_ended"));
    assert!(outcomes[0].call_id.is_some());
}

#[actix_web::test]
async fn every_verification_failure_is_the_same_401() {
    let (handler, counts) = TestHandler::new(Mode::Ok);
    let (server, _) = start(handler, config());
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
        let reply = send_raw(
            server.addr,
            "POST",
            "/webhook",
            headers,
            &body,
            Framing::Length,
        )
        .await;
        assert_eq!(reply.status, 401, "{headers:?}");
        assert_eq!(reply.body, UNAUTHORIZED_BODY);
        fingerprints.push(reply.fingerprint());
    }
    assert!(fingerprints.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(counts.ended.load(Ordering::SeqCst), 0);
}

#[actix_web::test]
async fn header_name_is_case_insensitive() {
    let (handler, counts) = TestHandler::new(Mode::Ok);
    let (server, _) = start(handler, config());
    let body = fixture("call_ended_phone.json");
    let sig = sign(&body, KEY, NOW);
    for name in [
        "X-Retell-Signature",
        "x-retell-signature",
        "X-RETELL-SIGNATURE",
    ] {
        let reply = send_raw(
            server.addr,
            "POST",
            "/webhook",
            &[(name, &sig)],
            &body,
            Framing::Length,
        )
        .await;
        assert_eq!(reply.status, 204, "{name}");
    }
    assert_eq!(counts.ended.load(Ordering::SeqCst), 3);
}

#[actix_web::test]
async fn body_limit_is_exact_and_enforced_while_reading() {
    let (handler, counts) = TestHandler::new(Mode::Ok);
    let (server, _) = start(handler, config());

    let at_limit = call_ended_of_len(LIMIT);
    assert_eq!(post_signed(server.addr, &at_limit).await.status, 204);
    assert_eq!(counts.ended.load(Ordering::SeqCst), 1);

    let over = call_ended_of_len(LIMIT + 1);
    let reply = post_signed(server.addr, &over).await;
    assert_eq!(reply.status, 413);
    assert_eq!(reply.body, b"payload too large\n");

    // Chunked, no Content-Length: refused once the limit is crossed, and the
    // connection is closed instead of the rest being read and discarded.
    let sig = sign(&over, KEY, NOW);
    let reply = send_raw(
        server.addr,
        "POST",
        "/webhook",
        &[("X-Retell-Signature", &sig)],
        &over,
        Framing::Chunked,
    )
    .await;
    assert_eq!(reply.status, 413);
    assert_eq!(reply.header("connection"), Some("close"));

    // A declared length over the limit is refused before any byte is read.
    let reply = send_raw(
        server.addr,
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

#[actix_web::test]
async fn configured_body_limit_applies() {
    let (handler, counts) = TestHandler::new(Mode::Ok);
    let (server, _) = start(handler, config().with_body_limit(1024));
    let addr = server.addr;
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

#[actix_web::test]
async fn long_call_payload_is_accepted() {
    let body = long_call_analyzed();
    assert!(
        (2_900_000..4_000_000).contains(&body.len()),
        "generated {} bytes",
        body.len()
    );
    let (handler, counts) = TestHandler::new(Mode::Ok);
    let (server, _) = start(handler, config());
    assert_eq!(post_signed(server.addr, &body).await.status, 204);
    assert_eq!(counts.analyzed.load(Ordering::SeqCst), 1);
}

#[actix_web::test]
async fn bad_json_after_a_valid_signature_is_400() {
    let (handler, counts) = TestHandler::new(Mode::Ok);
    let (server, _) = start(handler, config());
    for body in [&b"{\"event\":"[..], b"[1,2,3]", b"\xff\xfe", b""] {
        let reply = post_signed(server.addr, body).await;
        assert_eq!(reply.status, 400, "{body:?}");
    }
    assert_eq!(counts.ended.load(Ordering::SeqCst), 0);
}

#[actix_web::test]
async fn handler_error_is_500() {
    let (handler, counts) = TestHandler::new(Mode::Fail);
    let (server, outcomes) = start(handler, config());
    let reply = post_signed(server.addr, &fixture("call_ended_phone.json")).await;
    assert_eq!(reply.status, 500);
    assert_eq!(reply.body, b"internal server error\n");
    assert_eq!(counts.ended.load(Ordering::SeqCst), 1);
    let reason = outcomes.lock().unwrap()[0].reason.to_string();
    assert!(reason.contains("storage unavailable"), "{reason}");
}

#[actix_web::test]
async fn handler_panic_is_500_and_the_server_keeps_serving() {
    let (handler, counts) = TestHandler::new(Mode::PanicOnce);
    let (server, _) = start(handler, config());
    let body = fixture("call_ended_phone.json");
    let reply = post_signed(server.addr, &body).await;
    assert_eq!(reply.status, 500);
    assert_eq!(reply.body, b"internal server error\n");
    assert_eq!(post_signed(server.addr, &body).await.status, 204);
    assert_eq!(counts.ended.load(Ordering::SeqCst), 2);
}

#[actix_web::test]
async fn handler_deadline_is_503() {
    let (handler, counts) = TestHandler::new(Mode::Hang);
    let config = config().with_handler_deadline(Duration::from_millis(50));
    let (server, _) = start(handler, config);
    let reply = post_signed(server.addr, &fixture("call_ended_phone.json")).await;
    assert_eq!(reply.status, 503);
    assert_eq!(counts.ended.load(Ordering::SeqCst), 1);
    // Other requests are unaffected.
    let reply = post_signed(server.addr, &fixture("call_started.json")).await;
    assert_eq!(reply.status, 204);
}

#[actix_web::test]
async fn inbound_call_gets_the_handlers_json_answer() {
    let (handler, counts) = TestHandler::new(Mode::Ok);
    let (server, _) = start(handler, config());
    let reply = post_signed(server.addr, &fixture("call_inbound_request.json")).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let answer: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(
        answer["call_inbound"]["dynamic_variables"]["caller"], "+14155550142",
        "{answer}"
    );
    assert_eq!(counts.inbound.load(Ordering::SeqCst), 1);
}

#[actix_web::test]
async fn unknown_event_is_acknowledged() {
    let (handler, counts) = TestHandler::new(Mode::Ok);
    let (server, _) = start(handler, config());
    let body = br#"{"event":"call_teleported","call":{"call_id":"call_1"}}"#;
    let reply = post_signed(server.addr, body).await;
    assert!((200..300).contains(&reply.status), "{}", reply.status);
    assert_eq!(counts.unknown.load(Ordering::SeqCst), 1);
}

#[actix_web::test]
async fn wrong_method_and_encoding() {
    let (handler, counts) = TestHandler::new(Mode::Ok);
    let (server, _) = start(handler, config());
    let body = fixture("call_ended_phone.json");
    let sig = sign(&body, KEY, NOW);
    for method in ["GET", "PUT"] {
        let reply = send_raw(
            server.addr,
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
        server.addr,
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

#[actix_web::test]
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
    let (server, _) = start(handler, strict);
    let reply = send_raw(
        server.addr,
        "POST",
        "/webhook",
        &headers,
        &body,
        Framing::Length,
    )
    .await;
    assert_eq!(reply.status, 403);
    assert_eq!(counts.ended.load(Ordering::SeqCst), 0);

    // Behind a trusted proxy on 127.0.0.1, the forwarded address counts.
    let (handler, counts) = TestHandler::new(Mode::Ok);
    let loopback: IpRange = "127.0.0.0/8".parse().unwrap();
    let proxied =
        config().with_source_allowlist(SourceAllowlist::retell().with_trusted_proxies([loopback]));
    let (server, _) = start(handler, proxied);
    let reply = send_raw(
        server.addr,
        "POST",
        "/webhook",
        &headers,
        &body,
        Framing::Length,
    )
    .await;
    assert_eq!(reply.status, 204);
    // ... and the signature is still required.
    let unsigned = send_raw(
        server.addr,
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

#[actix_web::test]
async fn missing_verifier_fails_closed() {
    let (handler, counts) = TestHandler::new(Mode::Ok);
    let handler = Arc::new(handler);
    let unconfigured = Receiver::unconfigured(ReceiverConfig::new());
    let server = Server::serve(move |app| {
        app.route(
            "/webhook",
            endpoint(RouteKind::Events, &unconfigured, Arc::clone(&handler)),
        );
    });
    let reply = post_signed(server.addr, &fixture("call_ended_phone.json")).await;
    assert_eq!(reply.status, 500);
    assert_eq!(reply.body, b"internal server error\n");
    assert_eq!(counts.ended.load(Ordering::SeqCst), 0);
}

#[actix_web::test]
async fn function_route_answers_with_the_handler_body() {
    let (handler, counts) = TestHandler::new(Mode::Ok);
    let handler = Arc::new(handler);
    let receiver = receiver(config());
    let server = Server::serve(move |app| {
        let function = endpoint(RouteKind::Function, &receiver, Arc::clone(&handler));
        app.route("/webhook", function);
    });
    let reply = post_signed(server.addr, &fixture("custom_function_request.json")).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let answer: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(answer["booked"], true);
    let args_only = fixture("custom_function_request_args_only.json");
    assert_eq!(post_signed(server.addr, &args_only).await.status, 200);
    assert_eq!(counts.functions.load(Ordering::SeqCst), 2);
}

// ---------------------------------------------------------------------------
// actix-specific
// ---------------------------------------------------------------------------

#[actix_web::test]
async fn handler_that_always_panics_never_takes_the_server_down() {
    let (handler, counts) = TestHandler::new(Mode::PanicAlways);
    let (server, outcomes) = start(handler, config());
    let body = fixture("call_ended_phone.json");
    for _ in 0..3 {
        assert_eq!(post_signed(server.addr, &body).await.status, 500);
    }
    assert_eq!(counts.ended.load(Ordering::SeqCst), 3);
    let reason = outcomes.lock().unwrap()[2].reason.to_string();
    assert!(reason.contains("panicked"), "{reason}");
}

#[actix_web::test]
async fn concurrent_deliveries_on_several_workers() {
    let (handler, counts) = TestHandler::new(Mode::Ok);
    let (server, outcomes) = start_on(handler, config(), 2);
    let body = Arc::new(fixture("call_ended_phone.json"));
    let tasks: Vec<_> = (0..40)
        .map(|_| {
            let body = Arc::clone(&body);
            let addr = server.addr;
            actix_web::rt::spawn(async move { post_signed(addr, &body).await.status })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), 204);
    }
    assert_eq!(counts.ended.load(Ordering::SeqCst), 40);
    assert_eq!(outcomes.lock().unwrap().len(), 40);
}

#[actix_web::test]
async fn service_and_function_service_mount_at_their_paths() {
    let counts = Arc::new(Mutex::new(Vec::new()));
    let all = Arc::clone(&counts);
    let receiver = receiver(config());
    let server = Server::serve(move |app| {
        // `HttpServer` calls this once per worker: one handler per worker.
        let (events, events_counts) = TestHandler::new(Mode::Ok);
        let (tools, tools_counts) = TestHandler::new(Mode::Ok);
        all.lock().unwrap().push((events_counts, tools_counts));
        app.service(service("/events", &receiver, events))
            .service(function_service("/tool", &receiver, tools));
    });
    let reply = post_signed_to(server.addr, "/events", &fixture("call_ended_phone.json")).await;
    assert_eq!(reply.status, 204);
    let tool_call = fixture("custom_function_request.json");
    assert_eq!(
        post_signed_to(server.addr, "/tool", &tool_call)
            .await
            .status,
        200
    );
    let unsigned = send_raw(server.addr, "POST", "/events", &[], b"{}", Framing::Length).await;
    assert_eq!(unsigned.status, 401);
    // `GET` is a custom-function method: it reaches verification.
    let get = send_raw(server.addr, "GET", "/tool", &[], b"", Framing::Length).await;
    assert_eq!(get.status, 401);
    let options = send_raw(server.addr, "OPTIONS", "/tool", &[], b"", Framing::Length).await;
    assert_eq!(options.status, 405);
    let counts = counts.lock().unwrap();
    let ended: usize = counts
        .iter()
        .map(|(e, _)| e.ended.load(Ordering::SeqCst))
        .sum();
    let functions: usize = counts
        .iter()
        .map(|(_, t)| t.functions.load(Ordering::SeqCst))
        .sum();
    assert_eq!((ended, functions), (1, 1));
}

// ---------------------------------------------------------------------------
// Extractors
// ---------------------------------------------------------------------------

#[derive(Default)]
struct Seen {
    events: AtomicUsize,
    bodies: AtomicUsize,
}

#[post("/webhook")]
async fn typed(seen: web::Data<Seen>, VerifiedEvent(event): VerifiedEvent) -> HttpResponse {
    if matches!(event, WebhookEvent::CallEnded(_)) {
        seen.events.fetch_add(1, Ordering::SeqCst);
    }
    HttpResponse::NoContent().finish()
}

#[post("/incoming")]
async fn incoming(VerifiedIncoming(incoming): VerifiedIncoming) -> HttpResponse {
    match incoming {
        Incoming::CallInbound(request) => {
            let caller = request.call_inbound.from_number.unwrap_or_default();
            let answer = InboundResponse::call().dynamic_variables([("caller", caller)]);
            HttpResponse::Ok()
                .content_type(InboundResponse::CONTENT_TYPE)
                .body(answer.to_body())
        }
        _ => HttpResponse::NoContent().finish(),
    }
}

#[post("/raw")]
async fn raw_body(seen: web::Data<Seen>, VerifiedBody(body): VerifiedBody) -> HttpResponse {
    assert!(body.starts_with(b"{"));
    seen.bodies.fetch_add(1, Ordering::SeqCst);
    HttpResponse::Accepted().finish()
}

fn extractor_app(
    seen: &web::Data<Seen>,
    receiver: Option<Receiver>,
    wrap_in_data: bool,
) -> impl Fn(&mut web::ServiceConfig) + Clone + Send + 'static {
    let seen = seen.clone();
    move |app: &mut web::ServiceConfig| {
        app.app_data(seen.clone());
        match (&receiver, wrap_in_data) {
            (Some(receiver), false) => {
                app.app_data(receiver.clone());
            }
            (Some(receiver), true) => {
                app.app_data(web::Data::new(receiver.clone()));
            }
            (None, _) => {}
        }
        app.service(typed).service(incoming).service(raw_body);
    }
}

#[actix_web::test]
async fn extractors_verify_and_reject_like_the_endpoint() {
    let body = fixture("call_ended_phone.json");
    let sig = sign(&body, KEY, NOW);
    let wrong = sign(&body, "wrong", NOW);
    let (handler, _) = TestHandler::new(Mode::Ok);
    let (endpoint_server, _) = start(handler, config());
    let from_endpoint = send_raw(
        endpoint_server.addr,
        "POST",
        "/webhook",
        &[("X-Retell-Signature", &wrong)],
        &body,
        Framing::Length,
    )
    .await;
    assert_eq!(from_endpoint.status, 401);

    // The receiver registered as is, and wrapped in `web::Data`.
    for wrap_in_data in [false, true] {
        let seen = web::Data::new(Seen::default());
        let app = extractor_app(&seen, Some(receiver(config())), wrap_in_data);
        let server = Server::serve(app);
        let addr = server.addr;
        assert_eq!(post_signed(addr, &body).await.status, 204);
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
        let inbound =
            post_signed_to(addr, "/incoming", &fixture("call_inbound_request.json")).await;
        assert_eq!(inbound.status, 200);
        let answer: Value = serde_json::from_slice(&inbound.body).unwrap();
        assert_eq!(
            answer["call_inbound"]["dynamic_variables"]["caller"],
            "+14155550142"
        );

        for path in ["/webhook", "/incoming", "/raw"] {
            // Same 401 bytes as the endpoint.
            let from_extractor = send_raw(
                addr,
                "POST",
                path,
                &[("X-Retell-Signature", &wrong)],
                &body,
                Framing::Length,
            )
            .await;
            assert_eq!(
                from_extractor.fingerprint(),
                from_endpoint.fingerprint(),
                "{path}"
            );
            assert_eq!(post_signed_to(addr, path, b"not json").await.status, 400);
            let gzip = send_raw(
                addr,
                "POST",
                path,
                &[("X-Retell-Signature", &sig), ("Content-Encoding", "gzip")],
                &body,
                Framing::Length,
            )
            .await;
            assert_eq!(gzip.status, 415, "{path}");
        }
        let too_big = call_ended_of_len(LIMIT + 1);
        assert_eq!(post_signed(addr, &too_big).await.status, 413);
        let chunked_sig = sign(&too_big, KEY, NOW);
        let chunked = send_raw(
            addr,
            "POST",
            "/webhook",
            &[("X-Retell-Signature", &chunked_sig)],
            &too_big,
            Framing::Chunked,
        )
        .await;
        assert_eq!(chunked.status, 413);
        let at_limit = call_ended_of_len(LIMIT);
        assert_eq!(post_signed(addr, &at_limit).await.status, 204);
        assert_eq!(seen.events.load(Ordering::SeqCst), 2);
        assert_eq!(seen.bodies.load(Ordering::SeqCst), 1);
    }
}

#[actix_web::test]
async fn extractors_without_configuration_fail_closed() {
    for receiver in [None, Some(Receiver::unconfigured(ReceiverConfig::new()))] {
        let seen = web::Data::new(Seen::default());
        let server = Server::serve(extractor_app(&seen, receiver, false));
        for path in ["/webhook", "/incoming", "/raw"] {
            let reply = post_signed_to(server.addr, path, &fixture("call_ended_phone.json")).await;
            assert_eq!(reply.status, 500, "{path}");
            assert_eq!(reply.body, b"internal server error\n");
        }
        assert_eq!(seen.events.load(Ordering::SeqCst), 0);
        assert_eq!(seen.bodies.load(Ordering::SeqCst), 0);
    }
}

#[test]
fn nothing_secret_in_debug_or_display() {
    use actix_web::ResponseError as _;
    use retell_webhooks::VerifyError;
    use retell_webhooks::adapters::WebhookRejection;
    use retell_webhooks::receiver::RawRequest;

    struct Nothing;
    impl retell_webhooks::WebhookHandler for Nothing {
        type Error = std::convert::Infallible;
    }

    let receiver = receiver(config());
    let debug = format!("{receiver:?}");
    assert!(
        !debug.contains(KEY) && debug.contains("REDACTED"),
        "{debug}"
    );
    // A forged signature's rejection, as an extractor would return it.
    let forged = sign(b"{}", "another_key", NOW);
    let request = RawRequest::post(b"{}").signature_values([forged.as_bytes()]);
    let dispatched = futures_ready(receiver.dispatch(
        &Nothing,
        RouteKind::Events,
        &request,
        |_| std::future::pending(),
    ));
    assert!(matches!(
        dispatched.outcome.reason,
        retell_webhooks::receiver::Reason::Unauthorized(VerifyError::Mismatch)
    ));
    let rejection = WebhookRejection::from(dispatched);
    assert_eq!(rejection.status(), 401);
    assert_eq!(rejection.status_code().as_u16(), 401);
    for text in [format!("{rejection:?}"), rejection.to_string()] {
        assert!(!text.contains(KEY), "{text}");
    }
}

#[actix_web::test]
async fn in_flight_cap_bounds_concurrent_requests_across_workers() {
    let (handler, counts) = TestHandler::new(Mode::Gated);
    let (server, _) = start_on(handler, config().with_max_in_flight(2), 2);
    let body = Arc::new(fixture("call_ended_phone.json"));
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let body = Arc::clone(&body);
            let addr = server.addr;
            actix_web::rt::spawn(async move { post_signed(addr, &body).await.status })
        })
        .collect();
    // Two requests reach the handler; the other four wait for a place, whichever
    // worker they landed on.
    counts.wait_for_active(2).await;
    counts.open_gate();
    for task in tasks {
        assert_eq!(task.await.unwrap(), 204);
    }
    assert_eq!(counts.ended.load(Ordering::SeqCst), 6);
    assert_eq!(counts.max_active.load(Ordering::SeqCst), 2);
}

/// Polls a future that completes without waiting (the core's dispatch of a
/// rejected request).
fn futures_ready<F: std::future::Future>(future: F) -> F::Output {
    use std::task::{Context, Poll, Waker};
    let mut future = std::pin::pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("dispatch of a rejected request waited"),
    }
}
