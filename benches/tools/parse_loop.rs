//! Verify + typed parse of one body file, 20 times: the instruction count
//! of the hot path under callgrind:
//!
//! ```text
//! cargo build --profile bench --example parse_loop
//! valgrind --tool=callgrind --dump-instr=no target/release/examples/parse_loop benches/data/medium.json [MODE]
//! ```
//!
//! `MODE`: `verify+typed` (default), `typed` (parse only), `verify` (signature
//! only: under valgrind SHA-256 runs its software fallback, so subtract this),
//! `baseline` (the plain-serde parse of `benches/support/serde_baseline.rs`)
//! `baseline-verify` (its verification, then that parse) or `ignored` (UTF-8
//! check and a serde_json pass that builds nothing: the tokenizer's floor).
use retell_webhooks::{Verifier, WebhookEvent, sign};

#[path = "../support/serde_baseline.rs"]
mod serde_baseline;

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("body path");
    let mode = args.next().unwrap_or_else(|| "verify+typed".to_owned());
    let body = std::fs::read(path).expect("readable body");
    let key = "key_9f3c2e1d7a8b4c6e0f5a2b3c";
    let now = 1_785_423_787_420;
    let signature = sign(&body, key, now - 1_000);
    let verifier = Verifier::new(key).expect("valid key");
    let body = std::hint::black_box(&body);
    let mut unknown = 0;
    for _ in 0..20 {
        unknown += match mode.as_str() {
            "typed" => usize::from(WebhookEvent::from_slice(body).expect("parses").is_unknown()),
            "ignored" => usize::from(
                std::str::from_utf8(body)
                    .is_ok_and(|text| serde_json::from_str::<serde::de::IgnoredAny>(text).is_err()),
            ),
            "verify" => usize::from(verifier.verify_at(body, &signature, now).is_err()),
            "baseline" => {
                let parsed = serde_json::from_slice::<serde_baseline::FullWebhook>(body);
                usize::from(parsed.expect("parses").call.duration_ms.is_none())
            }
            "baseline-verify" => {
                let parsed = serde_baseline::verify_and_parse(body, key, &signature, now);
                usize::from(
                    parsed
                        .expect("verifies and parses")
                        .call
                        .duration_ms
                        .is_none(),
                )
            }
            _ => usize::from(
                verifier
                    .verify_and_parse_at::<WebhookEvent>(body, &signature, now)
                    .expect("verifies and parses")
                    .is_unknown(),
            ),
        };
    }
    println!("{unknown}");
}
