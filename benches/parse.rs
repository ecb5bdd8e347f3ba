//! Typed parsing (`WebhookEvent::from_slice`) next to parsing the same bytes
//! into a `serde_json::Value`, at three realistic sizes.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use retell_webhooks::WebhookEvent;
use std::hint::black_box;

#[path = "support/payloads.rs"]
mod payloads;

fn parse(c: &mut Criterion) {
    for (name, body) in payloads::bench_bodies() {
        let mut group = c.benchmark_group(format!("parse/{name}"));
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_with_input(BenchmarkId::new("typed", body.len()), &body, |b, body| {
            b.iter(|| WebhookEvent::from_slice(black_box(body)).map(|e| e.is_unknown()))
        });
        group.bench_with_input(BenchmarkId::new("value", body.len()), &body, |b, body| {
            b.iter(|| {
                serde_json::from_slice::<serde_json::Value>(black_box(body)).map(|v| v.is_object())
            })
        });
        group.finish();
    }
}

criterion_group!(benches, parse);
criterion_main!(benches);
