//! Tolerance of the models: apart from the ids, any field may be missing,
//! `null` or of an unexpected type without failing the body, and the body is
//! written back as it came. Structure (ids, duplicate keys, syntax) stays
//! strict.
//!
//! The maximal bodies in `tests/fixtures/sdk/` carry every field of the Retell
//! SDK 6.2.13 types; the generated tests below edit them one location at a
//! time.

mod common;

use std::sync::LazyLock;

use common::{fixture, fixture_value, normalize};
use proptest::prelude::*;
use retell_webhooks::{
    Call, Chat, FunctionCall, Incoming, WebhookEvent,
    models::{TranscriptItem, Untyped, UntypedReason},
};
use serde_json::{Value, json};

const EVENT_FIXTURES: &[&str] = &[
    "call_started.json",
    "call_ended_phone.json",
    "call_ended_web.json",
    "call_analyzed_maximal.json",
    "transcript_updated.json",
    "transfer_started.json",
    "transfer_bridged.json",
    "transfer_cancelled.json",
    "transfer_ended.json",
    "chat_started.json",
    "chat_ended.json",
    "chat_analyzed.json",
    "synthetic_forward_compat.json",
    "signature-vector-2-body.json",
    "signature-vector-4-body.json",
];

/// Maximal bodies: (fixture, event it is wrapped in, envelope key).
const MAXIMAL: &[(&str, &str, &str)] = &[
    ("sdk/max_phone_call.json", "call_ended", "call"),
    ("sdk/max_web_call.json", "call_ended", "call"),
    ("sdk/max_chat.json", "chat_ended", "chat"),
];

/// Maps whose values must be strings. Their entries are not fields: like a
/// list, a map with a value that does not fit falls back as a whole.
const STRING_MAPS: &[&str] = &["call.custom_sip_headers"];

// ---------------------------------------------------------------------------
// Locations inside a JSON value

/// One step into a JSON value.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

/// A location inside a body: the steps from its root.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Loc(Vec<Step>);

impl Loc {
    fn key(&self, key: &str) -> Self {
        let mut steps = self.0.clone();
        steps.push(Step::Key(key.to_owned()));
        Self(steps)
    }

    fn index(&self, index: usize) -> Self {
        let mut steps = self.0.clone();
        steps.push(Step::Index(index));
        Self(steps)
    }

    fn parent(&self) -> Self {
        Self(self.0[..self.0.len().saturating_sub(1)].to_vec())
    }

    fn last_key(&self) -> Option<&str> {
        match self.0.last() {
            Some(Step::Key(key)) => Some(key),
            _ => None,
        }
    }

    fn is_array_item(&self) -> bool {
        matches!(self.0.last(), Some(Step::Index(_)))
    }

    /// RFC 6901 pointer, for `Value::pointer_mut`.
    fn pointer(&self) -> String {
        self.0
            .iter()
            .map(|step| match step {
                Step::Key(key) => format!("/{}", key.replace('~', "~0").replace('/', "~1")),
                Step::Index(i) => format!("/{i}"),
            })
            .collect()
    }

    /// The crate's notation for [`Untyped::path`]: `call.transcript_object[0].words`.
    fn path(&self) -> String {
        let mut out = String::new();
        for step in &self.0 {
            match step {
                Step::Key(key) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(key);
                }
                Step::Index(i) => out.push_str(&format!("[{i}]")),
            }
        }
        out
    }

    /// The event name, the ids and the objects holding them: the only values
    /// a body cannot do without.
    fn is_identifying(&self) -> bool {
        matches!(
            self.path().as_str(),
            "event" | "call" | "chat" | "call.call_id" | "chat.chat_id"
        )
    }

    /// The `role` of a transcript item or chat message selects its kind.
    fn is_role_tag(&self) -> bool {
        self.last_key() == Some("role") && self.parent().is_array_item()
    }
}

/// Every location below `at` in `value` (object entries and array items, at
/// any depth), parents before children.
fn locations(value: &Value, at: &Loc, out: &mut Vec<Loc>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let loc = at.key(key);
                out.push(loc.clone());
                locations(child, &loc, out);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                let loc = at.index(i);
                out.push(loc.clone());
                locations(child, &loc, out);
            }
        }
        _ => {}
    }
}

fn all_locations(body: &Value) -> Vec<Loc> {
    let mut out = Vec::new();
    locations(body, &Loc::default(), &mut out);
    out
}

/// Object entries only (what can be removed or set to `null` as a field).
fn object_keys(body: &Value) -> Vec<Loc> {
    all_locations(body)
        .into_iter()
        .filter(|loc| loc.last_key().is_some() && !loc.is_identifying())
        .collect()
}

fn at_mut<'a>(body: &'a mut Value, loc: &Loc) -> &'a mut Value {
    body.pointer_mut(&loc.pointer())
        .unwrap_or_else(|| panic!("no value at {}", loc.path()))
}

fn at<'a>(body: &'a Value, loc: &Loc) -> &'a Value {
    body.pointer(&loc.pointer())
        .unwrap_or_else(|| panic!("no value at {}", loc.path()))
}

/// A copy of `body` without the object entry at `loc`.
fn without(body: &Value, loc: &Loc) -> Value {
    let mut edited = body.clone();
    let key = loc.last_key().expect("an object entry");
    at_mut(&mut edited, &loc.parent())
        .as_object_mut()
        .expect("an object")
        .remove(key);
    edited
}

/// A copy of `body` with `value` at `loc`.
fn with(body: &Value, loc: &Loc, value: Value) -> Value {
    let mut edited = body.clone();
    *at_mut(&mut edited, loc) = value;
    edited
}

// ---------------------------------------------------------------------------
// Checks

/// The maximal bodies, each wrapped in its event envelope.
fn maximal_events() -> Vec<(String, Value)> {
    MAXIMAL
        .iter()
        .map(|(name, event, key)| {
            let mut body = serde_json::Map::new();
            body.insert("event".into(), json!(event));
            body.insert(key.to_string(), fixture_value(name));
            (name.to_string(), Value::Object(body))
        })
        .collect()
}

/// The first path where two documents differ (numbers compared as numbers).
fn difference(actual: &Value, expected: &Value) -> Option<String> {
    fn walk(a: &Value, e: &Value, path: String) -> String {
        match (a, e) {
            (Value::Object(a), Value::Object(e)) => {
                for key in a.keys().chain(e.keys()) {
                    match (a.get(key), e.get(key)) {
                        (Some(x), Some(y)) if x == y => {}
                        (Some(x), Some(y)) => return walk(x, y, format!("{path}.{key}")),
                        (x, y) => return format!("{path}.{key}: got {x:?}, expected {y:?}"),
                    }
                }
                path
            }
            (Value::Array(a), Value::Array(e)) if a.len() == e.len() => {
                for (i, (x, y)) in a.iter().zip(e).enumerate() {
                    if x != y {
                        return walk(x, y, format!("{path}[{i}]"));
                    }
                }
                path
            }
            _ => format!("{path}: got {a}, expected {e}"),
        }
    }
    let (a, e) = (normalize(actual), normalize(expected));
    (a != e).then(|| walk(&a, &e, String::new()))
}

/// Parses `body` as an event and checks it is written back unchanged.
fn round_trip(body: &Value) -> Result<WebhookEvent, String> {
    let bytes = serde_json::to_vec(body).expect("serializable");
    let event = WebhookEvent::from_slice(&bytes).map_err(|e| format!("parse failed: {e}"))?;
    let written = serde_json::to_value(&event).map_err(|e| format!("write failed: {e}"))?;
    match difference(&written, body) {
        Some(at) => Err(format!("written back differently at {at}")),
        None => Ok(event),
    }
}

/// Runs one check per case and fails with all failing cases listed.
fn run_cases<C>(what: &str, cases: &[C], check: impl Fn(&C) -> Result<(), String>) {
    let failures: Vec<String> = cases.iter().filter_map(|case| check(case).err()).collect();
    assert!(
        failures.is_empty(),
        "{what}: {} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

fn paths(list: &[Untyped]) -> Vec<&str> {
    list.iter().map(|u| u.path.as_str()).collect()
}

fn parse(body: &Value) -> WebhookEvent {
    WebhookEvent::from_slice(body.to_string().as_bytes()).unwrap_or_else(|e| panic!("{body}: {e}"))
}

/// Asserts `body` parses, round-trips, and reports exactly one fallback, at `path`.
fn assert_one_fallback(body: &Value, path: &str) -> WebhookEvent {
    let event = round_trip(body).unwrap_or_else(|e| panic!("{path}: {e}"));
    let fallbacks = event.fallbacks();
    assert_eq!(paths(&fallbacks), [path], "{path}: {fallbacks:?}");
    assert!(
        matches!(fallbacks[0].reason, UntypedReason::Fallback { expected } if !expected.is_empty()),
        "{path}: {fallbacks:?}"
    );
    event
}

fn call_body(call: Value) -> Value {
    json!({ "event": "call_ended", "call": call })
}

fn max_call_event() -> Value {
    call_body(fixture_value("sdk/max_phone_call.json"))
}

// ---------------------------------------------------------------------------
// Round trips of the fixtures

#[test]
fn event_fixtures_round_trip() {
    for name in EVENT_FIXTURES {
        let body = fixture_value(name);
        round_trip(&body).unwrap_or_else(|e| panic!("{name}: {e}"));
        let incoming =
            Incoming::from_slice(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let written = serde_json::to_value(&incoming).unwrap();
        assert_eq!(difference(&written, &body), None, "{name} via Incoming");
    }
}

#[test]
fn maximal_bodies_round_trip_fully_typed() {
    for (name, body) in maximal_events() {
        let event = round_trip(&body).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(event.untyped_paths(), [], "{name}");
        let incoming = Incoming::from_slice(body.to_string().as_bytes()).unwrap();
        let written = serde_json::to_value(&incoming).unwrap();
        assert_eq!(difference(&written, &body), None, "{name} via Incoming");
    }
    // The bare objects, parsed on their own.
    for name in ["sdk/max_phone_call.json", "sdk/max_web_call.json"] {
        let call = Call::from_slice(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(call.untyped_paths(), [], "{name}");
        let written = serde_json::to_value(&call).unwrap();
        assert_eq!(difference(&written, &fixture_value(name)), None, "{name}");
    }
    let chat = Chat::from_slice(&fixture("sdk/max_chat.json")).unwrap();
    assert_eq!(chat.untyped_paths(), [], "max_chat.json");
    let written = serde_json::to_value(&chat).unwrap();
    assert_eq!(
        difference(&written, &fixture_value("sdk/max_chat.json")),
        None
    );
}

// ---------------------------------------------------------------------------
// Omission

/// Each key of each maximal body, at every depth and in every array item,
/// removed in turn: the body still parses and is written back without it.
#[test]
fn any_field_may_be_missing() {
    let mut cases = Vec::new();
    for (name, body) in maximal_events() {
        for loc in object_keys(&body) {
            cases.push((
                format!("{name}: without {}", loc.path()),
                without(&body, &loc),
            ));
        }
    }
    assert!(cases.len() > 1_500, "only {} cases", cases.len());
    run_cases("omission", &cases, |(what, body)| {
        round_trip(body)
            .map(drop)
            .map_err(|e| format!("{what}: {e}"))
    });
}

/// The requests that are not events: inbound webhooks and custom functions.
#[test]
fn request_fields_may_be_missing() {
    for name in ["call_inbound_request.json", "chat_inbound_request.json"] {
        let body = fixture_value(name);
        for loc in object_keys(&body) {
            // Keep the envelope: only the payload's fields are optional.
            if loc.0.len() < 2 {
                continue;
            }
            let edited = without(&body, &loc);
            let what = format!("{name}: without {}", loc.path());
            let incoming = Incoming::from_slice(edited.to_string().as_bytes())
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            let written = serde_json::to_value(&incoming).unwrap();
            assert_eq!(difference(&written, &edited), None, "{what}");
        }
    }
    for name in [
        "custom_function_request.json",
        "custom_function_request_args_only.json",
    ] {
        let body = fixture_value(name);
        for loc in object_keys(&body) {
            if loc.0.first() != Some(&Step::Key("call".into())) || loc.0.len() < 2 {
                continue;
            }
            let edited = without(&body, &loc);
            let what = format!("{name}: without {}", loc.path());
            let call = FunctionCall::from_slice(edited.to_string().as_bytes())
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            let written = serde_json::to_value(&call).unwrap();
            assert_eq!(difference(&written, &edited), None, "{what}");
        }
    }
}

/// Bodies seen in real captures, with far fewer fields than the SDK types.
#[test]
fn sparse_captures_parse() {
    let cost_only =
        json!({"event":"call_ended","call":{"call_id":"c1","call_cost":{"combined_cost":1}}});
    let event = round_trip(&cost_only).unwrap();
    let cost = event.call().unwrap().call_cost.as_ref().unwrap();
    assert_eq!(cost.combined_cost, Some(1.0));
    assert_eq!(cost.product_costs, None);

    let bare_utterance = json!({"event":"call_ended","call":{"call_id":"c1",
        "transcript_object":[{"role":"agent","content":"hi"}]}});
    let event = round_trip(&bare_utterance).unwrap();
    let utterance = &event.call().unwrap().transcript_object.as_ref().unwrap()[0];
    assert_eq!(utterance.content.as_deref(), Some("hi"));
    assert_eq!(utterance.words, None);

    let no_content = json!({"event":"call_ended","call":{"call_id":"c1",
        "transcript_object":[{"role":"user"}]}});
    round_trip(&no_content).unwrap();

    let token_usage = json!({"event":"call_ended","call":{"call_id":"c1",
        "llm_token_usage":{"average":2,"num_requests":1}}});
    round_trip(&token_usage).unwrap();

    // `null` is written back as `null`, not dropped.
    let nulls =
        json!({"event":"call_ended","call":{"call_id":"c1","agent_tag":null,"metadata":null}});
    let event = parse(&nulls);
    assert_eq!(serde_json::to_value(&event).unwrap(), nulls);
    let call = event.call().unwrap();
    assert!(call.is_null("agent_tag") && call.is_null("metadata"));
    assert!(!call.is_null("agent_id"), "absent is not null");
    assert_eq!(
        (call.agent_tag.as_ref(), call.metadata.as_ref()),
        (None, None)
    );
    assert_eq!(event.fallbacks(), []);
}

// ---------------------------------------------------------------------------
// Nulls

/// Each key of each maximal body, at every depth, set to `null` in turn.
#[test]
fn any_field_may_be_null() {
    let mut cases = Vec::new();
    for (name, body) in maximal_events() {
        for loc in object_keys(&body) {
            cases.push((loc.clone(), name.clone(), with(&body, &loc, Value::Null)));
        }
    }
    assert!(cases.len() > 1_500, "only {} cases", cases.len());
    run_cases("null", &cases, |(loc, name, body)| {
        let what = format!("{name}: {} = null", loc.path());
        let event = round_trip(body).map_err(|e| format!("{what}: {e}"))?;
        let fallbacks = event.fallbacks();
        // A `null` inside a string map is a value of the map, not a field.
        let allowed = STRING_MAPS.contains(&loc.parent().path().as_str())
            && paths(&fallbacks) == [loc.parent().path()];
        if fallbacks.is_empty() || allowed {
            Ok(())
        } else {
            Err(format!("{what}: fallbacks {:?}", paths(&fallbacks)))
        }
    });
}

// ---------------------------------------------------------------------------
// Type drift

/// One value of each JSON type other than `null`, and numbers of each kind an
/// integer or float field may reject.
fn drift_values() -> [Value; 7] {
    [
        json!("x"),
        json!(7),
        json!(-1),
        json!(1.5),
        json!(true),
        json!({"a": 1}),
        json!([1]),
    ]
}

/// The replacements tried for a leaf: values of every other JSON type, and for
/// numbers the other numbers (their range and integrality are part of the type).
fn replacements(leaf: &Value) -> Vec<Value> {
    let same_type = |v: &Value| std::mem::discriminant(v) == std::mem::discriminant(leaf);
    drift_values()
        .into_iter()
        .filter(|v| !same_type(v) || (v.is_number() && normalize(v) != normalize(leaf)))
        .collect()
}

/// Where a replaced leaf may be reported: at itself, or, when it is an item
/// of a list or a value of a string map, at that list or map (which falls
/// back as a whole).
fn fallback_paths(loc: &Loc) -> Vec<String> {
    let mut allowed = vec![loc.path()];
    let parent = loc.parent().path();
    if loc.is_array_item() || STRING_MAPS.contains(&parent.as_str()) {
        allowed.push(parent);
    }
    allowed
}

/// Each scalar leaf of each maximal body replaced in turn by values of other
/// types: never an error, always written back unchanged, and at most the one
/// replaced field reported as a fallback (none where the value still fits).
#[test]
fn any_scalar_may_drift() {
    let mut cases = Vec::new();
    for (name, body) in maximal_events() {
        for loc in all_locations(&body) {
            let leaf = at(&body, &loc);
            let scalar = leaf.is_string() || leaf.is_number() || leaf.is_boolean();
            if !scalar || loc.is_identifying() || loc.is_role_tag() {
                continue;
            }
            for value in replacements(leaf) {
                let what = format!("{name}: {} = {value}", loc.path());
                cases.push((what, loc.clone(), with(&body, &loc, value)));
            }
        }
    }
    assert!(cases.len() > 5_000, "only {} cases", cases.len());
    let fell_back = std::cell::Cell::new(0);
    run_cases("drift", &cases, |(what, loc, body)| {
        let event = round_trip(body).map_err(|e| format!("{what}: {e}"))?;
        let fallbacks = event.fallbacks();
        match fallbacks.as_slice() {
            [] => Ok(()),
            [one] if fallback_paths(loc).contains(&one.path) => {
                fell_back.set(fell_back.get() + 1);
                Ok(())
            }
            _ => Err(format!("{what}: fallbacks {:?}", paths(&fallbacks))),
        }
    });
    // Most replacements do not fit: the check above must not pass vacuously.
    assert!(
        fell_back.get() * 2 > cases.len(),
        "only {} of {} cases fell back",
        fell_back.get(),
        cases.len()
    );
}

#[test]
fn duration_ms_out_of_type_or_range_falls_back() {
    let big: Value = serde_json::from_str("18446744073709551616").unwrap();
    for value in [json!("12"), json!(-1), json!(1.5), big] {
        let body = with(
            &max_call_event(),
            &Loc::default().key("call").key("duration_ms"),
            value.clone(),
        );
        let event = assert_one_fallback(&body, "call.duration_ms");
        let call = event.call().unwrap();
        assert_eq!(call.duration_ms, None, "{value}");
        assert_eq!(
            call.fallback("duration_ms")
                .map(|raw| normalize(&raw.to_value().unwrap())),
            Some(normalize(&value))
        );
        // Paths of a call's own list start at the call.
        assert_eq!(paths(&call.fallbacks()), ["duration_ms"], "{value}");
        assert!(!call.is_null("duration_ms"));
    }
}

#[test]
fn wrong_types_fall_back_at_their_field() {
    let cases = [
        (
            "/call/call_cost/combined_cost",
            json!("abc"),
            "call.call_cost.combined_cost",
        ),
        (
            "/call/transcript_object",
            json!({}),
            "call.transcript_object",
        ),
        ("/call/agent_name", json!(5), "call.agent_name"),
        ("/call/call_analysis", json!("n/a"), "call.call_analysis"),
        (
            "/call/latency/e2e/values",
            json!([1, "x"]),
            "call.latency.e2e.values",
        ),
        (
            "/call/transcript_object/0/words/0/start",
            json!("0.5"),
            "call.transcript_object[0].words[0].start",
        ),
    ];
    for (pointer, value, path) in cases {
        let mut body = max_call_event();
        *body.pointer_mut(pointer).unwrap() = value.clone();
        let event = assert_one_fallback(&body, path);
        let call = event.call().unwrap();
        // The rest of the call stays typed.
        assert_eq!(call.duration_ms, Some(7), "{path}");
        if let Some(key) = path
            .strip_prefix("call.")
            .filter(|k| !k.contains(['.', '[']))
        {
            assert_eq!(
                call.fallback(key).map(|raw| raw.to_value().unwrap()),
                Some(value.clone()),
                "{path}"
            );
        }
    }
    let mut body = max_call_event();
    body["call"]["call_analysis"] = json!("n/a");
    let event = parse(&body);
    assert_eq!(event.call().unwrap().call_analysis, None);

    let chat = json!({"event":"chat_ended","chat":{"chat_id":"h1","end_timestamp":"soon"}});
    let event = assert_one_fallback(&chat, "chat.end_timestamp");
    assert_eq!(event.chat().unwrap().end_timestamp, None);
}

/// Numbers compared by value, exactly: `1 == 1.0`, but
/// `9007199254740993 != 9007199254740992.0` (which `normalize` cannot tell apart).
fn exactly_equal(a: &Value, b: &Value) -> bool {
    fn int(n: &serde_json::Number) -> Option<i128> {
        n.as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
    }
    fn float_is_int(f: f64, i: i128) -> bool {
        f.fract() == 0.0 && f.abs() < 1e38 && f as i128 == i
    }
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (int(x), int(y)) {
            (Some(i), Some(j)) => i == j,
            (Some(i), None) => y.as_f64().is_some_and(|f| float_is_int(f, i)),
            (None, Some(j)) => x.as_f64().is_some_and(|f| float_is_int(f, j)),
            (None, None) => x.as_f64() == y.as_f64(),
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| exactly_equal(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, a)| y.get(k).is_some_and(|b| exactly_equal(a, b)))
        }
        _ => a == b,
    }
}

/// A list that falls back is kept as it came, including the items read
/// before the one that did not fit: an integer in a float list keeps every
/// digit.
#[test]
fn fallback_lists_keep_their_items_exactly() {
    let cases = [
        (
            r#"{"event":"call_ended","call":{"call_id":"c1","latency":{"e2e":{"values":[9007199254740993,"x"]}}}}"#,
            "call.latency.e2e.values",
        ),
        (
            r#"{"event":"call_ended","call":{"call_id":"c1","transcript_object":[{"role":"agent","words":[{"word":"a","start":9007199254740993}]},5]}}"#,
            "call.transcript_object",
        ),
    ];
    for (raw, path) in cases {
        let body: Value = serde_json::from_str(raw).unwrap();
        let event = assert_one_fallback(&body, path);
        let written = serde_json::to_value(&event).unwrap();
        assert!(
            exactly_equal(&written, &body),
            "{path}: wrote {written}, expected {body}"
        );
    }
}

/// Integral floats fit integer fields.
#[test]
fn integral_floats_read_as_integers() {
    for raw in ["1e3", "1000.0", "1000"] {
        let body =
            format!(r#"{{"event":"call_ended","call":{{"call_id":"c1","duration_ms":{raw}}}}}"#);
        let event = WebhookEvent::from_slice(body.as_bytes()).unwrap();
        assert_eq!(event.call().unwrap().duration_ms, Some(1000), "{raw}");
        assert_eq!(event.fallbacks(), [], "{raw}");
    }
}

/// A transcript item or chat message that is not an object is kept as an
/// unknown item; the other items stay typed.
#[test]
fn non_object_items_are_unknown_kinds() {
    let body = call_body(json!({"call_id":"c1",
        "transcript_with_tool_calls":[5, {"role":"agent","content":"hi"}]}));
    let event = round_trip(&body).unwrap();
    assert_eq!(event.fallbacks(), []);
    let untyped = event.untyped_paths();
    assert_eq!(paths(&untyped), ["call.transcript_with_tool_calls[0]"]);
    assert_eq!(untyped[0].reason, UntypedReason::UnknownKind);
    let items: &[TranscriptItem] = event
        .call()
        .unwrap()
        .transcript_with_tool_calls
        .as_ref()
        .unwrap();
    assert_eq!(items[1].content(), Some("hi"));

    let body = json!({"event":"chat_ended","chat":{"chat_id":"h1",
        "message_with_tool_calls":["x", {"role":"user","content":"yo"}]}});
    let event = round_trip(&body).unwrap();
    let untyped = event.untyped_paths();
    assert_eq!(paths(&untyped), ["chat.message_with_tool_calls[0]"]);
    assert_eq!(untyped[0].reason, UntypedReason::UnknownKind);
    let messages = event
        .chat()
        .unwrap()
        .message_with_tool_calls
        .as_ref()
        .unwrap();
    assert_eq!(messages[1].content(), Some("yo"));
}

// ---------------------------------------------------------------------------
// Structure stays strict

#[test]
fn structural_errors_still_fail() {
    let deep = format!(
        r#"{{"event":"call_ended","call":{{"call_id":"c1","metadata":{}1{}}}}}"#,
        "[".repeat(1_000),
        "]".repeat(1_000)
    );
    let cases: &[(&str, &[u8])] = &[
        (
            "duplicate unknown key in call",
            br#"{"event":"call_ended","call":{"call_id":"c1","x_new":1,"x_new":2}}"#,
        ),
        (
            "duplicate known key in call",
            br#"{"event":"call_ended","call":{"call_id":"c1","agent_id":"a","agent_id":"b"}}"#,
        ),
        (
            "duplicate key in metadata",
            br#"{"event":"call_ended","call":{"call_id":"c1","metadata":{"a":1,"a":2}}}"#,
        ),
        (
            "duplicate known key in a word",
            br#"{"event":"call_ended","call":{"call_id":"c1","transcript_object":[{"role":"agent","content":"hi","words":[{"word":"hi","start":0,"start":1,"end":2}]}]}}"#,
        ),
        (
            "duplicate key in a chat message",
            br#"{"event":"chat_ended","chat":{"chat_id":"h1","message_with_tool_calls":[{"role":"user","content":"a","content":"b"}]}}"#,
        ),
        (
            "duplicate event",
            br#"{"event":"call_ended","event":"call_ended","call":{"call_id":"c1"}}"#,
        ),
        (
            "missing call_id",
            br#"{"event":"call_ended","call":{"agent_id":"a"}}"#,
        ),
        (
            "call_id not a string",
            br#"{"event":"call_ended","call":{"call_id":5}}"#,
        ),
        (
            "missing chat_id",
            br#"{"event":"chat_ended","chat":{"agent_id":"a"}}"#,
        ),
        (
            "event not a string",
            br#"{"event":5,"call":{"call_id":"c1"}}"#,
        ),
        ("body an array", b"[]"),
        ("body a string", br#""call_ended""#),
        (
            "trailing garbage",
            br#"{"event":"call_ended","call":{"call_id":"c1"}} x"#,
        ),
        (
            "invalid UTF-8",
            b"{\"event\":\"call_ended\",\"call\":{\"call_id\":\"c1\",\"agent_name\":\"\xff\"}}",
        ),
        ("nesting too deep", deep.as_bytes()),
    ];
    for (what, body) in cases {
        assert!(WebhookEvent::from_slice(body).is_err(), "{what}");
        assert!(Incoming::from_slice(body).is_err(), "{what} via Incoming");
    }
}

// ---------------------------------------------------------------------------
// Random values in known fields

/// Locations in `call_analyzed_maximal.json`, one per field: a field that
/// recurs in later items of a list is taken from the first item only (words
/// repeat the same three fields hundreds of times). Items of other kinds keep
/// their own fields.
static PROP_LOCATIONS: LazyLock<(Value, Vec<Loc>)> = LazyLock::new(|| {
    let body = fixture_value("call_analyzed_maximal.json");
    let mut seen = std::collections::HashSet::new();
    let locs = all_locations(&body)
        .into_iter()
        .filter(|loc| !loc.is_identifying())
        .filter(|loc| {
            let generic: Vec<Option<&str>> = loc
                .0
                .iter()
                .map(|step| match step {
                    Step::Key(key) => Some(key.as_str()),
                    Step::Index(_) => None,
                })
                .collect();
            seen.insert(format!("{generic:?}"))
        })
        .collect();
    (body, locs)
});

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (-1e20f64..1e20).prop_map(Value::from),
        Just(json!(1e3)),
        "[a-z\\u{e9}\\u{1f600}\"\\\\ ]{0,8}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            proptest::collection::btree_map("[a-z_]{1,6}|role|content|words", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_values_in_known_fields_round_trip(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), arb_json()), 1..4),
    ) {
        let (base, locs) = &*PROP_LOCATIONS;
        let mut body = base.clone();
        for (index, value) in edits {
            // An earlier edit may have replaced this location's parent.
            if let Some(slot) = body.pointer_mut(&locs[index.index(locs.len())].pointer()) {
                *slot = value;
            }
        }
        if let Err(e) = round_trip(&body) {
            prop_assert!(false, "{e}\nbody: {body}");
        }
    }
}
