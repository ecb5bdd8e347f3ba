//! Forward compatibility (unknown events, enum values and keys are kept;
//! minimal payloads, the event key last and events in any order parse; every
//! golden fixture reads as its variant), the legacy `data` key, null handling,
//! chat events and the model-wide rules (no `deny_unknown_fields`).

mod common;

use common::{assert_same_json, fixture, fixture_value};
use retell_webhooks::models::{
    CallStatus, CallType, DisconnectionReason, TransitionType, UserSentiment,
};
use retell_webhooks::{
    FunctionCall, InboundResponse, Incoming, WebhookEvent,
    models::{ChatMessage, LegacyData, TranscriptItem, TranscriptSubject, UntypedReason},
};
use serde_json::{Value, json};

fn parse(value: &Value) -> WebhookEvent {
    WebhookEvent::from_slice(value.to_string().as_bytes()).unwrap()
}

fn round_trip(value: &Value) {
    let event = parse(value);
    assert_same_json(&serde_json::to_value(&event).unwrap(), value, "round trip");
}

#[test]
fn an_unknown_event_keeps_its_name_and_raw_body() {
    let body = json!({"event": "call_exploded", "call": {"call_id": "c1"}, "n": null});
    let event = parse(&body);
    let WebhookEvent::Unknown(unknown) = &event else {
        panic!("{event:?}")
    };
    assert_eq!(unknown.event, "call_exploded");
    assert_eq!(unknown.raw, body); // exact, `null` included
    assert_eq!(event.call_id(), Some("c1"));
    assert_eq!(serde_json::to_value(&event).unwrap(), body);
    // Parts that would not fit the models do not matter for an unknown event.
    let odd = json!({"event": "call_exploded", "call": "not an object", "chat": [1]});
    let WebhookEvent::Unknown(unknown) = parse(&odd) else {
        panic!()
    };
    assert_eq!(unknown.raw, odd);
    // Inbound requests are not event-webhook events.
    let inbound = fixture("call_inbound_request.json");
    assert_eq!(
        WebhookEvent::from_slice(&inbound).unwrap().event_name(),
        "call_inbound"
    );
    assert!(WebhookEvent::from_slice(&inbound).unwrap().is_unknown());
}

#[test]
fn unknown_enum_values_are_kept() {
    let body = json!({"event": "call_ended", "call": {
        "call_id": "c1", "call_type": "hologram_call", "call_status": "paused",
        "direction": "sideways", "disconnection_reason": "brand_new_2027",
        "data_storage_setting": "nothing",
        "call_analysis": {"user_sentiment": "Ecstatic"},
        "transcript_with_tool_calls": [{"role": "node_transition", "former_node_id": "a",
            "former_node_name": "A", "new_node_id": "b", "new_node_name": "B", "transition_type": "teleport"}]
    }});
    let event = parse(&body);
    let call = event.call().unwrap();
    assert_eq!(
        call.disconnection_reason,
        Some(DisconnectionReason::Unknown("brand_new_2027".into()))
    );
    assert_eq!(call.call_type.as_ref().unwrap().as_str(), "hologram_call");
    assert!(call.call_status.as_ref().unwrap().is_unknown());
    assert_eq!(
        call.call_analysis
            .as_ref()
            .unwrap()
            .user_sentiment
            .as_ref()
            .unwrap()
            .to_string(),
        "Ecstatic"
    );
    let Some(TranscriptItem::NodeTransition(t)) =
        call.transcript_with_tool_calls.as_ref().unwrap().first()
    else {
        panic!()
    };
    assert_eq!(
        t.transition_type,
        Some(TransitionType::Unknown("teleport".into()))
    );
    round_trip(&body);
}

#[test]
fn enums_know_their_values() {
    assert_eq!(DisconnectionReason::KNOWN.len(), 39);
    for value in DisconnectionReason::KNOWN {
        let parsed: DisconnectionReason = value.parse().unwrap();
        assert!(!parsed.is_unknown(), "{value}");
        assert_eq!(parsed.as_str(), *value);
        assert_eq!(serde_json::to_value(&parsed).unwrap(), json!(value));
    }
    // Retell's own "Unknown" sentiment is a known value, not the fallback.
    let sentiment: UserSentiment = serde_json::from_value(json!("Unknown")).unwrap();
    assert_eq!(sentiment, UserSentiment::Undetermined);
    assert_eq!(CallType::from("web_call"), CallType::WebCall);
    assert_eq!(CallStatus::from("not_connected"), CallStatus::NotConnected);
}

#[test]
fn new_fields_everywhere_are_kept() {
    let body = json!({"event": "call_ended", "schema_version": 2, "call": {
        "call_id": "c1", "new_thing": {"a": [1, 2]},
        "latency": {"e2e": {"p50": 1, "p42": 3}, "brain": {"p50": 2}},
        "call_cost": {"combined_cost": 1, "product_costs": [{"product": "x", "cost": 1, "tax": 0.1}],
                      "total_duration_seconds": 1, "total_duration_unit_price": 1, "total_one_time_price": 0},
        "transcript_object": [{"role": "agent", "content": "hi", "words": [{"word": "hi", "start": 0, "end": 1, "confidence": 0.9}],
                               "metadata": {"response_id": 3}}],
        "transcript_with_tool_calls": [
            {"role": "tool_call_invocation", "tool_call_id": "t", "name": "n", "arguments": "", "type": "custom", "time_sec": 2.5, "future": true},
            {"role": "some_future_item", "payload": "x"},
            {"payload": "no role at all"},
            {"role": 7}
        ]
    }});
    let event = parse(&body);
    let WebhookEvent::CallEnded(ended) = &event else {
        panic!()
    };
    assert_eq!(ended.extra["schema_version"], 2);
    assert_eq!(ended.call.extra["new_thing"], json!({"a": [1, 2]}));
    let items = ended.call.transcript_with_tool_calls.as_ref().unwrap();
    let TranscriptItem::ToolCallInvocation(inv) = &items[0] else {
        panic!()
    };
    assert_eq!(inv.tool_type.as_ref().map(|t| t.as_str()), Some("custom"));
    assert_eq!(inv.arguments_json(), None);
    assert_eq!(items[1].role(), Some("some_future_item"));
    assert!(items[1].kind().unwrap().is_unknown());
    assert_eq!(
        items[0].kind(),
        Some(retell_webhooks::models::TranscriptRole::ToolCallInvocation)
    );
    assert!(
        matches!(&items[2], TranscriptItem::Unknown(v) if v.get("payload").unwrap() == "no role at all")
    );
    assert!(matches!(&items[3], TranscriptItem::Unknown(v) if v.get("role").unwrap() == 7));
    round_trip(&body);
}

#[test]
fn no_model_denies_unknown_fields() {
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
    let mut checked = 0;
    for path in rust_files(std::path::Path::new(src)) {
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            !text.contains(concat!("deny_", "unknown_fields")),
            "{} denies unknown fields",
            path.display()
        );
        checked += 1;
    }
    assert!(checked >= 8);
}

/// Keys of free-form values (raw JSON by design): an unknown key inside
/// them is data, not an unmodelled field.
const FREE_FORM: &[&str] = &[
    "metadata",
    "custom_analysis_data",
    "retell_llm_dynamic_variables",
    "collected_dynamic_variables",
    "custom_sip_headers",
    "custom_attributes",
    "conversation_eval",
    "transfer_destination",
    "transfer_option",
];

/// Puts `zz_future` into every object of `value`, and returns the paths of
/// the ones that are model objects (not inside a free-form value).
fn add_unknown_keys(value: &mut Value, path: &str, free: bool, out: &mut Vec<String>) {
    match value {
        Value::Object(object) => {
            for (key, child) in object.iter_mut() {
                let free = free || (FREE_FORM.contains(&key.as_str()) && path != "call.metadata");
                let child_path = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                add_unknown_keys(child, &child_path, free, out);
            }
            object.insert("zz_future".into(), json!(1));
            if !free {
                out.push(if path.is_empty() {
                    "zz_future".into()
                } else {
                    format!("{path}.zz_future")
                });
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                add_unknown_keys(item, &format!("{path}[{i}]"), free, out);
            }
        }
        _ => {}
    }
}

/// Every model object, at every depth, keeps unknown keys, writes them back
/// and reports them by path.
#[test]
fn every_model_object_keeps_and_reports_unknown_keys() {
    for name in [
        "call_analyzed_maximal.json",
        "chat_analyzed.json",
        "transfer_started.json",
    ] {
        let mut body = fixture_value(name);
        let mut expected = Vec::new();
        add_unknown_keys(&mut body, "", false, &mut expected);
        assert!(
            expected.len() > 10,
            "{name}: only {} objects",
            expected.len()
        );
        let event = parse(&body);
        assert_same_json(&serde_json::to_value(&event).unwrap(), &body, name);
        let mut reported: Vec<String> = event
            .untyped_paths()
            .into_iter()
            .filter(|u| u.reason == UntypedReason::UnknownKey)
            .map(|u| u.path)
            .collect();
        reported.sort();
        expected.sort();
        assert_eq!(reported, expected, "{name}");
    }
}

#[test]
fn minimal_payloads_parse() {
    let event = parse(&json!({"event": "call_started", "call": {"call_id": "c1"}}));
    let call = event.call().unwrap();
    assert_eq!(call.call_id, "c1");
    assert!(call.agent_id.is_none() && call.from_number.is_none() && call.call_type.is_none());
    let web = parse(
        &json!({"event": "call_ended", "call": {"call_id": "c2", "call_type": "web_call", "access_token": "tok"}}),
    );
    assert!(web.call().unwrap().from_number.is_none());
    round_trip(&json!({"event": "call_started", "call": {"call_id": "c1"}}));
    // `call_id` itself is required.
    assert!(WebhookEvent::from_slice(br#"{"event":"call_started","call":{}}"#).is_err());
}

#[test]
fn null_in_every_optional_field_round_trips_as_null() {
    let cases = [
        ("call_analyzed_maximal.json", "call", "call_id"),
        ("chat_analyzed.json", "chat", "chat_id"),
    ];
    for (name, key, id) in cases {
        let mut body = fixture_value(name);
        let fields: Vec<String> = body[key]
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| *k != id)
            .cloned()
            .collect();
        assert!(fields.len() > 10, "{name}: {fields:?}");
        for field in &fields {
            body[key][field] = Value::Null;
        }
        body["event_timestamp"] = Value::Null;
        let event = parse(&body);
        assert!(event.fallbacks().is_empty(), "{name}");
        assert_same_json(&serde_json::to_value(&event).unwrap(), &body, name);
        assert_eq!(event.event_timestamp(), None);
        let written = serde_json::to_value(&event).unwrap();
        for field in &fields {
            assert_eq!(written[key][field], Value::Null, "{name}: {field}");
        }
        if let Some(call) = event.call() {
            assert!(call.is_null("agent_id") && call.agent_id.is_none());
            assert!(!call.is_null("call_id") && !call.is_null("no_such_field"));
        }
    }
    // Nested optional fields too.
    let body = json!({"event": "call_analyzed", "call": {"call_id": "c1",
    "call_analysis": {"call_summary": null, "in_voicemail": null, "user_sentiment": null, "call_successful": null, "custom_analysis_data": null},
    "latency": {"e2e": {"p50": null, "values": null}, "tts": null},
    "call_cost": {"combined_cost": 1, "product_costs": [{"product": "p", "cost": 1, "unit_price": null, "is_transfer_leg_cost": null}],
                  "total_duration_seconds": 1, "total_duration_unit_price": 1},
    "telephony_identifier": {"twilio_call_sid": null},
    "transcript_object": [{"role": "agent", "content": "", "words": [{"word": null, "start": null, "end": null}]}],
    "transcript_with_tool_calls": [
        {"role": "tool_call_invocation", "tool_call_id": "t", "name": "n", "arguments": "{}", "thought_signature": null},
        {"role": "tool_call_result", "tool_call_id": "t", "content": "", "successful": null},
        {"role": "sms", "content": "x", "time_sec": 1, "multimedia": null}
    ]}});
    let event = parse(&body);
    let call = event.call().unwrap();
    assert_eq!(call.call_analysis.as_ref().unwrap().call_summary, None);
    assert!(call.call_analysis.as_ref().unwrap().is_null("call_summary"));
    assert_same_json(
        &serde_json::to_value(&event).unwrap(),
        &body,
        "nested nulls",
    );
    let written = serde_json::to_value(parse(&body)).unwrap();
    assert_eq!(
        written["call"]["transcript_object"][0]["words"][0],
        json!({"word": null, "start": null, "end": null})
    );
    assert_eq!(
        written["call"]["transcript_with_tool_calls"][1],
        json!({"role": "tool_call_result", "tool_call_id": "t", "content": "", "successful": null})
    );
}

#[test]
fn the_event_key_may_come_last() {
    let body = br#"{"call":{"call_id":"c1"},"event_timestamp":5,"event":"call_ended"}"#;
    let event = WebhookEvent::from_slice(body).unwrap();
    assert_eq!(event.event_name(), "call_ended");
    assert_eq!(event.event_timestamp(), Some(5));
    let chat = br#"{"chat":{"chat_id":"ch1","agent_id":"a"},"event":"chat_started"}"#;
    assert_eq!(
        WebhookEvent::from_slice(chat).unwrap().chat_id(),
        Some("ch1")
    );
}

#[test]
fn the_legacy_data_key_is_read_as_the_call() {
    // Only `data`: read as the call, written back as `data`.
    let only = json!({"event": "call_ended", "data": {"call_id": "c1", "agent_id": "a1"}});
    let event = parse(&only);
    let WebhookEvent::CallEnded(ended) = &event else {
        panic!()
    };
    assert_eq!(ended.legacy_data, LegacyData::Only);
    assert_eq!(event.call_id(), Some("c1"));
    assert_eq!(event.agent_id(), Some("a1"));
    round_trip(&only);
    // Both: `call` wins (whatever the order), `data` is kept.
    for body in [
        json!({"event": "call_ended", "call": {"call_id": "new"}, "data": {"call_id": "old"}}),
        serde_json::from_str(
            r#"{"data":{"call_id":"old"},"event":"call_ended","call":{"call_id":"new"}}"#,
        )
        .unwrap(),
    ] {
        let event = parse(&body);
        assert_eq!(event.call_id(), Some("new"));
        let WebhookEvent::CallEnded(ended) = &event else {
            panic!()
        };
        assert!(matches!(&ended.legacy_data, LegacyData::Alongside(data) if data.call_id == "old"));
        round_trip(&body);
    }
    // Transfer and transcript events accept it too; the synthetic fixture has both.
    let transfer = json!({"event": "transfer_started", "data": {"call_id": "c1"}, "transfer_destination": {"number": "+1"}});
    assert_eq!(parse(&transfer).call_id(), Some("c1"));
    round_trip(&transfer);
    let forward = fixture_value("synthetic_forward_compat.json");
    assert!(parse(&forward).is_unknown());
}

#[test]
fn chat_events_parse() {
    for (name, event_name) in [
        ("chat_started.json", "chat_started"),
        ("chat_ended.json", "chat_ended"),
        ("chat_analyzed.json", "chat_analyzed"),
    ] {
        let event = WebhookEvent::from_slice(&fixture(name)).unwrap();
        assert_eq!(event.event_name(), event_name);
        assert!(event.chat().is_some() && event.call().is_none());
        assert!(event.chat_id().is_some());
        assert!(event.agent_id().is_some());
    }
    let event = WebhookEvent::from_slice(&fixture("chat_analyzed.json")).unwrap();
    let messages = event
        .chat()
        .unwrap()
        .message_with_tool_calls
        .as_ref()
        .unwrap();
    let roles: Vec<_> = messages.iter().filter_map(ChatMessage::role).collect();
    for role in [
        "agent",
        "user",
        "tool_call_invocation",
        "tool_call_result",
        "node_transition",
        "state_transition",
        "injected",
        "sms",
    ] {
        assert!(roles.contains(&role), "{role} missing from {roles:?}");
    }
    assert!(
        !messages
            .iter()
            .any(|m| matches!(m, ChatMessage::Unknown(_)))
    );
    // Unknown chat message kinds are kept whole.
    let body = json!({"event": "chat_ended", "chat": {"chat_id": "c", "message_with_tool_calls": [
        {"role": "hologram", "x": 1}, {"content": "no role", "role": "agent", "message_id": "m"}]}});
    let event = parse(&body);
    let messages = event
        .chat()
        .unwrap()
        .message_with_tool_calls
        .as_ref()
        .unwrap();
    assert_eq!(
        messages[0],
        ChatMessage::Unknown(json!({"role": "hologram", "x": 1}).into())
    );
    assert_eq!(messages[1].content(), Some("no role"));
    assert_eq!(
        messages[1].kind(),
        Some(retell_webhooks::models::ChatRole::Agent)
    );
    round_trip(&body);
}

#[test]
fn every_golden_fixture_parses_to_its_variant() {
    let expect = [
        ("call_started.json", "call_started"),
        ("call_ended_phone.json", "call_ended"),
        ("call_analyzed_maximal.json", "call_analyzed"),
        ("transcript_updated.json", "transcript_updated"),
        ("transfer_started.json", "transfer_started"),
        ("transfer_bridged.json", "transfer_bridged"),
        ("transfer_cancelled.json", "transfer_cancelled"),
        ("transfer_ended.json", "transfer_ended"),
    ];
    for (name, event_name) in expect {
        let event = WebhookEvent::from_slice(&fixture(name)).unwrap();
        assert_eq!(event.event_name(), event_name);
        assert!(!event.is_unknown());
        assert!(event.call_id().is_some());
    }
    // The maximal fixture: every item kind, nothing unknown, every Call field typed.
    let event = WebhookEvent::from_slice(&fixture("call_analyzed_maximal.json")).unwrap();
    let call = event.call().unwrap();
    assert!(
        call.extra.is_empty(),
        "unmodelled keys: {:?}",
        call.extra.keys().collect::<Vec<_>>()
    );
    let items = call.transcript_with_tool_calls.as_ref().unwrap();
    assert!(
        !items
            .iter()
            .any(|i| matches!(i, TranscriptItem::Unknown(_)))
    );
    let mut roles: Vec<_> = items.iter().filter_map(TranscriptItem::role).collect();
    roles.sort_unstable();
    roles.dedup();
    assert_eq!(roles.len(), 9, "{roles:?}");
    let latency = call.latency.as_ref().unwrap();
    assert!(
        latency.e2e.is_some()
            && latency.asr.is_some()
            && latency.llm.is_some()
            && latency.tts.is_some()
    );
    assert!(
        latency.knowledge_base.is_some()
            && latency.s2s.is_some()
            && latency.llm_websocket_network_rtt.is_some()
    );
    assert!(
        call.call_analysis.is_some() && call.call_cost.is_some() && call.llm_token_usage.is_some()
    );
    assert_eq!(
        call.start_time().unwrap().unix_timestamp() * 1000,
        call.start_timestamp.unwrap() as i64
    );
    assert!(call.end_time().unwrap() > call.start_time().unwrap());
    assert!(call.duration().is_some());
}

#[test]
fn events_parse_in_any_order() {
    // Each event parses on its own; `call_ended` for a call that never started.
    let analyzed = parse(
        &json!({"event": "call_analyzed", "call": {"call_id": "c1", "call_analysis": {"call_successful": true}}}),
    );
    let ended = parse(
        &json!({"event": "call_ended", "call": {"call_id": "c1", "call_status": "ended", "disconnection_reason": "dial_no_answer"}}),
    );
    assert_eq!(analyzed.call_id(), ended.call_id());
}

#[test]
fn transfer_extras() {
    let event = WebhookEvent::from_slice(&fixture("transfer_started.json")).unwrap();
    let WebhookEvent::TransferStarted(transfer) = &event else {
        panic!()
    };
    assert_eq!(transfer.destination_number(), Some("+15105550177"));
    assert_eq!(transfer.destination_extension(), Some("204"));
    assert_eq!(transfer.transfer_type(), Some("warm_transfer"));
    let ended = WebhookEvent::from_slice(&fixture("transfer_ended.json")).unwrap();
    let WebhookEvent::TransferEnded(t) = &ended else {
        panic!()
    };
    assert!(t.transfer_destination.is_none());
    assert!(
        t.destination_number().is_some(),
        "falls back to call.transfer_destination"
    );
    assert!(t.call.transfer_end_time().is_some());
}

#[test]
fn transcript_updated_voice_chat_and_top_level_copy() {
    let event = WebhookEvent::from_slice(&fixture("transcript_updated.json")).unwrap();
    let WebhookEvent::TranscriptUpdated(update) = &event else {
        panic!()
    };
    assert!(update.call().is_some());
    assert!(update.transcript_with_tool_calls().is_some());
    let top = json!({"event": "transcript_updated", "call": {"call_id": "c1"},
        "transcript_with_tool_calls": [{"role": "dtmf", "digit": "5"}]});
    let WebhookEvent::TranscriptUpdated(update) = parse(&top) else {
        panic!()
    };
    assert_eq!(update.transcript_with_tool_calls().unwrap().len(), 1);
    round_trip(&top);
    let chat = json!({"event": "transcript_updated", "chat": {"chat_id": "ch1", "message_with_tool_calls": [{"role": "user", "content": "hi"}]}});
    let event = parse(&chat);
    let WebhookEvent::TranscriptUpdated(update) = &event else {
        panic!()
    };
    assert!(matches!(update.subject, TranscriptSubject::Chat(_)));
    assert_eq!(event.chat_id(), Some("ch1"));
    round_trip(&chat);
    // Unused typed parts of a known event are kept, not dropped.
    let mixed = json!({"event": "call_ended", "call": {"call_id": "c1"}, "chat": {"chat_id": "x"}, "transfer_option": {"type": "t"}});
    round_trip(&mixed);
}

#[test]
fn real_payload_quirks() {
    let body = json!({"event": "call_ended", "call": {
        "call_id": "playground", "agent_version": 0, "from_number": "anonymous",
        "latency": {}, "call_analysis": {"custom_analysis_data": []},
        "call_cost": {"combined_cost": 0, "product_costs": [], "total_duration_seconds": 0, "total_duration_unit_price": 0},
        "opt_out_sensitive_data_storage": true, "data_storage_setting": "everything",
        "custom_sip_headers": {"X-RetellAI-CallId": "abc"},
        "transcript_object": [{"role": "user", "content": "", "words": []}, {"role": "agent", "content": "a", "words": [{"word": "a", "start": 1, "end": 2}]}],
        "latency_float": 2023.5500000000002,
        "e2e_latency": {"p50": 800}, "version": 3, "audio_encoding": "mulaw", "audio_websocket_protocol": "twilio",
        "sample_rate": 8000, "end_call_after_silence_ms": 600000, "conversation_eval": {"x": 1}
    }});
    let event = parse(&body);
    let call = event.call().unwrap();
    assert_eq!(call.agent_version, Some(0));
    assert_eq!(call.agent_version_or_legacy(), Some(0));
    assert_eq!(
        call.call_analysis.as_ref().unwrap().custom_analysis_data,
        Some(json!([]).into())
    );
    assert_eq!(call.opt_out_sensitive_data_storage, Some(true));
    assert_eq!(call.version, Some(3));
    assert!(call.extra.contains_key("latency_float"));
    // Floats are written back with shortest round-trip formatting.
    let text = serde_json::to_string(&event).unwrap();
    assert!(text.contains("2023.5500000000002"));
    round_trip(&body);
}

#[test]
fn inbound_requests_and_responses() {
    let Incoming::CallInbound(request) =
        Incoming::from_slice(&fixture("call_inbound_request.json")).unwrap()
    else {
        panic!()
    };
    assert_eq!(
        request.call_inbound.agent_version,
        Some(retell_webhooks::models::AgentVersion::Number(7))
    );
    assert_eq!(
        request.call_inbound.custom_sip_headers.as_ref().unwrap()["x-crm-session"],
        "7c1f2a"
    );
    assert_eq!(request.event_timestamp, Some(1_785_423_597_850));
    let Incoming::ChatInbound(sms) =
        Incoming::from_slice(&fixture("chat_inbound_request.json")).unwrap()
    else {
        panic!()
    };
    assert_eq!(sms.event_timestamp, None);
    assert_eq!(
        sms.chat_inbound.from_number.as_deref(),
        Some("+14155550142")
    );
    // The request types deserialize on their own as well.
    let direct: retell_webhooks::InboundCallRequest =
        serde_json::from_slice(&fixture("call_inbound_request.json")).unwrap();
    assert_eq!(direct, request);
    assert!(
        serde_json::from_slice::<retell_webhooks::InboundCallRequest>(&fixture(
            "chat_inbound_request.json"
        ))
        .is_err()
    );

    // Builder.
    let built = InboundResponse::call()
        .override_agent_id("agent_9b2e4d6f8a0c1e3b5d7f9a2c4e")
        .override_agent_version(4)
        .dynamic_variables([
            ("customer_name", "Maria Lopez"),
            ("last_visit", "2026-02-11"),
        ])
        .dynamic_variables([("balance_due", "40")])
        .metadata(json!({"crm_contact_id": "cnt_20931"}))
        .agent_override(
            fixture_value("call_inbound_response.json")["call_inbound"]["agent_override"].clone(),
        );
    assert_same_json(
        &serde_json::to_value(&built).unwrap(),
        &fixture_value("call_inbound_response.json"),
        "builder",
    );
    assert!(!built.is_reject());
    assert_eq!(InboundResponse::call().to_body(), br#"{"call_inbound":{}}"#);
    let reject = InboundResponse::call().reject();
    assert!(reject.is_reject());
    assert_eq!(
        serde_json::to_value(&reject).unwrap(),
        fixture_value("call_inbound_response_reject.json")
    );
    assert!(
        serde_json::from_value::<InboundResponse>(json!({"call_inbound": {}, "chat_inbound": {}}))
            .is_err()
    );
}

#[test]
fn custom_function_forms() {
    let wrapped = FunctionCall::from_slice(&fixture("custom_function_request.json")).unwrap();
    assert_eq!(wrapped.name(), Some("check_availability"));
    assert_eq!(
        wrapped.call().unwrap().call_status,
        Some(CallStatus::Ongoing)
    );
    assert_eq!(wrapped.args().unwrap().get("service").unwrap(), "cleaning");
    #[derive(serde::Deserialize)]
    struct Args {
        service: String,
    }
    assert_eq!(wrapped.args_as::<Args>().unwrap().service, "cleaning");
    let args_only =
        FunctionCall::from_slice(&fixture("custom_function_request_args_only.json")).unwrap();
    assert!(matches!(args_only, FunctionCall::ArgsOnly(_)));
    assert_eq!(args_only.args_as::<Args>().unwrap().service, "cleaning");
    // Chat agents: `chat` instead of `call`.
    let chat =
        FunctionCall::from_slice(br#"{"name":"f","chat":{"chat_id":"c"},"args":{}}"#).unwrap();
    assert_eq!(chat.chat().unwrap().chat_id, "c");
    // Args that merely contain a `name` stay args.
    let args = FunctionCall::from_slice(br#"{"name":"Maria","args":"x"}"#).unwrap();
    assert!(matches!(args, FunctionCall::ArgsOnly(_)));
    // A drifted field of the call falls back; the call is still typed.
    let drifted = FunctionCall::from_slice(
        br#"{"name":"f","call":{"call_id":"c","duration_ms":-1},"args":{}}"#,
    )
    .unwrap();
    let call = drifted.call().unwrap();
    assert_eq!(call.duration_ms, None);
    assert_eq!(call.fallback("duration_ms"), Some(&json!(-1).into()));
    // A wrapped body whose call has no id is an error with its path, not args.
    let err = FunctionCall::from_slice(br#"{"name":"f","call":{"duration_ms":1},"args":{}}"#)
        .unwrap_err();
    assert_eq!(err.path(), "call");
    for bad in [
        &b"[]"[..],
        b"\"x\"",
        b"",
        b"{\"a\":1} x",
        b"{\"a\":\"\xff\"}",
    ] {
        assert!(FunctionCall::from_slice(bad).is_err());
    }
    // Responses.
    let json_answer =
        retell_webhooks::FunctionResponse::json(fixture_value("custom_function_response.json"));
    assert_eq!(json_answer.content_type(), "application/json");
    assert_eq!(
        serde_json::from_slice::<Value>(&json_answer.to_body()).unwrap(),
        fixture_value("custom_function_response.json")
    );
    let text = retell_webhooks::FunctionResponse::text("x".repeat(15_001));
    assert!(text.exceeds_llm_limit());
    assert!(!retell_webhooks::FunctionResponse::text("ok").exceeds_llm_limit());
}

#[test]
fn integers_where_floats_are_expected() {
    let body = json!({"event": "call_ended", "call": {"call_id": "c1",
        "llm_token_usage": {"values": [1, 2], "average": 1, "num_requests": 2},
        "latency": {"e2e": {"p50": 800, "num": 3, "values": [1, 2.5]}}}});
    let event = parse(&body);
    assert_eq!(
        event
            .call()
            .unwrap()
            .llm_token_usage
            .as_ref()
            .unwrap()
            .average,
        Some(1.0)
    );
    round_trip(&body);
}

#[test]
fn verify_then_parse() {
    use retell_webhooks::{Error, Verifier, sign};
    const KEY: &str = "test-api-key";
    const NOW: u64 = 1_700_000_000_000;
    let verifier = Verifier::new(KEY).unwrap();
    let body = fixture("call_started.json");
    let header = sign(&body, KEY, NOW);
    let event = verifier
        .verify_and_parse_at::<WebhookEvent>(&body, &header, NOW)
        .unwrap();
    assert_eq!(event.event_name(), "call_started");
    let incoming = verifier
        .verify_and_parse_at::<Incoming>(
            &fixture("call_inbound_request.json"),
            &sign(&fixture("call_inbound_request.json"), KEY, NOW),
            NOW,
        )
        .unwrap();
    assert_eq!(incoming.event_name(), "call_inbound");
    // A bad signature is never parsed.
    let err = verifier
        .verify_and_parse_at::<WebhookEvent>(b"not json", &sign(b"other", KEY, NOW), NOW)
        .unwrap_err();
    assert!(matches!(err, Error::Verify(_)));
    // A good signature over a bad body is a parse error.
    let err = verifier
        .verify_and_parse_at::<WebhookEvent>(b"[]", &sign(b"[]", KEY, NOW), NOW)
        .unwrap_err();
    assert!(matches!(err, Error::Parse(_)));
    // The system-clock variant checks the window (NOW is in 2023).
    assert!(matches!(
        verifier.verify_and_parse::<WebhookEvent>(&body, &header),
        Err(Error::Verify(_))
    ));
}
fn rust_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}
