//! Typed, forward-compatible models of everything Retell sends.
//!
//! Three rules hold for every type in this module:
//!
//! * **Open**: unknown string-enum values parse into an `Unknown(String)` variant,
//!   unknown transcript/message kinds into an `Unknown(serde_json::Value)` variant,
//!   and unknown keys into the struct's `extra` map. Retell adds fields and values
//!   roughly monthly; none of that may break a receiver.
//! * **Lossless**: serializing a parsed value gives back the same keys and values
//!   (absent stays absent, unknown keys are written back from `extra`).
//! * **Lenient about numbers, strict about structure**: integer fields accept
//!   integral floats (`1e3`, `1000.0`), float fields accept integers, `null` in an
//!   optional field means "absent"; duplicate keys, wrong types and fractional or
//!   negative values in integer fields are errors.

#[macro_use]
mod open_enum;

pub mod call;
pub mod chat;
pub mod enums;
pub mod function;
pub mod inbound;
mod number;
pub mod transcript;

mod role;

pub use call::{
    Call, CallAnalysis, CallCost, Latency, LatencyStats, LlmTokenUsage, ProductCost,
    TelephonyIdentifier,
};
pub use chat::{
    Chat, ChatAnalysis, ChatCost, ChatMessage, ChatNodeTransition, ChatSms, ChatStateTransition,
    ChatText, ChatToolCallInvocation, ChatToolCallResult,
};
pub use enums::{
    AudioEncoding, AudioWebsocketProtocol, CallStatus, CallType, ChatRole, ChatStatus, ChatType,
    DataStorageSetting, Direction, DisconnectionReason, TranscriptRole, TransitionType,
    UserSentiment, UtteranceRole,
};
pub use function::{FunctionCall, FunctionResponse, WrappedFunctionCall};
pub use inbound::{
    InboundCall, InboundCallRequest, InboundChat, InboundChatRequest, InboundKind, InboundResponse,
    InboundResponseBody,
};
pub use transcript::{
    Dtmf, Injected, Multimedia, NodeTransition, Sms, ToolCallInvocation, ToolCallResult,
    TranscriptItem, Utterance, Word,
};

pub(crate) use number::opt_u64 as number_opt_u64;
pub(crate) use role::short_key;

/// Unknown keys of a JSON object, kept so that serialization writes them back.
pub type Extra = serde_json::Map<String, serde_json::Value>;

/// Converts epoch milliseconds to a UTC date-time (`None` when out of range).
pub(crate) fn ms_to_datetime(ms: Option<u64>) -> Option<time::OffsetDateTime> {
    let ms = i128::from(ms?);
    time::OffsetDateTime::from_unix_timestamp_nanos(ms.checked_mul(1_000_000)?).ok()
}

/// Sequences are read into a growing `Vec`, which ends with up to twice the
/// capacity it needs; the large ones (transcripts, word timings, latency
/// samples) are trimmed to their length so a parsed body stays close to its
/// size in memory.
pub(crate) mod exact {
    use std::fmt;
    use std::marker::PhantomData;

    use serde::de::{SeqAccess, Visitor};
    use serde::{Deserialize, Deserializer};

    /// First allocation of a non-empty sequence: enough for a typical
    /// utterance's word timings, so most arrays are read without regrowing.
    const FIRST_CAPACITY: usize = 16;

    /// A `Vec<T>` without spare capacity.
    pub(crate) fn vec<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
        deserializer: D,
    ) -> Result<Vec<T>, D::Error> {
        deserializer.deserialize_seq(ExactVec(PhantomData))
    }

    /// An optional `Vec<T>` without spare capacity (`null` → `None`).
    pub(crate) fn opt_vec<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
        deserializer: D,
    ) -> Result<Option<Vec<T>>, D::Error> {
        Option::<Exact<T>>::deserialize(deserializer).map(|items| items.map(|Exact(items)| items))
    }

    struct Exact<T>(Vec<T>);

    impl<'de, T: Deserialize<'de>> Deserialize<'de> for Exact<T> {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            vec(deserializer).map(Exact)
        }
    }

    struct ExactVec<T>(PhantomData<T>);

    impl<'de, T: Deserialize<'de>> Visitor<'de> for ExactVec<T> {
        type Value = Vec<T>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a sequence")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut items = Vec::new();
            while let Some(item) = seq.next_element()? {
                if items.capacity() == 0 {
                    items.reserve_exact(FIRST_CAPACITY);
                }
                items.push(item);
            }
            items.shrink_to_fit();
            Ok(items)
        }
    }
}
