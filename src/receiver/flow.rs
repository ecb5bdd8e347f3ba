//! The whole request flow of a server adapter, written once: the tower service
//! and the actix-web service and extractors only translate their request and
//! response types around it.
//!
//! Adapters hand over the head (a [`RawRequest`] without its body) and the body
//! as a [`BodyChunks`] stream; the flow admits the head, reads the body
//! within the limit, and either dispatches it or, for extractors, returns the
//! verified bytes. It uses tokio's timer, which every adapter's server runs on.

use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::time::Instant;

use super::config::RouteKind;
use super::handler::WebhookHandler;
use super::head::Admitted;
use super::outcome::{Dispatched, Ids, Reason};
use super::request::RawRequest;
use super::state::Receiver;
use super::trace::traced;
use super::work::Work;

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
    /// The adapters' flow, timed from the request's arrival:
    ///
    /// 1. admission on the head (signature header included), answered at once;
    /// 2. the body, read within the limit and the route's body budget, with
    ///    at most [`body_read_timeout`](crate::ReceiverConfig::body_read_timeout)
    ///    between chunks and at least
    ///    [`body_min_rate`](crate::ReceiverConfig::body_min_rate) on average
    ///    (`408`);
    /// 3. the body's digest against the admitted signature (`401`);
    /// 4. only then an in-flight place of the route, the parse (on a
    ///    blocking thread for large bodies) and the handler.
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
            let arrival = Instant::now();
            let deadline = arrival + self.config().deadline_of(route);
            let admitted = match self.admit(route, head) {
                Ok(admitted) => admitted,
                Err(rejected) => return *rejected,
            };
            let (bytes, _budget) = match self.read_body(route, head, body, arrival, deadline).await
            {
                Ok(read) => read,
                Err(rejected) => return rejected,
            };
            let bytes = Bytes::from(bytes);
            if let Err(rejected) = self.authenticate_within(&admitted, &bytes, deadline).await {
                return *rejected;
            }
            let Ok(_permit) = tokio::time::timeout_at(deadline, self.in_flight_permit(route)).await
            else {
                return Dispatched::from_reason(route, Reason::DeadlineExceeded);
            };
            let Some(parsed) = self.parse_within(route, head, &bytes, deadline).await else {
                return Dispatched::from_reason(route, Reason::DeadlineExceeded);
            };
            let request = head.clone().with_body(&bytes);
            let deadline = tokio::time::sleep_until(deadline);
            self.handle(
                handler,
                &admitted,
                &request,
                parsed,
                deadline,
                &tokio::time::sleep,
            )
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
        let arrival = Instant::now();
        let deadline = arrival + self.config().deadline_of(route);
        let admitted = self.admit(route, head)?;
        let (bytes, _budget) = self
            .read_body(route, head, body, arrival, deadline)
            .await
            .map_err(Box::new)?;
        match check {
            BodyCheck::JsonObject => admitted.authenticate_json(self, &bytes),
            BodyCheck::SignatureOnly => admitted.authenticate(self, &bytes),
        }?;
        Ok(Bytes::from(bytes))
    }
}

/// Bodies from this size on are parsed on a blocking thread: parsing a few
/// MiB takes milliseconds that would otherwise stall every other request of
/// the async worker, and the deadline could not cut it.
const OFF_THREAD_PARSE: usize = 64 * 1024;

impl Receiver {
    /// Checks the body's digest, on a blocking thread from
    /// [`OFF_THREAD_PARSE`] bytes on (hashing a few MiB takes milliseconds
    /// of an async worker otherwise), within `deadline`.
    async fn authenticate_within(
        &self,
        admitted: &Admitted<'_>,
        body: &Bytes,
        deadline: Instant,
    ) -> Result<(), Box<Dispatched>> {
        if body.len() < OFF_THREAD_PARSE {
            return admitted.authenticate(self, body);
        }
        let limit = self.config().body_limit();
        if body.len() > limit {
            return admitted.authenticate(self, body);
        }
        let (verifier, signature) = admitted.digest_check();
        let owned = body.clone();
        let check = tokio::task::spawn_blocking(move || verifier.check_digest(&owned, &signature));
        match tokio::time::timeout_at(deadline, check).await {
            Ok(Ok(verified)) => admitted.conclude(self, verified),
            // The runtime is shutting down: check here rather than lose the body.
            Ok(Err(_join)) => admitted.authenticate(self, body),
            Err(_deadline) => Err(Box::new(Dispatched::from_reason(
                admitted.route,
                Reason::DeadlineExceeded,
            ))),
        }
    }

    /// Parses a verified body, on a blocking thread from [`OFF_THREAD_PARSE`]
    /// bytes on, and then only while the bodies parsed at once stay within
    /// [`Receiver::parse_bytes`] (a typed parse of a body built from tiny
    /// list items can peak at tens of times its size). `None` when
    /// `deadline` passes first: a parse under way then finishes in the
    /// background, holding its share, and its result is dropped.
    async fn parse_within(
        &self,
        route: RouteKind,
        head: &RawRequest<'_>,
        body: &Bytes,
        deadline: Instant,
    ) -> Option<Result<(Work, Ids), Box<Dispatched>>> {
        if body.len() < OFF_THREAD_PARSE {
            return Some(Work::parse_parts(route, head.method, head.query, body));
        }
        let share = tokio::time::timeout_at(deadline, self.parse_bytes(body.len()))
            .await
            .ok()?;
        let (method, query, owned) = (head.method.to_owned(), head.query.to_owned(), body.clone());
        let parse = tokio::task::spawn_blocking(move || {
            let parsed = Work::parse_parts(route, &method, &query, &owned);
            drop(share);
            parsed
        });
        match tokio::time::timeout_at(deadline, parse).await {
            Ok(Ok(parsed)) => Some(parsed),
            // The runtime is shutting down: parse here rather than lose the body.
            Ok(Err(_join)) => Some(Work::parse_parts(route, head.method, head.query, body)),
            Err(_deadline) => None,
        }
    }
}
