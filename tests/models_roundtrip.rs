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
