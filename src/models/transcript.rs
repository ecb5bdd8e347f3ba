//! Transcript items of a call (`transcript_object`, `transcript_with_tool_calls`
//! and its `scrubbed_`, `pre_session_` and `post_session_` forms).

use std::borrow::Cow;

use serde::de::MapAccess;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use super::raw::RawJson;
use super::seconds::Seconds;
use super::small_string::SmallString;

use super::enums::{BackupModelReason, ToolType, TranscriptRole, TransitionType, UtteranceRole};
use super::lenient::{Lenient, Read};
use super::role::{self, RoleTagged};
use super::untyped::{Path, Untyped, UntypedReason};

model! {
    /// One timed word of an utterance. Times are seconds relative to the call
    /// audio (approximate; integers in playground calls).
    pub struct Word {
        /// The word as transcribed (with punctuation).
        word: SmallString,
        /// Start time in seconds.
        start: Seconds,
        /// End time in seconds.
        end: Seconds,
    }
}

model! {
    /// What someone said (`role` = `agent`, `user` or `transfer_target`).
    pub struct Utterance {
        /// Who spoke (always set in `transcript_with_tool_calls`, where it
        /// selects the item kind).
        role: UtteranceRole,
        /// The text (may be empty).
        content: String,
        /// Word timings (may be empty).
        words: Vec<Word>,
        /// How the response was produced (model fallback, interruptions).
        /// Boxed: rare, and utterances are numerous.
        metadata: Box<UtteranceMetadata>,
    }
}

model! {
    /// `metadata` of an utterance.
    pub struct UtteranceMetadata {
        /// Set when a backup LLM produced the response.
        backup_model_used: Box<BackupModelUsed>,
        /// Id of the interruption this utterance belongs to.
        interrupt_id: u64,
        /// Whether the utterance is a backchannel ("uh-huh").
        is_backchannel: bool,
        /// Id of the LLM response.
        response_id: u64,
    }
}

model! {
    /// `metadata` of a tool-call invocation.
    pub struct ToolCallMetadata {
        /// Set when a backup LLM produced the call.
        backup_model_used: Box<BackupModelUsed>,
    }
}

model! {
    /// Which backup LLM answered instead of the primary one, and why.
    pub struct BackupModelUsed {
        /// The backup model configured.
        backup_model: String,
        /// The model that answered.
        model: String,
        /// The primary model configured.
        primary_model: String,
        /// Why the backup was used.
        reason: BackupModelReason,
        /// Time spent choosing the model, in milliseconds.
        selection_latency_ms: f64,
        /// When the backup was ready, in milliseconds.
        backup_ready_ms: f64,
        /// When the primary was ready, in milliseconds.
        primary_ready_ms: f64,
    }
}

model! {
    /// `role: "tool_call_invocation"`: the agent called a tool.
    pub struct ToolCallInvocation {
        /// Id linking the invocation to its result.
        tool_call_id: String,
        /// Tool name.
        name: String,
        /// Arguments as a JSON **string** (may be `""`); see [`Self::arguments_json`].
        arguments: String,
        /// Gemini thought signature.
        thought_signature: String,
        /// Kind of tool (`custom`, `transfer_call`, …).
        tool_type as "type": ToolType,
        /// Seconds since call start (seen in real payloads; often absent).
        time_sec: f64,
        /// How the call was produced (model fallback).
        metadata: Box<ToolCallMetadata>,
    }
}

impl ToolCallInvocation {
    /// Parses [`Self::arguments`] as JSON (`None` when absent, empty or not JSON).
    pub fn arguments_json(&self) -> Option<Value> {
        serde_json::from_str(self.arguments.as_deref()?).ok()
    }
}

model! {
    /// `role: "tool_call_result"`: what a tool returned.
    pub struct ToolCallResult {
        /// Id of the matching invocation.
        tool_call_id: String,
        /// Result text (often stringified JSON).
        content: String,
        /// Whether the tool succeeded.
        successful: bool,
    }
}

model! {
    /// `role: "node_transition"`: the conversation flow moved to another node.
    pub struct NodeTransition {
        /// Previous node id.
        former_node_id: String,
        /// Previous node name.
        former_node_name: String,
        /// New node id.
        new_node_id: String,
        /// New node name.
        new_node_name: String,
        /// Kind of transition.
        transition_type: TransitionType,
    }
}

model! {
    /// `role: "dtmf"`: a keypad digit pressed by the user.
    pub struct Dtmf {
        /// `"0"`–`"9"`, `"*"` or `"#"`.
        digit: String,
    }
}

model! {
    /// An attachment of a message (SMS/MMS, chat).
    pub struct Multimedia {
        /// Media URL.
        url: String,
        /// Retell's description of the media.
        summary: String,
    }
}

model! {
    /// `role: "sms"`: an SMS exchanged during the call.
    pub struct Sms {
        /// Message text.
        content: String,
        /// Seconds since call start.
        time_sec: f64,
        /// Attachments.
        multimedia: Vec<Multimedia>,
    }
}

model! {
    /// `role: "injected"`: context injected with the update-live-call API.
    pub struct Injected {
        /// Injected text.
        content: String,
        /// Seconds since call start.
        time_sec: f64,
    }
}

/// One item of `transcript_with_tool_calls`, chosen by its `role`.
///
/// Unknown roles (three new kinds appeared in twelve months) keep the whole
/// object in [`TranscriptItem::Unknown`], including its `role`; so does an item
/// that is not an object at all.
///
/// Every kind is boxed: an item of a list takes the size of the largest kind,
/// and a list of items made of a few bytes of JSON each (`0`, `{}`) would
/// otherwise take many times the body's size.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum TranscriptItem {
    /// `agent`, `user` or `transfer_target`.
    Utterance(Box<Utterance>),
    /// `tool_call_invocation`.
    ToolCallInvocation(Box<ToolCallInvocation>),
    /// `tool_call_result`.
    ToolCallResult(Box<ToolCallResult>),
    /// `node_transition`.
    NodeTransition(Box<NodeTransition>),
    /// `dtmf`.
    Dtmf(Box<Dtmf>),
    /// `sms`.
    Sms(Box<Sms>),
    /// `injected`.
    Injected(Box<Injected>),
    /// Any other role (or none, or not an object): the whole value.
    Unknown(RawJson),
}

impl TranscriptItem {
    /// The `role` string of the item (`None` for an unknown item without one,
    /// or whose role is written with escapes: [`Self::kind`] reads that one too).
    pub fn role(&self) -> Option<&str> {
        Some(match self {
            Self::Utterance(u) => return u.role.as_ref().map(UtteranceRole::as_str),
            Self::ToolCallInvocation(_) => "tool_call_invocation",
            Self::ToolCallResult(_) => "tool_call_result",
            Self::NodeTransition(_) => "node_transition",
            Self::Dtmf(_) => "dtmf",
            Self::Sms(_) => "sms",
            Self::Injected(_) => "injected",
            Self::Unknown(value) => return role::unknown_role(value),
        })
    }

    /// The `role` as an open enum (`None` for an unknown item without a string role).
    pub fn kind(&self) -> Option<TranscriptRole> {
        match self {
            Self::Unknown(raw) => {
                role::unknown_role_text(raw).map(|r| TranscriptRole::from(r.as_ref()))
            }
            _ => self.role().map(TranscriptRole::from),
        }
    }

    /// The text of utterances, tool results, SMS and injected items.
    pub fn content(&self) -> Option<&str> {
        match self {
            Self::Utterance(u) => u.content.as_deref(),
            Self::ToolCallResult(r) => r.content.as_deref(),
            Self::Sms(s) => s.content.as_deref(),
            Self::Injected(i) => i.content.as_deref(),
            _ => None,
        }
    }

    /// The item as an utterance, if it is one.
    pub fn as_utterance(&self) -> Option<&Utterance> {
        match self {
            Self::Utterance(u) => Some(&**u),
            _ => None,
        }
    }
}

impl RoleTagged for TranscriptItem {
    const EXPECTING: &'static str = "a transcript item object";

    fn from_role<'de, A: MapAccess<'de>>(
        role: Cow<'static, str>,
        before: Vec<(String, RawJson)>,
        map: &mut A,
    ) -> Result<Self, A::Error> {
        Ok(match role.as_ref() {
            "agent" | "user" | "transfer_target" => {
                Self::Utterance(Box::new(role::read_kind(Some(role), before, map)?))
            }
            "tool_call_invocation" => Self::ToolCallInvocation(role::read_boxed(before, map)?),
            "tool_call_result" => Self::ToolCallResult(role::read_boxed(before, map)?),
            "node_transition" => Self::NodeTransition(role::read_boxed(before, map)?),
            "dtmf" => Self::Dtmf(role::read_boxed(before, map)?),
            "sms" => Self::Sms(role::read_boxed(before, map)?),
            "injected" => Self::Injected(role::read_boxed(before, map)?),
            _ => Self::Unknown(role::read_unknown(role, before, map)?),
        })
    }

    fn unknown(value: RawJson) -> Self {
        Self::Unknown(value)
    }
}

impl Lenient for TranscriptItem {
    const EXPECTED: &'static str = "a transcript item";

    fn read<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Read<Self>, D::Error> {
        role::read_tagged(deserializer)
    }

    fn walk(&self, path: &mut Path, out: &mut Vec<Untyped>) {
        match self {
            Self::Utterance(x) => x.walk(path, out),
            Self::ToolCallInvocation(x) => x.walk(path, out),
            Self::ToolCallResult(x) => x.walk(path, out),
            Self::NodeTransition(x) => x.walk(path, out),
            Self::Dtmf(x) => x.walk(path, out),
            Self::Sms(x) => x.walk(path, out),
            Self::Injected(x) => x.walk(path, out),
            Self::Unknown(_) => path.record(out, UntypedReason::UnknownKind),
        }
    }
}

impl<'de> Deserialize<'de> for TranscriptItem {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        role::deserialize_tagged(deserializer)
    }
}

impl Serialize for TranscriptItem {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            // An utterance keeps its role as a field: it writes it itself.
            Self::Utterance(u) => u.serialize(serializer),
            Self::ToolCallInvocation(x) => {
                role::write_tagged(serializer, "tool_call_invocation", &**x)
            }
            Self::ToolCallResult(x) => role::write_tagged(serializer, "tool_call_result", &**x),
            Self::NodeTransition(x) => role::write_tagged(serializer, "node_transition", &**x),
            Self::Dtmf(x) => role::write_tagged(serializer, "dtmf", &**x),
            Self::Sms(x) => role::write_tagged(serializer, "sms", &**x),
            Self::Injected(x) => role::write_tagged(serializer, "injected", &**x),
            Self::Unknown(value) => value.serialize(serializer),
        }
    }
}
