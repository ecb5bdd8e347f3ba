//! The Chat object (`chat` in chat events) and its messages.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::call::ProductCost;
use super::enums::{ChatRole, ChatStatus, ChatType, TransitionType, UserSentiment};
use super::role::{self, RoleTagged};
use super::transcript::{Multimedia, Tagged};
use super::{Extra, ms_to_datetime, number};

/// A chat (API chat or SMS conversation), as Retell sends it in webhooks.
///
/// Only `chat_id` is required; everything else may be absent. Fields this version
/// does not know are kept in `extra`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Chat {
    /// Unique chat id.
    pub chat_id: String,
    /// Chat agent id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// Agent version (named `version` here, unlike calls).
    #[serde(
        default,
        deserialize_with = "number::opt_u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub version: Option<u64>,
    /// Lifecycle state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_status: Option<ChatStatus>,
    /// `api_chat` or `sms_chat`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_type: Option<ChatType>,
    /// Start, epoch milliseconds.
    #[serde(
        default,
        deserialize_with = "number::opt_u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub start_timestamp: Option<u64>,
    /// End, epoch milliseconds.
    #[serde(
        default,
        deserialize_with = "number::opt_u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub end_timestamp: Option<u64>,
    /// Plain transcript.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transcript: Option<String>,
    /// Messages interleaved with tool calls and transitions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_with_tool_calls: Option<Vec<ChatMessage>>,
    /// Post-chat analysis (only in `chat_analyzed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_analysis: Option<ChatAnalysis>,
    /// Cost breakdown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_cost: Option<ChatCost>,
    /// Dynamic variables collected during the chat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collected_dynamic_variables: Option<Map<String, Value>>,
    /// Dynamic variables injected into the prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retell_llm_dynamic_variables: Option<Map<String, Value>>,
    /// Custom attributes (values are strings, numbers or booleans).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_attributes: Option<Map<String, Value>>,
    /// Your metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    /// Keys this version does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

impl Chat {
    /// Parses a bare Chat object (not an event envelope), e.g. one stored on
    /// its own. Errors name the JSON path and, when readable, the `chat_id`.
    pub fn from_slice(body: &[u8]) -> Result<Self, crate::ParseError> {
        crate::events::parse_standalone(body, crate::events::Standalone::Chat)
    }

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

/// `chat.chat_analysis` (all fields optional).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatAnalysis {
    /// Summary of the chat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_summary: Option<String>,
    /// Sentiment of the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_sentiment: Option<UserSentiment>,
    /// Whether the agent achieved its task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_successful: Option<bool>,
    /// Your custom analysis fields (raw JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_analysis_data: Option<Value>,
    /// Keys this version does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `chat.chat_cost` in US cents (no duration fields, unlike calls).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatCost {
    /// Total cost in cents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub combined_cost: Option<f64>,
    /// Cost per product.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_costs: Option<Vec<ProductCost>>,
    /// Keys this version does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// An `agent`, `user` or `injected` chat message.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatText {
    /// Message id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// Creation time, epoch milliseconds (by convention; the unit is undocumented).
    #[serde(
        default,
        deserialize_with = "number::opt_u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub created_timestamp: Option<u64>,
    /// Message text.
    pub content: String,
    /// Keys this version does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// An `sms` chat message.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatSms {
    /// Message id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// Creation time, epoch milliseconds.
    #[serde(
        default,
        deserialize_with = "number::opt_u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub created_timestamp: Option<u64>,
    /// Message text.
    pub content: String,
    /// Attachments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multimedia: Option<Vec<Multimedia>>,
    /// Keys this version does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A `tool_call_invocation` chat message.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatToolCallInvocation {
    /// Message id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// Creation time, epoch milliseconds.
    #[serde(
        default,
        deserialize_with = "number::opt_u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub created_timestamp: Option<u64>,
    /// Id linking the invocation to its result.
    pub tool_call_id: String,
    /// Tool name.
    pub name: String,
    /// Arguments as a JSON string.
    pub arguments: String,
    /// Gemini thought signature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thought_signature: Option<String>,
    /// Keys this version does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A `tool_call_result` chat message.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatToolCallResult {
    /// Message id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// Creation time, epoch milliseconds.
    #[serde(
        default,
        deserialize_with = "number::opt_u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub created_timestamp: Option<u64>,
    /// Id of the matching invocation.
    pub tool_call_id: String,
    /// Result text.
    pub content: String,
    /// Whether the tool succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub successful: Option<bool>,
    /// Keys this version does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A `node_transition` chat message (every field optional, unlike calls).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatNodeTransition {
    /// Message id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// Creation time, epoch milliseconds.
    #[serde(
        default,
        deserialize_with = "number::opt_u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub created_timestamp: Option<u64>,
    /// Previous node id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub former_node_id: Option<String>,
    /// Previous node name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub former_node_name: Option<String>,
    /// New node id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_node_id: Option<String>,
    /// New node name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_node_name: Option<String>,
    /// Kind of transition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transition_type: Option<TransitionType>,
    /// Keys this version does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A `state_transition` chat message (multi-state prompts).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatStateTransition {
    /// Message id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// Creation time, epoch milliseconds.
    #[serde(
        default,
        deserialize_with = "number::opt_u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub created_timestamp: Option<u64>,
    /// Previous state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub former_state_name: Option<String>,
    /// New state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_state_name: Option<String>,
    /// Keys this version does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One item of `message_with_tool_calls`, chosen by its `role`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ChatMessage {
    /// `agent`.
    Agent(ChatText),
    /// `user`.
    User(ChatText),
    /// `tool_call_invocation`.
    ToolCallInvocation(ChatToolCallInvocation),
    /// `tool_call_result`.
    ToolCallResult(ChatToolCallResult),
    /// `node_transition`.
    NodeTransition(ChatNodeTransition),
    /// `state_transition`.
    StateTransition(ChatStateTransition),
    /// `injected`.
    Injected(ChatText),
    /// `sms`.
    Sms(ChatSms),
    /// Any other role (or none): the whole object, `role` included.
    Unknown(Value),
}

impl ChatMessage {
    /// The `role` string (`None` for an unknown message without one).
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
            Self::Unknown(value) => return value.get("role").and_then(Value::as_str),
        })
    }

    /// The `role` as an open enum (`None` for an unknown message without a string role).
    pub fn kind(&self) -> Option<ChatRole> {
        self.role().map(ChatRole::from)
    }

    /// The text of agent, user, injected, SMS and tool-result messages.
    pub fn content(&self) -> Option<&str> {
        match self {
            Self::Agent(m) | Self::User(m) | Self::Injected(m) => Some(&m.content),
            Self::Sms(m) => Some(&m.content),
            Self::ToolCallResult(m) => Some(&m.content),
            _ => None,
        }
    }

    fn extra(&self) -> Option<&Extra> {
        Some(match self {
            Self::Agent(m) | Self::User(m) | Self::Injected(m) => &m.extra,
            Self::Sms(m) => &m.extra,
            Self::ToolCallInvocation(m) => &m.extra,
            Self::ToolCallResult(m) => &m.extra,
            Self::NodeTransition(m) => &m.extra,
            Self::StateTransition(m) => &m.extra,
            Self::Unknown(_) => return None,
        })
    }
}

impl RoleTagged for ChatMessage {
    const EXPECTING: &'static str = "a chat message object";

    fn from_rest<'de, D: Deserializer<'de>>(role: String, rest: D) -> Result<Self, D::Error> {
        Ok(match role.as_str() {
            "agent" => Self::Agent(Deserialize::deserialize(rest)?),
            "user" => Self::User(Deserialize::deserialize(rest)?),
            "tool_call_invocation" => Self::ToolCallInvocation(Deserialize::deserialize(rest)?),
            "tool_call_result" => Self::ToolCallResult(Deserialize::deserialize(rest)?),
            "node_transition" => Self::NodeTransition(Deserialize::deserialize(rest)?),
            "state_transition" => Self::StateTransition(Deserialize::deserialize(rest)?),
            "injected" => Self::Injected(Deserialize::deserialize(rest)?),
            "sms" => Self::Sms(Deserialize::deserialize(rest)?),
            _ => {
                let mut object = Map::<String, Value>::deserialize(rest)?;
                if object.contains_key("role") {
                    return Err(serde::de::Error::duplicate_field("role"));
                }
                object.insert("role".to_owned(), Value::String(role));
                Self::Unknown(Value::Object(object))
            }
        })
    }

    fn unknown(object: Map<String, Value>) -> Self {
        Self::Unknown(Value::Object(object))
    }

    fn extra_has_role(&self) -> bool {
        self.extra().is_some_and(|extra| extra.contains_key("role"))
    }
}

impl<'de> Deserialize<'de> for ChatMessage {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        role::deserialize_tagged(deserializer)
    }
}

impl Serialize for ChatMessage {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        fn tagged<S: Serializer, T: Serialize>(
            s: S,
            role: &str,
            inner: &T,
        ) -> Result<S::Ok, S::Error> {
            Tagged { role, inner }.serialize(s)
        }
        match self {
            Self::Agent(m) => tagged(serializer, "agent", m),
            Self::User(m) => tagged(serializer, "user", m),
            Self::ToolCallInvocation(m) => tagged(serializer, "tool_call_invocation", m),
            Self::ToolCallResult(m) => tagged(serializer, "tool_call_result", m),
            Self::NodeTransition(m) => tagged(serializer, "node_transition", m),
            Self::StateTransition(m) => tagged(serializer, "state_transition", m),
            Self::Injected(m) => tagged(serializer, "injected", m),
            Self::Sms(m) => tagged(serializer, "sms", m),
            Self::Unknown(value) => value.serialize(serializer),
        }
    }
}
