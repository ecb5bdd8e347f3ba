//! Any byte string as an `X-Retell-Signature` value: parsing never panics, and
//! whatever parses has a timestamp of at most 16 digits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use retell_webhooks::Signature;

fuzz_target!(|data: &[u8]| {
    if let Ok(signature) = Signature::parse_bytes(data) {
        assert!(signature.timestamp_ms() < 10_000_000_000_000_000);
    }
});
