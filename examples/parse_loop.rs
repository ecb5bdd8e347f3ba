//! Verify + typed parse of one body file, 20 times: the instruction count
//! of the hot path under callgrind (`valgrind --tool=callgrind target/release/examples/parse_loop body.json`).
use retell_webhooks::{Verifier, sign};

fn main() {
    let path = std::env::args().nth(1).expect("body path");
    let body = std::fs::read(path).expect("readable body");
    let key = "key_9f3c2e1d7a8b4c6e0f5a2b3c";
    let now = 1_785_423_787_420;
    let signature = sign(&body, key, now - 1_000);
    let verifier = Verifier::new(key).expect("valid key");
    let mut unknown = 0;
    for _ in 0..20 {
        let event = verifier
            .verify_and_parse_at(std::hint::black_box(&body), &signature, now)
            .expect("verifies and parses");
        unknown += usize::from(event.is_unknown());
    }
    println!("{unknown}");
}
