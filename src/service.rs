//! A `tower::Service` over `http::Request` (feature `tower`): the receiver for
//! every stack that speaks tower — plain hyper 1.x, axum, `lambda_http`, poem,
//! salvo.
//!
//! [`WebhookService`] answers exactly like the framework adapters: it runs the
//! receiver's prechecks on the head, reads the body against the shared body
//! budget and enforces the body limit *while reading* (a false or missing
//! `Content-Length` cannot make it buffer more), takes an in-flight place only
//! once the signature is verified, applies the route's deadline (the handler
//! deadline, or [`ReceiverConfig::function_deadline`](crate::ReceiverConfig::function_deadline)
//! for [`RouteKind::Function`]) with
//! `tokio::time::sleep`, and puts the [`Outcome`](crate::receiver::Outcome) in
//! the response extensions.
//!
//! ```no_run
//! use retell_webhooks::{Receiver, ReceiverConfig, RouteKind, WebhookHandler};
//! use retell_webhooks::service::WebhookService;
//! use retell_webhooks::Verifier;
//!
//! struct App;
//! impl WebhookHandler for App {
//!     type Error = std::convert::Infallible;
//! }
//!
//! # fn main() -> Result<(), retell_webhooks::KeyError> {
//! let receiver = Receiver::new(Verifier::new("key_from_the_dashboard")?, ReceiverConfig::new());
//! let service = WebhookService::new(&receiver, RouteKind::Events, App);
//! // Serve `service` with `retell_webhooks::serve` (feature `server`: a head
//! // timeout, a connection cap with shedding), or mount it in any
//! // tower-compatible framework.
//! # let _ = service;
//! # Ok(())
//! # }
//! ```
//!
//! It answers at any path unless given one with
//! [`WebhookService::with_path`] (then `404` elsewhere).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf as _, Bytes};
use http_body::Body;
use http_body_util::Full;

use crate::receiver::{BodyChunks, Dispatched, RawRequest, Reason};
use crate::{Receiver, RouteKind, WebhookHandler};

/// The receiver as a `tower::Service<http::Request<B>>` for one route.
///
/// Cheap to clone (two `Arc`s). Its error type is [`Infallible`]: every
/// outcome, failures included, is an HTTP response.
pub struct WebhookService<H> {
    receiver: Receiver,
    route: RouteKind,
    path: Option<Arc<str>>,
    handler: Arc<H>,
}

impl<H> Clone for WebhookService<H> {
    fn clone(&self) -> Self {
        Self {
            receiver: self.receiver.clone(),
            route: self.route,
            path: self.path.clone(),
            handler: Arc::clone(&self.handler),
        }
    }
}

impl<H> std::fmt::Debug for WebhookService<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookService")
            .field("route", &self.route)
            .field("receiver", &self.receiver)
            .finish_non_exhaustive()
    }
}

impl<H: WebhookHandler + 'static> WebhookService<H> {
    /// A service for `route`, handled by `handler` (an `Arc<App>` is a handler
    /// too, to share one with the rest of a service).
    pub fn new(receiver: &Receiver, route: RouteKind, handler: H) -> Self {
        Self {
            receiver: receiver.clone(),
            route,
            path: None,
            handler: Arc::new(handler),
        }
    }

    /// Serves only requests to `path` (exactly; the query string is ignored)
    /// and answers `404` elsewhere, for a server with nothing else to route.
    #[must_use]
    pub fn with_path(mut self, path: &str) -> Self {
        self.path = Some(Arc::from(path));
        self
    }

    /// Handles one request: the whole flow, as a plain async function.
    pub async fn handle<B>(&self, request: http::Request<B>) -> http::Response<Full<Bytes>>
    where
        B: Body,
    {
        let dispatched = self.dispatch(request).await;
        let verified = signature_verified(&dispatched.outcome.reason);
        let mut response = dispatched.into_http_response::<Full<Bytes>>();
        if verified {
            response.extensions_mut().insert(SignatureVerified);
        }
        response
    }

    async fn dispatch<B: Body>(&self, request: http::Request<B>) -> Dispatched {
        let (parts, body) = request.into_parts();
        if let Some(path) = &self.path
            && parts.uri.path() != &**path
        {
            return Dispatched::from_reason(self.route, Reason::NotFound);
        }
        let head = RawRequest::from_http_parts(&parts);
        let mut body = HttpBodyChunks::new(body);
        self.receiver
            .receive(self.handler.as_ref(), self.route, &head, &mut body)
            .await
    }
}

/// In the extensions of a response whose request carried a valid signature,
/// for the server to tell a sender that holds the key from one that never
/// proved it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SignatureVerified;

/// Whether the request that got `reason` passed the signature check. Every
/// reason is listed, so a new one must be sorted here.
pub(crate) fn signature_verified(reason: &Reason) -> bool {
    match reason {
        Reason::Handled
        | Reason::Answered
        | Reason::UnknownEvent
        | Reason::FallbackAccepted
        | Reason::Duplicate
        | Reason::InFlight
        | Reason::DedupeFailed(_)
        | Reason::Stored
        | Reason::StoredUnreadable(_)
        | Reason::InboxFailed(_)
        | Reason::BadRequest(_)
        | Reason::HandlerFailed(_)
        | Reason::HandlerPanicked
        | Reason::AnswerNotSerializable => true,
        // `DeadlineExceeded` also ends a wait for the body budget, before
        // the signature is checked: not proof of the key.
        Reason::Forbidden(_)
        | Reason::MethodNotAllowed
        | Reason::NotFound
        | Reason::UnsupportedEncoding
        | Reason::BodyReadFailed
        | Reason::BodyReadTimeout
        | Reason::BodyTooSlow
        | Reason::PayloadTooLarge { .. }
        | Reason::Unauthorized(_)
        | Reason::DeadlineExceeded
        | Reason::NotConfigured => false,
    }
}

/// An `http_body::Body` as the chunks the receiver's flow reads (boxed: the
/// body may not be `Unpin`).
pub(crate) struct HttpBodyChunks<B>(Pin<Box<B>>);

impl<B: Body> HttpBodyChunks<B> {
    pub(crate) fn new(body: B) -> Self {
        Self(Box::pin(body))
    }
}

impl<B: Body> BodyChunks for HttpBodyChunks<B> {
    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, ()>>> {
        loop {
            let frame = match self.0.as_mut().poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Ready(Some(Err(_))) => return Poll::Ready(Some(Err(()))),
                Poll::Ready(Some(Ok(frame))) => frame,
            };
            // Trailers carry nothing the receiver reads.
            if let Ok(mut data) = frame.into_data() {
                let len = data.remaining();
                return Poll::Ready(Some(Ok(data.copy_to_bytes(len))));
            }
        }
    }
}

impl<H, B> tower_service::Service<http::Request<B>> for WebhookService<H>
where
    H: WebhookHandler + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
{
    type Response = http::Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // Back-pressure is the in-flight cap, applied per request after the
        // cheap checks, so requests answered at once never wait.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let service = self.clone();
        Box::pin(async move { Ok(service.handle(request).await) })
    }
}
