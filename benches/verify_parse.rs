//! Verify + full typed parse on Retell-like bodies, next to the plain-serde
//! baseline, in the same run.
//!
//! Bodies (`benches/data/`): `small.json` (1 KB `call_started`), `medium.json`
//! (30 KB `call_ended`, 60 utterances with word timings), `large.json` (500 KB
//! `call_analyzed`, a one-hour call). Cases per body:
//!
//! * `crate_verify`: `Verifier::verify_at` (header, window, HMAC-SHA256);
//! * `crate_verify+typed`: `Verifier::verify_and_parse_at`, the whole receive path;
//! * `crate_typed`: `WebhookEvent::from_slice` alone;
//! * `baseline_verify+parse`: `hmac` + `sha2` verification, then
//!   `serde_json::from_slice` into a plain derived struct of every field
//!   (`support/serde_baseline.rs`);
//! * `baseline_parse`: that parse alone.
//!
//! Run: `cargo bench --bench verify_parse -- --warm-up-time 2 --measurement-time 5`
//! (add a filter such as `medium` to run one body). Read the throughput lines:
//! the ratio `crate_verify+typed` / `baseline_verify+parse` is the figure of
//! merit (above 1.0: the crate is faster). Only ratios from one run mean
//! anything on a shared machine; `[profile.bench]` matches the baseline's
//! release profile (`lto = "thin"`, `codegen-units = 1`).

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use retell_webhooks::{Verifier, WebhookEvent, sign};

#[path = "support/serde_baseline.rs"]
mod serde_baseline;

const KEY: &str = "key_9f3c2e1d7a8b4c6e0f5a2b3c";
const NOW: u64 = 1_785_423_787_420;

const BODIES: [(&str, &[u8]); 3] = [
    ("small", include_bytes!("data/small.json")),
    ("medium", include_bytes!("data/medium.json")),
    ("large", include_bytes!("data/large.json")),
];

fn verify_parse(c: &mut Criterion) {
    let verifier = Verifier::new(KEY).expect("valid key");
    for (name, body) in BODIES {
        let signature = sign(body, KEY, NOW - 1_000);
        // Every case must succeed, or it would time an early error.
        assert!(
            verifier
                .verify_and_parse_at::<WebhookEvent>(body, &signature, NOW)
                .is_ok()
        );
        assert!(serde_baseline::verify_and_parse(body, KEY, &signature, NOW).is_some());

        let mut group = c.benchmark_group(format!("verify_parse/{name}"));
        group.throughput(Throughput::Bytes(body.len() as u64));
        let size = body.len();
        group.bench_with_input(BenchmarkId::new("crate_verify", size), body, |b, body| {
            b.iter(|| verifier.verify_at(black_box(body), &signature, NOW).is_ok())
        });
        group.bench_with_input(
            BenchmarkId::new("crate_verify+typed", size),
            body,
            |b, body| {
                b.iter(|| {
                    verifier
                        .verify_and_parse_at::<WebhookEvent>(black_box(body), &signature, NOW)
                        .map(|e| e.is_unknown())
                })
            },
        );
        group.bench_with_input(BenchmarkId::new("crate_typed", size), body, |b, body| {
            b.iter(|| WebhookEvent::from_slice(black_box(body)).map(|e| e.is_unknown()))
        });
        group.bench_with_input(
            BenchmarkId::new("baseline_verify+parse", size),
            body,
            |b, body| {
                b.iter(|| {
                    serde_baseline::verify_and_parse(black_box(body), KEY, &signature, NOW)
                        .map(|v| v.call.duration_ms)
                })
            },
        );
        group.bench_with_input(BenchmarkId::new("baseline_parse", size), body, |b, body| {
            b.iter(|| {
                serde_json::from_slice::<serde_baseline::FullWebhook>(black_box(body))
                    .map(|v| v.call.duration_ms)
            })
        });
        group.finish();
    }
}

criterion_group!(benches, verify_parse);
criterion_main!(benches);
