//! The inbound call / SMS webhook: Retell asks which agent (if any) should take
//! a call or an SMS conversation before it exists.
//!
//! Requests arrive as `{"event":"call_inbound","call_inbound":{…}}` (or
//! `chat_inbound`), are parsed with [`Incoming::from_slice`](crate::Incoming::from_slice),
//! and are answered with an [`InboundResponse`].

use std::collections::BTreeMap;

use super::raw::RawJson;
use serde::de::Error as _;
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::Extra;
use super::lenient::{Lenient, Read, Scalar, read_scalar};

model! {
    /// `call_inbound`: details of a phone call waiting for an agent.
    pub struct InboundCall {
        /// Id of the call being set up: the same on every retry of this
        /// request, so it deduplicates them (absent when set-up failed early).
        call_id: String,
        /// The number's inbound agent, if one is configured.
        agent_id: String,
        /// The number's inbound agent version (a number or a tag such as
        /// `"prod"`), if configured.
        agent_version: AgentVersion,
        /// Caller number.
        from_number: String,
        /// Called number.
        to_number: String,
        /// Forwarded SIP headers (`X-*` and a few standard ones; names lower-cased).
        custom_sip_headers: BTreeMap<String, String>,
    }
}

model! {
    /// `chat_inbound`: details of an inbound SMS conversation waiting for an agent.
    pub struct InboundChat {
        /// Id of the chat being set up: the same on every retry of this
        /// request, so it deduplicates them.
        chat_id: String,
        /// The number's inbound SMS agent, if one is configured.
        agent_id: String,
        /// The agent version (a number or a tag such as `"prod"`), if configured.
        agent_version: AgentVersion,
        /// Sender number.
        from_number: String,
        /// Receiving number.
        to_number: String,
    }
}

/// A reference to an agent version: a number, or a tag such as `"prod"` or
/// `"latest"`.
///
/// ```
/// use retell_webhooks::models::AgentVersion;
///
/// assert_eq!(AgentVersion::from(3), AgentVersion::Number(3));
/// assert_eq!(AgentVersion::from("prod"), AgentVersion::Tag("prod".into()));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AgentVersion {
    /// A version number.
    Number(u64),
    /// A version tag.
    Tag(String),
}

impl From<u64> for AgentVersion {
    fn from(version: u64) -> Self {
        Self::Number(version)
    }
}

impl From<&str> for AgentVersion {
    fn from(tag: &str) -> Self {
        Self::Tag(tag.to_owned())
    }
}

impl From<String> for AgentVersion {
    fn from(tag: String) -> Self {
        Self::Tag(tag)
    }
}

impl Scalar for AgentVersion {
    const EXPECTED: &'static str = "a version number or tag";
    fn from_str(v: &str) -> Option<Self> {
        Some(Self::Tag(v.to_owned()))
    }
    fn from_string(v: String) -> Result<Self, String> {
        Ok(Self::Tag(v))
    }
    fn from_u64(v: u64) -> Option<Self> {
        <u64 as Scalar>::from_u64(v).map(Self::Number)
    }
    fn from_i64(v: i64) -> Option<Self> {
        <u64 as Scalar>::from_i64(v).map(Self::Number)
    }
    fn from_f64(v: f64) -> Option<Self> {
        <u64 as Scalar>::from_f64(v).map(Self::Number)
    }
}

impl Lenient for AgentVersion {
    const EXPECTED: &'static str = <Self as Scalar>::EXPECTED;
    fn read<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Read<Self>, D::Error> {
        read_scalar(deserializer)
    }
}

impl Serialize for AgentVersion {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Number(n) => serializer.serialize_u64(*n),
            Self::Tag(tag) => serializer.serialize_str(tag),
        }
    }
}

impl<'de> Deserialize<'de> for AgentVersion {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match read_scalar(deserializer)? {
            Read::Typed(version) => Ok(version),
            _ => Err(D::Error::custom("expected a version number or tag")),
        }
    }
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

model! {
    /// The fields of an inbound response (all optional).
    pub struct InboundResponseBody {
        /// `Some(true)` rejects the call / drops the SMS. Only JSON `true` rejects.
        reject: bool,
        /// Agent to use instead of the number's inbound agent.
        override_agent_id: String,
        /// Agent version to use (a number or a tag such as `"prod"`).
        override_agent_version: AgentVersion,
        /// Dynamic variables injected into the prompts.
        dynamic_variables: BTreeMap<String, String>,
        /// Metadata stored on the call / chat.
        metadata: RawJson,
        /// Per-session agent / LLM / flow overrides (`{agent?, retell_llm?, conversation_flow?}`).
        agent_override: RawJson,
    }
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

    /// Uses a specific agent version: a number, or a tag such as `"prod"`.
    #[must_use]
    pub fn override_agent_version(mut self, version: impl Into<AgentVersion>) -> Self {
        self.body.override_agent_version = Some(version.into());
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
    pub fn metadata(mut self, metadata: impl Into<RawJson>) -> Self {
        self.body.metadata = Some(metadata.into());
        self
    }

    /// Sets per-session overrides (`{agent?, retell_llm?, conversation_flow?}`).
    #[must_use]
    pub fn agent_override(mut self, agent_override: impl Into<RawJson>) -> Self {
        self.body.agent_override = Some(agent_override.into());
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
