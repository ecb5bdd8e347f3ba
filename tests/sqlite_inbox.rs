//! `SqliteInbox`: every case of the store contract (`common/inbox_contract.rs`)
//! on a fresh file each, then what only a file can show: entries survive a
//! reopen, two handles on one file (as two processes) share it safely,
//! concurrent inserts are all stored, a file that cannot be created is an
//! error, and the file is in WAL mode.

#[macro_use]
#[path = "common/inbox_contract.rs"]
mod inbox_contract;
#[path = "common/temp_dir.rs"]
mod temp_dir;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use temp_dir::TempDir;

use inbox_contract::{NOW, Stores, call_event, insert, lease, request};
use retell_webhooks::dedupe::DedupeKey;
use retell_webhooks::inbox::{
    Failure, Inbox, Inserted, ListFilter, NewEntry, SqliteInbox, State, StoreFuture,
};

/// Each store in a new file of the case's directory.
struct Files {
    dir: TempDir,
    made: AtomicU64,
}

impl Stores for Files {
    fn fresh(&self, per_call_order: bool) -> StoreFuture<'_, Arc<dyn Inbox>> {
        let n = self.made.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.0.join(format!("inbox-{n}.sqlite3"));
        Box::pin(async move {
            let inbox = SqliteInbox::open(path).unwrap();
            Arc::new(inbox.with_per_call_order(per_call_order)) as Arc<dyn Inbox>
        })
    }
}

macro_rules! contract_tests {
    ($($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let files = Files { dir: TempDir::new(stringify!($case)), made: AtomicU64::new(0) };
                inbox_contract::$case(&files).await;
            }
        )*
    };
}

for_each_case!(contract_tests);

fn open(path: &Path) -> SqliteInbox {
    SqliteInbox::open(path).unwrap()
}

#[tokio::test]
async fn entries_survive_closing_and_reopening_the_file() {
    let dir = TempDir::new("reopen");
    let ended = call_event("call_ended", "call_a", NOW);
    let analyzed = call_event("call_analyzed", "call_a", NOW + 1);
    let other = call_event("call_ended", "call_b", NOW + 2);
    let broken = NewEntry::unreadable(b"{\"event\":[]}", "event: invalid type", NOW + 3);
    let token = {
        let inbox = open(&dir.file());
        for entry in [&ended, &analyzed, &other, &broken] {
            insert(&inbox, entry).await;
        }
        let leased = lease(&inbox, 10, NOW + 10).await;
        assert_eq!(leased.len(), 2);
        assert!(
            inbox
                .ack(&other.key, leased[1].token, NOW + 20)
                .await
                .unwrap()
        );
        leased[0].token
    };
    let inbox = open(&dir.file());
    let stats = inbox.stats(NOW + 30).await.unwrap();
    assert_eq!(
        (stats.ready, stats.leased, stats.done, stats.dead),
        (1, 1, 1, 1)
    );
    for entry in [&ended, &analyzed, &other, &broken] {
        let (_, body) = inbox.show(&entry.key).await.unwrap().unwrap();
        assert_eq!(body, entry.body);
        assert_eq!(inbox.insert(entry.clone()).await, Ok(Inserted::Duplicate));
    }
    // The lease taken before the reopen still holds, with its token.
    assert!(lease(&inbox, 10, NOW + 30).await.is_empty());
    assert!(inbox.ack(&ended.key, token, NOW + 40).await.unwrap());
    let next = lease(&inbox, 10, NOW + 40).await;
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].key, analyzed.key);
    assert_eq!(next[0].body, analyzed.body);
}

/// Two handles on one file, each with its own connection and thread, as two
/// processes would be: four inserters and four workers, half on each.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_handles_on_one_file_lose_nothing_and_never_lease_twice() {
    let dir = TempDir::new("shared");
    let handles = [open(&dir.file()), open(&dir.file())];
    let per_inserter = 100u64;
    let inserters = 4u64;
    let total = per_inserter * inserters;
    let mut inserting = Vec::new();
    for i in 0..inserters {
        let inbox = handles[(i % 2) as usize].clone();
        inserting.push(tokio::spawn(async move {
            let mut keys = Vec::new();
            for n in 0..per_inserter {
                // Pairs of events of one call, so per-call order is at work.
                let call = format!("call_{i}_{}", n / 2);
                let event = if n % 2 == 0 {
                    "call_ended"
                } else {
                    "call_analyzed"
                };
                let entry = call_event(event, &call, NOW + n);
                assert_eq!(inbox.insert(entry.clone()).await, Ok(Inserted::Stored));
                keys.push(entry.key);
            }
            keys
        }));
    }
    // Every key a worker held, and every key ever leased.
    let held = Arc::new(Mutex::new(HashSet::<DedupeKey>::new()));
    let leased_once = Arc::new(Mutex::new(HashMap::<DedupeKey, usize>::new()));
    let acked = Arc::new(AtomicU64::new(0));
    let mut working = Vec::new();
    for w in 0..4usize {
        let inbox = handles[w % 2].clone();
        let (held, leased_once, acked) = (held.clone(), leased_once.clone(), acked.clone());
        working.push(tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            while acked.load(Ordering::SeqCst) < total {
                assert!(Instant::now() < deadline, "the workers stalled");
                // The clock stands still: no lease ever expires.
                let batch = inbox.lease(request(8, NOW + 1_000)).await.unwrap();
                if batch.is_empty() {
                    inbox.wait_for_work(Duration::from_millis(5)).await;
                    continue;
                }
                for l in &batch {
                    assert!(held.lock().unwrap().insert(l.key), "leased twice at once");
                    let mut seen = leased_once.lock().unwrap();
                    let count = seen.entry(l.key).or_default();
                    *count += 1;
                    assert_eq!(*count, 1, "an unexpired lease was handed out again");
                }
                tokio::task::yield_now().await;
                for l in &batch {
                    assert!(held.lock().unwrap().remove(&l.key));
                    assert!(inbox.ack(&l.key, l.token, NOW + 2_000).await.unwrap());
                    acked.fetch_add(1, Ordering::SeqCst);
                }
            }
        }));
    }
    let mut inserted = HashSet::new();
    for task in inserting {
        inserted.extend(task.await.unwrap());
    }
    for task in working {
        task.await.unwrap();
    }
    assert_eq!(inserted.len() as u64, total);
    let leased: HashSet<_> = leased_once.lock().unwrap().keys().copied().collect();
    assert_eq!(leased, inserted);
    for inbox in &handles {
        let stats = inbox.stats(NOW).await.unwrap();
        assert_eq!((stats.done, stats.ready, stats.leased), (total, 0, 0));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_hundred_concurrent_inserts_are_all_stored() {
    let dir = TempDir::new("concurrent");
    let inbox = open(&dir.file());
    let tasks: Vec<_> = (0..500u64)
        .map(|n| {
            let inbox = inbox.clone();
            tokio::spawn(async move {
                let entry = call_event("call_ended", &format!("call_{n}"), NOW + n);
                inbox.insert(entry).await
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), Ok(Inserted::Stored));
    }
    let stats = inbox.stats(NOW).await.unwrap();
    assert_eq!(stats.ready, 500);
    assert_eq!(stats.oldest_ready_ms, Some(NOW));
    let listed = inbox
        .list(ListFilter {
            limit: 1_000,
            ..ListFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(listed.len(), 500);
    assert!(
        listed
            .windows(2)
            .all(|w| w[0].received_ms < w[1].received_ms)
    );
}

#[test]
fn a_file_that_cannot_be_opened_is_an_error() {
    let dir = TempDir::new("bad-path");
    // A directory that does not exist.
    let missing = dir.0.join("no/such/dir/inbox.sqlite3");
    let error = SqliteInbox::open(&missing).unwrap_err();
    assert!(error.to_string().contains("cannot open"), "{error}");
    // A directory where the file should be.
    assert!(SqliteInbox::open(&dir.0).is_err());
    // A file that is not a database.
    let garbage = dir.0.join("garbage.sqlite3");
    std::fs::write(&garbage, vec![0x5a; 8192]).unwrap();
    let error = SqliteInbox::open(&garbage).unwrap_err();
    assert!(error.to_string().contains("not a database"), "{error}");
}

#[test]
fn a_schema_from_a_newer_version_is_refused() {
    let dir = TempDir::new("newer");
    drop(open(&dir.file()));
    let conn = rusqlite::Connection::open(dir.file()).unwrap();
    conn.pragma_update(None, "user_version", 3).unwrap();
    drop(conn);
    let error = SqliteInbox::open(dir.file()).unwrap_err();
    assert!(error.to_string().contains("schema version 3"), "{error}");
}

/// A file of schema version 1 (before watermarks) gains the table and
/// keeps its entries.
#[tokio::test]
async fn a_version_1_file_is_migrated_to_version_2() {
    let dir = TempDir::new("migrate");
    let entry = call_event("call_ended", "call_a", NOW);
    {
        let inbox = open(&dir.file());
        insert(&inbox, &entry).await;
    }
    let conn = rusqlite::Connection::open(dir.file()).unwrap();
    conn.execute_batch("DROP TABLE watermarks; PRAGMA user_version = 1;")
        .unwrap();
    drop(conn);
    let inbox = open(&dir.file());
    assert_eq!(inbox.contains(&entry.key).await, Ok(true));
    assert_eq!(inbox.watermark("calls").await, Ok(None));
    assert_eq!(inbox.advance_watermark("calls", NOW).await, Ok(NOW));
    drop(inbox);
    let inbox = open(&dir.file());
    assert_eq!(inbox.watermark("calls").await, Ok(Some(NOW)));
    let conn = rusqlite::Connection::open(dir.file()).unwrap();
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .unwrap();
    assert_eq!(version, 2);
}

/// `journal_mode` is stored in the file, so another connection sees it.
/// `synchronous` is a setting of each connection: the unit tests read it
/// on the store's own connection.
#[tokio::test]
async fn the_file_is_in_wal_mode_with_a_versioned_schema() {
    let dir = TempDir::new("pragmas");
    let inbox = open(&dir.file());
    insert(&inbox, &call_event("call_ended", "call_a", NOW)).await;
    let conn = rusqlite::Connection::open(dir.file()).unwrap();
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |row| row.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .unwrap();
    assert_eq!(version, 2);
    let rows: i64 = conn
        .query_row(
            "SELECT count(*) FROM inbox WHERE state = 'ready'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(rows, 1);
    assert!(dir.0.join("inbox.sqlite3-wal").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_work_wakes_on_a_commit_that_makes_work() {
    let dir = TempDir::new("wait");
    let inbox = open(&dir.file());
    // Nothing happens: it waits for the timeout.
    let started = Instant::now();
    inbox.wait_for_work(Duration::from_millis(50)).await;
    assert!(started.elapsed() >= Duration::from_millis(50));
    // A worker waiting when an insert commits wakes at once.
    let waiter = {
        let inbox = inbox.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            inbox.wait_for_work(Duration::from_secs(30)).await;
            started.elapsed()
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let entry = call_event("call_ended", "call_a", NOW);
    insert(&inbox, &entry).await;
    assert!(waiter.await.unwrap() < Duration::from_secs(10));
    // So does one that starts waiting just after it (the lease found nothing
    // a moment before): the wake-up is kept for it.
    let leased = lease(&inbox, 10, NOW).await;
    let failure = Failure {
        error: "busy".to_owned(),
        retry_at_ms: Some(NOW + 1),
    };
    assert!(
        inbox
            .fail(&leased[0].key, leased[0].token, failure, NOW)
            .await
            .unwrap()
    );
    let started = Instant::now();
    inbox.wait_for_work(Duration::from_secs(30)).await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(
        inbox.list(ListFilter::default()).await.unwrap()[0].state,
        State::Retry
    );
}
