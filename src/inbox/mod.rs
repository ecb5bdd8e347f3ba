//! A durable inbox: acknowledge Retell only once the event is on disk, then
//! process it with retries for hours.
//!
//! Retell tries a delivery at most four times, within minutes, and has no
//! endpoint to resend it. A handler whose database is down for twenty
//! minutes, a deploy in the middle of a handler or a bug that fails every
//! `call_analyzed` until it is fixed would lose events for good. With an
//! inbox the receiver does less while Retell waits, and the rest happens on
//! the inbox's own schedule:
//!
//! 1. the receiver verifies the signature, reads the event, stores its raw
//!    bytes durably under the event's [`DedupeKey`] and answers `204`; a copy
//!    of a stored event is answered `204` without a second entry; a store
//!    that fails or does not answer within the deadline is answered `503`
//!    (never a 4xx), so Retell retries;
//! 2. a [`Worker`] leases stored events and runs your existing
//!    [`WebhookHandler`](crate::WebhookHandler) on them: `Ok` acknowledges,
//!    `Err`, a panic or the worker's timeout schedules a retry
//!    ([`RetrySchedule`], about 15 hours by default), and the last failure
//!    makes the event a dead letter, kept until you replay it.
//!
//! Switch it on with [`ReceiverConfig::with_inbox`](crate::ReceiverConfig::with_inbox).
//! Only events are stored: the inbound call/SMS webhook and custom functions
//! need the handler's answer, so they are still answered inline. Every
//! verified body within the size limit is kept: one the models cannot read
//! goes straight to the dead letters with the reason, instead of a `400`
//! that would lose it, and can be replayed after an upgrade.
//!
//! # Stores
//!
//! | store | feature | for |
//! |---|---|---|
//! | `SqliteInbox` | `sqlite` | one process, or several on one machine sharing a file; no server. WAL with `synchronous=FULL`, and deliveries that arrive together share one transaction (group commit) |
//! | `RedisInbox` | `redis` | several replicas; Redis Streams with a consumer group. Needs Redis persistence (AOF) for the guarantee |
//!
//! Both keep an event under its [`DedupeKey`]: a stored event *is* the
//! deduplication record, for as long as it is kept (see
//! [`Inbox::prune`]), so one key space serves both.
//!
//! # Per-call order
//!
//! By default the events of one call (or chat) reach the handler in the
//! order they were received: a `call_analyzed` waits while the same call's
//! `call_ended` is running or waiting for a retry. Once an event is dead,
//! its call's later events go ahead (waiting for a replay could hold them
//! for days); a replayed dead letter then runs after them. Each store has a
//! setting to turn ordering off.
//!
//! # The states of an entry
//!
//! | state | meaning | next |
//! |---|---|---|
//! | [`Ready`](State::Ready) | stored, waiting for a worker (or for an earlier event of its call) | `Leased` |
//! | [`Leased`](State::Leased) | a worker runs it; the lease is extended while it runs | `Done`, `Retry`, `Dead`; `Ready` when the lease runs out or the worker shuts down |
//! | [`Retry`](State::Retry) | failed, due again at [`Entry::due_ms`] | `Leased` |
//! | [`Dead`](State::Dead) | failed on its last attempt, or unreadable on arrival | `Ready` by [`Inbox::replay`] |
//! | [`Done`](State::Done) | processed; kept as the deduplication record until pruned | `Ready` by [`Inbox::replay`] of a time range |

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::WebhookEvent;

mod process;
mod schedule;
mod worker;

use crate::dedupe::DedupeKey;
pub use crate::dedupe::StoreFuture;
pub use process::RawHandler;
pub use schedule::RetrySchedule;
pub use worker::{Worker, WorkerHandle};

#[cfg(feature = "sqlite")]
mod sqlite;

#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use sqlite::SqliteInbox;

#[cfg(feature = "redis")]
mod redis;

#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use self::redis::RedisInbox;

/// A state of an [`Entry`]: see the [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    /// Stored, waiting for a worker (or for an earlier event of its call).
    Ready,
    /// A worker runs it.
    Leased,
    /// Failed; due again at [`Entry::due_ms`].
    Retry,
    /// Failed on its last attempt, or unreadable on arrival: kept until
    /// replayed or pruned.
    Dead,
    /// Processed.
    Done,
}

impl State {
    /// Every state, in the order of the table in the module docs.
    pub const ALL: [State; 5] = [
        State::Ready,
        State::Leased,
        State::Retry,
        State::Dead,
        State::Done,
    ];

    /// `"ready"`, `"leased"`, `"retry"`, `"dead"` or `"done"`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            State::Ready => "ready",
            State::Leased => "leased",
            State::Retry => "retry",
            State::Dead => "dead",
            State::Done => "done",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for State {
    type Err = InboxError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        State::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| {
                InboxError::new("unknown state (expected ready, leased, retry, dead or done)")
            })
    }
}

/// An event to store, as the receiver hands it to [`Inbox::insert`].
#[derive(Clone, PartialEq, Eq)]
pub struct NewEntry {
    /// The event's identity: a copy with the same key is not stored again.
    pub key: DedupeKey,
    /// The verified body, byte for byte as Retell sent it.
    pub body: Vec<u8>,
    /// The `event` name when it could be read (for listings).
    pub event: Option<String>,
    /// The ordering scope: `call:<call_id>` or `chat:<chat_id>`, or `None`
    /// for an event that is ordered with nothing.
    pub order: Option<String>,
    /// When the receiver accepted it (Unix milliseconds, the verifier's clock).
    pub received_ms: u64,
    /// `Some(reason)` stores it straight as a dead letter (a verified body the
    /// models cannot read).
    pub dead_reason: Option<String>,
}

impl fmt::Debug for NewEntry {
    // The body is Retell's data: never in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewEntry")
            .field("key", &self.key)
            .field("body_len", &self.body.len())
            .field("event", &self.event)
            .field("order", &self.order)
            .field("received_ms", &self.received_ms)
            .field("dead_reason", &self.dead_reason)
            .finish()
    }
}

impl NewEntry {
    /// The entry of a verified event: its [`DedupeKey`], name and call (or
    /// chat) as the ordering scope. `body` is the raw body it was parsed from.
    #[must_use]
    pub fn for_event(event: &WebhookEvent, body: &[u8], received_ms: u64) -> Self {
        let order = match (event.call(), event.chat()) {
            (Some(call), _) => Some(format!("call:{}", call.call_id)),
            (None, Some(chat)) => Some(format!("chat:{}", chat.chat_id)),
            (None, None) => None,
        };
        Self {
            key: DedupeKey::for_event(event, body),
            body: body.to_vec(),
            event: Some(event.event_name().to_owned()),
            order,
            received_ms,
            dead_reason: None,
        }
    }

    /// The entry of a verified body the models cannot read: keyed by the
    /// body's hash, stored dead with `reason` so it can be replayed after an
    /// upgrade.
    #[must_use]
    pub fn unreadable(body: &[u8], reason: impl Into<String>, received_ms: u64) -> Self {
        Self {
            key: DedupeKey::of_body(body),
            body: body.to_vec(),
            event: None,
            order: None,
            received_ms,
            dead_reason: Some(reason.into()),
        }
    }
}

/// The answer of [`Inbox::insert`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// Stored durably (committed; on disk for `SqliteInbox`).
    Stored,
    /// An entry with this key exists already, in any state: nothing changed.
    Duplicate,
}

/// What a worker asks [`Inbox::lease`] for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRequest {
    /// The most entries to hand out.
    pub max: usize,
    /// How long they stay leased unless extended or settled.
    pub lease: Duration,
    /// Now, Unix milliseconds.
    pub now_ms: u64,
    /// The worker's name (a consumer name in Redis; for listings).
    pub consumer: String,
}

/// One entry handed to a worker: settle it with the `token`.
#[derive(Clone, PartialEq, Eq)]
pub struct Leased {
    /// The event's key.
    pub key: DedupeKey,
    /// This lease's token: [`Inbox::ack`], [`Inbox::fail`],
    /// [`Inbox::extend`] and [`Inbox::release`] act only while it holds.
    pub token: u64,
    /// The original body.
    pub body: Vec<u8>,
    /// The `event` name when it could be read.
    pub event: Option<String>,
    /// When the receiver accepted it (Unix milliseconds).
    pub received_ms: u64,
    /// Earlier attempts that failed (0 on the first run).
    pub attempts: u32,
}

impl fmt::Debug for Leased {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Leased")
            .field("key", &self.key)
            .field("body_len", &self.body.len())
            .field("event", &self.event)
            .field("received_ms", &self.received_ms)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

/// How an attempt failed, for [`Inbox::fail`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Why (the handler's error, "panicked", "timed out"); kept with the entry.
    pub error: String,
    /// When to try again (Unix milliseconds), or `None` to make it dead.
    pub retry_at_ms: Option<u64>,
}

/// Which entries [`Inbox::replay`] makes ready again (attempts reset to 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replay {
    /// One entry, in any state but leased.
    Key(DedupeKey),
    /// Every dead letter, or those received at or after `since_ms`.
    Dead {
        /// Only entries received at or after this instant (Unix milliseconds).
        since_ms: Option<u64>,
    },
    /// Every entry but leased ones received in `[from_ms, to_ms)`: a range
    /// processed with a bug, run again once it is fixed.
    Received {
        /// Inclusive lower bound (Unix milliseconds).
        from_ms: u64,
        /// Exclusive upper bound (Unix milliseconds).
        to_ms: u64,
    },
}

/// One entry as listed or shown (without its body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The event's key.
    pub key: DedupeKey,
    /// Its state.
    pub state: State,
    /// The `event` name when it could be read.
    pub event: Option<String>,
    /// The ordering scope (`call:<id>`, `chat:<id>`).
    pub order: Option<String>,
    /// When the receiver accepted it (Unix milliseconds).
    pub received_ms: u64,
    /// Attempts that failed so far.
    pub attempts: u32,
    /// When a retry is due or a lease ends (Unix milliseconds), for
    /// [`Retry`](State::Retry) and [`Leased`](State::Leased).
    pub due_ms: Option<u64>,
    /// The last failure's message (or why it was dead on arrival).
    pub last_error: Option<String>,
    /// The body's length in bytes.
    pub body_len: u64,
}

/// What [`Inbox::show`] returns: the entry and its body.
pub type Shown = (Entry, Vec<u8>);

/// Which entries [`Inbox::list`] returns, oldest received first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListFilter {
    /// Only this state.
    pub state: Option<State>,
    /// Only entries received at or after this instant (Unix milliseconds).
    pub since_ms: Option<u64>,
    /// At most this many.
    pub limit: usize,
}

impl Default for ListFilter {
    fn default() -> Self {
        Self {
            state: None,
            since_ms: None,
            limit: 100,
        }
    }
}

/// Counts by state, from [`Inbox::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Ready entries.
    pub ready: u64,
    /// Leased entries.
    pub leased: u64,
    /// Entries waiting for a retry.
    pub retry: u64,
    /// Dead letters.
    pub dead: u64,
    /// Processed entries still kept.
    pub done: u64,
    /// When the oldest ready entry was received (Unix milliseconds): how far
    /// behind the workers are.
    pub oldest_ready_ms: Option<u64>,
}

impl Stats {
    /// The count of one state.
    #[must_use]
    pub fn count(&self, state: State) -> u64 {
        match state {
            State::Ready => self.ready,
            State::Leased => self.leased,
            State::Retry => self.retry,
            State::Dead => self.dead,
            State::Done => self.done,
        }
    }
}

/// A store failure. The receiver answers `503` (Retell retries); a worker
/// backs off and tries again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("inbox store failed: {0}")]
pub struct InboxError(pub String);

impl InboxError {
    /// An error with this message (never a key, a URL password or a body).
    #[must_use]
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// Where stored events live. See the [module docs](self) for the states.
///
/// Every method that takes a `token` acts only while that token still holds
/// the entry's lease, and says whether it did: a worker whose lease ran out
/// cannot settle an entry another worker took since.
pub trait Inbox: Send + Sync {
    /// Stores `entry` unless its key is stored already. `Ok(Stored)` only
    /// once the entry is durable (committed).
    fn insert(&self, entry: NewEntry) -> StoreFuture<'_, Result<Inserted, InboxError>>;

    /// Leases up to `request.max` entries that are due: ready, retries whose
    /// time has come, and leased entries whose lease ran out; with per-call
    /// order, only the oldest unfinished entry of each call.
    fn lease(&self, request: LeaseRequest) -> StoreFuture<'_, Result<Vec<Leased>, InboxError>>;

    /// Extends a lease to `now_ms + lease`.
    fn extend<'a>(
        &'a self,
        key: &'a DedupeKey,
        token: u64,
        lease: Duration,
        now_ms: u64,
    ) -> StoreFuture<'a, Result<bool, InboxError>>;

    /// Marks the entry processed.
    fn ack<'a>(
        &'a self,
        key: &'a DedupeKey,
        token: u64,
        now_ms: u64,
    ) -> StoreFuture<'a, Result<bool, InboxError>>;

    /// Records a failed attempt: a retry at `failure.retry_at_ms`, or dead.
    fn fail<'a>(
        &'a self,
        key: &'a DedupeKey,
        token: u64,
        failure: Failure,
        now_ms: u64,
    ) -> StoreFuture<'a, Result<bool, InboxError>>;

    /// Gives a lease back without counting an attempt (a worker shutting
    /// down): the entry is ready at once.
    fn release<'a>(
        &'a self,
        key: &'a DedupeKey,
        token: u64,
    ) -> StoreFuture<'a, Result<bool, InboxError>>;

    /// Makes entries ready again with their attempts reset; returns how many.
    fn replay(&self, which: Replay, now_ms: u64) -> StoreFuture<'_, Result<u64, InboxError>>;

    /// Lists entries, oldest received first.
    fn list(&self, filter: ListFilter) -> StoreFuture<'_, Result<Vec<Entry>, InboxError>>;

    /// One entry and its body.
    fn show<'a>(&'a self, key: &'a DedupeKey)
    -> StoreFuture<'a, Result<Option<Shown>, InboxError>>;

    /// Counts by state.
    fn stats(&self, now_ms: u64) -> StoreFuture<'_, Result<Stats, InboxError>>;

    /// Deletes processed entries received before `before_ms`; returns how
    /// many. A pruned event is forgotten: a copy of it would be stored again.
    fn prune(&self, before_ms: u64) -> StoreFuture<'_, Result<u64, InboxError>>;

    /// Whether an entry with this key is stored, in any state (a pruned
    /// entry is not). The default asks [`show`](Self::show), which also
    /// reads the body: stores override it with a cheaper lookup.
    fn contains<'a>(&'a self, key: &'a DedupeKey) -> StoreFuture<'a, Result<bool, InboxError>> {
        Box::pin(async move { Ok(self.show(key).await?.is_some()) })
    }

    /// The watermark `name` (Unix milliseconds), or `None` if it was never
    /// set. A backfill (module `backfill`, feature `api`) keeps how far it has stored
    /// everything here, in the same store as the events it stored.
    ///
    /// The default fails: a store of your own that keeps no watermarks
    /// works for everything but a backfill that resumes on its own.
    fn watermark<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Result<Option<u64>, InboxError>> {
        let _ = name;
        Box::pin(async { Err(no_watermarks()) })
    }

    /// Raises the watermark `name` to `ms`, never lowering it (two
    /// backfills racing each keep what they stored); returns the value now
    /// stored. Durable as [`insert`](Self::insert) is.
    ///
    /// The default fails, as [`watermark`](Self::watermark) does.
    fn advance_watermark<'a>(
        &'a self,
        name: &'a str,
        ms: u64,
    ) -> StoreFuture<'a, Result<u64, InboxError>> {
        let _ = (name, ms);
        Box::pin(async { Err(no_watermarks()) })
    }

    /// Completes when new entries may be ready (an insert in this process),
    /// or after `timeout`: workers wait on it between polls. The default
    /// just waits for `timeout`.
    fn wait_for_work(&self, timeout: Duration) -> StoreFuture<'_, ()> {
        Box::pin(tokio::time::sleep(timeout))
    }
}

impl<T: Inbox + ?Sized> Inbox for Arc<T> {
    fn insert(&self, entry: NewEntry) -> StoreFuture<'_, Result<Inserted, InboxError>> {
        (**self).insert(entry)
    }
    fn lease(&self, request: LeaseRequest) -> StoreFuture<'_, Result<Vec<Leased>, InboxError>> {
        (**self).lease(request)
    }
    fn extend<'a>(
        &'a self,
        key: &'a DedupeKey,
        token: u64,
        lease: Duration,
        now_ms: u64,
    ) -> StoreFuture<'a, Result<bool, InboxError>> {
        (**self).extend(key, token, lease, now_ms)
    }
    fn ack<'a>(
        &'a self,
        key: &'a DedupeKey,
        token: u64,
        now_ms: u64,
    ) -> StoreFuture<'a, Result<bool, InboxError>> {
        (**self).ack(key, token, now_ms)
    }
    fn fail<'a>(
        &'a self,
        key: &'a DedupeKey,
        token: u64,
        failure: Failure,
        now_ms: u64,
    ) -> StoreFuture<'a, Result<bool, InboxError>> {
        (**self).fail(key, token, failure, now_ms)
    }
    fn release<'a>(
        &'a self,
        key: &'a DedupeKey,
        token: u64,
    ) -> StoreFuture<'a, Result<bool, InboxError>> {
        (**self).release(key, token)
    }
    fn replay(&self, which: Replay, now_ms: u64) -> StoreFuture<'_, Result<u64, InboxError>> {
        (**self).replay(which, now_ms)
    }
    fn list(&self, filter: ListFilter) -> StoreFuture<'_, Result<Vec<Entry>, InboxError>> {
        (**self).list(filter)
    }
    fn show<'a>(
        &'a self,
        key: &'a DedupeKey,
    ) -> StoreFuture<'a, Result<Option<Shown>, InboxError>> {
        (**self).show(key)
    }
    fn stats(&self, now_ms: u64) -> StoreFuture<'_, Result<Stats, InboxError>> {
        (**self).stats(now_ms)
    }
    fn prune(&self, before_ms: u64) -> StoreFuture<'_, Result<u64, InboxError>> {
        (**self).prune(before_ms)
    }
    fn contains<'a>(&'a self, key: &'a DedupeKey) -> StoreFuture<'a, Result<bool, InboxError>> {
        (**self).contains(key)
    }
    fn watermark<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Result<Option<u64>, InboxError>> {
        (**self).watermark(name)
    }
    fn advance_watermark<'a>(
        &'a self,
        name: &'a str,
        ms: u64,
    ) -> StoreFuture<'a, Result<u64, InboxError>> {
        (**self).advance_watermark(name, ms)
    }
    fn wait_for_work(&self, timeout: Duration) -> StoreFuture<'_, ()> {
        (**self).wait_for_work(timeout)
    }
}

fn no_watermarks() -> InboxError {
    InboxError::new("this store keeps no watermarks")
}
