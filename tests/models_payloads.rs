//! The generated benchmark payloads are valid, realistic and round-trip.

mod common;

#[path = "../benches/support/payloads.rs"]
mod payloads;

use common::assert_same_json;
use retell_webhooks::{WebhookEvent, models::TranscriptItem};

#[test]
fn bench_bodies_have_the_advertised_sizes_and_round_trip() {
    let bodies = payloads::bench_bodies();
    let sizes: Vec<usize> = bodies.iter().map(|(_, b)| b.len()).collect();
    assert!((700..=1_500).contains(&sizes[0]), "{sizes:?}");
    assert!((27_000..=33_000).contains(&sizes[1]), "{sizes:?}");
    assert!((475_000..=525_000).contains(&sizes[2]), "{sizes:?}");
    for (name, body) in &bodies {
        let event = WebhookEvent::from_slice(body).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!event.is_unknown());
        let original: serde_json::Value = serde_json::from_slice(body).unwrap();
        assert_same_json(&serde_json::to_value(&event).unwrap(), &original, name);
    }
}

#[test]
fn generation_is_deterministic_and_realistic() {
    assert_eq!(
        payloads::call_of_size(30_000, false),
        payloads::call_of_size(30_000, false)
    );
    let event = WebhookEvent::from_slice(&payloads::call_of_size(30_000, false)).unwrap();
    let call = event.call().unwrap();
    let items = call.transcript_with_tool_calls.as_ref().unwrap();
    assert!(
        items
            .iter()
            .any(|i| matches!(i, TranscriptItem::ToolCallInvocation(_)))
    );
    assert!(
        items
            .iter()
            .any(|i| matches!(i, TranscriptItem::ToolCallResult(_)))
    );
    let words: Vec<_> = call
        .transcript_object
        .as_ref()
        .unwrap()
        .iter()
        .flat_map(|u| u.words.iter().flatten())
        .collect();
    assert!(words.len() > 150, "{}", words.len());
    assert!(
        words
            .windows(2)
            .all(|w| w[0].end.unwrap() <= w[1].start.unwrap()),
        "word times increase"
    );
    assert!(
        call.latency
            .as_ref()
            .unwrap()
            .e2e
            .as_ref()
            .unwrap()
            .values
            .as_ref()
            .unwrap()
            .len()
            > 5
    );
}
