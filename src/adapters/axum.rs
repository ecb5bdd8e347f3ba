//! axum 0.8 adapter: a ready-made router and extractors for verified events.
//!
//! Every request goes through [`crate::dispatch`], so statuses are the same as in
//! any other adapter. On top of the core this adapter:
//!
//! * refuses a `Content-Length` over the limit before reading, and stops reading
//!   as soon as a body crosses it (`413`; 8 MiB by default, never axum's 2 MiB);
//! * applies the handler deadline with `tokio::time::sleep` (`503`);
//! * answers `500` when no verifier is configured (fail closed);
//! * puts the [`Outcome`] in the response extensions, so a logging middleware
//!   can print one line per request.
//!
//! # Quick start
//!
//! ```no_run
//! use retell_webhooks::adapters::axum::router;
//! use retell_webhooks::dispatch::{ReceiverConfig, WebhookHandler};
//! use retell_webhooks::{CallEvent, Verifier};
//!
//! struct Handler;
//!
//! impl WebhookHandler for Handler {
//!     type Error = std::io::Error;
//!
//!     async fn on_call_ended(&self, event: CallEvent) -> Result<(), Self::Error> {
//!         println!("call ended: {:?}", event.call.call_id);
//!         Ok(())
//!     }
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let verifier = Verifier::new(&std::env::var("RETELL_API_KEY")?)?;
//!     let app = router("/retell/webhook", verifier, Handler, ReceiverConfig::new());
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//!     axum::serve(listener, app).await?;
//!     Ok(())
//! }
//! ```
//!
//! # Logging
//!
//! Each response carries its [`Outcome`] in the extensions; one line per request
//! (status, event, call id, reason; no body or header value):
//!
//! ```no_run
//! # use retell_webhooks::adapters::axum::router;
//! # use retell_webhooks::dispatch::{Outcome, ReceiverConfig, WebhookHandler};
//! # struct Handler;
//! # impl WebhookHandler for Handler { type Error = String; }
//! # fn app(verifier: retell_webhooks::Verifier) -> axum::Router {
//! use axum::response::Response;
//!
//! router("/retell/webhook", verifier, Handler, ReceiverConfig::new()).layer(
//!     axum::middleware::map_response(|response: Response| async move {
//!         if let Some(outcome) = response.extensions().get::<Outcome>() {
//!             eprintln!("retell webhook: {outcome}");
//!         }
//!         response
//!     }),
//! )
//! # }
//! ```
//!
//! # Source allowlist
//!
//! For the source allowlist, serve with
//! `app.into_make_service_with_connect_info::<std::net::SocketAddr>()` so the
//! peer address is known; without it an allowlist refuses every request (`403`).
//!
//! To handle events in your own axum handler instead, use the [`VerifiedEvent`]
//! (or [`VerifiedIncoming`], [`VerifiedBody`]) extractor with a
//! [`WebhookConfig`] in the router state. Extractors do not catch panics,
//! apply the deadline or deduplicate (a dedupe store in the configuration is
//! not consulted): that is the router's job.

use std::future::poll_fn;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{ConnectInfo, FromRef, FromRequest, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, any};

use super::BodyCheck;
pub use super::WebhookConfig;
use crate::dispatch::{
    self, BadBody, Dispatched, Outcome, RawRequest, Reason, ReceiverConfig, Route, WebhookHandler,
};
use crate::{Incoming, SIGNATURE_HEADER, Verifier, WebhookEvent};

/// Header carrying the original client address through proxies.
const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// Most bytes reserved up front from a `Content-Length`; the rest grows as data
/// arrives, so a false length cannot make the server allocate the whole limit.
const MAX_PREALLOCATION: u64 = 1024 * 1024;

/// A router with one `POST` route at `path` for the event webhook (and the
/// inbound call/SMS webhook), handled by `handler`.
///
/// Any other method on `path` is answered `405`. Merge it into your app with
/// [`Router::merge`].
pub fn router<H, S>(path: &str, verifier: Verifier, handler: H, config: ReceiverConfig) -> Router<S>
where
    H: WebhookHandler + 'static,
    S: Clone + Send + Sync + 'static,
{
    let webhook = WebhookConfig::new(verifier).with_receiver_config(config);
    Router::new().route(path, endpoint(Route::Events, webhook, Arc::new(handler)))
}

/// Like [`router`], for a custom function URL: bodies are
/// [`FunctionCall`](crate::FunctionCall)s answered by
/// [`WebhookHandler::on_function_call`] with `200` and the handler's body.
///
/// The handler deadline of `config` applies (9 s by default); Retell waits up to
/// the tool's `timeout_ms` (2 minutes by default), so raise it for slow tools.
pub fn function_router<H, S>(
    path: &str,
    verifier: Verifier,
    handler: H,
    config: ReceiverConfig,
) -> Router<S>
where
    H: WebhookHandler + 'static,
    S: Clone + Send + Sync + 'static,
{
    let webhook = WebhookConfig::new(verifier).with_receiver_config(config);
    Router::new().route(path, endpoint(Route::Function, webhook, Arc::new(handler)))
}

/// The route handler behind [`router`] and [`function_router`], to mount at a
/// path of your choice (`Router::new().route("/hook", endpoint(...))`), share one
/// handler between several routes, or pass an [unconfigured](WebhookConfig::unconfigured)
/// config.
pub fn endpoint<H, S>(route: Route, webhook: WebhookConfig, handler: Arc<H>) -> MethodRouter<S>
where
    H: WebhookHandler + 'static,
    S: Clone + Send + Sync + 'static,
{
    let state = Endpoint {
        route,
        webhook,
        handler,
    };
    any(serve::<H>).with_state(state)
}

struct Endpoint<H> {
    route: Route,
    webhook: WebhookConfig,
    handler: Arc<H>,
}

impl<H> Clone for Endpoint<H> {
    fn clone(&self) -> Self {
        Self {
            route: self.route,
            webhook: self.webhook.clone(),
            handler: Arc::clone(&self.handler),
        }
    }
}

async fn serve<H>(State(endpoint): State<Endpoint<H>>, request: Request) -> Response
where
    H: WebhookHandler + 'static,
{
    into_response(handle(&endpoint, request).await)
}

async fn handle<H>(endpoint: &Endpoint<H>, request: Request) -> Dispatched
where
    H: WebhookHandler + 'static,
{
    let route = endpoint.route;
    let (parts, body) = request.into_parts();
    let Some(verifier) = endpoint.webhook.verifier() else {
        return Dispatched::from_reason(route, Reason::NotConfigured);
    };
    // Held until the answer is built: bounds the bodies buffered at once.
    let _permit = endpoint.webhook.in_flight_permit().await;
    let config = endpoint.webhook.receiver_config();
    let bytes = match read_checked(config, route, &parts, body).await {
        Ok(bytes) => bytes,
        Err(rejected) => return rejected,
    };
    let raw = raw_request(&parts).with_body(&bytes);
    // The timer starts when `dispatch` first polls it, i.e. when the handler
    // starts: verification, parsing and deduplication do not use it up.
    let handler_deadline = config.handler_deadline();
    let deadline = async move { tokio::time::sleep(handler_deadline).await };
    dispatch::dispatch(
        verifier,
        endpoint.handler.as_ref(),
        route,
        config,
        &raw,
        deadline,
    )
    .await
}

/// Runs the body-independent checks, then reads the body within the limit.
async fn read_checked(
    config: &ReceiverConfig,
    route: Route,
    parts: &Parts,
    body: Body,
) -> Result<Bytes, Dispatched> {
    let head = raw_request(parts);
    if let Some(rejected) = dispatch::precheck(config, route, &head) {
        return Err(rejected);
    }
    let limit = config.body_limit();
    match read_body(body, limit, head.content_length()).await {
        Ok(bytes) => Ok(bytes),
        Err(ReadError::TooLarge) => Err(Dispatched::from_reason(
            route,
            Reason::PayloadTooLarge { limit },
        )),
        Err(ReadError::Failed) => Err(Dispatched::from_reason(route, Reason::BodyReadFailed)),
    }
}

fn raw_request(parts: &Parts) -> RawRequest<'_> {
    let headers = &parts.headers;
    let content_length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip());
    RawRequest::new(parts.method.as_str(), &[])
        .signature_values(
            headers
                .get_all(SIGNATURE_HEADER)
                .iter()
                .map(HeaderValue::as_bytes),
        )
        .content_encoding_values(
            headers
                .get_all(header::CONTENT_ENCODING)
                .iter()
                .map(HeaderValue::as_bytes),
        )
        .forwarded_for_values(
            headers
                .get_all(X_FORWARDED_FOR)
                .iter()
                .map(HeaderValue::as_bytes),
        )
        .with_content_length(content_length)
        .with_peer(peer)
}

enum ReadError {
    TooLarge,
    Failed,
}

/// Reads the body frame by frame and stops at the first byte over `limit`.
async fn read_body(mut body: Body, limit: usize, hint: Option<u64>) -> Result<Bytes, ReadError> {
    let reserve = hint.map_or(0, |len| len.min(MAX_PREALLOCATION));
    let mut buf = Vec::with_capacity(usize::try_from(reserve).unwrap_or(0));
    while let Some(frame) = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        let frame = frame.map_err(|_| ReadError::Failed)?;
        if let Ok(data) = frame.into_data() {
            if data.len() > limit.saturating_sub(buf.len()) {
                return Err(ReadError::TooLarge);
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(Bytes::from(buf))
}

fn into_response(done: Dispatched) -> Response {
    let Dispatched { response, outcome } = done;
    let status =
        StatusCode::from_u16(response.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers: Vec<_> = response.headers().collect();
    let mut out = Response::new(Body::from(response.into_body()));
    *out.status_mut() = status;
    for (name, value) in headers {
        let name = match name {
            "content-type" => header::CONTENT_TYPE,
            "allow" => header::ALLOW,
            _ => continue,
        };
        if let Ok(value) = HeaderValue::from_str(value) {
            out.headers_mut().insert(name, value);
        }
    }
    out.extensions_mut().insert(outcome);
    out
}

// ---------------------------------------------------------------------------
// Extractors
// ---------------------------------------------------------------------------

/// Why an extractor refused a request. Its response is exactly what the router
/// would send; [`outcome`](Self::outcome) says why, for logs.
#[derive(Debug)]
pub struct WebhookRejection(Box<Dispatched>);

impl WebhookRejection {
    /// Status, reason, event name and call id (never a body or header value).
    #[must_use]
    pub fn outcome(&self) -> &Outcome {
        &self.0.outcome
    }

    /// The status that will be sent.
    #[must_use]
    pub fn status(&self) -> u16 {
        self.0.response.status()
    }
}

impl std::fmt::Display for WebhookRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.outcome.fmt(f)
    }
}

impl std::error::Error for WebhookRejection {}

impl IntoResponse for WebhookRejection {
    fn into_response(self) -> Response {
        into_response(*self.0)
    }
}

impl From<Dispatched> for WebhookRejection {
    fn from(done: Dispatched) -> Self {
        Self(Box::new(done))
    }
}

/// Reads, limits and verifies the body. With [`BodyCheck::JsonObject`] also checks it is a
/// JSON object; typed extractors skip that pass because their parse rejects the
/// same bodies.
async fn verified_bytes<S>(
    state: &S,
    route: Route,
    request: Request,
    check: BodyCheck,
) -> Result<Bytes, WebhookRejection>
where
    WebhookConfig: FromRef<S>,
{
    let webhook = WebhookConfig::from_ref(state);
    let (parts, body) = request.into_parts();
    let Some(verifier) = webhook.verifier() else {
        return Err(Dispatched::from_reason(route, Reason::NotConfigured).into());
    };
    let config = webhook.receiver_config();
    let bytes = read_checked(config, route, &parts, body).await?;
    let raw = raw_request(&parts).with_body(&bytes);
    match check {
        BodyCheck::JsonObject => dispatch::authenticate(verifier, config, route, &raw),
        BodyCheck::SignatureOnly => dispatch::authenticate_signature(verifier, config, route, &raw),
    }
    .map_err(WebhookRejection)?;
    Ok(bytes)
}

fn invalid(route: Route, body: &[u8], error: crate::ParseError) -> WebhookRejection {
    let why = BadBody::from_parse_error(route, body, error);
    Dispatched::from_reason(route, Reason::BadRequest(why)).into()
}

/// The raw body of a verified request: a JSON object, not parsed further (to
/// store or queue as received, and parse later).
///
/// Needs a [`WebhookConfig`] reachable from the router state ([`FromRef`]).
#[derive(Debug, Clone)]
pub struct VerifiedBody(pub Bytes);

impl<S> FromRequest<S> for VerifiedBody
where
    WebhookConfig: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = WebhookRejection;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        verified_bytes(state, Route::Events, request, BodyCheck::JsonObject)
            .await
            .map(Self)
    }
}

/// A verified, typed event from the event webhook.
///
/// Needs a [`WebhookConfig`] reachable from the router state ([`FromRef`]).
///
/// ```no_run
/// use axum::{Router, routing::post};
/// use retell_webhooks::adapters::axum::{VerifiedEvent, WebhookConfig};
/// use retell_webhooks::{Verifier, WebhookEvent};
///
/// async fn hook(VerifiedEvent(event): VerifiedEvent) -> axum::http::StatusCode {
///     if let WebhookEvent::CallEnded(ended) = &event {
///         let _ = ended; // store it
///     }
///     axum::http::StatusCode::NO_CONTENT
/// }
///
/// # fn app() -> Result<Router, retell_webhooks::KeyError> {
/// let config = WebhookConfig::new(Verifier::new("key_from_the_dashboard")?);
/// let app: Router = Router::new().route("/retell", post(hook)).with_state(config);
/// # Ok(app)
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct VerifiedEvent(pub WebhookEvent);

impl<S> FromRequest<S> for VerifiedEvent
where
    WebhookConfig: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = WebhookRejection;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = verified_bytes(state, Route::Events, request, BodyCheck::SignatureOnly).await?;
        WebhookEvent::from_slice(&bytes)
            .map(Self)
            .map_err(|error| invalid(Route::Events, &bytes, error))
    }
}

/// A verified request on the event webhook URL: an event, or an inbound
/// call/SMS webhook that expects a JSON answer.
///
/// Needs a [`WebhookConfig`] reachable from the router state ([`FromRef`]).
#[derive(Debug, Clone)]
pub struct VerifiedIncoming(pub Incoming);

impl<S> FromRequest<S> for VerifiedIncoming
where
    WebhookConfig: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = WebhookRejection;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = verified_bytes(state, Route::Events, request, BodyCheck::SignatureOnly).await?;
        Incoming::from_slice(&bytes)
            .map(Self)
            .map_err(|error| invalid(Route::Events, &bytes, error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::json_parses;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    struct Noop;
    impl WebhookHandler for Noop {
        type Error = String;
    }

    /// Checklist D9: unsigned hostile bodies, 10 000-deep nesting (20 KB) and
    /// a 500 000-key object (about 5 MB).
    fn hostile_bodies() -> [Vec<u8>; 2] {
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        let mut wide = String::from("{");
        for i in 0..500_000 {
            wide.push_str(&format!("\"{i}\":1,"));
        }
        wide.push_str("\"event\":\"call_ended\"}");
        [deep.into_bytes(), wide.into_bytes()]
    }

    /// D9 through the router over HTTP: `401`, and the JSON parser never ran.
    /// The runtime is single-threaded, so server and client share this thread
    /// and its parse counter.
    #[tokio::test(flavor = "current_thread")]
    async fn unsigned_hostile_bodies_are_401_without_parsing() {
        let app: Router = router(
            "/webhook",
            Verifier::new("key_unit").unwrap_or_else(|e| panic!("{e}")),
            Noop,
            ReceiverConfig::new(),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let before = json_parses();
        for body in hostile_bodies() {
            for signature in [
                "",
                "X-Retell-Signature: v=1785423600000,d=0000000000000000000000000000000000000000000000000000000000000000\r\n",
            ] {
                let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
                let head = format!(
                    "POST /webhook HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{signature}Content-Length: {}\r\n\r\n",
                    body.len()
                );
                stream.write_all(head.as_bytes()).await.unwrap();
                stream.write_all(&body).await.unwrap();
                let mut reply = Vec::new();
                stream.read_to_end(&mut reply).await.unwrap();
                assert!(
                    reply.starts_with(b"HTTP/1.1 401"),
                    "{}",
                    String::from_utf8_lossy(&reply)
                );
            }
        }
        assert_eq!(
            json_parses(),
            before,
            "an unverified body reached the JSON parser"
        );
        // Control: a signed body does reach the parser on this thread.
        let now = crate::unix_ms(std::time::SystemTime::now()).unwrap_or_default();
        let signed = format!(
            "X-Retell-Signature: {}\r\n",
            crate::sign(b"{}", "key_unit", now)
        );
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let head = format!(
            "POST /webhook HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{signed}Content-Length: 2\r\n\r\n{{}}"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut reply = Vec::new();
        stream.read_to_end(&mut reply).await.unwrap();
        assert!(
            reply.starts_with(b"HTTP/1.1 400"),
            "{}",
            String::from_utf8_lossy(&reply)
        );
        assert!(json_parses() > before);
    }
}
