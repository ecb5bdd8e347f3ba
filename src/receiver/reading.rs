//! Reading a body that nobody has verified yet: within the limit, the
//! route's body budget (in turn, with eviction of later bodies that sit on
//! it), the read timeout, the minimum rate and the time limit.

use std::future::poll_fn;
use std::task::Poll;
use std::time::Duration;

use tokio::time::Instant;

use super::config::RouteKind;
use super::flow::BodyChunks;
use super::holders::{EVICT_AFTER, Registration};
use super::outcome::{Dispatched, Reason};
use super::permits::Permit;
use super::request::RawRequest;
use super::state::Receiver;

/// The first buffer for a body (or its length, when shorter).
const BUDGET_STEP: usize = 64 * 1024;

impl Receiver {
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
    pub(super) async fn read_body<B>(
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
        // The whole body, less a wait for its first share of budget; the
        // deadline bounds it.
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
                let Some(more) = self
                    .more_budget(route, &budget, more, until, &holding)
                    .await
                else {
                    // Evicted, or the budget stayed full: the server is busy.
                    return Err(fail(Reason::DeadlineExceeded));
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

impl Receiver {
    /// Waits for `more` units of the body budget of `route`, in the turn of
    /// `budget`, until `until`; once it has waited [`EVICT_AFTER`], it
    /// evicts later bodies that sit on budget (see
    /// [`Holders::evict_after`](super::holders::Holders::evict_after)).
    /// `None` when `until` passes or this body is evicted itself.
    async fn more_budget(
        &self,
        route: RouteKind,
        budget: &Permit,
        more: usize,
        until: Instant,
        holding: &Option<Registration<'_>>,
    ) -> Option<Permit> {
        let waiting = Instant::now();
        let mut wait = std::pin::pin!(budget.more(more));
        loop {
            let tick = (Instant::now() + EVICT_TICK).min(until);
            match tokio::time::timeout_at(tick, unless_evicted(&mut wait, holding)).await {
                Ok(granted) => return granted,
                Err(_tick) if tick >= until => return None,
                Err(_tick) if waiting.elapsed() >= EVICT_AFTER => {
                    self.body_holders(route).evict_after(budget.turn(), more);
                }
                Err(_tick) => {}
            }
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
