//! A counting semaphore without a runtime: the receiver's in-flight caps, and
//! its budgets of body bytes being read.
//!
//! The core must run on any executor (and on wasm), so it cannot use tokio's
//! semaphore. This one is small because it only needs what the caps need:
//! wait for some units in turn, hold them until dropped.
//!
//! Turns follow the requests' arrival, not the moment they ask: a request
//! that holds units and needs more (a body whose buffer grows) keeps the
//! turn it got when it first asked. So a 3 MB delivery, whose buffer grows
//! several times, is never overtaken by connections opened after it, as
//! many as an attacker opens; and waiters are served in order, so one that
//! needs a large increment is not passed forever by a stream of small ones.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

/// Units shared by every clone of a receiver: in-flight places, or body bytes.
#[derive(Debug)]
pub(crate) struct Permits {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    available: usize,
    /// Waiting tasks by turn, oldest first. Only the first is woken when
    /// units free up; it wakes the next once served or dropped.
    queue: VecDeque<Waiter>,
    next_turn: u64,
}

#[derive(Debug)]
struct Waiter {
    turn: u64,
    waker: Waker,
}

impl State {
    /// The waker of the first waiter, if any, so it can check whether it
    /// fits now.
    fn wake_first(&self) -> Option<Waker> {
        self.queue.front().map(|waiter| waiter.waker.clone())
    }
}

impl Permits {
    pub(crate) fn new(units: usize) -> Self {
        Self {
            state: Mutex::new(State {
                available: units,
                queue: VecDeque::new(),
                next_turn: 0,
            }),
        }
    }

    /// Units free right now.
    pub(crate) fn available(&self) -> usize {
        self.lock().available
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Every update leaves the state consistent, even one cut by a panic.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for one unit.
    pub(crate) fn acquire(self: &Arc<Self>) -> Acquire {
        self.acquire_many(1)
    }

    /// Waits until `units` are free at once, after every earlier request
    /// was served (never ask for more than were created: callers don't).
    pub(crate) fn acquire_many(self: &Arc<Self>, units: usize) -> Acquire {
        let turn = {
            let mut state = self.lock();
            let turn = state.next_turn;
            state.next_turn = turn.wrapping_add(1);
            turn
        };
        Acquire {
            permits: Arc::clone(self),
            units,
            turn,
            queued: false,
        }
    }

    fn release(&self, units: usize) {
        if units == 0 {
            return;
        }
        let first = {
            let mut state = self.lock();
            state.available += units;
            state.wake_first()
        };
        if let Some(waker) = first {
            waker.wake();
        }
    }
}

/// The future of [`Permits::acquire_many`] and [`Permit::more`]. Dropping it
/// gives up its place in the queue.
pub(crate) struct Acquire {
    permits: Arc<Permits>,
    units: usize,
    turn: u64,
    /// Whether it waits in the queue.
    queued: bool,
}

impl Future for Acquire {
    type Output = Permit;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Permit> {
        let this = &mut *self;
        let ready = |this: &Acquire| {
            Poll::Ready(Permit {
                permits: Arc::clone(&this.permits),
                units: this.units,
                turn: this.turn,
            })
        };
        if this.units == 0 && !this.queued {
            // Nothing to wait for: an empty permit that keeps its turn.
            return ready(this);
        }
        let mut state = this.permits.lock();
        let next = match state.queue.front() {
            None => true,
            Some(first) if this.queued => first.turn == this.turn,
            Some(first) => this.turn < first.turn,
        };
        if next && state.available >= this.units {
            state.available -= this.units;
            let wake = if std::mem::take(&mut this.queued) {
                state.queue.pop_front();
                // The next in line may fit in what is left.
                state.wake_first()
            } else {
                None
            };
            drop(state);
            if let Some(waker) = wake {
                waker.wake();
            }
            return ready(this);
        }
        if this.queued {
            if let Some(waiter) = state.queue.iter_mut().find(|w| w.turn == this.turn)
                && !waiter.waker.will_wake(cx.waker())
            {
                waiter.waker = cx.waker().clone();
            }
        } else {
            let at = state.queue.partition_point(|w| w.turn < this.turn);
            state.queue.insert(
                at,
                Waiter {
                    turn: this.turn,
                    waker: cx.waker().clone(),
                },
            );
            this.queued = true;
        }
        Poll::Pending
    }
}

impl Drop for Acquire {
    fn drop(&mut self) {
        if !self.queued {
            return;
        }
        let wake = {
            let mut state = self.permits.lock();
            let Some(at) = state.queue.iter().position(|w| w.turn == self.turn) else {
                return;
            };
            state.queue.remove(at);
            // The one behind a waiter that gave up may fit now.
            (at == 0).then(|| state.wake_first()).flatten()
        };
        if let Some(waker) = wake {
            waker.wake();
        }
    }
}

/// Units held until dropped.
#[derive(Debug)]
pub struct Permit {
    permits: Arc<Permits>,
    units: usize,
    turn: u64,
}

// Only the adapters' body budget holds several units.
#[cfg_attr(not(any(feature = "tower", feature = "actix")), allow(dead_code))]
impl Permit {
    /// How many units it holds.
    pub(crate) fn units(&self) -> usize {
        self.units
    }

    /// Its turn: the order in which it was first asked for.
    pub(crate) fn turn(&self) -> u64 {
        self.turn
    }

    /// Waits for `units` more, in the turn this permit got when it was first
    /// asked for; [`absorb`](Self::absorb) the result.
    pub(crate) fn more(&self, units: usize) -> Acquire {
        Acquire {
            permits: Arc::clone(&self.permits),
            units,
            turn: self.turn,
            queued: false,
        }
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

#[cfg(test)]
mod tests {
    use super::Permits;
    use std::future::Future;
    use std::pin::pin;
    use std::sync::Arc;
    use std::task::{Context, Poll, Waker};

    fn poll<F: Future>(future: std::pin::Pin<&mut F>) -> Poll<F::Output> {
        future.poll(&mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn a_large_waiter_is_not_overtaken_by_small_ones() {
        let permits = Arc::new(Permits::new(10));
        let Poll::Ready(held) = poll(pin!(permits.acquire_many(8))) else {
            panic!("8 of 10 are free")
        };
        let mut large = pin!(permits.acquire_many(6));
        assert!(poll(large.as_mut()).is_pending());
        // 2 units are free, but a small request that came later waits its turn.
        let mut small = pin!(permits.acquire_many(1));
        assert!(poll(small.as_mut()).is_pending());
        drop(held);
        let Poll::Ready(large) = poll(large.as_mut()) else {
            panic!("the first waiter fits once units are back")
        };
        assert_eq!(large.units(), 6);
        assert!(poll(small.as_mut()).is_ready());
    }

    #[test]
    fn a_waiter_that_gives_up_lets_the_next_one_in() {
        let permits = Arc::new(Permits::new(4));
        let Poll::Ready(held) = poll(pin!(permits.acquire_many(3))) else {
            panic!("3 of 4 are free")
        };
        {
            let mut large = pin!(permits.acquire_many(4));
            assert!(poll(large.as_mut()).is_pending());
        }
        // The large waiter was dropped: the small one is first now.
        let Poll::Ready(small) = poll(pin!(permits.acquire_many(1))) else {
            panic!("1 of 4 is free and nobody waits")
        };
        drop((held, small));
        assert_eq!(permits.available(), 4);
    }

    #[test]
    fn a_holder_that_grows_keeps_its_turn_before_later_requests() {
        let permits = Arc::new(Permits::new(4));
        // An early request starts with nothing; later ones take everything.
        let Poll::Ready(mut early) = poll(pin!(permits.acquire_many(0))) else {
            panic!("nothing to wait for")
        };
        let Poll::Ready(late) = poll(pin!(permits.acquire_many(4))) else {
            panic!("4 of 4 are free")
        };
        let mut later = pin!(permits.acquire_many(2));
        assert!(poll(later.as_mut()).is_pending());
        let mut more = pin!(early.more(2));
        assert!(poll(more.as_mut()).is_pending());
        drop(late);
        // The later request queued first, but the early one goes first.
        let Poll::Ready(more) = poll(more.as_mut()) else {
            panic!("2 are free for the early request")
        };
        early.absorb(more);
        assert_eq!(early.units(), 2);
        let Poll::Ready(later) = poll(later.as_mut()) else {
            panic!("2 are left for the later one")
        };
        drop((early, later));
        assert_eq!(permits.available(), 4);
    }

    #[test]
    fn units_return_when_permits_drop() {
        let permits = Arc::new(Permits::new(2));
        let Poll::Ready(mut a) = poll(pin!(permits.acquire())) else {
            panic!("free")
        };
        let Poll::Ready(b) = poll(pin!(permits.acquire())) else {
            panic!("free")
        };
        a.absorb(b);
        assert_eq!((a.units(), permits.available()), (2, 0));
        drop(a);
        assert_eq!(permits.available(), 2);
    }
}
