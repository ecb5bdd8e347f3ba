//! Lease and claim tokens that no other store, process or replica repeats.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use sha2::{Digest, Sha256};

/// Tokens unique across replicas: SHA-256 of a per-store seed and a counter.
pub(crate) struct Tokens {
    seed: [u8; 32],
    next: AtomicU64,
}

impl Tokens {
    pub(crate) fn new() -> Self {
        // Stores made in one process at the same instant still differ.
        static STORES: AtomicU64 = AtomicU64::new(0);
        let mut hash = Sha256::new();
        // std seeds `RandomState` from the OS's randomness: a random seed
        // without a dependency.
        hash.update(RandomState::new().hash_one(0u8).to_be_bytes());
        hash.update(RandomState::new().hash_one(1u8).to_be_bytes());
        hash.update(std::process::id().to_be_bytes());
        let since_epoch = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        hash.update(since_epoch.as_nanos().to_be_bytes());
        hash.update(STORES.fetch_add(1, Ordering::Relaxed).to_be_bytes());
        Self {
            seed: hash.finalize().into(),
            next: AtomicU64::new(0),
        }
    }

    pub(crate) fn next(&self) -> u64 {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let mut hash = Sha256::new();
        hash.update(self.seed);
        hash.update(n.to_be_bytes());
        let digest: [u8; 32] = hash.finalize().into();
        let mut token = [0u8; 8];
        token.copy_from_slice(&digest[..8]);
        u64::from_be_bytes(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn tokens_do_not_repeat_within_or_across_stores() {
        let (a, b) = (Tokens::new(), Tokens::new());
        let mut seen = HashSet::new();
        for _ in 0..10_000 {
            assert!(seen.insert(a.next()));
            assert!(seen.insert(b.next()));
        }
    }
}
