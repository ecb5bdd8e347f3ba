//! The injected clocks that make the core usable where the standard library has
//! no clock (`wasm32-unknown-unknown`): `Verifier::with_clock` and
//! `MemoryDedupe::with_clock`. Native, deterministic, no sleeps.
//!
//! The injected times are far from the real date (2001), so a method that read
//! the system clock instead would fail the window check.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use retell_webhooks::dedupe::{Begin, DedupeKey, DedupeStore, MemoryDedupe};
use retell_webhooks::{Verifier, VerifyError, WebhookEvent, sign};

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
    assert_eq!(verifier.verify(BODY, &sign(BODY, KEY, T0)), Ok(()));
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
        clone.verify_and_parse(BODY, &header),
        Ok(WebhookEvent::CallEnded(_))
    ));
    assert!(verifier.verify_and_parse_incoming(BODY, &header).is_ok());
    now.store(T0 + SIX_MINUTES_MS, Ordering::SeqCst);
    assert!(clone.verify_and_parse(BODY, &header).is_err());
    assert!(verifier.verify_and_parse_incoming(BODY, &header).is_err());
}

#[test]
fn a_tolerance_set_after_the_clock_keeps_the_clock() {
    let verifier = Verifier::new(KEY)
        .unwrap()
        .with_clock(|| T0)
        .with_tolerance(Duration::from_secs(400));
    assert_eq!(
        verifier.verify(BODY, &sign(BODY, KEY, T0 - SIX_MINUTES_MS)),
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
    let store = format!("{:?}", MemoryDedupe::new().with_clock(|| 0));
    assert!(store.contains("clock: custom"), "{store}");
    let store = format!("{:?}", MemoryDedupe::new());
    assert!(store.contains("clock: monotonic"), "{store}");
}

const TTL_MS: u64 = 60_000;
const LEASE: Duration = Duration::from_secs(10);

fn key() -> DedupeKey {
    DedupeKey::of_body(BODY)
}

#[test]
fn memory_dedupe_expires_a_done_key_exactly_at_the_injected_ttl() {
    let (now, clock) = manual_clock(T0);
    let store = MemoryDedupe::with_limits(100, Duration::from_millis(TTL_MS)).with_clock(clock);

    let Ok(Begin::Fresh(ticket)) = store.begin_now(&key(), LEASE) else {
        panic!("first delivery was not fresh")
    };
    now.store(T0 + 1_234, Ordering::SeqCst);
    assert!(store.finish_now(&key(), ticket));
    let done_at = T0 + 1_234;

    now.store(done_at + TTL_MS - 1, Ordering::SeqCst);
    assert_eq!(store.begin_now(&key(), LEASE), Ok(Begin::Done));
    assert_eq!(store.len(), 1);
    now.store(done_at + TTL_MS, Ordering::SeqCst);
    assert!(matches!(
        store.begin_now(&key(), LEASE),
        Ok(Begin::Fresh(_))
    ));
}

#[test]
fn memory_dedupe_lease_follows_the_injected_clock() {
    let (now, clock) = manual_clock(T0);
    let store = MemoryDedupe::new().with_clock(clock);
    assert!(matches!(
        store.begin_now(&key(), LEASE),
        Ok(Begin::Fresh(_))
    ));
    now.store(T0 + 9_999, Ordering::SeqCst);
    assert_eq!(store.begin_now(&key(), LEASE), Ok(Begin::InFlight));
    now.store(T0 + 10_000, Ordering::SeqCst);
    assert!(matches!(
        store.begin_now(&key(), LEASE),
        Ok(Begin::Fresh(_))
    ));
}

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

#[test]
fn the_store_trait_uses_the_injected_clock_too() {
    let (now, clock) = manual_clock(0);
    let store: Arc<dyn DedupeStore> =
        Arc::new(MemoryDedupe::with_limits(100, Duration::from_millis(TTL_MS)).with_clock(clock));
    let Ok(Begin::Fresh(ticket)) = ready(store.begin(&key(), LEASE)) else {
        panic!("first delivery was not fresh")
    };
    assert_eq!(ready(store.finish(&key(), ticket)), Ok(()));
    now.store(TTL_MS - 1, Ordering::SeqCst);
    assert_eq!(ready(store.begin(&key(), LEASE)), Ok(Begin::Done));
    now.store(TTL_MS, Ordering::SeqCst);
    let Ok(Begin::Fresh(ticket)) = ready(store.begin(&key(), LEASE)) else {
        panic!("an expired key was not fresh")
    };
    assert_eq!(ready(store.release(&key(), ticket)), Ok(()));
    assert!(matches!(
        ready(store.begin(&key(), LEASE)),
        Ok(Begin::Fresh(_))
    ));
}
