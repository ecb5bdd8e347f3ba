//! The handler trait: one method per event or request.

use crate::{
    CallEvent, ChatEvent, FunctionRequest, FunctionResponse, InboundCallRequest,
    InboundChatRequest, InboundResponse, ParseError, TranscriptUpdatedEvent, TransferEvent,
    UnknownEvent,
};
use std::fmt;
use std::sync::Arc;

// ---------------------------------------------------------------------------
// Handler trait
// ---------------------------------------------------------------------------

/// What to do with each kind of request Retell sends.
///
/// Every method has a default: events are acknowledged (`Ok(())`, answered with
/// `204`), the inbound call/SMS webhook answers an empty response (Retell keeps
/// the number's configured agent), and a custom function call answers the text
/// `function not implemented` (see [`on_function_call`](Self::on_function_call)).
/// Override the methods you need; write them as `async fn`.
///
/// Returning `Err` answers `500`, so Retell retries the delivery (up to 3 times).
/// A panic is caught and also answers `500`; the server keeps serving. Keep
/// handlers short (Retell gives up after 10 seconds; see
/// [`ReceiverConfig::handler_deadline`](crate::ReceiverConfig::handler_deadline)) and idempotent: the same event can
/// arrive more than once. [`ReceiverConfig::with_dedupe`](crate::ReceiverConfig::with_dedupe) filters the copies
/// (see [`crate::dedupe`]); a side effect outside your own database (an email,
/// a charge) should still carry its own idempotency key.
///
/// For slow work, acknowledge fast and process later ("ack then process"):
/// hand the event to a durable queue in the handler and return `Ok` only once
/// the queue has accepted it; return `Err` when it has not (`500`, Retell
/// retries), never `Ok` for work that is not durably handed off.
///
/// The deadline cuts a handler at an `.await`: its future is dropped and the
/// answer is `503`. A handler that blocks its thread (a synchronous HTTP
/// client, `std::thread::sleep`, heavy computation) cannot be cut: the answer
/// waits for it, Retell times out at 10 s and retries while it still runs,
/// and the runtime worker it blocks serves no other request meanwhile (with
/// two workers, two such handlers stop every delivery). Put blocking work in
/// `tokio::task::spawn_blocking` and `.await` it, so the deadline can cut the
/// wait.
///
/// The returned futures must be `Send` so a multi-threaded runtime can run them;
/// an `async fn` is `Send` when everything it holds across an `.await` is.
pub trait WebhookHandler: Send + Sync {
    /// Error returned by the handler. Its `Display` text is put in the
    /// [`Outcome`](super::Outcome) for logging; it is never sent to the client.
    type Error: fmt::Display + Send + 'static;

    /// `call_started`: a call began (not sent for calls that never connect).
    fn on_call_started(
        &self,
        event: CallEvent,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        let _ = event;
        async { Ok(()) }
    }

    /// `call_ended`: a call ended; carries the transcript and recording links.
    fn on_call_ended(
        &self,
        event: CallEvent,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        let _ = event;
        async { Ok(()) }
    }

    /// `call_analyzed`: post-call analysis (`call_analysis`) is ready.
    fn on_call_analyzed(
        &self,
        event: CallEvent,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        let _ = event;
        async { Ok(()) }
    }

    /// `transcript_updated`: the live transcript changed (opt-in; fires many
    /// times per call, keep the latest).
    fn on_transcript_updated(
        &self,
        event: TranscriptUpdatedEvent,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        let _ = event;
        async { Ok(()) }
    }

    /// `transfer_started`: a call transfer began (opt-in).
    fn on_transfer_started(
        &self,
        event: TransferEvent,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        let _ = event;
        async { Ok(()) }
    }

    /// `transfer_bridged`: the transfer target answered (opt-in).
    fn on_transfer_bridged(
        &self,
        event: TransferEvent,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        let _ = event;
        async { Ok(()) }
    }

    /// `transfer_cancelled`: the transfer was abandoned (opt-in).
    fn on_transfer_cancelled(
        &self,
        event: TransferEvent,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        let _ = event;
        async { Ok(()) }
    }

    /// `transfer_ended`: the transferred leg ended (opt-in).
    fn on_transfer_ended(
        &self,
        event: TransferEvent,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        let _ = event;
        async { Ok(()) }
    }

    /// `chat_started`: a chat (SMS or web chat) began.
    fn on_chat_started(
        &self,
        event: ChatEvent,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        let _ = event;
        async { Ok(()) }
    }

    /// `chat_ended`: a chat ended.
    fn on_chat_ended(
        &self,
        event: ChatEvent,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        let _ = event;
        async { Ok(()) }
    }

    /// `chat_analyzed`: post-chat analysis is ready.
    fn on_chat_analyzed(
        &self,
        event: ChatEvent,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        let _ = event;
        async { Ok(()) }
    }

    /// An event this version of the crate does not know. Acknowledged (`204`) by
    /// default, so a new Retell event type never turns into failed deliveries.
    fn on_unknown(
        &self,
        event: UnknownEvent,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        let _ = event;
        async { Ok(()) }
    }

    /// The inbound call webhook (`call_inbound`): choose the agent, add dynamic
    /// variables or reject the call. Answered with `200` and the JSON response.
    ///
    /// Default: an empty response, which keeps the number's configured agent.
    fn on_call_inbound(
        &self,
        request: InboundCallRequest,
    ) -> impl Future<Output = Result<InboundResponse, Self::Error>> + Send {
        let _ = request;
        async { Ok(InboundResponse::call()) }
    }

    /// The inbound SMS webhook (`chat_inbound`). Answered with `200` and the JSON
    /// response.
    ///
    /// Default: an empty response, which keeps the number's configured agent.
    fn on_chat_inbound(
        &self,
        request: InboundChatRequest,
    ) -> impl Future<Output = Result<InboundResponse, Self::Error>> + Send {
        let _ = request;
        async { Ok(InboundResponse::chat()) }
    }

    /// A custom function (tool) call on a [`RouteKind::Function`](crate::RouteKind::Function) route. The answer is
    /// sent with `200` and handed to the LLM (Retell caps it at 15 000
    /// characters).
    ///
    /// Default: the text `function not implemented`, so the agent can tell the
    /// caller at once instead of waiting on failed retries. Override this method
    /// whenever you mount a function route.
    fn on_function_call(
        &self,
        request: FunctionRequest,
    ) -> impl Future<Output = Result<FunctionResponse, Self::Error>> + Send {
        let _ = request;
        async { Ok(FunctionResponse::text("function not implemented")) }
    }

    /// A verified JSON object on the event route that the typed models could not
    /// read (a field of an unexpected type, say). `body` is the raw verified
    /// bytes, e.g. to store for a later replay; `error` names the JSON path and,
    /// when readable, the event name and call/chat id.
    ///
    /// Return [`Fallback::Accepted`] to answer `204`, or [`Fallback::Declined`]
    /// (the default) to answer `400`. Either way the outcome names the failure.
    fn on_unparsed(
        &self,
        body: &[u8],
        error: &ParseError,
    ) -> impl Future<Output = Result<Fallback, Self::Error>> + Send {
        let _ = (body, error);
        async { Ok(Fallback::Declined) }
    }
}

/// The answer of [`WebhookHandler::on_unparsed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    /// The raw body was handled (stored, queued): answer `204`.
    Accepted,
    /// Not handled: answer `400`.
    Declined,
}

/// Forwards every method to the handler behind a pointer, so an
/// `Arc<App>` (or `&App`) shared with the rest of a service is a handler too.
macro_rules! forward_handler {
    ($($ptr:ty),+) => {$(
        impl<T: WebhookHandler + ?Sized> WebhookHandler for $ptr {
            type Error = T::Error;

            fn on_call_started(&self, event: CallEvent) -> impl Future<Output = Result<(), Self::Error>> + Send {
                T::on_call_started(self, event)
            }
            fn on_call_ended(&self, event: CallEvent) -> impl Future<Output = Result<(), Self::Error>> + Send {
                T::on_call_ended(self, event)
            }
            fn on_call_analyzed(&self, event: CallEvent) -> impl Future<Output = Result<(), Self::Error>> + Send {
                T::on_call_analyzed(self, event)
            }
            fn on_transcript_updated(&self, event: TranscriptUpdatedEvent) -> impl Future<Output = Result<(), Self::Error>> + Send {
                T::on_transcript_updated(self, event)
            }
            fn on_transfer_started(&self, event: TransferEvent) -> impl Future<Output = Result<(), Self::Error>> + Send {
                T::on_transfer_started(self, event)
            }
            fn on_transfer_bridged(&self, event: TransferEvent) -> impl Future<Output = Result<(), Self::Error>> + Send {
                T::on_transfer_bridged(self, event)
            }
            fn on_transfer_cancelled(&self, event: TransferEvent) -> impl Future<Output = Result<(), Self::Error>> + Send {
                T::on_transfer_cancelled(self, event)
            }
            fn on_transfer_ended(&self, event: TransferEvent) -> impl Future<Output = Result<(), Self::Error>> + Send {
                T::on_transfer_ended(self, event)
            }
            fn on_chat_started(&self, event: ChatEvent) -> impl Future<Output = Result<(), Self::Error>> + Send {
                T::on_chat_started(self, event)
            }
            fn on_chat_ended(&self, event: ChatEvent) -> impl Future<Output = Result<(), Self::Error>> + Send {
                T::on_chat_ended(self, event)
            }
            fn on_chat_analyzed(&self, event: ChatEvent) -> impl Future<Output = Result<(), Self::Error>> + Send {
                T::on_chat_analyzed(self, event)
            }
            fn on_unknown(&self, event: UnknownEvent) -> impl Future<Output = Result<(), Self::Error>> + Send {
                T::on_unknown(self, event)
            }
            fn on_call_inbound(&self, request: InboundCallRequest) -> impl Future<Output = Result<InboundResponse, Self::Error>> + Send {
                T::on_call_inbound(self, request)
            }
            fn on_chat_inbound(&self, request: InboundChatRequest) -> impl Future<Output = Result<InboundResponse, Self::Error>> + Send {
                T::on_chat_inbound(self, request)
            }
            fn on_function_call(&self, request: FunctionRequest) -> impl Future<Output = Result<FunctionResponse, Self::Error>> + Send {
                T::on_function_call(self, request)
            }
            fn on_unparsed(&self, body: &[u8], error: &ParseError) -> impl Future<Output = Result<Fallback, Self::Error>> + Send {
                T::on_unparsed(self, body, error)
            }
        }
    )+};
}

forward_handler!(Arc<T>, &T, Box<T>);
