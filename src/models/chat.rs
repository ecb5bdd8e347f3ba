//! The Chat object (`chat` in chat events) and its messages.

use super::raw::{RawJson, RawObject};
use std::borrow::Cow;

use serde::de::MapAccess;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;

use super::call::ProductCost;
use super::enums::{ChatRole, ChatStatus, ChatType, ToolType, TransitionType, UserSentiment};
use super::lenient::{Lenient, Read};
use super::ms_to_datetime;
use super::role::{self, RoleTagged};
use super::transcript::Multimedia;
use super::untyped::{Path, Untyped, UntypedReason};

model! {
    /// A chat (API chat or SMS conversation), as Retell sends it in webhooks.
    ///
    /// Only `chat_id` is required; everything else may be absent. Fields this version
    /// does not know are kept in `extra`.
    pub struct Chat [chat_id: "Unique chat id."] {
        /// Chat agent id.
        agent_id: String,
        /// Version tag frozen at creation.
        agent_tag: String,
        /// Agent version (named `version` here, unlike calls).
        version: u64,
        /// Lifecycle state.
        chat_status: ChatStatus,
        /// `api_chat` or `sms_chat`.
        chat_type: ChatType,
        /// Start, epoch milliseconds.
        start_timestamp: u64,
        /// End, epoch milliseconds.
        end_timestamp: u64,
        /// Plain transcript.
        transcript: String,
        /// Messages interleaved with tool calls and transitions.
        message_with_tool_calls: Vec<ChatMessage>,
        /// Tool calls of integrations that ran before the session (same item
        /// kinds as `message_with_tool_calls`).
        pre_session_message_with_tool_calls: Vec<ChatMessage>,
        /// Tool calls that ran after the session (after post-chat analysis).
        post_session_message_with_tool_calls: Vec<ChatMessage>,
        /// Same as `pre_session_message_with_tool_calls`, PII removed.
        scrubbed_pre_session_message_with_tool_calls: Vec<ChatMessage>,
        /// Same as `post_session_message_with_tool_calls`, PII removed.
        scrubbed_post_session_message_with_tool_calls: Vec<ChatMessage>,
        /// Post-chat analysis (only in `chat_analyzed`).
        chat_analysis: ChatAnalysis,
        /// Cost breakdown.
        chat_cost: ChatCost,
        /// Dynamic variables collected during the chat.
        collected_dynamic_variables: RawObject,
        /// Dynamic variables injected into the prompt.
        retell_llm_dynamic_variables: RawObject,
        /// Custom attributes (values are strings, numbers or booleans).
        custom_attributes: RawObject,
        /// Your metadata.
        metadata: RawJson,
    }
}

impl Chat {
    /// A chat with only its id set.
    pub fn new(chat_id: impl Into<String>) -> Self {
        Self {
            chat_id: chat_id.into(),
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
}

model! {
    /// `chat.chat_analysis` (all fields optional).
    pub struct ChatAnalysis {
        /// Summary of the chat.
        chat_summary: String,
        /// Sentiment of the user.
        user_sentiment: UserSentiment,
        /// Whether the agent achieved its task.
        chat_successful: bool,
        /// Your custom analysis fields (raw JSON).
        custom_analysis_data: RawJson,
    }
}

model! {
    /// `chat.chat_cost` in US cents (no duration fields, unlike calls).
    pub struct ChatCost {
        /// Total cost in cents.
        combined_cost: f64,
        /// Cost per product.
        product_costs: Vec<ProductCost>,
    }
}

model! {
    /// An `agent`, `user` or `injected` chat message.
    pub struct ChatText {
        /// Message id.
        message_id: String,
        /// Creation time, epoch milliseconds (by convention; the unit is undocumented).
        created_timestamp: u64,
        /// Message text.
        content: String,
        /// Attachments (agent and user messages).
        multimedia: Vec<Multimedia>,
    }
}

model! {
    /// An `sms` chat message.
    pub struct ChatSms {
        /// Message id.
        message_id: String,
        /// Creation time, epoch milliseconds.
        created_timestamp: u64,
        /// Message text.
        content: String,
        /// Attachments.
        multimedia: Vec<Multimedia>,
    }
}

model! {
    /// A `tool_call_invocation` chat message.
    pub struct ChatToolCallInvocation {
        /// Message id.
        message_id: String,
        /// Creation time, epoch milliseconds.
        created_timestamp: u64,
        /// Id linking the invocation to its result.
        tool_call_id: String,
        /// Tool name.
        name: String,
        /// Arguments as a JSON string.
        arguments: String,
        /// Gemini thought signature.
        thought_signature: String,
        /// Kind of tool (`custom`, `transfer_call`, …).
        tool_type as "type": ToolType,
    }
}

model! {
    /// A `tool_call_result` chat message.
    pub struct ChatToolCallResult {
        /// Message id.
        message_id: String,
        /// Creation time, epoch milliseconds.
        created_timestamp: u64,
        /// Id of the matching invocation.
        tool_call_id: String,
        /// Result text.
        content: String,
        /// Whether the tool succeeded.
        successful: bool,
    }
}

model! {
    /// A `node_transition` chat message (every field optional, unlike calls).
    pub struct ChatNodeTransition {
        /// Message id.
        message_id: String,
        /// Creation time, epoch milliseconds.
        created_timestamp: u64,
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
    /// A `state_transition` chat message (multi-state prompts).
    pub struct ChatStateTransition {
        /// Message id.
        message_id: String,
        /// Creation time, epoch milliseconds.
        created_timestamp: u64,
        /// Previous state.
        former_state_name: String,
        /// New state.
        new_state_name: String,
    }
}

/// One item of `message_with_tool_calls`, chosen by its `role`.
///
/// Every kind is boxed: an item of a list takes the size of the largest kind,
/// and a list of items made of a few bytes of JSON each (`0`, `{}`) would
/// otherwise take many times the body's size.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ChatMessage {
    /// `agent`.
    Agent(Box<ChatText>),
    /// `user`.
    User(Box<ChatText>),
    /// `tool_call_invocation`.
    ToolCallInvocation(Box<ChatToolCallInvocation>),
    /// `tool_call_result`.
    ToolCallResult(Box<ChatToolCallResult>),
    /// `node_transition`.
    NodeTransition(Box<ChatNodeTransition>),
    /// `state_transition`.
    StateTransition(Box<ChatStateTransition>),
    /// `injected`.
    Injected(Box<ChatText>),
    /// `sms`.
    Sms(Box<ChatSms>),
    /// Any other role (or none): the whole object, `role` included.
    Unknown(RawJson),
}

impl ChatMessage {
    /// The `role` string (`None` for an unknown message without one, or whose
    /// role is written with escapes: [`Self::kind`] reads that one too).
    pub fn role(&self) -> Option<&str> {
        Some(match self {
            Self::Agent(_) => "agent",
            Self::User(_) => "user",
            Self::ToolCallInvocation(_) => "tool_call_invocation",
            Self::ToolCallResult(_) => "tool_call_result",
            Self::NodeTransition(_) => "node_transition",
            Self::StateTransition(_) => "state_transition",
            Self::Injected(_) => "injected",
            Self::Sms(_) => "sms",
            Self::Unknown(value) => return role::unknown_role(value),
        })
    }

    /// The `role` as an open enum (`None` for an unknown message without a string role).
    pub fn kind(&self) -> Option<ChatRole> {
        match self {
            Self::Unknown(raw) => role::unknown_role_text(raw).map(|r| ChatRole::from(r.as_ref())),
            _ => self.role().map(ChatRole::from),
        }
    }

    /// The text of agent, user, injected, SMS and tool-result messages.
    pub fn content(&self) -> Option<&str> {
        match self {
            Self::Agent(m) | Self::User(m) | Self::Injected(m) => m.content.as_deref(),
            Self::Sms(m) => m.content.as_deref(),
            Self::ToolCallResult(m) => m.content.as_deref(),
            _ => None,
        }
    }
}

impl RoleTagged for ChatMessage {
    const EXPECTING: &'static str = "a chat message object";

    fn from_role<'de, A: MapAccess<'de>>(
        role: Cow<'static, str>,
        before: Vec<(String, RawJson)>,
        map: &mut A,
    ) -> Result<Self, A::Error> {
        Ok(match role.as_ref() {
            "agent" => Self::Agent(role::read_boxed(before, map)?),
            "user" => Self::User(role::read_boxed(before, map)?),
            "tool_call_invocation" => Self::ToolCallInvocation(role::read_boxed(before, map)?),
            "tool_call_result" => Self::ToolCallResult(role::read_boxed(before, map)?),
            "node_transition" => Self::NodeTransition(role::read_boxed(before, map)?),
            "state_transition" => Self::StateTransition(role::read_boxed(before, map)?),
            "injected" => Self::Injected(role::read_boxed(before, map)?),
            "sms" => Self::Sms(role::read_boxed(before, map)?),
            _ => Self::Unknown(role::read_unknown(role, before, map)?),
        })
    }

    fn unknown(value: RawJson) -> Self {
        Self::Unknown(value)
    }
}

impl Lenient for ChatMessage {
    const EXPECTED: &'static str = "a chat message";

    fn read<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Read<Self>, D::Error> {
        role::read_tagged(deserializer)
    }

    fn walk(&self, path: &mut Path, out: &mut Vec<Untyped>) {
        match self {
            Self::Agent(m) | Self::User(m) | Self::Injected(m) => m.walk(path, out),
            Self::Sms(m) => m.walk(path, out),
            Self::ToolCallInvocation(m) => m.walk(path, out),
            Self::ToolCallResult(m) => m.walk(path, out),
            Self::NodeTransition(m) => m.walk(path, out),
            Self::StateTransition(m) => m.walk(path, out),
            Self::Unknown(_) => path.record(out, UntypedReason::UnknownKind),
        }
    }
}

impl<'de> Deserialize<'de> for ChatMessage {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        role::deserialize_tagged(deserializer)
    }
}

impl Serialize for ChatMessage {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Agent(m) => role::write_tagged(serializer, "agent", &**m),
            Self::User(m) => role::write_tagged(serializer, "user", &**m),
            Self::ToolCallInvocation(m) => {
                role::write_tagged(serializer, "tool_call_invocation", &**m)
            }
            Self::ToolCallResult(m) => role::write_tagged(serializer, "tool_call_result", &**m),
            Self::NodeTransition(m) => role::write_tagged(serializer, "node_transition", &**m),
            Self::StateTransition(m) => role::write_tagged(serializer, "state_transition", &**m),
            Self::Injected(m) => role::write_tagged(serializer, "injected", &**m),
            Self::Sms(m) => role::write_tagged(serializer, "sms", &**m),
            Self::Unknown(value) => value.serialize(serializer),
        }
    }
}
