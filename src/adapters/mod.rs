//! Adapters for HTTP frameworks, each behind a feature of the same name.
//!
//! They all call [`crate::dispatch::dispatch`], so a request gets the same status
//! whatever the framework.

#[cfg(feature = "actix")]
#[cfg_attr(docsrs, doc(cfg(feature = "actix")))]
pub mod actix;
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod axum;
