//! Framework-agnostic request handling: one entry point that every HTTP adapter
//! calls, so the status policy cannot drift between frameworks.
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
//!    [`WebhookHandler::on_unparsed`] first);
//! 9. the matching [`WebhookHandler`] method runs, with panics caught and the
//!    deadline applied → `500` / `503`, or `204` (events) / `200` with the
//!    answer (inbound webhook, custom functions).
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
//! [`Receiver::dispatch`] returns a [`Dispatched`]: the [`WebhookResponse`] to
//! send and an [`Outcome`] to log (status, reason, event name, call id; never a
//! body, a header value or a key). Adapters call [`Receiver::precheck`] before
//! reading the body, read it within the limit, then call
//! [`Receiver::dispatch`] with a function that makes the deadline's timer (the
//! core needs no runtime).
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
//! let config = ReceiverConfig::new().with_clock(move || now);
//! let receiver = Receiver::new(Verifier::new("key_test")?, config);
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

use std::time::Duration;

/// Default body limit: 8 MiB (8 388 608 bytes).
///
/// A two-hour `call_analyzed` event with the transcript and its three word-timed
/// copies is about 3 MiB, more than axum's 2 MiB and actix-web's 256 KiB
/// defaults, which would answer `413` and lose the event after Retell's retries.
/// 8 MiB leaves room for growth while bounding memory per request.
pub const DEFAULT_BODY_LIMIT: usize = 8 * 1024 * 1024;

/// Default handler deadline: 9 seconds.
///
/// Retell waits 10 seconds (the agent's `webhook_timeout_ms` default) before it
/// counts a delivery as failed and retries it. Answering `503` a second earlier
/// means the retry never races a handler that is still running.
pub const DEFAULT_HANDLER_DEADLINE: Duration = Duration::from_secs(9);

/// Default deadline of custom functions: 120 seconds, Retell's default tool
/// `timeout_ms`.
pub const DEFAULT_FUNCTION_DEADLINE: Duration = Duration::from_secs(120);

/// Default cap on verified requests an adapter handles at once: 32.
///
/// It also sizes the budget of body bytes buffered at once: 32 × 8 MiB =
/// 256 MiB by default. Requests over the cap wait (within their deadline)
/// rather than fail: Retell would only retry them.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 32;

/// Default time the adapters wait for the next bytes of a body: 5 seconds.
///
/// Retell sends its largest bodies (a few MiB) in well under a second; a
/// client that sends nothing for 5 seconds is answered `408` and cut off.
/// Counted between chunks, so a delivery delayed by a busy server is not cut
/// off for the server's own slowness.
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(5);

const TEXT_PLAIN: &str = "text/plain; charset=utf-8";
const APPLICATION_JSON: &str = "application/json";

/// Body of every `401` response, whatever the verification failure was.
pub const UNAUTHORIZED_BODY: &[u8] = b"invalid or missing signature\n";

mod body;
pub(crate) mod config;
#[cfg(any(feature = "tower", feature = "actix"))]
mod flow;
mod guard;
pub(crate) mod handler;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
mod http;
mod outcome;
mod permits;
mod pipeline;
mod request;
pub(crate) mod state;
#[cfg(test)]
mod tests;
mod tools;
mod trace;

pub use crate::allowlist::*;
#[allow(unused_imports)]
pub(crate) use body::*;
pub use config::{MISMATCH_ALERT_INTERVAL_MS, MISMATCH_ALERT_THRESHOLD};
// Public at the crate root.
#[allow(unused_imports)]
pub(crate) use config::{ReceiverConfig, RouteKind};
#[cfg(any(feature = "axum", feature = "actix"))]
pub(crate) use flow::BodyCheck;
#[cfg(any(feature = "tower", feature = "actix"))]
pub(crate) use flow::BodyChunks;
#[allow(unused_imports)]
pub(crate) use guard::*;
pub use handler::Fallback;
pub(crate) use handler::WebhookHandler;
pub use outcome::*;
pub use permits::Permit;
#[allow(unused_imports)]
pub(crate) use pipeline::*;
pub use request::*;
pub(crate) use state::Receiver;
pub use tools::ToolRouter;
