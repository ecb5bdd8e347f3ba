//! The whole request flow of a server adapter, written once: the tower service
//! and the actix-web service and extractors only translate their request and
//! response types around it.
//!
//! Adapters hand over the head (a [`RawRequest`] without its body) and the body
//! as a [`BodyChunks`] stream; the flow runs the prechecks, reads the body
//! within the limit, and either dispatches it or, for extractors, returns the
//! verified bytes.

use std::future::poll_fn;
use std::task::{Context, Poll};

use bytes::Bytes;

use super::{Dispatched, RawRequest, Reason, Receiver, RouteKind, WebhookHandler};

/// Most bytes reserved up front from a `Content-Length`; the rest grows as data
/// arrives, so a false length cannot make the server allocate the whole limit.
const MAX_PREALLOCATION: u64 = 1024 * 1024;

/// A request body as a server hands it over: chunks of bytes, then the end.
pub(crate) trait BodyChunks {
    /// The next chunk, `None` at the end, `Err` when the body cannot be read
    /// (client gone, malformed framing).
    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, ()>>>;
}

/// How much of a verified body an extractor checks before handing it over.
#[cfg(any(feature = "axum", feature = "actix"))]
#[derive(Debug, Clone, Copy)]
pub(crate) enum BodyCheck {
    /// Raw-body extractors: the body must also be a JSON object.
    JsonObject,
    /// Typed extractors: their own parse rejects non-JSON bodies, so the body
    /// is parsed once.
    SignatureOnly,
}

impl Receiver {
    /// Prechecks, an in-flight place, the body read within the limit, then
    /// [`Receiver::dispatch`] with tokio's timer.
    pub(crate) async fn receive<H, B>(
        &self,
        handler: &H,
        route: RouteKind,
        head: &RawRequest<'_>,
        body: &mut B,
    ) -> Dispatched
    where
        H: WebhookHandler + ?Sized,
        B: BodyChunks + ?Sized,
    {
        // Cheap checks first: answered without waiting for a place.
        if let Some(rejected) = self.precheck(route, head) {
            return rejected;
        }
        // Held until the answer is built: bounds the bodies buffered at once.
        let _permit = self.in_flight_permit().await;
        let bytes = match self.read_body(route, head, body).await {
            Ok(bytes) => bytes,
            Err(rejected) => return rejected,
        };
        let request = head.clone().with_body(&bytes);
        self.dispatch(handler, route, &request, tokio::time::sleep)
            .await
    }

    /// What an extractor does: prechecks, an in-flight place while the body is
    /// read and verified, and the verified bytes. No deadline, no
    /// deduplication, no handler.
    #[cfg(any(feature = "axum", feature = "actix"))]
    pub(crate) async fn receive_verified<B>(
        &self,
        route: RouteKind,
        head: &RawRequest<'_>,
        body: &mut B,
        check: BodyCheck,
    ) -> Result<Bytes, Box<Dispatched>>
    where
        B: BodyChunks + ?Sized,
    {
        if let Some(rejected) = self.precheck(route, head) {
            return Err(Box::new(rejected));
        }
        let _permit = self.in_flight_permit().await;
        let bytes = self.read_body(route, head, body).await.map_err(Box::new)?;
        let request = head.clone().with_body(&bytes);
        match check {
            BodyCheck::JsonObject => self.authenticate(route, &request),
            BodyCheck::SignatureOnly => self.authenticate_signature(route, &request),
        }?;
        Ok(Bytes::from(bytes))
    }

    /// Reads the body chunk by chunk and stops at the first byte over the limit.
    async fn read_body<B>(
        &self,
        route: RouteKind,
        head: &RawRequest<'_>,
        body: &mut B,
    ) -> Result<Vec<u8>, Dispatched>
    where
        B: BodyChunks + ?Sized,
    {
        let limit = self.config().body_limit();
        let reserve = head
            .content_length()
            .map_or(0, |len| len.min(MAX_PREALLOCATION));
        let mut buf = Vec::with_capacity(usize::try_from(reserve).unwrap_or(0));
        while let Some(chunk) = poll_fn(|cx| body.poll_chunk(cx)).await {
            let Ok(chunk) = chunk else {
                return Err(Dispatched::from_reason(route, Reason::BodyReadFailed));
            };
            if chunk.len() > limit.saturating_sub(buf.len()) {
                return Err(Dispatched::from_reason(
                    route,
                    Reason::PayloadTooLarge { limit },
                ));
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf)
    }
}
