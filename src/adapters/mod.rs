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

#[cfg(any(feature = "axum", feature = "actix"))]
use std::sync::Arc;

#[cfg(any(feature = "axum", feature = "actix"))]
use crate::{Verifier, dispatch::ReceiverConfig};

#[cfg(any(feature = "axum", feature = "actix"))]
/// The verifier and limits, shared by an adapter's ready-made routes and its
/// extractors (axum: router state via `FromRef`; actix-web: `app_data`, as is or
/// wrapped in `web::Data`).
///
/// Cheap to clone. [`Default`] (or [`unconfigured`](Self::unconfigured)) has no
/// verifier: every request is then answered `500`, never accepted unverified.
#[derive(Clone, Debug)]
pub struct WebhookConfig {
    verifier: Option<Arc<Verifier>>,
    receiver: Arc<ReceiverConfig>,
    /// Permits for [`ReceiverConfig::max_in_flight`], shared by every clone.
    in_flight: Arc<tokio::sync::Semaphore>,
}

#[cfg(any(feature = "axum", feature = "actix"))]
impl Default for WebhookConfig {
    fn default() -> Self {
        let receiver = ReceiverConfig::default();
        Self {
            verifier: None,
            in_flight: Arc::new(tokio::sync::Semaphore::new(receiver.max_in_flight())),
            receiver: Arc::new(receiver),
        }
    }
}

impl WebhookConfig {
    /// Verifies with `verifier` and the default [`ReceiverConfig`].
    #[must_use]
    pub fn new(verifier: Verifier) -> Self {
        Self {
            verifier: Some(Arc::new(verifier)),
            ..Self::default()
        }
    }

    /// No verifier: every request is refused with `500` (for an app that starts
    /// before its key is available, or whose key failed to load).
    #[must_use]
    pub fn unconfigured() -> Self {
        Self::default()
    }

    /// Replaces the limits and policies.
    #[must_use]
    pub fn with_receiver_config(mut self, config: ReceiverConfig) -> Self {
        self.in_flight = Arc::new(tokio::sync::Semaphore::new(config.max_in_flight()));
        self.receiver = Arc::new(config);
        self
    }

    /// Whether a verifier is configured.
    #[must_use]
    pub fn is_configured(&self) -> bool {
        self.verifier.is_some()
    }

    /// The verifier, if configured.
    #[must_use]
    pub fn verifier(&self) -> Option<&Verifier> {
        self.verifier.as_deref()
    }

    /// The limits and policies.
    #[must_use]
    pub fn receiver_config(&self) -> &ReceiverConfig {
        &self.receiver
    }

    /// Waits for one of the [`max_in_flight`](ReceiverConfig::max_in_flight)
    /// places; the request holds it, body and handler included, until dropped.
    async fn in_flight_permit(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        // The semaphore is never closed, so this only waits.
        self.in_flight.acquire().await.ok()
    }
}

/// How much of a verified body an extractor checks before handing it over.
#[cfg(any(feature = "axum", feature = "actix"))]
#[derive(Debug, Clone, Copy)]
enum BodyCheck {
    /// Raw-body extractors: the body must also be a JSON object.
    JsonObject,
    /// Typed extractors: their own parse rejects non-JSON bodies, so the body
    /// is parsed once.
    SignatureOnly,
}
