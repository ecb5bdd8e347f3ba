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
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use super::config::RouteKind;
use super::handler::WebhookHandler;
use super::head::Admitted;
use super::holders::{EVICT_AFTER, Registration};
use super::outcome::{Dispatched, Ids, Reason};
use super::permits::Permit;
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

/// The first buffer for a body (or its length, when shorter).
const BUDGET_STEP: usize = 64 * 1024;

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

    /// Reads the body chunk by chunk: stops at the first byte over the limit
    /// (`413`), answers `408` when no byte arrives for
    /// [`body_read_timeout`](crate::ReceiverConfig::body_read_timeout), when
    /// the body falls behind [`body_min_rate`](crate::ReceiverConfig::body_min_rate)
    /// or is not complete within
    /// [`body_time_limit`](crate::ReceiverConfig::body_time_limit), and holds
    /// body budget of the route for the buffer it allocates, in the turn of
    /// its arrival (`503` when none frees up in time).
    ///
    /// Time spent waiting for budget does not count against the rate, and
    /// counts against the time limit only while the body holds some budget:
    /// a body that waits its turn is not cut for it, and one that holds
    /// budget while it trickles, or while it waits for more, is cut within
    /// the limit.
    async fn read_body<B>(
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
        let config = self.config();
        let (limit, idle) = (config.body_limit(), config.body_read_timeout());
        let mut pace = Pace::new(arrival, config.body_min_rate(), config.body_rate_grace());
        // The whole body, waits for budget included; the deadline bounds it.
        let mut cutoff = arrival
            .checked_add(config.body_time_limit())
            .map_or(deadline, |at| at.min(deadline));
        let declared = head
            .content_length()
            .and_then(|len| usize::try_from(len).ok())
            .map_or(0, |len| len.min(limit));
        let fail = |reason| Dispatched::from_reason(route, reason);
        let mut buf = Vec::new();
        let mut budget = self.body_turn(route).await;
        let holders = self.body_holders(route);
        let mut holding: Option<Registration<'_>> = None;
        loop {
            let idle_at = (Instant::now() + idle).min(cutoff);
            let behind_at = pace.behind_at(buf.len()).min(idle_at);
            let next = poll_fn(|cx| body.poll_chunk(cx));
            let chunk = match tokio::time::timeout_at(behind_at, unless_evicted(next, &holding))
                .await
            {
                Ok(Some(next)) => next,
                Ok(None) => return Err(fail(Reason::DeadlineExceeded)),
                Err(_late) if behind_at >= deadline => return Err(fail(Reason::DeadlineExceeded)),
                Err(_late) if behind_at < idle_at || behind_at >= cutoff => {
                    return Err(fail(Reason::BodyTooSlow));
                }
                Err(_late) => return Err(fail(Reason::BodyReadTimeout)),
            };
            let chunk = match chunk {
                Some(Ok(chunk)) => chunk,
                Some(Err(())) => return Err(fail(Reason::BodyReadFailed)),
                None => return Ok((buf, budget)),
            };
            if chunk.len() > limit.saturating_sub(buf.len()) {
                return Err(fail(Reason::PayloadTooLarge { limit }));
            }
            let needed = buf.len() + chunk.len();
            if needed > buf.capacity() {
                let capacity = grown_capacity(buf.capacity(), needed, declared, limit);
                let more = capacity.saturating_sub(budget.units());
                // A body that holds no budget yet costs nothing while it waits
                // for its first share: only time holding budget counts.
                let waiting = Instant::now();
                let until = if holding.is_some() { cutoff } else { deadline };
                let mut wait = std::pin::pin!(budget.more(more));
                let more = loop {
                    let tick = (Instant::now() + EVICT_TICK).min(until);
                    match tokio::time::timeout_at(tick, unless_evicted(&mut wait, &holding)).await {
                        Ok(Some(more)) => break more,
                        // Evicted, or the budget stayed full: the server is
                        // busy (`503`).
                        Ok(None) => return Err(fail(Reason::DeadlineExceeded)),
                        Err(_tick) if tick >= until => return Err(fail(Reason::DeadlineExceeded)),
                        Err(_tick) if waiting.elapsed() >= EVICT_AFTER => {
                            holders.evict_after(budget.turn(), more);
                        }
                        Err(_tick) => {}
                    }
                };
                let waited = waiting.elapsed();
                pace.exclude(waited);
                budget.absorb(more);
                match &holding {
                    Some(registration) => registration.set_units(budget.units()),
                    None => {
                        cutoff = cutoff
                            .checked_add(waited)
                            .map_or(deadline, |at| at.min(deadline));
                        holding = Some(holders.register(budget.turn(), budget.units()));
                    }
                }
                buf.reserve_exact(capacity - buf.len());
            }
            buf.extend_from_slice(&chunk);
        }
    }
}

/// How often a body waiting for budget checks whether to evict later ones.
const EVICT_TICK: Duration = Duration::from_millis(250);

/// `future`'s output, or `None` once the body holding `holding` is evicted.
async fn unless_evicted<F: Future>(
    future: F,
    holding: &Option<Registration<'_>>,
) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    let mut evicted = std::pin::pin!(async {
        match holding {
            Some(registration) => registration.evicted().await,
            None => std::future::pending().await,
        }
    });
    poll_fn(|cx| {
        if let Poll::Ready(output) = future.as_mut().poll(cx) {
            return Poll::Ready(Some(output));
        }
        evicted.as_mut().poll(cx).map(|()| None)
    })
    .await
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

/// The slowest a body may arrive: from `grace` after arrival on, the bytes
/// received must keep up with `rate` per second since arrival.
struct Pace {
    start: Instant,
    rate: u64,
    grace: Duration,
}

impl Pace {
    fn new(arrival: Instant, rate: u64, grace: Duration) -> Self {
        Self {
            start: arrival,
            rate,
            grace,
        }
    }

    /// When a body of `received` bytes falls behind (far in the future when
    /// the check is off).
    fn behind_at(&self, received: usize) -> Instant {
        let far = self.start + Duration::from_secs(86_400 * 365);
        if self.rate == 0 {
            return far;
        }
        let nanos = (received as u128).saturating_mul(1_000_000_000) / u128::from(self.rate);
        let earned = Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX));
        self.start
            .checked_add(earned.max(self.grace))
            .map_or(far, |at| at.min(far))
    }

    /// Leaves out time the receiver itself made the body wait.
    fn exclude(&mut self, waited: Duration) {
        self.start += waited;
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
