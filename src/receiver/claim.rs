//! Deduplication around one handler run: the claim before it, the verdict
//! after it, and the hand-back when the request is dropped in between.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

use super::config::ReceiverConfig;
use super::guard::{CatchUnwind, Panicked};
use super::outcome::Reason;
use super::work::Work;
use crate::dedupe::{Begin, DedupeKey, DedupeStore, Ticket};

/// An event's key, held for one handler run. Dropped before
/// [`settle`](Self::settle) (the client went away and the request future
/// with it), it hands the key back at once through
/// [`DedupeStore::abandon`], instead of blocking retries until the lease ends.
pub(crate) struct Claim<'a> {
    held: Option<(&'a Arc<dyn DedupeStore>, DedupeKey, Ticket)>,
    now_ms: u64,
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
        let unheld = Self { held: None, now_ms };
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
        let lease = config
            .handler_deadline
            .saturating_add(Duration::from_secs(1));
        // The store is user code too: a panic in it is a store failure (`503`).
        let begun = CatchUnwind::new(async { store.begin(&key, lease, now_ms).await }).await;
        match begun {
            Ok(Ok(Begin::Fresh(ticket))) => Ok(Self {
                held: Some((store, key, ticket)),
                now_ms,
            }),
            Ok(Ok(Begin::InFlight)) => Err(Reason::InFlight),
            Ok(Ok(Begin::Done)) => Err(Reason::Duplicate),
            Ok(Err(error)) => Err(Reason::DedupeFailed(error.0)),
            Err(Panicked) => Err(Reason::DedupeFailed("the store panicked".to_owned())),
        }
    }

    /// Records the run's verdict: a `2xx` marks the key done, anything else
    /// frees it for Retell's retry. A store failure (or panic) here only
    /// weakens deduplication (a later copy runs again); the answer stands.
    pub(crate) async fn settle(mut self, success: bool) {
        if let Some((store, key, ticket)) = &self.held {
            let (ticket, now_ms) = (*ticket, self.now_ms);
            let _ = CatchUnwind::new(async {
                if success {
                    store.finish(key, ticket, now_ms).await
                } else {
                    store.release(key, ticket).await
                }
            })
            .await;
        }
        // Settled: nothing left to abandon.
        self.held = None;
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        if let Some((store, key, ticket)) = self.held.take() {
            // Store code running in a destructor: a panic must not escape.
            let _ = catch_unwind(AssertUnwindSafe(|| store.abandon(&key, ticket)));
        }
    }
}
