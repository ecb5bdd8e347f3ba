//! Property tests for signing and verification.
//!
//! Case counts keep the whole file fast in a debug build: many cases with small
//! bodies (the ≥ 10 000-case round trip), fewer with bodies up to 64 KiB.

use std::time::Duration;

use proptest::prelude::*;
use retell_webhooks::{Signature, Verifier, VerifyError, sign};

const TOLERANCE_MS: u64 = 300_000;

/// A key of 1..=128 printable ASCII characters that does not start or end with
/// a space.
fn key() -> impl Strategy<Value = String> {
    "[!-~]([ -~]{0,126}[!-~])?"
}

/// A plausible "now": anywhere from 2001 to 2286 in Unix milliseconds.
fn now() -> impl Strategy<Value = u64> {
    1_000_000_000_000u64..10_000_000_000_000
}

/// A timestamp inside the window around `now` (boundaries included).
fn now_and_ts() -> impl Strategy<Value = (u64, u64)> {
    (now(), -(TOLERANCE_MS as i64)..=TOLERANCE_MS as i64)
        .prop_map(|(now, skew)| (now, now.saturating_add_signed(skew)))
}

fn body(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..=max)
}

/// Replaces the hex digit at `pos` with a digit of a different value.
fn change_hex_digit(header: &str, pos: usize, delta: u8) -> String {
    let start = header.len() - 64;
    let idx = start + pos;
    let old = u8::from_str_radix(&header[idx..=idx], 16).unwrap();
    let new = (old + delta) % 16;
    assert_ne!(old, new);
    let mut out = header.to_owned();
    out.replace_range(idx..=idx, &format!("{new:x}"));
    out
}

/// Checks the whole round trip and the three tamperings for one input.
fn round_trip_and_tamper(
    key: &str,
    body: &[u8],
    now: u64,
    ts: u64,
    (byte_pick, flip, hex_pos, hex_delta): (usize, u8, usize, u8),
) -> Result<(), TestCaseError> {
    let verifier = Verifier::new(key).unwrap();
    let header = sign(body, key, ts);
    prop_assert_eq!(verifier.verify_at(body, &header, now), Ok(()));

    // Any single-byte change of the body (or one extra byte when empty).
    let mut tampered = body.to_vec();
    if tampered.is_empty() {
        tampered.push(flip);
    } else {
        let i = byte_pick % tampered.len();
        tampered[i] ^= flip;
    }
    prop_assert_eq!(
        verifier.verify_at(&tampered, &header, now),
        Err(VerifyError::Mismatch)
    );

    // Any change of one digest hex digit.
    let changed = change_hex_digit(&header, hex_pos, hex_delta);
    prop_assert_eq!(
        verifier.verify_at(body, &changed, now),
        Err(VerifyError::Mismatch)
    );

    // `v` moved by one without re-signing; the window is widened by one so the
    // check reaches the MAC even at the boundary.
    let digest = &header[header.len() - 64..];
    let wide = verifier
        .clone()
        .with_tolerance(Duration::from_millis(TOLERANCE_MS + 1));
    for moved in [ts - 1, ts + 1] {
        let shifted = format!("v={moved},d={digest}");
        prop_assert_eq!(
            wide.verify_at(body, &shifted, now),
            Err(VerifyError::Mismatch)
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    /// Bodies up to 1 KiB: a signature made inside the window verifies, and a
    /// changed body byte, digest digit or timestamp is a mismatch.
    #[test]
    fn round_trip_small_bodies(
        key in key(),
        body in body(1024),
        (now, ts) in now_and_ts(),
        byte_pick in any::<usize>(),
        flip in 1u8..=255,
        hex_pos in 0usize..64,
        hex_delta in 1u8..16,
    ) {
        round_trip_and_tamper(&key, &body, now, ts, (byte_pick, flip, hex_pos, hex_delta))?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The same with bodies up to 64 KiB.
    #[test]
    fn round_trip_large_bodies(
        key in key(),
        body in body(64 * 1024),
        (now, ts) in now_and_ts(),
        byte_pick in any::<usize>(),
        flip in 1u8..=255,
        hex_pos in 0usize..64,
        hex_delta in 1u8..16,
    ) {
        round_trip_and_tamper(&key, &body, now, ts, (byte_pick, flip, hex_pos, hex_delta))?;
    }

    /// Several keys: a signature with any one of them passes, with none fails.
    #[test]
    fn rotation(
        keys in proptest::collection::vec(key(), 1..5),
        pick in any::<usize>(),
        body in body(256),
        (now, ts) in now_and_ts(),
    ) {
        let verifier = Verifier::with_keys(&keys).unwrap();
        let chosen = &keys[pick % keys.len()];
        prop_assert_eq!(verifier.verify_at(&body, sign(&body, chosen, ts), now), Ok(()));
        let outsider = format!("{chosen}-not-configured");
        prop_assume!(!keys.contains(&outsider));
        prop_assert_eq!(
            verifier.verify_at(&body, sign(&body, &outsider, ts), now),
            Err(VerifyError::Mismatch)
        );
    }

    /// Outside the window the error names the direction, whatever the digest.
    #[test]
    fn window_outside_rejected(
        now in now(),
        skew in (TOLERANCE_MS + 1)..=1_000_000_000_000u64,
        past in any::<bool>(),
        body in body(64),
    ) {
        let verifier = Verifier::new("key").unwrap();
        let ts = if past { now - skew } else { now + skew };
        let result = verifier.verify_at(&body, sign(&body, "key", ts), now);
        if past {
            let is_too_old = matches!(result, Err(VerifyError::TooOld { skew_ms, .. }) if skew_ms == skew);
            prop_assert!(is_too_old, "{:?}", result);
        } else {
            prop_assert_eq!(result, Err(VerifyError::TooNew { skew_ms: skew, tolerance_ms: TOLERANCE_MS }));
        }
    }
}

/// Headers that look almost right, to reach the deeper parsing paths.
fn near_header() -> impl Strategy<Value = String> {
    (
        prop_oneof![Just("v="), Just("V="), Just(""), Just("v"), Just(" v=")],
        "[0-9]{0,20}|[0-9\u{660}-\u{669}+\\-. ]{0,16}",
        prop_oneof![Just(",d="), Just(","), Just(", d="), Just(",D="), Just("")],
        "[0-9a-fA-F]{0,130}|[0-9a-zA-Z\u{e9}\n ]{60,68}",
        prop_oneof![Just(""), Just(" "), Just("\t"), Just("\n"), Just(",x=1")],
    )
        .prop_map(|(a, b, c, d, e)| format!("{a}{b}{c}{d}{e}"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4_096))]

    /// Arbitrary Unicode header values, bodies and clocks never panic.
    #[test]
    fn arbitrary_input_never_panics(
        header in proptest::collection::vec(any::<char>(), 0..=512)
            .prop_map(String::from_iter),
        body in body(4096),
        now in any::<u64>(),
        tolerance in any::<u64>(),
    ) {
        let verifier = Verifier::new("key").unwrap().with_tolerance(Duration::from_millis(tolerance));
        let _ = verifier.verify_at(&body, &header, now);
        let _ = Signature::parse(&header);
    }

    /// Near-valid headers and raw header bytes never panic.
    #[test]
    fn near_valid_input_never_panics(
        header in near_header(),
        raw in proptest::collection::vec(any::<u8>(), 0..=200),
        body in body(1024),
        now in any::<u64>(),
    ) {
        let verifier = Verifier::new("key").unwrap();
        let result = verifier.verify_at(&body, &header, now);
        // Whatever the outcome, it renders without panicking and is never Ok for
        // a random digest (2^-256).
        let _ = format!("{result:?}");
        if let Err(err) = &result {
            let _ = err.to_string();
        }
        let _ = verifier.verify_at(&body, &raw, now);
        if let Ok(sig) = Signature::parse_bytes(&raw) {
            let _ = verifier.digest_matches(&body, &sig);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Bodies up to 64 KiB with headers that parse never panic.
    #[test]
    fn large_bodies_never_panic(
        ts in any::<u64>().prop_map(|t| t % 10_000_000_000_000_000),
        digest in "[0-9a-fA-F]{64}",
        body in body(64 * 1024),
        now in any::<u64>(),
    ) {
        let verifier = Verifier::new("key")
            .unwrap()
            .with_tolerance(Duration::MAX);
        let header = format!("v={ts},d={digest}");
        prop_assert_eq!(verifier.verify_at(&body, &header, now), Err(VerifyError::Mismatch));
    }
}
