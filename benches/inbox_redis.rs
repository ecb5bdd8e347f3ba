//! `RedisInbox` over a Unix socket: inserts per second with 32 concurrent
//! inserters, then the drain rate of one worker (lease 64, ack each).
//! Every event is a distinct `call_ended` (its own call, so per-call order
//! holds nothing back).
//!
//! It starts its own `redis-server` (`--port 0 --unixsocket …`), once
//! without persistence and once with AOF `appendfsync everysec`, and needs
//! one on the `PATH`.
//!
//! Run: `cargo bench --features redis --bench inbox_redis`.
//! `INBOX_BENCH_N=…` sets the events per run (20 000 by default).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use retell_webhooks::WebhookEvent;
use retell_webhooks::inbox::{Inbox, Inserted, LeaseRequest, NewEntry, RedisInbox};

#[path = "../tests/common/redis_server.rs"]
mod redis_server;

const INSERTERS: usize = 32;
const BATCH: usize = 64;
const NOW: u64 = 1_785_423_600_000;

fn entries(n: usize) -> Vec<NewEntry> {
    (0..n)
        .map(|i| {
            let body = format!(r#"{{"event":"call_ended","call":{{"call_id":"bench_{i}"}}}}"#)
                .into_bytes();
            let event = WebhookEvent::from_slice(&body).expect("event");
            NewEntry::for_event(&event, &body, NOW)
        })
        .collect()
}

/// `INSERTERS` tasks insert everything; returns the wall time.
async fn insert_all(inbox: &RedisInbox, entries: Vec<NewEntry>) -> Duration {
    let queue = Arc::new(Mutex::new(entries));
    let started = Instant::now();
    let tasks: Vec<_> = (0..INSERTERS)
        .map(|_| {
            let (inbox, queue) = (inbox.clone(), Arc::clone(&queue));
            tokio::spawn(async move {
                loop {
                    let Some(entry) = queue.lock().expect("queue").pop() else {
                        return;
                    };
                    let stored = inbox.insert(entry).await.expect("insert");
                    assert_eq!(stored, Inserted::Stored);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("inserter");
    }
    started.elapsed()
}

/// One worker leases `BATCH` at a time and acks each, until `n` are done;
/// returns the wall time.
async fn drain(inbox: &RedisInbox, n: usize) -> Duration {
    let started = Instant::now();
    let mut done = 0;
    while done < n {
        let leased = inbox
            .lease(LeaseRequest {
                max: BATCH,
                lease: Duration::from_secs(60),
                now_ms: NOW,
                consumer: "bench".to_owned(),
            })
            .await
            .expect("lease");
        assert!(!leased.is_empty(), "drained {done} of {n}");
        for entry in &leased {
            assert!(inbox.ack(&entry.key, entry.token, NOW).await.expect("ack"));
        }
        done += leased.len();
    }
    started.elapsed()
}

fn main() {
    let n: usize = std::env::var("INBOX_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    if !redis_server::installed() {
        eprintln!("inbox_redis bench: needs redis-server on the PATH");
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let setups: [(&str, &[&str]); 2] = [
        ("no persistence", &[]),
        (
            "AOF everysec",
            &["--appendonly", "yes", "--appendfsync", "everysec"],
        ),
    ];
    for (name, args) in setups {
        let server = redis_server::RedisServer::start_with(args);
        runtime.block_on(async {
            let inbox = RedisInbox::connect(&server.url()).await.expect("redis");
            // Warm up: connection, script cache.
            let warm = 500.min(n);
            insert_all(&inbox, entries(warm)).await;
            drain(&inbox, warm).await;
            let inbox = inbox.with_prefix("bench:");
            let inserted = insert_all(&inbox, entries(n)).await;
            let drained = drain(&inbox, n).await;
            let rate = |took: Duration| n as f64 / took.as_secs_f64();
            println!(
                "RedisInbox, {name}, {n} events: insert {:.0}/s ({INSERTERS} inserters), \
                 drain {:.0}/s (lease {BATCH} + ack each)",
                rate(inserted),
                rate(drained),
            );
        });
    }
}
