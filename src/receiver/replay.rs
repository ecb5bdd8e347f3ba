//! The function route's opt-in replay guard: a signature whose request was
//! answered `2xx`, or is being handled, is refused for the rest of its window.
//!
//! Retell signs the body and the timestamp only, not the method, the query
//! or the URL, so a captured signature stays valid for its whole window
//! (5 minutes by default) on any request with the same body. Events are
//! idempotent by their ids (see [`crate::dedupe`]); a custom function is not,
//! and every `GET` or `DELETE` tool call signs the same empty body.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};

/// Signatures remembered at most: older ones are forgotten first. Only
/// verified requests are remembered, so only Retell's own traffic fills it
/// (over 200 function calls a second for a 5-minute window).
const CAPACITY: usize = 65_536;

/// Accepted signatures (digest → when its window ends, Unix ms), shared by
/// every clone of a receiver.
#[derive(Debug, Default)]
pub(crate) struct ReplayGuard {
    seen: Mutex<Seen>,
}

#[derive(Debug, Default)]
struct Seen {
    until: HashMap<[u8; 32], u64>,
    /// Insertion order, to forget expired (and, when full, oldest) entries.
    order: VecDeque<([u8; 32], u64)>,
}

impl ReplayGuard {
    /// Records a verified signature; `false` if it was accepted before and
    /// its window has not ended.
    pub(crate) fn first_use(&self, digest: [u8; 32], window_ends_ms: u64, now_ms: u64) -> bool {
        // Plain maps, consistent after any panic.
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        seen.forget_expired(now_ms);
        if seen
            .until
            .get(&digest)
            .is_some_and(|&until| until >= now_ms)
        {
            return false;
        }
        while seen.order.len() >= CAPACITY {
            seen.forget_oldest();
        }
        seen.until.insert(digest, window_ends_ms);
        seen.order.push_back((digest, window_ends_ms));
        true
    }
}

impl ReplayGuard {
    /// Forgets `digest`: its request failed, so Retell's retry (which may
    /// carry the same signature) must get through.
    fn release(&self, digest: &[u8; 32]) {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        seen.until.remove(digest);
    }
}

/// A claimed signature: released when dropped, unless kept.
pub(crate) struct ReplayClaim<'g> {
    pub(super) guard: &'g ReplayGuard,
    pub(super) digest: [u8; 32],
    pub(super) kept: bool,
}

impl ReplayClaim<'_> {
    /// Keeps the signature for the rest of its window when the request was
    /// answered with a success.
    pub(crate) fn settle(mut self, success: bool) {
        self.kept = success;
    }
}

impl Drop for ReplayClaim<'_> {
    fn drop(&mut self) {
        if !self.kept {
            self.guard.release(&self.digest);
        }
    }
}

impl Seen {
    fn forget_expired(&mut self, now_ms: u64) {
        while self.order.front().is_some_and(|&(_, until)| until < now_ms) {
            self.forget_oldest();
        }
    }

    fn forget_oldest(&mut self) {
        if let Some((digest, until)) = self.order.pop_front()
            && self.until.get(&digest) == Some(&until)
        {
            self.until.remove(&digest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ReplayGuard;

    #[test]
    fn a_failed_request_hands_its_signature_back() {
        let guard = ReplayGuard::default();
        assert!(guard.first_use([3; 32], 1_000, 500));
        guard.release(&[3; 32]);
        assert!(guard.first_use([3; 32], 1_000, 600));
    }

    #[test]
    fn a_signature_is_accepted_once_within_its_window() {
        let guard = ReplayGuard::default();
        assert!(guard.first_use([1; 32], 1_000, 500));
        assert!(!guard.first_use([1; 32], 1_000, 900));
        assert!(guard.first_use([2; 32], 1_000, 900));
        // After its window the verifier refuses it anyway; the guard forgets it.
        assert!(guard.first_use([1; 32], 2_000, 1_001));
    }
}
