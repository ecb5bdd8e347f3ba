//! Idempotency: process each Retell event once, although Retell delivers it up
//! to four times (the first attempt plus 3 retries when no `2xx` arrives in
//! time), sometimes less than a second apart.
//!
//! Switch it on with [`ReceiverConfig::with_dedupe`](crate::ReceiverConfig::with_dedupe);
//! every adapter and the command-line listener then share the behaviour, since
//! it lives in the [`receiver`](crate::receiver) pipeline (the adapters' ready-made
//! routes; their extractors only verify and parse, and do not deduplicate):
//!
//! | delivery | answer | handler called |
//! |---|---|---|
//! | first time | the handler's (`204`, `500`, `503`) | yes |
//! | again, after a `2xx` | `204` ([`Reason::Duplicate`](crate::receiver::Reason::Duplicate)) | no |
//! | again, while the first is still running | `409` ([`Reason::InFlight`](crate::receiver::Reason::InFlight)), so Retell retries later | no |
//! | again, after the first failed (error, panic, deadline) | the handler's | yes: a failure releases the key |
//!
//! Claiming the key, the handler and recording its verdict share the
//! handler deadline. When the verdict of a success cannot be recorded in
//! time, the `2xx` still goes out and the claim ends with its lease (or when
//! the store completes the late write); a release cut short goes on in the
//! background through [`DedupeStore::abandon`].
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
//! [`DedupeStore`] trait with a store they share. `RedisDedupe` (feature
//! `redis`) keeps the keys in Redis, one Lua script per method; for another
//! store, follow the same protocol:
//!
//! * `begin` claims an absent key atomically, for the lease it is given (the
//!   handler deadline plus a second), with a token of its own that is unique
//!   across replicas (e.g. random): the lease frees the key of a replica that
//!   crashed or whose request was cancelled mid-way;
//! * `finish` and `release` act only while the key still holds the caller's
//!   token ([`Ticket::token`]), so a replica whose lease ran out cannot
//!   finish or free the claim another replica took since;
//! * `abandon` runs in a destructor: it must not wait for the store (spawn
//!   the release, or keep the default and let the lease free the key);
//! * `extend` pushes the lease back while the handler runs (every third of
//!   it), only while the caller's token holds the key; the default renews
//!   nothing, and a handler that outlives the lease may then run beside a
//!   copy;
//! * a `begin` that fails or is dropped after its command left may still
//!   claim the key: release that token once the store answers again, or
//!   copies get `409` until the lease ends;
//! * when the store fails or is slow, return an error within a bound: the
//!   request is answered `503` and Retell retries.
//!
//! ```
//! use retell_webhooks::dedupe::{Begin, DedupeError, DedupeKey, DedupeStore, StoreFuture, Ticket};
//! use std::time::Duration;
//!
//! /// Sketch of a store on a shared database (the client calls are elided).
//! struct SharedDedupe;
//!
//! impl DedupeStore for SharedDedupe {
//!     fn begin<'a>(&'a self, key: &'a DedupeKey, lease: Duration, _now_ms: u64) -> StoreFuture<'a, Result<Begin, DedupeError>> {
//!         Box::pin(async move {
//!             let token = 42; // random per call
//!             let _claim = format!("insert {} {token} until now + {lease:?}, unless present", key.to_hex());
//!             Ok(Begin::Fresh(Ticket::new(token)))
//!         })
//!     }
//!     fn finish<'a>(&'a self, key: &'a DedupeKey, ticket: Ticket, _now_ms: u64) -> StoreFuture<'a, Result<(), DedupeError>> {
//!         Box::pin(async move {
//!             let _mark = format!("mark {} done for 1 h if it holds {}", key.to_hex(), ticket.token());
//!             Ok(())
//!         })
//!     }
//!     fn release<'a>(&'a self, key: &'a DedupeKey, ticket: Ticket) -> StoreFuture<'a, Result<(), DedupeError>> {
//!         Box::pin(async move {
//!             let _delete = format!("delete {} if it holds {}", key.to_hex(), ticket.token());
//!             Ok(())
//!         })
//!     }
//! }
//! ```
//!
//! # Cancelled requests
//!
//! When the client goes away, hyper (under axum and the tower service) drops
//! the request future. The receiver then calls [`DedupeStore::abandon`], a
//! synchronous release callable from a destructor: [`MemoryDedupe`] frees the
//! key at once, so Retell's next attempt is processed, and `RedisDedupe`
//! spawns its release on the current tokio runtime (the key is free one
//! round trip later); a store that keeps the default leaves the key in
//! flight until its lease ends (the handler deadline plus one second), and
//! retries meanwhile get `409` and come again later.
//! actix-web keeps running a handler whose client left, so its key stays
//! claimed by work that is still going on, and its outcome stands.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::{Incoming, WebhookEvent};

mod memory;
#[cfg(feature = "redis")]
mod redis;

#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use self::redis::RedisDedupe;
pub use memory::{DEFAULT_CAPACITY, DEFAULT_TTL, MemoryDedupe};

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

    /// A key from its [`to_hex`](Self::to_hex) form (either case); `None`
    /// unless it is 64 hex digits.
    #[must_use]
    pub fn from_hex(hex: &str) -> Option<Self> {
        let hex = hex.as_bytes();
        if hex.len() != 64 {
            return None;
        }
        let digit = |c: u8| char::from(c).to_digit(16);
        let mut bytes = [0u8; 32];
        for (byte, pair) in bytes.iter_mut().zip(hex.chunks_exact(2)) {
            let high = u8::try_from(digit(pair[0])?).ok()?;
            let low = u8::try_from(digit(pair[1])?).ok()?;
            *byte = high << 4 | low;
        }
        Some(Self(bytes))
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
/// [`Outcome`](crate::receiver::Outcome).
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
    ///
    /// `now_ms` is the delivery's arrival by the receiver's clock (the
    /// [`Verifier`](crate::Verifier)'s, Unix milliseconds): a store that
    /// keeps time itself (`MemoryDedupe`) counts leases and TTLs with it; a
    /// store with its own clock (Redis expiries) may ignore it.
    fn begin<'a>(
        &'a self,
        key: &'a DedupeKey,
        lease: Duration,
        now_ms: u64,
    ) -> StoreFuture<'a, Result<Begin, DedupeError>>;

    /// Marks `key` processed (it is then remembered for the store's TTL,
    /// counted from `now_ms`, the same instant `begin` was given).
    fn finish<'a>(
        &'a self,
        key: &'a DedupeKey,
        ticket: Ticket,
        now_ms: u64,
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

    /// Extends the lease of `key` to `lease` from now if `ticket` still holds
    /// it, and says whether it did. The receiver calls it every third of the
    /// lease while the handler runs, so a slow handler keeps its key and a
    /// copy is never run beside it.
    ///
    /// `Ok(false)` (the claim expired or another holder has the key) stops
    /// the renewal; an error is retried at the next renewal. The default
    /// extends nothing and answers `Ok(false)`: the lease alone then bounds
    /// the claim, as before this method existed.
    fn extend<'a>(
        &'a self,
        key: &'a DedupeKey,
        ticket: Ticket,
        lease: Duration,
        now_ms: u64,
    ) -> StoreFuture<'a, Result<bool, DedupeError>> {
        let _ = (key, ticket, lease, now_ms);
        Box::pin(std::future::ready(Ok(false)))
    }
}

impl<T: DedupeStore + ?Sized> DedupeStore for Arc<T> {
    fn begin<'a>(
        &'a self,
        key: &'a DedupeKey,
        lease: Duration,
        now_ms: u64,
    ) -> StoreFuture<'a, Result<Begin, DedupeError>> {
        (**self).begin(key, lease, now_ms)
    }

    fn finish<'a>(
        &'a self,
        key: &'a DedupeKey,
        ticket: Ticket,
        now_ms: u64,
    ) -> StoreFuture<'a, Result<(), DedupeError>> {
        (**self).finish(key, ticket, now_ms)
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

    fn extend<'a>(
        &'a self,
        key: &'a DedupeKey,
        ticket: Ticket,
        lease: Duration,
        now_ms: u64,
    ) -> StoreFuture<'a, Result<bool, DedupeError>> {
        (**self).extend(key, ticket, lease, now_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(DedupeKey::from_hex(&k(ended).to_hex()), Some(k(ended)));
        assert_eq!(
            DedupeKey::from_hex(&k(ended).to_hex().to_uppercase()),
            Some(k(ended))
        );
        for bad in ["", "00", &"g".repeat(64), &"0".repeat(63), &"é".repeat(32)] {
            assert_eq!(DedupeKey::from_hex(bad), None, "{bad}");
        }
    }
}
