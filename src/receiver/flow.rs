//! The whole request flow of a server adapter, written once: the tower service
//! and the actix-web service and extractors only translate their request and
//! response types around it.
//!
//! Adapters hand over the head (a [`RawRequest`] without its body) and the body
//! as a [`BodyChunks`] stream; the flow runs the prechecks, reads the body
//! within the limit, and either dispatches it or, for extractors, returns the
//! verified bytes. It uses tokio's timer, which every adapter's server runs on.

use std::future::poll_fn;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::time::Instant;

use super::permits::Permit;
use super::pipeline::handle_verified;
use super::trace::traced;
use super::{Dispatched, RawRequest, Reason, Receiver, RouteKind, WebhookHandler};

/// Most bytes allocated up front from a `Content-Length`; the rest grows as data
/// arrives, so a false length cannot make the server allocate the whole limit.
const MAX_PREALLOCATION: usize = 1024 * 1024;

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

/// Body budget reserved at a time while a body without (or beyond) a
/// `Content-Length` grows.
const BUDGET_STEP: usize = 64 * 1024;

impl Receiver {
    /// The adapters' flow, timed from the request's arrival:
    ///
    /// 1. [`precheck`](Receiver::precheck) on the head (signature header
    ///    included), answered at once;
    /// 2. the body, read within the limit, the body budget and
    ///    [`body_read_timeout`](super::ReceiverConfig::body_read_timeout)
    ///    (`408`);
    /// 3. the signature over the body (`401`);
    /// 4. only then an in-flight place, the parse and the handler.
    ///
    /// Steps 2 to 4 share one deadline (`503` when it passes), so the answer
    /// never comes later than the configured deadline after arrival.
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
        traced(route, self.receive_untraced(handler, route, head, body)).await
    }

    async fn receive_untraced<H, B>(
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
        let arrival = Instant::now();
        let deadline = arrival + self.config().deadline_of(route);
        if let Some(rejected) = self.precheck(route, head) {
            return rejected;
        }
        let (bytes, _budget) = match self
            .read_in_time(route, head, body, arrival, deadline)
            .await
        {
            Ok(read) => read,
            Err(rejected) => return rejected,
        };
        let request = head.clone().with_body(&bytes);
        if let Err(rejected) = self.authenticate_signature(route, &request) {
            return *rejected;
        }
        let Ok(_permit) = tokio::time::timeout_at(deadline, self.in_flight_permit()).await else {
            return Dispatched::from_reason(route, Reason::DeadlineExceeded);
        };
        let deadline = tokio::time::sleep_until(deadline);
        handle_verified(self, handler, route, &request, deadline).await
    }

    /// What an extractor does: prechecks, the body read within the budget and
    /// the read timeout, and the verified bytes. No deadline, no in-flight
    /// place, no deduplication, no handler: those belong to the handler the
    /// user writes.
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
        let arrival = Instant::now();
        let deadline = arrival + self.config().deadline_of(route);
        if let Some(rejected) = self.precheck(route, head) {
            return Err(Box::new(rejected));
        }
        let (bytes, _budget) = self
            .read_in_time(route, head, body, arrival, deadline)
            .await
            .map_err(Box::new)?;
        let request = head.clone().with_body(&bytes);
        match check {
            BodyCheck::JsonObject => self.authenticate(route, &request),
            BodyCheck::SignatureOnly => self.authenticate_signature(route, &request),
        }?;
        Ok(Bytes::from(bytes))
    }

    /// [`read_body`](Self::read_body) until the read timeout or the deadline,
    /// whichever comes first.
    async fn read_in_time<B>(
        &self,
        route: RouteKind,
        head: &RawRequest<'_>,
        body: &mut B,
        arrival: Instant,
        deadline: Instant,
    ) -> Result<(Vec<u8>, Permit), Dispatched>
    where
        B: BodyChunks + ?Sized,
    {
        let read_by = (arrival + self.config().body_read_timeout()).min(deadline);
        match tokio::time::timeout_at(read_by, self.read_body(route, head, body)).await {
            Ok(read) => read,
            Err(_elapsed) if read_by < deadline => {
                Err(Dispatched::from_reason(route, Reason::BodyReadTimeout))
            }
            Err(_elapsed) => Err(Dispatched::from_reason(route, Reason::DeadlineExceeded)),
        }
    }

    /// Reads the body chunk by chunk, stops at the first byte over the limit,
    /// and holds body budget for every byte buffered.
    async fn read_body<B>(
        &self,
        route: RouteKind,
        head: &RawRequest<'_>,
        body: &mut B,
    ) -> Result<(Vec<u8>, Permit), Dispatched>
    where
        B: BodyChunks + ?Sized,
    {
        let limit = self.config().body_limit();
        let declared = head
            .content_length()
            .and_then(|len| usize::try_from(len).ok())
            .map_or(0, |len| len.min(limit));
        let mut budget = self.body_bytes(declared).await;
        let reserve = declared.min(MAX_PREALLOCATION);
        let mut buf = Vec::with_capacity(reserve);
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
            let needed = buf.len() + chunk.len();
            if needed > budget.units() {
                let more = (needed - budget.units()).max(BUDGET_STEP);
                let more = more.min(limit - budget.units());
                budget.absorb(self.body_bytes(more).await);
            }
            buf.extend_from_slice(&chunk);
        }
        Ok((buf, budget))
    }
}
