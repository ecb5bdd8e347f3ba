//! Verify, then parse: the [`Verifier`] methods that check a signature and
//! parse the body in one call.

use crate::error::Error;
use crate::events::{Incoming, WebhookEvent};
use crate::signature::Verifier;

impl Verifier {
    /// Verifies the signature at `now_ms` (epoch ms), then parses the body as an
    /// event. Nothing is parsed when the signature fails.
    #[must_use = "the signature is only checked if the result is inspected"]
    pub fn verify_and_parse_at(
        &self,
        body: &[u8],
        signature: &str,
        now_ms: u64,
    ) -> Result<WebhookEvent, Error> {
        self.verify_at(body, signature, now_ms)?;
        Ok(WebhookEvent::from_slice(body)?)
    }

    /// [`Self::verify_and_parse_at`] with the system clock.
    #[must_use = "the signature is only checked if the result is inspected"]
    pub fn verify_and_parse(&self, body: &[u8], signature: &str) -> Result<WebhookEvent, Error> {
        self.verify(body, signature)?;
        Ok(WebhookEvent::from_slice(body)?)
    }

    /// Verifies at `now_ms`, then parses anything with an `event` key
    /// (events and inbound call / SMS requests).
    #[must_use = "the signature is only checked if the result is inspected"]
    pub fn verify_and_parse_incoming_at(
        &self,
        body: &[u8],
        signature: &str,
        now_ms: u64,
    ) -> Result<Incoming, Error> {
        self.verify_at(body, signature, now_ms)?;
        Ok(Incoming::from_slice(body)?)
    }

    /// [`Self::verify_and_parse_incoming_at`] with the system clock.
    #[must_use = "the signature is only checked if the result is inspected"]
    pub fn verify_and_parse_incoming(
        &self,
        body: &[u8],
        signature: &str,
    ) -> Result<Incoming, Error> {
        self.verify(body, signature)?;
        Ok(Incoming::from_slice(body)?)
    }
}
