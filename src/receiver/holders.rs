//! The bodies holding budget on a route, so that one that has waited its
//! turn can take budget back from bodies that arrived after it and are not
//! finishing.
//!
//! Budget is handed out in arrival order, but a body that is between two
//! growths is not waiting, so a later one can take what is free meanwhile
//! and then sit on it: a forged body trickles, or parks a full buffer in
//! the queue. Such a body is evicted (`503`) when an earlier body has
//! waited [`EVICT_AFTER`] and the later one has held its share for
//! [`HOLD_GRACE`]: a real delivery, sent at once, is long done by then.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// How long a body waits for budget before it evicts later bodies.
pub(crate) const EVICT_AFTER: Duration = Duration::from_millis(500);

/// How long a body holds budget before it can be evicted.
pub(crate) const HOLD_GRACE: Duration = Duration::from_secs(1);

/// The bodies of one route that hold budget, by turn (arrival order).
#[derive(Debug, Default)]
pub(crate) struct Holders {
    by_turn: Mutex<BTreeMap<u64, Arc<Holder>>>,
}

/// One body holding budget.
#[derive(Debug)]
pub(crate) struct Holder {
    since: Instant,
    units: AtomicUsize,
    evicted: AtomicBool,
    wake: Notify,
}

/// A body's place among the holders, removed when dropped.
pub(crate) struct Registration<'h> {
    holders: &'h Holders,
    turn: u64,
    holder: Arc<Holder>,
}

impl Holders {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<Holder>>> {
        // A plain map, consistent after any panic.
        self.by_turn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers the body of `turn`, holding `units`.
    pub(crate) fn register(&self, turn: u64, units: usize) -> Registration<'_> {
        let holder = Arc::new(Holder {
            since: Instant::now(),
            units: AtomicUsize::new(units),
            evicted: AtomicBool::new(false),
            wake: Notify::new(),
        });
        self.lock().insert(turn, Arc::clone(&holder));
        Registration {
            holders: self,
            turn,
            holder,
        }
    }

    /// Evicts bodies that arrived after `turn` and have held budget for
    /// [`HOLD_GRACE`], the latest first, until they hold `needed` units.
    pub(crate) fn evict_after(&self, turn: u64, needed: usize) {
        let by_turn = self.lock();
        let mut freed = 0;
        for holder in by_turn
            .range(turn.saturating_add(1)..)
            .rev()
            .map(|(_, h)| h)
        {
            if freed >= needed {
                break;
            }
            if holder.since.elapsed() < HOLD_GRACE || holder.evicted.swap(true, Ordering::Relaxed) {
                continue;
            }
            freed += holder.units.load(Ordering::Relaxed);
            holder.wake.notify_one();
        }
    }
}

impl Registration<'_> {
    /// Records what the body holds now.
    pub(crate) fn set_units(&self, units: usize) {
        self.holder.units.store(units, Ordering::Relaxed);
    }

    /// Completes when the body is evicted.
    pub(crate) async fn evicted(&self) {
        while !self.holder.evicted.load(Ordering::Relaxed) {
            self.holder.wake.notified().await;
        }
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.holders.lock().remove(&self.turn);
    }
}

#[cfg(test)]
mod tests {
    use super::{HOLD_GRACE, Holders};

    #[tokio::test(start_paused = true)]
    async fn only_later_bodies_that_held_long_enough_are_evicted() {
        let holders = Holders::default();
        let early = holders.register(1, 100);
        let late = holders.register(5, 100);
        tokio::time::advance(HOLD_GRACE / 2).await;
        let fresh = holders.register(7, 100);
        tokio::time::advance(HOLD_GRACE / 2).await;
        holders.evict_after(3, 1_000);
        // `late` came after turn 3 and held its share long enough; `fresh`
        // has not held it long enough, and `early` came first.
        tokio::time::timeout(std::time::Duration::from_millis(1), late.evicted())
            .await
            .expect("the later body is evicted");
        for spared in [&early, &fresh] {
            assert!(
                tokio::time::timeout(std::time::Duration::from_millis(1), spared.evicted())
                    .await
                    .is_err()
            );
        }
    }
}
