//! Framework-agnostic request handling: one request path that every HTTP
//! adapter runs, so the status policy cannot drift between frameworks.
//!
//! The flow for one request is fixed:
//!
//! 1. source address allowlist, when configured ([`SourceAllowlist`]) → `403`;
//! 2. method must be `POST` → `405`;
//! 3. `Content-Encoding` must be absent or `identity` → `415`;
//! 4. `Content-Length` at most [`ReceiverConfig::body_limit`] bytes → `413`;
//! 5. `X-Retell-Signature` present once, well formed, its timestamp within
//!    the window → `401`: all of this before the body is read;
//! 6. the body, at most the limit (`413`), with at most
//!    [`ReceiverConfig::body_read_timeout`] between chunks (`408`, adapters
//!    only);
//! 7. the signature verified over the raw bytes → `401`, with one identical
//!    response whatever the reason;
//! 8. only now is the body looked at: whole-body UTF-8, a JSON object, then the
//!    typed models → `400` (an object the models cannot read goes to
//!    [`WebhookHandler::on_unparsed`] first; a Retell event sent to a
//!    function route is refused, [`BadBody::EventOnFunctionRoute`], rather
//!    than answered as a function call and lost);
//! 9. the matching [`WebhookHandler`] method runs, with panics caught and the
//!    deadline applied → `500` / `503`, or `204` (events) / `200` with the
//!    answer (inbound webhook, custom functions).
//!
//! Steps 1 to 5 are checked once, into one value (the parsed signature and
//! the instant of arrival, by the [`Verifier`](crate::Verifier)'s clock:
//! the one clock of the receiver and its dedupe store) that the later steps
//! receive; no step parses the header or reads the clock again.
//!
//! The adapters and the tower service take an in-flight place
//! ([`ReceiverConfig::max_in_flight`]) only after step 7, so requests that
//! cannot prove their origin never hold one, and count the deadline from the
//! request's arrival: the answer never comes later than
//! [`ReceiverConfig::handler_deadline`] after the request arrived.
//!
//! | status | when | retried by Retell |
//! |---|---|---|
//! | `204` | event handled, unknown event acknowledged, `on_unparsed` accepted, duplicate of a handled event ([dedupe](crate::dedupe) on) | no |
//! | `200` | inbound webhook or custom function answered (JSON or text body) | no |
//! | `400` | verified body not UTF-8, not JSON, not an object, or not readable by the models; body not fully received | yes |
//! | `408` | no bytes of the body for [`ReceiverConfig::body_read_timeout`] (adapters; the connection is closed) | yes |
//! | `401` | any signature failure: one identical response, the reason only in the [`Outcome`] | yes |
//! | `403` | source address not in the opt-in [`SourceAllowlist`] | yes |
//! | `405` | method other than `POST` (with `Allow: POST`) | yes |
//! | `413` | body or `Content-Length` over [`ReceiverConfig::body_limit`] | yes |
//! | `409` | the same event is being handled by another request ([dedupe](crate::dedupe) on) | yes |
//! | `415` | `Content-Encoding` other than `identity` | yes |
//! | `500` | handler error or panic; adapter without a verifier | yes |
//! | `503` | deadline exceeded (the handler, or in the adapters the wait for an in-flight place or body budget); dedupe store failed | yes |
//!
//! For a stack the crate has no adapter for, serve the tower service
//! (`service::WebhookService`, feature `tower`), or, with the whole body at
//! hand, call [`Receiver::dispatch`]: it runs the same steps, needs no
//! runtime (it takes a function that makes the deadline's timer), and
//! returns a [`Dispatched`]: the [`WebhookResponse`] to send and an
//! [`Outcome`] to log (status, reason, event name, call id; never a body, a
//! header value or a key).
//!
//! ```
//! use retell_webhooks::{receiver::RawRequest, Receiver, ReceiverConfig, RouteKind, WebhookHandler};
//! use retell_webhooks::{sign, CallEvent, Verifier};
//!
//! struct Handler;
//!
//! impl WebhookHandler for Handler {
//!     type Error = std::convert::Infallible;
//!
//!     async fn on_call_ended(&self, event: CallEvent) -> Result<(), Self::Error> {
//!         let _ = event; // store the transcript, enqueue work, ...
//!         Ok(())
//!     }
//! }
//!
//! # block_on(async {
//! let now = 1_785_423_600_000;
//! // The verifier's clock is the receiver's (the system clock unless given).
//! let verifier = Verifier::new("key_test")?.with_clock(move || now);
//! let receiver = Receiver::new(verifier, ReceiverConfig::new());
//! let body = br#"{"event":"call_ended","call":{"call_id":"call_1"}}"#;
//! let header = sign(body, "key_test", now);
//! let request = RawRequest::post(body).signature_values([header.as_bytes()]);
//! // On tokio, pass `tokio::time::sleep` as the timer.
//! let done = receiver
//!     .dispatch(&Handler, RouteKind::Events, &request, |_| std::future::pending())
//!     .await;
//! assert_eq!(done.response.status(), 204);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })
//! # .unwrap();
//! # fn block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     use std::task::{Context, Poll, Waker};
//! #     let mut f = std::pin::pin!(f);
//! #     let mut cx = Context::from_waker(Waker::noop());
//! #     loop { if let Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; } }
//! # }
//! ```

// For the links of the docs above.
#[allow(unused_imports)]
use crate::{Receiver, ReceiverConfig, WebhookHandler};

mod body;
mod claim;
pub(crate) mod config;
#[cfg(any(feature = "tower", feature = "actix"))]
mod flow;
pub(crate) mod guard;
pub(crate) mod handler;
mod head;
#[cfg(any(feature = "tower", feature = "actix"))]
mod holders;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
mod http;
pub(crate) mod outcome;
mod permits;
mod pipeline;
#[cfg(any(feature = "tower", feature = "actix"))]
mod reading;
mod replay;
mod request;
pub(crate) mod state;
#[cfg(feature = "inbox")]
mod store;
#[cfg(test)]
mod tests;
mod tools;
mod trace;
mod work;

pub use crate::allowlist::{
    IpRange, IpRangeParseError, RETELL_SOURCE_IP, SourceAllowlist, SourceRejection,
};
pub use body::BadBody;
#[cfg(test)]
pub(crate) use body::json_parses;
pub use config::{
    DEFAULT_BODY_LIMIT, DEFAULT_BODY_MIN_RATE, DEFAULT_BODY_RATE_GRACE, DEFAULT_BODY_READ_TIMEOUT,
    DEFAULT_BODY_TIME_LIMIT, DEFAULT_FUNCTION_DEADLINE, DEFAULT_HANDLER_DEADLINE,
    DEFAULT_MAX_IN_FLIGHT,
};
#[cfg(any(feature = "axum", feature = "actix"))]
pub(crate) use flow::BodyCheck;
#[cfg(any(feature = "tower", feature = "actix"))]
pub(crate) use flow::BodyChunks;
pub use handler::Fallback;
pub use outcome::{Dispatched, Outcome, Reason, UNAUTHORIZED_BODY, WebhookResponse};
pub use permits::Permit;
pub use request::RawRequest;
pub use state::{MISMATCH_ALERT_INTERVAL_MS, MISMATCH_ALERT_THRESHOLD};
pub use tools::ToolRouter;
