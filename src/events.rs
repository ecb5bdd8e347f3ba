//! Webhook events and the envelope parser.
//!
//! # How a body is parsed
//!
//! 1. The **whole** body is checked to be UTF-8 (serde_json does not validate
//!    strings it skips).
//! 2. One streaming pass with a hand-written envelope visitor: keys may come in
//!    any order (`event` may be last); `call`, `data`, `chat`, … go straight into
//!    their typed models, other keys into `extra`. No intermediate
//!    `serde_json::Value` of the body, no internally tagged enum (which would
//!    buffer everything first). Every key may appear once in every object;
//!    `event` must be a string and the call or chat an object with its id;
//!    trailing characters are rejected; nesting is limited by serde_json's
//!    recursion limit (128). Every other field is read leniently: `null` and
//!    values of another type are kept (see the [models' rules](crate::models)),
//!    so a verified body is delivered whenever its envelope is readable.
//! 3. The event name picks the variant. An unknown name gives
//!    [`WebhookEvent::Unknown`] with the whole body as JSON, never an error.
//! 4. On failure a second, lenient pass finds the JSON path, the event name and
//!    the call/chat id for the [`ParseError`] (the failure path only).
//!
//! The legacy key `data` (the call object, before Retell renamed it `call`) is
//! read when `call` is absent; when both are present `call` wins and `data` is
//! kept for re-serialization.
//!
//! # Edge cases worth knowing
//!
//! * Unknown keys are kept as `serde_json::Value` (so they can be written back),
//!   which means they count towards the nesting limit like everything else: a
//!   10 000-deep array anywhere in the body is a [`ParseError`], never a stack
//!   overflow. The whole document may nest 127 containers.
//! * A duplicate key is an error in every object, inside raw JSON fields
//!   (`metadata`, `custom_analysis_data`, unknown keys) too, so that two
//!   parsers can never disagree about a signed body. Inside raw JSON fields,
//!   integers above `u64::MAX` become floats (serde_json's own behaviour); in a
//!   typed integer field they are a fallback. A number outside the range of
//!   `f64` (`1e400`) cannot be represented and is an error wherever it is.
//! * An escaped `"\u0000"` is valid JSON and reaches your handler as a NUL
//!   character. PostgreSQL `text` columns reject NUL, so a naive insert fails the
//!   same way on every retry; strip or escape it before storing.
//! * Integer fields (timestamps, durations, versions) accept integral floats
//!   (`1e3`, `1000.0`) because Retell's types say `number`; fractions, negative
//!   values and values above `u64::MAX` are fallbacks.

use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::error::{Error, ParseError};
use crate::models::lenient::{Lenient, ReadSeed, StrictValue, insert_unique};
use crate::models::model::store;
use crate::models::untyped::Path;
use crate::models::{
    Call, Chat, Extra, InboundCall, InboundCallRequest, InboundChat, InboundChatRequest,
    TranscriptItem,
};
use crate::models::{Untyped, UntypedReason};
use crate::signature::Verifier;

/// Every event name of the event webhook this version knows.
pub const KNOWN_EVENTS: &[&str] = &[
    "call_started",
    "call_ended",
    "call_analyzed",
    "transcript_updated",
    "transfer_started",
    "transfer_bridged",
    "transfer_cancelled",
    "transfer_ended",
    "chat_started",
    "chat_ended",
    "chat_analyzed",
];

/// Names of the inbound webhook requests ([`Incoming::CallInbound`] / [`Incoming::ChatInbound`]).
pub const INBOUND_EVENTS: &[&str] = &["call_inbound", "chat_inbound"];

pub(crate) fn is_known_event(name: &str) -> bool {
    KNOWN_EVENTS.contains(&name) || INBOUND_EVENTS.contains(&name)
}

/// An event delivered to the event webhook, chosen by its `event` name.
///
/// ```
/// use retell_webhooks::WebhookEvent;
///
/// let body = br#"{"event":"call_ended","call":{"call_id":"call_1","agent_id":"agent_1",
///     "disconnection_reason":"user_hangup","duration_ms":61000}}"#;
/// let event = WebhookEvent::from_slice(body)?;
/// assert_eq!(event.event_name(), "call_ended");
/// assert_eq!(event.call_id(), Some("call_1"));
/// if let WebhookEvent::CallEnded(ended) = &event {
///     assert_eq!(ended.call.duration_ms, Some(61_000));
/// }
///
/// // Unknown events are not errors: the name and the raw JSON are kept.
/// let event = WebhookEvent::from_slice(br#"{"event":"call_exploded","call":{"call_id":"c1"}}"#)?;
/// assert!(matches!(event, WebhookEvent::Unknown(_)));
/// assert_eq!(event.event_name(), "call_exploded");
///
/// // A field of an unexpected type falls back instead of failing the body:
/// // it reads `None`, is reported by path, and is written back as received.
/// let body = br#"{"event":"call_ended","call":{"call_id":"c1","duration_ms":"61s"}}"#;
/// let event = WebhookEvent::from_slice(body)?;
/// assert_eq!(event.call().and_then(|c| c.duration_ms), None);
/// assert_eq!(event.fallbacks()[0].path, "call.duration_ms");
/// assert_eq!(serde_json::to_vec(&event).unwrap(), body.to_vec());
///
/// // Broken structure is an error that names the JSON path, never a value.
/// let err = WebhookEvent::from_slice(br#"{"event":"call_ended","call":{"duration_ms":1}}"#)
///     .unwrap_err();
/// assert_eq!(err.path(), "call");
/// # Ok::<(), retell_webhooks::ParseError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum WebhookEvent {
    /// `call_started`.
    CallStarted(CallEvent),
    /// `call_ended` (hangup, transfer or error; no analysis yet).
    CallEnded(CallEvent),
    /// `call_analyzed` (with `call_analysis`).
    CallAnalyzed(CallEvent),
    /// `transcript_updated` (voice or chat).
    TranscriptUpdated(TranscriptUpdatedEvent),
    /// `transfer_started`.
    TransferStarted(TransferEvent),
    /// `transfer_bridged`.
    TransferBridged(TransferEvent),
    /// `transfer_cancelled` (cancelled or failed to connect).
    TransferCancelled(TransferEvent),
    /// `transfer_ended`.
    TransferEnded(TransferEvent),
    /// `chat_started`.
    ChatStarted(ChatEvent),
    /// `chat_ended`.
    ChatEnded(ChatEvent),
    /// `chat_analyzed` (with `chat_analysis`).
    ChatAnalyzed(ChatEvent),
    /// An event name this version does not know (answer it with 2xx).
    Unknown(UnknownEvent),
}

/// Payload of `call_started`, `call_ended` and `call_analyzed`.
#[derive(Debug, Clone, PartialEq)]
pub struct CallEvent {
    /// The call (from `call`, or from legacy `data` when `call` is absent).
    pub call: Box<Call>,
    /// How the legacy `data` key appeared.
    pub legacy_data: LegacyData,
    /// Top-level `event_timestamp` (epoch ms), when sent.
    pub event_timestamp: Option<u64>,
    /// Top-level keys this version does not model.
    pub extra: Extra,
}

/// Whether the body used the legacy `data` key for the call object.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum LegacyData {
    /// Only `call` was sent (today's format).
    #[default]
    Absent,
    /// Only `data` was sent; it was read as the call.
    Only,
    /// Both were sent; `call` won and this is the ignored `data` copy.
    Alongside(Box<Call>),
}

/// Payload of the four `transfer_*` events.
#[derive(Debug, Clone, PartialEq)]
pub struct TransferEvent {
    /// The call being transferred.
    pub call: Box<Call>,
    /// How the legacy `data` key appeared.
    pub legacy_data: LegacyData,
    /// Top-level `transfer_destination` (an object such as
    /// `{"number": "+1…", "extension": "204"}`; fields vary by transfer type).
    /// Not the same as `call.transfer_destination`, which is a string.
    pub transfer_destination: Option<Value>,
    /// Top-level `transfer_option` (camelCase in Retell's sample; opaque).
    pub transfer_option: Option<Value>,
    /// Top-level `event_timestamp` (epoch ms), when sent.
    pub event_timestamp: Option<u64>,
    /// Top-level keys this version does not model.
    pub extra: Extra,
}

impl TransferEvent {
    /// The destination number: `transfer_destination.number`, or the
    /// destination itself when it is a string, or `call.transfer_destination`.
    pub fn destination_number(&self) -> Option<&str> {
        match &self.transfer_destination {
            Some(Value::String(number)) => Some(number),
            Some(Value::Object(object)) => object.get("number").and_then(Value::as_str),
            _ => self.call.transfer_destination.as_deref(),
        }
    }

    /// `transfer_destination.extension`.
    pub fn destination_extension(&self) -> Option<&str> {
        self.transfer_destination
            .as_ref()?
            .get("extension")?
            .as_str()
    }

    /// `transfer_option.type` (`cold_transfer`, `warm_transfer`, …).
    pub fn transfer_type(&self) -> Option<&str> {
        self.transfer_option.as_ref()?.get("type")?.as_str()
    }
}

/// Subject of a `transcript_updated` event.
#[derive(Debug, Clone, PartialEq)]
pub enum TranscriptSubject {
    /// Voice agents: the call.
    Call(Box<Call>),
    /// Chat agents: the chat.
    Chat(Box<Chat>),
}

/// Payload of `transcript_updated` (sent on turn-taking and once at the end).
#[derive(Debug, Clone, PartialEq)]
pub struct TranscriptUpdatedEvent {
    /// The call or chat.
    pub subject: TranscriptSubject,
    /// How the legacy `data` key appeared (voice only).
    pub legacy_data: LegacyData,
    /// A top-level copy of `transcript_with_tool_calls`, when sent there
    /// rather than (or as well as) inside `call`.
    pub transcript_with_tool_calls: Option<Vec<TranscriptItem>>,
    /// Top-level `event_timestamp` (epoch ms), when sent.
    pub event_timestamp: Option<u64>,
    /// Top-level keys this version does not model.
    pub extra: Extra,
}

impl TranscriptUpdatedEvent {
    /// The call, for voice agents.
    pub fn call(&self) -> Option<&Call> {
        match &self.subject {
            TranscriptSubject::Call(call) => Some(call),
            TranscriptSubject::Chat(_) => None,
        }
    }

    /// The chat, for chat agents.
    pub fn chat(&self) -> Option<&Chat> {
        match &self.subject {
            TranscriptSubject::Chat(chat) => Some(chat),
            TranscriptSubject::Call(_) => None,
        }
    }

    /// The transcript with tool calls: the top-level copy if sent, else the call's.
    pub fn transcript_with_tool_calls(&self) -> Option<&[TranscriptItem]> {
        self.transcript_with_tool_calls
            .as_deref()
            .or_else(|| self.call()?.transcript_with_tool_calls.as_deref())
    }
}

/// Payload of `chat_started`, `chat_ended` and `chat_analyzed`.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatEvent {
    /// The chat.
    pub chat: Box<Chat>,
    /// Top-level `event_timestamp` (epoch ms), when sent.
    pub event_timestamp: Option<u64>,
    /// Top-level keys this version does not model.
    pub extra: Extra,
}

/// An event this version does not know: its name and the whole body.
#[derive(Debug, Clone, PartialEq)]
pub struct UnknownEvent {
    /// The `event` string as received.
    pub event: String,
    /// The whole body as JSON (including `event`).
    pub raw: Value,
}

impl WebhookEvent {
    /// Parses a (verified) request body. See the [module docs](self) for the rules.
    pub fn from_slice(body: &[u8]) -> Result<Self, ParseError> {
        match Incoming::from_slice(body)? {
            Incoming::Event(event) => Ok(event),
            // An inbound request is not an event-webhook event: hand it over raw.
            other => Ok(Self::Unknown(unknown_from(body, other.event_name()))),
        }
    }

    /// The `event` name.
    pub fn event_name(&self) -> &str {
        match self {
            Self::CallStarted(_) => "call_started",
            Self::CallEnded(_) => "call_ended",
            Self::CallAnalyzed(_) => "call_analyzed",
            Self::TranscriptUpdated(_) => "transcript_updated",
            Self::TransferStarted(_) => "transfer_started",
            Self::TransferBridged(_) => "transfer_bridged",
            Self::TransferCancelled(_) => "transfer_cancelled",
            Self::TransferEnded(_) => "transfer_ended",
            Self::ChatStarted(_) => "chat_started",
            Self::ChatEnded(_) => "chat_ended",
            Self::ChatAnalyzed(_) => "chat_analyzed",
            Self::Unknown(unknown) => &unknown.event,
        }
    }

    /// The call, for call, transfer and voice `transcript_updated` events.
    pub fn call(&self) -> Option<&Call> {
        match self {
            Self::CallStarted(e) | Self::CallEnded(e) | Self::CallAnalyzed(e) => Some(&e.call),
            Self::TransferStarted(e)
            | Self::TransferBridged(e)
            | Self::TransferCancelled(e)
            | Self::TransferEnded(e) => Some(&e.call),
            Self::TranscriptUpdated(e) => e.call(),
            _ => None,
        }
    }

    /// The chat, for chat events and chat `transcript_updated`.
    pub fn chat(&self) -> Option<&Chat> {
        match self {
            Self::ChatStarted(e) | Self::ChatEnded(e) | Self::ChatAnalyzed(e) => Some(&e.chat),
            Self::TranscriptUpdated(e) => e.chat(),
            _ => None,
        }
    }

    /// `call.call_id` (for unknown events: `call.call_id` or `data.call_id` of the raw body).
    pub fn call_id(&self) -> Option<&str> {
        match self {
            Self::Unknown(u) => raw_str(&u.raw, &["call", "data"], "call_id"),
            _ => self.call().map(|c| c.call_id.as_str()),
        }
    }

    /// `chat.chat_id` (for unknown events: from the raw body).
    pub fn chat_id(&self) -> Option<&str> {
        match self {
            Self::Unknown(u) => raw_str(&u.raw, &["chat"], "chat_id"),
            _ => self.chat().map(|c| c.chat_id.as_str()),
        }
    }

    /// The agent id of the call or chat.
    pub fn agent_id(&self) -> Option<&str> {
        match self {
            Self::Unknown(u) => raw_str(&u.raw, &["call", "chat", "data"], "agent_id"),
            _ => self
                .call()
                .and_then(|c| c.agent_id.as_deref())
                .or_else(|| self.chat().and_then(|c| c.agent_id.as_deref())),
        }
    }

    /// Top-level `event_timestamp` (epoch ms), when sent.
    pub fn event_timestamp(&self) -> Option<u64> {
        match self {
            Self::CallStarted(e) | Self::CallEnded(e) | Self::CallAnalyzed(e) => e.event_timestamp,
            Self::TransferStarted(e)
            | Self::TransferBridged(e)
            | Self::TransferCancelled(e)
            | Self::TransferEnded(e) => e.event_timestamp,
            Self::TranscriptUpdated(e) => e.event_timestamp,
            Self::ChatStarted(e) | Self::ChatEnded(e) | Self::ChatAnalyzed(e) => e.event_timestamp,
            Self::Unknown(u) => u.raw.get("event_timestamp").and_then(Value::as_u64),
        }
    }

    /// `true` for [`WebhookEvent::Unknown`].
    pub fn is_unknown(&self) -> bool {
        matches!(self, Self::Unknown(_))
    }
}

impl WebhookEvent {
    /// What this event keeps only as raw JSON, by path from the body's root:
    /// unknown keys, unknown enum values and item kinds, and fallbacks (known
    /// fields whose value did not fit their type). An unknown event is
    /// reported as its `event` key. Log these to see what Retell sends that
    /// this version does not model.
    pub fn untyped_paths(&self) -> Vec<Untyped> {
        let mut out = Vec::new();
        let mut path = Path::new("");
        match self {
            Self::CallStarted(e) | Self::CallEnded(e) | Self::CallAnalyzed(e) => {
                walk_call(&e.call, &e.legacy_data, &mut path, &mut out);
                walk_envelope(&e.extra, &mut path, &mut out);
            }
            Self::TransferStarted(e)
            | Self::TransferBridged(e)
            | Self::TransferCancelled(e)
            | Self::TransferEnded(e) => {
                walk_call(&e.call, &e.legacy_data, &mut path, &mut out);
                walk_envelope(&e.extra, &mut path, &mut out);
            }
            Self::TranscriptUpdated(e) => {
                match &e.subject {
                    TranscriptSubject::Call(call) => {
                        walk_call(call, &e.legacy_data, &mut path, &mut out);
                    }
                    TranscriptSubject::Chat(chat) => {
                        walk_under("chat", &**chat, &mut path, &mut out)
                    }
                }
                if let Some(items) = &e.transcript_with_tool_calls {
                    walk_under(Slot::Transcript.name(), items, &mut path, &mut out);
                }
                walk_envelope(&e.extra, &mut path, &mut out);
            }
            Self::ChatStarted(e) | Self::ChatEnded(e) | Self::ChatAnalyzed(e) => {
                walk_under("chat", &*e.chat, &mut path, &mut out);
                walk_envelope(&e.extra, &mut path, &mut out);
            }
            Self::Unknown(_) => path.record_key("event", &mut out, UntypedReason::UnknownValue),
        }
        out
    }

    /// The known fields at any depth whose values did not fit their type: a
    /// subset of [`Self::untyped_paths`].
    pub fn fallbacks(&self) -> Vec<Untyped> {
        let mut all = self.untyped_paths();
        all.retain(Untyped::is_fallback);
        all
    }
}

impl Incoming {
    /// What this request keeps only as raw JSON; see
    /// [`WebhookEvent::untyped_paths`].
    pub fn untyped_paths(&self) -> Vec<Untyped> {
        match self {
            Self::Event(event) => event.untyped_paths(),
            Self::CallInbound(request) => request.untyped_paths(),
            Self::ChatInbound(request) => request.untyped_paths(),
        }
    }

    /// The known fields whose values did not fit their type.
    pub fn fallbacks(&self) -> Vec<Untyped> {
        let mut all = self.untyped_paths();
        all.retain(Untyped::is_fallback);
        all
    }
}

impl InboundCallRequest {
    /// What this request keeps only as raw JSON, by path from the body's root.
    pub fn untyped_paths(&self) -> Vec<Untyped> {
        let mut out = Vec::new();
        let mut path = Path::new("");
        walk_under("call_inbound", &self.call_inbound, &mut path, &mut out);
        walk_envelope(&self.extra, &mut path, &mut out);
        out
    }
}

impl InboundChatRequest {
    /// What this request keeps only as raw JSON, by path from the body's root.
    pub fn untyped_paths(&self) -> Vec<Untyped> {
        let mut out = Vec::new();
        let mut path = Path::new("");
        walk_under("chat_inbound", &self.chat_inbound, &mut path, &mut out);
        walk_envelope(&self.extra, &mut path, &mut out);
        out
    }
}

fn walk_under<T: Lenient>(key: &str, value: &T, path: &mut Path, out: &mut Vec<Untyped>) {
    path.push_key(key);
    value.walk(path, out);
    path.pop();
}

fn walk_call(call: &Call, legacy: &LegacyData, path: &mut Path, out: &mut Vec<Untyped>) {
    match legacy {
        LegacyData::Absent => walk_under("call", call, path, out),
        LegacyData::Only => walk_under("data", call, path, out),
        LegacyData::Alongside(data) => {
            walk_under("call", call, path, out);
            walk_under("data", &**data, path, out);
        }
    }
}

/// Fallbacks of the envelope's lenient slots, and its unknown keys.
fn walk_envelope(extra: &Extra, path: &mut Path, out: &mut Vec<Untyped>) {
    const NAMES: [&str; Slot::ALL.len()] = {
        let mut names = [""; Slot::ALL.len()];
        let mut i = 0;
        while i < Slot::ALL.len() {
            names[i] = Slot::ALL[i].0;
            i += 1;
        }
        names
    };
    let mut expected: [&'static str; Slot::ALL.len()] = ["an object"; Slot::ALL.len()];
    expected[Slot::EventTimestamp as usize] = <u64 as Lenient>::EXPECTED;
    expected[Slot::Transcript as usize] = <Vec<TranscriptItem> as Lenient>::EXPECTED;
    crate::models::model::walk_extra(extra, &NAMES, &expected, path, out);
}

fn raw_str<'a>(raw: &'a Value, objects: &[&str], key: &str) -> Option<&'a str> {
    objects
        .iter()
        .find_map(|object| raw.get(object)?.get(key)?.as_str())
}

/// Everything Retell POSTs with an `event` key, at any of your Retell URLs:
/// events, and the inbound call / SMS requests that expect an answer.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Incoming {
    /// An event-webhook event (including unknown ones).
    Event(WebhookEvent),
    /// `call_inbound`: answer with [`InboundResponse::call`](crate::InboundResponse::call).
    CallInbound(InboundCallRequest),
    /// `chat_inbound`: answer with [`InboundResponse::chat`](crate::InboundResponse::chat).
    ChatInbound(InboundChatRequest),
}

impl Incoming {
    /// Parses a (verified) request body; same rules as [`WebhookEvent::from_slice`].
    pub fn from_slice(body: &[u8]) -> Result<Self, ParseError> {
        let text = std::str::from_utf8(body).map_err(|e| ParseError::utf8(body, e))?;
        match serde_json::from_str::<Incoming>(text) {
            Ok(Incoming::Event(WebhookEvent::Unknown(unknown))) => {
                // Rare path: keep the body exactly (nulls included) with a second parse.
                let raw = strict_body(text).unwrap_or(unknown.raw);
                Ok(Incoming::Event(WebhookEvent::Unknown(UnknownEvent {
                    event: unknown.event,
                    raw,
                })))
            }
            Ok(incoming) => Ok(incoming),
            Err(error) => failure(text, &error),
        }
    }

    /// The `event` name.
    pub fn event_name(&self) -> &str {
        match self {
            Self::Event(event) => event.event_name(),
            Self::CallInbound(_) => "call_inbound",
            Self::ChatInbound(_) => "chat_inbound",
        }
    }
}

fn unknown_from(body: &[u8], event: &str) -> UnknownEvent {
    UnknownEvent {
        event: event.to_owned(),
        raw: std::str::from_utf8(body)
            .ok()
            .and_then(|text| strict_body(text).ok())
            .unwrap_or(Value::Null),
    }
}

/// The whole body as a JSON value, duplicate keys rejected at every level.
fn strict_body(text: &str) -> Result<Value, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(text);
    let value = StrictValue.deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

/// Handles a failed parse (the rare path, so it may parse again).
///
/// An *unknown* event whose `call`/`chat`/… does not fit the models is not a
/// failure: it becomes [`WebhookEvent::Unknown`] with the raw body. Failures at
/// the envelope level (duplicate or non-string `event`, syntax, trailing
/// characters) stay errors whatever the event name.
fn failure(text: &str, error: &serde_json::Error) -> Result<Incoming, ParseError> {
    let path = serde_path_to_error::deserialize::<_, Incoming>(
        &mut serde_json::Deserializer::from_str(text),
    )
    .err()
    .map(|e| e.path().to_string())
    .unwrap_or_default();
    let probe = Probe::read(text);
    let in_model = path
        .split(['.', '['])
        .next()
        .is_some_and(|first| !first.is_empty() && first != "event" && first != "event_timestamp");
    if let Some(event) = probe
        .event
        .as_deref()
        .filter(|e| in_model && !is_known_event(e))
        && let Ok(raw) = strict_body(text)
    {
        return Ok(Incoming::Event(WebhookEvent::Unknown(UnknownEvent {
            event: event.to_owned(),
            raw,
        })));
    }
    Err(ParseError::json(error, path).with_context(probe.event, probe.call_id, probe.chat_id))
}

// ---------------------------------------------------------------------------
// The envelope: one streaming pass over the top-level object.
// ---------------------------------------------------------------------------

#[derive(Default)]
struct Envelope {
    event: Option<String>,
    event_timestamp: Option<u64>,
    call: Option<Box<Call>>,
    data: Option<Box<Call>>,
    chat: Option<Box<Chat>>,
    transfer_destination: Option<Value>,
    transfer_option: Option<Value>,
    transcript_with_tool_calls: Option<Vec<TranscriptItem>>,
    call_inbound: Option<InboundCall>,
    chat_inbound: Option<InboundChat>,
    extra: Extra,
}

/// Top-level keys the envelope reads into typed slots (the discriminant
/// indexes `Slot::ALL`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Slot {
    Event = 0,
    EventTimestamp,
    Call,
    Data,
    Chat,
    TransferDestination,
    TransferOption,
    Transcript,
    CallInbound,
    ChatInbound,
}

impl Slot {
    const ALL: [(&'static str, Slot); 10] = [
        ("event", Slot::Event),
        ("event_timestamp", Slot::EventTimestamp),
        ("call", Slot::Call),
        ("data", Slot::Data),
        ("chat", Slot::Chat),
        ("transfer_destination", Slot::TransferDestination),
        ("transfer_option", Slot::TransferOption),
        ("transcript_with_tool_calls", Slot::Transcript),
        ("call_inbound", Slot::CallInbound),
        ("chat_inbound", Slot::ChatInbound),
    ];

    fn name(self) -> &'static str {
        Self::ALL.get(self as usize).map_or("", |(name, _)| name)
    }
}

enum Key {
    Slot(Slot),
    Other(String),
}

struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Key;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Key, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl Visitor<'_> for KeySeed {
    type Value = Key;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E: de::Error>(self, key: &str) -> Result<Key, E> {
        Ok(match Slot::ALL.iter().find(|(name, _)| *name == key) {
            Some((_, slot)) => Key::Slot(*slot),
            None => Key::Other(key.to_owned()),
        })
    }
}

struct EnvelopeVisitor;

impl<'de> Visitor<'de> for EnvelopeVisitor {
    type Value = Envelope;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object with an `event` key")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Envelope, A::Error> {
        let mut env = Envelope::default();
        let mut seen = [false; Slot::ALL.len()];
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let slot = match key {
                Key::Slot(slot) => slot,
                Key::Other(name) => {
                    let value = map.next_value_seed(StrictValue)?;
                    insert_unique(&mut env.extra, name, value)?;
                    continue;
                }
            };
            // Every key at most once: a second `event` could otherwise make two
            // parsers disagree about what this body is.
            let seen = seen
                .get_mut(slot as usize)
                .ok_or_else(|| de::Error::custom("unexpected key slot"))?;
            if std::mem::replace(seen, true) {
                return Err(de::Error::duplicate_field(slot.name()));
            }
            // The identifying parts (`event`, the call, chat or inbound object)
            // must have their type; the others are read leniently, their
            // nulls and fallbacks kept in `extra` by slot index.
            let index = slot as u8;
            match slot {
                Slot::Event => env.event = Some(map.next_value()?),
                Slot::EventTimestamp => {
                    let read = map.next_value_seed(ReadSeed::new())?;
                    store(&mut env.event_timestamp, &mut env.extra, index, read);
                }
                Slot::Call => env.call = map.next_value()?,
                Slot::Data => env.data = map.next_value()?,
                Slot::Chat => env.chat = map.next_value()?,
                Slot::TransferDestination => {
                    let read = map.next_value_seed(ReadSeed::new())?;
                    store(&mut env.transfer_destination, &mut env.extra, index, read);
                }
                Slot::TransferOption => {
                    let read = map.next_value_seed(ReadSeed::new())?;
                    store(&mut env.transfer_option, &mut env.extra, index, read);
                }
                Slot::Transcript => {
                    let read = map.next_value_seed(ReadSeed::new())?;
                    store(
                        &mut env.transcript_with_tool_calls,
                        &mut env.extra,
                        index,
                        read,
                    );
                }
                Slot::CallInbound => env.call_inbound = map.next_value()?,
                Slot::ChatInbound => env.chat_inbound = map.next_value()?,
            }
        }
        Ok(env)
    }
}

/// Moves a typed part that the chosen variant does not use back into `extra`,
/// so that nothing read is lost.
fn stash<T: Serialize, E: de::Error>(
    extra: &mut Extra,
    key: &str,
    value: Option<T>,
) -> Result<(), E> {
    if let Some(value) = value {
        extra.insert(
            key.to_owned(),
            serde_json::to_value(value).map_err(E::custom)?,
        );
    }
    Ok(())
}

impl Envelope {
    /// Takes the call from `call`, or from `data` when `call` is absent.
    fn take_call<E: de::Error>(&mut self) -> Result<(Box<Call>, LegacyData), E> {
        match (self.call.take(), self.data.take()) {
            (Some(call), None) => Ok((call, LegacyData::Absent)),
            (Some(call), Some(data)) => Ok((call, LegacyData::Alongside(data))),
            (None, Some(data)) => Ok((data, LegacyData::Only)),
            (None, None) => Err(E::missing_field("call")),
        }
    }

    /// Puts every typed part still present into `extra`, and the nulls and
    /// fallbacks of slots the chosen variant does not have among its unknown
    /// keys.
    fn into_extra<E: de::Error>(mut self) -> Result<Extra, E> {
        let mut extra = std::mem::take(&mut self.extra);
        for slot in [
            Slot::TransferDestination,
            Slot::TransferOption,
            Slot::Transcript,
        ] {
            let used = match slot {
                Slot::TransferDestination => self.transfer_destination.is_some(),
                Slot::TransferOption => self.transfer_option.is_some(),
                _ => self.transcript_with_tool_calls.is_some(),
            };
            if !used && let Some(value) = extra.take_absent(slot as u8) {
                extra.insert(slot.name().to_owned(), value);
            }
        }
        stash(&mut extra, "call", self.call)?;
        stash(&mut extra, "data", self.data)?;
        stash(&mut extra, "chat", self.chat)?;
        stash(
            &mut extra,
            "transfer_destination",
            self.transfer_destination,
        )?;
        stash(&mut extra, "transfer_option", self.transfer_option)?;
        stash(
            &mut extra,
            "transcript_with_tool_calls",
            self.transcript_with_tool_calls,
        )?;
        stash(&mut extra, "call_inbound", self.call_inbound)?;
        stash(&mut extra, "chat_inbound", self.chat_inbound)?;
        Ok(extra)
    }

    fn into_call_event<E: de::Error>(mut self) -> Result<CallEvent, E> {
        let (call, legacy_data) = self.take_call()?;
        Ok(CallEvent {
            call,
            legacy_data,
            event_timestamp: self.event_timestamp,
            extra: self.into_extra()?,
        })
    }

    fn into_transfer_event<E: de::Error>(mut self) -> Result<TransferEvent, E> {
        let (call, legacy_data) = self.take_call()?;
        Ok(TransferEvent {
            call,
            legacy_data,
            transfer_destination: self.transfer_destination.take(),
            transfer_option: self.transfer_option.take(),
            event_timestamp: self.event_timestamp,
            extra: self.into_extra()?,
        })
    }

    fn into_chat_event<E: de::Error>(mut self) -> Result<ChatEvent, E> {
        let chat = self.chat.take().ok_or_else(|| E::missing_field("chat"))?;
        Ok(ChatEvent {
            chat,
            event_timestamp: self.event_timestamp,
            extra: self.into_extra()?,
        })
    }

    fn into_transcript_event<E: de::Error>(mut self) -> Result<TranscriptUpdatedEvent, E> {
        let (subject, legacy_data) = if self.call.is_some() || self.data.is_some() {
            let (call, legacy) = self.take_call()?;
            (TranscriptSubject::Call(call), legacy)
        } else {
            let chat = self.chat.take().ok_or_else(|| E::missing_field("call"))?;
            (TranscriptSubject::Chat(chat), LegacyData::Absent)
        };
        Ok(TranscriptUpdatedEvent {
            subject,
            legacy_data,
            transcript_with_tool_calls: self.transcript_with_tool_calls.take(),
            event_timestamp: self.event_timestamp,
            extra: self.into_extra()?,
        })
    }

    fn into_incoming<E: de::Error>(mut self) -> Result<Incoming, E> {
        let event = self.event.take().ok_or_else(|| E::missing_field("event"))?;
        let event_timestamp = self.event_timestamp;
        let event = match event.as_str() {
            "call_started" => WebhookEvent::CallStarted(self.into_call_event()?),
            "call_ended" => WebhookEvent::CallEnded(self.into_call_event()?),
            "call_analyzed" => WebhookEvent::CallAnalyzed(self.into_call_event()?),
            "transfer_started" => WebhookEvent::TransferStarted(self.into_transfer_event()?),
            "transfer_bridged" => WebhookEvent::TransferBridged(self.into_transfer_event()?),
            "transfer_cancelled" => WebhookEvent::TransferCancelled(self.into_transfer_event()?),
            "transfer_ended" => WebhookEvent::TransferEnded(self.into_transfer_event()?),
            "chat_started" => WebhookEvent::ChatStarted(self.into_chat_event()?),
            "chat_ended" => WebhookEvent::ChatEnded(self.into_chat_event()?),
            "chat_analyzed" => WebhookEvent::ChatAnalyzed(self.into_chat_event()?),
            "transcript_updated" => WebhookEvent::TranscriptUpdated(self.into_transcript_event()?),
            "call_inbound" => {
                let call_inbound = self
                    .call_inbound
                    .take()
                    .ok_or_else(|| E::missing_field("call_inbound"))?;
                return Ok(Incoming::CallInbound(InboundCallRequest {
                    event_timestamp,
                    call_inbound,
                    extra: self.into_extra()?,
                }));
            }
            "chat_inbound" => {
                let chat_inbound = self
                    .chat_inbound
                    .take()
                    .ok_or_else(|| E::missing_field("chat_inbound"))?;
                return Ok(Incoming::ChatInbound(InboundChatRequest {
                    event_timestamp,
                    chat_inbound,
                    extra: self.into_extra()?,
                }));
            }
            _ => {
                let mut raw = self.into_extra::<E>()?;
                let timestamp = match event_timestamp {
                    Some(ts) => Some(Value::from(ts)),
                    None => raw.take_absent(Slot::EventTimestamp as u8),
                };
                if let Some(ts) = timestamp {
                    raw.insert("event_timestamp".to_owned(), ts);
                }
                raw.insert("event".to_owned(), Value::String(event.clone()));
                WebhookEvent::Unknown(UnknownEvent {
                    event,
                    raw: Value::Object(raw.into_unknown()),
                })
            }
        };
        Ok(Incoming::Event(event))
    }
}

impl<'de> Deserialize<'de> for Incoming {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_map(EnvelopeVisitor)?
            .into_incoming()
    }
}

/// Payload structs deserialize from their top-level keys without `event`
/// (the form they serialize to); use [`WebhookEvent`] for whole bodies.
macro_rules! deserialize_payload {
    ($($ty:ty => $build:ident),+ $(,)?) => {$(
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let envelope = deserializer.deserialize_map(EnvelopeVisitor)?;
                if envelope.event.is_some() {
                    return Err(de::Error::custom(
                        "unexpected `event` key: parse whole bodies as `WebhookEvent`",
                    ));
                }
                envelope.$build()
            }
        }
    )+};
}

deserialize_payload!(
    CallEvent => into_call_event,
    TransferEvent => into_transfer_event,
    TranscriptUpdatedEvent => into_transcript_event,
    ChatEvent => into_chat_event,
);

impl<'de> Deserialize<'de> for UnknownEvent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Value::deserialize(deserializer)?;
        let event = raw
            .get("event")
            .and_then(Value::as_str)
            .ok_or_else(|| de::Error::missing_field("event"))?
            .to_owned();
        Ok(Self { event, raw })
    }
}

impl<'de> Deserialize<'de> for WebhookEvent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Incoming::deserialize(deserializer)? {
            Incoming::Event(event) => Ok(event),
            Incoming::CallInbound(request) => Ok(Self::Unknown(UnknownEvent {
                event: "call_inbound".to_owned(),
                raw: serde_json::to_value(&request).map_err(de::Error::custom)?,
            })),
            Incoming::ChatInbound(request) => Ok(Self::Unknown(UnknownEvent {
                event: "chat_inbound".to_owned(),
                raw: serde_json::to_value(&request).map_err(de::Error::custom)?,
            })),
        }
    }
}

impl<'de> Deserialize<'de> for InboundCallRequest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Incoming::deserialize(deserializer)? {
            Incoming::CallInbound(request) => Ok(request),
            other => Err(de::Error::custom(format_args!(
                "expected a `call_inbound` request, got `{}`",
                if is_known_event(other.event_name()) {
                    other.event_name()
                } else {
                    "unknown event"
                }
            ))),
        }
    }
}

impl<'de> Deserialize<'de> for InboundChatRequest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Incoming::deserialize(deserializer)? {
            Incoming::ChatInbound(request) => Ok(request),
            other => Err(de::Error::custom(format_args!(
                "expected a `chat_inbound` request, got `{}`",
                if is_known_event(other.event_name()) {
                    other.event_name()
                } else {
                    "unknown event"
                }
            ))),
        }
    }
}

// ---------------------------------------------------------------------------
// Serialization: the same keys that were read.
// ---------------------------------------------------------------------------

/// Writes the fields of a payload into an already open map.
trait WriteFields {
    fn write_fields<M: SerializeMap>(&self, map: &mut M) -> Result<(), M::Error>;
}

/// Writes a lenient slot: its value, or what `extra` kept of it.
fn write_slot<M: SerializeMap, T: Serialize>(
    map: &mut M,
    slot: Slot,
    value: &Option<T>,
    extra: &Extra,
) -> Result<(), M::Error> {
    match value {
        Some(value) => map.serialize_entry(slot.name(), value),
        None => extra.write_absent(map, slot.name(), slot as u8),
    }
}

fn write_extra<M: SerializeMap>(map: &mut M, extra: &Extra) -> Result<(), M::Error> {
    extra.write_unknown(map)
}

fn write_call<M: SerializeMap>(
    map: &mut M,
    call: &Call,
    legacy: &LegacyData,
) -> Result<(), M::Error> {
    match legacy {
        LegacyData::Absent => map.serialize_entry("call", call),
        LegacyData::Only => map.serialize_entry("data", call),
        LegacyData::Alongside(data) => {
            map.serialize_entry("call", call)?;
            map.serialize_entry("data", data)
        }
    }
}

impl WriteFields for CallEvent {
    fn write_fields<M: SerializeMap>(&self, map: &mut M) -> Result<(), M::Error> {
        write_slot(
            map,
            Slot::EventTimestamp,
            &self.event_timestamp,
            &self.extra,
        )?;
        write_call(map, &self.call, &self.legacy_data)?;
        write_extra(map, &self.extra)
    }
}

impl WriteFields for TransferEvent {
    fn write_fields<M: SerializeMap>(&self, map: &mut M) -> Result<(), M::Error> {
        write_slot(
            map,
            Slot::EventTimestamp,
            &self.event_timestamp,
            &self.extra,
        )?;
        write_call(map, &self.call, &self.legacy_data)?;
        write_slot(
            map,
            Slot::TransferDestination,
            &self.transfer_destination,
            &self.extra,
        )?;
        write_slot(
            map,
            Slot::TransferOption,
            &self.transfer_option,
            &self.extra,
        )?;
        write_extra(map, &self.extra)
    }
}

impl WriteFields for TranscriptUpdatedEvent {
    fn write_fields<M: SerializeMap>(&self, map: &mut M) -> Result<(), M::Error> {
        write_slot(
            map,
            Slot::EventTimestamp,
            &self.event_timestamp,
            &self.extra,
        )?;
        match &self.subject {
            TranscriptSubject::Call(call) => write_call(map, call, &self.legacy_data)?,
            TranscriptSubject::Chat(chat) => map.serialize_entry("chat", chat)?,
        }
        write_slot(
            map,
            Slot::Transcript,
            &self.transcript_with_tool_calls,
            &self.extra,
        )?;
        write_extra(map, &self.extra)
    }
}

impl WriteFields for ChatEvent {
    fn write_fields<M: SerializeMap>(&self, map: &mut M) -> Result<(), M::Error> {
        write_slot(
            map,
            Slot::EventTimestamp,
            &self.event_timestamp,
            &self.extra,
        )?;
        map.serialize_entry("chat", &self.chat)?;
        write_extra(map, &self.extra)
    }
}

impl WriteFields for InboundCallRequest {
    fn write_fields<M: SerializeMap>(&self, map: &mut M) -> Result<(), M::Error> {
        write_slot(
            map,
            Slot::EventTimestamp,
            &self.event_timestamp,
            &self.extra,
        )?;
        map.serialize_entry("call_inbound", &self.call_inbound)?;
        write_extra(map, &self.extra)
    }
}

impl WriteFields for InboundChatRequest {
    fn write_fields<M: SerializeMap>(&self, map: &mut M) -> Result<(), M::Error> {
        write_slot(
            map,
            Slot::EventTimestamp,
            &self.event_timestamp,
            &self.extra,
        )?;
        map.serialize_entry("chat_inbound", &self.chat_inbound)?;
        write_extra(map, &self.extra)
    }
}

fn serialize_with_event<S: Serializer, T: WriteFields>(
    serializer: S,
    event: &str,
    payload: &T,
) -> Result<S::Ok, S::Error> {
    let mut map = serializer.serialize_map(None)?;
    map.serialize_entry("event", event)?;
    payload.write_fields(&mut map)?;
    map.end()
}

/// Payload structs serialize as their top-level keys without `event`.
macro_rules! serialize_payload {
    ($($ty:ty),+) => {$(
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut map = serializer.serialize_map(None)?;
                self.write_fields(&mut map)?;
                map.end()
            }
        }
    )+};
}

serialize_payload!(CallEvent, TransferEvent, TranscriptUpdatedEvent, ChatEvent);

impl Serialize for InboundCallRequest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_with_event(serializer, "call_inbound", self)
    }
}

impl Serialize for InboundChatRequest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_with_event(serializer, "chat_inbound", self)
    }
}

impl Serialize for UnknownEvent {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.raw.serialize(serializer)
    }
}

impl Serialize for WebhookEvent {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let name = self.event_name();
        match self {
            Self::CallStarted(e) | Self::CallEnded(e) | Self::CallAnalyzed(e) => {
                serialize_with_event(serializer, name, e)
            }
            Self::TransferStarted(e)
            | Self::TransferBridged(e)
            | Self::TransferCancelled(e)
            | Self::TransferEnded(e) => serialize_with_event(serializer, name, e),
            Self::TranscriptUpdated(e) => serialize_with_event(serializer, name, e),
            Self::ChatStarted(e) | Self::ChatEnded(e) | Self::ChatAnalyzed(e) => {
                serialize_with_event(serializer, name, e)
            }
            Self::Unknown(e) => e.serialize(serializer),
        }
    }
}

impl Serialize for Incoming {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Event(event) => event.serialize(serializer),
            Self::CallInbound(request) => request.serialize(serializer),
            Self::ChatInbound(request) => request.serialize(serializer),
        }
    }
}

// ---------------------------------------------------------------------------
// Failure path: a lenient probe for the event name and ids.
// ---------------------------------------------------------------------------

/// What can be read from a body that failed to parse: first `event` string,
/// `call.call_id` / `data.call_id`, `chat.chat_id`. Everything else is skipped
/// without recursion (serde's `IgnoredAny`).
#[derive(Default)]
struct Probe {
    event: Option<String>,
    call_id: Option<String>,
    chat_id: Option<String>,
}

impl Probe {
    fn read(text: &str) -> Probe {
        let mut probe = Probe::default();
        let mut de = serde_json::Deserializer::from_str(text);
        // Errors are expected here (the body already failed); keep what was read.
        let _ = de.deserialize_map(ProbeVisitor(&mut probe));
        probe
    }
}

struct ProbeVisitor<'a>(&'a mut Probe);

impl<'de> Visitor<'de> for ProbeVisitor<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "event" if self.0.event.is_none() => {
                    self.0.event = map.next_value::<AnyString>()?.0
                }
                "call" | "data" if self.0.call_id.is_none() => {
                    self.0.call_id = map.next_value::<IdIn>()?.0;
                }
                "chat" if self.0.chat_id.is_none() => self.0.chat_id = map.next_value::<IdIn>()?.0,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// Which id a standalone payload object carries at its top level.
#[derive(Clone, Copy)]
pub(crate) enum Standalone {
    /// A bare Call object (`call_id`).
    Call,
    /// A bare Chat object (`chat_id`).
    Chat,
}

/// Parses a bare payload object (a Call or Chat outside its envelope) with the
/// same error reporting as the envelope: JSON path, position, and the id when
/// it can be read.
pub(crate) fn parse_standalone<T>(body: &[u8], subject: Standalone) -> Result<T, ParseError>
where
    T: serde::de::DeserializeOwned,
{
    let text = std::str::from_utf8(body).map_err(|e| ParseError::utf8(body, e))?;
    let mut de = serde_json::Deserializer::from_str(text);
    let parsed = serde_path_to_error::deserialize::<_, T>(&mut de)
        .map_err(|e| {
            let path = e.path().to_string();
            (e.into_inner(), path)
        })
        .and_then(|value| de.end().map(|()| value).map_err(|e| (e, String::new())));
    parsed.map_err(|(error, path)| {
        let path = if path == "." { String::new() } else { path };
        let id = standalone_id(text, subject);
        let (call_id, chat_id) = match subject {
            Standalone::Call => (id, None),
            Standalone::Chat => (None, id),
        };
        ParseError::json(&error, path).with_context(None, call_id, chat_id)
    })
}

/// The top-level `call_id` / `chat_id` string of a (failed) bare object.
fn standalone_id(text: &str, subject: Standalone) -> Option<String> {
    struct IdVisitor<'a>(&'a mut Option<String>, &'static str);
    impl<'de> Visitor<'de> for IdVisitor<'_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            while let Some(key) = map.next_key::<String>()? {
                if key == self.1 && self.0.is_none() {
                    *self.0 = map.next_value::<AnyString>()?.0;
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(())
        }
    }
    let key = match subject {
        Standalone::Call => "call_id",
        Standalone::Chat => "chat_id",
    };
    let mut id = None;
    let mut de = serde_json::Deserializer::from_str(text);
    // Errors are expected here (the body already failed); keep what was read.
    let _ = de.deserialize_map(IdVisitor(&mut id, key));
    id
}

/// A string, or `None` for any other JSON value.
struct AnyString(Option<String>);

impl<'de> Deserialize<'de> for AnyString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = AnyString;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any value")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<AnyString, E> {
                Ok(AnyString(Some(v.to_owned())))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<AnyString, E> {
                Ok(AnyString(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<AnyString, E> {
                Ok(AnyString(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<AnyString, E> {
                Ok(AnyString(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<AnyString, E> {
                Ok(AnyString(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<AnyString, E> {
                Ok(AnyString(None))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<AnyString, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(AnyString(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AnyString, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(AnyString(None))
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// The first `call_id` / `chat_id` string of an object (any other value: `None`).
struct IdIn(Option<String>);

impl<'de> Deserialize<'de> for IdIn {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = IdIn;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<IdIn, A::Error> {
                let mut id = None;
                while let Some(key) = map.next_key::<String>()? {
                    if id.is_none() && (key == "call_id" || key == "chat_id") {
                        id = map.next_value::<AnyString>()?.0;
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(IdIn(id))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<IdIn, E> {
                Ok(IdIn(None))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<IdIn, E> {
                Ok(IdIn(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<IdIn, E> {
                Ok(IdIn(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<IdIn, E> {
                Ok(IdIn(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<IdIn, E> {
                Ok(IdIn(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<IdIn, E> {
                Ok(IdIn(None))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<IdIn, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(IdIn(None))
            }
        }
        deserializer.deserialize_any(V)
    }
}

// ---------------------------------------------------------------------------
// Verify, then parse.
// ---------------------------------------------------------------------------

impl Verifier {
    /// Verifies the signature at `now_ms` (epoch ms), then parses the body as an
    /// event. Nothing is parsed when the signature fails.
    #[must_use = "the signature is only checked if the result is inspected"]
    pub fn verify_and_parse_at(
        &self,
        body: &[u8],
        signature: &str,
        now_ms: u64,
    ) -> Result<WebhookEvent, Error> {
        self.verify_at(body, signature, now_ms)?;
        Ok(WebhookEvent::from_slice(body)?)
    }

    /// [`Self::verify_and_parse_at`] with the system clock.
    #[must_use = "the signature is only checked if the result is inspected"]
    pub fn verify_and_parse(&self, body: &[u8], signature: &str) -> Result<WebhookEvent, Error> {
        self.verify(body, signature)?;
        Ok(WebhookEvent::from_slice(body)?)
    }

    /// Verifies at `now_ms`, then parses anything with an `event` key
    /// (events and inbound call / SMS requests).
    #[must_use = "the signature is only checked if the result is inspected"]
    pub fn verify_and_parse_incoming_at(
        &self,
        body: &[u8],
        signature: &str,
        now_ms: u64,
    ) -> Result<Incoming, Error> {
        self.verify_at(body, signature, now_ms)?;
        Ok(Incoming::from_slice(body)?)
    }

    /// [`Self::verify_and_parse_incoming_at`] with the system clock.
    #[must_use = "the signature is only checked if the result is inspected"]
    pub fn verify_and_parse_incoming(
        &self,
        body: &[u8],
        signature: &str,
    ) -> Result<Incoming, Error> {
        self.verify(body, signature)?;
        Ok(Incoming::from_slice(body)?)
    }
}

#[cfg(test)]
mod tests {
    use super::Slot;

    #[test]
    fn slot_table_matches_discriminants() {
        for (index, (name, slot)) in Slot::ALL.iter().enumerate() {
            assert_eq!(*slot as usize, index);
            assert_eq!(slot.name(), *name);
        }
    }
}
