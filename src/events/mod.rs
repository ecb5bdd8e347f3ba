//! Webhook events and the envelope parser. How a body is parsed is in the
//! crate docs (`docs/parsing.md`).

// This file holds the event types, their accessors and constructors; `kind.rs` the
// catalogue, `de.rs` the envelope visitor and the `Deserialize` impls,
// `ser.rs` the `Serialize` impls and `probe.rs` the failure path (the
// lenient probe for the event name and ids, and bare Call / Chat objects).
mod de;
mod kind;
mod probe;
mod ser;

use crate::error::ParseError;
use crate::models::lenient::Lenient;
use crate::models::untyped::Path;
use crate::models::{
    Extra, InboundCall, InboundChat, RawJson, TranscriptItem, Untyped, UntypedReason,
};
use crate::{Call, Chat, InboundCallRequest, InboundChatRequest};

use crate::models::raw::str_at;
use de::{Slot, strict_body};
pub use kind::{EventKind, INBOUND_EVENTS, KNOWN_EVENTS, UnknownEventKind};
use probe::failure;

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
    pub transfer_destination: Option<RawJson>,
    /// Top-level `transfer_option` (camelCase in Retell's sample; opaque).
    pub transfer_option: Option<RawJson>,
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
            Some(raw) if raw.is_string() => text_of(raw),
            Some(raw) if raw.is_object() => member_text(raw, &[], "number"),
            _ => self.call.transfer_destination.as_deref(),
        }
    }

    /// `transfer_destination.extension`.
    pub fn destination_extension(&self) -> Option<&str> {
        member_text(self.transfer_destination.as_ref()?, &[], "extension")
    }

    /// `transfer_option.type` (`cold_transfer`, `warm_transfer`, …).
    pub fn transfer_type(&self) -> Option<&str> {
        member_text(self.transfer_option.as_ref()?, &[], "type")
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
    /// The whole body as JSON (including `event`; keys in the order received).
    pub raw: RawJson,
}

/// The mark of an event a backfill rebuilt from Retell's API, as opposed
/// to one Retell delivered: the top-level key [`Recovered::KEY`] of the
/// body, `{"recovered_ms": <when it was stored, Unix ms>}`. Retell never
/// sends this key; a handler reads it with [`CallEvent::recovered`],
/// [`ChatEvent::recovered`] or [`WebhookEvent::recovered`].
///
/// It says where an event came from, not that it is genuine: the body of a
/// recovered event is built from what the API returned and stored without
/// a signature, and anyone holding the key could add the mark to a body
/// of their own. It is left out of `untyped_paths()`.
///
/// ```
/// use retell_webhooks::{Call, CallEvent, Recovered, WebhookEvent};
///
/// let live = WebhookEvent::from_slice(br#"{"event":"call_ended","call":{"call_id":"c1"}}"#)?;
/// assert_eq!(live.recovered(), None);
///
/// let event = WebhookEvent::CallEnded(CallEvent::new(Call::new("c1")).with_recovered(Recovered::at(1_785_423_600_000)));
/// let body = retell_webhooks::serde_json::to_string(&event)?;
/// assert!(body.ends_with(r#""retell_webhooks_recovered":{"recovered_ms":1785423600000}}"#));
/// let parsed = WebhookEvent::from_slice(body.as_bytes())?;
/// assert_eq!(parsed.recovered().and_then(|r| r.recovered_ms), Some(1_785_423_600_000));
/// assert!(parsed.untyped_paths().is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Recovered {
    /// When the backfill stored it (Unix milliseconds), when the mark says.
    pub recovered_ms: Option<u64>,
}

impl Recovered {
    /// The top-level key of the mark.
    pub const KEY: &'static str = "retell_webhooks_recovered";

    /// A mark for an event stored at `recovered_ms`.
    #[must_use]
    pub fn at(recovered_ms: u64) -> Self {
        Self {
            recovered_ms: Some(recovered_ms),
        }
    }

    /// The mark in the unknown top-level keys of an event, if there.
    fn read(extra: &Extra) -> Option<Self> {
        Self::from_raw(extra.get(Self::KEY)?)
    }

    fn from_raw(raw: &RawJson) -> Option<Self> {
        let recovered_ms = raw.get("recovered_ms").and_then(|ms| ms.deserialize().ok());
        Some(Self { recovered_ms })
    }

    fn write(self, extra: &mut Extra) {
        let mut mark = serde_json::Map::new();
        if let Some(ms) = self.recovered_ms {
            mark.insert("recovered_ms".to_owned(), ms.into());
        }
        extra.insert(
            Self::KEY.to_owned(),
            RawJson::from(serde_json::Value::Object(mark)),
        );
    }
}

impl WebhookEvent {
    /// Parses a (verified) request body. See [how a body is parsed](crate#how-a-body-is-parsed).
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
            Self::Unknown(u) => member_text(&u.raw, &["call", "data"], "call_id"),
            _ => self.call().map(|c| c.call_id.as_str()),
        }
    }

    /// `chat.chat_id` (for unknown events: from the raw body).
    pub fn chat_id(&self) -> Option<&str> {
        match self {
            Self::Unknown(u) => member_text(&u.raw, &["chat"], "chat_id"),
            _ => self.chat().map(|c| c.chat_id.as_str()),
        }
    }

    /// The agent id of the call or chat.
    pub fn agent_id(&self) -> Option<&str> {
        match self {
            Self::Unknown(u) => member_text(&u.raw, &["call", "chat", "data"], "agent_id"),
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
            Self::Unknown(u) => u.raw.get("event_timestamp")?.deserialize().ok(),
        }
    }

    /// `true` for [`WebhookEvent::Unknown`].
    pub fn is_unknown(&self) -> bool {
        matches!(self, Self::Unknown(_))
    }

    /// The [`Recovered`] mark of an event a backfill rebuilt, `None` for
    /// one Retell delivered.
    pub fn recovered(&self) -> Option<Recovered> {
        match self {
            Self::CallStarted(e) | Self::CallEnded(e) | Self::CallAnalyzed(e) => e.recovered(),
            Self::ChatStarted(e) | Self::ChatEnded(e) | Self::ChatAnalyzed(e) => e.recovered(),
            Self::TransferStarted(e)
            | Self::TransferBridged(e)
            | Self::TransferCancelled(e)
            | Self::TransferEnded(e) => Recovered::read(&e.extra),
            Self::TranscriptUpdated(e) => Recovered::read(&e.extra),
            Self::Unknown(u) => Recovered::from_raw(&u.raw.get(Recovered::KEY)?),
        }
    }
}

// ---------------------------------------------------------------------------
// Constructors: events built in code (tests of a handler, payloads of your own)
// ---------------------------------------------------------------------------

impl CallEvent {
    /// The payload of a call event as Retell sends it today: `call` (no
    /// legacy `data`), no `event_timestamp`, no other top-level keys.
    ///
    /// ```
    /// use retell_webhooks::{Call, CallEvent, models::LegacyData};
    ///
    /// let event = CallEvent::new(Call {
    ///     duration_ms: Some(61_000),
    ///     ..Call::new("call_1")
    /// })
    /// .with_event_timestamp(1_785_423_600_000);
    /// assert_eq!(event.call.call_id, "call_1");
    /// assert_eq!(event.call.duration_ms, Some(61_000));
    /// assert_eq!(event.legacy_data, LegacyData::Absent);
    /// assert_eq!(event.event_timestamp, Some(1_785_423_600_000));
    /// assert!(event.extra.is_empty());
    /// ```
    #[must_use]
    pub fn new(call: Call) -> Self {
        Self {
            call: Box::new(call),
            legacy_data: LegacyData::Absent,
            event_timestamp: None,
            extra: Extra::new(),
        }
    }

    /// Sets the top-level `event_timestamp` (epoch ms).
    #[must_use]
    pub fn with_event_timestamp(mut self, ms: u64) -> Self {
        self.event_timestamp = Some(ms);
        self
    }

    /// Marks the event as rebuilt by a backfill (see [`Recovered`]).
    #[must_use]
    pub fn with_recovered(mut self, mark: Recovered) -> Self {
        mark.write(&mut self.extra);
        self
    }

    /// The [`Recovered`] mark of an event a backfill rebuilt, `None` for
    /// one Retell delivered.
    pub fn recovered(&self) -> Option<Recovered> {
        Recovered::read(&self.extra)
    }
}

impl TransferEvent {
    /// The payload of a `transfer_*` event: `call` (no legacy `data`), no
    /// top-level `transfer_destination`, `transfer_option` or
    /// `event_timestamp`, no other top-level keys.
    ///
    /// ```
    /// use retell_webhooks::serde_json::json;
    /// use retell_webhooks::{Call, TransferEvent};
    ///
    /// let event = TransferEvent::new(Call::new("call_1"))
    ///     .with_transfer_destination(json!({ "number": "+15105550177", "extension": "204" }))
    ///     .with_transfer_option(json!({ "type": "warm_transfer" }))
    ///     .with_event_timestamp(1_785_423_600_000);
    /// assert_eq!(event.destination_number(), Some("+15105550177"));
    /// assert_eq!(event.destination_extension(), Some("204"));
    /// assert_eq!(event.transfer_type(), Some("warm_transfer"));
    ///
    /// // Without a top-level destination, the call's own one is used.
    /// let event = TransferEvent::new(Call {
    ///     transfer_destination: Some("+15105550177".into()),
    ///     ..Call::new("call_1")
    /// });
    /// assert_eq!(event.destination_number(), Some("+15105550177"));
    /// ```
    #[must_use]
    pub fn new(call: Call) -> Self {
        Self {
            call: Box::new(call),
            legacy_data: LegacyData::Absent,
            transfer_destination: None,
            transfer_option: None,
            event_timestamp: None,
            extra: Extra::new(),
        }
    }

    /// Sets the top-level `transfer_destination` (an object such as
    /// `{"number": "+1…", "extension": "204"}`).
    #[must_use]
    pub fn with_transfer_destination(mut self, destination: impl Into<RawJson>) -> Self {
        self.transfer_destination = Some(destination.into());
        self
    }

    /// Sets the top-level `transfer_option` (such as `{"type": "warm_transfer"}`).
    #[must_use]
    pub fn with_transfer_option(mut self, option: impl Into<RawJson>) -> Self {
        self.transfer_option = Some(option.into());
        self
    }

    /// Sets the top-level `event_timestamp` (epoch ms).
    #[must_use]
    pub fn with_event_timestamp(mut self, ms: u64) -> Self {
        self.event_timestamp = Some(ms);
        self
    }
}

impl From<Call> for TranscriptSubject {
    fn from(call: Call) -> Self {
        Self::Call(Box::new(call))
    }
}

impl From<Chat> for TranscriptSubject {
    fn from(chat: Chat) -> Self {
        Self::Chat(Box::new(chat))
    }
}

impl TranscriptUpdatedEvent {
    /// The payload of `transcript_updated` for a call or a chat (a [`Call`]
    /// or a [`Chat`] converts into a [`TranscriptSubject`]): no legacy
    /// `data`, no top-level transcript copy or `event_timestamp`, no other
    /// top-level keys. [`Self::for_call`] and [`Self::for_chat`] say which.
    ///
    /// ```
    /// use retell_webhooks::{Call, Chat, TranscriptUpdatedEvent};
    ///
    /// let voice = TranscriptUpdatedEvent::new(Call::new("call_1"));
    /// assert_eq!(voice.call().map(|c| c.call_id.as_str()), Some("call_1"));
    /// let chat = TranscriptUpdatedEvent::new(Chat::new("chat_1"));
    /// assert_eq!(chat.chat().map(|c| c.chat_id.as_str()), Some("chat_1"));
    /// ```
    #[must_use]
    pub fn new(subject: impl Into<TranscriptSubject>) -> Self {
        Self {
            subject: subject.into(),
            legacy_data: LegacyData::Absent,
            transcript_with_tool_calls: None,
            event_timestamp: None,
            extra: Extra::new(),
        }
    }

    /// `transcript_updated` of a voice agent's call.
    ///
    /// ```
    /// use retell_webhooks::{Call, TranscriptUpdatedEvent};
    ///
    /// let event = TranscriptUpdatedEvent::for_call(Call {
    ///     transcript: Some("Agent: Hi, Harbor Dental.\nUser: Hi!\n".into()),
    ///     ..Call::new("call_1")
    /// })
    /// .with_event_timestamp(1_785_423_600_000);
    /// assert_eq!(event.call().and_then(|c| c.transcript.as_deref()).map(str::lines).map(Iterator::count), Some(2));
    /// assert!(event.chat().is_none());
    /// assert_eq!(event.event_timestamp, Some(1_785_423_600_000));
    /// ```
    #[must_use]
    pub fn for_call(call: Call) -> Self {
        Self::new(call)
    }

    /// `transcript_updated` of a chat agent's chat.
    ///
    /// ```
    /// use retell_webhooks::{Chat, TranscriptUpdatedEvent};
    ///
    /// let event = TranscriptUpdatedEvent::for_chat(Chat::new("chat_1"));
    /// assert_eq!(event.chat().map(|c| c.chat_id.as_str()), Some("chat_1"));
    /// assert!(event.call().is_none());
    /// ```
    #[must_use]
    pub fn for_chat(chat: Chat) -> Self {
        Self::new(chat)
    }

    /// Sets the top-level `transcript_with_tool_calls` copy (read first by
    /// [`Self::transcript_with_tool_calls`]).
    #[must_use]
    pub fn with_transcript_with_tool_calls(mut self, items: Vec<TranscriptItem>) -> Self {
        self.transcript_with_tool_calls = Some(items);
        self
    }

    /// Sets the top-level `event_timestamp` (epoch ms).
    #[must_use]
    pub fn with_event_timestamp(mut self, ms: u64) -> Self {
        self.event_timestamp = Some(ms);
        self
    }
}

impl ChatEvent {
    /// The payload of a chat event: `chat`, no `event_timestamp`, no other
    /// top-level keys.
    ///
    /// ```
    /// use retell_webhooks::{Chat, ChatEvent};
    ///
    /// let event = ChatEvent::new(Chat {
    ///     agent_id: Some("agent_1".into()),
    ///     ..Chat::new("chat_1")
    /// })
    /// .with_event_timestamp(1_785_432_662_400);
    /// assert_eq!(event.chat.chat_id, "chat_1");
    /// assert_eq!(event.chat.agent_id.as_deref(), Some("agent_1"));
    /// assert_eq!(event.event_timestamp, Some(1_785_432_662_400));
    /// ```
    #[must_use]
    pub fn new(chat: Chat) -> Self {
        Self {
            chat: Box::new(chat),
            event_timestamp: None,
            extra: Extra::new(),
        }
    }

    /// Sets the top-level `event_timestamp` (epoch ms).
    #[must_use]
    pub fn with_event_timestamp(mut self, ms: u64) -> Self {
        self.event_timestamp = Some(ms);
        self
    }

    /// Marks the event as rebuilt by a backfill (see [`Recovered`]).
    #[must_use]
    pub fn with_recovered(mut self, mark: Recovered) -> Self {
        mark.write(&mut self.extra);
        self
    }

    /// The [`Recovered`] mark of an event a backfill rebuilt, `None` for
    /// one Retell delivered.
    pub fn recovered(&self) -> Option<Recovered> {
        Recovered::read(&self.extra)
    }
}

impl InboundCallRequest {
    /// A `call_inbound` request for `call_inbound`: no `event_timestamp`, no
    /// other top-level keys.
    ///
    /// ```
    /// use retell_webhooks::InboundCallRequest;
    /// use retell_webhooks::models::InboundCall;
    ///
    /// let request = InboundCallRequest::new(InboundCall {
    ///     from_number: Some("+14155550142".into()),
    ///     to_number: Some("+16505550199".into()),
    ///     ..InboundCall::default()
    /// })
    /// .with_event_timestamp(1_785_423_597_850);
    /// assert_eq!(request.call_inbound.from_number.as_deref(), Some("+14155550142"));
    /// assert_eq!(request.event_timestamp, Some(1_785_423_597_850));
    /// ```
    #[must_use]
    pub fn new(call_inbound: InboundCall) -> Self {
        Self {
            event_timestamp: None,
            call_inbound,
            extra: Extra::new(),
        }
    }

    /// Sets the top-level `event_timestamp` (epoch ms).
    #[must_use]
    pub fn with_event_timestamp(mut self, ms: u64) -> Self {
        self.event_timestamp = Some(ms);
        self
    }
}

impl InboundChatRequest {
    /// A `chat_inbound` (inbound SMS) request for `chat_inbound`: no
    /// `event_timestamp`, no other top-level keys.
    ///
    /// ```
    /// use retell_webhooks::InboundChatRequest;
    /// use retell_webhooks::models::InboundChat;
    ///
    /// let request = InboundChatRequest::new(InboundChat {
    ///     from_number: Some("+14155550142".into()),
    ///     ..InboundChat::default()
    /// });
    /// assert_eq!(request.chat_inbound.from_number.as_deref(), Some("+14155550142"));
    /// assert_eq!(request.event_timestamp, None);
    /// ```
    #[must_use]
    pub fn new(chat_inbound: InboundChat) -> Self {
        Self {
            event_timestamp: None,
            chat_inbound,
            extra: Extra::new(),
        }
    }

    /// Sets the top-level `event_timestamp` (epoch ms).
    #[must_use]
    pub fn with_event_timestamp(mut self, ms: u64) -> Self {
        self.event_timestamp = Some(ms);
        self
    }
}

/// `true` when `a` and `b` are the same string (usable in constants).
const fn same_str(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// Defines one `WebhookEvent` constructor per event of the catalogue, named
/// after the event, from rows of
/// `Variant => name(param: Type) = payload; example Subject, id_accessor;`.
///
/// A constant checked at compile time holds the table to the catalogue: one
/// row per event of [`KNOWN_EVENTS`], in its order, each named after its
/// variant's `event` name. Each constructor gets a doc example that builds
/// the event, reads it back and round-trips it through JSON.
macro_rules! event_constructors {
    ($(
        $(#[doc = $doc:literal])*
        $variant:ident => $name:ident($param:ident: $ty:ty) = $payload:expr;
        example $subject:ident, $id:ident;
    )+) => {
        impl WebhookEvent {
            $(
                $(#[doc = $doc])*
                ///
                /// ```
                #[doc = concat!("use retell_webhooks::{", stringify!($subject), ", EventKind, WebhookEvent};")]
                ///
                #[doc = concat!(
                    "let event = WebhookEvent::", stringify!($name), "(",
                    stringify!($subject), "::new(\"id_1\")).with_event_timestamp(1_785_423_600_000);"
                )]
                #[doc = concat!("assert_eq!(event.kind(), Some(EventKind::", stringify!($variant), "));")]
                #[doc = concat!("assert_eq!(event.event_name(), \"", stringify!($name), "\");")]
                #[doc = concat!("assert_eq!(event.", stringify!($id), "(), Some(\"id_1\"));")]
                /// assert_eq!(event.event_timestamp(), Some(1_785_423_600_000));
                ///
                /// // The body Retell would send, and back.
                /// let body = retell_webhooks::serde_json::to_vec(&event)?;
                /// assert_eq!(WebhookEvent::from_slice(&body)?, event);
                /// # Ok::<(), Box<dyn std::error::Error>>(())
                /// ```
                #[must_use]
                pub fn $name($param: $ty) -> Self {
                    Self::$variant($payload)
                }
            )+
        }

        const _: () = {
            let variants = [$(EventKind::$variant),+];
            let names = [$(stringify!($name)),+];
            assert!(
                variants.len() == KNOWN_EVENTS.len(),
                "one WebhookEvent constructor per event of the catalogue"
            );
            let mut i = 0;
            while i < variants.len() {
                assert!(
                    same_str(names[i], variants[i].as_str()) && same_str(names[i], KNOWN_EVENTS[i]),
                    "WebhookEvent constructors follow the catalogue, named after the events"
                );
                i += 1;
            }
        };
    };
}

event_constructors! {
    /// `call_started` for `call` ([`WebhookEvent::CallStarted`] with [`CallEvent::new`]).
    CallStarted => call_started(call: Call) = CallEvent::new(call);
    example Call, call_id;
    /// `call_ended` for `call` ([`WebhookEvent::CallEnded`] with [`CallEvent::new`]).
    CallEnded => call_ended(call: Call) = CallEvent::new(call);
    example Call, call_id;
    /// `call_analyzed` for `call`, whose `call_analysis` holds the analysis
    /// ([`WebhookEvent::CallAnalyzed`] with [`CallEvent::new`]).
    CallAnalyzed => call_analyzed(call: Call) = CallEvent::new(call);
    example Call, call_id;
    /// `transcript_updated` for a [`Call`] or a [`Chat`]
    /// ([`WebhookEvent::TranscriptUpdated`] with [`TranscriptUpdatedEvent::new`]).
    TranscriptUpdated => transcript_updated(subject: impl Into<TranscriptSubject>) =
        TranscriptUpdatedEvent::new(subject);
    example Call, call_id;
    /// `transfer_started` for `call` ([`WebhookEvent::TransferStarted`] with
    /// [`TransferEvent::new`]; build the [`TransferEvent`] yourself to set the
    /// destination).
    TransferStarted => transfer_started(call: Call) = TransferEvent::new(call);
    example Call, call_id;
    /// `transfer_bridged` for `call` ([`WebhookEvent::TransferBridged`] with
    /// [`TransferEvent::new`]).
    TransferBridged => transfer_bridged(call: Call) = TransferEvent::new(call);
    example Call, call_id;
    /// `transfer_cancelled` for `call` ([`WebhookEvent::TransferCancelled`]
    /// with [`TransferEvent::new`]).
    TransferCancelled => transfer_cancelled(call: Call) = TransferEvent::new(call);
    example Call, call_id;
    /// `transfer_ended` for `call` ([`WebhookEvent::TransferEnded`] with
    /// [`TransferEvent::new`]).
    TransferEnded => transfer_ended(call: Call) = TransferEvent::new(call);
    example Call, call_id;
    /// `chat_started` for `chat` ([`WebhookEvent::ChatStarted`] with [`ChatEvent::new`]).
    ChatStarted => chat_started(chat: Chat) = ChatEvent::new(chat);
    example Chat, chat_id;
    /// `chat_ended` for `chat` ([`WebhookEvent::ChatEnded`] with [`ChatEvent::new`]).
    ChatEnded => chat_ended(chat: Chat) = ChatEvent::new(chat);
    example Chat, chat_id;
    /// `chat_analyzed` for `chat`, whose `chat_analysis` holds the analysis
    /// ([`WebhookEvent::ChatAnalyzed`] with [`ChatEvent::new`]).
    ChatAnalyzed => chat_analyzed(chat: Chat) = ChatEvent::new(chat);
    example Chat, chat_id;
}

impl WebhookEvent {
    /// Sets the top-level `event_timestamp` (epoch ms) of any event. For
    /// [`WebhookEvent::Unknown`] it is set in the raw body, when that is a
    /// JSON object.
    ///
    /// ```
    /// use retell_webhooks::{Chat, WebhookEvent};
    ///
    /// let event = WebhookEvent::chat_ended(Chat::new("chat_1")).with_event_timestamp(1_785_432_662_400);
    /// assert_eq!(event.event_timestamp(), Some(1_785_432_662_400));
    /// ```
    #[must_use]
    pub fn with_event_timestamp(mut self, ms: u64) -> Self {
        match &mut self {
            Self::CallStarted(e) | Self::CallEnded(e) | Self::CallAnalyzed(e) => {
                e.event_timestamp = Some(ms);
            }
            Self::TransferStarted(e)
            | Self::TransferBridged(e)
            | Self::TransferCancelled(e)
            | Self::TransferEnded(e) => e.event_timestamp = Some(ms),
            Self::TranscriptUpdated(e) => e.event_timestamp = Some(ms),
            Self::ChatStarted(e) | Self::ChatEnded(e) | Self::ChatAnalyzed(e) => {
                e.event_timestamp = Some(ms);
            }
            Self::Unknown(u) => {
                if let Ok(serde_json::Value::Object(mut raw)) = u.raw.to_value() {
                    raw.insert("event_timestamp".to_owned(), ms.into());
                    u.raw = RawJson::from(serde_json::Value::Object(raw));
                }
            }
        }
        self
    }
}

impl From<WebhookEvent> for Incoming {
    fn from(event: WebhookEvent) -> Self {
        Self::Event(event)
    }
}

impl From<InboundCallRequest> for Incoming {
    fn from(request: InboundCallRequest) -> Self {
        Self::CallInbound(request)
    }
}

impl From<InboundChatRequest> for Incoming {
    fn from(request: InboundChatRequest) -> Self {
        Self::ChatInbound(request)
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
        self.walk_untyped(&mut Path::new(""), &mut out);
        out
    }

    /// How many parts [`Self::untyped_paths`] would list, without building
    /// their paths (for the outcome of every delivery).
    pub(crate) fn untyped_count(&self) -> usize {
        let mut out = Vec::new();
        self.walk_untyped(&mut Path::counter(), &mut out);
        out.len()
    }

    fn walk_untyped(&self, path: &mut Path, out: &mut Vec<Untyped>) {
        match self {
            Self::CallStarted(e) | Self::CallEnded(e) | Self::CallAnalyzed(e) => {
                walk_call(&e.call, &e.legacy_data, path, out);
                walk_envelope(&e.extra, path, out);
            }
            Self::TransferStarted(e)
            | Self::TransferBridged(e)
            | Self::TransferCancelled(e)
            | Self::TransferEnded(e) => {
                walk_call(&e.call, &e.legacy_data, path, out);
                walk_envelope(&e.extra, path, out);
            }
            Self::TranscriptUpdated(e) => {
                match &e.subject {
                    TranscriptSubject::Call(call) => {
                        walk_call(call, &e.legacy_data, path, out);
                    }
                    TranscriptSubject::Chat(chat) => walk_under("chat", &**chat, path, out),
                }
                if let Some(items) = &e.transcript_with_tool_calls {
                    walk_under(Slot::Transcript.name(), items, path, out);
                }
                walk_envelope(&e.extra, path, out);
            }
            Self::ChatStarted(e) | Self::ChatEnded(e) | Self::ChatAnalyzed(e) => {
                walk_under("chat", &*e.chat, path, out);
                walk_envelope(&e.extra, path, out);
            }
            Self::Unknown(_) => path.record_key("event", out, UntypedReason::UnknownValue),
        }
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
    let before = out.len();
    crate::models::model::walk_extra(extra, &NAMES, &expected, path, out);
    // The backfill's own mark is expected, not something Retell added.
    if extra.contains_key(Recovered::KEY) {
        let mut added = out.split_off(before);
        added.retain(|untyped| untyped.path != Recovered::KEY);
        out.append(&mut added);
    }
}

/// The string at `key` of the first of `objects` (or of `raw` itself when
/// `objects` is empty) that has one, borrowed from the text (`None` for the
/// rare string holding `"`, `\\` or a control character, kept escaped there).
fn member_text<'a>(raw: &'a RawJson, objects: &[&str], key: &str) -> Option<&'a str> {
    if objects.is_empty() {
        return str_at(raw, &[key]);
    }
    objects
        .iter()
        .find_map(|object| str_at(raw, &[object, key]))
}

/// The string `raw` is, borrowed from the text (see [`member_text`]).
fn text_of(raw: &RawJson) -> Option<&str> {
    str_at(raw, &[])
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
            .unwrap_or_default(),
    }
}
