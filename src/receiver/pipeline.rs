//! The entry points: precheck, authenticate, dispatch.

use super::APPLICATION_JSON;
#[cfg(test)]
use super::body::JSON_PARSES;
use super::body::check_json_object;
use super::config::{ReceiverConfig, RouteKind};
use super::guard::{CatchUnwind, Panicked, Raced, race};
use super::handler::{Fallback, WebhookHandler};
use super::outcome::{BadBody, Dispatched, Reason, WebhookResponse};
use super::request::{RawRequest, SignatureHeader};
use super::state::Receiver;
use super::trace::{record_ids, traced};
use crate::dedupe::{Begin, DedupeKey, DedupeStore, Ticket};
use crate::{
    FunctionCall, FunctionMethod, FunctionRequest, InboundResponse, Incoming, ParseError,
    Signature, Verifier, VerifyError, WebhookEvent,
};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

// ---------------------------------------------------------------------------
// Entry points
// ---------------------------------------------------------------------------

impl Receiver {
    /// Checks everything that does not need the body: configuration (`500`),
    /// source allowlist (`403`), method (`405`), `Content-Encoding` (`415`),
    /// `Content-Length` against the limit (`413`), and the signature header:
    /// present once, well formed, timestamp within the window (`401`). Returns
    /// `Some` with the rejection, `None` to go on.
    ///
    /// Adapters call it before reading the body; [`Receiver::dispatch`] runs it
    /// again, so calling it is an optimisation, never a requirement.
    #[must_use]
    pub fn precheck(&self, route: RouteKind, request: &RawRequest<'_>) -> Option<Dispatched> {
        let config = self.config();
        if !self.is_configured() {
            return Some(Dispatched::from_reason(route, Reason::NotConfigured));
        }
        if let Some(allowlist) = &config.source_allowlist
            && let Err(why) = allowlist.check(request.peer, request.forwarded_for.iter().copied())
        {
            return Some(Dispatched::from_reason(route, Reason::Forbidden(why)));
        }
        let allowed = match route {
            RouteKind::Events => request.method == "POST",
            RouteKind::Function => FunctionMethod::parse(request.method).is_some(),
        };
        if !allowed {
            return Some(Dispatched::from_reason(route, Reason::MethodNotAllowed));
        }
        if request.encoded {
            return Some(Dispatched::from_reason(route, Reason::UnsupportedEncoding));
        }
        let limit = config.body_limit;
        let declared_over = request
            .content_length
            .is_some_and(|len| u64::try_from(limit).is_ok_and(|limit| len > limit));
        if declared_over {
            return Some(Dispatched::from_reason(
                route,
                Reason::PayloadTooLarge { limit },
            ));
        }
        // A missing, malformed or stale signature is refused before the body
        // is read, so such a request never waits for (or holds) anything.
        if let Err(why) = self.check_signature_head(request) {
            return Some(Dispatched::from_reason(route, Reason::Unauthorized(why)));
        }
        None
    }

    /// The part of the signature check that needs no body: one header, well
    /// formed, its timestamp within the window.
    fn check_signature_head(&self, request: &RawRequest<'_>) -> Result<(), VerifyError> {
        let Some(verifier) = self.verifier() else {
            return Ok(());
        };
        let header = match request.signature {
            SignatureHeader::Absent => return Err(VerifyError::MissingSignature),
            SignatureHeader::Several => return Err(VerifyError::DuplicateSignature),
            SignatureHeader::One(value) => value,
        };
        let signature = Signature::parse_bytes(header)?;
        verifier.check_window(signature.timestamp_ms(), self.config().now_ms()?)
    }

    /// Runs every check up to and including "the verified body is a JSON
    /// object": the steps of the [module docs](crate::receiver) except the
    /// typed parse. `Ok(())` means the body is authentic and safe to parse;
    /// `Err` carries the rejection to send (boxed: it is the cold path).
    ///
    /// The adapters' raw-body extractors use it, so they answer like
    /// [`Receiver::dispatch`], which skips the separate JSON pass: its typed
    /// parse rejects the same bodies ([`BadBody::from_parse_error`]), so the
    /// body is parsed once.
    pub fn authenticate(
        &self,
        route: RouteKind,
        request: &RawRequest<'_>,
    ) -> Result<(), Box<Dispatched>> {
        self.authenticate_signature(route, request)?;
        // The body is authentic from here on; only now is it parsed.
        check_json_object(request.body)
            .map_err(|why| Box::new(Dispatched::from_reason(route, Reason::BadRequest(why))))
    }

    /// [`Receiver::authenticate`] without the JSON check: prechecks, body size
    /// and signature.
    pub(crate) fn authenticate_signature(
        &self,
        route: RouteKind,
        request: &RawRequest<'_>,
    ) -> Result<(), Box<Dispatched>> {
        if let Some(rejected) = self.precheck(route, request) {
            return Err(Box::new(rejected));
        }
        let config = self.config();
        let reject = |reason| Box::new(Dispatched::from_reason(route, reason));
        let limit = config.body_limit;
        if request.body.len() > limit {
            return Err(reject(Reason::PayloadTooLarge { limit }));
        }
        let Some(verifier) = self.verifier() else {
            return Err(reject(Reason::NotConfigured));
        };
        let verified = verify(verifier, config, request);
        let alert = self
            .mismatches()
            .record(&verified, config.now_ms().unwrap_or(0));
        if let Err(why) = verified {
            let mut rejected = reject(Reason::Unauthorized(why));
            rejected.outcome.key_alert = alert;
            return Err(rejected);
        }
        Ok(())
    }

    /// Handles one request from start to finish; see the [module
    /// docs](crate::receiver) for the order of checks and the status of each
    /// outcome.
    ///
    /// `sleep` makes the handler deadline's timer: it is called with
    /// [`ReceiverConfig::handler_deadline`] when the handler starts (pass
    /// `tokio::time::sleep` on tokio, or `|_| std::future::pending()` for no
    /// deadline). When the timer completes first, the handler future is
    /// dropped and the answer is `503`. The same setting is the deduplication
    /// lease, so a claim never outlives the attempt that took it.
    ///
    /// Never panics; a panicking handler is caught and answered with `500`.
    pub async fn dispatch<H, S, F>(
        &self,
        handler: &H,
        route: RouteKind,
        request: &RawRequest<'_>,
        sleep: S,
    ) -> Dispatched
    where
        H: WebhookHandler + ?Sized,
        S: FnOnce(Duration) -> F + Send,
        F: Future<Output = ()> + Send,
    {
        let config = self.config();
        let deadline_after = config.deadline_of(route);
        let deadline = async move { sleep(deadline_after).await };
        traced(
            route,
            dispatch_verified(self, handler, route, request, deadline),
        )
        .await
    }
}

async fn dispatch_verified<H, D>(
    receiver: &Receiver,
    handler: &H,
    route: RouteKind,
    request: &RawRequest<'_>,
    deadline: D,
) -> Dispatched
where
    H: WebhookHandler + ?Sized,
    D: Future<Output = ()> + Send,
{
    if let Err(rejected) = receiver.authenticate_signature(route, request) {
        return *rejected;
    }
    handle_verified(receiver, handler, route, request, deadline).await
}

/// Parses a body whose signature was verified, claims its dedupe key and runs
/// the handler until `deadline`.
pub(crate) async fn handle_verified<H, D>(
    receiver: &Receiver,
    handler: &H,
    route: RouteKind,
    request: &RawRequest<'_>,
    deadline: D,
) -> Dispatched
where
    H: WebhookHandler + ?Sized,
    D: Future<Output = ()> + Send,
{
    let config = receiver.config();
    // The body is authentic from here on; only now is it parsed, once.
    let body = request.body;
    #[cfg(test)]
    JSON_PARSES.with(|n| n.set(n.get() + 1));
    let parsed = match route {
        RouteKind::Events => Incoming::from_slice(body).map(Work::Incoming),
        RouteKind::Function => function_request(request).map(Work::Function),
    };
    let (work, ids) = match parsed {
        Ok(work) => {
            let ids = work.ids();
            (work, ids)
        }
        Err(error) => {
            let ids = Ids::of_error(&error);
            match BadBody::from_parse_error(route, body, error) {
                // Valid JSON object that the models cannot read: give the
                // handler's raw fallback a chance before refusing it.
                BadBody::Invalid {
                    route: RouteKind::Events,
                    error,
                } => (Work::Unparsed(error), ids),
                why => {
                    return Dispatched::from_reason(route, Reason::BadRequest(why)).with_ids(&ids);
                }
            }
        }
    };
    record_ids(&ids);
    let claim = match claim(config, &work, body).await {
        Ok(claim) => claim,
        Err(reason) => return Dispatched::from_reason(route, reason).with_ids(&ids),
    };
    // If this future is dropped from here on (the client went away), the key
    // is handed back at once instead of blocking retries until its lease ends.
    let mut abandon = Abandon { claim };
    // The handler's error is rendered (and dropped) inside `CatchUnwind` too:
    // its `Display` is handler code as well.
    let run = CatchUnwind::new(async move {
        run_handler(handler, work, body)
            .await
            .map_err(|error| error.to_string())
    });
    let result = match race(run, deadline).await {
        Raced::Deadline => Err(Reason::DeadlineExceeded),
        Raced::Done(Err(Panicked)) => Err(Reason::HandlerPanicked),
        Raced::Done(Ok(Err(message))) => Err(Reason::HandlerFailed(message)),
        Raced::Done(Ok(Ok(answer))) => Ok(answer),
    };
    let done = match result {
        Err(reason) => Dispatched::from_reason(route, reason),
        Ok(Answer::Ack(reason)) => Dispatched::from_reason(route, reason),
        Ok(Answer::Declined(error)) => {
            Dispatched::from_reason(route, Reason::BadRequest(BadBody::Invalid { route, error }))
        }
        Ok(Answer::NotSerializable) => {
            Dispatched::from_reason(route, Reason::AnswerNotSerializable)
        }
        Ok(Answer::Body {
            bytes,
            content_type,
        }) => Dispatched::new(
            route,
            Reason::Answered,
            WebhookResponse {
                status: 200,
                content_type: Some(content_type),
                allow: None,
                body: bytes,
            },
        ),
    };
    if let Some((store, key, ticket)) = claim {
        // A store failure (or panic) here only weakens deduplication (a later
        // delivery is processed again); the answer stands.
        let success = done.outcome.is_success();
        let _ = CatchUnwind::new(async {
            if success {
                store.finish(&key, ticket).await
            } else {
                store.release(&key, ticket).await
            }
        })
        .await;
    }
    abandon.disarm();
    done.with_ids(&ids)
}

/// Calls [`DedupeStore::abandon`] if dropped before [`disarm`](Self::disarm).
struct Abandon<'a> {
    claim: Claim<'a>,
}

impl Abandon<'_> {
    fn disarm(&mut self) {
        self.claim = None;
    }
}

impl Drop for Abandon<'_> {
    fn drop(&mut self) {
        if let Some((store, key, ticket)) = self.claim.take() {
            // Store code running in a destructor: a panic must not escape.
            let _ = catch_unwind(AssertUnwindSafe(|| store.abandon(&key, ticket)));
        }
    }
}

pub(crate) type Claim<'a> = Option<(&'a Arc<dyn DedupeStore>, DedupeKey, Ticket)>;

/// With deduplication on, claims the event's key: `Ok(Some)` to process it,
/// `Ok(None)` when deduplication does not apply, `Err` with the answer for a
/// duplicate or a store failure.
pub(crate) async fn claim<'a>(
    config: &'a ReceiverConfig,
    work: &Work,
    body: &[u8],
) -> Result<Claim<'a>, Reason> {
    let Some(store) = &config.dedupe else {
        return Ok(None);
    };
    let key = match work {
        Work::Incoming(incoming) => DedupeKey::for_incoming(incoming, body),
        Work::Unparsed(_) => Some(DedupeKey::of_body(body)),
        Work::Function(_) => None,
    };
    let Some(key) = key else {
        return Ok(None);
    };
    let lease = config
        .handler_deadline
        .saturating_add(Duration::from_secs(1));
    // The store is user code too: a panic in it is a store failure (`503`).
    let begun = CatchUnwind::new(async { store.begin(&key, lease).await }).await;
    match begun {
        Ok(Ok(Begin::Fresh(ticket))) => Ok(Some((store, key, ticket))),
        Ok(Ok(Begin::InFlight)) => Err(Reason::InFlight),
        Ok(Ok(Begin::Done)) => Err(Reason::Duplicate),
        Ok(Err(error)) => Err(Reason::DedupeFailed(error.0)),
        Err(Panicked) => Err(Reason::DedupeFailed("the store panicked".to_owned())),
    }
}

pub(crate) fn verify(
    verifier: &Verifier,
    config: &ReceiverConfig,
    request: &RawRequest<'_>,
) -> Result<(), VerifyError> {
    let header = match request.signature {
        SignatureHeader::Absent => return Err(VerifyError::MissingSignature),
        SignatureHeader::Several => return Err(VerifyError::DuplicateSignature),
        SignatureHeader::One(value) => value,
    };
    let now_ms = config.now_ms()?;
    verifier.verify_bytes_at(request.body, header, now_ms)
}

#[derive(Default)]
pub(crate) struct Ids {
    pub(crate) event: Option<String>,
    pub(crate) call_id: Option<String>,
    pub(crate) chat_id: Option<String>,
    pub(crate) untyped: usize,
}

impl Ids {
    pub(crate) fn of_error(error: &ParseError) -> Self {
        Self {
            event: error.event().map(str::to_owned),
            call_id: error.call_id().map(str::to_owned),
            chat_id: error.chat_id().map(str::to_owned),
            untyped: 0,
        }
    }

    pub(crate) fn of_incoming(incoming: &Incoming) -> Self {
        match incoming {
            Incoming::Event(event) => Self {
                event: Some(event.event_name().to_owned()),
                call_id: event.call_id().map(str::to_owned),
                chat_id: event.chat_id().map(str::to_owned),
                untyped: event.untyped_count(),
            },
            Incoming::CallInbound(request) => Self {
                event: Some("call_inbound".to_owned()),
                call_id: request.call_inbound.call_id.clone(),
                untyped: request.untyped_paths().len(),
                ..Self::default()
            },
            Incoming::ChatInbound(request) => Self {
                event: Some("chat_inbound".to_owned()),
                chat_id: request.chat_inbound.chat_id.clone(),
                untyped: request.untyped_paths().len(),
                ..Self::default()
            },
        }
    }
}

pub(crate) enum Work {
    Incoming(Incoming),
    Unparsed(ParseError),
    Function(FunctionRequest),
}

impl Work {
    pub(crate) fn ids(&self) -> Ids {
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

pub(crate) enum Answer {
    Ack(Reason),
    Declined(ParseError),
    Body {
        bytes: Vec<u8>,
        content_type: &'static str,
    },
    NotSerializable,
}

pub(crate) async fn run_handler<H>(handler: &H, work: Work, body: &[u8]) -> Result<Answer, H::Error>
where
    H: WebhookHandler + ?Sized,
{
    let handled = Answer::Ack(Reason::Handled);
    let event = match work {
        Work::Incoming(Incoming::Event(event)) => event,
        Work::Incoming(Incoming::CallInbound(request)) => {
            let answer = handler.on_call_inbound(request).await?;
            return Ok(json_answer(&answer));
        }
        Work::Incoming(Incoming::ChatInbound(request)) => {
            let answer = handler.on_chat_inbound(request).await?;
            return Ok(json_answer(&answer));
        }
        Work::Function(call) => {
            let answer = handler.on_function_call(call).await?;
            return Ok(Answer::Body {
                bytes: answer.to_body(),
                content_type: answer.content_type(),
            });
        }
        Work::Unparsed(error) => {
            return Ok(match handler.on_unparsed(body, &error).await? {
                Fallback::Accepted => Answer::Ack(Reason::FallbackAccepted),
                Fallback::Declined => Answer::Declined(error),
            });
        }
    };
    match event {
        WebhookEvent::CallStarted(e) => handler.on_call_started(e).await?,
        WebhookEvent::CallEnded(e) => handler.on_call_ended(e).await?,
        WebhookEvent::CallAnalyzed(e) => handler.on_call_analyzed(e).await?,
        WebhookEvent::TranscriptUpdated(e) => handler.on_transcript_updated(e).await?,
        WebhookEvent::TransferStarted(e) => handler.on_transfer_started(e).await?,
        WebhookEvent::TransferBridged(e) => handler.on_transfer_bridged(e).await?,
        WebhookEvent::TransferCancelled(e) => handler.on_transfer_cancelled(e).await?,
        WebhookEvent::TransferEnded(e) => handler.on_transfer_ended(e).await?,
        WebhookEvent::ChatStarted(e) => handler.on_chat_started(e).await?,
        WebhookEvent::ChatEnded(e) => handler.on_chat_ended(e).await?,
        WebhookEvent::ChatAnalyzed(e) => handler.on_chat_analyzed(e).await?,
        WebhookEvent::Unknown(e) => {
            handler.on_unknown(e).await?;
            return Ok(Answer::Ack(Reason::UnknownEvent));
        }
    }
    Ok(handled)
}

pub(crate) fn json_answer(answer: &InboundResponse) -> Answer {
    match serde_json::to_vec(answer) {
        Ok(bytes) => Answer::Body {
            bytes,
            content_type: APPLICATION_JSON,
        },
        Err(_) => Answer::NotSerializable,
    }
}

/// The function request: method, query and the call, if the body has one
/// (`GET` and `DELETE` tools send an empty body).
pub(crate) fn function_request(request: &RawRequest<'_>) -> Result<FunctionRequest, ParseError> {
    let method = FunctionMethod::parse(request.method).unwrap_or(FunctionMethod::Post);
    let call = if request.body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        Some(FunctionCall::from_slice(request.body)?)
    };
    Ok(FunctionRequest::new(method, request.query, call))
}
