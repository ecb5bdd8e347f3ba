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
//!
//! # Event kinds
//!
//! [`EventKind`] is the catalogue of the names this version knows: parsing
//! picks the variant through it, [`WebhookEvent::kind`] and
//! [`Incoming::kind`] give it back (`None` for an unknown event), and
//! [`EventKind::ALL`] lists every name.

// This file holds the event types and their accessors; `kind.rs` the
// catalogue, `de.rs` the envelope visitor and the `Deserialize` impls,
// `ser.rs` the `Serialize` impls and `probe.rs` the failure path (the
// lenient probe for the event name and ids, and bare Call / Chat objects).
mod de;
mod kind;
mod probe;
mod ser;

use serde_json::Value;

use crate::error::ParseError;
use crate::models::lenient::Lenient;
use crate::models::untyped::Path;
use crate::models::{
    Call, Chat, Extra, InboundCallRequest, InboundChatRequest, TranscriptItem, Untyped,
    UntypedReason,
};

use de::{Slot, strict_body};
pub use kind::{EventKind, INBOUND_EVENTS, KNOWN_EVENTS, UnknownEventKind};
use probe::failure;
pub(crate) use probe::{Standalone, parse_standalone};

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

    /// The kind of event: `None` for [`WebhookEvent::Unknown`], even when
    /// its name is in the catalogue (an inbound request parsed as a
    /// `WebhookEvent`; [`Incoming`] gives it its own variant).
    ///
    /// ```
    /// use retell_webhooks::{EventKind, WebhookEvent};
    ///
    /// let event = WebhookEvent::from_slice(br#"{"event":"chat_ended","chat":{"chat_id":"chat_1"}}"#)?;
    /// assert_eq!(event.kind(), Some(EventKind::ChatEnded));
    /// let event = WebhookEvent::from_slice(br#"{"event":"call_exploded","call":{"call_id":"c1"}}"#)?;
    /// assert_eq!(event.kind(), None);
    /// # Ok::<(), retell_webhooks::ParseError>(())
    /// ```
    pub fn kind(&self) -> Option<EventKind> {
        self.known().ok()
    }

    /// The `event` name.
    pub fn event_name(&self) -> &str {
        match self.known() {
            Ok(kind) => kind.as_str(),
            Err(unknown) => &unknown.event,
        }
    }

    /// The kind of a typed variant, or the unknown event.
    fn known(&self) -> Result<EventKind, &UnknownEvent> {
        Ok(match self {
            Self::CallStarted(_) => EventKind::CallStarted,
            Self::CallEnded(_) => EventKind::CallEnded,
            Self::CallAnalyzed(_) => EventKind::CallAnalyzed,
            Self::TranscriptUpdated(_) => EventKind::TranscriptUpdated,
            Self::TransferStarted(_) => EventKind::TransferStarted,
            Self::TransferBridged(_) => EventKind::TransferBridged,
            Self::TransferCancelled(_) => EventKind::TransferCancelled,
            Self::TransferEnded(_) => EventKind::TransferEnded,
            Self::ChatStarted(_) => EventKind::ChatStarted,
            Self::ChatEnded(_) => EventKind::ChatEnded,
            Self::ChatAnalyzed(_) => EventKind::ChatAnalyzed,
            Self::Unknown(unknown) => return Err(unknown),
        })
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

    /// The kind of request: `None` for an unknown event.
    pub fn kind(&self) -> Option<EventKind> {
        match self {
            Self::Event(event) => event.kind(),
            Self::CallInbound(_) => Some(EventKind::CallInbound),
            Self::ChatInbound(_) => Some(EventKind::ChatInbound),
        }
    }

    /// The `event` name.
    pub fn event_name(&self) -> &str {
        match self {
            Self::Event(event) => event.event_name(),
            Self::CallInbound(_) => EventKind::CallInbound.as_str(),
            Self::ChatInbound(_) => EventKind::ChatInbound.as_str(),
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
