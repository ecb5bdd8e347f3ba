//! Throughput of `Verifier::verify_at` next to a bare HMAC-SHA256 of the same
//! bytes, so the overhead of parsing, the window check and the constant-time
//! comparison is visible as a ratio.
//!
//! Run: `cargo bench --bench verify -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use hmac::{Hmac, Mac};
use retell_webhooks::{Verifier, sign};
use sha2::Sha256;

const KEY: &str = "key_9f3c2e1d7a8b4c6e0f5a2b3c";
const NOW: u64 = 1_785_423_787_420;

/// Small deterministic generator (xorshift64*), so every run hashes the same bytes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        let len = u64::try_from(items.len()).unwrap();
        items[usize::try_from(self.next() % len).unwrap()]
    }
}

const WORDS: &[&str] = &[
    "hello",
    "thanks",
    "for",
    "calling",
    "the",
    "clinic",
    "I",
    "would",
    "like",
    "to",
    "book",
    "an",
    "appointment",
    "next",
    "Tuesday",
    "morning",
    "sure",
    "let",
    "me",
    "check",
    "what",
    "times",
    "are",
    "available",
    "nine",
    "thirty",
    "works",
    "great",
    "could",
    "you",
    "confirm",
    "your",
    "date",
    "of",
    "birth",
    "please",
    "perfect",
    "anything",
    "else",
    "today",
    "no",
    "that's",
    "all",
    "goodbye",
    "Grüße",
    "señor",
    "café",
    "naïve",
];

/// A compact `call_analyzed`-like body of about `target` bytes: call metadata
/// followed by transcript turns with word timings, as Retell sends them.
fn body(target: usize) -> Vec<u8> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ target as u64);
    let mut out = String::with_capacity(target + 512);
    out.push_str(
        r#"{"event":"call_analyzed","call":{"call_type":"phone_call","from_number":"+14155550100","to_number":"+14155550199","direction":"inbound","call_id":"call_6a1f2b3c4d5e6f708192a3b4c5d6e7f8","agent_id":"agent_0c1d2e3f4a5b6c7d8e9f","call_status":"ended","start_timestamp":1785423600000,"end_timestamp":1785423787420,"disconnection_reason":"user_hangup","transcript_object":["#,
    );
    let mut t_ms: u64 = 0;
    let mut first = true;
    while out.len() < target {
        if !first {
            out.push(',');
        }
        first = false;
        let role = if rng.next() & 1 == 0 { "agent" } else { "user" };
        let n_words = 3 + rng.next() % 12;
        let words: Vec<&str> = (0..n_words).map(|_| rng.pick(WORDS)).collect();
        out.push_str(&format!(
            r#"{{"role":"{role}","content":"{}","words":["#,
            words.join(" ")
        ));
        for (i, word) in words.iter().enumerate() {
            let start = t_ms;
            t_ms += 120 + rng.next() % 400;
            if i > 0 {
                out.push(',');
            }
            out.push_str(&format!(
                r#"{{"word":"{word}","start":{}.{:03},"end":{}.{:03}}}"#,
                start / 1000,
                start % 1000,
                t_ms / 1000,
                t_ms % 1000
            ));
        }
        out.push_str("]}");
    }
    out.push_str(r#"],"call_analysis":{"call_successful":true,"user_sentiment":"Positive"}}}"#);
    out.into_bytes()
}

/// What a caller would do without this crate: key HMAC, feed body and digits.
fn raw_hmac(key: &[u8], body: &[u8], ts_digits: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(body);
    mac.update(ts_digits);
    mac.finalize().into_bytes().into()
}

fn bench(c: &mut Criterion) {
    let verifier = Verifier::new(KEY).unwrap();
    let ts_digits = NOW.to_string();
    for (label, size) in [("1KB", 1_000), ("30KB", 30_000), ("500KB", 500_000)] {
        let body = body(size);
        let header = sign(&body, KEY, NOW);
        assert_eq!(verifier.verify_at(&body, &header, NOW), Ok(()));

        let mut group = c.benchmark_group(format!("verify/{label}"));
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_with_input(
            BenchmarkId::new("verify_at", body.len()),
            &body,
            |b, body| {
                b.iter(|| verifier.verify_at(black_box(body), black_box(&header), black_box(NOW)))
            },
        );
        group.bench_with_input(
            BenchmarkId::new("raw_hmac", body.len()),
            &body,
            |b, body| {
                b.iter(|| {
                    raw_hmac(
                        black_box(KEY.as_bytes()),
                        black_box(body),
                        black_box(ts_digits.as_bytes()),
                    )
                })
            },
        );
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
