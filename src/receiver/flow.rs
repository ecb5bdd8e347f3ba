//! The whole request flow of a server adapter, written once: the tower service
//! and the actix-web service and extractors only translate their request and
//! response types around it.
//!
//! Adapters hand over the head (a [`RawRequest`] without its body) and the body
//! as a [`BodyChunks`] stream; the flow admits the head, reads the body
//! within the limit, and either dispatches it or, for extractors, returns the
//! verified bytes. It uses tokio's timer, which every adapter's server runs on.

use std::future::poll_fn;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::time::Instant;

use super::config::RouteKind;
use super::handler::WebhookHandler;
use super::outcome::{Dispatched, Reason};
use super::permits::Permit;
use super::request::RawRequest;
use super::state::Receiver;
use super::trace::traced;

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

/// The first buffer for a body (or its length, when shorter).
const BUDGET_STEP: usize = 64 * 1024;

impl Receiver {
    /// The adapters' flow, timed from the request's arrival:
    ///
    /// 1. admission on the head (signature header included), answered at once;
    /// 2. the body, read within the limit and the body budget, with at most
    ///    [`body_read_timeout`](crate::ReceiverConfig::body_read_timeout)
    ///    between chunks (`408`);
    /// 3. the body's digest against the admitted signature (`401`);
    /// 4. only then an in-flight place, the parse and the handler.
    ///
    /// Steps 2 to 4 share one deadline (`503` when it passes), so the answer
    /// never comes later than the route's deadline after arrival.
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
        traced(route, async move {
            let deadline = Instant::now() + self.config().deadline_of(route);
            let admitted = match self.admit(route, head) {
                Ok(admitted) => admitted,
                Err(rejected) => return *rejected,
            };
            let (bytes, _budget) = match self.read_body(route, head, body, deadline).await {
                Ok(read) => read,
                Err(rejected) => return rejected,
            };
            if let Err(rejected) = admitted.authenticate(self, &bytes) {
                return *rejected;
            }
            let Ok(_permit) = tokio::time::timeout_at(deadline, self.in_flight_permit()).await
            else {
                return Dispatched::from_reason(route, Reason::DeadlineExceeded);
            };
            let request = head.clone().with_body(&bytes);
            let deadline = tokio::time::sleep_until(deadline);
            self.handle(handler, &admitted, &request, deadline, &tokio::time::sleep)
                .await
        })
        .await
    }

    /// What an extractor does: admission, the body read within the budget and
    /// the read timeout, and the verified bytes. No in-flight place, no
    /// deduplication, no handler deadline: those belong to the handler the
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
        let deadline = Instant::now() + self.config().deadline_of(route);
        let admitted = self.admit(route, head)?;
        let (bytes, _budget) = self
            .read_body(route, head, body, deadline)
            .await
            .map_err(Box::new)?;
        match check {
            BodyCheck::JsonObject => admitted.authenticate_json(self, &bytes),
            BodyCheck::SignatureOnly => admitted.authenticate(self, &bytes),
        }?;
        Ok(Bytes::from(bytes))
    }

    /// Reads the body chunk by chunk until `deadline`: stops at the first
    /// byte over the limit (`413`), answers `408` when no byte arrives for
    /// [`body_read_timeout`](crate::ReceiverConfig::body_read_timeout), and
    /// holds body budget for the buffer it allocates.
    ///
    /// The timeout is between chunks, not for the whole body: a delivery
    /// whose task was kept waiting by a busy server finds its next chunk ready
    /// and goes on. A client that keeps trickling is cut off by the deadline.
    async fn read_body<B>(
        &self,
        route: RouteKind,
        head: &RawRequest<'_>,
        body: &mut B,
        deadline: Instant,
    ) -> Result<(Vec<u8>, Permit), Dispatched>
    where
        B: BodyChunks + ?Sized,
    {
        let config = self.config();
        let (limit, idle) = (config.body_limit(), config.body_read_timeout());
        let declared = head
            .content_length()
            .and_then(|len| usize::try_from(len).ok())
            .map_or(0, |len| len.min(limit));
        let fail = |reason| Dispatched::from_reason(route, reason);
        let mut buf = Vec::new();
        let mut budget = self.body_bytes(0).await;
        loop {
            let wait_until = (Instant::now() + idle).min(deadline);
            let next = poll_fn(|cx| body.poll_chunk(cx));
            let chunk = match tokio::time::timeout_at(wait_until, next).await {
                Ok(Some(Ok(chunk))) => chunk,
                Ok(Some(Err(()))) => return Err(fail(Reason::BodyReadFailed)),
                Ok(None) => return Ok((buf, budget)),
                Err(_idle) if wait_until < deadline => return Err(fail(Reason::BodyReadTimeout)),
                Err(_idle) => return Err(fail(Reason::DeadlineExceeded)),
            };
            if chunk.len() > limit.saturating_sub(buf.len()) {
                return Err(fail(Reason::PayloadTooLarge { limit }));
            }
            let needed = buf.len() + chunk.len();
            if needed > buf.capacity() {
                let capacity = grown_capacity(buf.capacity(), needed, declared, limit);
                let more = capacity.saturating_sub(budget.units());
                let Ok(more) = tokio::time::timeout_at(deadline, self.body_bytes(more)).await
                else {
                    return Err(fail(Reason::DeadlineExceeded));
                };
                budget.absorb(more);
                buf.reserve_exact(capacity - buf.len());
            }
            buf.extend_from_slice(&chunk);
        }
    }
}

/// The next buffer size for a body that needs `needed` bytes: doubling from
/// [`BUDGET_STEP`], never past the declared length while it is still ahead,
/// never past the limit. Only bytes that arrived make the buffer grow, so a
/// false `Content-Length` cannot make the server reserve the whole limit.
fn grown_capacity(capacity: usize, needed: usize, declared: usize, limit: usize) -> usize {
    let doubled = needed.max(capacity.saturating_mul(2)).max(BUDGET_STEP);
    let capped = if declared >= needed {
        doubled.min(declared)
    } else {
        doubled
    };
    capped.min(limit).max(needed)
}

#[cfg(test)]
mod tests {
    use super::{BUDGET_STEP, grown_capacity};

    const LIMIT: usize = 8 * 1024 * 1024;

    #[test]
    fn a_declared_length_alone_reserves_nothing_large() {
        // One byte of a body that claims the whole limit.
        assert_eq!(grown_capacity(0, 1, LIMIT, LIMIT), BUDGET_STEP);
    }

    #[test]
    fn a_body_that_arrives_gets_its_declared_length_exactly() {
        assert_eq!(grown_capacity(0, 16_384, 30_000, LIMIT), 30_000);
        let mut capacity = 0;
        let mut steps = 0;
        for needed in (16_384..=3_000_000).step_by(16_384) {
            if needed > capacity {
                capacity = grown_capacity(capacity, needed, 3_000_000, LIMIT);
                steps += 1;
            }
        }
        assert_eq!(capacity, 3_000_000);
        assert!(steps <= 7, "{steps} reallocations");
    }

    #[test]
    fn growth_past_a_false_length_doubles_up_to_the_limit() {
        assert_eq!(grown_capacity(100, 101, 100, LIMIT), BUDGET_STEP);
        assert_eq!(grown_capacity(LIMIT / 2, LIMIT / 2 + 1, 0, LIMIT), LIMIT);
        assert_eq!(grown_capacity(LIMIT, LIMIT, 0, LIMIT), LIMIT);
    }
}
