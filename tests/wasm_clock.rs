//! The one injected clock that makes the core usable where the standard
//! library has no clock (`wasm32-unknown-unknown`): `Verifier::with_clock`,
//! which the `Receiver` and its dedupe store read too (`MemoryDedupe` reads
//! no clock of its own). Native, deterministic, no sleeps.
//!
//! The injected times are far from the real date (2001), so a method that read
//! the system clock instead would fail the window check.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use retell_webhooks::dedupe::{Begin, DedupeKey, MemoryDedupe};
use retell_webhooks::receiver::{RawRequest, Reason};
use retell_webhooks::{
    CallEvent, Incoming, Receiver, ReceiverConfig, RouteKind, Verifier, VerifyError, WebhookEvent,
    WebhookHandler, sign,
};

const KEY: &str = "test-api-key";
/// 2001-09-09, years away from any real system clock.
const T0: u64 = 1_000_000_000_000;
const SIX_MINUTES_MS: u64 = 6 * 60 * 1000;
const BODY: &[u8] = br#"{"event":"call_ended","call":{"call_id":"c1"}}"#;

/// A clock the test moves by hand.
fn manual_clock(start: u64) -> (Arc<AtomicU64>, impl Fn() -> u64 + Send + Sync + 'static) {
    let now = Arc::new(AtomicU64::new(start));
    let read = Arc::clone(&now);
    (now, move || read.load(Ordering::SeqCst))
}

#[test]
fn verify_accepts_a_body_signed_at_the_injected_time() {
    let verifier = Verifier::new(KEY).unwrap().with_clock(|| T0);
    assert_eq!(verifier.verify(BODY, sign(BODY, KEY, T0)), Ok(()));
    assert_eq!(verifier.now_ms(), Ok(T0));
}

#[test]
fn verify_rejects_a_body_signed_six_minutes_before_the_injected_time() {
    let verifier = Verifier::new(KEY).unwrap().with_clock(|| T0);
    let stale = sign(BODY, KEY, T0 - SIX_MINUTES_MS);
    assert_eq!(
        verifier.verify(BODY, &stale),
        Err(VerifyError::TooOld {
            skew_ms: SIX_MINUTES_MS,
            tolerance_ms: 300_000,
            looks_like_seconds: false,
        })
    );
}

/// Fails if `verify` ignores the injected clock: the same header passes or
/// fails only according to where the test moves the clock, and the clock is
/// read once per call.
#[test]
fn verify_follows_the_injected_clock_on_every_call() {
    let (now, clock) = manual_clock(T0);
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let verifier = Verifier::new(KEY).unwrap().with_clock(move || {
        counted.fetch_add(1, Ordering::SeqCst);
        clock()
    });
    let header = sign(BODY, KEY, T0);

    assert_eq!(verifier.verify(BODY, &header), Ok(()));
    now.store(T0 + 300_000, Ordering::SeqCst);
    assert_eq!(verifier.verify(BODY, &header), Ok(()));
    now.store(T0 + 300_001, Ordering::SeqCst);
    assert!(matches!(
        verifier.verify(BODY, &header),
        Err(VerifyError::TooOld {
            skew_ms: 300_001,
            ..
        })
    ));
    now.store(T0 - 300_001, Ordering::SeqCst);
    assert!(matches!(
        verifier.verify(BODY, &header),
        Err(VerifyError::TooNew {
            skew_ms: 300_001,
            ..
        })
    ));
    assert_eq!(calls.load(Ordering::SeqCst), 4);

    // The `_at` methods take the time as an argument and read no clock.
    assert_eq!(verifier.verify_at(BODY, &header, T0), Ok(()));
    assert_eq!(calls.load(Ordering::SeqCst), 4);
}

#[test]
fn verify_and_parse_and_clones_use_the_injected_clock() {
    let (now, clock) = manual_clock(T0);
    let verifier = Verifier::new(KEY).unwrap().with_clock(clock);
    let clone = verifier.clone();
    let header = sign(BODY, KEY, T0);

    assert!(matches!(
        clone.verify_and_parse::<WebhookEvent>(BODY, &header),
        Ok(WebhookEvent::CallEnded(_))
    ));
    assert!(verifier.verify_and_parse::<Incoming>(BODY, &header).is_ok());
    now.store(T0 + SIX_MINUTES_MS, Ordering::SeqCst);
    assert!(
        clone
            .verify_and_parse::<WebhookEvent>(BODY, &header)
            .is_err()
    );
    assert!(
        verifier
            .verify_and_parse::<Incoming>(BODY, &header)
            .is_err()
    );
}

#[test]
fn a_tolerance_set_after_the_clock_keeps_the_clock() {
    let verifier = Verifier::new(KEY)
        .unwrap()
        .with_clock(|| T0)
        .with_tolerance(Duration::from_secs(400));
    assert_eq!(
        verifier.verify(BODY, sign(BODY, KEY, T0 - SIX_MINUTES_MS)),
        Ok(())
    );
}

#[test]
fn debug_names_the_clock_and_never_the_key() {
    let system = format!("{:?}", Verifier::new(KEY).unwrap());
    let custom = format!("{:?}", Verifier::new(KEY).unwrap().with_clock(|| T0));
    assert!(system.contains("clock: system"), "{system}");
    assert!(custom.contains("clock: custom"), "{custom}");
    for text in [&system, &custom] {
        assert!(text.contains("REDACTED"), "{text}");
        assert!(!text.contains(KEY), "{text}");
    }
}

const TTL_MS: u64 = 60_000;
const LEASE: Duration = Duration::from_secs(10);

fn key() -> DedupeKey {
    DedupeKey::of_body(BODY)
}

#[test]
fn memory_dedupe_expires_a_done_key_exactly_at_the_given_ttl() {
    let store = MemoryDedupe::with_limits(100, Duration::from_millis(TTL_MS));
    let Ok(Begin::Fresh(ticket)) = store.begin_at(&key(), LEASE, T0) else {
        panic!("first delivery was not fresh")
    };
    let done_at = T0 + 1_234;
    assert!(store.finish_at(&key(), ticket, done_at));
    assert_eq!(
        store.begin_at(&key(), LEASE, done_at + TTL_MS - 1),
        Ok(Begin::Done)
    );
    assert_eq!(store.len(), 1);
    assert!(matches!(
        store.begin_at(&key(), LEASE, done_at + TTL_MS),
        Ok(Begin::Fresh(_))
    ));
}

#[test]
fn memory_dedupe_lease_ends_at_the_given_time() {
    let store = MemoryDedupe::new();
    assert!(matches!(
        store.begin_at(&key(), LEASE, T0),
        Ok(Begin::Fresh(_))
    ));
    assert_eq!(
        store.begin_at(&key(), LEASE, T0 + 9_999),
        Ok(Begin::InFlight)
    );
    assert!(matches!(
        store.begin_at(&key(), LEASE, T0 + 10_000),
        Ok(Begin::Fresh(_))
    ));
}

/// Polls a future that must be ready at once (no handler here waits).
fn ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the future was not ready"),
    }
}

/// Counts the events it handles.
struct Counting(AtomicUsize);

impl WebhookHandler for Counting {
    type Error = std::convert::Infallible;

    async fn on_call_ended(&self, _: CallEvent) -> Result<(), Self::Error> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// Sends `BODY`, signed at the clock's current time, through `receiver`.
fn deliver(receiver: &Receiver, handler: &Counting, now: &AtomicU64) -> (u16, Reason) {
    let header = sign(BODY, KEY, now.load(Ordering::SeqCst));
    let request = RawRequest::post(BODY).signature_values([header.as_bytes()]);
    let done = ready(
        receiver.dispatch(handler, RouteKind::Events, &request, |_| {
            std::future::pending()
        }),
    );
    (done.response.status(), done.outcome.reason)
}

/// The receiver reads the verifier's clock, not one of its own: a body signed
/// at the injected instant (years from the system clock) is handled.
#[test]
fn the_receiver_accepts_a_body_signed_at_its_verifiers_time() {
    let verifier = Verifier::new(KEY).unwrap().with_clock(|| T0);
    let receiver = Receiver::new(verifier, ReceiverConfig::new());
    let handler = Counting(AtomicUsize::new(0));
    let (status, reason) = deliver(&receiver, &handler, &AtomicU64::new(T0));
    assert_eq!((status, reason), (204, Reason::Handled));
    assert_eq!(handler.0.load(Ordering::SeqCst), 1);
}

/// The receiver's dedupe store counts its TTL by the verifier's clock: a copy
/// within the TTL is a duplicate, one at the TTL is handled again.
#[test]
fn the_receivers_dedupe_follows_the_verifiers_clock() {
    let (now, clock) = manual_clock(T0);
    let verifier = Verifier::new(KEY).unwrap().with_clock(clock);
    let store = MemoryDedupe::with_limits(100, Duration::from_millis(TTL_MS));
    let receiver = Receiver::new(verifier, ReceiverConfig::new().with_dedupe(store));
    let handler = Counting(AtomicUsize::new(0));

    assert_eq!(deliver(&receiver, &handler, &now), (204, Reason::Handled));
    now.store(T0 + TTL_MS - 1, Ordering::SeqCst);
    assert_eq!(deliver(&receiver, &handler, &now), (204, Reason::Duplicate));
    now.store(T0 + TTL_MS, Ordering::SeqCst);
    assert_eq!(deliver(&receiver, &handler, &now), (204, Reason::Handled));
    assert_eq!(handler.0.load(Ordering::SeqCst), 2);
}
