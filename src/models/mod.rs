//! Typed, forward-compatible models of everything Retell sends.
//!
//! Three rules hold for every type in this module, so that a verified body
//! always reaches your handler whatever Retell's schema does next:
//!
//! * **Tolerant**: every field is optional except the identifying ones
//!   (`call_id` of a call, `chat_id` of a chat, the `name` of a wrapped function
//!   call). Unknown string-enum values parse into an `Unknown(String)` variant,
//!   unknown transcript/message kinds into an `Unknown(serde_json::Value)`
//!   variant, and unknown keys into the struct's [`Extra`].
//! * **Lossless, `null` included**: serializing a parsed value gives back the
//!   same keys and values. An absent key stays absent, an explicit `null` is
//!   written back as `null` (the typed field is `None` either way; see the
//!   models' `is_null` method), unknown keys are written back from `extra`.
//!   Numbers keep their value: an integer read into a float field is written
//!   as a float (`70` → `70.0`).
//! * **Field-level fallback, strict structure**: a known field whose value has
//!   another JSON type or is out of range (a string where an integer is
//!   expected, `-1` or `1.5` in an integer field) reads as `None`; its value is
//!   kept and written back unchanged, and `fallbacks()` / `untyped_paths()`
//!   report it by path (never by value). The body still parses. Only broken
//!   structure is an error: invalid UTF-8, a duplicate key in any object,
//!   trailing characters, nesting deeper than 127, a missing id.
//!
//! Integer fields accept integral floats (`1e3`, `1000.0`) because Retell's
//! types say `number`. A list whose items are not all of the item type falls
//! back as a whole; a transcript item or chat message that is not an object is
//! kept as that list's `Unknown` item instead.

#[macro_use]
mod open_enum;
#[macro_use]
pub(crate) mod model;

mod call;
mod chat;
mod enums;
mod extra;
mod function;
mod inbound;
pub(crate) mod lenient;
mod transcript;
pub(crate) mod untyped;

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
    AudioEncoding, AudioWebsocketProtocol, BackupModelReason, CallStatus, CallType, ChatRole,
    ChatStatus, ChatType, DataStorageSetting, Direction, DisconnectionReason, ToolType,
    TranscriptRole, TransitionType, UserSentiment, UtteranceRole,
};
pub use function::{
    FunctionCall, FunctionMethod, FunctionRequest, FunctionResponse, WrappedFunctionCall,
};
pub use inbound::{
    AgentVersion, InboundCall, InboundCallRequest, InboundChat, InboundChatRequest, InboundKind,
    InboundResponse, InboundResponseBody,
};
pub use transcript::{
    BackupModelUsed, Dtmf, Injected, Multimedia, NodeTransition, Sms, ToolCallInvocation,
    ToolCallMetadata, ToolCallResult, TranscriptItem, Utterance, UtteranceMetadata, Word,
};

pub use extra::Extra;
pub use untyped::{Untyped, UntypedReason};

/// Converts epoch milliseconds to a UTC date-time (`None` when out of range).
pub(crate) fn ms_to_datetime(ms: Option<u64>) -> Option<time::OffsetDateTime> {
    let ms = i128::from(ms?);
    time::OffsetDateTime::from_unix_timestamp_nanos(ms.checked_mul(1_000_000)?).ok()
}

#[cfg(test)]
mod size_tests {
    /// Items of long lists are sized by their largest kind: keep rare nested
    /// objects boxed so a parsed transcript stays close to its JSON size.
    #[test]
    fn list_items_stay_small() {
        use std::mem::size_of;
        assert!(
            size_of::<super::Word>() <= 88,
            "{}",
            size_of::<super::Word>()
        );
        assert!(
            size_of::<super::TranscriptItem>() <= 192,
            "{}",
            size_of::<super::TranscriptItem>()
        );
        assert!(
            size_of::<super::ChatMessage>() <= 192,
            "{}",
            size_of::<super::ChatMessage>()
        );
    }
}
