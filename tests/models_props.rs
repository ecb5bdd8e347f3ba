//! Property tests: no input makes the parsers panic, and whatever parses
//! re-serializes to something that parses to the same value.

mod common;

use proptest::prelude::*;
use retell_webhooks::{FunctionCall, Incoming, WebhookEvent};

const FIXTURES: &[&str] = &[
    "call_started.json",
    "call_analyzed_maximal.json",
    "transfer_started.json",
    "chat_analyzed.json",
    "call_inbound_request.json",
    "synthetic_forward_compat.json",
];

fn check_stable(body: &[u8]) {
    let _ = FunctionCall::from_slice(body);
    if let Ok(incoming) = Incoming::from_slice(body) {
        let written = serde_json::to_vec(&incoming).unwrap();
        let again = Incoming::from_slice(&written).unwrap();
        assert_eq!(
            serde_json::to_value(&again).unwrap(),
            serde_json::to_value(&incoming).unwrap()
        );
    }
    let _ = WebhookEvent::from_slice(body);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        check_stable(&body);
    }

    #[test]
    fn mutated_fixtures_never_panic(
        index in 0..FIXTURES.len(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let mut body = common::fixture(FIXTURES[index]);
        for (at, byte) in edits {
            let i = at.index(body.len());
            body[i] = byte;
        }
        check_stable(&body);
    }

    #[test]
    fn any_json_in_metadata_round_trips(metadata in arb_json()) {
        let body = serde_json::json!({"event": "call_ended", "call": {"call_id": "c1", "metadata": metadata}});
        let event = WebhookEvent::from_slice(body.to_string().as_bytes()).unwrap();
        let written = serde_json::to_value(&event).unwrap();
        // Anything, `null` included, comes back unchanged.
        common::assert_same_json(&written, &body, "metadata");
    }
}

fn arb_json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        (-1e12f64..1e12).prop_map(serde_json::Value::from),
        "[a-z\\u{e9}\\u{1f600} ]{0,12}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
            proptest::collection::btree_map("[a-z_]{1,8}", inner, 0..6)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}
