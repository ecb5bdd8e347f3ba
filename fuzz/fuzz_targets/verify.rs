//! Header + body + clock: verification never panics, and whatever verifies is
//! exactly what `sign` produces for that body, key and timestamp.
#![no_main]

use libfuzzer_sys::fuzz_target;
use retell_webhooks::{Signature, Verifier, sign};

const KEY: &str = "test-api-key";

fuzz_target!(|data: &[u8]| {
    // Layout: 8 bytes of "now" (little endian), 1 byte header length, header, body.
    let Some((now, rest)) = data.split_first_chunk::<8>() else {
        return;
    };
    let Some((&len, rest)) = rest.split_first() else {
        return;
    };
    let (header, body) = rest.split_at(usize::from(len).min(rest.len()));
    let now_ms = u64::from_le_bytes(*now);
    let Ok(verifier) = Verifier::new(KEY) else {
        return;
    };
    if verifier.verify_at(body, header, now_ms).is_ok() {
        let parsed = Signature::parse_bytes(header).expect("verified headers parse");
        let expected = sign(body, KEY, parsed.timestamp_ms());
        let trimmed = std::str::from_utf8(header).expect("verified headers are ASCII");
        assert!(expected.eq_ignore_ascii_case(trimmed.trim_matches([' ', '\t'])));
    }
});
