//! The tower service served by plain hyper 1.x over real HTTP on 127.0.0.1:
//! the same answers as the framework adapters.
#![cfg(feature = "tower")]

#[path = "common/http.rs"]
mod http;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use http::{Framing, send_raw};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use retell_webhooks::service::WebhookService;
use retell_webhooks::{CallEvent, Verifier, sign, unix_ms};
use retell_webhooks::{Receiver, ReceiverConfig, RouteKind, WebhookHandler, receiver::Outcome};

const KEY: &str = "key_9f3c2e1d7a8b4c6e0f5a2b3c";
const PATH: &str = "/retell/webhook";

#[derive(Default)]
struct Counting(AtomicUsize);

impl WebhookHandler for Counting {
    type Error = String;

    async fn on_call_ended(&self, event: CallEvent) -> Result<(), String> {
        self.0.fetch_add(1, Ordering::SeqCst);
        if event.call.call_id == "fails" {
            return Err("handler failed".into());
        }
        Ok(())
    }
}

async fn serve(config: ReceiverConfig, handler: Arc<Counting>) -> SocketAddr {
    let receiver = Receiver::new(Verifier::new(KEY).unwrap(), config);
    let service = WebhookService::new(&receiver, RouteKind::Events, handler).with_path(PATH);
    let service = TowerToHyperService::new(service);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let service = service.clone();
            tokio::spawn(async move {
                let http = hyper::server::conn::http1::Builder::new();
                let _ = http.serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    addr
}

fn signed(body: &[u8]) -> String {
    sign(body, KEY, unix_ms(std::time::SystemTime::now()).unwrap())
}

#[tokio::test]
async fn answers_like_the_adapters() {
    let handler = Arc::new(Counting::default());
    let addr = serve(
        ReceiverConfig::new().with_body_limit(4096),
        Arc::clone(&handler),
    )
    .await;
    let body = br#"{"event":"call_ended","call":{"call_id":"c1"}}"#;
    let sig = signed(body);
    let headers = [
        ("x-retell-signature", sig.as_str()),
        ("content-type", "application/json"),
    ];

    let ok = send_raw(addr, "POST", PATH, &headers, body, Framing::Length).await;
    assert_eq!(ok.status, 204);
    let chunked = send_raw(addr, "POST", PATH, &headers, body, Framing::Chunked).await;
    assert_eq!(chunked.status, 204);
    assert_eq!(handler.0.load(Ordering::SeqCst), 2);

    let unsigned = send_raw(addr, "POST", PATH, &[], body, Framing::Length).await;
    assert_eq!(unsigned.status, 401);
    assert_eq!(unsigned.body, b"invalid or missing signature\n");
    let tampered = br#"{"event":"call_ended","call":{"call_id":"c2"}}"#;
    let forged = send_raw(addr, "POST", PATH, &headers, tampered, Framing::Length).await;
    assert_eq!(forged.status, 401);

    let get = send_raw(addr, "GET", PATH, &[], b"", Framing::Length).await;
    assert_eq!((get.status, get.header("allow")), (405, Some("POST")));
    let elsewhere = send_raw(addr, "POST", "/other", &headers, body, Framing::Length).await;
    assert_eq!(elsewhere.status, 404);

    // Over the limit: refused from the declared length, and while reading a
    // chunked body that declares none.
    let big = vec![b' '; 5000];
    let declared = send_raw(addr, "POST", PATH, &headers, &big, Framing::Length).await;
    assert_eq!(declared.status, 413);
    let streamed = send_raw(addr, "POST", PATH, &headers, &big, Framing::Chunked).await;
    assert_eq!(streamed.status, 413);

    // A signed body that is not JSON is a 400; a handler error a 500.
    let junk = b"not json";
    let junk_sig = signed(junk);
    let bad = send_raw(
        addr,
        "POST",
        PATH,
        &[("x-retell-signature", &junk_sig)],
        junk,
        Framing::Length,
    )
    .await;
    assert_eq!(bad.status, 400);
    let failing = br#"{"event":"call_ended","call":{"call_id":"fails"}}"#;
    let failing_sig = signed(failing);
    let failed = send_raw(
        addr,
        "POST",
        PATH,
        &[("x-retell-signature", &failing_sig)],
        failing,
        Framing::Length,
    )
    .await;
    assert_eq!(failed.status, 500);
    assert_eq!(handler.0.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn the_outcome_rides_in_the_response_extensions() {
    use tower_service::Service as _;
    let receiver = Receiver::new(Verifier::new(KEY).unwrap(), ReceiverConfig::new());
    let mut service = WebhookService::new(&receiver, RouteKind::Events, Counting::default());
    let body = br#"{"event":"call_ended","call":{"call_id":"c9","duration_ms":"12"}}"#.to_vec();
    let request = ::http::Request::post("/hook")
        .header("x-retell-signature", signed(&body))
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .unwrap();
    let response = service.call(request).await.unwrap();
    assert_eq!(response.status(), 204);
    let outcome = response.extensions().get::<Outcome>().unwrap();
    assert_eq!(outcome.call_id.as_deref(), Some("c9"));
    assert_eq!(outcome.untyped, 1);
}
