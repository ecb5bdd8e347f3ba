//! Serialization: the same keys that were read.

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use super::de::Slot;
use super::{
    CallEvent, ChatEvent, EventKind, Incoming, LegacyData, TranscriptSubject,
    TranscriptUpdatedEvent, TransferEvent, UnknownEvent, WebhookEvent,
};
use crate::models::Extra;
use crate::{Call, InboundCallRequest, InboundChatRequest};

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

/// Writes the call under the key(s) it came from, and the other key when it
/// was an explicit `null` (`"call": null` beside `data`, or `"data": null`).
fn write_call<M: SerializeMap>(
    map: &mut M,
    call: &Call,
    legacy: &LegacyData,
    extra: &Extra,
) -> Result<(), M::Error> {
    let null = match legacy {
        LegacyData::Absent => {
            map.serialize_entry("call", call)?;
            Slot::Data
        }
        LegacyData::Only => {
            map.serialize_entry("data", call)?;
            Slot::Call
        }
        LegacyData::Alongside(data) => {
            map.serialize_entry("call", call)?;
            return map.serialize_entry("data", data);
        }
    };
    if extra.is_null(null as u8) {
        map.serialize_entry(null.name(), &())?;
    }
    Ok(())
}

impl WriteFields for CallEvent {
    fn write_fields<M: SerializeMap>(&self, map: &mut M) -> Result<(), M::Error> {
        write_slot(
            map,
            Slot::EventTimestamp,
            &self.event_timestamp,
            &self.extra,
        )?;
        write_call(map, &self.call, &self.legacy_data, &self.extra)?;
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
        write_call(map, &self.call, &self.legacy_data, &self.extra)?;
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
            TranscriptSubject::Call(call) => {
                write_call(map, call, &self.legacy_data, &self.extra)?;
            }
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
        serialize_with_event(serializer, EventKind::CallInbound.as_str(), self)
    }
}

impl Serialize for InboundChatRequest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_with_event(serializer, EventKind::ChatInbound.as_str(), self)
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
