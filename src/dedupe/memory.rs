//! The in-memory store, [`MemoryDedupe`].

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use super::{Begin, DedupeError, DedupeKey, DedupeStore, StoreFuture, Ticket};

/// Default number of keys [`MemoryDedupe`] keeps: 100 000.
pub const DEFAULT_CAPACITY: usize = 100_000;

/// Default time [`MemoryDedupe`] remembers a processed event: one hour (Retell's
/// retries come within minutes).
pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);

/// The default store: in memory, one process, bounded.
///
/// * a processed key is remembered for `ttl` (default [`DEFAULT_TTL`]), an
///   in-flight one for its lease; an expired key counts as absent;
/// * [`finish_at`](Self::finish_at) (behind `finish`) acts only while its
///   ticket holds the key's unexpired lease, and
///   [`release_held`](Self::release_held) (behind `release` and `abandon`)
///   only while its ticket still holds the key, so a late or repeated call
///   changes nothing;
/// * at most `capacity` keys (default [`DEFAULT_CAPACITY`]). A new key in a
///   full store evicts the key processed longest ago. A key in flight is never
///   evicted, and a processed key is forgotten before its TTL only to make
///   room in a full store. When every key held is in flight, `begin` fails
///   with a [`DedupeError`] rather than evict one: the receiver answers `503`
///   and Retell retries later, whereas an evicted lease would let a copy run
///   twice. That takes `capacity` leases at once: the deliveries running
///   (at most [`max_in_flight`](crate::ReceiverConfig::max_in_flight)
///   per receiver) plus those dropped mid-handler whose lease has not ended;
/// * every operation is O(1) amortised, under one short mutex: a hash map, a
///   queue of leases in expiry order and a queue of processed keys in the
///   order they were processed. The queues keep a record per write and are
///   compacted when stale records make up more than half of one, so together
///   they never hold more than twice as many records as there are keys. A
///   lease shorter than one already running is inserted in expiry order (a
///   shift within the leases queue, at most twice the keys in flight); the
///   receiver gives every lease the same length, so its leases are appended.
///
/// Memory is bounded by the capacity: about 210 bytes per key held (some
/// 21 MB at the default capacity), briefly more while the map grows. For
/// several replicas, see the [module docs](super).
///
/// The store reads no clock: time is the `now_ms` it is given, which the
/// receiver takes from its [`Verifier`](crate::Verifier)'s clock (the
/// system clock, or the one given to
/// [`Verifier::with_clock`](crate::Verifier::with_clock): in tests, and on
/// `wasm32-unknown-unknown`, where the standard library has none). A clock
/// that steps back keeps keys a little longer; one that steps forward ends
/// leases early.
pub struct MemoryDedupe {
    capacity: usize,
    ttl_ms: u64,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    entries: HashMap<DedupeKey, Entry>,
    /// A record per lease written, in expiry order.
    leases: VecDeque<Record>,
    /// A record per key processed, in the order processed: also their expiry
    /// order, since they all get the same TTL.
    done: VecDeque<Record>,
    /// How many entries are in flight; the others are done.
    in_flight: usize,
    next_token: u64,
}

#[derive(Clone, Copy)]
struct Entry {
    token: u64,
    done: bool,
    expires_ms: u64,
}

/// A queued copy of an entry; stale once the entry was removed or changed
/// state (a token is finished at most once, so token and state identify it).
#[derive(Clone, Copy)]
struct Record {
    key: DedupeKey,
    token: u64,
    expires_ms: u64,
}

fn is_live(entries: &HashMap<DedupeKey, Entry>, record: &Record, done: bool) -> bool {
    // An extended lease leaves its earlier record behind: the expiry tells
    // them apart.
    entries.get(&record.key).is_some_and(|e| {
        e.token == record.token && e.done == done && e.expires_ms == record.expires_ms
    })
}

impl State {
    fn queue(&mut self, done: bool) -> &mut VecDeque<Record> {
        if done {
            &mut self.done
        } else {
            &mut self.leases
        }
    }

    /// The entry of `key`, unless it expired.
    fn live(&self, key: &DedupeKey, now: u64) -> Option<Entry> {
        self.entries
            .get(key)
            .filter(|e| e.expires_ms > now)
            .copied()
    }

    /// Whether `ticket` holds the unexpired lease of `key`.
    fn holds(&self, key: &DedupeKey, ticket: Ticket, now: u64) -> bool {
        self.live(key, now)
            .is_some_and(|e| !e.done && e.token == ticket.0)
    }

    /// Removes the entry; its record goes stale.
    fn remove(&mut self, key: &DedupeKey) {
        if let Some(entry) = self.entries.remove(key)
            && !entry.done
        {
            self.in_flight = self.in_flight.saturating_sub(1);
        }
    }

    /// Drops stale records and expired entries from the front of both queues.
    /// Both are in expiry order, so no expired entry is left behind (with a
    /// clock that never goes back).
    fn sweep(&mut self, now: u64) {
        for done in [false, true] {
            while let Some(&record) = self.queue(done).front() {
                if is_live(&self.entries, &record, done) {
                    if record.expires_ms > now {
                        break;
                    }
                    self.remove(&record.key);
                }
                self.queue(done).pop_front();
            }
        }
    }

    /// Drops the stale records of a queue once they outnumber its live ones:
    /// each record goes stale once, so this costs O(1) per operation
    /// amortised, and bounds each queue at twice its live entries.
    fn compact(&mut self) {
        let in_flight = self.in_flight;
        let done = self.entries.len().saturating_sub(in_flight);
        let entries = &self.entries;
        if self.leases.len() > in_flight.saturating_mul(2) {
            self.leases.retain(|record| is_live(entries, record, false));
        }
        if self.done.len() > done.saturating_mul(2) {
            self.done.retain(|record| is_live(entries, record, true));
        }
    }

    /// Evicts the key processed longest ago; `false` if none is held.
    fn evict_oldest_done(&mut self) -> bool {
        while let Some(record) = self.done.pop_front() {
            if is_live(&self.entries, &record, true) {
                self.entries.remove(&record.key);
                return true;
            }
        }
        false
    }

    fn push_lease(&mut self, record: Record) {
        // Leases of one length arrive in expiry order: an append.
        if self
            .leases
            .back()
            .is_none_or(|last| last.expires_ms <= record.expires_ms)
        {
            self.leases.push_back(record);
        } else {
            let at = self
                .leases
                .partition_point(|r| r.expires_ms <= record.expires_ms);
            self.leases.insert(at, record);
        }
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl Default for MemoryDedupe {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryDedupe {
    /// [`DEFAULT_CAPACITY`] keys, [`DEFAULT_TTL`].
    #[must_use]
    pub fn new() -> Self {
        Self::with_limits(DEFAULT_CAPACITY, DEFAULT_TTL)
    }

    /// At most `capacity` keys (at least 1), each processed key kept for `ttl`.
    #[must_use]
    pub fn with_limits(capacity: usize, ttl: Duration) -> Self {
        Self {
            capacity: capacity.max(1),
            ttl_ms: millis(ttl),
            state: Mutex::new(State::default()),
        }
    }

    /// The configured capacity.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The configured TTL of a processed key.
    #[must_use]
    pub fn ttl(&self) -> Duration {
        Duration::from_millis(self.ttl_ms)
    }

    /// Number of keys held (in flight or processed, including those that
    /// expired since the last operation); never more than the capacity.
    #[must_use]
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether no key is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records in the internal queues; at most twice [`len`](Self::len)
    /// (exposed so tests can check the memory bound).
    #[doc(hidden)]
    #[must_use]
    pub fn queue_len(&self) -> usize {
        let state = self.lock();
        state.leases.len() + state.done.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sweeps, runs `op`, compacts: every operation leaves the queues
    /// bounded.
    fn with_state<R>(&self, now: u64, op: impl FnOnce(&mut State, u64) -> R) -> R {
        let mut state = self.lock();
        state.sweep(now);
        let out = op(&mut state, now);
        state.compact();
        out
    }

    /// The synchronous core of [`DedupeStore::begin`], at `now_ms`
    /// (milliseconds from any origin, the same for every call).
    ///
    /// # Errors
    ///
    /// When the store is full and every key it holds is in flight (none can
    /// be evicted without letting a copy of its event run twice). The
    /// receiver answers `503`, so Retell retries later.
    pub fn begin_at(
        &self,
        key: &DedupeKey,
        lease: Duration,
        now_ms: u64,
    ) -> Result<Begin, DedupeError> {
        let lease_ms = millis(lease);
        self.with_state(now_ms, |state, now| {
            if let Some(entry) = state.live(key, now) {
                return Ok(if entry.done {
                    Begin::Done
                } else {
                    Begin::InFlight
                });
            }
            // An expired entry the sweep did not reach (the clock went back).
            state.remove(key);
            if state.entries.len() >= self.capacity && !state.evict_oldest_done() {
                return Err(DedupeError(format!(
                    "the memory store is full: all {} keys are in flight",
                    self.capacity
                )));
            }
            let token = state.next_token;
            state.next_token = token.wrapping_add(1);
            let expires_ms = now.saturating_add(lease_ms);
            let entry = Entry {
                token,
                done: false,
                expires_ms,
            };
            state.entries.insert(*key, entry);
            state.in_flight += 1;
            state.push_lease(Record {
                key: *key,
                token,
                expires_ms,
            });
            Ok(Begin::Fresh(Ticket(token)))
        })
    }

    /// The synchronous core of [`DedupeStore::finish`]: marks `key` processed
    /// for the TTL from `now_ms` if `ticket` holds its unexpired lease, and
    /// says whether it did.
    pub fn finish_at(&self, key: &DedupeKey, ticket: Ticket, now_ms: u64) -> bool {
        self.with_state(now_ms, |state, now| {
            if !state.holds(key, ticket, now) {
                return false;
            }
            let expires_ms = now.saturating_add(self.ttl_ms);
            let entry = Entry {
                token: ticket.0,
                done: true,
                expires_ms,
            };
            state.entries.insert(*key, entry);
            state.in_flight = state.in_flight.saturating_sub(1);
            state.done.push_back(Record {
                key: *key,
                token: ticket.0,
                expires_ms,
            });
            true
        })
    }

    /// The synchronous core of [`DedupeStore::extend`]: if `ticket` holds the
    /// unexpired lease of `key`, it now ends `lease` after `now_ms`; says
    /// whether it did.
    pub fn extend_at(&self, key: &DedupeKey, ticket: Ticket, lease: Duration, now_ms: u64) -> bool {
        let lease_ms = millis(lease);
        self.with_state(now_ms, |state, now| {
            if !state.holds(key, ticket, now) {
                return false;
            }
            let expires_ms = now.saturating_add(lease_ms);
            if let Some(entry) = state.entries.get_mut(key) {
                entry.expires_ms = expires_ms;
            }
            state.push_lease(Record {
                key: *key,
                token: ticket.0,
                expires_ms,
            });
            true
        })
    }

    /// The synchronous core of [`DedupeStore::release`] and
    /// [`DedupeStore::abandon`]: forgets `key` if `ticket` still holds it (in
    /// flight, with this ticket's token; tokens are never reused), and says
    /// whether it did. Reads no time, so a destructor can call it.
    pub fn release_held(&self, key: &DedupeKey, ticket: Ticket) -> bool {
        let mut state = self.lock();
        let held = state
            .entries
            .get(key)
            .is_some_and(|e| !e.done && e.token == ticket.0);
        if held {
            state.remove(key);
        }
        state.compact();
        held
    }
}

impl fmt::Debug for MemoryDedupe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryDedupe")
            .field("capacity", &self.capacity)
            .field("ttl_ms", &self.ttl_ms)
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl DedupeStore for MemoryDedupe {
    fn begin<'a>(
        &'a self,
        key: &'a DedupeKey,
        lease: Duration,
        now_ms: u64,
    ) -> StoreFuture<'a, Result<Begin, DedupeError>> {
        Box::pin(std::future::ready(self.begin_at(key, lease, now_ms)))
    }

    fn finish<'a>(
        &'a self,
        key: &'a DedupeKey,
        ticket: Ticket,
        now_ms: u64,
    ) -> StoreFuture<'a, Result<(), DedupeError>> {
        self.finish_at(key, ticket, now_ms);
        Box::pin(std::future::ready(Ok(())))
    }

    fn release<'a>(
        &'a self,
        key: &'a DedupeKey,
        ticket: Ticket,
    ) -> StoreFuture<'a, Result<(), DedupeError>> {
        self.release_held(key, ticket);
        Box::pin(std::future::ready(Ok(())))
    }

    fn abandon(&self, key: &DedupeKey, ticket: Ticket) {
        self.release_held(key, ticket);
    }

    fn extend<'a>(
        &'a self,
        key: &'a DedupeKey,
        ticket: Ticket,
        lease: Duration,
        now_ms: u64,
    ) -> StoreFuture<'a, Result<bool, DedupeError>> {
        Box::pin(std::future::ready(Ok(
            self.extend_at(key, ticket, lease, now_ms)
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    fn key(n: u64) -> DedupeKey {
        let mut bytes = [0u8; 32];
        bytes[..8].copy_from_slice(&n.to_be_bytes());
        DedupeKey::from_bytes(bytes)
    }

    thread_local! {
        /// The test's clock: each test runs on its own thread.
        static CLOCK: std::cell::RefCell<Arc<AtomicU64>> =
            std::cell::RefCell::new(Arc::new(AtomicU64::new(1_000)));
    }

    fn now_ms() -> u64 {
        CLOCK.with(|clock| clock.borrow().load(Ordering::SeqCst))
    }

    /// The store's calls at the test clock's time, as the receiver makes them
    /// at its verifier's.
    trait AtTestClock {
        fn begin_now(&self, key: &DedupeKey, lease: Duration) -> Result<Begin, DedupeError>;
        fn finish_now(&self, key: &DedupeKey, ticket: Ticket) -> bool;
        fn release_now(&self, key: &DedupeKey, ticket: Ticket) -> bool;
    }

    impl AtTestClock for MemoryDedupe {
        fn begin_now(&self, key: &DedupeKey, lease: Duration) -> Result<Begin, DedupeError> {
            self.begin_at(key, lease, now_ms())
        }
        fn finish_now(&self, key: &DedupeKey, ticket: Ticket) -> bool {
            self.finish_at(key, ticket, now_ms())
        }
        fn release_now(&self, key: &DedupeKey, ticket: Ticket) -> bool {
            self.release_held(key, ticket)
        }
    }

    fn store(capacity: usize, ttl_ms: u64) -> (MemoryDedupe, Arc<AtomicU64>) {
        let now = Arc::new(AtomicU64::new(1_000));
        CLOCK.with(|clock| *clock.borrow_mut() = Arc::clone(&now));
        let store = MemoryDedupe::with_limits(capacity, Duration::from_millis(ttl_ms));
        (store, now)
    }

    const LEASE: Duration = Duration::from_secs(10);

    #[test]
    fn defaults_are_pinned() {
        let s = MemoryDedupe::new();
        assert_eq!(s.capacity(), 100_000);
        assert_eq!(s.ttl(), Duration::from_secs(3600));
        assert!(s.is_empty());
    }

    fn fresh(s: &MemoryDedupe, k: u64, lease: Duration) -> Ticket {
        match s.begin_now(&key(k), lease) {
            Ok(Begin::Fresh(t)) => t,
            other => panic!("key {k} was not fresh: {other:?}"),
        }
    }

    /// The internal invariants: the in-flight count is right, each entry has
    /// exactly one live record in the queue of its state, with its expiry,
    /// the leases queue is in expiry order and the queues are compact.
    fn assert_consistent(s: &MemoryDedupe) {
        let state = s.lock();
        let in_flight = state.entries.values().filter(|e| !e.done).count();
        assert_eq!(state.in_flight, in_flight);
        assert!(state.entries.len() <= s.capacity);
        for (done, queue) in [(false, &state.leases), (true, &state.done)] {
            let live: Vec<_> = queue
                .iter()
                .filter(|r| is_live(&state.entries, r, done))
                .collect();
            let held = state.entries.values().filter(|e| e.done == done).count();
            assert_eq!(live.len(), held, "done: {done}");
            for record in live {
                assert_eq!(state.entries[&record.key].expires_ms, record.expires_ms);
            }
            assert!(
                queue.len() <= 2 * held,
                "done: {done}: {} > 2 × {held}",
                queue.len()
            );
        }
        assert!(
            state
                .leases
                .iter()
                .zip(state.leases.iter().skip(1))
                .all(|(a, b)| a.expires_ms <= b.expires_ms)
        );
    }

    #[test]
    fn fresh_in_flight_done_and_release() {
        let (s, _) = store(10, 60_000);
        let t = fresh(&s, 1, LEASE);
        assert_eq!(s.begin_now(&key(1), LEASE), Ok(Begin::InFlight));
        assert!(s.finish_now(&key(1), t));
        assert_eq!(s.begin_now(&key(1), LEASE), Ok(Begin::Done));
        // A ticket that finished holds nothing any more.
        assert!(!s.finish_now(&key(1), t));
        assert!(!s.release_now(&key(1), t));
        assert_eq!(s.begin_now(&key(1), LEASE), Ok(Begin::Done));
        let t2 = fresh(&s, 2, LEASE);
        assert!(s.release_now(&key(2), t2));
        assert!(!s.release_now(&key(2), t2));
        fresh(&s, 2, LEASE);
        assert_consistent(&s);
    }

    #[test]
    fn lease_and_ttl_expire_and_stale_tickets_do_nothing() {
        let (s, now) = store(10, 60_000);
        let old = fresh(&s, 1, LEASE);
        now.fetch_add(10_000, Ordering::SeqCst);
        // The lease ran out: the holder's late finish does nothing.
        assert!(!s.finish_now(&key(1), old));
        // A new delivery takes over.
        let new = fresh(&s, 1, LEASE);
        // The first holder's late release must not free the new lease.
        assert!(!s.release_now(&key(1), old));
        assert_eq!(s.begin_now(&key(1), LEASE), Ok(Begin::InFlight));
        assert!(!s.finish_now(&key(1), old));
        assert_eq!(s.begin_now(&key(1), LEASE), Ok(Begin::InFlight));
        assert!(s.finish_now(&key(1), new));
        assert_eq!(s.begin_now(&key(1), LEASE), Ok(Begin::Done));
        now.fetch_add(59_999, Ordering::SeqCst);
        assert_eq!(s.begin_now(&key(1), LEASE), Ok(Begin::Done));
        now.fetch_add(1, Ordering::SeqCst);
        fresh(&s, 1, LEASE);
        assert_consistent(&s);
    }

    /// A million distinct keys never grow the store past its capacity, and the
    /// TTL empties it.
    #[test]
    fn a_million_keys_stay_within_capacity() {
        let (s, now) = store(100_000, 3_600_000);
        for n in 0..1_000_000u64 {
            let t = fresh(&s, n, LEASE);
            assert!(s.finish_now(&key(n), t));
            if n % 1000 == 0 {
                now.fetch_add(1, Ordering::SeqCst);
            }
        }
        assert_eq!(s.len(), 100_000);
        assert!(s.queue_len() <= 200_000, "{}", s.queue_len());
        assert_consistent(&s);
        // The most recent keys are remembered, the oldest were evicted.
        assert_eq!(s.begin_now(&key(999_999), LEASE), Ok(Begin::Done));
        fresh(&s, 0, LEASE);
        // After the TTL everything is swept by the next operation.
        now.fetch_add(3_600_001, Ordering::SeqCst);
        fresh(&s, 5, LEASE);
        assert_eq!(s.len(), 1);
        assert!(s.queue_len() <= 2);
        assert_consistent(&s);
    }

    #[test]
    fn begin_release_cycles_do_not_grow_the_queue() {
        let (s, _) = store(4, 60_000);
        // It expires first, so the failed attempts' records queue behind it.
        let _running = fresh(&s, 1, LEASE);
        for _ in 0..10_000 {
            let t = fresh(&s, 7, LEASE);
            assert!(s.release_now(&key(7), t));
            assert!(s.queue_len() <= 2, "{}", s.queue_len());
        }
        assert_eq!(s.len(), 1);
        assert_consistent(&s);
    }

    /// A shorter lease than one running is queued in expiry order, so the
    /// sweep frees it on time.
    #[test]
    fn leases_of_several_lengths_expire_in_order() {
        let (s, now) = store(3, 60_000);
        fresh(&s, 1, Duration::from_millis(300));
        fresh(&s, 2, Duration::from_millis(100));
        fresh(&s, 3, Duration::from_millis(200));
        assert_consistent(&s);
        assert!(s.begin_now(&key(4), LEASE).is_err());
        now.fetch_add(100, Ordering::SeqCst);
        fresh(&s, 4, LEASE);
        assert!(s.begin_now(&key(5), LEASE).is_err());
        now.fetch_add(100, Ordering::SeqCst);
        fresh(&s, 5, LEASE);
        assert_eq!(s.begin_now(&key(1), LEASE), Ok(Begin::InFlight));
        assert_eq!(s.len(), 3);
        assert_consistent(&s);
    }

    /// A deterministic mix of every operation keeps the internal invariants
    /// (the black-box model test lives in `tests/dedupe_store.rs`).
    #[test]
    fn a_mix_of_operations_keeps_the_internal_invariants() {
        let (s, now) = store(5, 50);
        let mut tickets = Vec::new();
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..20_000 {
            // xorshift: reproducible, no dependency.
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let k = seed % 9;
            match (seed >> 8) % 6 {
                0 | 1 => {
                    if let Ok(Begin::Fresh(t)) =
                        s.begin_now(&key(k), Duration::from_millis((seed >> 16) % 40))
                    {
                        tickets.push((k, t));
                    }
                }
                2 | 3 => {
                    if let Some(&(k, t)) = tickets.iter().rev().nth((seed >> 16) as usize % 4) {
                        s.finish_now(&key(k), t);
                    }
                }
                4 => {
                    if let Some(&(k, t)) = tickets.iter().rev().nth((seed >> 16) as usize % 4) {
                        s.release_now(&key(k), t);
                    }
                }
                _ => {
                    now.fetch_add((seed >> 16) % 20, Ordering::SeqCst);
                }
            }
            assert_consistent(&s);
        }
    }
}
