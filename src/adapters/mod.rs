//! Adapters that plug the [`dispatch`](crate::dispatch) core into web frameworks.
//!
//! Every adapter reads the request its framework's way and then calls the same
//! entry point, [`dispatch::dispatch`](crate::dispatch::dispatch), so the status
//! codes and response bodies are identical whatever the framework.

#[cfg(feature = "actix")]
#[cfg_attr(docsrs, doc(cfg(feature = "actix")))]
pub mod actix;
