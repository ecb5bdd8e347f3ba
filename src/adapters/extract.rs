//! The extractors and their rejection, shared by the axum and actix-web
//! adapters; each adapter only implements its framework's extractor trait.

use std::fmt;

use bytes::Bytes;

use crate::receiver::{BadBody, BodyCheck, BodyChunks, Dispatched, Outcome, RawRequest, Reason};
use crate::{Incoming, ParseError, WebhookEvent};
use crate::{Receiver, RouteKind};

/// Why an extractor refused a request. Its response is exactly what the
/// ready-made router or service would send; [`outcome`](Self::outcome) says
/// why, for logs (never a body, a header value or a key).
///
/// In axum it is an `IntoResponse`, in actix-web a `ResponseError`.
#[derive(Debug)]
pub struct WebhookRejection(Box<Dispatched>);

impl WebhookRejection {
    /// Status, reason, event name and call id (never a body or header value).
    #[must_use]
    pub fn outcome(&self) -> &Outcome {
        &self.0.outcome
    }

    /// The status that will be sent.
    #[must_use]
    pub fn status(&self) -> u16 {
        self.0.response.status()
    }

    /// The response and outcome to send.
    #[must_use]
    pub fn into_dispatched(self) -> Dispatched {
        *self.0
    }

    #[cfg(feature = "actix")]
    pub(super) fn dispatched(&self) -> &Dispatched {
        &self.0
    }
}

impl fmt::Display for WebhookRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.outcome.fmt(f)
    }
}

impl std::error::Error for WebhookRejection {}

impl From<Dispatched> for WebhookRejection {
    fn from(done: Dispatched) -> Self {
        Self(Box::new(done))
    }
}

impl From<Box<Dispatched>> for WebhookRejection {
    fn from(done: Box<Dispatched>) -> Self {
        Self(done)
    }
}

/// The raw body of a verified request: a JSON object, not parsed further (to
/// store or queue as received, and parse later).
///
/// Like every extractor, it verifies and nothing more: it does not
/// deduplicate, apply the handler deadline or catch panics, and your handler
/// chooses the status (Retell retries anything but a `2xx`). Use the
/// ready-made router or service for those.
///
/// It needs a [`Receiver`]: in axum reachable from the router state
/// (`FromRef`), in actix-web in `app_data` (plain or as `web::Data`).
#[derive(Debug, Clone)]
pub struct VerifiedBody(pub Bytes);

/// A verified, typed event from the event webhook.
///
/// Verifies and parses, nothing more (see [`VerifiedBody`] for what
/// extractors leave to you and how they find the [`Receiver`]); examples in
/// the [axum](crate::adapters::axum#extractors) and
/// [actix-web](crate::adapters::actix#extractors) adapter docs.
#[derive(Debug, Clone)]
pub struct VerifiedEvent(pub WebhookEvent);

/// A verified request on the event webhook URL: an event, or an inbound
/// call/SMS webhook that expects a JSON answer
/// ([`InboundResponse`](crate::InboundResponse)).
///
/// Verifies and parses, nothing more (see [`VerifiedBody`]).
#[derive(Debug, Clone)]
pub struct VerifiedIncoming(pub Incoming);

/// What each extractor checks and builds from the verified bytes.
pub(super) trait Extract: Sized {
    const CHECK: BodyCheck;

    fn from_verified(bytes: Bytes) -> Result<Self, (Bytes, ParseError)>;
}

impl Extract for VerifiedBody {
    const CHECK: BodyCheck = BodyCheck::JsonObject;

    fn from_verified(bytes: Bytes) -> Result<Self, (Bytes, ParseError)> {
        Ok(Self(bytes))
    }
}

impl Extract for VerifiedEvent {
    const CHECK: BodyCheck = BodyCheck::SignatureOnly;

    fn from_verified(bytes: Bytes) -> Result<Self, (Bytes, ParseError)> {
        match WebhookEvent::from_slice(&bytes) {
            Ok(event) => Ok(Self(event)),
            Err(error) => Err((bytes, error)),
        }
    }
}

impl Extract for VerifiedIncoming {
    const CHECK: BodyCheck = BodyCheck::SignatureOnly;

    fn from_verified(bytes: Bytes) -> Result<Self, (Bytes, ParseError)> {
        match Incoming::from_slice(&bytes) {
            Ok(incoming) => Ok(Self(incoming)),
            Err(error) => Err((bytes, error)),
        }
    }
}

/// The extractors' flow: find the receiver, read and verify the body, build
/// the extracted value.
pub(super) async fn extract<T, B>(
    receiver: Option<&Receiver>,
    head: &RawRequest<'_>,
    body: &mut B,
) -> Result<T, WebhookRejection>
where
    T: Extract,
    B: BodyChunks + ?Sized,
{
    let route = RouteKind::Events;
    let Some(receiver) = receiver else {
        return Err(Dispatched::from_reason(route, Reason::NotConfigured).into());
    };
    let bytes = receiver
        .receive_verified(route, head, body, T::CHECK)
        .await?;
    T::from_verified(bytes).map_err(|(bytes, error)| {
        let why = BadBody::from_parse_error(route, &bytes, error);
        Dispatched::from_reason(route, Reason::BadRequest(why)).into()
    })
}
