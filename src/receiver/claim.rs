//! Deduplication around one handler run: the claim before it, its renewal
//! while it runs, the verdict after it, and the hand-back when the request is
//! dropped in between.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

use super::config::ReceiverConfig;
use super::guard::{CatchUnwind, Panicked, Raced, race};
use super::outcome::Reason;
use super::work::Work;
use crate::dedupe::{Begin, DedupeKey, DedupeStore, Ticket};

/// An event's key, held for one handler run. Dropped before
/// [`settle`](Self::settle) (the client went away and the request future
/// with it, or the deadline passed), it hands the key back at once through
/// [`DedupeStore::abandon`], instead of blocking retries until the lease ends.
pub(crate) struct Claim<'a> {
    held: Option<(&'a Arc<dyn DedupeStore>, DedupeKey, Ticket)>,
    now_ms: u64,
    lease: Duration,
}

impl<'a> Claim<'a> {
    /// With deduplication on, claims the event's key: `Ok` to run the
    /// handler (holding nothing when deduplication does not apply), `Err`
    /// with the answer for a copy or a store failure.
    pub(crate) async fn take(
        config: &'a ReceiverConfig,
        work: &Work,
        body: &[u8],
        now_ms: u64,
    ) -> Result<Self, Reason> {
        let lease = config.dedupe_lease();
        let unheld = Self {
            held: None,
            now_ms,
            lease,
        };
        let Some(store) = &config.dedupe else {
            return Ok(unheld);
        };
        let key = match work {
            Work::Incoming(incoming) => DedupeKey::for_incoming(incoming, body),
            Work::Unparsed(_) => Some(DedupeKey::of_body(body)),
            Work::Function(_) => None,
        };
        let Some(key) = key else {
            return Ok(unheld);
        };
        // The store is user code too: a panic in it is a store failure (`503`).
        let begun = CatchUnwind::new(async { store.begin(&key, lease, now_ms).await }).await;
        match begun {
            Ok(Ok(Begin::Fresh(ticket))) => Ok(Self {
                held: Some((store, key, ticket)),
                now_ms,
                lease,
            }),
            Ok(Ok(Begin::InFlight)) => Err(Reason::InFlight),
            Ok(Ok(Begin::Done)) => Err(Reason::Duplicate),
            Ok(Err(error)) => Err(Reason::DedupeFailed(error.0)),
            Err(Panicked) => Err(Reason::DedupeFailed("the store panicked".to_owned())),
        }
    }

    /// Extends the lease every third of itself, for as long as it is polled
    /// (beside the handler), so a copy never runs while the handler does.
    /// Ends when the store says the claim is no longer held (or cannot be
    /// extended); a failed renewal is tried again at the next one.
    pub(crate) async fn renew<T, TF, C>(&self, tick: &T, clock: C)
    where
        T: Fn(Duration) -> TF + ?Sized,
        TF: Future<Output = ()>,
        C: Fn() -> u64,
    {
        let Some((store, key, ticket)) = &self.held else {
            return;
        };
        let every = (self.lease / 3).max(Duration::from_millis(10));
        loop {
            tick(every).await;
            let now_ms = clock();
            let extended =
                CatchUnwind::new(async { store.extend(key, *ticket, self.lease, now_ms).await })
                    .await;
            if matches!(extended, Ok(Ok(false)) | Err(Panicked)) {
                return;
            }
            // A timer that is ready at once (an elapsed deadline, a test's
            // `ready(())`) must not spin here: let the deadline be polled.
            yield_now().await;
        }
    }

    /// Records the run's verdict before `deadline`: a `2xx` marks the key
    /// done, anything else frees it for Retell's retry. A store failure (or
    /// panic) here only weakens deduplication (a later copy runs again); the
    /// answer stands. At the deadline it stops waiting: a release goes on in
    /// the background ([`DedupeStore::abandon`]), a `finish` is left to the
    /// store (its command may still land; otherwise the lease ends the claim).
    pub(crate) async fn settle<D>(mut self, success: bool, deadline: D)
    where
        D: Future<Output = ()>,
    {
        // Taken first: a settle cut short must not abandon a finished key.
        let Some((store, key, ticket)) = self.held.take() else {
            return;
        };
        let now_ms = self.now_ms;
        let settled = race(
            CatchUnwind::new(async {
                if success {
                    store.finish(&key, ticket, now_ms).await
                } else {
                    store.release(&key, ticket).await
                }
            }),
            deadline,
        )
        .await;
        if !success && matches!(settled, Raced::Deadline) {
            abandon(store, &key, ticket);
        }
    }
}

/// Store code that may run in a destructor: a panic must not escape.
fn abandon(store: &Arc<dyn DedupeStore>, key: &DedupeKey, ticket: Ticket) {
    let _ = catch_unwind(AssertUnwindSafe(|| store.abandon(key, ticket)));
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        if let Some((store, key, ticket)) = self.held.take() {
            abandon(store, &key, ticket);
        }
    }
}

/// Pending once, waking itself: the caller's other futures get a poll.
async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            return std::task::Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    })
    .await;
}
