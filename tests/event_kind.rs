//! The event-kind catalogue: names round-trip, every kind parses from its
//! fixture to the matching `kind()`, unknown names have no kind.

use std::collections::HashSet;
use std::path::Path;

use retell_webhooks::{EventKind, Incoming, WebhookEvent};
use retell_webhooks::{INBOUND_EVENTS, KNOWN_EVENTS};

/// The fixture body of each kind (`tests/fixtures/`).
fn fixture(kind: EventKind) -> &'static str {
    match kind {
        EventKind::CallStarted => "call_started.json",
        EventKind::CallEnded => "call_ended_phone.json",
        EventKind::CallAnalyzed => "call_analyzed_maximal.json",
        EventKind::TranscriptUpdated => "transcript_updated.json",
        EventKind::TransferStarted => "transfer_started.json",
        EventKind::TransferBridged => "transfer_bridged.json",
        EventKind::TransferCancelled => "transfer_cancelled.json",
        EventKind::TransferEnded => "transfer_ended.json",
        EventKind::ChatStarted => "chat_started.json",
        EventKind::ChatEnded => "chat_ended.json",
        EventKind::ChatAnalyzed => "chat_analyzed.json",
        EventKind::CallInbound => "call_inbound_request.json",
        EventKind::ChatInbound => "chat_inbound_request.json",
        other => panic!("no fixture for {other}: add one to tests/fixtures"),
    }
}

fn read_fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn all_round_trips_through_as_str_and_from_str() {
    assert_eq!(EventKind::ALL.len(), 13);
    let mut names = HashSet::new();
    for &kind in EventKind::ALL {
        let name = kind.as_str();
        assert!(names.insert(name), "duplicate name {name}");
        assert_eq!(name.parse::<EventKind>(), Ok(kind));
        assert_eq!(kind.to_string(), name);
    }
}

#[test]
fn name_lists_are_derived_from_the_catalogue() {
    let events: Vec<_> = EventKind::ALL
        .iter()
        .filter(|k| !k.is_inbound())
        .map(|k| k.as_str())
        .collect();
    let inbound: Vec<_> = EventKind::ALL
        .iter()
        .filter(|k| k.is_inbound())
        .map(|k| k.as_str())
        .collect();
    assert_eq!(events, KNOWN_EVENTS);
    assert_eq!(inbound, INBOUND_EVENTS);
    assert_eq!(inbound, ["call_inbound", "chat_inbound"]);
}

#[test]
fn every_kind_parses_from_its_fixture() {
    for &kind in EventKind::ALL {
        let body = read_fixture(fixture(kind));
        let incoming = Incoming::from_slice(&body).unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert_eq!(incoming.kind(), Some(kind), "{kind}");
        assert_eq!(incoming.event_name(), kind.as_str());

        let event = WebhookEvent::from_slice(&body).unwrap_or_else(|e| panic!("{kind}: {e}"));
        if kind.is_inbound() {
            // Not an event-webhook event: handed over raw, with no kind.
            assert!(event.is_unknown(), "{kind}");
            assert_eq!(event.kind(), None);
            assert_eq!(event.event_name(), kind.as_str());
        } else {
            assert_eq!(event.kind(), Some(kind), "{kind}");
            assert!(matches!(incoming, Incoming::Event(_)));
        }
    }
}

#[test]
fn unknown_names_have_no_kind() {
    let body = br#"{"event":"call_exploded","call":{"call_id":"call_1"}}"#;
    let event = WebhookEvent::from_slice(body).expect("an unknown event parses");
    assert_eq!(event.kind(), None);
    assert_eq!(event.event_name(), "call_exploded");
    let incoming = Incoming::from_slice(body).expect("an unknown event parses");
    assert_eq!(incoming.kind(), None);

    for name in [
        "call_exploded",
        "",
        "Call_Started",
        "call_started ",
        "CALL_ENDED",
    ] {
        assert!(name.parse::<EventKind>().is_err(), "{name:?}");
    }
}

#[test]
fn the_parse_error_does_not_echo_the_name() {
    let secret = "+14155550123";
    let err = secret.parse::<EventKind>().expect_err("not a kind");
    assert!(!err.to_string().contains(secret));
    assert!(!format!("{err:?}").contains(secret));
    let _: &dyn std::error::Error = &err;
}

#[test]
fn parse_errors_print_only_catalogue_names() {
    let err = WebhookEvent::from_slice(br#"{"event":"call_ended","call":{"duration_ms":1}}"#)
        .expect_err("the call has no id");
    assert_eq!(err.event(), Some("call_ended"));
    assert!(err.to_string().ends_with("(event `call_ended`)"), "{err}");

    // A broken envelope with a name outside the catalogue: readable, not printed.
    let err = WebhookEvent::from_slice(br#"{"event":"secret_name","event":"call_ended"}"#)
        .expect_err("duplicate `event`");
    assert_eq!(err.event(), Some("secret_name"));
    assert!(!err.to_string().contains("secret_name"), "{err}");
    assert!(!err.to_string().contains("(event"), "{err}");
}
