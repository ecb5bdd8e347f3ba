//! The inbound call / SMS webhook: Retell asks which agent (if any) should take
//! a call or an SMS conversation before it exists.
//!
//! Requests arrive as `{"event":"call_inbound","call_inbound":{…}}` (or
//! `chat_inbound`), are parsed with [`Incoming::from_slice`](crate::Incoming::from_slice),
//! and are answered with an [`InboundResponse`].

use std::collections::BTreeMap;

use serde::de::Error as _;
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use super::{Extra, number};

/// `call_inbound`: details of a phone call waiting for an agent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InboundCall {
    /// The number's inbound agent, if one is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// The number's inbound agent version, if configured.
    #[serde(
        default,
        deserialize_with = "number::opt_u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub agent_version: Option<u64>,
    /// Caller number.
    pub from_number: String,
    /// Called number.
    pub to_number: String,
    /// Forwarded SIP headers (`X-*` and a few standard ones; names lower-cased).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_sip_headers: Option<BTreeMap<String, String>>,
    /// Keys this version does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `chat_inbound`: details of an inbound SMS conversation waiting for an agent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InboundChat {
    /// The number's inbound SMS agent, if one is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// The agent version, if configured.
    #[serde(
        default,
        deserialize_with = "number::opt_u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub agent_version: Option<u64>,
    /// Sender number.
    pub from_number: String,
    /// Receiving number.
    pub to_number: String,
    /// Keys this version does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Body of a `call_inbound` request.
///
/// Serializes with its `"event": "call_inbound"` key; deserializes through the
/// same envelope parser as [`Incoming`](crate::Incoming).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InboundCallRequest {
    /// When Retell sent the request, epoch milliseconds.
    pub event_timestamp: Option<u64>,
    /// The waiting call.
    pub call_inbound: InboundCall,
    /// Top-level keys this version does not model.
    pub extra: Extra,
}

/// Body of a `chat_inbound` (inbound SMS) request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InboundChatRequest {
    /// When Retell sent the request, epoch milliseconds (absent in the SMS sample).
    pub event_timestamp: Option<u64>,
    /// The waiting conversation.
    pub chat_inbound: InboundChat,
    /// Top-level keys this version does not model.
    pub extra: Extra,
}

/// Which inbound webhook a response answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InboundKind {
    /// Inbound phone call: `{"call_inbound": {…}}`.
    Call,
    /// Inbound SMS: `{"chat_inbound": {…}}`.
    Chat,
}

impl InboundKind {
    /// The wrapper key (`call_inbound` / `chat_inbound`).
    pub fn key(self) -> &'static str {
        match self {
            Self::Call => "call_inbound",
            Self::Chat => "chat_inbound",
        }
    }
}

/// The fields of an inbound response (all optional).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InboundResponseBody {
    /// `Some(true)` rejects the call / drops the SMS. Only JSON `true` rejects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reject: Option<bool>,
    /// Agent to use instead of the number's inbound agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub override_agent_id: Option<String>,
    /// Agent version to use.
    #[serde(
        default,
        deserialize_with = "number::opt_u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub override_agent_version: Option<u64>,
    /// Dynamic variables injected into the prompts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dynamic_variables: Option<BTreeMap<String, String>>,
    /// Metadata stored on the call / chat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    /// Per-session agent / LLM / flow overrides (`{agent?, retell_llm?, conversation_flow?}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_override: Option<Value>,
    /// Keys this version does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Answer to an inbound call / SMS webhook, built with a small builder.
///
/// ```
/// use retell_webhooks::InboundResponse;
/// use serde_json::json;
///
/// let answer = InboundResponse::call()
///     .override_agent_id("agent_9b2e")
///     .dynamic_variables([("customer_name", "Maria Lopez")])
///     .metadata(json!({ "crm_contact_id": "cnt_20931" }));
/// assert_eq!(
///     serde_json::to_value(&answer)?,
///     json!({ "call_inbound": {
///         "override_agent_id": "agent_9b2e",
///         "dynamic_variables": { "customer_name": "Maria Lopez" },
///         "metadata": { "crm_contact_id": "cnt_20931" }
///     }})
/// );
///
/// // Rejecting: only `reject: true` is written.
/// let body = InboundResponse::chat().reject().to_body();
/// assert_eq!(body, br#"{"chat_inbound":{"reject":true}}"#);
/// assert_eq!(InboundResponse::CONTENT_TYPE, "application/json");
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct InboundResponse {
    /// Which webhook this answers (decides the wrapper key).
    pub kind: InboundKind,
    /// The response fields.
    pub body: InboundResponseBody,
}

impl InboundResponse {
    /// Content type of [`Self::to_body`].
    pub const CONTENT_TYPE: &'static str = "application/json";

    /// An empty answer to `call_inbound` (accept with the number's settings).
    pub fn call() -> Self {
        Self::new(InboundKind::Call)
    }

    /// An empty answer to `chat_inbound`.
    pub fn chat() -> Self {
        Self::new(InboundKind::Chat)
    }

    /// An empty answer of the given kind.
    pub fn new(kind: InboundKind) -> Self {
        Self {
            kind,
            body: InboundResponseBody::default(),
        }
    }

    /// Rejects the call (hang up) or drops the SMS. Wins over agent selection.
    #[must_use]
    pub fn reject(mut self) -> Self {
        self.body.reject = Some(true);
        self
    }

    /// Uses another agent.
    #[must_use]
    pub fn override_agent_id(mut self, agent_id: impl Into<String>) -> Self {
        self.body.override_agent_id = Some(agent_id.into());
        self
    }

    /// Uses a specific agent version.
    #[must_use]
    pub fn override_agent_version(mut self, version: u64) -> Self {
        self.body.override_agent_version = Some(version);
        self
    }

    /// Adds dynamic variables (later values replace earlier ones of the same name).
    #[must_use]
    pub fn dynamic_variables<I, K, V>(mut self, variables: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        self.body
            .dynamic_variables
            .get_or_insert_with(BTreeMap::new)
            .extend(variables.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    /// Sets the metadata stored on the call / chat.
    #[must_use]
    pub fn metadata(mut self, metadata: Value) -> Self {
        self.body.metadata = Some(metadata);
        self
    }

    /// Sets per-session overrides (`{agent?, retell_llm?, conversation_flow?}`).
    #[must_use]
    pub fn agent_override(mut self, agent_override: Value) -> Self {
        self.body.agent_override = Some(agent_override);
        self
    }

    /// `true` when this answer rejects.
    pub fn is_reject(&self) -> bool {
        self.body.reject == Some(true)
    }

    /// The JSON body to send back (content type [`Self::CONTENT_TYPE`]).
    pub fn to_body(&self) -> Vec<u8> {
        // Serializing string-keyed maps and `Value`s cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

impl Serialize for InboundResponse {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry(self.kind.key(), &self.body)?;
        map.end()
    }
}

impl<'de> Deserialize<'de> for InboundResponse {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Exactly one of the two wrapper keys must be present.
        #[derive(Deserialize)]
        struct Wrapper {
            call_inbound: Option<InboundResponseBody>,
            chat_inbound: Option<InboundResponseBody>,
        }
        match Wrapper::deserialize(deserializer)? {
            Wrapper {
                call_inbound: Some(body),
                chat_inbound: None,
            } => Ok(Self {
                kind: InboundKind::Call,
                body,
            }),
            Wrapper {
                call_inbound: None,
                chat_inbound: Some(body),
            } => Ok(Self {
                kind: InboundKind::Chat,
                body,
            }),
            _ => Err(D::Error::custom(
                "expected exactly one of `call_inbound` or `chat_inbound`",
            )),
        }
    }
}
