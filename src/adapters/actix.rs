//! [actix-web 4](https://actix.rs) adapter (feature `actix`).
//!
//! Two ways in, both running the same checks in the same order as every other
//! adapter (see [`dispatch`](crate::dispatch)):
//!
//! * a ready-made receiver: [`service`] (event and inbound webhooks),
//!   [`function_service`] (custom functions), or a [`Receiver`] built once and
//!   mounted with [`Receiver::resource`] / [`Receiver::route`]. It reads the body,
//!   verifies it, parses it and calls your [`WebhookHandler`], with panics caught
//!   (`500`) and the handler deadline applied (`503`);
//! * the [`RetellWebhook`] extractor, for your own actix handlers: it yields a
//!   verified, typed [`Incoming`] request, configured with [`RetellConfig`] in
//!   `app_data`.
//!
//! The body is read with the limit of [`ReceiverConfig::body_limit`] (8 MiB by
//! default), not actix-web's 256 KiB [`PayloadConfig`](actix_web::web::PayloadConfig)
//! default: a declared `Content-Length` over the limit is refused before
//! anything is read, and a chunked body is refused as soon as it crosses the
//! limit (`413`, and the connection is closed). Signatures are checked on the
//! raw bytes before any JSON parsing.
//!
//! # Quick start
//!
//! ```no_run
//! use actix_web::{App, HttpServer};
//! use retell_webhooks::adapters::actix::Receiver;
//! use retell_webhooks::dispatch::{ReceiverConfig, WebhookHandler};
//! use retell_webhooks::{CallEvent, Verifier};
//!
//! struct Handler;
//!
//! impl WebhookHandler for Handler {
//!     type Error = std::convert::Infallible;
//!
//!     async fn on_call_ended(&self, event: CallEvent) -> Result<(), Self::Error> {
//!         let _ = event; // store the transcript, enqueue work, ...
//!         Ok(())
//!     }
//! }
//!
//! #[actix_web::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let key = std::env::var("RETELL_API_KEY")?;
//!     // Built once; every worker shares the same handler.
//!     let receiver = Receiver::events(Verifier::new(&key)?, Handler, ReceiverConfig::new());
//!     HttpServer::new(move || App::new().service(receiver.resource("/retell/webhook")))
//!         .bind(("127.0.0.1", 3000))?
//!         .run()
//!         .await?;
//!     Ok(())
//! }
//! ```
//!
//! # Differences from plain actix-web
//!
//! * A panicking handler is answered with `500`; plain actix-web closes the
//!   connection without a response.
//! * Every response carries the [`Outcome`] in its extensions
//!   (`response.extensions().get::<Outcome>()`), for logging middleware. It holds
//!   no body, header value or key.
//! * actix-web 4 uses `http` 0.2 types; nothing here exposes them beyond what
//!   actix-web itself does.

use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;

use actix_web::body::{BodyStream, to_bytes_limited};
use actix_web::error::PayloadError;
use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_ENCODING, CONTENT_LENGTH, HeaderMap};
use actix_web::web::Bytes;
use actix_web::{FromRequest, HttpRequest, HttpResponse, Resource, ResponseError, dev, web};

use crate::Incoming;
use crate::dispatch::{
    Dispatched, Outcome, RawRequest, Reason, ReceiverConfig, Route, WebhookHandler, dispatch,
    precheck,
};
use crate::signature::{SIGNATURE_HEADER, Verifier};

/// The header a reverse proxy appends the client address to; read only when the
/// TCP peer is one of the allowlist's trusted proxies.
const FORWARDED_FOR: &str = "x-forwarded-for";

// ---------------------------------------------------------------------------
// Ready-made receiver
// ---------------------------------------------------------------------------

struct Shared<H> {
    verifier: Verifier,
    handler: H,
    config: ReceiverConfig,
    route: Route,
}

/// A verifier, a handler and a configuration for one kind of route, ready to be
/// mounted in an actix-web [`App`](actix_web::App).
///
/// Build it once, outside the `HttpServer` factory closure, and mount it in each
/// worker's `App`: clones share the same handler (it is behind an [`Arc`]).
///
/// ```no_run
/// # use retell_webhooks::{Verifier, dispatch::{ReceiverConfig, WebhookHandler}};
/// # struct Handler;
/// # impl WebhookHandler for Handler { type Error = std::convert::Infallible; }
/// use actix_web::{App, HttpServer};
/// use retell_webhooks::adapters::actix::Receiver;
///
/// # #[actix_web::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let verifier = Verifier::new(&std::env::var("RETELL_API_KEY")?)?;
/// let config = ReceiverConfig::new().with_body_limit(16 * 1024 * 1024);
/// let events = Receiver::events(verifier.clone(), Handler, config.clone());
/// let tools = Receiver::function(verifier, Handler, config);
/// HttpServer::new(move || {
///     App::new()
///         .service(events.resource("/retell/webhook"))
///         .route("/retell/tools/book", tools.route())
/// })
/// .bind(("127.0.0.1", 3000))?
/// .run()
/// .await?;
/// # Ok(())
/// # }
/// ```
pub struct Receiver<H> {
    shared: Arc<Shared<H>>,
}

impl<H> Clone for Receiver<H> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<H> fmt::Debug for Receiver<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("route", &self.shared.route)
            .field("verifier", &self.shared.verifier)
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl<H: WebhookHandler + 'static> Receiver<H> {
    /// A receiver for `route`.
    #[must_use]
    pub fn new(route: Route, verifier: Verifier, handler: H, config: ReceiverConfig) -> Self {
        Self {
            shared: Arc::new(Shared {
                verifier,
                handler,
                config,
                route,
            }),
        }
    }

    /// A receiver for the event webhook and the inbound call/SMS webhook
    /// ([`Route::Events`]).
    #[must_use]
    pub fn events(verifier: Verifier, handler: H, config: ReceiverConfig) -> Self {
        Self::new(Route::Events, verifier, handler, config)
    }

    /// A receiver for a custom function URL ([`Route::Function`]).
    #[must_use]
    pub fn function(verifier: Verifier, handler: H, config: ReceiverConfig) -> Self {
        Self::new(Route::Function, verifier, handler, config)
    }

    /// The handler.
    #[must_use]
    pub fn handler(&self) -> &H {
        &self.shared.handler
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &ReceiverConfig {
        &self.shared.config
    }

    /// A resource at `path` answering every method (anything but `POST` gets
    /// `405` with `Allow: POST`); mount it with `App::service`.
    #[must_use]
    pub fn resource(&self, path: &str) -> Resource {
        web::resource(path).route(self.route())
    }

    /// A route answering every method, for `App::route(path, ...)` or
    /// `web::resource(path).route(...)`.
    #[must_use]
    pub fn route(&self) -> actix_web::Route {
        let this = self.clone();
        web::route().to(move |req: HttpRequest, payload: web::Payload| {
            let this = this.clone();
            async move { this.handle(&req, payload).await }
        })
    }

    /// Answers one request: the whole pipeline of [`dispatch`], with the body
    /// read from `payload` under the configured limit and the handler deadline
    /// enforced with a Tokio timer.
    ///
    /// Use it to call the receiver from your own actix handler.
    pub async fn handle(&self, req: &HttpRequest, payload: web::Payload) -> HttpResponse {
        let Shared {
            verifier,
            handler,
            config,
            route,
        } = &*self.shared;
        let mut payload = payload.into_inner();
        let head = RequestHead::of(req);
        let request = head.raw_request();
        if let Some(rejected) = precheck(config, *route, &request) {
            return into_response(rejected, Some(payload));
        }
        let body = match read_body(&mut payload, config.body_limit()).await {
            Ok(body) => body,
            Err(BodyError::TooLarge) => {
                let limit = config.body_limit();
                let rejected = Dispatched::rejected(*route, Reason::PayloadTooLarge { limit });
                return into_response(rejected, Some(payload));
            }
            Err(BodyError::Read(error)) => return HttpResponse::from_error(error),
        };
        let request = request.with_body(&body);
        let deadline = tokio::time::sleep(config.handler_deadline());
        let done = dispatch(verifier, handler, *route, config, &request, deadline).await;
        into_response(done, None)
    }
}

/// A [`Receiver::events`] resource at `path`: the event webhook and the inbound
/// call/SMS webhook. Mount it with `App::service`.
///
/// `HttpServer` calls its factory closure once per worker; to share one handler
/// between workers, build a [`Receiver`] once instead.
#[must_use]
pub fn service<H: WebhookHandler + 'static>(
    path: &str,
    verifier: Verifier,
    handler: H,
    config: ReceiverConfig,
) -> Resource {
    Receiver::events(verifier, handler, config).resource(path)
}

/// A [`Receiver::function`] resource at `path`: a custom function URL, answered
/// with the handler's [`on_function_call`](WebhookHandler::on_function_call).
/// Mount it with `App::service`.
#[must_use]
pub fn function_service<H: WebhookHandler + 'static>(
    path: &str,
    verifier: Verifier,
    handler: H,
    config: ReceiverConfig,
) -> Resource {
    Receiver::function(verifier, handler, config).resource(path)
}

// ---------------------------------------------------------------------------
// Extractor
// ---------------------------------------------------------------------------

/// What the [`RetellWebhook`] extractor needs: the verifier and the limits.
/// Register it with `App::app_data(RetellConfig::new(...))`, or wrapped in
/// [`web::Data`].
///
/// Without it the extractor fails closed with `500`; it never lets a request
/// through unverified.
#[derive(Debug, Clone)]
pub struct RetellConfig {
    verifier: Verifier,
    config: ReceiverConfig,
}

impl RetellConfig {
    /// The verifier with the default [`ReceiverConfig`].
    #[must_use]
    pub fn new(verifier: Verifier) -> Self {
        Self::with_config(verifier, ReceiverConfig::new())
    }

    /// The verifier with these limits (body limit, clock, source allowlist).
    #[must_use]
    pub fn with_config(verifier: Verifier, config: ReceiverConfig) -> Self {
        Self { verifier, config }
    }

    /// The verifier.
    #[must_use]
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    /// The limits.
    #[must_use]
    pub fn config(&self) -> &ReceiverConfig {
        &self.config
    }
}

fn find_config(req: &HttpRequest) -> Option<&RetellConfig> {
    req.app_data::<RetellConfig>()
        .or_else(|| req.app_data::<web::Data<RetellConfig>>().map(|data| data.get_ref()))
}

/// A verified, typed Retell request: the event webhook or the inbound
/// call/SMS webhook.
///
/// Extraction runs the same checks as [`dispatch`] (source allowlist, method,
/// encoding, body limit, signature, then parsing) and fails with a
/// [`WebhookError`] whose response is the one every adapter sends. Your handler
/// decides the success response (Retell expects `2xx`; for the inbound webhook,
/// a JSON [`InboundResponse`](crate::InboundResponse)).
///
/// Unlike the ready-made [`Receiver`], no deadline or panic guard is applied
/// to your own handler.
///
/// ```no_run
/// use actix_web::{App, HttpResponse, HttpServer, post};
/// use retell_webhooks::adapters::actix::{RetellConfig, RetellWebhook};
/// use retell_webhooks::{Incoming, Verifier};
///
/// #[post("/retell/webhook")]
/// async fn webhook(RetellWebhook(incoming): RetellWebhook) -> HttpResponse {
///     match incoming {
///         Incoming::Event(event) => {
///             let _ = event; // store it, enqueue work, ...
///             HttpResponse::NoContent().finish()
///         }
///         _ => HttpResponse::NoContent().finish(),
///     }
/// }
///
/// # #[actix_web::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let config = RetellConfig::new(Verifier::new(&std::env::var("RETELL_API_KEY")?)?);
/// HttpServer::new(move || App::new().app_data(config.clone()).service(webhook))
///     .bind(("127.0.0.1", 3000))?
///     .run()
///     .await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct RetellWebhook(pub Incoming);

impl RetellWebhook {
    /// The request.
    #[must_use]
    pub fn into_inner(self) -> Incoming {
        self.0
    }
}

impl FromRequest for RetellWebhook {
    type Error = WebhookError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut dev::Payload) -> Self::Future {
        let req = req.clone();
        let mut payload = payload.take();
        Box::pin(async move {
            let Some(RetellConfig { verifier, config }) = find_config(&req) else {
                return Err(WebhookError::rejected(Route::Events, Reason::NotConfigured));
            };
            let head = RequestHead::of(&req);
            let request = head.raw_request();
            if let Some(rejected) = precheck(config, Route::Events, &request) {
                return Err(WebhookError::from(rejected));
            }
            let body = match read_body(&mut payload, config.body_limit()).await {
                Ok(body) => body,
                Err(BodyError::TooLarge) => {
                    let limit = config.body_limit();
                    return Err(WebhookError::rejected(
                        Route::Events,
                        Reason::PayloadTooLarge { limit },
                    ));
                }
                Err(BodyError::Read(error)) => return Err(WebhookError::read(error)),
            };
            let request = request.with_body(&body);
            let capture = capture::Capture::default();
            let done = dispatch(
                verifier,
                &capture,
                Route::Events,
                config,
                &request,
                std::future::pending(),
            )
            .await;
            match capture.take() {
                Some(incoming) if done.outcome.is_success() => Ok(Self(incoming)),
                _ if !done.outcome.is_success() => Err(WebhookError::from(done)),
                _ => Err(WebhookError::rejected(
                    Route::Events,
                    Reason::HandlerFailed("the request was not captured".to_owned()),
                )),
            }
        })
    }
}

mod capture {
    //! A handler that keeps the parsed request instead of acting on it, so the
    //! extractor runs exactly the dispatcher's checks.

    use std::sync::Mutex;

    use crate::dispatch::WebhookHandler;
    use crate::{
        CallEvent, ChatEvent, InboundCallRequest, InboundChatRequest, InboundResponse, Incoming,
        TranscriptUpdatedEvent, TransferEvent, UnknownEvent, WebhookEvent,
    };

    #[derive(Default)]
    pub(super) struct Capture {
        slot: Mutex<Option<Incoming>>,
    }

    impl Capture {
        pub(super) fn take(&self) -> Option<Incoming> {
            match self.slot.lock() {
                Ok(mut slot) => slot.take(),
                Err(poisoned) => poisoned.into_inner().take(),
            }
        }

        fn put(&self, incoming: Incoming) {
            match self.slot.lock() {
                Ok(mut slot) => *slot = Some(incoming),
                Err(poisoned) => *poisoned.into_inner() = Some(incoming),
            }
        }

        fn event(&self, event: WebhookEvent) -> Result<(), Never> {
            self.put(Incoming::Event(event));
            Ok(())
        }
    }

    /// The capture handler cannot fail.
    pub(super) enum Never {}

    impl std::fmt::Display for Never {
        fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            match *self {}
        }
    }

    impl WebhookHandler for Capture {
        type Error = Never;

        async fn on_call_started(&self, event: CallEvent) -> Result<(), Never> {
            self.event(WebhookEvent::CallStarted(event))
        }
        async fn on_call_ended(&self, event: CallEvent) -> Result<(), Never> {
            self.event(WebhookEvent::CallEnded(event))
        }
        async fn on_call_analyzed(&self, event: CallEvent) -> Result<(), Never> {
            self.event(WebhookEvent::CallAnalyzed(event))
        }
        async fn on_transcript_updated(&self, event: TranscriptUpdatedEvent) -> Result<(), Never> {
            self.event(WebhookEvent::TranscriptUpdated(event))
        }
        async fn on_transfer_started(&self, event: TransferEvent) -> Result<(), Never> {
            self.event(WebhookEvent::TransferStarted(event))
        }
        async fn on_transfer_bridged(&self, event: TransferEvent) -> Result<(), Never> {
            self.event(WebhookEvent::TransferBridged(event))
        }
        async fn on_transfer_cancelled(&self, event: TransferEvent) -> Result<(), Never> {
            self.event(WebhookEvent::TransferCancelled(event))
        }
        async fn on_transfer_ended(&self, event: TransferEvent) -> Result<(), Never> {
            self.event(WebhookEvent::TransferEnded(event))
        }
        async fn on_chat_started(&self, event: ChatEvent) -> Result<(), Never> {
            self.event(WebhookEvent::ChatStarted(event))
        }
        async fn on_chat_ended(&self, event: ChatEvent) -> Result<(), Never> {
            self.event(WebhookEvent::ChatEnded(event))
        }
        async fn on_chat_analyzed(&self, event: ChatEvent) -> Result<(), Never> {
            self.event(WebhookEvent::ChatAnalyzed(event))
        }
        async fn on_unknown(&self, event: UnknownEvent) -> Result<(), Never> {
            self.event(WebhookEvent::Unknown(event))
        }
        async fn on_call_inbound(
            &self,
            request: InboundCallRequest,
        ) -> Result<InboundResponse, Never> {
            self.put(Incoming::CallInbound(request));
            Ok(InboundResponse::call())
        }
        async fn on_chat_inbound(
            &self,
            request: InboundChatRequest,
        ) -> Result<InboundResponse, Never> {
            self.put(Incoming::ChatInbound(request));
            Ok(InboundResponse::chat())
        }
    }
}

/// Why the [`RetellWebhook`] extractor refused a request.
///
/// Its response ([`ResponseError`]) is the one the dispatcher sends for the same
/// failure, so a rejected request looks the same through the extractor, the
/// ready-made [`Receiver`] and every other adapter (every verification failure
/// is the same `401`). `Display` gives the reason for logs; nothing in it is a
/// key, a signature or the body.
#[derive(Debug)]
pub struct WebhookError {
    kind: ErrorKind,
}

#[derive(Debug)]
enum ErrorKind {
    Rejected(Box<Dispatched>),
    Read(PayloadError),
}

impl WebhookError {
    fn rejected(route: Route, reason: Reason) -> Self {
        Self::from(Dispatched::rejected(route, reason))
    }

    fn read(error: PayloadError) -> Self {
        Self {
            kind: ErrorKind::Read(error),
        }
    }

    /// The outcome to log; `None` when the body could not be read (the client
    /// went away or sent a broken chunked body).
    #[must_use]
    pub fn outcome(&self) -> Option<&Outcome> {
        match &self.kind {
            ErrorKind::Rejected(done) => Some(&done.outcome),
            ErrorKind::Read(_) => None,
        }
    }

    /// The reason; `None` when the body could not be read.
    #[must_use]
    pub fn reason(&self) -> Option<&Reason> {
        self.outcome().map(|outcome| &outcome.reason)
    }
}

impl From<Dispatched> for WebhookError {
    fn from(done: Dispatched) -> Self {
        Self {
            kind: ErrorKind::Rejected(Box::new(done)),
        }
    }
}

impl fmt::Display for WebhookError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ErrorKind::Rejected(done) => write!(f, "retell webhook rejected: {}", done.outcome),
            ErrorKind::Read(error) => write!(f, "retell webhook body could not be read: {error}"),
        }
    }
}

impl std::error::Error for WebhookError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            ErrorKind::Rejected(_) => None,
            ErrorKind::Read(error) => Some(error),
        }
    }
}

impl ResponseError for WebhookError {
    fn status_code(&self) -> StatusCode {
        match &self.kind {
            ErrorKind::Rejected(done) => status(done.response.status()),
            ErrorKind::Read(error) => error.status_code(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        match &self.kind {
            ErrorKind::Rejected(done) => into_response((**done).clone(), None),
            ErrorKind::Read(error) => error.error_response(),
        }
    }
}

// ---------------------------------------------------------------------------
// Request and response plumbing
// ---------------------------------------------------------------------------

/// The header values the dispatcher looks at, borrowed from the request.
struct RequestHead<'a> {
    method: &'a str,
    signature: Vec<&'a [u8]>,
    content_encoding: Vec<&'a [u8]>,
    content_length: Option<u64>,
    peer: Option<IpAddr>,
    forwarded_for: Vec<&'a [u8]>,
}

impl<'a> RequestHead<'a> {
    fn of(req: &'a HttpRequest) -> Self {
        let headers = req.headers();
        Self {
            method: req.method().as_str(),
            signature: values(headers, SIGNATURE_HEADER),
            content_encoding: values(headers, CONTENT_ENCODING.as_str()),
            content_length: content_length(headers),
            peer: req.peer_addr().map(|addr| addr.ip()),
            forwarded_for: values(headers, FORWARDED_FOR),
        }
    }

    fn raw_request(&self) -> RawRequest<'a> {
        RawRequest::new(self.method, &[])
            .signature_values(self.signature.iter().copied())
            .content_encoding_values(self.content_encoding.iter().copied())
            .with_content_length(self.content_length)
            .with_peer(self.peer)
            .forwarded_for_values(self.forwarded_for.iter().copied())
    }
}

fn values<'a>(headers: &'a HeaderMap, name: &str) -> Vec<&'a [u8]> {
    headers.get_all(name).map(|value| value.as_bytes()).collect()
}

/// The declared length, if the request has exactly one valid `Content-Length`
/// (actix-web itself refuses requests whose framing headers are invalid).
fn content_length(headers: &HeaderMap) -> Option<u64> {
    let mut all = headers.get_all(CONTENT_LENGTH);
    let value = all.next()?;
    if all.next().is_some() {
        return None;
    }
    let digits = value.as_bytes();
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

enum BodyError {
    TooLarge,
    Read(PayloadError),
}

/// Buffers the body, stopping as soon as it would exceed `limit` bytes.
async fn read_body(payload: &mut dev::Payload, limit: usize) -> Result<Bytes, BodyError> {
    match to_bytes_limited(BodyStream::new(payload), limit).await {
        Ok(Ok(body)) => Ok(body),
        Ok(Err(error)) => Err(BodyError::Read(error)),
        Err(_over_limit) => Err(BodyError::TooLarge),
    }
}

/// Keeps an unread request body alive until the response has been written.
///
/// actix-web discards ("drains") the rest of a chunked body whose payload was
/// dropped, however long it is; while the payload is still referenced it closes
/// the connection after the response instead.
struct UnreadBody(#[allow(dead_code)] dev::Payload);

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

fn into_response(done: Dispatched, unread: Option<dev::Payload>) -> HttpResponse {
    let Dispatched { response, outcome } = done;
    let code = status(response.status());
    let mut builder = HttpResponse::build(code);
    for (name, value) in response.headers() {
        builder.insert_header((name, value));
    }
    if code == StatusCode::PAYLOAD_TOO_LARGE {
        builder.force_close();
    }
    let mut res = builder.body(response.into_body());
    if let Some(payload) = unread {
        if code == StatusCode::PAYLOAD_TOO_LARGE {
            res.extensions_mut().insert(UnreadBody(payload));
        }
    }
    res.extensions_mut().insert(outcome);
    res
}
