//! The thread and group commit, observed from inside (the store's behaviour
//! is covered by the contract suite in `tests/sqlite_inbox.rs`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::*;
use crate::inbox::State;

/// A directory of its own under the system's temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "retell-inbox-unit-{}-{name}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn open(&self) -> SqliteInbox {
        SqliteInbox::open(self.0.join("inbox.sqlite3")).unwrap()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn entry(n: u64) -> NewEntry {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&n.to_be_bytes());
    let body = format!(r#"{{"event":"call_ended","call":{{"call_id":"call_{n}"}}}}"#);
    NewEntry {
        key: DedupeKey::from_bytes(key),
        body: body.into_bytes(),
        event: Some("call_ended".to_owned()),
        order: Some(format!("call:call_{n}")),
        received_ms: 1_000 + n,
        dead_reason: None,
    }
}

/// Runs `run` on the thread's connection, as a command of its own.
fn run_on_thread(
    inbox: &SqliteInbox,
    run: impl FnOnce(&Connection) -> Result<(), InboxError> + Send + 'static,
) -> oneshot::Receiver<Result<(), InboxError>> {
    let (reply, answer) = oneshot::channel();
    inbox
        .shared
        .commands
        .send(Command::Run(Box::new(run), reply))
        .unwrap();
    answer
}

/// Holds the thread inside a batch of its own until the returned sender is
/// dropped: commands sent meanwhile queue up.
fn hold_thread(
    inbox: &SqliteInbox,
) -> (mpsc::Sender<()>, oneshot::Receiver<Result<(), InboxError>>) {
    let (started, is_started) = mpsc::channel();
    let (go, wait) = mpsc::channel::<()>();
    let done = run_on_thread(inbox, move |_| {
        started.send(()).unwrap();
        let _ = wait.recv();
        Ok(())
    });
    is_started.recv().unwrap();
    (go, done)
}

/// Queues an insert at once (as `Inbox::insert` does when first polled).
fn queue_insert(inbox: &SqliteInbox, n: u64) -> oneshot::Receiver<Result<Inserted, InboxError>> {
    let (reply, answer) = oneshot::channel();
    inbox
        .shared
        .commands
        .send(Command::Insert(entry(n), reply))
        .unwrap();
    answer
}

fn commits(inbox: &SqliteInbox) -> u64 {
    inbox.shared.probe.commits.load(Ordering::SeqCst)
}

/// Sends `n` inserts (in order) and waits for all their answers.
async fn insert_all(
    inbox: &SqliteInbox,
    entries: impl Iterator<Item = NewEntry>,
) -> Vec<Result<Inserted, InboxError>> {
    let pending: Vec<_> = entries
        .map(|e| {
            let inbox = inbox.clone();
            tokio::spawn(async move { inbox.insert(e).await })
        })
        .collect();
    let mut out = Vec::new();
    for task in pending {
        out.push(task.await.unwrap());
    }
    out
}

#[tokio::test]
async fn queued_inserts_share_one_commit_per_batch() {
    let dir = TempDir::new("group");
    let inbox = dir.open();
    let (go, held) = hold_thread(&inbox);
    let answers: Vec<_> = (0..1000).map(|n| queue_insert(&inbox, n)).collect();
    drop(go);
    held.await.unwrap().unwrap();
    for answer in answers {
        assert_eq!(answer.await.unwrap(), Ok(Inserted::Stored));
    }
    // The held batch, then 1000 inserts in two batches (512 + 488).
    assert_eq!(commits(&inbox), 3);
    assert_eq!(inbox.stats(0).await.unwrap().ready, 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_inserts_commit_far_fewer_times_than_they_insert() {
    let dir = TempDir::new("concurrent");
    let inbox = dir.open();
    let n = 1000;
    let answers = insert_all(&inbox, (0..n).map(entry)).await;
    assert!(answers.iter().all(|a| *a == Ok(Inserted::Stored)));
    let commits = commits(&inbox);
    assert!(commits <= n / 4, "{commits} commits for {n} inserts");
    assert_eq!(inbox.stats(0).await.unwrap().ready, n);
}

#[tokio::test]
async fn a_failing_command_fails_alone_in_its_batch() {
    let dir = TempDir::new("savepoint");
    let inbox = dir.open();
    let (go, held) = hold_thread(&inbox);
    let first = queue_insert(&inbox, 1);
    // Writes a row, then violates a constraint.
    let failing = run_on_thread(&inbox, |conn| {
        conn.execute(
            "INSERT INTO inbox (key, state, received_ms, due_ms, body, updated_ms)
             VALUES (zeroblob(32), 'ready', 0, 0, x'00', 0)",
            [],
        )
        .map_err(sqlite_error)?;
        conn.execute("INSERT INTO inbox (key) VALUES (x'01')", [])
            .map_err(sqlite_error)?;
        Ok(())
    });
    let second = queue_insert(&inbox, 2);
    drop(go);
    held.await.unwrap().unwrap();
    assert_eq!(first.await.unwrap(), Ok(Inserted::Stored));
    let error = failing.await.unwrap().unwrap_err();
    assert!(error.0.contains("constraint"), "{error}");
    assert_eq!(second.await.unwrap(), Ok(Inserted::Stored));
    // One batch for the held command, one for the three others.
    assert_eq!(commits(&inbox), 2);
    // The failing command's first row was undone with it.
    let listed = inbox.list(ListFilter::default()).await.unwrap();
    assert_eq!(listed.len(), 2);
}

#[tokio::test]
async fn a_failed_commit_answers_every_command_of_its_batch_with_the_error() {
    let dir = TempDir::new("commit");
    let inbox = dir.open();
    // Commit 1 is the held batch; commit 2, the inserts queued behind it.
    inbox.shared.probe.fail_commit.store(2, Ordering::SeqCst);
    let (go, held) = hold_thread(&inbox);
    let answers: Vec<_> = (0..10).map(|n| queue_insert(&inbox, n)).collect();
    drop(go);
    held.await.unwrap().unwrap();
    for answer in answers {
        let error = answer.await.unwrap().unwrap_err();
        assert!(error.to_string().contains("commit failed"), "{error}");
    }
    assert_eq!(commits(&inbox), 2);
    // Rolled back: nothing is stored, so the same entries are new again.
    assert_eq!(inbox.stats(0).await.unwrap(), Stats::default());
    assert_eq!(inbox.insert(entry(3)).await, Ok(Inserted::Stored));
}

#[tokio::test]
async fn the_connection_is_wal_with_synchronous_full() {
    let dir = TempDir::new("pragmas");
    let inbox = dir.open();
    let checked = run_on_thread(&inbox, |conn| {
        let read = |name: &str| -> String {
            conn.pragma_query_value(None, name, |row| row.get::<_, rusqlite::types::Value>(0))
                .map(|v| format!("{v:?}"))
                .unwrap()
        };
        assert_eq!(read("journal_mode"), "Text(\"wal\")");
        // 2 = FULL.
        assert_eq!(read("synchronous"), "Integer(2)");
        assert_eq!(read("busy_timeout"), "Integer(5000)");
        assert_eq!(read("user_version"), "Integer(2)");
        Ok(())
    });
    checked.await.unwrap().unwrap();
}

#[tokio::test]
async fn the_thread_ends_once_every_handle_is_dropped() {
    let dir = TempDir::new("drop");
    let inbox = dir.open();
    let clone = inbox.clone();
    let notify = Arc::clone(&inbox.shared.notify);
    assert_eq!(clone.insert(entry(1)).await, Ok(Inserted::Stored));
    drop(inbox);
    // A clone keeps the thread.
    assert_eq!(clone.stats(0).await.unwrap().count(State::Ready), 1);
    drop(clone);
    let deadline = Instant::now() + Duration::from_secs(10);
    // The thread held the other reference.
    while Arc::strong_count(&notify) > 1 {
        assert!(Instant::now() < deadline, "the thread is still running");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn calls_fail_without_panicking_once_the_thread_is_gone() {
    let dir = TempDir::new("gone");
    let inbox = dir.open();
    let crashed = run_on_thread(&inbox, |_| panic!("deliberate panic on the inbox thread"));
    assert!(crashed.await.is_err());
    let error = inbox.insert(entry(1)).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "inbox store failed: sqlite: the inbox thread has stopped"
    );
    assert!(inbox.stats(0).await.is_err());
    assert!(
        inbox
            .lease(LeaseRequest {
                max: 1,
                lease: Duration::from_secs(1),
                now_ms: 0,
                consumer: "w".to_owned(),
            })
            .await
            .is_err()
    );
}

#[tokio::test]
async fn debug_shows_the_path_and_settings_only() {
    let dir = TempDir::new("debug");
    let inbox = dir.open().with_per_call_order(false);
    let shown = format!("{inbox:?}");
    assert!(shown.starts_with("SqliteInbox { path: "), "{shown}");
    assert!(shown.contains("per_call_order: false"), "{shown}");
    assert_eq!(inbox.path(), dir.0.join("inbox.sqlite3"));
    assert!(!inbox.per_call_order());
}
