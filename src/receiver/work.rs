//! The work a verified body asks for: parsed once, by route, then run
//! through the matching [`WebhookHandler`] method.

use super::body::BadBody;
#[cfg(test)]
use super::body::JSON_PARSES;
use super::config::RouteKind;
use super::handler::{Fallback, WebhookHandler};
use super::outcome::{APPLICATION_JSON, Dispatched, Ids, Reason, WebhookResponse};
use super::request::RawRequest;
use crate::{
    EventKind, FunctionCall, FunctionMethod, FunctionRequest, InboundResponse, Incoming,
    ParseError, WebhookEvent,
};

pub(crate) enum Work {
    Incoming(Incoming),
    /// A JSON object the models cannot read: the handler's raw fallback gets
    /// a chance before it is refused.
    Unparsed(ParseError),
    Function(FunctionRequest),
}

impl Work {
    /// Parses a verified body for `route`: `Err` carries the `400` to send.
    pub(crate) fn parse(
        route: RouteKind,
        request: &RawRequest<'_>,
    ) -> Result<(Self, Ids), Box<Dispatched>> {
        Self::parse_parts(route, request.method, request.query, request.body)
    }

    /// [`parse`](Self::parse) from the parts it reads, for a parse on
    /// another thread.
    pub(crate) fn parse_parts(
        route: RouteKind,
        method: &str,
        query: &str,
        body: &[u8],
    ) -> Result<(Self, Ids), Box<Dispatched>> {
        #[cfg(test)]
        JSON_PARSES.with(|n| n.set(n.get() + 1));
        let parsed = match route {
            RouteKind::Events => Incoming::from_slice(body).map(Work::Incoming),
            RouteKind::Function => function_request(method, query, body).map(Work::Function),
        };
        let refuse = |why, ids: &Ids| {
            Err(Box::new(
                Dispatched::from_reason(route, Reason::BadRequest(why)).with_ids(ids),
            ))
        };
        if let Ok(Work::Function(call)) = &parsed
            && let Some(event) = misrouted_event(call)
        {
            let ids = Ids {
                event: Some(event.to_owned()),
                ..Ids::default()
            };
            return refuse(BadBody::EventOnFunctionRoute { event }, &ids);
        }
        match parsed {
            Ok(work) => {
                let ids = work.ids();
                Ok((work, ids))
            }
            Err(error) => {
                let ids = Ids::of_error(&error);
                match BadBody::from_parse_error(route, body, error) {
                    BadBody::Invalid {
                        route: RouteKind::Events,
                        error,
                    } => Ok((Work::Unparsed(error), ids)),
                    why => refuse(why, &ids),
                }
            }
        }
    }

    fn ids(&self) -> Ids {
        match self {
            Work::Incoming(incoming) => Ids::of_incoming(incoming),
            Work::Function(request) => {
                let call = request.call.as_ref();
                Ids {
                    event: None,
                    call_id: call.and_then(|c| c.call()).map(|c| c.call_id.clone()),
                    chat_id: call.and_then(|c| c.chat()).map(|c| c.chat_id.clone()),
                    untyped: call.map_or(0, |c| c.untyped_paths().len()),
                }
            }
            Work::Unparsed(error) => Ids::of_error(error),
        }
    }
}

/// The function request: method, query and the call, if the body has one
/// (`GET` and `DELETE` tools send an empty body).
fn function_request(method: &str, query: &str, body: &[u8]) -> Result<FunctionRequest, ParseError> {
    let method = FunctionMethod::parse(method).unwrap_or(FunctionMethod::Post);
    let call = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        Some(FunctionCall::from_slice(body)?)
    };
    Ok(FunctionRequest::new(method, query, call))
}

/// An "arguments only" body that is in fact a Retell webhook: a catalogue
/// `event` name next to its `call` / `chat` (or `call_inbound` /
/// `chat_inbound`) object. Answered `200` as a function call, it would be
/// acknowledged and never reach its event handler.
fn misrouted_event(request: &FunctionRequest) -> Option<&'static str> {
    let Some(FunctionCall::ArgsOnly(args)) = &request.call else {
        return None;
    };
    let args = args.as_json();
    let name = args.get("event")?;
    let event = name.string_value()?.parse::<EventKind>().ok()?.as_str();
    let has_object = |key: &str| args.get(key).is_some_and(|value| value.is_object());
    ["call", "chat", "call_inbound", "chat_inbound"]
        .into_iter()
        .any(has_object)
        .then_some(event)
}

/// What a handler run produced, before it becomes a response.
pub(crate) enum Answer {
    Ack(Reason),
    Declined(ParseError),
    Body {
        bytes: Vec<u8>,
        content_type: &'static str,
    },
    NotSerializable,
}

impl Answer {
    pub(crate) fn into_dispatched(self, route: RouteKind) -> Dispatched {
        match self {
            Answer::Ack(reason) => Dispatched::from_reason(route, reason),
            Answer::Declined(error) => {
                let why = BadBody::Invalid { route, error };
                Dispatched::from_reason(route, Reason::BadRequest(why))
            }
            Answer::NotSerializable => {
                Dispatched::from_reason(route, Reason::AnswerNotSerializable)
            }
            Answer::Body {
                bytes,
                content_type,
            } => Dispatched::new(
                route,
                Reason::Answered,
                WebhookResponse {
                    status: 200,
                    content_type: Some(content_type),
                    allow: None,
                    close: false,
                    body: bytes,
                },
            ),
        }
    }
}

/// Runs the handler method that matches `work`.
pub(crate) async fn run_handler<H>(handler: &H, work: Work, body: &[u8]) -> Result<Answer, H::Error>
where
    H: WebhookHandler + ?Sized,
{
    match work {
        Work::Incoming(Incoming::Event(event)) => run_event(handler, event).await,
        Work::Incoming(Incoming::CallInbound(request)) => {
            Ok(json_answer(&handler.on_call_inbound(request).await?))
        }
        Work::Incoming(Incoming::ChatInbound(request)) => {
            Ok(json_answer(&handler.on_chat_inbound(request).await?))
        }
        Work::Function(call) => {
            let answer = handler.on_function_call(call).await?;
            Ok(Answer::Body {
                bytes: answer.to_body(),
                content_type: answer.content_type(),
            })
        }
        Work::Unparsed(error) => Ok(match handler.on_unparsed(body, &error).await? {
            Fallback::Accepted => Answer::Ack(Reason::FallbackAccepted),
            Fallback::Declined => Answer::Declined(error),
        }),
    }
}

async fn run_event<H>(handler: &H, event: WebhookEvent) -> Result<Answer, H::Error>
where
    H: WebhookHandler + ?Sized,
{
    let unknown = matches!(event, WebhookEvent::Unknown(_));
    event.dispatch_to(handler).await?;
    Ok(Answer::Ack(if unknown {
        Reason::UnknownEvent
    } else {
        Reason::Handled
    }))
}

impl WebhookEvent {
    /// Runs the [`WebhookHandler`] method that matches this event
    /// (`on_call_ended` for `call_ended`, …, `on_unknown` for an event this
    /// version does not know), without HTTP or a signature: for an event
    /// from a store, a replay, or a test.
    ///
    /// ```
    /// use retell_webhooks::{CallEvent, WebhookEvent, WebhookHandler};
    ///
    /// struct App;
    /// impl WebhookHandler for App {
    ///     type Error = std::convert::Infallible;
    ///     async fn on_call_ended(&self, event: CallEvent) -> Result<(), Self::Error> {
    ///         assert_eq!(event.call.call_id, "call_1");
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let event = WebhookEvent::from_slice(br#"{"event":"call_ended","call":{"call_id":"call_1"}}"#)?;
    /// # let mut future = std::pin::pin!(event.dispatch_to(&App));
    /// # let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    /// # assert!(matches!(future.as_mut().poll(&mut cx), std::task::Poll::Ready(Ok(()))));
    /// // In async code: event.dispatch_to(&App).await?;
    /// # Ok::<(), retell_webhooks::ParseError>(())
    /// ```
    pub async fn dispatch_to<H>(self, handler: &H) -> Result<(), H::Error>
    where
        H: WebhookHandler + ?Sized,
    {
        match self {
            WebhookEvent::CallStarted(e) => handler.on_call_started(e).await,
            WebhookEvent::CallEnded(e) => handler.on_call_ended(e).await,
            WebhookEvent::CallAnalyzed(e) => handler.on_call_analyzed(e).await,
            WebhookEvent::TranscriptUpdated(e) => handler.on_transcript_updated(e).await,
            WebhookEvent::TransferStarted(e) => handler.on_transfer_started(e).await,
            WebhookEvent::TransferBridged(e) => handler.on_transfer_bridged(e).await,
            WebhookEvent::TransferCancelled(e) => handler.on_transfer_cancelled(e).await,
            WebhookEvent::TransferEnded(e) => handler.on_transfer_ended(e).await,
            WebhookEvent::ChatStarted(e) => handler.on_chat_started(e).await,
            WebhookEvent::ChatEnded(e) => handler.on_chat_ended(e).await,
            WebhookEvent::ChatAnalyzed(e) => handler.on_chat_analyzed(e).await,
            WebhookEvent::Unknown(e) => handler.on_unknown(e).await,
        }
    }
}

fn json_answer(answer: &InboundResponse) -> Answer {
    match serde_json::to_vec(answer) {
        Ok(bytes) => Answer::Body {
            bytes,
            content_type: APPLICATION_JSON,
        },
        Err(_) => Answer::NotSerializable,
    }
}
