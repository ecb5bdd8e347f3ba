//! # retell-webhooks
//!
//! Receive [Retell AI](https://www.retellai.com) webhooks in Rust, safely.
//!
//! Retell POSTs a signed JSON event to your URL when a call or chat starts, ends,
//! is analyzed, is transferred or updates its transcript, and sends signed
//! requests that expect an answer (the inbound call/SMS webhook, custom
//! functions). This crate:
//!
//! * verifies the `X-Retell-Signature` header over the **raw body bytes**, with a
//!   strict header grammar, a two-sided replay window, several keys for rotation
//!   and a constant-time digest comparison ([`verify`], [`Verifier`]);
//!
//! ```
//! use retell_webhooks::{sign, Verifier};
//!
//! // At start-up: the API key with the "webhook" badge in the Retell dashboard.
//! let verifier = Verifier::new("key_9f3c2e1d7a8b4c6e0f5a2b3c")?;
//!
//! // Per request: the exact body bytes and the `X-Retell-Signature` header value.
//! let body = br#"{"event":"call_ended","call":{"call_id":"call_1"}}"#;
//! let header = sign(body, "key_9f3c2e1d7a8b4c6e0f5a2b3c", 1_785_423_600_000);
//! verifier.verify_at(body, &header, 1_785_423_600_000)?; // `verify` uses the system clock
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! * parses verified bodies into typed models ([`WebhookEvent`], [`Incoming`],
//!   [`Call`], [`Chat`], [`FunctionCall`]) that never lose an event: every field
//!   but the ids is optional, unknown events, enum values, transcript kinds and
//!   fields are kept, explicit `null`s are written back, and a field of an
//!   unexpected type falls back to its raw value instead of failing the body
//!   (see [the rules](crate#models-the-three-rules) and `untyped_paths()` for what was not
//!   typed). Only broken structure is a [`ParseError`], which names the JSON
//!   path but never a value;
//! * builds the answers Retell expects ([`InboundResponse`], [`FunctionResponse`]);
//! * runs each verified request through one [`WebhookHandler`]
//!   method with a fixed status policy shared by every framework adapter: `204` /
//!   `200` with the answer, one identical `401` for any signature failure, `413`
//!   over 8 MiB, `500` on a handler error or panic, `503` past the deadline
//!   ([`receiver`]; the axum router is `adapters::axum`, feature `axum`; the
//!   actix-web service is `adapters::actix`, feature `actix`);
//! * ships realistic sample bodies of every request Retell sends, for your own
//!   tests (`samples`, feature `samples`), and a command-line tool (feature
//!   `cli`) that parses bodies, signs and checks signatures, runs a local
//!   receiver (`retell-webhooks listen`) and sends it signed samples
//!   (`retell-webhooks send`, `retell-webhooks demo`) without a public URL;
//! * stores events durably before answering and runs the handler on them with
//!   retries for hours (`inbox`, features `sqlite` and `redis`), and rebuilds
//!   from Retell's API the events it could not deliver during an outage
//!   (`backfill` with `api::Client`, feature `api`);
//! * optionally processes each event once although Retell redelivers it
//!   ([`dedupe`]: `409` while a copy is in flight, `204` for a copy of a handled
//!   event, failures release the event for Retell's retry), with a bounded
//!   in-memory store or your own shared one.
//!
//! ```
//! use retell_webhooks::{sign, Verifier, WebhookEvent};
//!
//! let verifier = Verifier::new("key_9f3c2e1d7a8b4c6e0f5a2b3c")?;
//! let body = br#"{"event":"call_analyzed","call":{"call_id":"call_1",
//!     "call_analysis":{"user_sentiment":"Positive","call_successful":true}}}"#;
//! let header = sign(body, "key_9f3c2e1d7a8b4c6e0f5a2b3c", 1_785_423_600_000);
//! match verifier.verify_and_parse_at(body, &header, 1_785_423_600_000)? {
//!     WebhookEvent::CallAnalyzed(analyzed) => {
//!         let analysis = analyzed.call.call_analysis.as_ref();
//!         assert_eq!(analysis.and_then(|a| a.call_successful), Some(true));
//!     }
//!     other => println!("ignoring {}", other.event_name()),
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![doc = include_str!("../docs/signature.md")]
#![doc = include_str!("../docs/models.md")]
#![doc = include_str!("../docs/parsing.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::unreachable,
        clippy::todo,
        clippy::unimplemented
    )
)]

#[cfg(any(feature = "axum", feature = "actix"))]
pub mod adapters;
mod allowlist;
#[cfg(feature = "api")]
#[cfg_attr(docsrs, doc(cfg(feature = "api")))]
pub mod api;
#[cfg(all(feature = "api", feature = "inbox"))]
#[cfg_attr(docsrs, doc(cfg(all(feature = "api", feature = "inbox"))))]
pub mod backfill;
pub mod dedupe;
mod error;
mod events;
#[cfg(feature = "inbox")]
#[cfg_attr(docsrs, doc(cfg(feature = "inbox")))]
pub mod inbox;
pub mod models;
pub mod receiver;
#[cfg(feature = "redis")]
mod redis_conn;
#[cfg(feature = "samples")]
#[cfg_attr(docsrs, doc(cfg(feature = "samples")))]
pub mod samples;
#[cfg(feature = "server")]
#[cfg_attr(docsrs, doc(cfg(feature = "server")))]
pub mod server;
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub mod service;
mod signature;
mod telemetry;
#[cfg(any(feature = "redis", feature = "inbox", feature = "api"))]
mod tokens;
mod verified;

pub use error::{Error, ParseError, ParseErrorKind};
pub use events::{
    CallEvent, ChatEvent, EventKind, INBOUND_EVENTS, Incoming, KNOWN_EVENTS, Recovered,
    TranscriptUpdatedEvent, TransferEvent, UnknownEvent, WebhookEvent,
};
pub use models::call::Call;
pub use models::chat::Chat;
pub use models::function::{FunctionCall, FunctionMethod, FunctionRequest, FunctionResponse};
pub use models::inbound::{InboundCallRequest, InboundChatRequest, InboundResponse};
pub use receiver::config::{ReceiverConfig, RouteKind};
pub use receiver::handler::WebhookHandler;
pub use receiver::state::Receiver;
#[cfg(feature = "server")]
#[cfg_attr(docsrs, doc(cfg(feature = "server")))]
pub use server::serve;
pub use signature::{
    DEFAULT_TOLERANCE, KeyError, MAX_SIGNATURE_LEN, Malformed, SIGNATURE_HEADER, Signature,
    Verifier, VerifyError, sign, unix_ms, verify,
};
pub use verified::Payload;

// Inside the crate every model type is reachable from the root, as before the
// public split into the root and `models`.
#[allow(unused_imports)]
pub(crate) use models::*;

/// The `serde_json` this crate is built with, re-exported: [`RawJson`]
/// converts from and to [`serde_json::Value`]s (metadata, dynamic variables,
/// unknown keys) and constructors such as
/// [`TransferEvent::with_transfer_destination`] take one, so
/// `retell_webhooks::serde_json::json!` builds them without a separate
/// `serde_json` dependency (or a second, mismatched version of it).
pub use serde_json;

// The README's Rust blocks that are not `rust,ignore` (those are built by
// `scripts/readme-snippets.sh`), as doctests; one of them needs `redis`.
#[cfg(all(doctest, feature = "redis"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
