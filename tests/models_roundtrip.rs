//! Every fixture parses, and serializing gives back the same JSON.

mod common;

use common::{assert_same_json, fixture, fixture_value};
use retell_webhooks::{FunctionCall, FunctionResponse, InboundResponse, Incoming, WebhookEvent};

const EVENT_FIXTURES: &[(&str, &str)] = &[
    ("call_started.json", "call_started"),
    ("call_ended_phone.json", "call_ended"),
    ("call_ended_web.json", "call_ended"),
    ("call_analyzed_maximal.json", "call_analyzed"),
    ("transcript_updated.json", "transcript_updated"),
    ("transfer_started.json", "transfer_started"),
    ("transfer_bridged.json", "transfer_bridged"),
    ("transfer_cancelled.json", "transfer_cancelled"),
    ("transfer_ended.json", "transfer_ended"),
    ("chat_started.json", "chat_started"),
    ("chat_ended.json", "chat_ended"),
    ("chat_analyzed.json", "chat_analyzed"),
    ("synthetic_forward_compat.json", "call_voicemail_left"),
    ("signature-vector-2-body.json", "call_analyzed"),
    ("signature-vector-4-body.json", "call_analyzed"),
];

#[test]
fn every_event_fixture_round_trips() {
    for (name, event_name) in EVENT_FIXTURES {
        let body = fixture(name);
        let event = WebhookEvent::from_slice(&body).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(event.event_name(), *event_name, "{name}");
        let written = serde_json::to_value(&event).unwrap();
        assert_same_json(&written, &fixture_value(name), name);
        // And through `Incoming` too.
        let incoming = Incoming::from_slice(&body).unwrap();
        assert_same_json(
            &serde_json::to_value(&incoming).unwrap(),
            &fixture_value(name),
            name,
        );
        // And through the generic `Deserialize` impl.
        let again: WebhookEvent = serde_json::from_slice(&body).unwrap();
        assert_same_json(
            &serde_json::to_value(&again).unwrap(),
            &fixture_value(name),
            name,
        );
    }
}

#[test]
fn inbound_requests_round_trip() {
    for (name, event_name) in [
        ("call_inbound_request.json", "call_inbound"),
        ("chat_inbound_request.json", "chat_inbound"),
    ] {
        let incoming = Incoming::from_slice(&fixture(name)).unwrap();
        assert_eq!(incoming.event_name(), event_name);
        assert_same_json(
            &serde_json::to_value(&incoming).unwrap(),
            &fixture_value(name),
            name,
        );
    }
}

#[test]
fn inbound_responses_round_trip() {
    for name in [
        "call_inbound_response.json",
        "call_inbound_response_reject.json",
        "chat_inbound_response.json",
    ] {
        let response: InboundResponse = serde_json::from_slice(&fixture(name)).unwrap();
        assert_same_json(
            &serde_json::to_value(&response).unwrap(),
            &fixture_value(name),
            name,
        );
        let body: serde_json::Value = serde_json::from_slice(&response.to_body()).unwrap();
        assert_same_json(&body, &fixture_value(name), name);
    }
}

#[test]
fn function_fixtures_round_trip() {
    for name in [
        "custom_function_request.json",
        "custom_function_request_args_only.json",
    ] {
        let call = FunctionCall::from_slice(&fixture(name)).unwrap();
        assert_same_json(
            &serde_json::to_value(&call).unwrap(),
            &fixture_value(name),
            name,
        );
    }
    let response: FunctionResponse =
        serde_json::from_slice(&fixture("custom_function_response.json")).unwrap();
    assert_same_json(
        &serde_json::to_value(&response).unwrap(),
        &fixture_value("custom_function_response.json"),
        "custom_function_response.json",
    );
}

/// Event payload structs (`CallEvent`, …) serialize without `event` and
/// deserialize from that form.
#[test]
fn payload_structs_round_trip_on_their_own() {
    use retell_webhooks::{CallEvent, ChatEvent, TranscriptUpdatedEvent, TransferEvent};
    fn check<T>(payload: &T, name: &str)
    where
        T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        let value = serde_json::to_value(payload).unwrap();
        let back: T = serde_json::from_value(value).unwrap();
        assert_eq!(&back, payload, "{name}");
    }
    for (name, _) in EVENT_FIXTURES {
        match WebhookEvent::from_slice(&fixture(name)).unwrap() {
            WebhookEvent::CallStarted(e)
            | WebhookEvent::CallEnded(e)
            | WebhookEvent::CallAnalyzed(e) => check::<CallEvent>(&e, name),
            WebhookEvent::TransferStarted(e)
            | WebhookEvent::TransferBridged(e)
            | WebhookEvent::TransferCancelled(e)
            | WebhookEvent::TransferEnded(e) => check::<TransferEvent>(&e, name),
            WebhookEvent::TranscriptUpdated(e) => check::<TranscriptUpdatedEvent>(&e, name),
            WebhookEvent::ChatStarted(e)
            | WebhookEvent::ChatEnded(e)
            | WebhookEvent::ChatAnalyzed(e) => check::<ChatEvent>(&e, name),
            // Unknown events serialize as the raw body, `event` included.
            WebhookEvent::Unknown(e) => check(&e, name),
            _ => unreachable!(),
        }
    }
    // Payloads are written without `event`; a whole body is refused.
    let started = WebhookEvent::from_slice(&fixture("call_started.json")).unwrap();
    let WebhookEvent::CallStarted(payload) = &started else {
        panic!()
    };
    assert!(
        serde_json::to_value(payload)
            .unwrap()
            .get("event")
            .is_none()
    );
    assert!(serde_json::from_value::<CallEvent>(fixture_value("call_started.json")).is_err());
}

/// An explicit `null` beside the call (`call` or the legacy `data`), or for
/// a part the event does not have, is written back; each body still parses
/// as it did.
#[test]
fn explicit_null_top_level_parts_round_trip() {
    use retell_webhooks::models::LegacyData;
    let cases: &[(&str, &str)] = &[
        (
            r#"{"event":"call_ended","call":null,"data":{"call_id":"c1"}}"#,
            "data",
        ),
        (
            r#"{"event":"call_ended","call":{"call_id":"c1"},"data":null}"#,
            "call",
        ),
        (
            r#"{"event":"transfer_started","data":{"call_id":"c1"},"call":null}"#,
            "data",
        ),
        (
            r#"{"event":"transcript_updated","call":{"call_id":"c1"},"data":null,"chat":null}"#,
            "call",
        ),
        (
            r#"{"event":"call_started","call":{"call_id":"c1"},"call_inbound":null}"#,
            "call",
        ),
        (
            r#"{"event":"chat_ended","chat":{"chat_id":"h1"},"call":null,"data":null}"#,
            "chat",
        ),
    ];
    for (body, holder) in cases {
        let expected: serde_json::Value = serde_json::from_str(body).unwrap();
        let event =
            WebhookEvent::from_slice(body.as_bytes()).unwrap_or_else(|e| panic!("{body}: {e}"));
        assert_eq!(serde_json::to_value(&event).unwrap(), expected, "{body}");
        let incoming = Incoming::from_slice(body.as_bytes()).unwrap();
        assert_eq!(serde_json::to_value(&incoming).unwrap(), expected, "{body}");
        let again: WebhookEvent = serde_json::from_str(body).unwrap();
        assert_eq!(again, event, "{body}");
        // Read as before: the object is where it was, and a `null` beside
        // the call is not an untyped path.
        let id = match &event {
            WebhookEvent::ChatEnded(e) => e.chat.chat_id.to_string(),
            other => other.call().unwrap().call_id.to_string(),
        };
        assert_eq!(id, if *holder == "chat" { "h1" } else { "c1" }, "{body}");
        assert!(expected[*holder].is_object(), "{body}");
        if matches!(
            event,
            WebhookEvent::CallEnded(_) | WebhookEvent::TransferStarted(_)
        ) {
            assert!(event.untyped_paths().is_empty(), "{body}");
        }
    }
    let legacy = |body: &str| match WebhookEvent::from_slice(body.as_bytes()).unwrap() {
        WebhookEvent::CallEnded(e) => e.legacy_data,
        other => panic!("{other:?}"),
    };
    assert_eq!(legacy(cases[0].0), LegacyData::Only);
    assert_eq!(legacy(cases[1].0), LegacyData::Absent);
    // Still refused when neither holds a call.
    for body in [
        r#"{"event":"call_ended","call":null}"#,
        r#"{"event":"call_ended","call":null,"data":null}"#,
    ] {
        assert!(WebhookEvent::from_slice(body.as_bytes()).is_err(), "{body}");
    }
}
