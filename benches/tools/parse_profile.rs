//! Parses a generated body in a loop, for profilers
//! (`valgrind --tool=callgrind target/release/examples/parse_profile 30k 20`).
//!
//! Arguments: size (`1k`, `30k`, `500k`, `3m`), iterations, and an optional
//! mode: `typed` (default), `verify` (verify + typed), `plain`, `value` or `ignored` (UTF-8 check and a pass
//! that builds nothing, as the receiver's object check does).

use retell_webhooks::{Verifier, WebhookEvent, sign};

#[path = "../support/call_mirror.rs"]
mod call_mirror;
#[path = "../support/payloads.rs"]
mod payloads;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let size = args.get(1).map_or("30k", String::as_str);
    let iterations: usize = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(10);
    let mode = args.get(3).map_or("typed", String::as_str);
    let body = match size {
        "1k" => payloads::call_started(),
        "500k" => payloads::call_of_size(500_000, true),
        "3m" => payloads::call_of_size(3_000_000, true),
        _ => payloads::call_of_size(30_000, false),
    };
    let key = "key_9f3c2e1d7a8b4c6e0f5a2b3c";
    let now = 1_785_423_787_420;
    let signature = sign(&body, key, now - 1_000);
    let verifier = Verifier::new(key).expect("valid key");
    let mut ok = 0usize;
    for _ in 0..iterations {
        ok += match mode {
            "verify" => usize::from(
                verifier
                    .verify_and_parse_at::<WebhookEvent>(&body, &signature, now)
                    .is_ok(),
            ),
            "plain" => usize::from(serde_json::from_slice::<call_mirror::Body>(&body).is_ok()),
            "ignored" => usize::from(
                std::str::from_utf8(&body).is_ok()
                    && serde_json::from_slice::<serde::de::IgnoredAny>(&body).is_ok(),
            ),
            "value" => usize::from(serde_json::from_slice::<serde_json::Value>(&body).is_ok()),
            _ => usize::from(WebhookEvent::from_slice(&body).is_ok()),
        };
    }
    println!("{} bytes, {ok}/{iterations} ok ({mode})", body.len());
}
