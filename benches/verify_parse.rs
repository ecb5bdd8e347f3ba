//! Verify + full typed parse (`Verifier::verify_and_parse_at`) of realistic
//! bodies (1 KB `call_started`, 30 KB `call_ended`, 500 KB `call_analyzed`), next to the same bytes through (a) `serde_json::from_slice` into a
//! plain derived mirror of the Call model (`support/mirror.rs`: every field
//! typed, nothing kept that it does not know), with and without verification,
//! and (b) `serde_json::Value`. Same bytes, same run, so compare ratios.
//!
//! Run: `cargo bench --bench verify_parse -- --warm-up-time 2 --measurement-time 5`

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use retell_webhooks::{Verifier, sign};

#[path = "support/mirror.rs"]
mod mirror;
#[path = "support/payloads.rs"]
mod payloads;

const KEY: &str = "key_9f3c2e1d7a8b4c6e0f5a2b3c";
const NOW: u64 = 1_785_423_787_420;

fn verify_parse(c: &mut Criterion) {
    let verifier = Verifier::new(KEY).expect("valid key");
    let bodies = [
        ("call_started_1k", payloads::call_started()),
        ("call_ended_30k", payloads::call_of_size(30_000, false)),
        ("call_analyzed_500k", payloads::call_of_size(500_000, true)),
    ];
    for (name, body) in bodies {
        let signature = sign(&body, KEY, NOW - 1_000);
        let mut group = c.benchmark_group(format!("verify_parse/{name}"));
        group.throughput(Throughput::Bytes(body.len() as u64));
        let size = body.len();
        group.bench_with_input(BenchmarkId::new("verify", size), &body, |b, body| {
            b.iter(|| verifier.verify_at(black_box(body), &signature, NOW).is_ok())
        });
        group.bench_with_input(BenchmarkId::new("typed", size), &body, |b, body| {
            b.iter(|| {
                retell_webhooks::WebhookEvent::from_slice(black_box(body)).map(|e| e.is_unknown())
            })
        });
        group.bench_with_input(BenchmarkId::new("verify+typed", size), &body, |b, body| {
            b.iter(|| {
                verifier
                    .verify_and_parse_at(black_box(body), &signature, NOW)
                    .map(|e| e.is_unknown())
            })
        });
        group.bench_with_input(BenchmarkId::new("plain_serde", size), &body, |b, body| {
            b.iter(|| {
                serde_json::from_slice::<mirror::Body>(black_box(body)).map(|v| v.call.duration_ms)
            })
        });
        group.bench_with_input(
            BenchmarkId::new("verify+plain_serde", size),
            &body,
            |b, body| {
                b.iter(|| {
                    verifier
                        .verify_at(black_box(body), &signature, NOW)
                        .ok()
                        .and_then(|()| serde_json::from_slice::<mirror::Body>(body).ok())
                        .map(|v| v.call.duration_ms)
                })
            },
        );
        group.bench_with_input(BenchmarkId::new("value", size), &body, |b, body| {
            b.iter(|| {
                serde_json::from_slice::<serde_json::Value>(black_box(body)).map(|v| v.is_object())
            })
        });
        group.finish();
    }
}

criterion_group!(benches, verify_parse);
criterion_main!(benches);
