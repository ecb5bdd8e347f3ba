//! Deliveries per second through one receiver's entry point
//! (`retell_webhooks::Receiver::dispatch`, no HTTP) without deduplication, with
//! `MemoryDedupe` and with `RedisDedupe` over a Unix socket, in one run, and
//! the cost per delivery that each store adds. Every delivery is a distinct,
//! signed `call_ended` (so each one is a `begin` and a `finish`: two Redis
//! round trips), handled by a handler that does nothing.
//!
//! Two shapes: one delivery at a time (the latency a store adds) and 64 at a
//! time on a 2-worker runtime (throughput). It starts its own `redis-server`
//! (`--port 0 --unixsocket …`, no persistence) and needs one on the `PATH`.
//!
//! Run: `cargo bench --features redis --bench dedupe`. `DEDUPE_BENCH_N=…`
//! sets the deliveries per measurement (20 000 by default);
//! `DEDUPE_BENCH_RUNTIME=current_thread` runs everything on one thread
//! instead of two workers (no cross-thread wake-ups between the request and
//! the Redis connection's task).

use std::sync::Arc;
use std::time::{Duration, Instant};

use retell_webhooks::dedupe::{MemoryDedupe, RedisDedupe};
use retell_webhooks::{Receiver, ReceiverConfig, RouteKind, WebhookHandler, receiver::RawRequest};
use retell_webhooks::{Verifier, sign};

#[path = "../tests/common/redis_server.rs"]
mod redis_server;

const KEY: &str = "key_9f3c2e1d7a8b4c6e0f5a2b3c";
const NOW: u64 = 1_785_423_600_000;
const CONCURRENCY: usize = 64;

/// Does nothing: what is measured is the receiver and its store.
struct Nothing;

impl WebhookHandler for Nothing {
    type Error = String;
}

struct Delivery {
    body: Vec<u8>,
    signature: String,
}

fn deliveries(run: &str, n: usize) -> Vec<Delivery> {
    (0..n)
        .map(|i| {
            let body =
                format!(r#"{{"event":"call_ended","call":{{"call_id":"bench_{run}_{i}"}}}}"#)
                    .into_bytes();
            let signature = sign(&body, KEY, NOW);
            Delivery { body, signature }
        })
        .collect()
}

async fn deliver(receiver: &Receiver, delivery: &Delivery) -> u16 {
    let request = RawRequest::new("POST", &delivery.body)
        .signature_values(vec![delivery.signature.as_bytes()])
        .with_content_length(Some(delivery.body.len() as u64));
    let done = receiver
        .dispatch(&Nothing, RouteKind::Events, &request, tokio::time::sleep)
        .await;
    done.response.status()
}

/// One at a time; returns the time per delivery.
async fn sequential(receiver: &Receiver, batch: &[Delivery]) -> Duration {
    let started = Instant::now();
    for delivery in batch {
        assert_eq!(deliver(receiver, delivery).await, 204);
    }
    started.elapsed() / batch.len() as u32
}

/// `CONCURRENCY` at a time; returns the wall time per delivery.
async fn concurrent(receiver: &Receiver, batch: Vec<Delivery>) -> Duration {
    let n = batch.len();
    let queue = Arc::new(std::sync::Mutex::new(batch));
    let started = Instant::now();
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (receiver, queue) = (receiver.clone(), Arc::clone(&queue));
            tokio::spawn(async move {
                loop {
                    let Some(delivery) = queue.lock().expect("queue").pop() else {
                        return;
                    };
                    assert_eq!(deliver(&receiver, &delivery).await, 204);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.expect("worker");
    }
    started.elapsed() / n as u32
}

fn per_second(per_delivery: Duration) -> f64 {
    1.0 / per_delivery.as_secs_f64()
}

fn main() {
    let n: usize = std::env::var("DEDUPE_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let current_thread = std::env::var("DEDUPE_BENCH_RUNTIME").as_deref() == Ok("current_thread");
    if !redis_server::installed() {
        eprintln!("dedupe bench: needs redis-server on the PATH");
        return;
    }
    let server = redis_server::RedisServer::start();
    let mut runtime = if current_thread {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(2);
        builder
    };
    let runtime = runtime.enable_all().build().expect("runtime");
    runtime.block_on(async {
        let redis = RedisDedupe::connect(&server.url()).await.expect("redis");
        let base = || {
            ReceiverConfig::new().with_max_in_flight(CONCURRENCY)
        };
        let stores = [
            ("no dedupe", base()),
            ("MemoryDedupe", base().with_dedupe(MemoryDedupe::new())),
            ("RedisDedupe (unix socket)", base().with_dedupe(redis)),
        ];
        let receivers: Vec<_> = stores
            .into_iter()
            .map(|(name, config)| (name, Receiver::new(Verifier::new(KEY).expect("key").with_clock(|| NOW), config)))
            .collect();
        // Warm up: connections, script cache, allocator.
        for (name, receiver) in &receivers {
            sequential(receiver, &deliveries(&format!("{name}_warm"), 500)).await;
        }
        // Best of three rounds, the stores interleaved: the machine may be
        // shared, and a slow moment should not count against one store only.
        let mut best = vec![(Duration::MAX, Duration::MAX); receivers.len()];
        for round in 0..3 {
            for ((name, receiver), best) in receivers.iter().zip(&mut best) {
                let one = sequential(receiver, &deliveries(&format!("{name}_s{round}"), n)).await;
                let many = concurrent(receiver, deliveries(&format!("{name}_c{round}"), n)).await;
                best.0 = best.0.min(one);
                best.1 = best.1.min(many);
            }
        }
        let runtime = if current_thread { "current-thread" } else { "2-worker" };
        println!(
            "{n} distinct deliveries per measurement, best of 3, {runtime} runtime, handler does nothing"
        );
        println!(
            "{:<26} {:>14} {:>9} {:>15} {:>9}",
            "store", "1 at a time/s", "µs each", "64 at a time/s", "µs each"
        );
        let (base_one, base_many) = best[0];
        for ((name, _), (one, many)) in receivers.iter().zip(&best) {
            println!(
                "{name:<26} {:>14.0} {:>9.2} {:>15.0} {:>9.2}",
                per_second(*one),
                one.as_secs_f64() * 1e6,
                per_second(*many),
                many.as_secs_f64() * 1e6,
            );
        }
        for ((name, _), (one, many)) in receivers.iter().zip(&best).skip(1) {
            println!(
                "overhead of {name}: {:+.2} µs per delivery one at a time, {:+.2} µs at 64",
                (one.as_secs_f64() - base_one.as_secs_f64()) * 1e6,
                (many.as_secs_f64() - base_many.as_secs_f64()) * 1e6,
            );
        }
    });
}
