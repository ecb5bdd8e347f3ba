//! axum 0.8 adapter: a ready-made router and extractors for verified events.
//!
//! Every request goes through [`crate::receiver`], so statuses are the same as in
//! any other adapter. On top of the core this adapter:
//!
//! * refuses a `Content-Length` over the limit before reading, and stops reading
//!   as soon as a body crosses it (`413`; 8 MiB by default, never axum's 2 MiB);
//! * applies the route's deadline (the handler deadline, or the function
//!   deadline on a function route) with `tokio::time::sleep` (`503`);
//! * answers `500` when no verifier is configured (fail closed);
//! * puts the [`Outcome`](crate::receiver::Outcome) in the response extensions, so a logging middleware
//!   can print one line per request.
//!
//! # Quick start
//!
//! [`router`] gives the route; serve it with `retell_webhooks::serve` (feature
//! `server`) rather than `axum::serve`, which has no head timeout, no idle
//! timeout and no connection limit. With `tokio` (`rt-multi-thread`, `macros`,
//! `net`, `signal`), as in the README's quick start:
#![cfg_attr(
    feature = "server",
    doc = r#"
```no_run
use retell_webhooks::adapters::axum::router;
use retell_webhooks::server::ServeConfig;
use retell_webhooks::{CallEvent, Receiver, ReceiverConfig, Verifier, WebhookHandler};

struct Handler;

impl WebhookHandler for Handler {
    type Error = std::io::Error;

    async fn on_call_ended(&self, event: CallEvent) -> Result<(), Self::Error> {
        println!("call ended: {:?}", event.call.call_id);
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let verifier = Verifier::new(&std::env::var("RETELL_API_KEY")?)?;
    let receiver = Receiver::new(verifier, ReceiverConfig::new());
    let app: axum::Router = router("/retell/webhook", &receiver, Handler);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    // 5 s head timeout, 1 024 connections (64 per address, shedding unverified
    // ones when full); Ctrl-C stops once the requests in flight are answered.
    let ctrl_c = async { tokio::signal::ctrl_c().await.unwrap_or_default() };
    retell_webhooks::serve(listener, app, ServeConfig::new(), ctrl_c).await?;
    Ok(())
}
```
"#
)]
//!
//! # Logging
//!
//! Each response carries its [`Outcome`](crate::receiver::Outcome) in the extensions; one line per request
//! (status, event, call id, reason; no body or header value):
//!
//! ```no_run
//! # use retell_webhooks::adapters::axum::router;
//! # use retell_webhooks::{receiver::Outcome, Receiver, WebhookHandler};
//! # struct Handler;
//! # impl WebhookHandler for Handler { type Error = String; }
//! # fn app(receiver: Receiver) -> axum::Router {
//! use axum::response::Response;
//!
//! router("/retell/webhook", &receiver, Handler).layer(
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
//! The source allowlist needs the peer address; without it an allowlist
//! refuses every request (`403`). `retell_webhooks::serve` (feature `server`,
//! the quick start's server) puts it in every request. With a loop of your
//! own, keep the address `accept` returns and give it to the connection's
//! router as axum's `ConnectInfo` (what `into_make_service_with_connect_info`
//! does under `axum::serve`):
//!
//! ```no_run
//! # use retell_webhooks::adapters::axum::router;
//! # use retell_webhooks::{Receiver, WebhookHandler};
//! # struct Handler;
//! # impl WebhookHandler for Handler { type Error = String; }
//! # async fn serve(receiver: Receiver, listener: tokio::net::TcpListener) -> std::io::Result<()> {
//! use axum::{Extension, extract::ConnectInfo};
//! use hyper_util::{rt::TokioIo, service::TowerToHyperService};
//!
//! let app: axum::Router = router("/retell/webhook", &receiver, Handler);
//! # let http = hyper::server::conn::http1::Builder::new();
//! let (stream, peer) = listener.accept().await?;
//! let app = app.clone().layer(Extension(ConnectInfo(peer)));
//! let connection = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app));
//! # let _ = connection;
//! # Ok(())
//! # }
//! ```
//!
//! # Extractors
//!
//! To handle events in your own axum handler instead, use the
//! [`VerifiedEvent`] (or [`VerifiedIncoming`], [`VerifiedBody`]) extractor with
//! a [`Receiver`] reachable from the router state ([`FromRef`]). Extractors
//! hold body budget while they read and verify the body, and no in-flight
//! place; they do not catch panics, apply the deadline or deduplicate (a
//! dedupe store in the configuration is not consulted): that is the router's
//! job.
//!
//! ```no_run
//! use axum::{Router, routing::post};
//! use retell_webhooks::adapters::VerifiedEvent;
//! use retell_webhooks::{Receiver, ReceiverConfig};
//! use retell_webhooks::{Verifier, WebhookEvent};
//!
//! async fn hook(VerifiedEvent(event): VerifiedEvent) -> axum::http::StatusCode {
//!     if let WebhookEvent::CallEnded(ended) = &event {
//!         let _ = ended; // store it
//!     }
//!     axum::http::StatusCode::NO_CONTENT
//! }
//!
//! # fn app() -> Result<Router, retell_webhooks::KeyError> {
//! let receiver = Receiver::new(Verifier::new("key_from_the_dashboard")?, ReceiverConfig::new());
//! let app: Router = Router::new().route("/retell", post(hook)).with_state(receiver);
//! # Ok(app)
//! # }
//! ```

use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, FromRef, FromRequest, Request};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, any};

use super::extract::{Extract, extract};
use super::{VerifiedBody, VerifiedEvent, VerifiedIncoming, WebhookRejection};
use crate::receiver::RawRequest;
use crate::service::{HttpBodyChunks, WebhookService};
use crate::{Receiver, RouteKind, WebhookHandler};

/// A router with one `POST` route at `path` for the event webhook (and the
/// inbound call/SMS webhook), handled by `handler`.
///
/// Any other method on `path` is answered `405`. Merge it into your app with
/// [`Router::merge`].
pub fn router<H, S>(path: &str, receiver: &Receiver, handler: H) -> Router<S>
where
    H: WebhookHandler + 'static,
    S: Clone + Send + Sync + 'static,
{
    Router::new().route(path, endpoint(RouteKind::Events, receiver, handler))
}

/// Like [`router`], for a custom function URL: bodies are
/// [`FunctionCall`](crate::FunctionCall)s answered by
/// [`WebhookHandler::on_function_call`] with `200` and the handler's body.
///
/// The route's deadline is
/// [`ReceiverConfig::function_deadline`](crate::ReceiverConfig::function_deadline)
/// (120 s by default, Retell's default tool timeout), not the handler
/// deadline of the event route. Retell waits up to the tool's `timeout_ms`: for
/// a tool configured with another timeout, set the same with
/// [`ReceiverConfig::with_function_deadline`](crate::ReceiverConfig::with_function_deadline).
pub fn function_router<H, S>(path: &str, receiver: &Receiver, handler: H) -> Router<S>
where
    H: WebhookHandler + 'static,
    S: Clone + Send + Sync + 'static,
{
    Router::new().route(path, endpoint(RouteKind::Function, receiver, handler))
}

/// The route handler behind [`router`] and [`function_router`], to mount at a
/// path of your choice (`Router::new().route("/hook", endpoint(...))`), or
/// share one handler between several routes (pass an `Arc<App>`: it is a
/// handler too). It is the crate's [`WebhookService`] with axum's peer address.
pub fn endpoint<H, S>(route: RouteKind, receiver: &Receiver, handler: H) -> MethodRouter<S>
where
    H: WebhookHandler + 'static,
    S: Clone + Send + Sync + 'static,
{
    let service = WebhookService::new(receiver, route, handler);
    any(move |request: Request| {
        let service = service.clone();
        async move { service.handle(with_peer(request)).await.map(Body::new) }
    })
}

/// Copies axum's `ConnectInfo` peer address where the core looks for it.
fn with_peer(mut request: Request) -> Request {
    if let Some(ConnectInfo(peer)) = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .copied()
    {
        request.extensions_mut().insert(peer);
    }
    request
}

// ---------------------------------------------------------------------------
// Extractors: the shared types, with axum's traits
// ---------------------------------------------------------------------------

impl IntoResponse for WebhookRejection {
    fn into_response(self) -> Response {
        self.into_dispatched().into_http_response::<Body>()
    }
}

/// Runs the shared extractor flow on an axum request.
async fn extract_from<T: Extract, S>(request: Request, state: &S) -> Result<T, WebhookRejection>
where
    Receiver: FromRef<S>,
{
    let receiver = Receiver::from_ref(state);
    let (parts, body) = with_peer(request).into_parts();
    let head = RawRequest::from_http_parts(&parts);
    let mut body = HttpBodyChunks::new(body);
    extract(Some(&receiver), &head, &mut body).await
}

macro_rules! from_request {
    ($($extractor:ty),+) => {$(
        impl<S> FromRequest<S> for $extractor
        where
            Receiver: FromRef<S>,
            S: Send + Sync,
        {
            type Rejection = WebhookRejection;

            async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
                extract_from(request, state).await
            }
        }
    )+};
}

from_request!(VerifiedBody, VerifiedEvent, VerifiedIncoming);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::receiver::json_parses;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

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

    /// Unsigned hostile bodies through the router over HTTP: `401`, and the
    /// JSON parser never ran. The runtime is single-threaded, so server and
    /// client share this thread and its parse counter.
    #[tokio::test(flavor = "current_thread")]
    async fn unsigned_hostile_bodies_are_401_without_parsing() {
        let verifier = crate::Verifier::new("key_unit").unwrap_or_else(|e| panic!("{e}"));
        let receiver = Receiver::new(verifier, crate::ReceiverConfig::new());
        let app: Router = router("/webhook", &receiver, Noop);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let before = json_parses();
        let now = crate::unix_ms(std::time::SystemTime::now()).unwrap_or_default();
        // Fresh but forged: the body is read and its digest computed.
        let forged = format!(
            "X-Retell-Signature: {}\r\n",
            crate::sign(b"x", "key_other", now)
        );
        for body in hostile_bodies() {
            for signature in ["", forged.as_str()] {
                let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
                let head = format!(
                    "POST /webhook HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{signature}Content-Length: {}\r\n\r\n",
                    body.len()
                );
                stream.write_all(head.as_bytes()).await.unwrap();
                // Without a signature the answer comes before the body is
                // read and the server may close while it is being sent.
                let _ = stream.write_all(&body).await;
                let mut reply = Vec::new();
                let _ = stream.read_to_end(&mut reply).await;
                assert!(
                    reply.starts_with(b"HTTP/1.1 401")
                        || (signature.is_empty() && reply.is_empty()),
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
