//! `MemoryDedupe` against a reference model: random sequences of `begin`,
//! `finish`, `release` and `abandon` (with valid and stale tickets) and clock
//! advances, checked answer by answer, plus deterministic regressions for the
//! eviction bugs and the `abandon` hook. The clock is injected; nothing sleeps.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use proptest::prelude::*;
use retell_webhooks::dedupe::{
    Begin, DedupeError, DedupeKey, DedupeStore, MemoryDedupe, StoreFuture, Ticket,
};

/// Polls a future that must be ready at once (`MemoryDedupe`'s are).
fn ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("MemoryDedupe future was not ready"),
    }
}

fn key(n: u8) -> DedupeKey {
    let mut bytes = [0u8; 32];
    bytes[0] = n;
    DedupeKey::from_bytes(bytes)
}

/// A store with a hand-moved clock, driven through the `DedupeStore` trait.
struct Harness {
    store: MemoryDedupe,
    now: Arc<AtomicU64>,
}

impl Harness {
    fn new(capacity: usize, ttl_ms: u64) -> Self {
        let now = Arc::new(AtomicU64::new(1_000));
        let store = MemoryDedupe::with_limits(capacity, Duration::from_millis(ttl_ms));
        Self { store, now }
    }

    fn now(&self) -> u64 {
        self.now.load(Ordering::SeqCst)
    }

    fn advance(&self, ms: u64) {
        self.now.fetch_add(ms, Ordering::SeqCst);
    }

    fn begin(&self, k: u8, lease_ms: u64) -> Result<Begin, DedupeError> {
        ready(
            self.store
                .begin(&key(k), Duration::from_millis(lease_ms), self.now()),
        )
    }

    fn fresh(&self, k: u8, lease_ms: u64) -> Ticket {
        match self.begin(k, lease_ms) {
            Ok(Begin::Fresh(ticket)) => ticket,
            other => panic!("key {k} was not fresh: {other:?}"),
        }
    }

    fn finish(&self, k: u8, ticket: Ticket) {
        assert_eq!(
            ready(self.store.finish(&key(k), ticket, self.now())),
            Ok(())
        );
    }

    fn release(&self, k: u8, ticket: Ticket) {
        assert_eq!(ready(self.store.release(&key(k), ticket)), Ok(()));
    }
}

const LEASE_MS: u64 = 10_000;
const HOUR_MS: u64 = 3_600_000;

// ---------------------------------------------------------------------------
// Deterministic regressions
// ---------------------------------------------------------------------------

/// Failed attempts of one key used to push a handled key out of a store far
/// below its capacity: the queue bound removed live entries at its front
/// although only stale ones made it long.
#[test]
fn failed_attempts_of_one_key_do_not_forget_a_done_key() {
    let h = Harness::new(10, HOUR_MS);
    let done = h.fresh(1, LEASE_MS);
    h.finish(1, done);
    for _ in 0..20 {
        let ticket = h.fresh(2, LEASE_MS);
        h.release(2, ticket);
    }
    assert_eq!(h.begin(1, LEASE_MS), Ok(Begin::Done));
    assert_eq!(h.store.len(), 1);
    assert!(h.store.queue_len() <= 2, "{}", h.store.queue_len());
}

/// Stale queue records behind a live lease are compacted, so the queue stays
/// within twice the keys held however many attempts fail.
#[test]
fn failed_attempts_behind_a_running_lease_keep_the_queue_short() {
    let h = Harness::new(10, HOUR_MS);
    // It expires first, so the failed attempts' records queue behind it.
    let _running = h.fresh(1, LEASE_MS);
    let done = h.fresh(3, LEASE_MS);
    h.finish(3, done);
    for _ in 0..10_000 {
        let ticket = h.fresh(2, LEASE_MS);
        h.release(2, ticket);
        assert!(
            h.store.queue_len() <= 2 * h.store.len(),
            "{}",
            h.store.queue_len()
        );
    }
    assert_eq!(h.begin(1, LEASE_MS), Ok(Begin::InFlight));
    assert_eq!(h.begin(3, LEASE_MS), Ok(Begin::Done));
    assert_eq!(h.store.len(), 2);
}

/// A full store used to evict its oldest entry even while in flight, so a
/// copy of that event ran twice; it now evicts the oldest done key.
#[test]
fn a_full_store_evicts_the_oldest_done_key_never_an_in_flight_one() {
    let h = Harness::new(4, HOUR_MS);
    // The oldest entries are in flight, the newer ones done.
    let _a = h.fresh(1, LEASE_MS);
    let _b = h.fresh(2, LEASE_MS);
    let c = h.fresh(3, LEASE_MS);
    h.finish(3, c);
    let d = h.fresh(4, LEASE_MS);
    h.finish(4, d);
    assert_eq!(h.store.len(), 4);

    let _e = h.fresh(5, LEASE_MS);
    assert_eq!(h.store.len(), 4);
    assert_eq!(h.begin(1, LEASE_MS), Ok(Begin::InFlight));
    assert_eq!(h.begin(2, LEASE_MS), Ok(Begin::InFlight));
    assert_eq!(h.begin(5, LEASE_MS), Ok(Begin::InFlight));
    assert_eq!(h.begin(4, LEASE_MS), Ok(Begin::Done));
    // Key 3, the oldest done one, made room.
    assert!(matches!(h.begin(3, LEASE_MS), Ok(Begin::Fresh(_))));
}

/// With every slot in flight nothing may be evicted: `begin` fails (the
/// receiver answers `503`, Retell retries) until a slot frees up.
#[test]
fn a_store_full_of_leases_refuses_new_keys_until_one_ends() {
    let h = Harness::new(3, HOUR_MS);
    let a = h.fresh(1, LEASE_MS);
    let _b = h.fresh(2, LEASE_MS);
    let _c = h.fresh(3, 2 * LEASE_MS);
    let refused = h.begin(4, LEASE_MS);
    assert!(matches!(refused, Err(DedupeError(_))), "{refused:?}");
    assert_eq!(h.store.len(), 3);
    for k in 1..=3 {
        assert_eq!(h.begin(k, LEASE_MS), Ok(Begin::InFlight), "key {k}");
    }
    // A release frees a slot.
    h.release(1, a);
    let d = h.fresh(4, LEASE_MS);
    assert!(h.begin(5, LEASE_MS).is_err());
    // An expired lease frees a slot too.
    h.advance(LEASE_MS);
    let _e = h.fresh(5, LEASE_MS);
    assert_eq!(h.begin(3, LEASE_MS), Ok(Begin::InFlight));
    // The expired holder's late finish changes nothing.
    h.finish(4, d);
    assert!(matches!(h.begin(4, LEASE_MS), Ok(Begin::Fresh(_))));
    assert_eq!(h.store.len(), 3);
}

#[test]
fn a_done_key_is_kept_until_its_ttl_however_many_leases_come_and_go() {
    let h = Harness::new(2, 60_000);
    let done = h.fresh(1, LEASE_MS);
    h.finish(1, done);
    for n in 0..1_000u32 {
        let k = 2 + (n % 200) as u8;
        let ticket = h.fresh(k, 1 + u64::from(n % 7));
        if n % 2 == 0 {
            h.release(k, ticket);
        } else {
            h.advance(10);
        }
        assert!(h.store.len() <= 2);
        assert!(h.store.queue_len() <= 4, "{}", h.store.queue_len());
    }
    h.advance(59_999 - h.now() + 1_000);
    assert_eq!(h.begin(1, LEASE_MS), Ok(Begin::Done));
    h.advance(1);
    assert!(matches!(h.begin(1, LEASE_MS), Ok(Begin::Fresh(_))));
}

// ---------------------------------------------------------------------------
// abandon
// ---------------------------------------------------------------------------

#[test]
fn abandon_frees_the_key_at_once_and_only_for_its_ticket() {
    let h = Harness::new(10, HOUR_MS);
    let old = h.fresh(1, LEASE_MS);
    h.advance(LEASE_MS);
    let new = h.fresh(1, LEASE_MS);
    // The first holder, long expired, abandons late: the new lease stands.
    h.store.abandon(&key(1), old);
    assert_eq!(h.begin(1, LEASE_MS), Ok(Begin::InFlight));
    h.store.abandon(&key(1), new);
    let again = h.fresh(1, LEASE_MS);
    h.finish(1, again);
    // A done key is not forgotten by an abandon of its own ticket.
    h.store.abandon(&key(1), again);
    assert_eq!(h.begin(1, LEASE_MS), Ok(Begin::Done));
}

/// Drops the future of a delivery mid-way: the guard it holds abandons.
#[test]
fn abandon_from_a_destructor_frees_the_key_for_the_next_delivery() {
    struct Abandon {
        store: Arc<dyn DedupeStore>,
        key: DedupeKey,
        ticket: Option<Ticket>,
    }
    impl Drop for Abandon {
        fn drop(&mut self) {
            if let Some(ticket) = self.ticket.take() {
                self.store.abandon(&self.key, ticket);
            }
        }
    }

    let h = Harness::new(10, HOUR_MS);
    let now = h.now();
    let store: Arc<dyn DedupeStore> = Arc::new(h.store);
    let lease = Duration::from_millis(LEASE_MS);
    let Ok(Begin::Fresh(ticket)) = ready(store.begin(&key(1), lease, now)) else {
        panic!("first delivery was not fresh")
    };
    let guard = Abandon {
        store: Arc::clone(&store),
        key: key(1),
        ticket: Some(ticket),
    };
    let delivery = async move {
        let _guard = guard;
        std::future::pending::<()>().await;
    };
    let mut delivery = Box::pin(delivery);
    let waker = Waker::noop();
    assert!(
        delivery
            .as_mut()
            .poll(&mut Context::from_waker(waker))
            .is_pending()
    );
    assert_eq!(ready(store.begin(&key(1), lease, now)), Ok(Begin::InFlight));
    drop(delivery);
    assert!(matches!(
        ready(store.begin(&key(1), lease, now)),
        Ok(Begin::Fresh(_))
    ));
}

/// `extend` keeps a lease past its first end, only for the ticket holding
/// it; the record of the first lease does not free the key when it comes due.
#[test]
fn an_extended_lease_holds_the_key_past_its_first_end() {
    let h = Harness::new(10, HOUR_MS);
    let lease = Duration::from_millis(LEASE_MS);
    let ticket = h.fresh(1, LEASE_MS);
    let stale = Ticket::new(ticket.token().wrapping_add(1));
    h.advance(LEASE_MS - 1);
    assert_eq!(
        ready(h.store.extend(&key(1), stale, lease, h.now())),
        Ok(false)
    );
    assert_eq!(
        ready(h.store.extend(&key(1), ticket, lease, h.now())),
        Ok(true)
    );
    h.advance(LEASE_MS - 1);
    assert_eq!(h.begin(1, LEASE_MS), Ok(Begin::InFlight));
    assert!(h.store.queue_len() <= 2 * h.store.len());
    h.finish(1, ticket);
    assert_eq!(h.begin(1, LEASE_MS), Ok(Begin::Done));
    // A lease that ended cannot be extended: another delivery may hold it.
    let other = h.fresh(2, LEASE_MS);
    h.advance(LEASE_MS);
    assert_eq!(
        ready(h.store.extend(&key(2), other, lease, h.now())),
        Ok(false)
    );
    assert!(matches!(h.begin(2, LEASE_MS), Ok(Begin::Fresh(_))));
}

/// The default `abandon` does nothing: the lease frees the key.
#[test]
fn the_default_abandon_leaves_the_lease_alone_and_arc_forwards() {
    struct NoAbandon {
        inner: MemoryDedupe,
        releases: AtomicUsize,
    }
    impl DedupeStore for NoAbandon {
        fn begin<'a>(
            &'a self,
            key: &'a DedupeKey,
            lease: Duration,
            now_ms: u64,
        ) -> StoreFuture<'a, Result<Begin, DedupeError>> {
            self.inner.begin(key, lease, now_ms)
        }
        fn finish<'a>(
            &'a self,
            key: &'a DedupeKey,
            ticket: Ticket,
            now_ms: u64,
        ) -> StoreFuture<'a, Result<(), DedupeError>> {
            self.inner.finish(key, ticket, now_ms)
        }
        fn release<'a>(
            &'a self,
            key: &'a DedupeKey,
            ticket: Ticket,
        ) -> StoreFuture<'a, Result<(), DedupeError>> {
            self.releases.fetch_add(1, Ordering::SeqCst);
            self.inner.release(key, ticket)
        }
    }

    let h = Harness::new(10, HOUR_MS);
    let clock = Arc::clone(&h.now);
    let now = || clock.load(Ordering::SeqCst);
    let store = Arc::new(NoAbandon {
        inner: h.store,
        releases: AtomicUsize::new(0),
    });
    let lease = Duration::from_millis(LEASE_MS);
    let Ok(Begin::Fresh(ticket)) = ready(store.begin(&key(1), lease, now())) else {
        panic!("first delivery was not fresh")
    };
    DedupeStore::abandon(&store, &key(1), ticket);
    assert_eq!(store.releases.load(Ordering::SeqCst), 0);
    assert_eq!(
        ready(store.begin(&key(1), lease, now())),
        Ok(Begin::InFlight)
    );
    clock.fetch_add(LEASE_MS, Ordering::SeqCst);
    assert!(matches!(
        ready(store.begin(&key(1), lease, now())),
        Ok(Begin::Fresh(_))
    ));

    // `Arc<MemoryDedupe>` forwards to the store's own `abandon`.
    let memory = Arc::new(Harness::new(10, HOUR_MS).store);
    let Ok(Begin::Fresh(ticket)) = ready(memory.begin(&key(2), lease, 1_000)) else {
        panic!("first delivery was not fresh")
    };
    DedupeStore::abandon(&memory, &key(2), ticket);
    assert!(memory.is_empty());
}

// ---------------------------------------------------------------------------
// Property test against a reference model
// ---------------------------------------------------------------------------

/// The documented semantics, spelt out over a map.
///
/// * an entry whose expiry has come is absent (checked at every operation);
/// * `finish` acts only if the ticket holds the key's unexpired lease;
/// * `release` and `abandon` read no time: they remove the key if the ticket
///   still holds it (expired or not), and change nothing else;
/// * a new key in a full store evicts the done key finished longest ago; with
///   none, `begin` fails and nothing changes.
#[derive(Debug)]
struct Model {
    capacity: usize,
    ttl_ms: u64,
    slots: BTreeMap<u8, Slot>,
    finishes: u64,
}

#[derive(Debug, Clone, Copy)]
enum Slot {
    InFlight { ticket: Ticket, expires: u64 },
    Done { expires: u64, finished: u64 },
}

impl Slot {
    fn expires(self) -> u64 {
        match self {
            Self::InFlight { expires, .. } | Self::Done { expires, .. } => expires,
        }
    }
}

#[derive(Debug, PartialEq)]
enum Expect {
    Fresh,
    InFlight,
    Done,
    Full,
}

impl Model {
    fn purge(&mut self, now: u64) {
        self.slots.retain(|_, slot| slot.expires() > now);
    }

    /// The answer to `begin`; on `Fresh`, the caller records the lease.
    fn begin(&mut self, key: u8, now: u64) -> Expect {
        self.purge(now);
        match self.slots.get(&key) {
            Some(Slot::InFlight { .. }) => return Expect::InFlight,
            Some(Slot::Done { .. }) => return Expect::Done,
            None => {}
        }
        if self.slots.len() >= self.capacity {
            let oldest_done = self
                .slots
                .iter()
                .filter_map(|(&k, slot)| match slot {
                    Slot::Done { finished, .. } => Some((*finished, k)),
                    Slot::InFlight { .. } => None,
                })
                .min();
            let Some((_, evicted)) = oldest_done else {
                return Expect::Full;
            };
            self.slots.remove(&evicted);
        }
        Expect::Fresh
    }

    fn holds(&self, key: u8, ticket: Ticket) -> bool {
        matches!(self.slots.get(&key), Some(Slot::InFlight { ticket: t, .. }) if *t == ticket)
    }

    fn finish(&mut self, key: u8, ticket: Ticket, now: u64) {
        self.purge(now);
        if self.holds(key, ticket) {
            self.finishes += 1;
            let slot = Slot::Done {
                expires: now.saturating_add(self.ttl_ms),
                finished: self.finishes,
            };
            self.slots.insert(key, slot);
        }
    }

    fn release(&mut self, key: u8, ticket: Ticket) {
        if self.holds(key, ticket) {
            self.slots.remove(&key);
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Begin { key: u8, lease_ms: u64 },
    Finish { pick: usize },
    Release { pick: usize },
    Abandon { pick: usize },
    Advance { ms: u64 },
}

const KEYS: u8 = 8;

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0..KEYS, 0u64..40).prop_map(|(key, lease_ms)| Op::Begin { key, lease_ms }),
        3 => (0usize..6).prop_map(|pick| Op::Finish { pick }),
        1 => (0usize..6).prop_map(|pick| Op::Release { pick }),
        1 => (0usize..6).prop_map(|pick| Op::Abandon { pick }),
        2 => (0u64..25).prop_map(|ms| Op::Advance { ms }),
    ]
}

fn run(capacity: usize, ttl_ms: u64, ops: &[Op]) -> Result<(), TestCaseError> {
    let h = Harness::new(capacity, ttl_ms);
    let mut model = Model {
        capacity,
        ttl_ms,
        slots: BTreeMap::new(),
        finishes: 0,
    };
    // Every ticket handed out, newest last; `pick` counts back from the
    // newest, so most picks are recent (often valid) and some stale.
    let mut issued: Vec<(u8, Ticket)> = Vec::new();
    let mut tokens = HashSet::new();
    let picked = |issued: &[(u8, Ticket)], pick: usize| {
        (!issued.is_empty()).then(|| issued[issued.len() - 1 - pick % issued.len()])
    };

    for (step, op) in ops.iter().enumerate() {
        let now = h.now();
        match *op {
            Op::Begin { key, lease_ms } => {
                let got = h.begin(key, lease_ms);
                let want = model.begin(key, now);
                match (&got, &want) {
                    (Ok(Begin::Fresh(ticket)), Expect::Fresh) => {
                        prop_assert!(tokens.insert(ticket.token()), "ticket reused: {ticket:?}");
                        issued.push((key, *ticket));
                        let expires = now.saturating_add(lease_ms);
                        model.slots.insert(
                            key,
                            Slot::InFlight {
                                ticket: *ticket,
                                expires,
                            },
                        );
                    }
                    (Ok(Begin::InFlight), Expect::InFlight)
                    | (Ok(Begin::Done), Expect::Done)
                    | (Err(_), Expect::Full) => {}
                    _ => prop_assert!(
                        false,
                        "step {step} {op:?}: store {got:?}, model {want:?}, {model:?}"
                    ),
                }
            }
            Op::Finish { pick } => {
                if let Some((key, ticket)) = picked(&issued, pick) {
                    h.finish(key, ticket);
                    model.finish(key, ticket, now);
                }
            }
            Op::Release { pick } => {
                if let Some((key, ticket)) = picked(&issued, pick) {
                    h.release(key, ticket);
                    model.release(key, ticket);
                }
            }
            Op::Abandon { pick } => {
                if let Some((k, ticket)) = picked(&issued, pick) {
                    h.store.abandon(&key(k), ticket);
                    model.release(k, ticket);
                }
            }
            Op::Advance { ms } => h.advance(ms),
        }

        // The store holds exactly the model's keys: those that expired since
        // its last operation too, which the model purges only when the store
        // is called.
        let len = h.store.len();
        prop_assert_eq!(len, model.slots.len(), "step {} {:?}", step, op);
        prop_assert!(len <= capacity, "step {step}: {len} > {capacity}");
        let queue = h.store.queue_len();
        prop_assert!(queue <= 2 * len, "step {step}: queue {queue}, {len} keys");

        // Every key the model still holds answers as the model says; these
        // answers change nothing but the sweep, mirrored by the purge.
        let now = h.now();
        if model.slots.values().any(|slot| slot.expires() > now) {
            model.purge(now);
            for (&k, slot) in &model.slots {
                let want = match slot {
                    Slot::InFlight { .. } => Begin::InFlight,
                    Slot::Done { .. } => Begin::Done,
                };
                prop_assert_eq!(h.begin(k, 1), Ok(want), "step {} {:?}: key {}", step, op, k);
            }
            prop_assert_eq!(h.store.len(), model.slots.len(), "step {} {:?}", step, op);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn memory_dedupe_matches_the_model(
        capacity in 1usize..=5,
        ttl_ms in prop_oneof![Just(0u64), 1u64..120],
        ops in prop::collection::vec(op(), 1..150),
    ) {
        run(capacity, ttl_ms, &ops)?;
    }
}
