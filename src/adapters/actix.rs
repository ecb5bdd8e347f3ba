//! actix-web 4 adapter: a ready-made service and extractors for verified events.
//!
//! Every request goes through [`crate::receiver`], so statuses and bodies are
//! the same as in any other adapter (the axum one included). On top of the core
//! this adapter:
//!
//! * refuses a `Content-Length` over the limit before reading, and stops reading
//!   as soon as a chunked body crosses it (`413`); the limit is
//!   [`ReceiverConfig::body_limit`](crate::ReceiverConfig::body_limit) (8 MiB by default), never actix-web's
//!   256 KiB [`PayloadConfig`](actix_web::web::PayloadConfig) default, which
//!   does not apply here. [`endpoint`] then closes the connection; after an
//!   extractor's `413`, actix-web reads and discards the rest of a chunked body
//!   (nothing more is buffered). Before closing, actix-web "lingers": it reads
//!   and discards whatever the client still sends for up to
//!   `HttpServer::client_disconnect_timeout` (1 s by default), so the client
//!   sees the `413` rather than a reset; lower it to close sooner;
//! * applies the route's deadline (the handler deadline, or the function
//!   deadline on a function route) with `tokio::time::sleep` (`503`); a handler
//!   panic is answered `500` instead of actix-web's closed connection;
//! * answers `500` when no verifier is configured (fail closed);
//! * takes the peer address for the source allowlist from
//!   [`HttpRequest::peer_addr`];
//! * puts the [`Outcome`](crate::receiver::Outcome) in the response extensions
//!   (`response.extensions().get::<Outcome>()`), so a logging middleware can
//!   print one line per request.
//!
//! # Quick start
//!
//! Served with a head timeout, an idle timeout and a connection limit (see the
//! README's "Running in production"):
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use actix_web::{App, HttpServer};
//! use retell_webhooks::adapters::actix::service;
//! use retell_webhooks::{Receiver, ReceiverConfig, WebhookHandler};
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
//! #[actix_web::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let verifier = Verifier::new(&std::env::var("RETELL_API_KEY")?)?;
//!     // Built once, outside the per-worker factory, so every worker shares its
//!     // state (in-flight places, the mismatch streak, a dedupe store).
//!     let receiver = Receiver::new(verifier, ReceiverConfig::new());
//!     let workers = std::thread::available_parallelism().map_or(1, usize::from);
//!     HttpServer::new(move || App::new().service(service("/retell/webhook", &receiver, Handler)))
//!         .client_request_timeout(Duration::from_secs(5)) // first head within 5 s, else 408
//!         .keep_alive(Duration::from_secs(65)) // idle: longer than a proxy's 60 s
//!         .workers(workers)
//!         .max_connections((1024 / workers).max(1)) // per worker: 1 024 connections in all
//!         .bind(("127.0.0.1", 3000))?
//!         .run()
//!         .await?;
//!     Ok(())
//! }
//! ```
//!
//! # Logging
//!
//! Each response carries its [`Outcome`](crate::receiver::Outcome) in the extensions; one line per request
//! (status, event, call id, reason; no body or header value):
//!
//! ```no_run
//! # use retell_webhooks::adapters::actix::service;
//! # use retell_webhooks::{receiver::Outcome, Receiver, WebhookHandler};
//! # struct Handler;
//! # impl WebhookHandler for Handler { type Error = String; }
//! # fn app(receiver: Receiver) {
//! use actix_web::App;
//! use actix_web::dev::Service as _;
//!
//! App::new()
//!     .wrap_fn(|request, service| {
//!         let response = service.call(request);
//!         async move {
//!             let response = response.await?;
//!             if let Some(outcome) = response.response().extensions().get::<Outcome>() {
//!                 eprintln!("retell webhook: {outcome}");
//!             }
//!             Ok(response)
//!         }
//!     })
//!     .service(service("/retell/webhook", &receiver, Handler));
//! # }
//! ```
//!
//! # Sharing a handler
//!
//! To share one handler between workers and routes, mount [`endpoint`] with an
//! [`Arc`]'d handler.
//!
//! # Extractors
//!
//! To handle events in your own actix handler instead, use the
//! [`VerifiedEvent`] (or [`VerifiedIncoming`], [`VerifiedBody`]) extractor with
//! a [`Receiver`] in `app_data`. Extractors hold body budget while they read
//! and verify the body, and no in-flight place; they do not catch panics,
//! apply the deadline or deduplicate (a dedupe store in the configuration is
//! not consulted): that is the service's job, and your handler decides the
//! response (Retell expects a `2xx`).
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use actix_web::{App, HttpResponse, HttpServer, post};
//! use retell_webhooks::adapters::VerifiedEvent;
//! use retell_webhooks::{Receiver, ReceiverConfig};
//! use retell_webhooks::{Verifier, WebhookEvent};
//!
//! #[post("/retell/webhook")]
//! async fn hook(VerifiedEvent(event): VerifiedEvent) -> HttpResponse {
//!     if let WebhookEvent::CallEnded(ended) = &event {
//!         let _ = ended; // store it
//!     }
//!     HttpResponse::NoContent().finish()
//! }
//!
//! # #[actix_web::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let verifier = Verifier::new(&std::env::var("RETELL_API_KEY")?)?;
//! let receiver = Receiver::new(verifier, ReceiverConfig::new());
//! let workers = std::thread::available_parallelism().map_or(1, usize::from);
//! HttpServer::new(move || App::new().app_data(receiver.clone()).service(hook))
//!     .client_request_timeout(Duration::from_secs(5))
//!     .keep_alive(Duration::from_secs(65))
//!     .workers(workers)
//!     .max_connections((1024 / workers).max(1))
//!     .bind(("127.0.0.1", 3000))?
//!     .run()
//!     .await?;
//! # Ok(())
//! # }
//! ```

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_ENCODING, CONTENT_LENGTH, HeaderMap};
use actix_web::{FromRequest, HttpRequest, HttpResponse, Resource, ResponseError, dev, web};

use bytes::Bytes;
use futures_core::Stream as _;

use super::extract::{Extract, extract};
use super::{VerifiedBody, VerifiedEvent, VerifiedIncoming, WebhookRejection};
use crate::receiver::{BodyChunks, Dispatched, RawRequest};
use crate::signature::SIGNATURE_HEADER;
use crate::{Receiver, RouteKind, WebhookHandler};

/// The header a reverse proxy appends the client address to; read only when the
/// TCP peer is one of the allowlist's trusted proxies.
const FORWARDED_FOR: &str = "x-forwarded-for";

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

/// The receiver registered in `app_data`, plain or as [`web::Data`].
fn find_receiver(req: &HttpRequest) -> Option<&Receiver> {
    req.app_data::<Receiver>().or_else(|| {
        req.app_data::<web::Data<Receiver>>()
            .map(|data| data.get_ref())
    })
}

// ---------------------------------------------------------------------------
// Ready-made service
// ---------------------------------------------------------------------------

/// A resource at `path` for the event webhook (and the inbound call/SMS
/// webhook), handled by `handler`. Mount it with `App::service`.
///
/// Any other method than `POST` on `path` is answered `405` with `Allow: POST`.
///
/// `HttpServer` calls its factory closure once per worker thread, so this builds
/// one handler per worker. To share a single handler (a connection pool, a
/// queue), build it once in an [`Arc`] and pass that (an `Arc` of a handler is
/// a handler). Build the [`Receiver`] once outside the closure too: its clones
/// share the in-flight places, the dedupe store and the mismatch streak, while
/// a receiver built per worker gives each worker its own (deduplication would
/// then miss copies that land on another worker).
#[must_use]
pub fn service<H>(path: &str, receiver: &Receiver, handler: H) -> Resource
where
    H: WebhookHandler + 'static,
{
    web::resource(path).route(endpoint(RouteKind::Events, receiver, handler))
}

/// Like [`service`], for a custom function URL: bodies are
/// [`FunctionCall`](crate::FunctionCall)s answered by
/// [`WebhookHandler::on_function_call`].
///
/// The route's deadline is
/// [`ReceiverConfig::function_deadline`](crate::ReceiverConfig::function_deadline)
/// (120 s by default, Retell's default tool timeout), not the handler
/// deadline of the event route.
#[must_use]
pub fn function_service<H>(path: &str, receiver: &Receiver, handler: H) -> Resource
where
    H: WebhookHandler + 'static,
{
    web::resource(path).route(endpoint(RouteKind::Function, receiver, handler))
}

/// The route behind [`service`] and [`function_service`], answering every
/// method: mount it at a path of your choice (`App::route(path, endpoint(..))`
/// or `web::resource(path).route(endpoint(..))`), share one handler between
/// workers and routes (pass an `Arc` of it).
///
/// ```no_run
/// use std::sync::Arc;
/// use std::time::Duration;
///
/// use actix_web::{App, HttpServer};
/// use retell_webhooks::adapters::actix::endpoint;
/// use retell_webhooks::{Receiver, ReceiverConfig, RouteKind, WebhookHandler};
/// use retell_webhooks::Verifier;
///
/// struct Handler; // e.g. holds a database pool
/// impl WebhookHandler for Handler {
///     type Error = std::convert::Infallible;
/// }
///
/// # #[actix_web::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let verifier = Verifier::new(&std::env::var("RETELL_API_KEY")?)?;
/// let config = ReceiverConfig::new().with_body_limit(16 * 1024 * 1024);
/// let receiver = Receiver::new(verifier, config);
/// let handler = Arc::new(Handler); // one handler for every worker
/// let workers = std::thread::available_parallelism().map_or(1, usize::from);
/// HttpServer::new(move || {
///     App::new()
///         .route("/retell/webhook", endpoint(RouteKind::Events, &receiver, handler.clone()))
///         .route("/retell/tools/book", endpoint(RouteKind::Function, &receiver, handler.clone()))
/// })
/// // The module's quick start explains these settings.
/// .client_request_timeout(Duration::from_secs(5))
/// .keep_alive(Duration::from_secs(65))
/// .workers(workers)
/// .max_connections((1024 / workers).max(1))
/// .bind(("127.0.0.1", 3000))?
/// .run()
/// .await?;
/// # Ok(())
/// # }
/// ```
#[must_use]
pub fn endpoint<H>(route: RouteKind, receiver: &Receiver, handler: H) -> actix_web::Route
where
    H: WebhookHandler + 'static,
{
    let endpoint = Arc::new(Endpoint {
        route,
        receiver: receiver.clone(),
        handler,
    });
    web::route().to(move |req: HttpRequest, payload: web::Payload| {
        let endpoint = Arc::clone(&endpoint);
        async move { endpoint.serve(&req, payload.into_inner()).await }
    })
}

struct Endpoint<H> {
    route: RouteKind,
    receiver: Receiver,
    handler: H,
}

impl<H: WebhookHandler + 'static> Endpoint<H> {
    async fn serve(&self, req: &HttpRequest, payload: dev::Payload) -> HttpResponse {
        let head = RequestHead::of(req);
        let mut body = PayloadChunks::new(payload);
        let done = self
            .receiver
            .receive(&self.handler, self.route, &head.raw_request(), &mut body)
            .await;
        into_response(done, body.unread())
    }
}

/// actix-web's payload as the chunks the receiver's flow reads.
struct PayloadChunks {
    payload: dev::Payload,
    finished: bool,
}

impl PayloadChunks {
    fn new(payload: dev::Payload) -> Self {
        Self {
            payload,
            finished: false,
        }
    }

    /// The payload, if it was not read to its end (the answer came first).
    fn unread(self) -> Option<dev::Payload> {
        (!self.finished).then_some(self.payload)
    }
}

impl BodyChunks for PayloadChunks {
    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, ()>>> {
        let next = Pin::new(&mut self.payload).poll_next(cx);
        if let Poll::Ready(None) = next {
            self.finished = true;
        }
        next.map(|chunk| chunk.map(|read| read.map_err(drop)))
    }
}

// ---------------------------------------------------------------------------
// Extractors
// ---------------------------------------------------------------------------

impl ResponseError for WebhookRejection {
    fn status_code(&self) -> StatusCode {
        status(self.status())
    }

    fn error_response(&self) -> HttpResponse {
        into_response(self.dispatched().clone(), None)
    }
}

type Extraction<T> = Pin<Box<dyn Future<Output = Result<T, WebhookRejection>>>>;

/// Runs the shared extractor flow on an actix-web request.
async fn extract_from<T: Extract>(
    req: HttpRequest,
    payload: dev::Payload,
) -> Result<T, WebhookRejection> {
    let receiver = find_receiver(&req);
    let head = RequestHead::of(&req);
    let mut body = PayloadChunks::new(payload);
    extract(receiver, &head.raw_request(), &mut body).await
}

macro_rules! from_request {
    ($($extractor:ty),+) => {$(
        impl FromRequest for $extractor {
            type Error = WebhookRejection;
            type Future = Extraction<Self>;

            fn from_request(req: &HttpRequest, payload: &mut dev::Payload) -> Self::Future {
                Box::pin(extract_from(req.clone(), payload.take()))
            }
        }
    )+};
}

from_request!(VerifiedBody, VerifiedEvent, VerifiedIncoming);

// ---------------------------------------------------------------------------
// Request and response plumbing
// ---------------------------------------------------------------------------

/// The header values the dispatcher looks at, borrowed from the request.
struct RequestHead<'a> {
    method: &'a str,
    query: &'a str,
    signature: Vec<&'a [u8]>,
    content_encoding: Vec<&'a [u8]>,
    content_length: Vec<&'a [u8]>,
    peer: Option<IpAddr>,
    forwarded_for: Vec<&'a [u8]>,
}

impl<'a> RequestHead<'a> {
    fn of(req: &'a HttpRequest) -> Self {
        let headers = req.headers();
        Self {
            method: req.method().as_str(),
            query: req.query_string(),
            signature: values(headers, SIGNATURE_HEADER),
            content_encoding: values(headers, CONTENT_ENCODING.as_str()),
            content_length: values(headers, CONTENT_LENGTH.as_str()),
            peer: req.peer_addr().map(|addr| addr.ip()),
            forwarded_for: values(headers, FORWARDED_FOR),
        }
    }

    fn raw_request(&self) -> RawRequest<'a> {
        RawRequest::new(self.method, &[])
            .with_query(self.query)
            .signature_values(self.signature.iter().copied())
            .content_encoding_values(self.content_encoding.iter().copied())
            .content_length_values(self.content_length.iter().copied())
            .with_peer(self.peer)
            .forwarded_for_values(self.forwarded_for.iter().copied())
    }
}

fn values<'a>(headers: &'a HeaderMap, name: &str) -> Vec<&'a [u8]> {
    headers
        .get_all(name)
        .map(|value| value.as_bytes())
        .collect()
}

/// Keeps an unread request body alive until the response has been written.
///
/// actix-web discards ("drains") the rest of a body whose payload was dropped,
/// however long it takes to arrive; while the payload is still referenced it
/// closes the connection after the response instead. A request answered
/// before its body was read (`401` on its head, `413`, `408`) must not keep
/// its connection busy.
struct UnreadBody {
    _payload: dev::Payload,
}

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

fn into_response(done: Dispatched, unread: Option<dev::Payload>) -> HttpResponse {
    let Dispatched { response, outcome } = done;
    let code = status(response.status());
    let mut builder = HttpResponse::build(code);
    for (name, value) in response.headers().filter(|(name, _)| *name != "connection") {
        builder.insert_header((name, value));
    }
    if unread.is_some() || response.closes_connection() {
        builder.force_close();
    }
    let mut res = builder.body(response.into_body());
    if let Some(payload) = unread {
        res.extensions_mut()
            .insert(UnreadBody { _payload: payload });
    }
    res.extensions_mut().insert(outcome);
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::receiver::json_parses;
    use actix_web::test::{TestRequest, call_service, init_service};

    struct Noop;
    impl WebhookHandler for Noop {
        type Error = String;
    }

    /// Unsigned hostile bodies: 10 000-deep nesting (20 KB) and a 500 000-key
    /// object (about 5 MB).
    fn hostile_bodies() -> [Vec<u8>; 2] {
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        let mut wide = String::from("{");
        for i in 0..500_000 {
            wide.push_str(&format!("\"{i}\":1,"));
        }
        wide.push_str("\"event\":\"call_ended\"}");
        [deep.into_bytes(), wide.into_bytes()]
    }

    /// Unsigned hostile bodies through the service: `401`, and the JSON parser
    /// never ran. The in-process test service runs on this thread (actix-web's
    /// HTTP server would run it on worker threads, out of reach of the parse
    /// counter).
    #[actix_web::test]
    async fn unsigned_hostile_bodies_are_401_without_parsing() {
        let verifier = crate::Verifier::new("key_unit").unwrap_or_else(|e| panic!("{e}"));
        let receiver = Receiver::new(verifier, crate::ReceiverConfig::new());
        let app =
            init_service(actix_web::App::new().service(service("/webhook", &receiver, Noop))).await;
        let before = json_parses();
        let bad =
            "v=1785423600000,d=0000000000000000000000000000000000000000000000000000000000000000";
        for body in hostile_bodies() {
            for signature in [None, Some(bad)] {
                let mut request = TestRequest::post()
                    .uri("/webhook")
                    .set_payload(body.clone());
                if let Some(value) = signature {
                    request = request.insert_header((SIGNATURE_HEADER, value));
                }
                let response = call_service(&app, request.to_request()).await;
                assert_eq!(response.status().as_u16(), 401);
            }
        }
        assert_eq!(
            json_parses(),
            before,
            "an unverified body reached the JSON parser"
        );
        // Control: a signed body does reach the parser on this thread.
        let now = crate::unix_ms(std::time::SystemTime::now()).unwrap_or_default();
        let request = TestRequest::post()
            .uri("/webhook")
            .insert_header((SIGNATURE_HEADER, crate::sign(b"{}", "key_unit", now)))
            .set_payload("{}");
        let response = call_service(&app, request.to_request()).await;
        assert_eq!(response.status().as_u16(), 400);
        assert!(json_parses() > before);
    }
}
