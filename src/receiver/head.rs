//! Admission: everything a request's head decides, checked once before its
//! body is read, into an [`Admitted`] value that the later phases receive.

use super::config::RouteKind;
use super::outcome::{Dispatched, Reason};
use super::replay::ReplayClaim;
use super::request::{RawRequest, SignatureHeader};
use super::state::Receiver;
use crate::{FunctionMethod, Signature, Verifier, VerifyError};

/// A request whose head passed: its parsed signature and the instant it
/// arrived (by the verifier's clock). The body is checked against both, so no
/// later phase parses the header or reads the clock again.
pub(crate) struct Admitted<'r> {
    pub(crate) route: RouteKind,
    verifier: &'r Verifier,
    signature: Signature,
    /// Unix milliseconds at arrival: the signature window, the key monitor
    /// and the dedupe store all count from it.
    pub(crate) now_ms: u64,
}

impl Receiver {
    /// Configuration (`500`), source allowlist (`403`), method (`405`),
    /// `Content-Encoding` (`415`), declared length (`413`), and the signature
    /// header: present once, well formed, its timestamp within the window
    /// (`401`). A request refused here never waits for or holds anything.
    pub(crate) fn admit(
        &self,
        route: RouteKind,
        head: &RawRequest<'_>,
    ) -> Result<Admitted<'_>, Box<Dispatched>> {
        let reject = |reason| Box::new(Dispatched::from_reason(route, reason));
        let Some(verifier) = self.verifier() else {
            return Err(reject(Reason::NotConfigured));
        };
        self.check_head(route, head).map_err(reject)?;
        let (signature, now_ms) =
            read_signature(verifier, head).map_err(|why| reject(Reason::Unauthorized(why)))?;
        Ok(Admitted {
            route,
            verifier,
            signature,
            now_ms,
        })
    }

    fn check_head(&self, route: RouteKind, head: &RawRequest<'_>) -> Result<(), Reason> {
        let config = self.config();
        if let Some(allowlist) = &config.source_allowlist {
            allowlist
                .check(head.peer, head.forwarded_for.iter().copied())
                .map_err(Reason::Forbidden)?;
        }
        let allowed = match route {
            RouteKind::Events => head.method == "POST",
            RouteKind::Function => FunctionMethod::parse(head.method).is_some(),
        };
        if !allowed {
            return Err(Reason::MethodNotAllowed);
        }
        if head.encoded {
            return Err(Reason::UnsupportedEncoding);
        }
        let limit = config.body_limit;
        if head
            .content_length
            .is_some_and(|len| u64::try_from(limit).is_ok_and(|limit| len > limit))
        {
            return Err(Reason::PayloadTooLarge { limit });
        }
        Ok(())
    }
}

/// The one parse of the signature header and the one clock reading of a
/// request, with the window checked against it.
fn read_signature(
    verifier: &Verifier,
    head: &RawRequest<'_>,
) -> Result<(Signature, u64), VerifyError> {
    let value = match head.signature {
        SignatureHeader::Absent => return Err(VerifyError::MissingSignature),
        SignatureHeader::Several => return Err(VerifyError::DuplicateSignature),
        SignatureHeader::One(value) => value,
    };
    let signature = Signature::parse_bytes(value)?;
    let now_ms = verifier.now_ms()?;
    verifier.check_window(signature.timestamp_ms(), now_ms)?;
    Ok((signature, now_ms))
}

impl Admitted<'_> {
    /// The body against the admitted head: within the limit (`413`), its
    /// digest matching (`401`, one identical answer whatever the reason). The
    /// key monitor counts the result.
    pub(crate) fn authenticate(
        &self,
        receiver: &Receiver,
        body: &[u8],
    ) -> Result<(), Box<Dispatched>> {
        let reject = |reason| Box::new(Dispatched::from_reason(self.route, reason));
        let limit = receiver.config().body_limit;
        if body.len() > limit {
            return Err(reject(Reason::PayloadTooLarge { limit }));
        }
        let verified = self.verifier.check_digest(body, &self.signature);
        self.conclude(receiver, verified)
    }

    /// What [`authenticate`](Self::authenticate) does with the digest's
    /// verdict, for a digest checked on another thread: the key monitor
    /// counts it, and a failure is the `401`.
    pub(crate) fn conclude(
        &self,
        receiver: &Receiver,
        verified: Result<(), VerifyError>,
    ) -> Result<(), Box<Dispatched>> {
        let reject = |reason| Box::new(Dispatched::from_reason(self.route, reason));
        let alert = receiver.mismatches().record(&verified, self.now_ms);
        verified.map_err(|why| {
            let mut rejected = reject(Reason::Unauthorized(why));
            rejected.outcome.key_alert = alert;
            rejected
        })
    }

    /// The verifier and the signature, to check the digest on another
    /// thread.
    #[cfg(any(feature = "tower", feature = "actix"))]
    pub(crate) fn digest_check(&self) -> (Verifier, Signature) {
        (self.verifier.clone(), self.signature.clone())
    }

    /// On the function route with the replay guard on: claims the verified
    /// signature (`401` if another request holds or used it). The claim is
    /// released on drop unless [settled](ReplayClaim::settle) with a success.
    pub(crate) fn claim_replay<'g>(
        &self,
        receiver: &'g Receiver,
    ) -> Result<Option<ReplayClaim<'g>>, Box<Dispatched>> {
        let (RouteKind::Function, Some(guard)) =
            (self.route, &receiver.config().function_replay_guard)
        else {
            return Ok(None);
        };
        let tolerance_ms = u64::try_from(self.verifier.tolerance().as_millis()).unwrap_or(u64::MAX);
        let window_ends = self.signature.timestamp_ms().saturating_add(tolerance_ms);
        let digest = self.signature.digest_bytes();
        if guard.first_use(digest, window_ends, self.now_ms) {
            Ok(Some(ReplayClaim {
                guard,
                digest,
                kept: false,
            }))
        } else {
            let why = Reason::Unauthorized(VerifyError::Replayed);
            Err(Box::new(Dispatched::from_reason(self.route, why)))
        }
    }

    /// [`authenticate`](Self::authenticate), then the whole-body JSON-object
    /// check that raw-body extractors promise.
    #[cfg(any(feature = "axum", feature = "actix"))]
    pub(crate) fn authenticate_json(
        &self,
        receiver: &Receiver,
        body: &[u8],
    ) -> Result<(), Box<Dispatched>> {
        self.authenticate(receiver, body)?;
        super::body::check_json_object(body)
            .map_err(|why| Box::new(Dispatched::from_reason(self.route, Reason::BadRequest(why))))
    }
}
