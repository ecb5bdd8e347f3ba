//! Idempotency: process each Retell event once, although Retell delivers it up
//! to four times (the first attempt plus 3 retries when no `2xx` arrives in
//! time), sometimes less than a second apart.
//!
//! Switch it on with [`ReceiverConfig::with_dedupe`](crate::dispatch::ReceiverConfig::with_dedupe);
//! every adapter and the command-line listener then share the behaviour, since
//! it lives in the [`dispatch`](crate::dispatch) pipeline (the adapters' ready-made
//! routes; their extractors only verify and parse, and do not deduplicate):
//!
//! | delivery | answer | handler called |
//! |---|---|---|
//! | first time | the handler's (`204`, `500`, `503`) | yes |
//! | again, after a `2xx` | `204` ([`Reason::Duplicate`](crate::dispatch::Reason::Duplicate)) | no |
//! | again, while the first is still running | `409` ([`Reason::InFlight`](crate::dispatch::Reason::InFlight)), so Retell retries later | no |
//! | again, after the first failed (error, panic, deadline) | the handler's | yes: a failure releases the key |
//!
//! # Keys
//!
//! Retell sends no delivery id, so the key is derived from the **same typed
//! parse that dispatches the event** (never from a second, looser parse, where a
//! duplicated JSON key could make the two disagree), following Retell's advice:
//!
//! | event | key |
//! |---|---|
//! | `call_started`, `call_ended`, `call_analyzed` | event + `call_id` |
//! | `chat_started`, `chat_ended`, `chat_analyzed` | event + `chat_id` |
//! | `transfer_*` (a call can transfer several times) | event + `call_id` + the call's `start_timestamp` + `transfer_destination` + `event_timestamp`; without `event_timestamp`, event + a SHA-256 of the body (nothing typed tells two attempts to one destination apart) |
//! | `transcript_updated` (legitimately repeats), unknown events, bodies only the fallback could read | SHA-256 of the raw body |
//!
//! Requests that expect an answer (the inbound call/SMS webhook, custom
//! functions) are **never** deduplicated: Retell needs the answer every time it
//! asks. Each part is length-prefixed and the whole key is hashed with SHA-256,
//! so every [`DedupeKey`] is 32 bytes whatever the ids.
//!
//! # Several replicas: a shared store
//!
//! [`MemoryDedupe`] (the default store) only sees the requests of its own
//! process. Behind a load balancer, retries land on any replica: back the
//! [`DedupeStore`] trait with a shared store. With Redis:
//!
//! | method | command |
//! |---|---|
//! | [`begin`](DedupeStore::begin) | `SET rw:<hex> <token> NX PX <lease_ms>`; if it was not set, `GET rw:<hex>`: `done` → [`Begin::Done`], anything else → [`Begin::InFlight`] |
//! | [`finish`](DedupeStore::finish) | `SET rw:<hex> done PX 3600000` (keep for the TTL) |
//! | [`release`](DedupeStore::release) | delete the key only if it still holds `<token>` (a 3-line Lua script: `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end`) |
//! | [`abandon`](DedupeStore::abandon) (synchronous, must not block) | the default (nothing: the lease frees the key), or spawn the `release` script on the client's runtime |
//!
//! `<hex>` is [`DedupeKey::to_hex`], `<token>` is [`Ticket::token`] (make it
//! unique across replicas, e.g. random). The lease given to `begin` (the
//! handler deadline plus a second) frees the key of a replica that crashed or
//! whose request was cancelled mid-way; the token keeps a late `release` from
//! deleting someone else's lease. If the store fails, return an error: the
//! request is answered `503` and Retell retries.
//!
//! ```
//! use retell_webhooks::dedupe::{Begin, DedupeError, DedupeKey, DedupeStore, StoreFuture, Ticket};
//! use std::time::Duration;
//!
//! /// Sketch of a Redis-backed store (the client calls are elided).
//! struct RedisDedupe;
//!
//! impl DedupeStore for RedisDedupe {
//!     fn begin<'a>(&'a self, key: &'a DedupeKey, lease: Duration) -> StoreFuture<'a, Result<Begin, DedupeError>> {
//!         Box::pin(async move {
//!             let token = 42; // random per call
//!             let _cmd = format!("SET rw:{} {token} NX PX {}", key.to_hex(), lease.as_millis());
//!             Ok(Begin::Fresh(Ticket::new(token)))
//!         })
//!     }
//!     fn finish<'a>(&'a self, key: &'a DedupeKey, _ticket: Ticket) -> StoreFuture<'a, Result<(), DedupeError>> {
//!         Box::pin(async move { let _cmd = format!("SET rw:{} done PX 3600000", key.to_hex()); Ok(()) })
//!     }
//!     fn release<'a>(&'a self, _key: &'a DedupeKey, _ticket: Ticket) -> StoreFuture<'a, Result<(), DedupeError>> {
//!         Box::pin(async move { Ok(()) }) // compare-and-delete script
//!     }
//! }
//! ```
//!
//! # Cancelled requests
//!
//! When the client goes away, hyper (under axum and the tower service) drops
//! the request future. The receiver then calls [`DedupeStore::abandon`], a
//! synchronous release callable from a destructor: [`MemoryDedupe`] frees the
//! key at once, so Retell's next attempt is processed; a store that keeps the
//! default leaves the key in flight until its lease ends (the handler deadline
//! plus one second), and retries meanwhile get `409` and come again later.
//! actix-web keeps running a handler whose client left, so its key stays
//! claimed by work that is still going on, and its outcome stands.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::{Incoming, WebhookEvent};

/// Default number of keys [`MemoryDedupe`] keeps: 100 000.
pub const DEFAULT_CAPACITY: usize = 100_000;

/// Default time [`MemoryDedupe`] remembers a processed event: one hour (Retell's
/// retries come within minutes).
pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);

/// A boxed future, as returned by [`DedupeStore`] methods (so the trait works
/// as `dyn DedupeStore` with synchronous and networked stores alike).
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The identity of one Retell event: 32 bytes (a SHA-256), see the
/// [module docs](self) for what goes in.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DedupeKey([u8; 32]);

impl DedupeKey {
    /// A key from raw bytes (for stores and tests).
    #[must_use]
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The 32 bytes.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lower-case hex, 64 characters (for an external store's key).
    #[must_use]
    pub fn to_hex(&self) -> String {
        use fmt::Write as _;
        let mut out = String::with_capacity(64);
        for byte in self.0 {
            let _ = write!(out, "{byte:02x}");
        }
        out
    }

    /// The key of an event from the event webhook, or `None` for requests that
    /// expect an answer (inbound call/SMS webhook), which are never
    /// deduplicated. `body` is the raw verified body the event was parsed from.
    #[must_use]
    pub fn for_incoming(incoming: &Incoming, body: &[u8]) -> Option<Self> {
        match incoming {
            Incoming::Event(event) => Some(Self::for_event(event, body)),
            Incoming::CallInbound(_) | Incoming::ChatInbound(_) => None,
        }
    }

    /// The key of an event; `body` is the raw verified body it was parsed from.
    #[must_use]
    pub fn for_event(event: &WebhookEvent, body: &[u8]) -> Self {
        let name = event.event_name().as_bytes();
        match event {
            WebhookEvent::CallStarted(e)
            | WebhookEvent::CallEnded(e)
            | WebhookEvent::CallAnalyzed(e) => {
                Self::of_parts(&[b"lifecycle", name, e.call.call_id.as_bytes()])
            }
            WebhookEvent::ChatStarted(e)
            | WebhookEvent::ChatEnded(e)
            | WebhookEvent::ChatAnalyzed(e) => {
                Self::of_parts(&[b"lifecycle", name, e.chat.chat_id.as_bytes()])
            }
            WebhookEvent::TransferStarted(e)
            | WebhookEvent::TransferBridged(e)
            | WebhookEvent::TransferCancelled(e)
            | WebhookEvent::TransferEnded(e) => {
                // Two attempts to the same destination differ only by when
                // they happened: without `event_timestamp` nothing in the
                // typed fields tells them apart, so the whole body does
                // (a retry of one delivery carries the same body).
                if e.event_timestamp.is_none() {
                    return Self::of_parts(&[b"transfer-body", name, body]);
                }
                let start = e
                    .call
                    .start_timestamp
                    .map(|t| t.to_string())
                    .unwrap_or_default();
                let destination = e
                    .transfer_destination
                    .as_ref()
                    .and_then(|d| serde_json::to_vec(d).ok())
                    .unwrap_or_default();
                let at = e.event_timestamp.map(|t| t.to_string()).unwrap_or_default();
                Self::of_parts(&[
                    b"transfer",
                    name,
                    e.call.call_id.as_bytes(),
                    start.as_bytes(),
                    &destination,
                    at.as_bytes(),
                ])
            }
            _ => Self::of_body(body),
        }
    }

    /// SHA-256 of the raw body (for `transcript_updated`, unknown events and
    /// bodies only the fallback could read).
    #[must_use]
    pub fn of_body(body: &[u8]) -> Self {
        Self::of_parts(&[b"body", body])
    }

    fn of_parts(parts: &[&[u8]]) -> Self {
        let mut hash = Sha256::new();
        for part in parts {
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part);
        }
        Self(hash.finalize().into())
    }
}

impl fmt::Debug for DedupeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DedupeKey({})", self.to_hex())
    }
}

/// Proof that [`DedupeStore::begin`] handed this caller the key; give it back to
/// [`finish`](DedupeStore::finish) or [`release`](DedupeStore::release).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ticket(u64);

impl Ticket {
    /// A ticket with this token (unique per `begin`, chosen by the store).
    #[must_use]
    pub const fn new(token: u64) -> Self {
        Self(token)
    }

    /// The token.
    #[must_use]
    pub const fn token(self) -> u64 {
        self.0
    }
}

/// The answer of [`DedupeStore::begin`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Begin {
    /// First time (or every earlier attempt failed): process it, then
    /// `finish` or `release` with this ticket.
    Fresh(Ticket),
    /// Another delivery of the same event is being processed: answer `409`.
    InFlight,
    /// Already processed successfully: answer `204` without processing.
    Done,
}

/// A store failure (e.g. the shared store is unreachable, or every key of a
/// full [`MemoryDedupe`] is in flight). The request is answered `503` so
/// Retell retries; the message goes to the
/// [`Outcome`](crate::dispatch::Outcome).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("dedupe store failed: {0}")]
pub struct DedupeError(pub String);

/// Where processed and in-flight event keys live. See the [module docs](self)
/// for the protocol and a Redis mapping.
///
/// A key moves `absent → in flight` (`begin` returns [`Begin::Fresh`]), then
/// `in flight → done` (`finish`, after a `2xx`) or `in flight → absent`
/// (`release` after a failure, `abandon` when the delivery was dropped). An
/// in-flight key whose lease ran out counts as absent.
pub trait DedupeStore: Send + Sync {
    /// Claims `key` for `lease` if it is absent. An error (e.g. the store is
    /// unreachable, or full of keys in flight) is answered `503`.
    fn begin<'a>(
        &'a self,
        key: &'a DedupeKey,
        lease: Duration,
    ) -> StoreFuture<'a, Result<Begin, DedupeError>>;

    /// Marks `key` processed (it is then remembered for the store's TTL).
    fn finish<'a>(
        &'a self,
        key: &'a DedupeKey,
        ticket: Ticket,
    ) -> StoreFuture<'a, Result<(), DedupeError>>;

    /// Forgets `key` if `ticket` still holds it, so the next delivery is
    /// processed.
    fn release<'a>(
        &'a self,
        key: &'a DedupeKey,
        ticket: Ticket,
    ) -> StoreFuture<'a, Result<(), DedupeError>>;

    /// Gives `key` up at once: called from a destructor when the delivery's
    /// future is dropped before it finished (the client went away
    /// mid-handler), so a retry need not wait for the lease to end.
    ///
    /// Must not block: no network round trip, no lock held for long. The
    /// default does nothing and the lease frees the key; a networked store
    /// may spawn its `release` on its own runtime instead. Like `release`, it
    /// must leave the key alone unless `ticket` still holds it.
    fn abandon(&self, key: &DedupeKey, ticket: Ticket) {
        let _ = (key, ticket);
    }
}

impl<T: DedupeStore + ?Sized> DedupeStore for Arc<T> {
    fn begin<'a>(
        &'a self,
        key: &'a DedupeKey,
        lease: Duration,
    ) -> StoreFuture<'a, Result<Begin, DedupeError>> {
        (**self).begin(key, lease)
    }

    fn finish<'a>(
        &'a self,
        key: &'a DedupeKey,
        ticket: Ticket,
    ) -> StoreFuture<'a, Result<(), DedupeError>> {
        (**self).finish(key, ticket)
    }

    fn release<'a>(
        &'a self,
        key: &'a DedupeKey,
        ticket: Ticket,
    ) -> StoreFuture<'a, Result<(), DedupeError>> {
        (**self).release(key, ticket)
    }

    fn abandon(&self, key: &DedupeKey, ticket: Ticket) {
        (**self).abandon(key, ticket);
    }
}

// ---------------------------------------------------------------------------
// In-memory store
// ---------------------------------------------------------------------------

type ClockFn = dyn Fn() -> u64 + Send + Sync;

/// The clock of a [`MemoryDedupe`], in milliseconds from any origin.
enum Clock {
    /// The system's monotonic clock, counted from its first reading (taken by
    /// the first operation, never by a constructor).
    Monotonic(OnceLock<Instant>),
    /// A clock given to [`MemoryDedupe::with_clock`].
    Custom(Box<ClockFn>),
}

impl Clock {
    fn now_ms(&self) -> u64 {
        match self {
            Self::Monotonic(start) => {
                let start = start.get_or_init(Instant::now);
                u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
            }
            Self::Custom(now_ms) => now_ms(),
        }
    }
}

/// The default store: in memory, one process, bounded.
///
/// * a processed key is remembered for `ttl` (default [`DEFAULT_TTL`]), an
///   in-flight one for its lease; an expired key counts as absent;
/// * [`finish_now`](Self::finish_now) and [`release_now`](Self::release_now)
///   (behind `finish`, `release` and `abandon`) act only while their ticket
///   holds the key's unexpired lease, so a late or repeated call changes
///   nothing;
/// * at most `capacity` keys (default [`DEFAULT_CAPACITY`]). A new key in a
///   full store evicts the key processed longest ago. A key in flight is never
///   evicted, and a processed key is forgotten before its TTL only to make
///   room in a full store. When every key held is in flight, `begin` fails
///   with a [`DedupeError`] rather than evict one: the receiver answers `503`
///   and Retell retries later, whereas an evicted lease would let a copy run
///   twice. That takes `capacity` leases at once: the deliveries running
///   (at most [`max_in_flight`](crate::dispatch::ReceiverConfig::max_in_flight)
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
/// several replicas, see the [module docs](self).
///
/// Time comes from the system's monotonic clock, first read by the first
/// operation (the constructors read no clock), or from the clock given to
/// [`with_clock`](Self::with_clock), in which case no method reads the system
/// clock: that is how to use the store on `wasm32-unknown-unknown`, where
/// `Instant::now()` panics.
pub struct MemoryDedupe {
    capacity: usize,
    ttl_ms: u64,
    clock: Clock,
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
    entries
        .get(&record.key)
        .is_some_and(|e| e.token == record.token && e.done == done)
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
    /// [`DEFAULT_CAPACITY`] keys, [`DEFAULT_TTL`], the system's monotonic clock
    /// (not read here: see [`with_clock`](Self::with_clock)).
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
            clock: Clock::Monotonic(OnceLock::new()),
            state: Mutex::new(State::default()),
        }
    }

    /// Replaces the system's monotonic clock with `now_ms` (milliseconds, any
    /// origin, never decreasing); no method reads the system clock afterwards.
    ///
    /// For tests, and where the standard library has no clock: on
    /// `wasm32-unknown-unknown`, `Instant::now()` panics, so pass the host's
    /// time (in a browser or Node.js, `performance.now()` or `Date.now()`
    /// through `js-sys`).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use std::time::Duration;
    /// use retell_webhooks::dedupe::{Begin, DedupeKey, MemoryDedupe};
    ///
    /// let now = Arc::new(AtomicU64::new(0));
    /// let clock = Arc::clone(&now);
    /// let store = MemoryDedupe::with_limits(1_000, Duration::from_secs(60))
    ///     .with_clock(move || clock.load(Ordering::SeqCst));
    /// let key = DedupeKey::of_body(br#"{"event":"transcript_updated"}"#);
    /// let lease = Duration::from_secs(10);
    /// let Ok(Begin::Fresh(ticket)) = store.begin_now(&key, lease) else {
    ///     unreachable!()
    /// };
    /// assert!(store.finish_now(&key, ticket));
    /// now.store(59_999, Ordering::SeqCst);
    /// assert_eq!(store.begin_now(&key, lease), Ok(Begin::Done));
    /// now.store(60_000, Ordering::SeqCst);
    /// assert!(matches!(store.begin_now(&key, lease), Ok(Begin::Fresh(_))));
    /// ```
    #[must_use]
    pub fn with_clock<F>(mut self, now_ms: F) -> Self
    where
        F: Fn() -> u64 + Send + Sync + 'static,
    {
        self.clock = Clock::Custom(Box::new(now_ms));
        self
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
    fn with_state<R>(&self, op: impl FnOnce(&mut State, u64) -> R) -> R {
        // The clock is user code: read it before taking the lock.
        let now = self.clock.now_ms();
        let mut state = self.lock();
        state.sweep(now);
        let out = op(&mut state, now);
        state.compact();
        out
    }

    /// The synchronous core of [`DedupeStore::begin`].
    ///
    /// # Errors
    ///
    /// When the store is full and every key it holds is in flight (none can
    /// be evicted without letting a copy of its event run twice). The
    /// receiver answers `503`, so Retell retries later.
    pub fn begin_now(&self, key: &DedupeKey, lease: Duration) -> Result<Begin, DedupeError> {
        let lease_ms = millis(lease);
        self.with_state(|state, now| {
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
    /// for the TTL if `ticket` holds its unexpired lease, and says whether it
    /// did.
    pub fn finish_now(&self, key: &DedupeKey, ticket: Ticket) -> bool {
        self.with_state(|state, now| {
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

    /// The synchronous core of [`DedupeStore::release`] and
    /// [`DedupeStore::abandon`]: forgets `key` if `ticket` holds its unexpired
    /// lease, and says whether it did.
    pub fn release_now(&self, key: &DedupeKey, ticket: Ticket) -> bool {
        self.with_state(|state, now| {
            let held = state.holds(key, ticket, now);
            if held {
                state.remove(key);
            }
            held
        })
    }
}

impl fmt::Debug for MemoryDedupe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryDedupe")
            .field("capacity", &self.capacity)
            .field("ttl_ms", &self.ttl_ms)
            .field("len", &self.len())
            .field(
                "clock",
                &format_args!(
                    "{}",
                    match self.clock {
                        Clock::Monotonic(_) => "monotonic",
                        Clock::Custom(_) => "custom",
                    }
                ),
            )
            .finish_non_exhaustive()
    }
}

impl DedupeStore for MemoryDedupe {
    fn begin<'a>(
        &'a self,
        key: &'a DedupeKey,
        lease: Duration,
    ) -> StoreFuture<'a, Result<Begin, DedupeError>> {
        Box::pin(std::future::ready(self.begin_now(key, lease)))
    }

    fn finish<'a>(
        &'a self,
        key: &'a DedupeKey,
        ticket: Ticket,
    ) -> StoreFuture<'a, Result<(), DedupeError>> {
        self.finish_now(key, ticket);
        Box::pin(std::future::ready(Ok(())))
    }

    fn release<'a>(
        &'a self,
        key: &'a DedupeKey,
        ticket: Ticket,
    ) -> StoreFuture<'a, Result<(), DedupeError>> {
        self.release_now(key, ticket);
        Box::pin(std::future::ready(Ok(())))
    }

    fn abandon(&self, key: &DedupeKey, ticket: Ticket) {
        self.release_now(key, ticket);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    fn key(n: u64) -> DedupeKey {
        let mut bytes = [0u8; 32];
        bytes[..8].copy_from_slice(&n.to_be_bytes());
        DedupeKey::from_bytes(bytes)
    }

    fn store(capacity: usize, ttl_ms: u64) -> (MemoryDedupe, Arc<AtomicU64>) {
        let now = Arc::new(AtomicU64::new(1_000));
        let clock = Arc::clone(&now);
        let store = MemoryDedupe::with_limits(capacity, Duration::from_millis(ttl_ms))
            .with_clock(move || clock.load(Ordering::SeqCst));
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

    /// Checklist L6: a million distinct keys never grow the store past its
    /// capacity, and the TTL empties it.
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

    #[test]
    fn keys_follow_the_documented_parts() {
        let ended = br#"{"event":"call_ended","call":{"call_id":"c1"}}"#;
        let ended_pretty =
            b"{ \"event\" : \"call_ended\", \"call\" : {\"call_id\":\"c1\", \"x\": 1} }";
        let analyzed = br#"{"event":"call_analyzed","call":{"call_id":"c1"}}"#;
        let k = |b: &[u8]| {
            let e = WebhookEvent::from_slice(b).unwrap();
            DedupeKey::for_event(&e, b)
        };
        assert_eq!(k(ended), k(ended_pretty));
        assert_ne!(k(ended), k(analyzed));
        let t1 = br#"{"event":"transcript_updated","call":{"call_id":"c1","transcript":"a"}}"#;
        let t2 = br#"{"event":"transcript_updated","call":{"call_id":"c1","transcript":"ab"}}"#;
        assert_ne!(k(t1), k(t2));
        assert_eq!(k(t1), DedupeKey::of_body(t1));
        // With `event_timestamp`, transfers are keyed by their typed parts.
        let x1 = br#"{"event":"transfer_started","event_timestamp":9,"call":{"call_id":"c1","start_timestamp":5},"transfer_destination":{"number":"+1"}}"#;
        let x2 = br#"{"event":"transfer_started","event_timestamp":9,"call":{"call_id":"c1","start_timestamp":5},"transfer_destination":{"number":"+2"}}"#;
        let x1b = br#"{"transfer_destination":{"number":"+1"},"event_timestamp":9,"event":"transfer_started","call":{"start_timestamp":5,"call_id":"c1"}}"#;
        let x1_later = br#"{"event":"transfer_started","event_timestamp":10,"call":{"call_id":"c1","start_timestamp":5},"transfer_destination":{"number":"+1"}}"#;
        assert_ne!(k(x1), k(x2));
        assert_eq!(k(x1), k(x1b));
        assert_ne!(k(x1), k(x1_later));
        // Without it, a second attempt to the same destination (a different
        // body) is a different event; a retry (the same body) is not.
        let a1 = br#"{"event":"transfer_started","call":{"call_id":"c1","start_timestamp":5,"transcript":"a"},"transfer_destination":{"number":"+1"}}"#;
        let a2 = br#"{"event":"transfer_started","call":{"call_id":"c1","start_timestamp":5,"transcript":"a b"},"transfer_destination":{"number":"+1"}}"#;
        assert_ne!(k(a1), k(a2));
        // The event name is part of the key: the same body as another kind
        // is another event.
        let b1 = br#"{"event":"transfer_bridged","call":{"call_id":"c1","start_timestamp":5,"transcript":"a"},"transfer_destination":{"number":"+1"}}"#;
        assert_ne!(k(a1), k(b1));
        let inbound =
            br#"{"event":"call_inbound","call_inbound":{"from_number":"+1","to_number":"+2"}}"#;
        let incoming = Incoming::from_slice(inbound).unwrap();
        assert_eq!(DedupeKey::for_incoming(&incoming, inbound), None);
        assert_eq!(k(ended).to_hex().len(), 64);
    }
}
