//! The thread that owns the connection, and group commit.
//!
//! Every call of a [`SqliteInbox`](super::SqliteInbox) becomes a [`Command`]
//! on one channel. The thread takes the first command, then every command
//! already queued (up to [`MAX_BATCH`] commands or [`MAX_BATCH_BYTES`] of
//! bodies), runs them all in one transaction, each in a savepoint of its
//! own, and commits once: one fsync for the whole batch. Only then does it
//! answer them, so `Stored` always means committed; when the commit fails,
//! every command of the batch gets the error.

use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::{Notify, oneshot};

use super::super::{
    DedupeKey, Entry, Failure, InboxError, Inserted, LeaseRequest, Leased, ListFilter, NewEntry,
    Replay, Stats,
};
use super::{ops, sqlite_error};
use crate::tokens::Tokens;

/// The most commands in one transaction.
pub(super) const MAX_BATCH: usize = 512;

/// The most bytes of bodies in one transaction (a batch goes over by at most
/// one body).
pub(super) const MAX_BATCH_BYTES: usize = 64 << 20;

/// Where a command's answer goes.
pub(super) type Reply<T> = oneshot::Sender<Result<T, InboxError>>;

/// One call of the inbox, with where to send its answer.
pub(super) enum Command {
    Insert(NewEntry, Reply<Inserted>),
    Lease(LeaseRequest, bool, Reply<Vec<Leased>>),
    Extend(DedupeKey, u64, Duration, u64, Reply<bool>),
    Ack(DedupeKey, u64, u64, Reply<bool>),
    Fail(DedupeKey, u64, Failure, u64, Reply<bool>),
    Release(DedupeKey, u64, Reply<bool>),
    Replay(Replay, u64, Reply<u64>),
    Prune(u64, Reply<u64>),
    List(ListFilter, Reply<Vec<Entry>>),
    Show(DedupeKey, Reply<Option<(Entry, Vec<u8>)>>),
    Stats(Reply<Stats>),
    Contains(DedupeKey, Reply<bool>),
    Watermark(String, Reply<Option<u64>>),
    AdvanceWatermark(String, u64, Reply<u64>),
    /// Tests: runs a closure on the connection as a command of its own.
    #[cfg(test)]
    Run(RunOnThread, Reply<()>),
}

/// A closure the unit tests run on the thread's connection.
#[cfg(test)]
pub(super) type RunOnThread = Box<dyn FnOnce(&Connection) -> Result<(), InboxError> + Send>;

impl Command {
    fn body_len(&self) -> usize {
        match self {
            Command::Insert(entry, _) => entry.body.len(),
            _ => 0,
        }
    }

    fn writes(&self) -> bool {
        !matches!(
            self,
            Command::List(..)
                | Command::Show(..)
                | Command::Stats(..)
                | Command::Contains(..)
                | Command::Watermark(..)
        )
    }
}

/// What the unit tests observe of the thread.
#[cfg(test)]
#[derive(Default)]
pub(super) struct Probe {
    /// COMMITs attempted.
    pub(super) commits: std::sync::atomic::AtomicU64,
    /// The COMMIT (counting from 1) that fails: its batch is rolled back.
    pub(super) fail_commit: std::sync::atomic::AtomicU64,
}

struct Writer {
    conn: Connection,
    tokens: Tokens,
    notify: Arc<Notify>,
    #[cfg(test)]
    probe: Arc<Probe>,
}

/// Starts the thread; it ends once every sender is dropped.
pub(super) fn spawn(
    conn: Connection,
    notify: Arc<Notify>,
    #[cfg(test)] probe: Arc<Probe>,
) -> Result<Sender<Command>, InboxError> {
    let (commands, queue) = mpsc::channel();
    let writer = Writer {
        conn,
        tokens: Tokens::new(),
        notify,
        #[cfg(test)]
        probe,
    };
    std::thread::Builder::new()
        .name("retell-inbox-sqlite".to_owned())
        .spawn(move || writer.run(&queue))
        .map_err(|e| InboxError::new(format!("sqlite: cannot start the inbox thread: {e}")))?;
    Ok(commands)
}

impl Writer {
    fn run(self, queue: &Receiver<Command>) {
        while let Ok(first) = queue.recv() {
            let mut bytes = first.body_len();
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
                let Ok(next) = queue.try_recv() else { break };
                bytes = bytes.saturating_add(next.body_len());
                batch.push(next);
            }
            self.run_batch(batch);
        }
    }

    fn run_batch(&self, commands: Vec<Command>) {
        // A batch of reads only takes no write lock.
        let begin = if commands.iter().any(Command::writes) {
            "BEGIN IMMEDIATE"
        } else {
            "BEGIN DEFERRED"
        };
        let mut batch = Batch {
            writer: self,
            answers: Vec::with_capacity(commands.len()),
            broken: self.conn.execute_batch(begin).map_err(sqlite_error).err(),
            wake: false,
        };
        for command in commands {
            batch.execute(command);
        }
        batch.finish();
    }
}

/// An answer held back until the transaction ends.
trait Pending: Send {
    /// Sends the command's result, or the commit's error instead.
    fn send(self: Box<Self>, committed: &Result<(), InboxError>);
}

struct Answer<T> {
    reply: Reply<T>,
    result: Result<T, InboxError>,
}

impl<T: Send> Pending for Answer<T> {
    fn send(self: Box<Self>, committed: &Result<(), InboxError>) {
        let result = match committed {
            Ok(()) => self.result,
            Err(e) => Err(e.clone()),
        };
        // The caller may have stopped waiting: nothing to do then.
        let _ = self.reply.send(result);
    }
}

/// One transaction's commands, answered at its end.
struct Batch<'w> {
    writer: &'w Writer,
    answers: Vec<Box<dyn Pending>>,
    /// Set once the transaction cannot commit: later commands fail at once,
    /// and the end rolls back.
    broken: Option<InboxError>,
    /// Whether a committed command made an entry leasable.
    wake: bool,
}

impl Batch<'_> {
    fn execute(&mut self, command: Command) {
        match command {
            Command::Insert(entry, reply) => self.step(
                reply,
                |conn, _| ops::insert(conn, &entry),
                |inserted| *inserted == Inserted::Stored && entry.dead_reason.is_none(),
            ),
            Command::Lease(request, ordered, reply) => self.step(
                reply,
                |conn, tokens| ops::lease(conn, tokens, &request, ordered),
                |_| false,
            ),
            Command::Extend(key, token, lease, now_ms, reply) => self.step(
                reply,
                |conn, _| ops::extend(conn, &key, token, lease, now_ms),
                |_| false,
            ),
            // Settling an entry lets the next entry of its call go.
            Command::Ack(key, token, now_ms, reply) => self.step(
                reply,
                |conn, _| ops::ack(conn, &key, token, now_ms),
                |acted| *acted,
            ),
            Command::Fail(key, token, failure, now_ms, reply) => self.step(
                reply,
                |conn, _| ops::fail(conn, &key, token, &failure, now_ms),
                |acted| *acted,
            ),
            Command::Release(key, token, reply) => self.step(
                reply,
                |conn, _| ops::release(conn, &key, token),
                |acted| *acted,
            ),
            Command::Replay(which, now_ms, reply) => self.step(
                reply,
                |conn, _| ops::replay(conn, &which, now_ms),
                |replayed| *replayed > 0,
            ),
            Command::Prune(before_ms, reply) => {
                self.step(reply, |conn, _| ops::prune(conn, before_ms), |_| false);
            }
            Command::List(filter, reply) => {
                self.step(reply, |conn, _| ops::list(conn, &filter), |_| false);
            }
            Command::Show(key, reply) => {
                self.step(reply, |conn, _| ops::show(conn, &key), |_| false);
            }
            Command::Stats(reply) => self.step(reply, |conn, _| ops::stats(conn), |_| false),
            Command::Contains(key, reply) => {
                self.step(reply, |conn, _| ops::contains(conn, &key), |_| false);
            }
            Command::Watermark(name, reply) => {
                self.step(reply, |conn, _| ops::watermark(conn, &name), |_| false);
            }
            Command::AdvanceWatermark(name, ms, reply) => self.step(
                reply,
                |conn, _| ops::advance_watermark(conn, &name, ms),
                |_| false,
            ),
            #[cfg(test)]
            Command::Run(run, reply) => self.step(reply, |conn, _| run(conn), |_| true),
        }
    }

    /// Runs one command in a savepoint of its own (a failing statement
    /// undoes only its command) and keeps its answer for the end.
    fn step<T: Send + 'static>(
        &mut self,
        reply: Reply<T>,
        op: impl FnOnce(&Connection, &Tokens) -> Result<T, InboxError>,
        wakes: impl FnOnce(&T) -> bool,
    ) {
        let result = match &self.broken {
            Some(e) => Err(e.clone()),
            None => self.in_savepoint(op),
        };
        if result.as_ref().is_ok_and(wakes) {
            self.wake = true;
        }
        self.answers.push(Box::new(Answer { reply, result }));
    }

    fn in_savepoint<T>(
        &mut self,
        op: impl FnOnce(&Connection, &Tokens) -> Result<T, InboxError>,
    ) -> Result<T, InboxError> {
        let conn = &self.writer.conn;
        if let Err(e) = run(conn, "SAVEPOINT command") {
            self.broken = Some(e.clone());
            return Err(e);
        }
        let result = op(conn, &self.writer.tokens);
        let ended = if result.is_ok() {
            run(conn, "RELEASE command")
        } else {
            run(conn, "ROLLBACK TO command").and_then(|()| run(conn, "RELEASE command"))
        };
        match ended {
            Ok(()) => result,
            // SQLite rolled the whole transaction back (an I/O error, a full
            // disk), or the savepoint is in an unknown state.
            Err(e) => {
                self.broken = Some(e.clone());
                Err(e)
            }
        }
    }

    /// Commits (or rolls back a broken batch), then sends every answer.
    fn finish(self) {
        let conn = &self.writer.conn;
        let committed = match self.broken {
            Some(e) => Err(e),
            None => self.commit(),
        };
        if committed.is_err() && !conn.is_autocommit() {
            // Best effort: a connection that cannot roll back fails the next
            // batch's BEGIN, and so every later command.
            let _ = conn.execute_batch("ROLLBACK");
        }
        if committed.is_ok() && self.wake {
            // Every waiting worker, and the next one to wait: a worker
            // between an empty lease and its wait does not miss this.
            self.writer.notify.notify_waiters();
            self.writer.notify.notify_one();
        }
        for answer in self.answers {
            answer.send(&committed);
        }
    }

    fn commit(&self) -> Result<(), InboxError> {
        #[cfg(test)]
        {
            use std::sync::atomic::Ordering;
            let probe = &self.writer.probe;
            let n = probe.commits.fetch_add(1, Ordering::SeqCst) + 1;
            if n == probe.fail_commit.load(Ordering::SeqCst) {
                return Err(InboxError::new("sqlite: commit failed (test)"));
            }
        }
        self.writer
            .conn
            .execute_batch("COMMIT")
            .map_err(sqlite_error)
    }
}

/// Runs one statement without parameters or rows, prepared once.
fn run(conn: &Connection, sql: &str) -> Result<(), InboxError> {
    conn.prepare_cached(sql)
        .and_then(|mut stmt| stmt.execute([]))
        .map(drop)
        .map_err(sqlite_error)
}
