//! Hostile JSON at the parse level: deep nesting, numbers JSON allows but a
//! field cannot hold, duplicated keys, invalid UTF-8, a byte order mark,
//! trailing data, surrogates and control characters, what JSON does not allow
//! and bodies of the wrong shape. Every input gives a `ParseError` or the
//! documented `Ok`, never a panic.

use retell_webhooks::{
    Incoming, ParseErrorKind, WebhookEvent,
    models::{Untyped, UntypedReason},
};
use serde_json::Value;

const CALL_ENDED: &[u8] = br#"{"event":"call_ended","call":{"call_id":"c1"}}"#;

fn parse(body: &[u8]) -> Result<WebhookEvent, retell_webhooks::ParseError> {
    WebhookEvent::from_slice(body)
}

/// `parse` that must succeed, with the body written back unchanged (compared
/// as JSON values: serde_json reads integers above `u64::MAX` as floats on
/// both sides).
fn parse_lossless(body: &[u8]) -> WebhookEvent {
    let event = parse(body).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(body)));
    let written = serde_json::to_value(&event).unwrap();
    let original: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(written, original, "{}", String::from_utf8_lossy(body));
    event
}

fn fallback_at(path: &str, expected: &'static str) -> Untyped {
    Untyped {
        path: path.to_owned(),
        reason: UntypedReason::Fallback { expected },
    }
}

fn nested_arrays(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

#[test]
fn deep_nesting_in_metadata_is_an_error_not_a_crash() {
    let body = format!(
        r#"{{"event":"call_ended","call":{{"call_id":"c1","metadata":{}}}}}"#,
        nested_arrays(10_000)
    );
    let err = parse(body.as_bytes()).unwrap_err();
    assert_eq!(err.kind(), ParseErrorKind::Syntax);
    assert!(err.message().contains("recursion limit"), "{err}");
    // The path proves the body was streamed into the models: an internally
    // tagged enum would have buffered it first and could not name `call.metadata`.
    assert!(err.path().starts_with("call.metadata"), "{}", err.path());
    assert_eq!(err.call_id(), Some("c1"));
    assert_eq!(err.event(), Some("call_ended"));
}

#[test]
fn deep_nesting_in_unknown_keys_is_an_error_too() {
    // Unknown keys are kept (lossless) as `serde_json::Value`, which is depth
    // limited like everything else. The envelope is still a streaming visitor:
    // `call` is parsed before the deep key is reached.
    for body in [
        format!(
            r#"{{"event":"call_ended","call":{{"call_id":"c1"}},"x":{}}}"#,
            nested_arrays(10_000)
        ),
        format!(
            r#"{{"event":"call_ended","call":{{"call_id":"c1","x":{}}}}}"#,
            nested_arrays(10_000)
        ),
        format!(
            r#"{{"event":"call_exploded","x":{}}}"#,
            nested_arrays(10_000)
        ),
    ] {
        let err = parse(body.as_bytes()).unwrap_err();
        assert!(err.message().contains("recursion limit"), "{err}");
    }
}

/// The exact depth accepted. serde_json's recursion limit (128) lets a
/// document nest 127 containers (a bare `Value` accepts 127 arrays, rejects
/// 128); the body object and `call` use two, so `metadata` holds 125 arrays.
#[test]
fn the_deepest_nesting_accepted_is_pinned() {
    let body = |depth| {
        format!(
            r#"{{"event":"call_ended","call":{{"call_id":"c1","metadata":{}}}}}"#,
            nested_arrays(depth)
        )
    };
    assert!(parse(body(125).as_bytes()).is_ok());
    assert!(parse(body(126).as_bytes()).is_err());
    // Top-level unknown key: one container less in the way.
    let top = |depth| {
        format!(
            r#"{{"event":"call_ended","call":{{"call_id":"c1"}},"x":{}}}"#,
            nested_arrays(depth)
        )
    };
    assert!(parse(top(126).as_bytes()).is_ok());
    assert!(parse(top(127).as_bytes()).is_err());
    // Reference point: serde_json on its own.
    assert!(serde_json::from_str::<serde_json::Value>(&nested_arrays(127)).is_ok());
    assert!(serde_json::from_str::<serde_json::Value>(&nested_arrays(128)).is_err());
}

#[test]
fn a_number_beyond_f64_is_an_error() {
    let typed = br#"{"event":"call_ended","call":{"call_id":"c1","call_cost":{"combined_cost":1e400,"product_costs":[],"total_duration_seconds":1,"total_duration_unit_price":1}}}"#;
    assert_eq!(
        parse(typed).unwrap_err().path(),
        "call.call_cost.combined_cost"
    );
    let metadata = br#"{"event":"call_ended","call":{"call_id":"c1","metadata":{"a":1e400}}}"#;
    assert!(parse(metadata).is_err());
    // Unknown keys are kept as `Value`, so they are parsed (and fail) too.
    let unknown = br#"{"event":"call_ended","call":{"call_id":"c1"},"x":1e400}"#;
    assert!(parse(unknown).is_err());
}

#[test]
fn a_tiny_number_reads_as_zero_a_long_one_is_an_error() {
    let wrap = |n: &str| {
        format!(
            r#"{{"event":"call_ended","call":{{"call_id":"c1","latency":{{"e2e":{{"p50":{n}}}}}}}}}"#
        )
    };
    assert!(parse(wrap("-1e400").as_bytes()).is_err());
    let event = parse(wrap("1e-400").as_bytes()).unwrap();
    let p50 = event
        .call()
        .unwrap()
        .latency
        .as_ref()
        .unwrap()
        .e2e
        .as_ref()
        .unwrap()
        .p50;
    assert_eq!(p50, Some(0.0));
    let long = format!("1{}", "0".repeat(1_000_000));
    assert!(parse(wrap(&long).as_bytes()).is_err());
}

#[test]
fn integer_leniency_is_pinned() {
    let wrap = |n: &str| {
        format!(r#"{{"event":"call_ended","call":{{"call_id":"c1","duration_ms":{n}}}}}"#)
    };
    // Valid JSON that does not fit a `u64`: the body parses, the field reads
    // `None`, the value is kept, reported at its path and written back.
    for bad in [
        "18446744073709551616",
        "-1",
        "1.5",
        "1e20",
        "-0.5",
        "\"1000\"",
        "true",
        "[1000]",
        r#"{"ms":1000}"#,
    ] {
        let event = parse_lossless(wrap(bad).as_bytes());
        let call = event.call().unwrap();
        assert_eq!(call.duration_ms, None, "{bad}");
        assert!(!call.is_null("duration_ms"), "{bad}");
        let kept: Value = serde_json::from_str(bad).unwrap();
        assert_eq!(
            call.fallback("duration_ms")
                .map(|raw| raw.to_value().unwrap()),
            Some(kept),
            "{bad}"
        );
        assert_eq!(
            event.fallbacks(),
            vec![fallback_at("call.duration_ms", "a non-negative integer")],
            "{bad}"
        );
        assert_eq!(
            call.fallbacks(),
            vec![fallback_at("duration_ms", "a non-negative integer")],
            "{bad}"
        );
    }
    // A kept integer above `u64::MAX` is a float, as serde_json reads it.
    let event = parse(wrap("18446744073709551616").as_bytes()).unwrap();
    assert!(
        event
            .call()
            .unwrap()
            .fallback("duration_ms")
            .unwrap()
            .to_value()
            .unwrap()
            .is_f64()
    );
    for (good, expected) in [
        ("1e3", 1000),
        ("1000.0", 1000),
        ("1000", 1000),
        ("0", 0),
        ("-0", 0),
        ("18446744073709551615", u64::MAX),
    ] {
        let event = parse(wrap(good).as_bytes()).unwrap();
        assert_eq!(event.call().unwrap().duration_ms, Some(expected), "{good}");
        assert_eq!(event.fallbacks(), vec![], "{good}");
        assert_eq!(
            event.call().unwrap().fallback("duration_ms"),
            None,
            "{good}"
        );
    }
    // `null` is neither a value nor a fallback, and is written back.
    let event = parse_lossless(wrap("null").as_bytes());
    let call = event.call().unwrap();
    assert_eq!(call.duration_ms, None);
    assert!(call.is_null("duration_ms"));
    assert_eq!(call.fallback("duration_ms"), None);
    assert_eq!(event.fallbacks(), vec![]);
    // Outside the range of f64 serde_json cannot read the number at all: an
    // error, not a fallback.
    let err = parse(wrap("1e400").as_bytes()).unwrap_err();
    assert_eq!(err.path(), "call.duration_ms");
    assert_eq!(err.kind(), ParseErrorKind::Syntax);
    // Large integers in `metadata` (raw JSON) silently become floats.
    let event = parse(
        br#"{"event":"call_ended","call":{"call_id":"c1","metadata":{"n":18446744073709551616}}}"#,
    )
    .unwrap();
    let metadata = event.call().unwrap().metadata.as_ref().unwrap();
    assert!(metadata.to_value().unwrap()["n"].is_f64());
}

#[test]
fn a_duplicated_key_is_refused_at_any_depth() {
    let dup_event = br#"{"event":"call_started","event":"call_ended","call":{"call_id":"c1"}}"#;
    let err = parse(dup_event).unwrap_err();
    assert!(err.message().contains("duplicate field `event`"), "{err}");
    // Even when the first name is unknown: no fallback to `Unknown` here.
    assert!(parse(br#"{"event":"x_new","event":"call_ended","call":{"call_id":"c1"}}"#).is_err());
    let dup_nested = br#"{"event":"call_ended","call":{"call_id":"a","call_id":"b"}}"#;
    assert!(
        parse(dup_nested)
            .unwrap_err()
            .message()
            .contains("duplicate field `call_id`")
    );
    for body in [
        &br#"{"event":"call_ended","call":{"call_id":"a"},"call":{"call_id":"b"}}"#[..],
        br#"{"event":"call_ended","call":{"call_id":"a"},"x":1,"x":2}"#,
        br#"{"event":"call_ended","call":{"call_id":"a","transcript_with_tool_calls":[{"role":"dtmf","digit":"1","role":"dtmf"}]}}"#,
        br#"{"event":"call_ended","call":{"call_id":"a","transcript_with_tool_calls":[{"digit":"1","role":"dtmf","digit":"2"}]}}"#,
        br#"{"event":"call_ended","call":{"call_id":"a","transcript_with_tool_calls":[{"role":"new","a":1,"role":"x"}]}}"#,
        br#"{"event":"call_ended","event_timestamp":1,"event_timestamp":2,"call":{"call_id":"a"}}"#,
    ] {
        assert!(parse(body).is_err(), "{}", String::from_utf8_lossy(body));
    }
    // The error path is the object holding the duplicate, at any depth:
    // typed objects, raw JSON (`metadata`, dynamic variables), unknown keys,
    // values kept as fallbacks, transcript items of known and unknown kinds.
    for (body, path, key) in [
        (
            &br#"{"event":"call_ended","call":{"call_id":"a","agent_id":"x","agent_id":"y"}}"#[..],
            "call",
            "agent_id",
        ),
        (
            br#"{"event":"call_ended","call":{"call_id":"a","duration_ms":"1","duration_ms":"2"}}"#,
            "call",
            "duration_ms",
        ),
        (
            br#"{"event":"call_ended","call":{"call_id":"c1","metadata":{"k":1,"k":2}}}"#,
            "call.metadata",
            "k",
        ),
        (
            br#"{"event":"call_ended","call":{"call_id":"c1","metadata":{"a":[{"k":1,"k":1}]}}}"#,
            "call.metadata.a[0]",
            "k",
        ),
        (
            br#"{"event":"call_ended","call":{"call_id":"c1","retell_llm_dynamic_variables":{"k":"1","k":"2"}}}"#,
            "call.retell_llm_dynamic_variables",
            "k",
        ),
        (
            br#"{"event":"call_ended","call":{"call_id":"c1","x":{"k":1,"k":2}}}"#,
            "call.x",
            "k",
        ),
        (
            br#"{"event":"call_ended","call":{"call_id":"c1"},"x":{"k":1,"k":2}}"#,
            "x",
            "k",
        ),
        (
            br#"{"event":"call_ended","call":{"call_id":"c1","duration_ms":{"k":1,"k":2}}}"#,
            "call.duration_ms",
            "k",
        ),
        (
            br#"{"event":"call_ended","call":{"call_id":"c1","transcript_object":[{"role":"agent","content":"a","content":"b"}]}}"#,
            "call.transcript_object[0]",
            "content",
        ),
        (
            br#"{"event":"call_ended","call":{"call_id":"c1","transcript_with_tool_calls":[{"role":"new","a":{"k":1,"k":2}}]}}"#,
            "call.transcript_with_tool_calls[0].a",
            "k",
        ),
        (
            br#"{"event":"chat_ended","chat":{"chat_id":"h1","metadata":{"k":1,"k":2}}}"#,
            "chat.metadata",
            "k",
        ),
    ] {
        let shown = String::from_utf8_lossy(body);
        let err = parse(body).unwrap_err();
        assert_eq!(err.kind(), ParseErrorKind::Data, "{shown}");
        assert_eq!(err.path(), path, "{shown}");
        assert!(
            err.message().contains(&format!("duplicate field `{key}`")),
            "{shown}: {err}"
        );
        assert!(Incoming::from_slice(body).is_err(), "{shown}");
    }
}

#[test]
fn invalid_utf8_is_refused_anywhere() {
    for bad in [&b"\xC0\xAF"[..], b"\xED\xA0\x80", b"\xFF"] {
        for template in [
            (
                "{\"event\":\"call_ended\",\"call\":{\"call_id\":\"c1\",\"transcript\":\"",
                "\"}}",
            ),
            // In a key nobody models: serde_json alone would not look at it.
            (
                "{\"event\":\"call_ended\",\"call\":{\"call_id\":\"c1\"},\"x\":\"",
                "\"}",
            ),
            ("{\"event\":\"call_exploded\",\"x\":\"", "\"}"),
        ] {
            let mut body = template.0.as_bytes().to_vec();
            body.extend_from_slice(bad);
            body.extend_from_slice(template.1.as_bytes());
            let err = parse(&body).unwrap_err();
            assert_eq!(err.kind(), ParseErrorKind::InvalidUtf8);
            assert_eq!(err.line(), 1);
            assert_eq!(err.column(), template.0.len() + 1);
        }
    }
}

#[test]
fn a_byte_order_mark_is_refused() {
    let mut body = b"\xEF\xBB\xBF".to_vec();
    body.extend_from_slice(CALL_ENDED);
    assert_eq!(parse(&body).unwrap_err().kind(), ParseErrorKind::Syntax);
}

#[test]
fn trailing_data_is_refused_trailing_whitespace_is_not() {
    let with = |tail: &[u8]| [CALL_ENDED, tail].concat();
    assert!(parse(&with(b" xyz")).is_err());
    assert!(parse(&with(CALL_ENDED)).is_err());
    assert!(parse(&with(b"\r\n  ")).is_ok());
    assert!(parse(&with(b"\n")).is_ok());
}

#[test]
fn a_lone_surrogate_is_refused_an_escaped_nul_is_kept() {
    assert!(
        parse(br#"{"event":"call_ended","call":{"call_id":"c1","transcript":"\ud800"}}"#).is_err()
    );
    let event = parse(br#"{"event":"call_ended","call":{"call_id":"c1","transcript":"a\u0000b"}}"#)
        .unwrap();
    assert_eq!(event.call().unwrap().transcript.as_deref(), Some("a\0b"));
}

#[test]
fn raw_control_characters_in_a_string_are_refused() {
    for byte in [0x00u8, 0x1F] {
        let mut body = br#"{"event":"call_ended","call":{"call_id":"c1","transcript":"a"#.to_vec();
        body.push(byte);
        body.extend_from_slice(br#""}}"#);
        assert!(parse(&body).is_err());
    }
}

#[test]
fn what_json_does_not_allow_is_refused() {
    for body in [
        &br#"{"event":"call_ended","call":{"call_id":"c1","duration_ms":NaN}}"#[..],
        br#"{"event":"call_ended","call":{"call_id":"c1","duration_ms":Infinity}}"#,
        br#"{"event":"call_ended", // c
            "call":{"call_id":"c1"}}"#,
        br#"{"event":"call_ended", /* c */ "call":{"call_id":"c1"}}"#,
        br#"{"event":"call_ended","call":{"call_id":"c1"},}"#,
        br#"{'event':'call_ended'}"#,
        b"",
        b"   ",
        br#"{"event":"call_ended""#,
    ] {
        assert!(parse(body).is_err(), "{}", String::from_utf8_lossy(body));
        assert!(Incoming::from_slice(body).is_err());
    }
}

#[test]
fn a_body_of_the_wrong_shape_is_a_data_error() {
    for body in [
        &b"null"[..],
        b"[]",
        br#""s""#,
        b"42",
        b"{}",
        br#"{"event":5}"#,
        br#"{"event":null}"#,
        br#"{"call":{"call_id":"c1"}}"#,
    ] {
        let err = parse(body).unwrap_err();
        assert_eq!(
            err.kind(),
            ParseErrorKind::Data,
            "{}",
            String::from_utf8_lossy(body)
        );
    }
    // A known event without its object is an error too.
    assert!(parse(br#"{"event":"call_ended"}"#).is_err());
    assert!(parse(br#"{"event":"chat_ended","call":{"call_id":"c1"}}"#).is_err());
    assert!(parse(br#"{"event":"call_ended","call":null}"#).is_err());
    // …but an unknown event without one is fine: it is kept as it came.
    assert!(parse(br#"{"event":"call_exploded"}"#).unwrap().is_unknown());
}

#[test]
fn known_event_with_a_broken_call_is_an_error_with_context() {
    // `event` after `call`: the context is still found.
    let err = parse(
        br#"{"call":{"call_id":"call_9","agent_version":"seven","agent_version":"seven"},"event":"call_started"}"#,
    )
    .unwrap_err();
    assert_eq!(err.path(), "call");
    assert!(
        err.message().contains("duplicate field `agent_version`"),
        "{err}"
    );
    assert_eq!(err.event(), Some("call_started"));
    assert_eq!(err.call_id(), Some("call_9"));
    assert_eq!(err.line(), 1);
    let shown = err.to_string();
    assert!(shown.contains("`call`"), "{shown}");
    assert!(shown.contains("agent_version"), "{shown}");
    assert!(shown.contains("call_started"), "{shown}");
    // Never a value from the body.
    assert!(!shown.contains("seven"), "{shown}");
    assert!(!shown.contains("call_9"), "{shown}");

    // A call without its id cannot be told apart from another: an error.
    let err = parse(br#"{"call":{"agent_id":"agent_9","agent_version":7},"event":"call_started"}"#)
        .unwrap_err();
    assert_eq!(err.path(), "call");
    assert!(err.message().contains("missing field `call_id`"), "{err}");
    assert_eq!(err.event(), Some("call_started"));
    assert_eq!(err.call_id(), None);
    assert!(!err.to_string().contains("agent_9"), "{err}");

    // A field of the wrong type is not a broken call: it is delivered with
    // the field as `None` and the value kept.
    let event = parse_lossless(
        br#"{"call":{"call_id":"call_9","agent_version":"seven"},"event":"call_started"}"#,
    );
    assert_eq!(event.event_name(), "call_started");
    let call = event.call().unwrap();
    assert_eq!(call.call_id, "call_9");
    assert_eq!(call.agent_version, None);
    assert_eq!(
        call.fallback("agent_version")
            .map(|raw| raw.to_value().unwrap()),
        Some(Value::from("seven"))
    );
    assert_eq!(
        event.fallbacks(),
        vec![fallback_at("call.agent_version", "a non-negative integer")]
    );
}

#[test]
fn display_never_contains_values() {
    let secret = "+14155550142-secret";
    let digits = "14155550142";
    // Every body fails on its structure, next to (or because of) the secret.
    let bodies = [
        // Duplicate keys whose values hold the secret.
        format!(
            r#"{{"event":"call_ended","call":{{"call_id":"c1","from_number":"{secret}","from_number":"{secret}"}}}}"#
        ),
        format!(
            r#"{{"event":"call_ended","call":{{"call_id":"c1","metadata":{{"n":"{secret}","n":"{secret}"}}}}}}"#
        ),
        format!(r#"{{"event":"{secret}","event":"x"}}"#),
        // The secret as the call id, the failure further on.
        format!(
            r#"{{"event":"call_ended","call":{{"call_id":"{secret}","transcript_with_tool_calls":[{{"role":"agent","content":"{secret}","content":"x"}}]}}}}"#
        ),
        // Ids and `event` of the wrong type (serde_json would name the value).
        format!(r#"{{"event":"call_ended","call":{{"call_id":{digits}}}}}"#),
        format!(r#"{{"event":"call_ended","call":{{"call_id":{{"n":"{secret}"}}}}}}"#),
        format!(r#"{{"event":{digits},"call":{{"call_id":"c1"}}}}"#),
        format!(r#"{{"event":"chat_ended","chat":{{"chat_id":{digits}}}}}"#),
        // Syntax: a bad escape after the secret, trailing characters, a string
        // cut off.
        format!(r#"{{"event":"call_ended","call":{{"call_id":"c1","transcript":"{secret}\q"}}}}"#),
        format!(r#"{{"event":"call_ended","call":{{"call_id":"c1"}}}} {secret}"#),
        format!(r#"{{"event":"call_ended","call":{{"call_id":"c1","transcript":"{secret}"#),
        // Not an object.
        format!(r#""{secret}""#),
    ];
    for body in bodies {
        let err = parse(body.as_bytes()).unwrap_err();
        let shown = format!("{err} {:?} {}", err.message(), err.path());
        assert!(!shown.contains(digits), "{body}: {shown}");
        assert!(!shown.contains("secret"), "{body}: {shown}");
    }
    // The same values in fields of the wrong type are not errors at all.
    for body in [
        format!(
            r#"{{"event":"call_ended","call":{{"call_id":"c1","from_number":{{"n":"{secret}"}}}}}}"#
        ),
        format!(r#"{{"event":"call_ended","call":{{"call_id":"c1","duration_ms":"{secret}"}}}}"#),
        format!(r#"{{"event":"call_ended","call":{{"call_id":"{secret}","call_type":5}}}}"#),
    ] {
        parse_lossless(body.as_bytes());
    }
}

#[test]
fn error_path_inside_transcript_items() {
    // A structural failure in a nested item: the path names the item, the
    // line is the item's.
    let body = br#"{"event":"call_ended","call":{"call_id":"c1","transcript_with_tool_calls":[
        {"role":"dtmf","digit":"1"},
        {"role":"agent","content":"hi","words":[{"word":"hi","start":1,"start":2}]}]}}"#;
    let err = parse(body).unwrap_err();
    assert_eq!(err.path(), "call.transcript_with_tool_calls[1].words[0]");
    assert!(err.message().contains("duplicate field `start`"), "{err}");
    assert_eq!(err.line(), 3);
    // A value of the wrong type there is a fallback at the same depth.
    let body = br#"{"event":"call_ended","call":{"call_id":"c1","transcript_with_tool_calls":[
        {"role":"dtmf","digit":"1"},
        {"role":"agent","content":"hi","words":[{"word":"hi","start":"x"}]}]}}"#;
    let event = parse_lossless(body);
    assert_eq!(
        event.fallbacks(),
        vec![fallback_at(
            "call.transcript_with_tool_calls[1].words[0].start",
            "a number"
        )]
    );
    let items = event
        .call()
        .unwrap()
        .transcript_with_tool_calls
        .as_ref()
        .unwrap();
    let retell_webhooks::models::TranscriptItem::Utterance(utterance) = &items[1] else {
        panic!("{:?}", items[1]);
    };
    let word = &utterance.words.as_ref().unwrap()[0];
    assert_eq!(word.word.as_deref(), Some("hi"));
    assert_eq!(word.start, None);
    assert_eq!(
        word.fallback("start").map(|raw| raw.to_value().unwrap()),
        Some(Value::from("x"))
    );
}

#[test]
fn huge_object_in_metadata_parses() {
    // 50 000 keys (≈0.9 MB); half a million go through every receiver in
    // `tests/reliability/hostile_json.rs`.
    let mut body = String::from(r#"{"event":"call_ended","call":{"call_id":"c1","metadata":{"#);
    for i in 0..50_000 {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&format!(r#""k{i}":{i}"#));
    }
    body.push_str("}}}");
    let event = parse(body.as_bytes()).unwrap();
    assert_eq!(
        event
            .call()
            .unwrap()
            .metadata
            .as_ref()
            .unwrap()
            .to_value()
            .unwrap()
            .as_object()
            .unwrap()
            .len(),
        50_000
    );
}

#[test]
fn jsontestsuite_never_panics() {
    let dir = format!("{}/tests/data/jsontestsuite", env!("CARGO_MANIFEST_DIR"));
    let mut seen = 0;
    for entry in walk(std::path::Path::new(&dir)) {
        let name = entry.file_name().unwrap().to_string_lossy().to_string();
        if !name.ends_with(".json") {
            continue;
        }
        let body = std::fs::read(&entry).unwrap();
        let result = parse(&body);
        let _ = Incoming::from_slice(&body);
        let _ = retell_webhooks::FunctionCall::from_slice(&body);
        if name.starts_with("n_") {
            assert!(result.is_err(), "{name} must be rejected");
        }
        seen += 1;
    }
    assert!(seen > 0 || !std::path::Path::new(&dir).exists());
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.extend(walk(&path));
            } else {
                out.push(path);
            }
        }
    }
    out
}

/// Unknown events are kept whole, but their structure is checked like any
/// other body: a duplicate key at any depth is an error.
#[test]
fn unknown_events_reject_duplicate_keys_at_any_depth() {
    for body in [
        &br#"{"event":"call_exploded","x":{"k":1,"k":2}}"#[..],
        br#"{"event":"call_exploded","call":{"call_id":"c1","call_id":"c2"}}"#,
        br#"{"event":"call_exploded","call":{"call_id":"c1","metadata":{"k":"a","k":"b"}}}"#,
    ] {
        let err = WebhookEvent::from_slice(body).unwrap_err();
        assert!(err.to_string().contains("duplicate field"), "{err}");
        assert!(Incoming::from_slice(body).is_err());
    }
}

/// A key taken from the body into an error message cannot forge log lines:
/// control characters, quotes and backticks stay escaped on one line.
#[test]
fn duplicate_key_names_are_escaped_in_messages() {
    let body = "{\"event\":\"call_ended\",\"call\":{\"call_id\":\"c1\",\
        \"x\\n12:00 call_ended c9 204 ok\\u001b[0m\":1,\
        \"x\\n12:00 call_ended c9 204 ok\\u001b[0m\":2}}";
    let err = WebhookEvent::from_slice(body.as_bytes()).unwrap_err();
    let shown = err.to_string();
    assert!(
        !shown.contains('\n') && !shown.contains('\u{1b}'),
        "{shown}"
    );
    assert!(shown.contains("duplicate field"), "{shown}");
}

/// Keys that come before an item's `role` are buffered and read once the kind
/// is known: the item is the same as with `role` first, escapes, exact floats,
/// nulls, fallbacks and unknown keys included.
#[test]
fn keys_before_role_read_as_after_it() {
    let kinds = [
        (
            "agent",
            r#""content":"a \"quoted\" \u00e9 line","words":[{"word":"a","start":0.1,"end":2023.5500000000002},{"word":null,"start":"x"}],"metadata":{"is_backchannel":true},"zz":{"k":[1,2.50]}"#,
        ),
        (
            "tool_call_invocation",
            r#""tool_call_id":"t1","name":"n","arguments":"{\"a\":1}","time_sec":1.5,"type":"custom","zz":null"#,
        ),
        ("dtmf", r#""digit":"1","time_sec":3"#),
    ];
    for (role, rest) in kinds {
        let body = |item: String| {
            format!(
                r#"{{"event":"call_ended","call":{{"call_id":"c","transcript_with_tool_calls":[{item}]}}}}"#
            )
        };
        let first = body(format!(r#"{{"role":"{role}",{rest}}}"#));
        let last = body(format!(r#"{{{rest},"role":"{role}"}}"#));
        let first = WebhookEvent::from_slice(first.as_bytes()).unwrap();
        let last = WebhookEvent::from_slice(last.as_bytes()).unwrap();
        assert_eq!(first, last, "{role}");
        let items = last
            .call()
            .unwrap()
            .transcript_with_tool_calls
            .as_ref()
            .unwrap();
        assert_eq!(items[0].role(), Some(role));
        assert!(!matches!(
            items[0],
            retell_webhooks::models::TranscriptItem::Unknown(_)
        ));
    }
}
