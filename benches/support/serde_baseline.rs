//! The plain-serde baseline: what a Rust user writes without this crate.
//! `hmac` + `sha2` verification of `X-Retell-Signature` (header parse, 5-minute
//! window, HMAC-SHA256 over body ‖ timestamp digits, constant-time compare),
//! then `serde_json::from_slice` into a plain `#[derive(Deserialize)]` struct
//! covering every field of the realistic payloads (`benches/data/*.json`):
//! strings for enums, owned `String`s, no unknown-field map, nothing kept that
//! it does not know (explicit `null`s, unknown keys and mistyped fields are
//! lost or fail the body).
//!
//! Same structs and verification as the shared baseline program, with this
//! crate's `hmac`/`sha2` versions. One difference cannot be avoided inside
//! this crate's benches: cargo unifies `serde_json` features, so here the
//! baseline parses floats with `float_roundtrip` too (the stand-alone
//! baseline does not, and is a little faster on float-heavy bodies).
#![allow(dead_code)]

use std::collections::HashMap;

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;
const FIVE_MINUTES_MS: u64 = 5 * 60 * 1000;

#[derive(Deserialize)]
pub struct FullWebhook {
    pub event: String,
    pub call: FullCall,
}

#[derive(Deserialize)]
pub struct FullCall {
    pub call_type: String,
    pub from_number: Option<String>,
    pub to_number: Option<String>,
    pub direction: Option<String>,
    pub call_id: String,
    pub agent_id: String,
    pub agent_version: Option<u64>,
    pub agent_name: Option<String>,
    pub call_status: String,
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
    pub retell_llm_dynamic_variables: Option<HashMap<String, String>>,
    pub collected_dynamic_variables: Option<serde_json::Map<String, serde_json::Value>>,
    pub custom_sip_headers: Option<HashMap<String, String>>,
    pub data_storage_setting: Option<String>,
    pub telephony_identifier: Option<HashMap<String, String>>,
    pub start_timestamp: Option<u64>,
    pub end_timestamp: Option<u64>,
    pub duration_ms: Option<u64>,
    pub disconnection_reason: Option<String>,
    pub transcript: Option<String>,
    #[serde(default)]
    pub transcript_object: Vec<Utterance>,
    #[serde(default)]
    pub transcript_with_tool_calls: Vec<AnyUtterance>,
    pub recording_url: Option<String>,
    pub recording_multi_channel_url: Option<String>,
    pub public_log_url: Option<String>,
    pub latency: Option<HashMap<String, Latency>>,
    pub llm_token_usage: Option<TokenUsage>,
    pub call_cost: Option<CallCost>,
    pub call_analysis: Option<CallAnalysis>,
    pub opt_out_sensitive_data_storage: Option<bool>,
    pub opt_in_signed_url: Option<bool>,
}

#[derive(Deserialize)]
pub struct Word {
    pub word: String,
    pub start: f64,
    pub end: f64,
}

#[derive(Deserialize)]
pub struct Utterance {
    pub role: String,
    pub content: String,
    #[serde(default)]
    pub words: Vec<Word>,
}

/// Tool-call items as one flat struct (no serde enum buffering).
#[derive(Deserialize)]
pub struct AnyUtterance {
    pub role: String,
    pub content: Option<String>,
    #[serde(default)]
    pub words: Vec<Word>,
    pub tool_call_id: Option<String>,
    pub name: Option<String>,
    pub arguments: Option<String>,
}

#[derive(Deserialize)]
pub struct Latency {
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
    pub min: Option<f64>,
    pub num: Option<u64>,
    #[serde(default)]
    pub values: Vec<f64>,
}

#[derive(Deserialize)]
pub struct TokenUsage {
    pub values: Vec<u64>,
    pub average: f64,
    pub num_requests: u64,
}

#[derive(Deserialize)]
pub struct CallCost {
    pub product_costs: Vec<ProductCost>,
    pub total_duration_seconds: f64,
    pub total_duration_unit_price: f64,
    pub combined_cost: f64,
}

#[derive(Deserialize)]
pub struct ProductCost {
    pub product: String,
    pub unit_price: f64,
    pub cost: f64,
}

#[derive(Deserialize)]
pub struct CallAnalysis {
    pub call_summary: Option<String>,
    pub in_voicemail: Option<bool>,
    pub user_sentiment: Option<String>,
    pub call_successful: Option<bool>,
    pub custom_analysis_data: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Verification as the SDKs do it: parse the header, check the 5-minute
/// window, HMAC, constant-time compare.
#[inline(never)]
pub fn verify(body: &[u8], key: &str, header: &str, now: u64) -> bool {
    let Some(rest) = header.strip_prefix("v=") else {
        return false;
    };
    let Some((ts_str, d)) = rest.split_once(",d=") else {
        return false;
    };
    if ts_str.is_empty() || !ts_str.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let Ok(ts) = ts_str.parse::<u64>() else {
        return false;
    };
    if now.abs_diff(ts) > FIVE_MINUTES_MS {
        return false;
    }
    let mut digest = [0u8; 32];
    if d.len() != 64 || hex::decode_to_slice(d, &mut digest).is_err() {
        return false;
    }
    let Ok(mut mac) = HmacSha256::new_from_slice(key.as_bytes()) else {
        return false;
    };
    mac.update(body);
    mac.update(ts_str.as_bytes());
    mac.verify_slice(&digest).is_ok()
}

/// Verify, then the full typed parse: `None` when either fails.
pub fn verify_and_parse(body: &[u8], key: &str, header: &str, now: u64) -> Option<FullWebhook> {
    if !verify(body, key, header, now) {
        return None;
    }
    serde_json::from_slice(body).ok()
}
