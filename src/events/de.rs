//! Deserialization: the envelope visitor and the `Deserialize` impls.

use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use super::{
    CallEvent, ChatEvent, EventKind, Incoming, LegacyData, TranscriptSubject,
    TranscriptUpdatedEvent, TransferEvent, UnknownEvent, WebhookEvent,
};
use crate::models::lenient::{ReadSeed, insert_unique};
use crate::models::model::store;
use crate::models::raw::{RawSeed, Sink, raw_str, raw_u64, read_raw, to_raw};
use crate::models::{Extra, InboundCall, InboundChat, RawJson, TranscriptItem};
use crate::{Call, Chat, InboundCallRequest, InboundChatRequest};

/// The whole body as JSON text, duplicate keys rejected at every level.
pub(super) fn strict_body(text: &str) -> Result<RawJson, serde_json::Error> {
    RawJson::parse(text)
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
    transfer_destination: Option<RawJson>,
    transfer_option: Option<RawJson>,
    transcript_with_tool_calls: Option<Vec<TranscriptItem>>,
    call_inbound: Option<InboundCall>,
    chat_inbound: Option<InboundChat>,
    extra: Extra,
}

/// Top-level keys the envelope reads into typed slots (the discriminant
/// indexes `Slot::ALL`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Slot {
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
    pub(super) const ALL: [(&'static str, Slot); 10] = [
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

    pub(super) fn name(self) -> &'static str {
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
                    let value = map.next_value_seed(RawSeed)?;
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
                Slot::Call => env.call = typed_or_null(&mut map, &mut env.extra, index)?,
                Slot::Data => env.data = typed_or_null(&mut map, &mut env.extra, index)?,
                Slot::Chat => env.chat = typed_or_null(&mut map, &mut env.extra, index)?,
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
                Slot::CallInbound => {
                    env.call_inbound = typed_or_null(&mut map, &mut env.extra, index)?;
                }
                Slot::ChatInbound => {
                    env.chat_inbound = typed_or_null(&mut map, &mut env.extra, index)?;
                }
            }
        }
        Ok(env)
    }
}

/// Reads an identifying part, which must have its type or be `null`; a
/// `null` is noted in `extra` so that it is written back.
fn typed_or_null<'de, A: MapAccess<'de>, T: Deserialize<'de>>(
    map: &mut A,
    extra: &mut Extra,
    index: u8,
) -> Result<Option<T>, A::Error> {
    let value = map.next_value::<Option<T>>()?;
    if value.is_none() {
        extra.note_null(index);
    }
    Ok(value)
}

/// The identifying parts, whose `null` is noted by [`typed_or_null`].
const IDENTIFYING: [Slot; 5] = [
    Slot::Call,
    Slot::Data,
    Slot::Chat,
    Slot::CallInbound,
    Slot::ChatInbound,
];

/// The slots whose `null` a variant carrying a call writes back itself,
/// beside the call (see `write_call`).
const BESIDE_CALL: &[Slot] = &[Slot::Call, Slot::Data];

/// Moves a typed part that the chosen variant does not use back into `extra`,
/// so that nothing read is lost.
fn stash<T: Serialize, E: de::Error>(
    extra: &mut Extra,
    key: &str,
    value: Option<T>,
) -> Result<(), E> {
    if let Some(value) = value {
        extra.insert(key.to_owned(), to_raw(&value).map_err(E::custom)?);
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
    /// keys; the nulls of `kept` stay where the variant writes them.
    fn into_extra<E: de::Error>(mut self, kept: &[Slot]) -> Result<Extra, E> {
        let mut extra = std::mem::take(&mut self.extra);
        for slot in IDENTIFYING {
            if !kept.contains(&slot)
                && let Some(null) = extra.take_absent(slot as u8)
            {
                extra.insert(slot.name().to_owned(), null);
            }
        }
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
            extra: self.into_extra(BESIDE_CALL)?,
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
            extra: self.into_extra(BESIDE_CALL)?,
        })
    }

    fn into_chat_event<E: de::Error>(mut self) -> Result<ChatEvent, E> {
        let chat = self.chat.take().ok_or_else(|| E::missing_field("chat"))?;
        Ok(ChatEvent {
            chat,
            event_timestamp: self.event_timestamp,
            extra: self.into_extra(&[])?,
        })
    }

    fn into_transcript_event<E: de::Error>(mut self) -> Result<TranscriptUpdatedEvent, E> {
        let (subject, legacy_data, kept) = if self.call.is_some() || self.data.is_some() {
            let (call, legacy) = self.take_call()?;
            (TranscriptSubject::Call(call), legacy, BESIDE_CALL)
        } else {
            let chat = self.chat.take().ok_or_else(|| E::missing_field("call"))?;
            (TranscriptSubject::Chat(chat), LegacyData::Absent, &[][..])
        };
        Ok(TranscriptUpdatedEvent {
            subject,
            legacy_data,
            transcript_with_tool_calls: self.transcript_with_tool_calls.take(),
            event_timestamp: self.event_timestamp,
            extra: self.into_extra(kept)?,
        })
    }

    fn into_incoming<E: de::Error>(mut self) -> Result<Incoming, E> {
        let event = self.event.take().ok_or_else(|| E::missing_field("event"))?;
        let event_timestamp = self.event_timestamp;
        let Some(kind) = EventKind::from_name(&event) else {
            return self.into_unknown(event).map(Incoming::Event);
        };
        let event = match kind {
            EventKind::CallStarted => WebhookEvent::CallStarted(self.into_call_event()?),
            EventKind::CallEnded => WebhookEvent::CallEnded(self.into_call_event()?),
            EventKind::CallAnalyzed => WebhookEvent::CallAnalyzed(self.into_call_event()?),
            EventKind::TransferStarted => {
                WebhookEvent::TransferStarted(self.into_transfer_event()?)
            }
            EventKind::TransferBridged => {
                WebhookEvent::TransferBridged(self.into_transfer_event()?)
            }
            EventKind::TransferCancelled => {
                WebhookEvent::TransferCancelled(self.into_transfer_event()?)
            }
            EventKind::TransferEnded => WebhookEvent::TransferEnded(self.into_transfer_event()?),
            EventKind::ChatStarted => WebhookEvent::ChatStarted(self.into_chat_event()?),
            EventKind::ChatEnded => WebhookEvent::ChatEnded(self.into_chat_event()?),
            EventKind::ChatAnalyzed => WebhookEvent::ChatAnalyzed(self.into_chat_event()?),
            EventKind::TranscriptUpdated => {
                WebhookEvent::TranscriptUpdated(self.into_transcript_event()?)
            }
            EventKind::CallInbound => {
                let call_inbound = self
                    .call_inbound
                    .take()
                    .ok_or_else(|| E::missing_field("call_inbound"))?;
                return Ok(Incoming::CallInbound(InboundCallRequest {
                    event_timestamp,
                    call_inbound,
                    extra: self.into_extra(&[])?,
                }));
            }
            EventKind::ChatInbound => {
                let chat_inbound = self
                    .chat_inbound
                    .take()
                    .ok_or_else(|| E::missing_field("chat_inbound"))?;
                return Ok(Incoming::ChatInbound(InboundChatRequest {
                    event_timestamp,
                    chat_inbound,
                    extra: self.into_extra(&[])?,
                }));
            }
        };
        Ok(Incoming::Event(event))
    }

    /// An event whose name is not in the catalogue: everything read, as JSON.
    fn into_unknown<E: de::Error>(self, event: String) -> Result<WebhookEvent, E> {
        let event_timestamp = self.event_timestamp;
        let mut extra = self.into_extra::<E>(&[])?;
        let timestamp = match event_timestamp {
            Some(ts) => Some(raw_u64(ts)),
            None => extra.take_absent(Slot::EventTimestamp as u8),
        };
        if let Some(ts) = timestamp {
            extra.insert("event_timestamp".to_owned(), ts);
        }
        extra.insert("event".to_owned(), raw_str(&event));
        // Each part is dropped once written, so the body is not held twice.
        let mut sink = Sink::new();
        let mut object = sink.open_object();
        for (key, value) in extra.into_unknown() {
            sink.raw_entry::<E>(&mut object, &key, value.as_str())?;
        }
        sink.close_object::<E>(object)?;
        Ok(WebhookEvent::Unknown(UnknownEvent {
            event,
            raw: sink.finish(),
        }))
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
        let raw = read_raw(deserializer)?;
        let event = raw
            .get("event")
            .and_then(|event| event.string_value().map(|e| e.into_owned()))
            .ok_or_else(|| de::Error::missing_field("event"))?;
        Ok(Self { event, raw })
    }
}

impl<'de> Deserialize<'de> for WebhookEvent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Incoming::deserialize(deserializer)? {
            Incoming::Event(event) => Ok(event),
            Incoming::CallInbound(request) => Ok(Self::Unknown(UnknownEvent {
                event: EventKind::CallInbound.as_str().to_owned(),
                raw: to_raw(&request).map_err(de::Error::custom)?,
            })),
            Incoming::ChatInbound(request) => Ok(Self::Unknown(UnknownEvent {
                event: EventKind::ChatInbound.as_str().to_owned(),
                raw: to_raw(&request).map_err(de::Error::custom)?,
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
                other.kind().map_or("unknown event", EventKind::as_str)
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
                other.kind().map_or("unknown event", EventKind::as_str)
            ))),
        }
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
