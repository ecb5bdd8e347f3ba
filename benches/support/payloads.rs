//! Deterministic, realistic Retell payloads of a chosen size, shared by the
//! parse benchmark and the tests (included with `#[path]`, so nothing here is
//! part of the library).
//!
//! A call is a sequence of turns. Each turn is an utterance with word timings
//! (about 3.5 words per second, 0.28 s per word, pauses between turns); every
//! fourth turn the agent calls a tool (invocation + result), and flows move
//! between nodes. `call_ended`/`call_analyzed` carry the transcript three times
//! with word timings (`transcript_object`, `transcript_with_tool_calls`,
//! `scrubbed_transcript_with_tool_calls`), as real bodies do, plus latency
//! statistics with one value per agent turn.
#![allow(dead_code)]

use serde_json::{Map, Value, json};

const WORDS: &[&str] = &[
    "I'd",
    "like",
    "to",
    "book",
    "a",
    "cleaning",
    "for",
    "next",
    "week,",
    "please.",
    "Sure,",
    "could",
    "I",
    "have",
    "your",
    "date",
    "of",
    "birth?",
    "It's",
    "March",
    "third.",
    "Thank",
    "you.",
    "Let",
    "me",
    "check",
    "the",
    "calendar.",
    "Tuesday",
    "at",
    "ten",
    "works",
    "for",
    "me.",
    "Great,",
    "you're",
    "all",
    "set.",
    "Is",
    "there",
    "anything",
    "else",
    "I",
    "can",
    "help",
    "with",
    "today?",
];

/// Small deterministic generator (64-bit LCG); no dependency, same bytes every run.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// A millisecond-ish float with two to four decimals, like real latencies.
    fn ms(&mut self, base: f64, spread: u64) -> f64 {
        base + self.below(spread * 100) as f64 / 100.0 + self.below(100) as f64 / 10_000.0
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn base_call(status: &str) -> Map<String, Value> {
    let value = json!({
        "call_id": "call_8e2f4a6c1b9d3e7f5a0c2b4d6e",
        "call_type": "phone_call",
        "agent_id": "agent_3f9c2b7e4a1d8c6b5e0f2a9d7c",
        "agent_version": 7,
        "agent_name": "Harbor Dental Receptionist",
        "agent_tag": "prod",
        "call_status": status,
        "direction": "inbound",
        "from_number": "+14155550142",
        "to_number": "+16505550199",
        "start_timestamp": 1_785_423_600_000u64,
        "metadata": {"crm_contact_id": "cnt_20931", "campaign": "recall-2026-q3"},
        "retell_llm_dynamic_variables": {"customer_name": "Maria Lopez", "clinic_location": "Oakland"},
        "custom_sip_headers": {"x-crm-session": "7c1f2a", "user-to-user": "616263;encoding=hex"},
        "telephony_identifier": {"twilio_call_sid": "CA9f1c3e5a7b9d1f3a5c7e9b1d3f5a7c9e"},
        "data_storage_setting": "everything",
        "opt_in_signed_url": false
    });
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// A `call_started` body (≈1 KB).
pub fn call_started() -> Vec<u8> {
    let body = json!({"event": "call_started", "call": Value::Object(base_call("ongoing"))});
    serde_json::to_vec(&body).unwrap_or_default()
}

/// A `call_ended` (or, with `analyzed`, `call_analyzed`) body with `turns` turns.
pub fn call_with_turns(turns: usize, analyzed: bool) -> Vec<u8> {
    let mut rng = Lcg(0x005E_ED0F_CA11);
    let mut call = base_call("ended");
    let mut clock = 0.62_f64;
    let mut utterances = Vec::new();
    let mut items = Vec::new();
    let mut transcript = String::new();
    let mut e2e = Vec::new();
    for turn in 0..turns {
        let agent = turn % 2 == 0;
        let role = if agent { "agent" } else { "user" };
        let n_words = 6 + rng.below(14) as usize;
        let mut words = Vec::with_capacity(n_words);
        let mut content = Vec::with_capacity(n_words);
        for _ in 0..n_words {
            let word = WORDS[rng.below(WORDS.len() as u64) as usize];
            let start = round3(clock);
            let end = round3(clock + 0.2 + rng.below(20) as f64 / 100.0);
            clock = end + 0.04;
            words.push(json!({"word": word, "start": start, "end": end}));
            content.push(word);
        }
        clock += 0.4 + rng.below(150) as f64 / 100.0;
        let content = content.join(" ");
        transcript.push_str(if agent { "Agent: " } else { "User: " });
        transcript.push_str(&content);
        transcript.push('\n');
        let utterance = json!({"role": role, "content": content, "words": words});
        utterances.push(utterance.clone());
        items.push(utterance);
        if agent {
            e2e.push(rng.ms(700.0, 900));
        }
        if turn % 4 == 3 {
            let id = format!("tool_call_{turn:04x}{:06x}", rng.below(0xFF_FFFF));
            items.push(json!({"role": "tool_call_invocation", "tool_call_id": id, "name": "check_availability",
                "arguments": format!("{{\"service\":\"cleaning\",\"week_of\":\"2026-08-{:02}\"}}", 1 + turn % 28)}));
            items.push(
                json!({"role": "tool_call_result", "tool_call_id": id, "successful": true,
                "content": "{\"slots\":[\"2026-08-04T10:00\",\"2026-08-05T14:30\"]}"}),
            );
        }
        if turn % 10 == 9 {
            items.push(
                json!({"role": "node_transition", "former_node_id": format!("node-{turn}"),
                "former_node_name": "Booking", "new_node_id": format!("node-{}", turn + 1),
                "new_node_name": "Confirm", "transition_type": "normal"}),
            );
        }
    }
    let duration_ms = (clock * 1000.0) as u64;
    let stats = |rng: &mut Lcg, base: f64, values: &[f64]| {
        json!({"p50": rng.ms(base, 100), "p90": rng.ms(base * 1.4, 100), "p95": rng.ms(base * 1.6, 100),
               "p99": rng.ms(base * 2.0, 100), "max": rng.ms(base * 2.2, 100), "min": rng.ms(base * 0.5, 50),
               "num": values.len(), "values": values})
    };
    let llm: Vec<f64> = e2e.iter().map(|v| round3(v * 0.45)).collect();
    let tts: Vec<f64> = e2e.iter().map(|v| round3(v * 0.2)).collect();
    let latency = json!({
        "e2e": stats(&mut rng, 900.0, &e2e), "llm": stats(&mut rng, 400.0, &llm),
        "tts": stats(&mut rng, 180.0, &tts), "asr": stats(&mut rng, 120.0, &tts),
    });
    let end_timestamp = 1_785_423_600_000u64 + duration_ms;
    let extra = json!({
        "end_timestamp": end_timestamp,
        "duration_ms": duration_ms,
        "disconnection_reason": "user_hangup",
        "transcript": transcript,
        "transcript_object": utterances,
        "transcript_with_tool_calls": items.clone(),
        "scrubbed_transcript_with_tool_calls": items,
        "recording_url": "https://recordings.retell.example/call_8e2f/recording.wav",
        "public_log_url": "https://logs.retell.example/call_8e2f/public.log",
        "latency": latency,
        "llm_token_usage": {"values": [812, 904, 1033], "average": 916.3333333333334, "num_requests": 3},
        "call_cost": {"combined_cost": round3(duration_ms as f64 / 1000.0 * 0.115), "total_duration_seconds": duration_ms / 1000,
            "total_duration_unit_price": 0.115, "product_costs": [
                {"product": "elevenlabs_tts", "cost": 4.2, "unit_price": 0.0117},
                {"product": "gpt-4o-mini", "cost": 0.6, "unit_price": 0.0017},
                {"product": "us_telephony", "cost": 2.1, "unit_price": 0.0058}]}
    });
    if let Value::Object(extra) = extra {
        call.extend(extra);
    }
    if analyzed {
        call.insert(
            "call_analysis".into(),
            json!({"call_summary": "The caller booked a cleaning for Tuesday at 10 AM.",
            "in_voicemail": false, "user_sentiment": "Positive", "call_successful": true,
            "custom_analysis_data": {"appointment_requested": true, "lead_quality": "high"}}),
        );
    }
    let event = if analyzed {
        "call_analyzed"
    } else {
        "call_ended"
    };
    serde_json::to_vec(&json!({"event": event, "call": Value::Object(call)})).unwrap_or_default()
}

/// A `call_ended` / `call_analyzed` body of roughly `target` bytes (within
/// about one turn, ±10 % at 30 KB).
pub fn call_of_size(target: usize, analyzed: bool) -> Vec<u8> {
    let mut turns = 10;
    let mut body = call_with_turns(turns, analyzed);
    // Turns vary in length, so refine the estimate a few times.
    for _ in 0..8 {
        if body.len().abs_diff(target) * 100 <= target * 3 {
            break;
        }
        turns = (turns * target / body.len().max(1)).max(1);
        body = call_with_turns(turns, analyzed);
    }
    body
}

/// The three benchmark bodies: ≈1 KB `call_started`, ≈30 KB `call_ended`,
/// ≈500 KB `call_analyzed`.
pub fn bench_bodies() -> [(&'static str, Vec<u8>); 3] {
    [
        ("call_started_1k", call_started()),
        ("call_ended_30k", call_of_size(30_000, false)),
        ("call_analyzed_500k", call_of_size(500_000, true)),
    ]
}
