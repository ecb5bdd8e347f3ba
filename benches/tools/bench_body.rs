//! Writes a benchmark body to a file and prints its `X-Retell-Signature`,
//! signed now with `RETELL_API_KEY`; used by `benches/http.sh`:
//!
//! ```text
//! RETELL_API_KEY=key_… cargo run --release --example bench_body -- 30k body.json
//! ```
//!
//! Bodies: the realistic `medium` (30 KB `call_ended`, the default) and
//! `large` (500 KB `call_analyzed`) of `benches/data/`, or generated ones:
//! `1k` (`call_started`), `30k` (`call_ended`, keys in alphabetical order and
//! a scrubbed transcript), `500k` (`call_analyzed`).

use std::time::SystemTime;

#[path = "../support/payloads.rs"]
mod payloads;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let body = match args.next().as_deref() {
        Some("1k") => payloads::call_started(),
        Some("30k") => payloads::call_of_size(30_000, false),
        Some("500k") => payloads::call_of_size(500_000, true),
        Some("large") => include_bytes!("../data/large.json").to_vec(),
        _ => include_bytes!("../data/medium.json").to_vec(),
    };
    let path = args.next().unwrap_or_else(|| "body.json".to_owned());
    std::fs::write(&path, &body)?;
    let key = std::env::var("RETELL_API_KEY")?;
    let now = retell_webhooks::unix_ms(SystemTime::now())?;
    println!("{}", retell_webhooks::sign(&body, &key, now));
    Ok(())
}
