//! The Call object (`call` in voice events, custom-function requests).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::enums::{
    AudioEncoding, AudioWebsocketProtocol, CallStatus, CallType, DataStorageSetting, Direction,
    DisconnectionReason, UserSentiment,
};
use super::transcript::{TranscriptItem, Utterance};
use super::{Extra, exact, ms_to_datetime, number};

/// A phone or web call, as Retell sends it in webhooks.
///
/// One struct covers both call types (`call_type` says which; phone-only and
/// web-only fields are simply absent). Only `call_id` is required: `call_started`
/// and custom-function requests carry a subset, and fields come and go between
/// Retell releases. Fields this version does not know are kept in `extra`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Call {
    /// Unique call id (not always `call_`-prefixed; `playground` occurs).
    pub call_id: String,
    /// `phone_call` or `web_call`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_type: Option<CallType>,
    /// Agent that handled the call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// Agent version (may be `0`).
    #[serde(
        default,
        deserialize_with = "number::opt_u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub agent_version: Option<u64>,
    /// Agent name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_name: Option<String>,
    /// Version tag frozen at creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_tag: Option<String>,
    /// Lifecycle state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_status: Option<CallStatus>,
    /// Phone calls: `inbound` or `outbound`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<Direction>,
    /// Phone calls: caller number (not always E.164: `anonymous` occurs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_number: Option<String>,
    /// Phone calls: callee number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_number: Option<String>,
    /// Web calls: token for the call room.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
    /// Phone calls: provider identifiers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telephony_identifier: Option<TelephonyIdentifier>,
    /// Start, epoch milliseconds (see [`Call::start_time`]).
    #[serde(
        default,
        deserialize_with = "number::opt_u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub start_timestamp: Option<u64>,
    /// End, epoch milliseconds (see [`Call::end_time`]).
    #[serde(
        default,
        deserialize_with = "number::opt_u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub end_timestamp: Option<u64>,
    /// Duration in milliseconds.
    #[serde(
        default,
        deserialize_with = "number::opt_u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub duration_ms: Option<u64>,
    /// End of the transfer leg, epoch milliseconds.
    #[serde(
        default,
        deserialize_with = "number::opt_u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub transfer_end_timestamp: Option<u64>,
    /// Why the call ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disconnection_reason: Option<DisconnectionReason>,
    /// Transfer target (number or `sip:` URI); set when the call was transferred.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer_destination: Option<String>,
    /// Post-call analysis (only in `call_analyzed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_analysis: Option<CallAnalysis>,
    /// Cost breakdown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_cost: Option<CallCost>,
    /// Latency statistics (`{}` on live calls).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<Latency>,
    /// LLM token usage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm_token_usage: Option<LlmTokenUsage>,
    /// Your metadata, as given when the call was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    /// Dynamic variables injected into the prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retell_llm_dynamic_variables: Option<Map<String, Value>>,
    /// Dynamic variables collected during the call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collected_dynamic_variables: Option<Map<String, Value>>,
    /// Custom SIP headers of the call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_sip_headers: Option<BTreeMap<String, String>>,
    /// What Retell stores for this call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_storage_setting: Option<DataStorageSetting>,
    /// Whether URLs are signed (they expire after 24 h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opt_in_signed_url: Option<bool>,
    /// Plain transcript (`Agent: …\nUser: …\n`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transcript: Option<String>,
    /// Utterances with word timings.
    #[serde(
        default,
        deserialize_with = "exact::opt_vec",
        skip_serializing_if = "Option::is_none"
    )]
    pub transcript_object: Option<Vec<Utterance>>,
    /// Utterances interleaved with tool calls, transitions, DTMF, SMS, ….
    #[serde(
        default,
        deserialize_with = "exact::opt_vec",
        skip_serializing_if = "Option::is_none"
    )]
    pub transcript_with_tool_calls: Option<Vec<TranscriptItem>>,
    /// Same as `transcript_with_tool_calls`, PII removed.
    #[serde(
        default,
        deserialize_with = "exact::opt_vec",
        skip_serializing_if = "Option::is_none"
    )]
    pub scrubbed_transcript_with_tool_calls: Option<Vec<TranscriptItem>>,
    /// Recording URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording_url: Option<String>,
    /// Multi-channel recording URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording_multi_channel_url: Option<String>,
    /// Recording URL, PII removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scrubbed_recording_url: Option<String>,
    /// Multi-channel recording URL, PII removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scrubbed_recording_multi_channel_url: Option<String>,
    /// Public debug log URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_log_url: Option<String>,
    /// Knowledge-base retrievals URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub knowledge_base_retrieved_contents_url: Option<String>,
    /// Legacy (replaced by `data_storage_setting`, still seen).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opt_out_sensitive_data_storage: Option<bool>,
    /// Legacy name of `agent_version`.
    #[serde(
        default,
        deserialize_with = "number::opt_u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub version: Option<u64>,
    /// Legacy (before `latency`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e2e_latency: Option<LatencyStats>,
    /// Legacy (before `latency`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm_latency: Option<LatencyStats>,
    /// Legacy (before `latency`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm_websocket_network_rtt_latency: Option<LatencyStats>,
    /// Legacy v1 audio encoding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_encoding: Option<AudioEncoding>,
    /// Legacy v1 audio protocol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_websocket_protocol: Option<AudioWebsocketProtocol>,
    /// Legacy v1 sample rate.
    #[serde(
        default,
        deserialize_with = "number::opt_u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub sample_rate: Option<u64>,
    /// Legacy v1 silence timeout.
    #[serde(
        default,
        deserialize_with = "number::opt_u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub end_call_after_silence_ms: Option<u64>,
    /// Legacy v1 evaluation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_eval: Option<Value>,
    /// Keys this version does not model (e.g. `batch_call_id`, `tool_mocks`).
    #[serde(flatten)]
    pub extra: Extra,
}

impl Call {
    /// Parses a bare Call object (not an event envelope), e.g. one stored on
    /// its own. Errors name the JSON path and, when readable, the `call_id`.
    pub fn from_slice(body: &[u8]) -> Result<Self, crate::ParseError> {
        crate::events::parse_standalone(body, crate::events::Standalone::Call)
    }

    /// A call with only its id set (useful in tests and for building payloads).
    pub fn new(call_id: impl Into<String>) -> Self {
        Self {
            call_id: call_id.into(),
            ..Self::default()
        }
    }

    /// `start_timestamp` as a UTC date-time.
    pub fn start_time(&self) -> Option<OffsetDateTime> {
        ms_to_datetime(self.start_timestamp)
    }

    /// `end_timestamp` as a UTC date-time.
    pub fn end_time(&self) -> Option<OffsetDateTime> {
        ms_to_datetime(self.end_timestamp)
    }

    /// `transfer_end_timestamp` as a UTC date-time.
    pub fn transfer_end_time(&self) -> Option<OffsetDateTime> {
        ms_to_datetime(self.transfer_end_timestamp)
    }

    /// `duration_ms` as a [`std::time::Duration`].
    pub fn duration(&self) -> Option<std::time::Duration> {
        self.duration_ms.map(std::time::Duration::from_millis)
    }

    /// `agent_version`, falling back to the legacy `version`.
    pub fn agent_version_or_legacy(&self) -> Option<u64> {
        self.agent_version.or(self.version)
    }
}

/// `call.call_analysis`: post-call analysis (all fields optional).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CallAnalysis {
    /// Summary of the call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_summary: Option<String>,
    /// Whether the call reached voicemail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_voicemail: Option<bool>,
    /// Sentiment of the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_sentiment: Option<UserSentiment>,
    /// Whether the agent achieved its task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_successful: Option<bool>,
    /// Your custom analysis fields. Raw JSON: real payloads carry an object, `{}`
    /// or even `[]` for the same call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_analysis_data: Option<Value>,
    /// Keys this version does not model (e.g. legacy `agent_sentiment`).
    #[serde(flatten)]
    pub extra: Extra,
}

/// `call.call_cost`: cost breakdown, in US cents.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CallCost {
    /// Total cost in cents.
    pub combined_cost: f64,
    /// Cost per product (may be empty on live calls).
    pub product_costs: Vec<ProductCost>,
    /// Billed duration in seconds.
    pub total_duration_seconds: f64,
    /// Price per second in cents.
    pub total_duration_unit_price: f64,
    /// Keys this version does not model (e.g. removed `total_one_time_price`).
    #[serde(flatten)]
    pub extra: Extra,
}

/// One line of a cost breakdown.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProductCost {
    /// Free-form product name (`elevenlabs_tts`, `gpt-4o-mini`, …).
    pub product: String,
    /// Cost in cents.
    pub cost: f64,
    /// Price per second in cents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_price: Option<f64>,
    /// Whether the cost belongs to a transfer leg.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_transfer_leg_cost: Option<bool>,
    /// Keys this version does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `call.latency`: per-component latency statistics (all optional; `{}` on live calls).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// End to end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e2e: Option<LatencyStats>,
    /// Speech recognition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asr: Option<LatencyStats>,
    /// LLM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm: Option<LatencyStats>,
    /// Custom-LLM websocket round trip.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm_websocket_network_rtt: Option<LatencyStats>,
    /// Text to speech.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tts: Option<LatencyStats>,
    /// Knowledge-base retrieval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub knowledge_base: Option<LatencyStats>,
    /// Speech to speech (realtime models).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s2s: Option<LatencyStats>,
    /// Keys this version does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Statistics of one latency component, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencyStats {
    /// Median.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p50: Option<f64>,
    /// 90th percentile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p90: Option<f64>,
    /// 95th percentile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p95: Option<f64>,
    /// 99th percentile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99: Option<f64>,
    /// Maximum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// Minimum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Number of samples (a float on the wire).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num: Option<f64>,
    /// The samples.
    #[serde(
        default,
        deserialize_with = "exact::opt_vec",
        skip_serializing_if = "Option::is_none"
    )]
    pub values: Option<Vec<f64>>,
    /// Keys this version does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `call.llm_token_usage`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LlmTokenUsage {
    /// Tokens per request.
    pub values: Vec<f64>,
    /// Average tokens per request.
    pub average: f64,
    /// Number of requests (a float on the wire).
    pub num_requests: f64,
    /// Keys this version does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `call.telephony_identifier`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TelephonyIdentifier {
    /// Twilio call SID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub twilio_call_sid: Option<String>,
    /// Keys this version does not model.
    #[serde(flatten)]
    pub extra: Extra,
}
