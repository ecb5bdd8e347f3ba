//! What only the actix-web adapter has, over real HTTP on 127.0.0.1: the
//! ready-made services, the extractors (the receiver registered as is or in
//! `web::Data`, or missing) and the rejection as an actix-web `ResponseError`.
//! Everything a request can get as an answer, the same through every receiver
//! (the actix-web endpoint among them), is in `tests/reliability/parity.rs`
//! and the other modules of that suite, which also pins what actix-web does
//! differently: a handler keeps running after its client went away
//! (`hostile_load.rs`), and the rest of an oversized body is read and
//! discarded after the `413` (`body.rs`).
#![cfg(feature = "actix")]

#[path = "common/http.rs"]
mod http;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpResponse, HttpServer, post, web};
use http::{Framing, Reply, call_ended_of_len, fixture, send_raw};
use retell_webhooks::adapters::actix::{endpoint, function_service, service};
use retell_webhooks::adapters::{VerifiedBody, VerifiedEvent, VerifiedIncoming};
use retell_webhooks::{InboundResponse, Incoming, Verifier, WebhookEvent, sign};
use retell_webhooks::{Receiver, ReceiverConfig, RouteKind};
use serde_json::Value;

#[path = "common/handler.rs"]
mod handler;

use handler::TestHandler;

const KEY: &str = "key_actix_adapter_test";
const NOW: u64 = 1_785_423_600_000;
const LIMIT: usize = 8 * 1024 * 1024;

fn config() -> ReceiverConfig {
    ReceiverConfig::new()
}

/// A receiver whose one clock (its verifier's) stands at [`NOW`].
fn receiver(config: ReceiverConfig) -> Receiver {
    Receiver::new(Verifier::new(KEY).unwrap().with_clock(|| NOW), config)
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
        let server = HttpServer::new(move || App::new().configure(configure.clone()))
            .workers(1)
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

/// `endpoint` on the event route at `/webhook`.
fn start(handler: TestHandler, config: ReceiverConfig) -> Server {
    let receiver = receiver(config);
    let handler = Arc::new(handler);
    Server::serve(move |app| {
        app.route(
            "/webhook",
            endpoint(RouteKind::Events, &receiver, Arc::clone(&handler)),
        );
    })
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
// Services
// ---------------------------------------------------------------------------

#[actix_web::test]
async fn service_and_function_service_mount_at_their_paths() {
    let counts = Arc::new(Mutex::new(Vec::new()));
    let all = Arc::clone(&counts);
    let receiver = receiver(config());
    let server = Server::serve(move |app| {
        // `HttpServer` calls this once per worker: one handler per worker.
        let (events, events_counts) = TestHandler::new();
        let (tools, tools_counts) = TestHandler::new();
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
    let (handler, _) = TestHandler::new();
    let endpoint_server = start(handler, config());
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

#[actix_web::test]
async fn nothing_secret_in_debug_or_display() {
    use actix_web::ResponseError as _;
    use retell_webhooks::VerifyError;
    use retell_webhooks::adapters::WebhookRejection;
    use retell_webhooks::receiver::{RawRequest, Reason};

    let receiver = receiver(config());
    let debug = format!("{receiver:?}");
    assert!(
        !debug.contains(KEY) && debug.contains("REDACTED"),
        "{debug}"
    );
    // A forged signature's rejection, as an extractor would return it.
    let forged = sign(b"{}", "another_key", NOW);
    let request = RawRequest::post(b"{}").signature_values([forged.as_bytes()]);
    let (handler, _) = TestHandler::new();
    let dispatched = receiver
        .dispatch(&handler, RouteKind::Events, &request, |_| {
            std::future::pending()
        })
        .await;
    assert_eq!(
        dispatched.outcome.reason,
        Reason::Unauthorized(VerifyError::Mismatch)
    );
    let rejection = WebhookRejection::from(dispatched);
    assert_eq!(rejection.status(), 401);
    assert_eq!(rejection.status_code().as_u16(), 401);
    for text in [format!("{rejection:?}"), rejection.to_string()] {
        assert!(!text.contains(KEY), "{text}");
    }
}

/// Writes one keep-alive POST to `/webhook` and reads its answer (small,
/// with `Content-Length`); returns the head, lower-cased.
async fn keep_alive_post(
    stream: &mut tokio::net::TcpStream,
    signature: &str,
    body: &[u8],
) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let head = format!(
        "POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         X-Retell-Signature: {signature}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0; 4096];
    loop {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed before answering");
        answer.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&answer).to_ascii_lowercase();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse::<usize>().unwrap());
            if answer.len() >= end + 4 + length {
                return text[..end].to_owned();
            }
        }
    }
}

#[actix_web::test]
async fn a_forged_request_closes_its_connection_and_a_signed_one_keeps_it() {
    use tokio::io::AsyncReadExt;
    let (handler, _counts) = TestHandler::new();
    let server = start(handler, config());
    let body = fixture("call_ended_phone.json");
    let now_ms = NOW;

    let mut kept = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let signed = sign(&body, KEY, now_ms);
    for _ in 0..2 {
        let head = keep_alive_post(&mut kept, &signed, &body).await;
        assert!(head.starts_with("http/1.1 204"), "{head}");
        assert!(!head.contains("connection: close"), "{head}");
    }

    let mut forged = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let header = format!("v={now_ms},d={}", "0".repeat(64));
    let head = keep_alive_post(&mut forged, &header, &body).await;
    assert!(head.starts_with("http/1.1 401"), "{head}");
    assert!(head.contains("connection: close"), "{head}");
    let mut rest = [0; 16];
    let closed = tokio::time::timeout(std::time::Duration::from_secs(2), forged.read(&mut rest))
        .await
        .expect("still open 2 s after the 401");
    assert!(matches!(closed, Ok(0) | Err(_)), "{closed:?}");
}
