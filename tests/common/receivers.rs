//! One request, four receivers: the framework-agnostic entry point
//! (`retell_webhooks::Receiver::dispatch`), the axum router, the actix-web service and
//! the tower service (`service::WebhookService`) served by plain hyper 1.x, the
//! last three over real HTTP on 127.0.0.1. Each [`Receiver`] here builds one
//! `retell_webhooks::Receiver` and clones it into its server. Tests write a case once
//! and run it through [`Receiver::all`] (or [`all_vias`], [`http_vias`]).
//! Include it next to `http.rs`:
//!
//! ```ignore
//! #[path = "../common/http.rs"] mod http;
//! #[path = "../common/receivers.rs"] mod receivers;
//! ```
#![allow(dead_code)]

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use retell_webhooks::FunctionRequest;
use retell_webhooks::{
    Call, CallEvent, ChatEvent, FunctionResponse, InboundCallRequest, InboundResponse, ParseError,
    TranscriptUpdatedEvent, TransferEvent, UnknownEvent, Verifier, sign,
};
use retell_webhooks::{
    ReceiverConfig, RouteKind, WebhookHandler,
    receiver::{Fallback, Outcome, RawRequest},
};

use crate::http::{Framing, Reply, send_raw};

pub const KEY: &str = "key_reliability_test";
pub const NOW: u64 = 1_785_423_600_000;
pub const PATH: &str = "/webhook";

/// Which receiver a request goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// `retell_webhooks::Receiver::dispatch` called directly (no HTTP).
    Core,
    /// `adapters::axum::endpoint` behind `axum::serve`.
    Axum,
    /// `adapters::actix::endpoint` behind `HttpServer`.
    Actix,
    /// `service::WebhookService` behind hyper's `http1::Builder`, with the TCP
    /// peer address in the request extensions.
    Tower,
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Every receiver compiled in (the adapters and the tower service need their
/// features; `axum` implies `tower`).
pub fn all_vias() -> Vec<Via> {
    let mut vias = vec![Via::Core];
    if cfg!(feature = "axum") {
        vias.push(Via::Axum);
    }
    if cfg!(feature = "actix") {
        vias.push(Via::Actix);
    }
    if cfg!(feature = "tower") {
        vias.push(Via::Tower);
    }
    vias
}

/// The receivers served over HTTP compiled in.
pub fn http_vias() -> Vec<Via> {
    all_vias().into_iter().filter(|v| *v != Via::Core).collect()
}

/// The test verifier: injected clock at [`NOW`] (the receiver's one clock).
pub fn verifier() -> Verifier {
    Verifier::new(KEY).unwrap().with_clock(|| NOW)
}

/// The test configuration.
pub fn config() -> ReceiverConfig {
    ReceiverConfig::new()
}

/// [`config`] with deduplication on, in a store of its own.
pub fn dedupe_config() -> ReceiverConfig {
    config().with_dedupe(retell_webhooks::dedupe::MemoryDedupe::new())
}

pub fn signature(body: &[u8]) -> String {
    sign(body, KEY, NOW)
}

// ---------------------------------------------------------------------------
// Handler
// ---------------------------------------------------------------------------

/// What [`Probe`] does when an event reaches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    Ok,
    /// `Err` for the first `n` calls, then `Ok`.
    FailFirst(usize),
    /// Panic for the first `n` calls, then `Ok`.
    PanicFirst(usize),
    /// Never finishes (for the deadline).
    Hang,
    /// Never finishes for the first `n` calls, then `Ok`.
    HangFirst(usize),
    /// Yields to the scheduler this many times before `Ok` (so concurrent
    /// copies overlap).
    Yield(usize),
    /// Signals [`Probe::entered`], then waits for [`Probe::open`] before `Ok`.
    Gated,
    /// Sleeps this long (tokio's timer), then `Ok`.
    Sleep(std::time::Duration),
}

/// A handler that counts everything it sees. `calls` counts every handler
/// invocation (all methods but `on_unparsed`, which has a counter of its own);
/// `effects` only the successful ones, per id.
///
/// It answers an inbound call with the caller's number as the dynamic
/// variable `caller`, and a custom function with
/// `{"booked": true, "name": <function name>}`.
pub struct Probe {
    behaviour: Behaviour,
    fallback: Fallback,
    pub calls: AtomicUsize,
    /// The handler methods called, in the order called.
    methods: Mutex<Vec<&'static str>>,
    /// [`Behaviour::Gated`] calls waiting at the gate now, and the most at once.
    waiting: AtomicUsize,
    most_waiting: AtomicUsize,
    pub unknown: AtomicUsize,
    pub unparsed: AtomicUsize,
    pub answers: AtomicUsize,
    effects: Mutex<HashMap<String, usize>>,
    /// Transcripts received, to check what the handler saw.
    pub transcripts: Mutex<Vec<String>>,
    /// Calls that reached a typed handler with at least one fallback field.
    pub drifted: Mutex<Vec<Call>>,
    entered: tokio::sync::Semaphore,
    gate: tokio::sync::Semaphore,
}

impl Probe {
    pub fn new(behaviour: Behaviour) -> Arc<Self> {
        Self::with_fallback(behaviour, Fallback::Declined)
    }

    pub fn with_fallback(behaviour: Behaviour, fallback: Fallback) -> Arc<Self> {
        Arc::new(Self {
            behaviour,
            fallback,
            calls: AtomicUsize::new(0),
            methods: Mutex::new(Vec::new()),
            waiting: AtomicUsize::new(0),
            most_waiting: AtomicUsize::new(0),
            unknown: AtomicUsize::new(0),
            unparsed: AtomicUsize::new(0),
            answers: AtomicUsize::new(0),
            effects: Mutex::new(HashMap::new()),
            transcripts: Mutex::new(Vec::new()),
            drifted: Mutex::new(Vec::new()),
            entered: tokio::sync::Semaphore::new(0),
            gate: tokio::sync::Semaphore::new(0),
        })
    }

    /// Waits until a [`Behaviour::Gated`] handler call has started.
    pub async fn entered(&self) {
        self.entered.acquire().await.unwrap().forget();
    }

    /// Lets `n` waiting (or future) [`Behaviour::Gated`] calls finish.
    pub fn open(&self, n: usize) {
        self.gate.add_permits(n);
    }

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// The handler methods called so far (`"on_call_ended"`, …), in order.
    pub fn methods(&self) -> Vec<&'static str> {
        self.methods.lock().unwrap().clone()
    }

    /// The most [`Behaviour::Gated`] calls that were waiting at the gate at
    /// the same time.
    pub fn most_waiting(&self) -> usize {
        self.most_waiting.load(Ordering::SeqCst)
    }

    /// Successful side effects per id.
    pub fn effects(&self) -> HashMap<String, usize> {
        self.effects.lock().unwrap().clone()
    }

    /// Total successful side effects.
    pub fn effect_count(&self) -> usize {
        self.effects.lock().unwrap().values().sum()
    }

    async fn act(&self, method: &'static str, id: &str) -> Result<(), String> {
        self.methods.lock().unwrap().push(method);
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        match self.behaviour {
            Behaviour::Ok => {}
            Behaviour::FailFirst(k) if n < k => return Err("store unavailable".to_owned()),
            Behaviour::PanicFirst(k) if n < k => panic!("handler bug"),
            Behaviour::Hang => std::future::pending::<()>().await,
            Behaviour::HangFirst(k) if n < k => std::future::pending::<()>().await,
            Behaviour::FailFirst(_) | Behaviour::PanicFirst(_) | Behaviour::HangFirst(_) => {}
            Behaviour::Gated => {
                let _waiting = Waiting::new(&self.waiting, &self.most_waiting);
                self.entered.add_permits(1);
                self.gate.acquire().await.unwrap().forget();
            }
            Behaviour::Sleep(pause) => tokio::time::sleep(pause).await,
            Behaviour::Yield(times) => {
                for _ in 0..times {
                    tokio::task::yield_now().await;
                }
            }
        }
        *self
            .effects
            .lock()
            .unwrap()
            .entry(id.to_owned())
            .or_default() += 1;
        Ok(())
    }

    async fn call_event(&self, method: &'static str, event: CallEvent) -> Result<(), String> {
        if let Some(t) = &event.call.transcript {
            self.transcripts.lock().unwrap().push(t.clone());
        }
        if !event.call.fallbacks().is_empty() {
            self.drifted.lock().unwrap().push(Call::clone(&event.call));
        }
        self.act(method, &event.call.call_id).await
    }
}

/// Counts a call waiting at the gate while it lives (the deadline may drop it
/// there), and keeps the highest count seen.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(now: &'a AtomicUsize, most: &AtomicUsize) -> Self {
        let waiting = now.fetch_add(1, Ordering::SeqCst) + 1;
        most.fetch_max(waiting, Ordering::SeqCst);
        Self(now)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl WebhookHandler for Probe {
    type Error = String;

    async fn on_call_started(&self, event: CallEvent) -> Result<(), String> {
        self.call_event("on_call_started", event).await
    }
    async fn on_call_ended(&self, event: CallEvent) -> Result<(), String> {
        self.call_event("on_call_ended", event).await
    }
    async fn on_call_analyzed(&self, event: CallEvent) -> Result<(), String> {
        self.call_event("on_call_analyzed", event).await
    }
    async fn on_transcript_updated(&self, event: TranscriptUpdatedEvent) -> Result<(), String> {
        let id = event.call().map(|c| c.call_id.clone()).unwrap_or_default();
        self.act("on_transcript_updated", &id).await
    }
    async fn on_transfer_started(&self, event: TransferEvent) -> Result<(), String> {
        self.act("on_transfer_started", &event.call.call_id).await
    }
    async fn on_chat_ended(&self, event: ChatEvent) -> Result<(), String> {
        self.act("on_chat_ended", &event.chat.chat_id).await
    }
    async fn on_unknown(&self, event: UnknownEvent) -> Result<(), String> {
        self.unknown.fetch_add(1, Ordering::SeqCst);
        self.act("on_unknown", &event.event).await
    }
    async fn on_call_inbound(&self, r: InboundCallRequest) -> Result<InboundResponse, String> {
        self.answers.fetch_add(1, Ordering::SeqCst);
        self.act("on_call_inbound", "inbound").await?;
        let caller = r.call_inbound.from_number.unwrap_or_default();
        Ok(InboundResponse::call().dynamic_variables([("caller", caller)]))
    }
    async fn on_function_call(&self, r: FunctionRequest) -> Result<FunctionResponse, String> {
        self.answers.fetch_add(1, Ordering::SeqCst);
        self.act("on_function_call", "function").await?;
        let answer = serde_json::json!({ "booked": true, "name": r.name() });
        Ok(FunctionResponse::json(answer))
    }
    async fn on_unparsed(&self, _body: &[u8], _error: &ParseError) -> Result<Fallback, String> {
        self.unparsed.fetch_add(1, Ordering::SeqCst);
        Ok(self.fallback)
    }
}

// ---------------------------------------------------------------------------
// Receivers
// ---------------------------------------------------------------------------

/// A running receiver of one kind, with its handler.
pub struct Receiver {
    pub via: Via,
    pub probe: Arc<Probe>,
    /// Built once; every server gets a clone, so the mismatch streak, the
    /// in-flight places and the dedupe store are shared with this value.
    receiver: retell_webhooks::Receiver,
    route: RouteKind,
    addr: Option<SocketAddr>,
    outcomes: Arc<Mutex<Vec<Outcome>>>,
    #[cfg(feature = "actix")]
    actix: Option<actix_web::dev::ServerHandle>,
}

impl Receiver {
    /// Starts `via` on the event route with `config`. HTTP receivers listen on
    /// an ephemeral loopback port (axum and hyper on the current tokio runtime,
    /// actix-web on its own system thread with `workers` workers).
    pub async fn start(via: Via, probe: Arc<Probe>, config: ReceiverConfig) -> Self {
        Self::start_with(via, probe, config, RouteKind::Events, 1).await
    }

    pub async fn start_with(
        via: Via,
        probe: Arc<Probe>,
        config: ReceiverConfig,
        route: RouteKind,
        workers: usize,
    ) -> Self {
        let receiver = retell_webhooks::Receiver::new(verifier(), config);
        Self::start_receiver(via, probe, receiver, route, workers).await
    }

    /// Like [`start_with`](Self::start_with) around `receiver` as given (one
    /// built with `retell_webhooks::Receiver::unconfigured`, say).
    pub async fn start_receiver(
        via: Via,
        probe: Arc<Probe>,
        receiver: retell_webhooks::Receiver,
        route: RouteKind,
        workers: usize,
    ) -> Self {
        #[allow(unused_mut)] // only the adapters set the address
        let mut receiver = Self {
            via,
            probe,
            receiver,
            route,
            addr: None,
            outcomes: Arc::default(),
            #[cfg(feature = "actix")]
            actix: None,
        };
        match via {
            Via::Core => {}
            #[cfg(feature = "axum")]
            Via::Axum => receiver.addr = Some(receiver.serve_axum().await),
            #[cfg(feature = "actix")]
            Via::Actix => receiver.serve_actix(workers),
            #[cfg(feature = "tower")]
            Via::Tower => receiver.addr = Some(receiver.serve_tower().await),
            #[allow(unreachable_patterns)]
            other => panic!("{other} adapter not compiled in"),
        }
        let _ = workers;
        receiver
    }

    /// The events and custom-function routes of one crate `Receiver` (as
    /// `listen` serves them), each on a server of its own with its own probe.
    pub async fn start_both_routes(
        via: Via,
        receiver: &retell_webhooks::Receiver,
        events: Behaviour,
        functions: Behaviour,
    ) -> (Self, Self) {
        let events = Self::start_receiver(
            via,
            Probe::new(events),
            receiver.clone(),
            RouteKind::Events,
            2,
        )
        .await;
        let functions = Self::start_receiver(
            via,
            Probe::new(functions),
            receiver.clone(),
            RouteKind::Function,
            2,
        )
        .await;
        (events, functions)
    }

    /// One receiver of each kind compiled in, each with its own fresh probe
    /// and a copy of `config`.
    pub async fn all(behaviour: Behaviour, config: &ReceiverConfig) -> Vec<Self> {
        let mut out = Vec::new();
        for via in all_vias() {
            out.push(Self::start(via, Probe::new(behaviour), config.clone()).await);
        }
        out
    }

    /// The crate receiver behind every server of this value (its clones share
    /// the mismatch streak, the in-flight places and the dedupe store).
    pub fn receiver(&self) -> &retell_webhooks::Receiver {
        &self.receiver
    }

    /// The configuration the receiver was built with.
    pub fn config(&self) -> &ReceiverConfig {
        self.receiver.config()
    }

    /// The listening address (HTTP receivers only).
    pub fn addr(&self) -> SocketAddr {
        self.addr
            .unwrap_or_else(|| panic!("{} has no socket", self.via))
    }

    /// Outcomes seen so far, one per answered request, in the order answered:
    /// the entry point returns them, the HTTP receivers put them in the
    /// response extensions, where a middleware of each server collects them.
    pub fn outcomes(&self) -> Vec<Outcome> {
        self.outcomes.lock().unwrap().clone()
    }

    #[cfg(feature = "axum")]
    async fn serve_axum(&self) -> SocketAddr {
        use retell_webhooks::adapters::axum::endpoint;
        let seen = Arc::clone(&self.outcomes);
        let app = axum::Router::new()
            .route(
                PATH,
                endpoint(self.route, &self.receiver, Arc::clone(&self.probe)),
            )
            .layer(axum::middleware::map_response(
                move |response: axum::response::Response| {
                    let seen = Arc::clone(&seen);
                    async move {
                        if let Some(outcome) = response.extensions().get::<Outcome>() {
                            seen.lock().unwrap().push(outcome.clone());
                        }
                        response
                    }
                },
            ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
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

    /// `WebhookService` at [`PATH`] on hyper's HTTP/1 connection builder, one
    /// task per connection. A `service_fn` in front puts the connection's peer
    /// address in the request extensions (where `RawRequest::from_http_parts`
    /// reads it, for the source allowlist) and records the outcome the service
    /// puts in the response extensions.
    #[cfg(feature = "tower")]
    async fn serve_tower(&self) -> SocketAddr {
        use hyper_util::rt::TokioIo;
        use hyper_util::service::TowerToHyperService;
        use retell_webhooks::service::WebhookService;

        let service = WebhookService::new(&self.receiver, self.route, Arc::clone(&self.probe))
            .with_path(PATH);
        let service = TowerToHyperService::new(service);
        let seen = Arc::clone(&self.outcomes);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((stream, peer)) = listener.accept().await else {
                    return;
                };
                let (service, seen) = (service.clone(), Arc::clone(&seen));
                let with_peer = hyper::service::service_fn(
                    move |mut request: hyper::Request<hyper::body::Incoming>| {
                        request.extensions_mut().insert(peer);
                        let (service, seen) = (service.clone(), Arc::clone(&seen));
                        async move {
                            let response = hyper::service::Service::call(&service, request).await?;
                            if let Some(outcome) = response.extensions().get::<Outcome>() {
                                seen.lock().unwrap().push(outcome.clone());
                            }
                            Ok::<_, std::convert::Infallible>(response)
                        }
                    },
                );
                tokio::spawn(async move {
                    let http = hyper::server::conn::http1::Builder::new();
                    let _ = http.serve_connection(TokioIo::new(stream), with_peer).await;
                });
            }
        });
        addr
    }

    /// `adapters::actix::endpoint` at [`PATH`] behind `HttpServer` on a system
    /// thread of its own, with a middleware that records the outcome each
    /// response carries in its extensions.
    #[cfg(feature = "actix")]
    fn serve_actix(&mut self, workers: usize) {
        use actix_web::dev::Service as _;
        use retell_webhooks::adapters::actix::endpoint;
        let receiver = self.receiver.clone();
        let probe = Arc::clone(&self.probe);
        let route = self.route;
        let seen = Arc::clone(&self.outcomes);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let server = actix_web::HttpServer::new(move || {
                    let seen = Arc::clone(&seen);
                    actix_web::App::new()
                        .wrap_fn(move |request, service| {
                            let seen = Arc::clone(&seen);
                            let response = service.call(request);
                            async move {
                                let response = response.await?;
                                if let Some(outcome) =
                                    response.response().extensions().get::<Outcome>()
                                {
                                    seen.lock().unwrap().push(outcome.clone());
                                }
                                Ok(response)
                            }
                        })
                        .route(PATH, endpoint(route, &receiver, Arc::clone(&probe)))
                })
                .workers(workers.max(1))
                .disable_signals()
                .bind(("127.0.0.1", 0))
                .unwrap();
                let addr = server.addrs()[0];
                let server = server.run();
                tx.send((addr, server.handle())).unwrap();
                let _ = server.await;
            });
        });
        let (addr, handle) = rx.recv().unwrap();
        self.addr = Some(addr);
        self.actix = Some(handle);
    }

    /// Sends one request and returns what the client got.
    pub async fn send(
        &self,
        method: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        framing: Framing,
    ) -> Reply {
        match self.via {
            Via::Core => self.send_core(method, headers, body, framing).await,
            _ => send_raw(self.addr(), method, PATH, headers, body, framing).await,
        }
    }

    async fn send_core(
        &self,
        method: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        framing: Framing,
    ) -> Reply {
        let values = |name: &str| -> Vec<&[u8]> {
            headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_bytes())
                .collect()
        };
        let content_length = match framing {
            Framing::Length => Some(body.len() as u64),
            Framing::DeclaredLength(n) => Some(n),
            Framing::Chunked => None,
        };
        let request = RawRequest::new(method, body)
            .signature_values(values("x-retell-signature"))
            .content_encoding_values(values("content-encoding"))
            .forwarded_for_values(values("x-forwarded-for"))
            .with_content_length(content_length)
            .with_peer(Some([127, 0, 0, 1].into()));
        let done = self
            .receiver
            .dispatch(
                self.probe.as_ref(),
                self.route,
                &request,
                tokio::time::sleep,
            )
            .await;
        self.outcomes.lock().unwrap().push(done.outcome.clone());
        Reply {
            status: done.response.status(),
            headers: done
                .response
                .headers()
                .map(|(n, v)| (n.to_owned(), v.to_owned()))
                .collect(),
            body: done.response.into_body(),
            sent: body.len(),
            written: body.len(),
            wire_len: body.len(),
        }
    }

    /// `POST` with a valid signature over `body` at [`NOW`].
    pub async fn post_signed(&self, body: &[u8]) -> Reply {
        let sig = signature(body);
        self.send(
            "POST",
            &[
                ("Content-Type", "application/json"),
                ("X-Retell-Signature", &sig),
            ],
            body,
            Framing::Length,
        )
        .await
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        #[cfg(feature = "actix")]
        if let Some(handle) = self.actix.take() {
            // Sends the stop command at once; the system thread then exits.
            drop(handle.stop(false));
        }
    }
}

/// Shorthand for the deadline used by deadline tests.
pub const SHORT_DEADLINE: Duration = Duration::from_millis(50);
