//! Peak heap use of parsing: the bytes live at any moment while a body is
//! parsed (the result included), over the body's own size. Deterministic:
//! allocation sizes do not depend on timing. One test function, so no other
//! test thread allocates while it measures.
//!
//! Run: `cargo test --release --test memory_peak -- --nocapture`

use peak_alloc::PeakAlloc;
use retell_webhooks::WebhookEvent;

#[path = "../benches/support/payloads.rs"]
mod payloads;

#[global_allocator]
static ALLOC: PeakAlloc = PeakAlloc;

/// Peak live bytes while parsing `body`, above what was live before.
fn parse_peak(body: &[u8]) -> usize {
    let before = ALLOC.current_usage();
    ALLOC.reset_peak_usage();
    let event = WebhookEvent::from_slice(body).expect("body parses");
    let peak = ALLOC.peak_usage();
    assert!(!event.is_unknown());
    drop(event);
    peak.saturating_sub(before)
}

#[test]
fn parsing_peaks_below_twice_the_body() {
    let bodies = [
        ("call_ended_30k", payloads::call_of_size(30_000, false)),
        ("call_analyzed_500k", payloads::call_of_size(500_000, true)),
        ("call_analyzed_3m", payloads::call_of_size(3_000_000, true)),
    ];
    let mut report = Vec::new();
    for (name, body) in &bodies {
        let peak = parse_peak(body);
        #[allow(clippy::cast_precision_loss)]
        let ratio = peak as f64 / body.len() as f64;
        report.push(format!(
            "{name}: {} bytes, peak {peak} bytes, {ratio:.2}x",
            body.len()
        ));
        println!("{}", report.last().map_or("", String::as_str));
    }
    for ((name, body), line) in bodies.iter().zip(&report) {
        let peak = parse_peak(body);
        // About twice the body: the parsed value itself is most of it (an
        // 80-byte `Word` per ~45-byte JSON word timing).
        assert!(peak * 10 <= body.len() * 21, "{name} over 2.1x: {line}");
    }
}
