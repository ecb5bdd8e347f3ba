//! A derive-only mirror of this crate's Call model: a plain
//! `#[derive(Deserialize)]` struct with every field of the typed model, typed
//! the same way, but no `extra` maps, no open enums (plain `String`s), no
//! lenient integers and no `role` dispatch beyond serde's untagged choice.
//! Used by `benches/tools/parse_profile.rs` (mode `plain`) on generated
//! bodies; the baseline of the benchmarks is `serde_baseline.rs`.
#![allow(dead_code)]

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value};

#[derive(Deserialize)]
pub struct Body {
    pub event: String,
    #[serde(default)]
    pub event_timestamp: Option<u64>,
    pub call: Call,
}

#[derive(Deserialize)]
pub struct Call {
    pub call_id: String,
    #[serde(default)]
    pub call_type: Option<String>,
    #[serde(default)]
    pub agent_id: Option<String>,
    #[serde(default)]
    pub agent_version: Option<u64>,
    #[serde(default)]
    pub agent_name: Option<String>,
    #[serde(default)]
    pub agent_tag: Option<String>,
    #[serde(default)]
    pub call_status: Option<String>,
    #[serde(default)]
    pub direction: Option<String>,
    #[serde(default)]
    pub from_number: Option<String>,
    #[serde(default)]
    pub to_number: Option<String>,
    #[serde(default)]
    pub access_token: Option<String>,
    #[serde(default)]
    pub telephony_identifier: Option<TelephonyIdentifier>,
    #[serde(default)]
    pub start_timestamp: Option<u64>,
    #[serde(default)]
    pub end_timestamp: Option<u64>,
    #[serde(default)]
    pub duration_ms: Option<u64>,
    #[serde(default)]
    pub transfer_end_timestamp: Option<u64>,
    #[serde(default)]
    pub disconnection_reason: Option<String>,
    #[serde(default)]
    pub transfer_destination: Option<String>,
    #[serde(default)]
    pub call_analysis: Option<CallAnalysis>,
    #[serde(default)]
    pub call_cost: Option<CallCost>,
    #[serde(default)]
    pub latency: Option<Latency>,
    #[serde(default)]
    pub llm_token_usage: Option<LlmTokenUsage>,
    #[serde(default)]
    pub metadata: Option<Value>,
    #[serde(default)]
    pub retell_llm_dynamic_variables: Option<Map<String, Value>>,
    #[serde(default)]
    pub collected_dynamic_variables: Option<Map<String, Value>>,
    #[serde(default)]
    pub custom_sip_headers: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub data_storage_setting: Option<String>,
    #[serde(default)]
    pub opt_in_signed_url: Option<bool>,
    #[serde(default)]
    pub transcript: Option<String>,
    #[serde(default)]
    pub transcript_object: Option<Vec<Utterance>>,
    #[serde(default)]
    pub transcript_with_tool_calls: Option<Vec<TranscriptItem>>,
    #[serde(default)]
    pub scrubbed_transcript_with_tool_calls: Option<Vec<TranscriptItem>>,
    #[serde(default)]
    pub recording_url: Option<String>,
    #[serde(default)]
    pub recording_multi_channel_url: Option<String>,
    #[serde(default)]
    pub scrubbed_recording_url: Option<String>,
    #[serde(default)]
    pub scrubbed_recording_multi_channel_url: Option<String>,
    #[serde(default)]
    pub public_log_url: Option<String>,
    #[serde(default)]
    pub knowledge_base_retrieved_contents_url: Option<String>,
    #[serde(default)]
    pub opt_out_sensitive_data_storage: Option<bool>,
    #[serde(default)]
    pub version: Option<u64>,
    #[serde(default)]
    pub e2e_latency: Option<LatencyStats>,
    #[serde(default)]
    pub llm_latency: Option<LatencyStats>,
    #[serde(default)]
    pub llm_websocket_network_rtt_latency: Option<LatencyStats>,
    #[serde(default)]
    pub audio_encoding: Option<String>,
    #[serde(default)]
    pub audio_websocket_protocol: Option<String>,
    #[serde(default)]
    pub sample_rate: Option<u64>,
    #[serde(default)]
    pub end_call_after_silence_ms: Option<u64>,
    #[serde(default)]
    pub conversation_eval: Option<Value>,
}

#[derive(Deserialize)]
pub struct TelephonyIdentifier {
    #[serde(default)]
    pub twilio_call_sid: Option<String>,
}

#[derive(Deserialize)]
pub struct CallAnalysis {
    #[serde(default)]
    pub call_summary: Option<String>,
    #[serde(default)]
    pub in_voicemail: Option<bool>,
    #[serde(default)]
    pub user_sentiment: Option<String>,
    #[serde(default)]
    pub call_successful: Option<bool>,
    #[serde(default)]
    pub custom_analysis_data: Option<Value>,
}

#[derive(Deserialize)]
pub struct CallCost {
    pub combined_cost: f64,
    pub product_costs: Vec<ProductCost>,
    pub total_duration_seconds: f64,
    pub total_duration_unit_price: f64,
}

#[derive(Deserialize)]
pub struct ProductCost {
    pub product: String,
    pub cost: f64,
    #[serde(default)]
    pub unit_price: Option<f64>,
    #[serde(default)]
    pub is_transfer_leg_cost: Option<bool>,
}

#[derive(Deserialize)]
pub struct Latency {
    #[serde(default)]
    pub e2e: Option<LatencyStats>,
    #[serde(default)]
    pub asr: Option<LatencyStats>,
    #[serde(default)]
    pub llm: Option<LatencyStats>,
    #[serde(default)]
    pub llm_websocket_network_rtt: Option<LatencyStats>,
    #[serde(default)]
    pub tts: Option<LatencyStats>,
    #[serde(default)]
    pub knowledge_base: Option<LatencyStats>,
    #[serde(default)]
    pub s2s: Option<LatencyStats>,
}

#[derive(Deserialize)]
pub struct LatencyStats {
    #[serde(default)]
    pub p50: Option<f64>,
    #[serde(default)]
    pub p90: Option<f64>,
    #[serde(default)]
    pub p95: Option<f64>,
    #[serde(default)]
    pub p99: Option<f64>,
    #[serde(default)]
    pub max: Option<f64>,
    #[serde(default)]
    pub min: Option<f64>,
    #[serde(default)]
    pub num: Option<f64>,
    #[serde(default)]
    pub values: Option<Vec<f64>>,
}

#[derive(Deserialize)]
pub struct LlmTokenUsage {
    pub values: Vec<f64>,
    pub average: f64,
    pub num_requests: f64,
}

#[derive(Deserialize)]
pub struct Word {
    #[serde(default)]
    pub word: Option<String>,
    #[serde(default)]
    pub start: Option<f64>,
    #[serde(default)]
    pub end: Option<f64>,
}

#[derive(Deserialize)]
pub struct Utterance {
    pub role: String,
    pub content: String,
    pub words: Vec<Word>,
}

/// Transcript items, internally tagged by `role` the way plain serde does it
/// (serde buffers each item before choosing the variant).
#[derive(Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum TranscriptItem {
    Agent(UtteranceBody),
    User(UtteranceBody),
    TransferTarget(UtteranceBody),
    ToolCallInvocation(ToolCallInvocation),
    ToolCallResult(ToolCallResult),
    NodeTransition(NodeTransition),
    Dtmf(Dtmf),
    Sms(Sms),
    Injected(Injected),
}

#[derive(Deserialize)]
pub struct UtteranceBody {
    pub content: String,
    pub words: Vec<Word>,
}

#[derive(Deserialize)]
pub struct ToolCallInvocation {
    pub tool_call_id: String,
    pub name: String,
    pub arguments: String,
    #[serde(default)]
    pub thought_signature: Option<String>,
    #[serde(default, rename = "type")]
    pub tool_type: Option<String>,
    #[serde(default)]
    pub time_sec: Option<f64>,
}

#[derive(Deserialize)]
pub struct ToolCallResult {
    pub tool_call_id: String,
    pub content: String,
    #[serde(default)]
    pub successful: Option<bool>,
}

#[derive(Deserialize)]
pub struct NodeTransition {
    pub former_node_id: String,
    pub former_node_name: String,
    pub new_node_id: String,
    pub new_node_name: String,
    #[serde(default)]
    pub transition_type: Option<String>,
}

#[derive(Deserialize)]
pub struct Dtmf {
    pub digit: String,
}

#[derive(Deserialize)]
pub struct Multimedia {
    pub url: String,
    #[serde(default)]
    pub summary: Option<String>,
}

#[derive(Deserialize)]
pub struct Sms {
    pub content: String,
    pub time_sec: f64,
    #[serde(default)]
    pub multimedia: Option<Vec<Multimedia>>,
}

#[derive(Deserialize)]
pub struct Injected {
    pub content: String,
    pub time_sec: f64,
}
