//! The actix-web adapter over real HTTP on 127.0.0.1: the same cases as the axum
//! adapter's tests, so both frameworks answer alike.
#![cfg(feature = "actix")]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, dev::ServerHandle, post, web};
use retell_webhooks::adapters::actix::{
    VerifiedBody, VerifiedEvent, VerifiedIncoming, WebhookConfig, endpoint, function_service,
    service,
};
use retell_webhooks::dispatch::{ReceiverConfig, Route, SourceAllowlist, WebhookHandler};
use retell_webhooks::{
    CallEvent, FunctionCall, FunctionResponse, InboundCallRequest, InboundResponse, Incoming,
    UnknownEvent, Verifier, WebhookEvent, sign,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const KEY: &str = "key_actix_adapter_test";
const NOW: u64 = 1_785_423_600_000;
const LIMIT: usize = 8 * 1024 * 1024;
const CALL_ENDED: &[u8] = br#"{"event":"call_ended","call":{"call_id":"call_1"}}"#;
const INBOUND: &[u8] = include_bytes!("fixtures/call_inbound_request.json");
const FUNCTION: &[u8] = include_bytes!("fixtures/custom_function_request.json");

// ---------------------------------------------------------------------------
// Handler
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Ok,
    Fail,
    Panic,
    /// Panics on the first call only.
    PanicOnce,
    Hang,
}

struct Counting {
    mode: Mode,
    calls: AtomicUsize,
    unknown: AtomicUsize,
}

impl Counting {
    fn new(mode: Mode) -> Arc<Self> {
        Arc::new(Self {
            mode,
            calls: AtomicUsize::new(0),
            unknown: AtomicUsize::new(0),
        })
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    async fn act(&self) -> Result<(), String> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        match self.mode {
            Mode::Ok => Ok(()),
            Mode::Fail => Err("database unavailable".to_owned()),
            Mode::Panic => panic!("handler bug"),
            Mode::PanicOnce if n == 0 => panic!("handler bug"),
            Mode::PanicOnce => Ok(()),
            Mode::Hang => std::future::pending().await,
        }
    }
}

/// Shares one counting handler between the test and the server workers.
struct Shared(Arc<Counting>);

impl WebhookHandler for Shared {
    type Error = String;

    async fn on_call_ended(&self, _event: CallEvent) -> Result<(), String> {
        self.0.act().await
    }

    async fn on_call_analyzed(&self, _event: CallEvent) -> Result<(), String> {
        self.0.act().await
    }

    async fn on_unknown(&self, _event: UnknownEvent) -> Result<(), String> {
        self.0.unknown.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    async fn on_call_inbound(
        &self,
        _request: InboundCallRequest,
    ) -> Result<InboundResponse, String> {
        self.0.act().await?;
        Ok(InboundResponse::call().dynamic_variables([("customer_name", "Ada")]))
    }

    async fn on_function_call(&self, _call: FunctionCall) -> Result<FunctionResponse, String> {
        self.0.act().await?;
        Ok(FunctionResponse::text("booked"))
    }
}

// ---------------------------------------------------------------------------
// Server and client
// ---------------------------------------------------------------------------

fn verifier() -> Verifier {
    Verifier::new(KEY).unwrap()
}

fn config() -> ReceiverConfig {
    ReceiverConfig::new().with_clock(|| NOW)
}

fn signed(body: &[u8]) -> String {
    sign(body, KEY, NOW)
}

struct Server {
    addr: SocketAddr,
    handle: ServerHandle,
}

impl Server {
    /// Starts an `HttpServer` with one worker on an ephemeral port.
    fn start<F>(app: F) -> Self
    where
        F: Fn(&mut web::ServiceConfig) + Clone + Send + 'static,
    {
        let server = HttpServer::new(move || App::new().configure(app.clone()))
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

    /// A receiver on `/webhook` (events) and `/function` (custom functions).
    fn receiver(handler: &Arc<Counting>, config: ReceiverConfig) -> Self {
        let webhook = WebhookConfig::new(verifier()).with_receiver_config(config);
        let handler = Arc::new(Shared(handler.clone()));
        Self::start(move |app| {
            app.route(
                "/webhook",
                endpoint(Route::Events, webhook.clone(), handler.clone()),
            )
            .route(
                "/function",
                endpoint(Route::Function, webhook.clone(), handler.clone()),
            );
        })
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    async fn stop(self) {
        self.handle.stop(true).await;
    }
}

struct Reply {
    status: u16,
    content_type: Option<String>,
    allow: Option<String>,
    body: Vec<u8>,
}

async fn post(server: &Server, path: &str, body: &[u8], headers: &[(&str, &str)]) -> Reply {
    let mut request = reqwest::Client::new()
        .post(server.url(path))
        .body(body.to_vec());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    reply(request.send().await.unwrap()).await
}

async fn post_signed(server: &Server, path: &str, body: &[u8]) -> Reply {
    let sig = signed(body);
    post(server, path, body, &[("x-retell-signature", &sig)]).await
}

async fn reply(response: reqwest::Response) -> Reply {
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    Reply {
        status: response.status().as_u16(),
        content_type: header("content-type"),
        allow: header("allow"),
        body: response.bytes().await.unwrap().to_vec(),
    }
}

/// Sends `head` (request line and headers, without the final blank line) and a
/// chunked body of `total` bytes of `fill`, then reads the response until the
/// server closes. Write errors after the server answered are expected.
async fn raw_chunked(addr: SocketAddr, head: &str, total: usize, fill: u8) -> String {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let head = format!("{head}\r\nTransfer-Encoding: chunked\r\n\r\n");
    let writer = tokio::spawn(async move {
        write.write_all(head.as_bytes()).await?;
        let chunk = vec![fill; 64 * 1024];
        let mut left = total;
        while left > 0 {
            let n = left.min(chunk.len());
            write.write_all(format!("{n:x}\r\n").as_bytes()).await?;
            write.write_all(&chunk[..n]).await?;
            write.write_all(b"\r\n").await?;
            left -= n;
        }
        write.write_all(b"0\r\n\r\n").await
    });
    let mut response = Vec::new();
    let _ = read.read_to_end(&mut response).await;
    let _ = writer.await;
    String::from_utf8_lossy(&response).into_owned()
}

/// Sends a complete raw HTTP/1.1 request (with `Connection: close`) and returns
/// the raw response.
async fn raw(addr: SocketAddr, head: &str, body: &[u8]) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "{head}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    String::from_utf8_lossy(&response).into_owned()
}

fn raw_status(response: &str) -> u16 {
    response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"))
}

/// A signed `call_ended` body padded to exactly `len` bytes.
fn call_ended_of_len(len: usize) -> Vec<u8> {
    let head = br#"{"event":"call_ended","call":{"call_id":"call_1"},"pad":""#;
    let tail = br#""}"#;
    let mut body = head.to_vec();
    body.resize(len - tail.len(), b'a');
    body.extend_from_slice(tail);
    assert_eq!(body.len(), len);
    body
}

/// A `call_analyzed` body like a two-hour call (~3 MB): a long transcript and a
/// word-timed copy of it.
fn long_call_analyzed() -> Vec<u8> {
    let words = 18_000;
    let transcript: String = (0..words)
        .map(|i| {
            if i % 40 == 0 {
                "\nAgent: hello"
            } else {
                " word"
            }
        })
        .collect();
    let timed: Vec<String> = (0..words)
        .map(|i| {
            format!(
                r#"{{"word":"word","start":{:.3},"end":{:.3}}}"#,
                f64::from(i) * 0.4,
                f64::from(i) * 0.4 + 0.3
            )
        })
        .collect();
    let utterances: Vec<String> = timed
        .chunks(40)
        .map(|words| {
            format!(
                r#"{{"role":"agent","content":"hello","words":[{}]}}"#,
                words.join(",")
            )
        })
        .collect();
    let object = utterances.join(",");
    let body = format!(
        r#"{{"event":"call_analyzed","call":{{"call_id":"call_long","call_type":"phone_call","transcript":{},"transcript_object":[{object}],"transcript_with_tool_calls":[{object}],"scrubbed_transcript_with_tool_calls":[{object}],"call_analysis":{{"call_summary":"long call","call_successful":true}}}}}}"#,
        serde_json::to_string(&transcript).unwrap()
    );
    body.into_bytes()
}

// ---------------------------------------------------------------------------
// Ready-made receiver
// ---------------------------------------------------------------------------

#[actix_web::test]
async fn valid_event_is_204() {
    let h = Counting::new(Mode::Ok);
    let server = Server::receiver(&h, config());
    let reply = post_signed(&server, "/webhook", CALL_ENDED).await;
    assert_eq!(reply.status, 204);
    assert!(reply.body.is_empty());
    assert_eq!(h.calls(), 1);
    server.stop().await;
}

#[actix_web::test]
async fn header_name_is_case_insensitive() {
    let h = Counting::new(Mode::Ok);
    let server = Server::receiver(&h, config());
    let sig = signed(CALL_ENDED);
    for name in [
        "X-Retell-Signature",
        "x-retell-signature",
        "X-RETELL-SIGNATURE",
    ] {
        let head = format!("POST /webhook HTTP/1.1\r\nHost: test\r\n{name}: {sig}");
        let response = raw(server.addr, &head, CALL_ENDED).await;
        assert_eq!(raw_status(&response), 204, "{name}");
    }
    assert_eq!(h.calls(), 3);
    server.stop().await;
}

#[actix_web::test]
async fn every_verification_failure_is_the_same_401() {
    let h = Counting::new(Mode::Ok);
    let server = Server::receiver(&h, config());
    let good = signed(CALL_ENDED);
    let stale = sign(CALL_ENDED, KEY, NOW - 300_001);
    let wrong_key = sign(CALL_ENDED, "another_key", NOW);
    let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("missing", vec![]),
        ("empty", vec![("x-retell-signature", "")]),
        ("malformed", vec![("x-retell-signature", "v=1,d=zz")]),
        ("stale", vec![("x-retell-signature", &stale)]),
        ("wrong key", vec![("x-retell-signature", &wrong_key)]),
        (
            "sent twice",
            vec![("x-retell-signature", &good), ("x-retell-signature", &good)],
        ),
    ];
    let mut replies = Vec::new();
    for (name, headers) in &cases {
        let reply = post(&server, "/webhook", CALL_ENDED, headers).await;
        assert_eq!(reply.status, 401, "{name}");
        replies.push((reply.content_type, reply.allow, reply.body));
    }
    assert!(replies.windows(2).all(|w| w[0] == w[1]), "401s differ");
    assert_eq!(replies[0].2, b"invalid or missing signature\n");
    // Sent twice as two header lines over a raw connection, too.
    let head = format!(
        "POST /webhook HTTP/1.1\r\nHost: test\r\nx-retell-signature: {good}\r\nX-Retell-Signature: {good}"
    );
    assert_eq!(raw_status(&raw(server.addr, &head, CALL_ENDED).await), 401);
    assert_eq!(h.calls(), 0);
    server.stop().await;
}

#[actix_web::test]
async fn body_over_the_limit_is_413_without_calling_the_handler() {
    let h = Counting::new(Mode::Ok);
    let server = Server::receiver(&h, config());
    let body = call_ended_of_len(LIMIT + 1);
    // With Content-Length: refused before reading.
    let reply = post_signed(&server, "/webhook", &body).await;
    assert_eq!(reply.status, 413);
    assert_eq!(reply.body, b"payload too large\n");
    // Chunked, no Content-Length: refused once the limit is crossed, and the
    // connection is closed rather than drained.
    let sig = signed(&body);
    let head = format!("POST /webhook HTTP/1.1\r\nHost: test\r\nx-retell-signature: {sig}");
    let response = raw_chunked(server.addr, &head, LIMIT + 1, b'a').await;
    assert_eq!(raw_status(&response), 413, "{response}");
    assert!(
        response.to_ascii_lowercase().contains("connection: close"),
        "{response}"
    );
    assert_eq!(h.calls(), 0);
    server.stop().await;
}

#[actix_web::test]
async fn body_of_exactly_the_limit_is_accepted() {
    let h = Counting::new(Mode::Ok);
    let server = Server::receiver(&h, config());
    let body = call_ended_of_len(LIMIT);
    assert_eq!(post_signed(&server, "/webhook", &body).await.status, 204);
    assert_eq!(h.calls(), 1);
    server.stop().await;
}

#[actix_web::test]
async fn configured_body_limit_applies() {
    let h = Counting::new(Mode::Ok);
    let server = Server::receiver(&h, config().with_body_limit(CALL_ENDED.len()));
    assert_eq!(
        post_signed(&server, "/webhook", CALL_ENDED).await.status,
        204
    );
    let longer = call_ended_of_len(CALL_ENDED.len() + 10);
    assert_eq!(post_signed(&server, "/webhook", &longer).await.status, 413);
    assert_eq!(h.calls(), 1);
    server.stop().await;
}

#[actix_web::test]
async fn long_call_payload_is_accepted() {
    let h = Counting::new(Mode::Ok);
    let server = Server::receiver(&h, config());
    let body = long_call_analyzed();
    assert!(body.len() > 2_500_000, "{}", body.len());
    assert_eq!(post_signed(&server, "/webhook", &body).await.status, 204);
    assert_eq!(h.calls(), 1);
    server.stop().await;
}

#[actix_web::test]
async fn bad_json_after_a_valid_signature_is_400() {
    let h = Counting::new(Mode::Ok);
    let server = Server::receiver(&h, config());
    for body in [
        &b"{\"event\":"[..],
        b"[]",
        b"",
        b"{\"event\":\"call_ended\",\"x\":\"\xff\"}",
    ] {
        let reply = post_signed(&server, "/webhook", body).await;
        assert_eq!(reply.status, 400, "{body:?}");
    }
    assert_eq!(h.calls(), 0);
    server.stop().await;
}

#[actix_web::test]
async fn handler_error_is_500() {
    let h = Counting::new(Mode::Fail);
    let server = Server::receiver(&h, config());
    let reply = post_signed(&server, "/webhook", CALL_ENDED).await;
    assert_eq!(reply.status, 500);
    assert_eq!(reply.body, b"internal server error\n");
    assert_eq!(h.calls(), 1);
    server.stop().await;
}

#[actix_web::test]
async fn handler_panic_is_500_and_the_next_request_is_served() {
    let h = Counting::new(Mode::PanicOnce);
    let server = Server::receiver(&h, config());
    assert_eq!(
        post_signed(&server, "/webhook", CALL_ENDED).await.status,
        500
    );
    assert_eq!(
        post_signed(&server, "/webhook", CALL_ENDED).await.status,
        204
    );
    assert_eq!(h.calls(), 2);
    server.stop().await;
}

#[actix_web::test]
async fn handler_that_always_panics_never_takes_the_server_down() {
    let h = Counting::new(Mode::Panic);
    let server = Server::receiver(&h, config());
    for _ in 0..3 {
        assert_eq!(
            post_signed(&server, "/webhook", CALL_ENDED).await.status,
            500
        );
    }
    assert_eq!(h.calls(), 3);
    server.stop().await;
}

#[actix_web::test]
async fn handler_deadline_is_503() {
    let h = Counting::new(Mode::Hang);
    let config = config().with_handler_deadline(Duration::from_millis(50));
    let server = Server::receiver(&h, config);
    let reply = post_signed(&server, "/webhook", CALL_ENDED).await;
    assert_eq!(reply.status, 503);
    assert_eq!(h.calls(), 1);
    server.stop().await;
}

#[actix_web::test]
async fn inbound_call_is_answered_with_the_handlers_json() {
    let h = Counting::new(Mode::Ok);
    let server = Server::receiver(&h, config());
    let reply = post_signed(&server, "/webhook", INBOUND).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.content_type.as_deref(), Some("application/json"));
    let json: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(
        json.pointer("/call_inbound/dynamic_variables/customer_name"),
        Some(&serde_json::json!("Ada")),
        "{json}"
    );
    assert_eq!(h.calls(), 1);
    server.stop().await;
}

#[actix_web::test]
async fn function_route_answers_the_handlers_body() {
    let h = Counting::new(Mode::Ok);
    let server = Server::receiver(&h, config());
    let reply = post_signed(&server, "/function", FUNCTION).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, b"booked");
    assert_eq!(h.calls(), 1);
    server.stop().await;
}

#[actix_web::test]
async fn unknown_event_is_acknowledged() {
    let h = Counting::new(Mode::Ok);
    let server = Server::receiver(&h, config());
    let body = br#"{"event":"call_teleported","call":{"call_id":"c"}}"#;
    let reply = post_signed(&server, "/webhook", body).await;
    assert!((200..300).contains(&reply.status), "{}", reply.status);
    assert_eq!(h.unknown.load(Ordering::SeqCst), 1);
    server.stop().await;
}

#[actix_web::test]
async fn other_methods_are_405() {
    let h = Counting::new(Mode::Ok);
    let server = Server::receiver(&h, config());
    let client = reqwest::Client::new();
    for method in [reqwest::Method::GET, reqwest::Method::PUT] {
        let response = client
            .request(method.clone(), server.url("/webhook"))
            .header("x-retell-signature", signed(b""))
            .send()
            .await
            .unwrap();
        let reply = reply(response).await;
        assert_eq!(reply.status, 405, "{method}");
        assert_eq!(reply.allow.as_deref(), Some("POST"));
    }
    assert_eq!(h.calls(), 0);
    server.stop().await;
}

#[actix_web::test]
async fn encoded_body_is_415() {
    let h = Counting::new(Mode::Ok);
    let server = Server::receiver(&h, config());
    let sig = signed(CALL_ENDED);
    let headers = [
        ("x-retell-signature", sig.as_str()),
        ("content-encoding", "gzip"),
    ];
    assert_eq!(
        post(&server, "/webhook", CALL_ENDED, &headers).await.status,
        415
    );
    let identity = [
        ("x-retell-signature", sig.as_str()),
        ("content-encoding", "identity"),
    ];
    assert_eq!(
        post(&server, "/webhook", CALL_ENDED, &identity)
            .await
            .status,
        204
    );
    assert_eq!(h.calls(), 1);
    server.stop().await;
}

#[actix_web::test]
async fn spoofed_forwarded_for_from_an_untrusted_peer_is_403() {
    let h = Counting::new(Mode::Ok);
    let config = config().with_source_allowlist(SourceAllowlist::retell());
    let server = Server::receiver(&h, config);
    let sig = signed(CALL_ENDED);
    let headers = [
        ("x-retell-signature", sig.as_str()),
        ("x-forwarded-for", "100.20.5.228"),
    ];
    let reply = post(&server, "/webhook", CALL_ENDED, &headers).await;
    assert_eq!(reply.status, 403);
    assert_eq!(h.calls(), 0);
    server.stop().await;
}

#[actix_web::test]
async fn trusted_proxy_forwarding_for_retell_is_allowed() {
    let h = Counting::new(Mode::Ok);
    let allowlist = SourceAllowlist::retell()
        .with_trusted_proxies(["127.0.0.1".parse::<std::net::IpAddr>().unwrap()]);
    let server = Server::receiver(&h, config().with_source_allowlist(allowlist));
    let sig = signed(CALL_ENDED);
    let headers = [
        ("x-retell-signature", sig.as_str()),
        ("x-forwarded-for", "100.20.5.228"),
    ];
    assert_eq!(
        post(&server, "/webhook", CALL_ENDED, &headers).await.status,
        204
    );
    assert_eq!(h.calls(), 1);
    server.stop().await;
}

#[actix_web::test]
async fn service_functions_mount_the_same_receiver() {
    let h = Counting::new(Mode::Ok);
    let (events, function) = (h.clone(), h.clone());
    let server = Server::start(move |app| {
        app.service(service(
            "/events",
            verifier(),
            Shared(events.clone()),
            config(),
        ))
        .service(function_service(
            "/tool",
            verifier(),
            Shared(function.clone()),
            config(),
        ));
    });
    assert_eq!(
        post_signed(&server, "/events", CALL_ENDED).await.status,
        204
    );
    assert_eq!(post_signed(&server, "/tool", FUNCTION).await.status, 200);
    assert_eq!(post(&server, "/events", CALL_ENDED, &[]).await.status, 401);
    assert_eq!(h.calls(), 2);
    server.stop().await;
}

#[actix_web::test]
async fn outcome_is_available_to_middleware() {
    use actix_web::dev::Service as _;
    use retell_webhooks::dispatch::Outcome;

    let seen = Arc::new(AtomicUsize::new(0));
    let h = Counting::new(Mode::Ok);
    let webhook = WebhookConfig::new(verifier()).with_receiver_config(config());
    let handler = Arc::new(Shared(h.clone()));
    let counter = seen.clone();
    let server = HttpServer::new(move || {
        let counter = counter.clone();
        App::new()
            .wrap_fn(move |req, srv| {
                let counter = counter.clone();
                let fut = srv.call(req);
                async move {
                    let res = fut.await?;
                    if let Some(outcome) = res.response().extensions().get::<Outcome>() {
                        assert_eq!(outcome.status, res.status().as_u16());
                        counter.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(res)
                }
            })
            .route(
                "/webhook",
                endpoint(Route::Events, webhook.clone(), handler.clone()),
            )
    })
    .workers(1)
    .disable_signals()
    .bind(("127.0.0.1", 0))
    .unwrap();
    let addr = server.addrs()[0];
    let server = server.run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    let server = Server { addr, handle };
    assert_eq!(
        post_signed(&server, "/webhook", CALL_ENDED).await.status,
        204
    );
    assert_eq!(post(&server, "/webhook", CALL_ENDED, &[]).await.status, 401);
    assert_eq!(seen.load(Ordering::SeqCst), 2);
    server.stop().await;
}

#[actix_web::test]
async fn unconfigured_endpoint_fails_closed() {
    let h = Counting::new(Mode::Ok);
    let handler = Arc::new(Shared(h.clone()));
    let server = Server::start(move |app| {
        let unconfigured = WebhookConfig::unconfigured();
        app.route(
            "/webhook",
            endpoint(Route::Events, unconfigured, handler.clone()),
        );
    });
    let reply = post_signed(&server, "/webhook", CALL_ENDED).await;
    assert_eq!(reply.status, 500);
    assert_eq!(reply.body, b"internal server error\n");
    assert_eq!(h.calls(), 0);
    server.stop().await;
}

// ---------------------------------------------------------------------------
// Extractors
// ---------------------------------------------------------------------------

static EXTRACTED: AtomicUsize = AtomicUsize::new(0);

#[post("/incoming")]
async fn incoming(VerifiedIncoming(incoming): VerifiedIncoming) -> HttpResponse {
    match incoming {
        Incoming::Event(WebhookEvent::CallEnded(_)) => {
            EXTRACTED.fetch_add(1, Ordering::SeqCst);
            HttpResponse::NoContent().finish()
        }
        Incoming::CallInbound(_) => HttpResponse::Ok()
            .content_type(InboundResponse::CONTENT_TYPE)
            .body(InboundResponse::call().to_body()),
        _ => HttpResponse::NoContent().finish(),
    }
}

#[post("/event")]
async fn event(VerifiedEvent(event): VerifiedEvent) -> HttpResponse {
    match event {
        WebhookEvent::CallEnded(ended) if ended.call.call_id == "call_1" => {
            HttpResponse::NoContent().finish()
        }
        _ => HttpResponse::BadRequest().finish(),
    }
}

#[post("/body")]
async fn raw_body_route(VerifiedBody(bytes): VerifiedBody) -> HttpResponse {
    HttpResponse::Ok().body(bytes)
}

fn extractor_routes(app: &mut web::ServiceConfig) {
    app.service(incoming).service(event).service(raw_body_route);
}

#[actix_web::test]
async fn extractors_yield_verified_requests_and_reject_like_the_endpoint() {
    let before = EXTRACTED.load(Ordering::SeqCst);
    let plain = Server::start(|app| {
        app.app_data(WebhookConfig::new(verifier()).with_receiver_config(config()))
            .configure(extractor_routes);
    });
    let data = Server::start(|app| {
        let webhook = WebhookConfig::new(verifier()).with_receiver_config(config());
        app.app_data(web::Data::new(webhook))
            .configure(extractor_routes);
    });
    for server in [&plain, &data] {
        assert_eq!(
            post_signed(server, "/incoming", CALL_ENDED).await.status,
            204
        );
        assert_eq!(post_signed(server, "/incoming", INBOUND).await.status, 200);
        assert_eq!(post_signed(server, "/event", CALL_ENDED).await.status, 204);
        // An inbound webhook is not an event.
        assert_eq!(post_signed(server, "/event", INBOUND).await.status, 400);
        let raw_body = post_signed(server, "/body", CALL_ENDED).await;
        assert_eq!(
            (raw_body.status, raw_body.body.as_slice()),
            (200, CALL_ENDED)
        );
        for path in ["/incoming", "/event", "/body"] {
            let unsigned = post(server, path, CALL_ENDED, &[]).await;
            assert_eq!(unsigned.status, 401, "{path}");
            assert_eq!(unsigned.body, b"invalid or missing signature\n");
            assert_eq!(post_signed(server, path, b"[]").await.status, 400, "{path}");
            let sig = signed(CALL_ENDED);
            let gzip = [
                ("x-retell-signature", sig.as_str()),
                ("content-encoding", "gzip"),
            ];
            assert_eq!(
                post(server, path, CALL_ENDED, &gzip).await.status,
                415,
                "{path}"
            );
        }
        let big = call_ended_of_len(LIMIT + 1);
        assert_eq!(post_signed(server, "/incoming", &big).await.status, 413);
        let exact = call_ended_of_len(LIMIT);
        assert_eq!(post_signed(server, "/incoming", &exact).await.status, 204);
    }
    assert_eq!(EXTRACTED.load(Ordering::SeqCst) - before, 4);
    plain.stop().await;
    data.stop().await;
}

#[actix_web::test]
async fn extractors_without_configuration_fail_closed() {
    let missing = Server::start(|app| {
        app.configure(extractor_routes);
    });
    let unconfigured = Server::start(|app| {
        app.app_data(WebhookConfig::unconfigured())
            .configure(extractor_routes);
    });
    for server in [&missing, &unconfigured] {
        for path in ["/incoming", "/event", "/body"] {
            let reply = post_signed(server, path, CALL_ENDED).await;
            assert_eq!(reply.status, 500, "{path}");
            assert_eq!(reply.body, b"internal server error\n");
        }
    }
    missing.stop().await;
    unconfigured.stop().await;
}
