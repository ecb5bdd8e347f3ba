//! Typed, forward-compatible models of everything Retell sends. The rules are in the crate docs
//! (`docs/models.md`).

#[macro_use]
mod open_enum;
#[macro_use]
pub(crate) mod model;

pub(crate) mod call;
pub(crate) mod chat;
mod enums;
mod extra;
pub(crate) mod function;
pub(crate) mod inbound;
pub(crate) mod lenient;
pub(crate) mod raw;
mod transcript;
pub(crate) mod untyped;

mod role;
mod seconds;
mod small_string;

pub use crate::events::{LegacyData, TranscriptSubject, UnknownEventKind};
pub use call::{
    CallAnalysis, CallCost, Latency, LatencyStats, LlmTokenUsage, ProductCost, TelephonyIdentifier,
};
pub use chat::{
    ChatAnalysis, ChatCost, ChatMessage, ChatNodeTransition, ChatSms, ChatStateTransition,
    ChatText, ChatToolCallInvocation, ChatToolCallResult,
};
pub use enums::{
    AudioEncoding, AudioWebsocketProtocol, BackupModelReason, CallStatus, CallType, ChatRole,
    ChatStatus, ChatType, DataStorageSetting, Direction, DisconnectionReason, ToolType,
    TranscriptRole, TransitionType, UserSentiment, UtteranceRole,
};
pub use function::WrappedFunctionCall;
pub use inbound::{AgentVersion, InboundCall, InboundChat, InboundKind, InboundResponseBody};
pub use transcript::{
    BackupModelUsed, Dtmf, Injected, Multimedia, NodeTransition, Sms, ToolCallInvocation,
    ToolCallMetadata, ToolCallResult, TranscriptItem, Utterance, UtteranceMetadata, Word,
};

pub use extra::Extra;
pub use raw::{RawJson, RawObject};
pub use seconds::Seconds;
pub use small_string::SmallString;
pub use untyped::{Untyped, UntypedReason};

/// Converts epoch milliseconds to a UTC date-time (`None` when out of range).
pub(crate) fn ms_to_datetime(ms: Option<u64>) -> Option<time::OffsetDateTime> {
    let ms = i128::from(ms?);
    time::OffsetDateTime::from_unix_timestamp_nanos(ms.checked_mul(1_000_000)?).ok()
}

#[cfg(test)]
mod size_tests {
    /// Items of long lists are sized by their largest kind: kinds are boxed so
    /// a list of tiny items (`[0,0,…]`) stays within a few times its JSON size.
    #[test]
    fn list_items_stay_small() {
        use std::mem::size_of;
        assert!(
            size_of::<super::Word>() <= 48,
            "{}",
            size_of::<super::Word>()
        );
        assert!(
            size_of::<super::TranscriptItem>() <= 24,
            "{}",
            size_of::<super::TranscriptItem>()
        );
        assert!(
            size_of::<super::ChatMessage>() <= 24,
            "{}",
            size_of::<super::ChatMessage>()
        );
    }
}
