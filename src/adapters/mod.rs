//! Adapters for HTTP frameworks, each behind a feature of the same name.
//!
//! They all run the receiver's one request flow, the one
//! [`Receiver::dispatch`](crate::Receiver::dispatch) exposes, so a request
//! gets the same status whatever the framework.

#[cfg(feature = "actix")]
#[cfg_attr(docsrs, doc(cfg(feature = "actix")))]
pub mod actix;
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod axum;

#[cfg(any(feature = "axum", feature = "actix"))]
mod extract;

#[cfg(any(feature = "axum", feature = "actix"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "axum", feature = "actix"))))]
pub use extract::{VerifiedBody, VerifiedEvent, VerifiedIncoming, WebhookRejection};
