//! Writes a benchmark body to a file and prints its `X-Retell-Signature`,
//! signed now with `RETELL_API_KEY`; used by `benches/http.sh`:
//!
//! ```text
//! RETELL_API_KEY=key_… cargo run --release --example bench_body -- 30k body.json
//! ```
//!
//! Sizes: `1k` (`call_started`), `30k` (`call_ended`, the default), `500k`
//! (`call_analyzed`).

use std::time::SystemTime;

#[path = "../benches/support/payloads.rs"]
mod payloads;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let body = match args.next().as_deref() {
        Some("1k") => payloads::call_started(),
        Some("500k") => payloads::call_of_size(500_000, true),
        _ => payloads::call_of_size(30_000, false),
    };
    let path = args.next().unwrap_or_else(|| "body.json".to_owned());
    std::fs::write(&path, &body)?;
    let key = std::env::var("RETELL_API_KEY")?;
    let now = retell_webhooks::unix_ms(SystemTime::now())?;
    println!("{}", retell_webhooks::sign(&body, &key, now));
    Ok(())
}
