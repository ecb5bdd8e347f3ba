//! A counting semaphore without a runtime: the receiver's in-flight cap, and
//! its budget of body bytes being read.
//!
//! The core must run on any executor (and on wasm), so it cannot use tokio's
//! semaphore. This one is small because it only needs what the caps need:
//! wait for some units, hold them until dropped.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

/// Places for requests in flight, shared by every clone of a receiver.
#[derive(Debug)]
pub(crate) struct Permits {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    available: usize,
    /// Tasks waiting for a place. All are woken when one frees up: a waiter
    /// that was dropped meanwhile must not swallow the wake-up of a live one.
    waiting: Vec<Waker>,
}

impl Permits {
    pub(crate) fn new(places: usize) -> Self {
        Self {
            state: Mutex::new(State {
                available: places,
                waiting: Vec::new(),
            }),
        }
    }

    /// Places free right now.
    pub(crate) fn available(&self) -> usize {
        self.lock().available
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is two plain fields, consistent after any panic.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for a place.
    pub(crate) fn acquire(self: &Arc<Self>) -> Acquire {
        self.acquire_many(1)
    }

    /// Waits until `units` are free at once (never more than were created:
    /// callers ask for at most that).
    pub(crate) fn acquire_many(self: &Arc<Self>, units: usize) -> Acquire {
        Acquire {
            permits: Arc::clone(self),
            units,
        }
    }

    fn release(&self, units: usize) {
        if units == 0 {
            return;
        }
        let waiting = {
            let mut state = self.lock();
            state.available += units;
            std::mem::take(&mut state.waiting)
        };
        for waker in waiting {
            waker.wake();
        }
    }
}

/// The future of [`Permits::acquire`].
pub(crate) struct Acquire {
    permits: Arc<Permits>,
    units: usize,
}

impl Future for Acquire {
    type Output = Permit;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Permit> {
        let mut state = self.permits.lock();
        if state.available >= self.units {
            state.available -= self.units;
            drop(state);
            return Poll::Ready(Permit {
                permits: Arc::clone(&self.permits),
                units: self.units,
            });
        }
        if !state.waiting.iter().any(|w| w.will_wake(cx.waker())) {
            state.waiting.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

/// One place, held until dropped.
#[derive(Debug)]
pub struct Permit {
    permits: Arc<Permits>,
    units: usize,
}

// Only the adapters' body budget holds several units.
#[cfg_attr(not(any(feature = "tower", feature = "actix")), allow(dead_code))]
impl Permit {
    /// How many units it holds.
    pub(crate) fn units(&self) -> usize {
        self.units
    }

    /// Adds the units of `other` (from the same semaphore) to this permit.
    pub(crate) fn absorb(&mut self, mut other: Permit) {
        self.units += std::mem::take(&mut other.units);
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.permits.release(self.units);
    }
}
