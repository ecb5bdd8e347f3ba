//! Verify, then parse: [`Verifier::verify_and_parse`] and the bodies it can
//! produce.

use crate::FunctionCall;
use crate::error::{Error, ParseError};
use crate::events::{Incoming, WebhookEvent};
use crate::signature::Verifier;

/// A body [`Verifier::verify_and_parse`] can produce: [`WebhookEvent`] (the
/// event webhook), [`Incoming`] (the event webhook and the inbound call / SMS
/// webhook on one URL) or [`FunctionCall`] (a custom function's body).
///
/// Sealed: the crate's models are the only bodies Retell signs.
pub trait Payload: Sized + sealed::Sealed {
    /// Parses verified bytes.
    #[doc(hidden)]
    fn from_verified(body: &[u8]) -> Result<Self, ParseError>;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::WebhookEvent {}
    impl Sealed for super::Incoming {}
    impl Sealed for super::FunctionCall {}
}

impl Payload for WebhookEvent {
    fn from_verified(body: &[u8]) -> Result<Self, ParseError> {
        Self::from_slice(body)
    }
}

impl Payload for Incoming {
    fn from_verified(body: &[u8]) -> Result<Self, ParseError> {
        Self::from_slice(body)
    }
}

impl Payload for FunctionCall {
    fn from_verified(body: &[u8]) -> Result<Self, ParseError> {
        Self::from_slice(body)
    }
}

impl Verifier {
    /// Verifies the signature at the current time (see
    /// [`verify`](Self::verify)), then parses the body as `T`: a
    /// [`WebhookEvent`], an [`Incoming`] or a [`FunctionCall`]. Nothing is
    /// parsed when the signature fails.
    ///
    /// ```
    /// use retell_webhooks::{sign, Verifier, WebhookEvent};
    ///
    /// let verifier = Verifier::new("key_abc")?.with_clock(|| 1_785_423_600_000);
    /// let body = br#"{"event":"call_ended","call":{"call_id":"call_1"}}"#;
    /// let header = sign(body, "key_abc", 1_785_423_600_000);
    /// let event = verifier.verify_and_parse::<WebhookEvent>(body, &header)?;
    /// assert_eq!(event.call_id(), Some("call_1"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use = "the signature is only checked if the result is inspected"]
    pub fn verify_and_parse<T: Payload>(
        &self,
        body: &[u8],
        signature: impl AsRef<[u8]>,
    ) -> Result<T, Error> {
        self.verify(body, signature)?;
        Ok(T::from_verified(body)?)
    }

    /// [`verify_and_parse`](Self::verify_and_parse) as if the time were
    /// `now_ms` (Unix milliseconds); no clock is read.
    #[must_use = "the signature is only checked if the result is inspected"]
    pub fn verify_and_parse_at<T: Payload>(
        &self,
        body: &[u8],
        signature: impl AsRef<[u8]>,
        now_ms: u64,
    ) -> Result<T, Error> {
        self.verify_at(body, signature, now_ms)?;
        Ok(T::from_verified(body)?)
    }
}
