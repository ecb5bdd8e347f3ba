//! `SqliteInbox` on a real file, in one run:
//!
//! * `insert/sqlite_inbox_32_concurrent`: 32 tasks insert a ~33 KB
//!   `call_analyzed` body each, concurrently (group commit: the deliveries
//!   queued together share one transaction and one fsync);
//! * `insert/rusqlite_txn_per_row`: the baseline, plain rusqlite on the same
//!   schema, the same PRAGMAs (16 KiB pages, WAL, `synchronous=FULL`) and the
//!   same file system, committing one transaction (one fsync) per row;
//! * `drain/lease_32_ack_concurrently`: a worker's loop, leasing 32 entries
//!   at a time and acknowledging them concurrently.
//!
//! The files live under Cargo's `target/tmp` (the target's file system, not a
//! RAM disk) and are emptied between iterations, outside the measured time.
//!
//! Run: `cargo bench --features sqlite --bench inbox` (well under a minute).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use retell_webhooks::dedupe::DedupeKey;
use retell_webhooks::inbox::{Inbox, Inserted, LeaseRequest, NewEntry, SqliteInbox};
use rusqlite::{Connection, params};
use tokio::runtime::Runtime;

const NOW: u64 = 1_785_062_500_000;
/// Inserters at once (deliveries Retell has in flight).
const CONCURRENCY: usize = 32;
/// Entries per measured iteration.
const PER_ITERATION: u64 = 128;

/// The largest fixture: a maximal `call_analyzed`, about 33 KB.
fn body() -> Vec<u8> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/call_analyzed_maximal.json"
    );
    std::fs::read(path).expect("the fixture is readable")
}

/// A new entry each call: a key of its own, the same body.
struct Entries {
    body: Vec<u8>,
    next: AtomicU64,
}

impl Entries {
    fn next(&self) -> NewEntry {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&n.to_be_bytes());
        NewEntry {
            key: DedupeKey::from_bytes(key),
            body: self.body.clone(),
            event: Some("call_analyzed".to_owned()),
            order: Some(format!("call:bench_{n}")),
            received_ms: NOW + n,
            dead_reason: None,
        }
    }
}

/// A directory of its own under `target/tmp`, removed on drop.
struct BenchDir(PathBuf);

impl BenchDir {
    fn new(name: &str) -> Self {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("inbox-bench-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("the bench directory can be created");
        Self(dir)
    }
}

impl Drop for BenchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Empties the file between iterations (not measured), so it stays small.
fn empty(path: &Path) {
    let conn = Connection::open(path).expect("open");
    conn.busy_timeout(Duration::from_secs(5))
        .expect("busy_timeout");
    conn.execute("DELETE FROM inbox", []).expect("delete");
}

/// Inserts `n` entries from `CONCURRENCY` tasks; returns the wall time.
async fn insert_concurrently(
    inbox: &SqliteInbox,
    entries: &std::sync::Arc<Entries>,
    n: u64,
) -> Duration {
    let per_task = n / CONCURRENCY as u64;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..CONCURRENCY {
        let (inbox, entries) = (inbox.clone(), entries.clone());
        tasks.spawn(async move {
            for _ in 0..per_task {
                let inserted = inbox.insert(entries.next()).await;
                assert_eq!(inserted, Ok(Inserted::Stored));
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("an inserter panicked");
    }
    started.elapsed()
}

fn insert(c: &mut Criterion) {
    let runtime = Runtime::new().expect("runtime");
    let dir = BenchDir::new("insert");
    let entries = std::sync::Arc::new(Entries {
        body: body(),
        next: AtomicU64::new(0),
    });
    let mut group = c.benchmark_group("insert");
    group.throughput(Throughput::Elements(PER_ITERATION));

    let path = dir.0.join("inbox.sqlite3");
    let inbox = SqliteInbox::open(&path).expect("open");
    group.bench_function("sqlite_inbox_32_concurrent", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                total += runtime.block_on(insert_concurrently(&inbox, &entries, PER_ITERATION));
                empty(&path);
            }
            total
        });
    });
    drop(inbox);

    // The same schema, created by the store, then written without it.
    let path = dir.0.join("baseline.sqlite3");
    drop(SqliteInbox::open(&path).expect("open"));
    let conn = Connection::open(&path).expect("open");
    conn.busy_timeout(Duration::from_secs(5))
        .expect("busy_timeout");
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .expect("journal_mode");
    assert_eq!(mode, "wal");
    conn.pragma_update(None, "synchronous", "FULL")
        .expect("synchronous");
    group.bench_function("rusqlite_txn_per_row", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let started = Instant::now();
                for _ in 0..PER_ITERATION {
                    let e = entries.next();
                    // Autocommit: one transaction, one fsync, per row.
                    let changed = conn
                        .prepare_cached(
                            "INSERT INTO inbox (key, state, event, order_key, received_ms,
                             attempts, due_ms, body, updated_ms)
                             VALUES (?1, 'ready', ?2, ?3, ?4, 0, ?4, ?5, ?4)
                             ON CONFLICT (key) DO NOTHING",
                        )
                        .and_then(|mut stmt| {
                            stmt.execute(params![
                                e.key.as_bytes(),
                                e.event,
                                e.order,
                                i64::try_from(e.received_ms).unwrap_or(i64::MAX),
                                e.body,
                            ])
                        })
                        .expect("insert");
                    assert_eq!(changed, 1);
                }
                total += started.elapsed();
                conn.execute("DELETE FROM inbox", []).expect("delete");
            }
            total
        });
    });
    group.finish();
}

fn drain(c: &mut Criterion) {
    let runtime = Runtime::new().expect("runtime");
    let dir = BenchDir::new("drain");
    let entries = std::sync::Arc::new(Entries {
        body: body(),
        next: AtomicU64::new(0),
    });
    let path = dir.0.join("inbox.sqlite3");
    let inbox = SqliteInbox::open(&path).expect("open");
    let mut group = c.benchmark_group("drain");
    group.throughput(Throughput::Elements(PER_ITERATION));
    group.bench_function("lease_32_ack_concurrently", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                runtime.block_on(insert_concurrently(&inbox, &entries, PER_ITERATION));
                total += runtime.block_on(async {
                    let started = Instant::now();
                    let mut drained = 0;
                    loop {
                        let request = LeaseRequest {
                            max: CONCURRENCY,
                            lease: Duration::from_secs(30),
                            now_ms: NOW,
                            consumer: "bench".to_owned(),
                        };
                        let leased = inbox.lease(request).await.expect("lease");
                        if leased.is_empty() {
                            break;
                        }
                        drained += leased.len();
                        let mut acks = tokio::task::JoinSet::new();
                        for l in leased {
                            let inbox = inbox.clone();
                            acks.spawn(async move { inbox.ack(&l.key, l.token, NOW).await });
                        }
                        while let Some(acked) = acks.join_next().await {
                            assert_eq!(acked.expect("an ack panicked"), Ok(true));
                        }
                    }
                    assert_eq!(drained as u64, PER_ITERATION);
                    started.elapsed()
                });
                empty(&path);
            }
            total
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = insert, drain
}
criterion_main!(benches);
