//! Hostile JSON, correctly signed, through every receiver. One table of
//! cases; each row names the property it checks.

use std::sync::atomic::Ordering;

use retell_webhooks::models::{Untyped, UntypedReason};
use retell_webhooks::receiver::Reason;
use serde_json::Value;

use crate::http::Framing;
use crate::receivers::{Behaviour, Receiver, config, signature};

/// A body of 10 000 nested arrays, or any other depth.
fn nested(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

fn call_ended_with(call_fields: &str) -> Vec<u8> {
    format!(r#"{{"event":"call_ended","call":{{"call_id":"c1"{call_fields}}}}}"#).into_bytes()
}

fn with_top_level(extra: &str) -> Vec<u8> {
    format!(r#"{{"event":"call_ended","call":{{"call_id":"c1"}},{extra}}}"#).into_bytes()
}

fn bytes_in_transcript(raw: &[u8]) -> Vec<u8> {
    let mut body = br#"{"event":"call_ended","call":{"call_id":"c1","transcript":"a"#.to_vec();
    body.extend_from_slice(raw);
    body.extend_from_slice(br#""}}"#);
    body
}

fn metadata_object(keys: usize) -> Vec<u8> {
    let mut body = String::with_capacity(keys * 14 + 64);
    body.push_str(r#"{"event":"call_ended","call":{"call_id":"c1","metadata":{"#);
    for i in 0..keys {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&format!(r#""k{i}":{i}"#));
    }
    body.push_str("}}}");
    body.into_bytes()
}

const CALL_ENDED: &[u8] = br#"{"event":"call_ended","call":{"call_id":"c1"}}"#;

/// The property each row of [`cases`] checks.
const DEEP: &str = "deep nesting is refused, not a crash";
const DEPTH: &str = "the deepest nesting accepted";
const BEYOND_F64: &str = "a number beyond f64 is refused";
const NUMBER_EDGES: &str = "a tiny number reads as 0, a long one is refused";
const LENIENT_INTEGERS: &str =
    "an integer field takes an integral float, and keeps what does not fit";
const DUPLICATE_KEY: &str = "a duplicated key is refused";
const INVALID_UTF8: &str = "invalid UTF-8 is refused";
const BOM: &str = "a byte order mark is refused";
const TRAILING: &str = "trailing data is refused, trailing whitespace is not";
const SURROGATE_NUL: &str = "a lone surrogate is refused, an escaped NUL is kept";
const CONTROL: &str = "a raw control character in a string is refused";
const NOT_JSON: &str = "what JSON does not allow is refused";
const WRONG_SHAPE: &str = "a body of the wrong shape is refused";

/// `duration_ms` values that do not fit the field (`u64`) but are valid JSON:
/// the call is delivered with `duration_ms` as `None` and the value kept as a
/// fallback. `(what, raw JSON)`.
const DRIFTED_DURATIONS: [(&str, &str); 7] = [
    ("duration_ms 2^64 (out of range)", "18446744073709551616"),
    ("duration_ms -1", "-1"),
    ("duration_ms 1.5", "1.5"),
    ("duration_ms 1e20 (out of range)", "1e20"),
    ("duration_ms a string", r#""12""#),
    ("duration_ms an object", r#"{"ms":12}"#),
    ("duration_ms a list", "[12]"),
];

/// `(property, what, body, expected status)`.
fn cases() -> Vec<(&'static str, &'static str, Vec<u8>, u16)> {
    let latency = |n: &str| call_ended_with(&format!(r#","latency":{{"e2e":{{"p50":{n}}}}}"#));
    let duration = |n: &str| call_ended_with(&format!(r#","duration_ms":{n}"#));
    let cost = |n: &str| {
        call_ended_with(&format!(
            r#","call_cost":{{"combined_cost":{n},"product_costs":[],"total_duration_seconds":1,"total_duration_unit_price":1}}"#
        ))
    };
    vec![
        (
            DEEP,
            "10 000-deep array in metadata",
            call_ended_with(&format!(r#","metadata":{}"#, nested(10_000))),
            400,
        ),
        // Unknown keys are kept losslessly as `serde_json::Value`, which has
        // serde_json's depth limit: lossless forwarding beats unlimited depth,
        // so a deep unknown key is a 400 too.
        (
            DEEP,
            "10 000-deep array in an unknown top-level key",
            with_top_level(&format!(r#""x":{}"#, nested(10_000))),
            400,
        ),
        (
            DEEP,
            "10 000-deep array in an unknown call key",
            call_ended_with(&format!(r#","x":{}"#, nested(10_000))),
            400,
        ),
        (
            DEPTH,
            "metadata 125 arrays deep (the deepest accepted)",
            call_ended_with(&format!(r#","metadata":{}"#, nested(125))),
            204,
        ),
        (
            DEPTH,
            "metadata 126 arrays deep",
            call_ended_with(&format!(r#","metadata":{}"#, nested(126))),
            400,
        ),
        (
            DEPTH,
            "unknown top-level key 126 deep (the deepest accepted)",
            with_top_level(&format!(r#""x":{}"#, nested(126))),
            204,
        ),
        (
            DEPTH,
            "unknown top-level key 127 deep",
            with_top_level(&format!(r#""x":{}"#, nested(127))),
            400,
        ),
        // Outside the range of f64: serde_json cannot read it, so it is a 400
        // wherever it is, typed fields included (no fallback can keep it).
        (
            BEYOND_F64,
            "1e400 in call_cost.combined_cost",
            cost("1e400"),
            400,
        ),
        (BEYOND_F64, "1e400 in duration_ms", duration("1e400"), 400),
        (
            BEYOND_F64,
            "1e400 in metadata",
            call_ended_with(r#","metadata":{"a":1e400}"#),
            400,
        ),
        // As with depth: unknown keys are parsed into `Value` too.
        (
            BEYOND_F64,
            "1e400 in an unknown key",
            with_top_level(r#""x":1e400"#),
            400,
        ),
        (NUMBER_EDGES, "-1e400", latency("-1e400"), 400),
        (
            NUMBER_EDGES,
            "1e-400 underflows to 0.0",
            latency("1e-400"),
            204,
        ),
        (
            NUMBER_EDGES,
            "1 followed by 1 000 000 zeros",
            latency(&format!("1{}", "0".repeat(1_000_000))),
            400,
        ),
        (
            LENIENT_INTEGERS,
            "duration_ms 1e3 (integral float accepted)",
            duration("1e3"),
            204,
        ),
        (
            LENIENT_INTEGERS,
            "duration_ms 1000.0 (integral float accepted)",
            duration("1000.0"),
            204,
        ),
        (
            DUPLICATE_KEY,
            "duplicate top-level event",
            br#"{"event":"call_started","event":"call_ended","call":{"call_id":"c1"}}"#.to_vec(),
            400,
        ),
        (
            DUPLICATE_KEY,
            "duplicate call_id",
            br#"{"event":"call_ended","call":{"call_id":"a","call_id":"b"}}"#.to_vec(),
            400,
        ),
        (
            DUPLICATE_KEY,
            "duplicate key inside metadata",
            call_ended_with(r#","metadata":{"k":1,"k":2}"#),
            400,
        ),
        (
            DUPLICATE_KEY,
            "duplicate key inside an unknown call key",
            call_ended_with(r#","x":{"k":1,"k":2}"#),
            400,
        ),
        (
            DUPLICATE_KEY,
            "duplicate key inside a drifted field",
            call_ended_with(r#","duration_ms":{"k":1,"k":2}"#),
            400,
        ),
        (
            DUPLICATE_KEY,
            "duplicate key in a transcript item",
            call_ended_with(
                r#","transcript_object":[{"role":"agent","content":"a","content":"b"}]"#,
            ),
            400,
        ),
        (
            DUPLICATE_KEY,
            "duplicate duration_ms, both drifted",
            call_ended_with(r#","duration_ms":"1","duration_ms":"2""#),
            400,
        ),
        (
            INVALID_UTF8,
            "overlong UTF-8 C0 AF",
            bytes_in_transcript(b"\xC0\xAF"),
            400,
        ),
        (
            INVALID_UTF8,
            "surrogate bytes ED A0 80",
            bytes_in_transcript(b"\xED\xA0\x80"),
            400,
        ),
        (
            INVALID_UTF8,
            "0xFF in an unknown key",
            with_top_level("\"x\":\"\u{0}\"")
                .iter()
                .map(|&b| if b == 0 { 0xFF } else { b })
                .collect(),
            400,
        ),
        (
            BOM,
            "BOM before the object",
            [&b"\xEF\xBB\xBF"[..], CALL_ENDED].concat(),
            400,
        ),
        (
            TRAILING,
            "trailing garbage",
            [CALL_ENDED, b" xyz"].concat(),
            400,
        ),
        (
            TRAILING,
            "two objects",
            [CALL_ENDED, CALL_ENDED].concat(),
            400,
        ),
        (
            TRAILING,
            "trailing whitespace",
            [CALL_ENDED, b"\r\n  "].concat(),
            204,
        ),
        (
            SURROGATE_NUL,
            "lone surrogate escape",
            call_ended_with(r#","transcript":"\ud800""#),
            400,
        ),
        (
            SURROGATE_NUL,
            "escaped NUL reaches the handler",
            call_ended_with(r#","transcript":"a\u0000b""#),
            204,
        ),
        (
            CONTROL,
            "raw 0x00 in a string",
            bytes_in_transcript(b"\x00"),
            400,
        ),
        (
            CONTROL,
            "raw 0x1F in a string",
            bytes_in_transcript(b"\x1F"),
            400,
        ),
        (NOT_JSON, "NaN", duration("NaN"), 400),
        (NOT_JSON, "Infinity", duration("Infinity"), 400),
        (
            NOT_JSON,
            "line comment",
            br#"{"event":"call_ended", // c
 "call":{"call_id":"c1"}}"#
                .to_vec(),
            400,
        ),
        (
            NOT_JSON,
            "block comment",
            br#"{"event":"call_ended", /* c */ "call":{"call_id":"c1"}}"#.to_vec(),
            400,
        ),
        (
            NOT_JSON,
            "trailing comma",
            br#"{"event":"call_ended","call":{"call_id":"c1"},}"#.to_vec(),
            400,
        ),
        (
            NOT_JSON,
            "single quotes",
            br#"{'event':'call_ended'}"#.to_vec(),
            400,
        ),
        (WRONG_SHAPE, "null", b"null".to_vec(), 400),
        (WRONG_SHAPE, "[]", b"[]".to_vec(), 400),
        (WRONG_SHAPE, "string", br#""s""#.to_vec(), 400),
        (WRONG_SHAPE, "number", b"42".to_vec(), 400),
        (WRONG_SHAPE, "{} (no event)", b"{}".to_vec(), 400),
        (
            WRONG_SHAPE,
            "event is a number",
            br#"{"event":5}"#.to_vec(),
            400,
        ),
        (
            WRONG_SHAPE,
            "call without call_id",
            br#"{"event":"call_ended","call":{"duration_ms":1}}"#.to_vec(),
            400,
        ),
        (
            WRONG_SHAPE,
            "call_id is a number",
            br#"{"event":"call_ended","call":{"call_id":7}}"#.to_vec(),
            400,
        ),
    ]
    .into_iter()
    .chain(
        DRIFTED_DURATIONS
            .iter()
            .map(|&(what, raw)| (LENIENT_INTEGERS, what, duration(raw), 204)),
    )
    .collect()
}

/// Checks one call delivered with a drifted `duration_ms`: typed `None`, the
/// raw value kept and reported at its path, and written back as received.
fn assert_drifted_duration(call: &retell_webhooks::Call, raw: &str, what: &str) {
    let kept: Value = serde_json::from_str(raw).unwrap();
    assert_eq!(call.duration_ms, None, "{what}");
    assert!(!call.is_null("duration_ms"), "{what}");
    assert_eq!(
        call.fallback("duration_ms")
            .map(|raw| raw.to_value().unwrap()),
        Some(kept.clone()),
        "{what}"
    );
    assert_eq!(
        call.fallbacks(),
        vec![Untyped {
            path: "duration_ms".to_owned(),
            reason: UntypedReason::Fallback {
                expected: "a non-negative integer"
            },
        }],
        "{what}"
    );
    assert_eq!(
        serde_json::to_value(call).unwrap(),
        serde_json::json!({"call_id": "c1", "duration_ms": kept}),
        "{what}"
    );
}

/// Every row of [`cases`], correctly signed, through every receiver: the
/// expected status, and only the accepted bodies reach the handler.
#[tokio::test]
async fn hostile_json_through_every_receiver() {
    let cases = cases();
    let expected_ok = cases.iter().filter(|c| c.3 == 204).count();
    for receiver in Receiver::all(Behaviour::Ok, &config()).await {
        for (property, what, body, status) in &cases {
            let reply = receiver.post_signed(body).await;
            assert_eq!(
                reply.status,
                *status,
                "{property}: {what} via {}: {}",
                receiver.via,
                String::from_utf8_lossy(&reply.body)
            );
        }
        let probe = &receiver.probe;
        assert_eq!(probe.calls(), expected_ok, "via {}", receiver.via);
        // The drifted durations reached `on_call_ended`, in table order.
        let drifted = probe.drifted.lock().unwrap();
        assert_eq!(
            drifted.len(),
            DRIFTED_DURATIONS.len(),
            "via {}",
            receiver.via
        );
        for (call, (what, raw)) in drifted.iter().zip(DRIFTED_DURATIONS) {
            assert_drifted_duration(call, raw, &format!("{what} via {}", receiver.via));
        }
        drop(drifted);
        // The handler receives the escaped NUL as is (PostgreSQL `text` would
        // refuse it: a handler writing it naively fails on every retry).
        assert!(
            probe
                .transcripts
                .lock()
                .unwrap()
                .iter()
                .any(|t| t == "a\0b"),
            "via {}",
            receiver.via
        );
    }
}

/// A verified body whose known field has drifted to another type is delivered
/// to the typed handler with 204 by every receiver, not to `on_unparsed`; the
/// outcome counts the fallback.
#[tokio::test]
async fn drifted_field_reaches_the_typed_handler() {
    let body = br#"{"event":"call_ended","call":{"call_id":"c1","duration_ms":"12"}}"#;
    for receiver in Receiver::all(Behaviour::Ok, &config()).await {
        let via = receiver.via;
        let reply = receiver.post_signed(body).await;
        assert_eq!(
            reply.status,
            204,
            "via {via}: {}",
            String::from_utf8_lossy(&reply.body)
        );
        let probe = &receiver.probe;
        assert_eq!(probe.calls(), 1, "via {via}");
        assert_eq!(probe.unparsed.load(Ordering::SeqCst), 0, "via {via}");
        assert_eq!(probe.unknown.load(Ordering::SeqCst), 0, "via {via}");
        let drifted = probe.drifted.lock().unwrap().clone();
        assert_eq!(drifted.len(), 1, "via {via}");
        assert_drifted_duration(&drifted[0], r#""12""#, &format!("via {via}"));
        assert_eq!(probe.effects().get("c1"), Some(&1), "via {via}");
        let outcomes = receiver.outcomes();
        assert_eq!(outcomes.len(), 1, "via {via}");
        for outcome in outcomes {
            assert_eq!(outcome.status, 204, "via {via}");
            assert_eq!(outcome.reason, Reason::Handled, "via {via}");
            assert_eq!(outcome.call_id.as_deref(), Some("c1"), "via {via}");
            assert_eq!(outcome.untyped, 1, "via {via}");
        }
    }
}

/// 500 000 keys in `metadata` (≈6 MB) are parsed and handled.
#[tokio::test]
async fn half_a_million_keys_in_metadata_are_handled() {
    let body = metadata_object(500_000);
    assert!(
        (5_000_000..8_388_608).contains(&body.len()),
        "{}",
        body.len()
    );
    for receiver in Receiver::all(Behaviour::Ok, &config()).await {
        let started = std::time::Instant::now();
        assert_eq!(
            receiver.post_signed(&body).await.status,
            204,
            "via {}",
            receiver.via
        );
        println!("500 000 keys via {}: {:?}", receiver.via, started.elapsed());
        assert_eq!(receiver.probe.calls(), 1);
    }
}

/// Over the limit is 413 and never parsed. Each body is signed once (the
/// HMAC of 100 MiB is the slow part in a debug build) and sent to every receiver.
#[tokio::test]
async fn over_the_limit_is_413_and_never_parsed() {
    let started = std::time::Instant::now();
    let million = metadata_object(1_000_000);
    assert!(million.len() > 11_000_000, "{}", million.len());
    let mut string = br#"{"event":"call_ended","call":{"call_id":"c1","transcript":""#.to_vec();
    string.resize(100 * 1024 * 1024 - 3, b'a');
    string.extend_from_slice(br#""}}"#);
    let bodies = [(signature(&million), million), (signature(&string), string)];
    println!(
        "over-limit bodies built and signed in {:?}",
        started.elapsed()
    );
    for receiver in Receiver::all(Behaviour::Ok, &config()).await {
        for (sig, body) in &bodies {
            let started = std::time::Instant::now();
            let headers = [("X-Retell-Signature", sig.as_str())];
            let reply = receiver.send("POST", &headers, body, Framing::Length).await;
            println!(
                "{} bytes over the limit via {}: {:?}",
                body.len(),
                receiver.via,
                started.elapsed()
            );
            assert_eq!(
                reply.status,
                413,
                "{} bytes via {}",
                body.len(),
                receiver.via
            );
        }
        assert_eq!(receiver.probe.calls(), 0);
        assert_eq!(
            receiver
                .probe
                .unparsed
                .load(std::sync::atomic::Ordering::SeqCst),
            0
        );
    }
}

fn suite(prefix: &str) -> Vec<(String, Vec<u8>)> {
    let dir = format!(
        "{}/tests/data/jsontestsuite/test_parsing",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with(prefix) && name.ends_with(".json")
        })
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect()
}

/// Every `n_*.json` of JSONTestSuite, correctly signed, is 400 through
/// every receiver (all of them, not a subset: a few hundred loopback requests
/// take well under a second); every `y_*.json` is 400 or 2xx, never a panic
/// (a panic would be a 500).
#[tokio::test]
async fn jsontestsuite_through_every_receiver() {
    let rejects = suite("n_");
    let accepts = suite("y_");
    assert!(rejects.len() > 180, "{}", rejects.len());
    for receiver in Receiver::all(Behaviour::Ok, &config()).await {
        for (name, body) in &rejects {
            let reply = receiver.post_signed(body).await;
            assert_eq!(reply.status, 400, "{name} via {}", receiver.via);
        }
        for (name, body) in &accepts {
            let status = receiver.post_signed(body).await.status;
            assert!(
                status == 400 || status == 204,
                "{name} via {}: {status}",
                receiver.via
            );
        }
        assert_eq!(receiver.probe.calls(), 0, "via {}", receiver.via);
    }
}
