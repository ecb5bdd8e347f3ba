//! The Call object (`call` in voice events, custom-function requests).

use std::collections::BTreeMap;

use super::raw::{RawJson, RawObject};
use time::OffsetDateTime;

use super::enums::{
    AudioEncoding, AudioWebsocketProtocol, CallStatus, CallType, DataStorageSetting, Direction,
    DisconnectionReason, UserSentiment,
};
use super::ms_to_datetime;
use super::transcript::{TranscriptItem, Utterance};

model! {
    /// A phone or web call, as Retell sends it in webhooks.
    ///
    /// One struct covers both call types (`call_type` says which; phone-only and
    /// web-only fields are simply absent). Only `call_id` is required: `call_started`
    /// and custom-function requests carry a subset, and fields come and go between
    /// Retell releases. Fields this version does not know are kept in `extra`.
    pub struct Call [call_id: "Unique call id (not always `call_`-prefixed; `playground` occurs)."] {
        /// `phone_call` or `web_call`.
        call_type: CallType,
        /// Agent that handled the call.
        agent_id: String,
        /// Agent version (may be `0`).
        agent_version: u64,
        /// Agent name.
        agent_name: String,
        /// Version tag frozen at creation.
        agent_tag: String,
        /// Lifecycle state.
        call_status: CallStatus,
        /// Phone calls: `inbound` or `outbound`.
        direction: Direction,
        /// Phone calls: caller number (not always E.164: `anonymous` occurs).
        from_number: String,
        /// Phone calls: callee number.
        to_number: String,
        /// Web calls: token for the call room.
        access_token: String,
        /// Phone calls: provider identifiers.
        telephony_identifier: TelephonyIdentifier,
        /// Start, epoch milliseconds (see [`Call::start_time`]).
        start_timestamp: u64,
        /// End, epoch milliseconds (see [`Call::end_time`]).
        end_timestamp: u64,
        /// Duration in milliseconds.
        duration_ms: u64,
        /// End of the transfer leg, epoch milliseconds.
        transfer_end_timestamp: u64,
        /// Why the call ended.
        disconnection_reason: DisconnectionReason,
        /// Transfer target (number or `sip:` URI); set when the call was transferred.
        transfer_destination: String,
        /// Post-call analysis (only in `call_analyzed`).
        call_analysis: CallAnalysis,
        /// Cost breakdown.
        call_cost: CallCost,
        /// Latency statistics (`{}` on live calls).
        latency: Latency,
        /// LLM token usage.
        llm_token_usage: LlmTokenUsage,
        /// Your metadata, as given when the call was created.
        metadata: RawJson,
        /// Dynamic variables injected into the prompt.
        retell_llm_dynamic_variables: RawObject,
        /// Dynamic variables collected during the call.
        collected_dynamic_variables: RawObject,
        /// Custom SIP headers of the call.
        custom_sip_headers: BTreeMap<String, String>,
        /// What Retell stores for this call.
        data_storage_setting: DataStorageSetting,
        /// Whether URLs are signed (they expire after 24 h).
        opt_in_signed_url: bool,
        /// Plain transcript (`Agent: …\nUser: …\n`).
        transcript: String,
        /// Utterances with word timings.
        transcript_object: Vec<Utterance>,
        /// Utterances interleaved with tool calls, transitions, DTMF, SMS, ….
        transcript_with_tool_calls: Vec<TranscriptItem>,
        /// Same as `transcript_with_tool_calls`, PII removed.
        scrubbed_transcript_with_tool_calls: Vec<TranscriptItem>,
        /// Tool calls of integrations that ran before the session (same item
        /// kinds as `transcript_with_tool_calls`).
        pre_session_transcript_with_tool_calls: Vec<TranscriptItem>,
        /// Tool calls that ran after the session (after post-call analysis).
        post_session_transcript_with_tool_calls: Vec<TranscriptItem>,
        /// Same as `pre_session_transcript_with_tool_calls`, PII removed.
        scrubbed_pre_session_transcript_with_tool_calls: Vec<TranscriptItem>,
        /// Same as `post_session_transcript_with_tool_calls`, PII removed.
        scrubbed_post_session_transcript_with_tool_calls: Vec<TranscriptItem>,
        /// Recording URL.
        recording_url: String,
        /// Multi-channel recording URL.
        recording_multi_channel_url: String,
        /// Recording URL, PII removed.
        scrubbed_recording_url: String,
        /// Multi-channel recording URL, PII removed.
        scrubbed_recording_multi_channel_url: String,
        /// Public debug log URL.
        public_log_url: String,
        /// Knowledge-base retrievals URL.
        knowledge_base_retrieved_contents_url: String,
        /// Legacy (replaced by `data_storage_setting`, still seen).
        opt_out_sensitive_data_storage: bool,
        /// Legacy name of `agent_version`.
        version: u64,
        /// Legacy (before `latency`).
        e2e_latency: LatencyStats,
        /// Legacy (before `latency`).
        llm_latency: LatencyStats,
        /// Legacy (before `latency`).
        llm_websocket_network_rtt_latency: LatencyStats,
        /// Legacy v1 audio encoding.
        audio_encoding: AudioEncoding,
        /// Legacy v1 audio protocol.
        audio_websocket_protocol: AudioWebsocketProtocol,
        /// Legacy v1 sample rate.
        sample_rate: u64,
        /// Legacy v1 silence timeout.
        end_call_after_silence_ms: u64,
        /// Legacy v1 evaluation.
        conversation_eval: RawJson,
    }
}

impl Call {
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

model! {
    /// `call.call_analysis`: post-call analysis (all fields optional).
    pub struct CallAnalysis {
        /// Summary of the call.
        call_summary: String,
        /// Whether the call reached voicemail.
        in_voicemail: bool,
        /// Sentiment of the user.
        user_sentiment: UserSentiment,
        /// Whether the agent achieved its task.
        call_successful: bool,
        /// Your custom analysis fields. Raw JSON: real payloads carry an object, `{}`
        /// or even `[]` for the same call.
        custom_analysis_data: RawJson,
    }
}

model! {
    /// `call.call_cost`: cost breakdown, in US cents.
    pub struct CallCost {
        /// Total cost in cents.
        combined_cost: f64,
        /// Cost per product (may be empty on live calls).
        product_costs: Vec<ProductCost>,
        /// Billed duration in seconds.
        total_duration_seconds: f64,
        /// Price per second in cents.
        total_duration_unit_price: f64,
    }
}

model! {
    /// One line of a cost breakdown.
    pub struct ProductCost {
        /// Free-form product name (`elevenlabs_tts`, `gpt-4o-mini`, …).
        product: String,
        /// Cost in cents.
        cost: f64,
        /// Price per second in cents.
        unit_price: f64,
        /// Whether the cost belongs to a transfer leg.
        is_transfer_leg_cost: bool,
    }
}

model! {
    /// `call.latency`: per-component latency statistics (all optional; `{}` on live calls).
    pub struct Latency {
        /// End to end.
        e2e: LatencyStats,
        /// Speech recognition.
        asr: LatencyStats,
        /// LLM.
        llm: LatencyStats,
        /// Custom-LLM websocket round trip.
        llm_websocket_network_rtt: LatencyStats,
        /// Text to speech.
        tts: LatencyStats,
        /// Knowledge-base retrieval.
        knowledge_base: LatencyStats,
        /// Speech to speech (realtime models).
        s2s: LatencyStats,
    }
}

model! {
    /// Statistics of one latency component, in milliseconds.
    pub struct LatencyStats {
        /// Median.
        p50: f64,
        /// 90th percentile.
        p90: f64,
        /// 95th percentile.
        p95: f64,
        /// 99th percentile.
        p99: f64,
        /// Maximum.
        max: f64,
        /// Minimum.
        min: f64,
        /// Number of samples (a float on the wire).
        num: f64,
        /// The samples.
        values: Vec<f64>,
    }
}

model! {
    /// `call.llm_token_usage`.
    pub struct LlmTokenUsage {
        /// Tokens per request.
        values: Vec<f64>,
        /// Average tokens per request.
        average: f64,
        /// Number of requests (a float on the wire).
        num_requests: f64,
    }
}

model! {
    /// `call.telephony_identifier`.
    pub struct TelephonyIdentifier {
        /// Twilio call SID.
        twilio_call_sid: String,
    }
}
