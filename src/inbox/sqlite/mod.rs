//! [`SqliteInbox`]: the inbox in one SQLite file.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::Sender;
use std::time::Duration;

use tokio::sync::{Notify, oneshot};

use super::{
    DedupeKey, Entry, Failure, Inbox, InboxError, Inserted, LeaseRequest, Leased, ListFilter,
    NewEntry, Replay, Stats, StoreFuture,
};
use writer::{Command, Reply};

mod ops;
mod schema;
#[cfg(test)]
mod tests;
mod writer;

/// The embedded [`Inbox`]: every event in one SQLite file (bundled SQLite,
/// no server). Feature `sqlite`.
///
/// # Durability
///
/// The file is in WAL mode with `synchronous=FULL`: [`insert`](Inbox::insert)
/// answers [`Inserted::Stored`] only once its transaction is committed and
/// the log is synced to disk, so an event Retell got its `204` for survives
/// a crash or a power loss.
///
/// # One thread, group commit
///
/// All SQLite work runs on one thread of its own, which owns the connection:
/// nothing blocks the async runtime. Calls queue on a channel; the thread
/// takes every call already waiting (up to 512, or 64 MiB of bodies), runs
/// them in one transaction, each in a savepoint of its own, and commits once.
/// Deliveries that arrive together thus share one fsync, and are answered
/// after it. A statement that fails fails only its own call; a commit that
/// fails fails every call of its batch (none is answered `Stored`).
///
/// A call is queued when its future is first polled; dropping the future
/// afterwards does not take it back (an insert may still be stored, a lease
/// then runs out unused).
///
/// Clones share the thread and the file; once every clone is dropped the
/// thread finishes the calls queued and closes the file. If the thread is
/// gone, every call returns an [`InboxError`].
///
/// # Several processes
///
/// Several processes on one machine may open the same file (not over a
/// network file system): SQLite's locks keep them apart, each waits up to
/// five seconds for another's write lock, and a lease is taken in one
/// transaction, so an entry is never leased to two of them at once. Only
/// the process that made an entry ready wakes its own workers early
/// ([`Inbox::wait_for_work`]); the others find it at their next poll.
///
/// # Time
///
/// The store reads no clock: every instant is the `now_ms` (or
/// `received_ms`) it is given. Leases, retries and listings follow the
/// callers' clocks, so processes sharing a file should agree on the time.
///
/// # Example
///
/// ```
/// use retell_webhooks::WebhookEvent;
/// use retell_webhooks::inbox::{Inbox, Inserted, LeaseRequest, NewEntry, SqliteInbox, State};
/// use std::time::Duration;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = std::env::temp_dir().join(format!("retell-inbox-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir)?;
/// let inbox = SqliteInbox::open(dir.join("inbox.sqlite3"))?;
///
/// let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build()?;
/// runtime.block_on(async {
///     let now = 1_785_427_300_000;
///     // The receiver stores a verified event…
///     let body = br#"{"event":"call_ended","call":{"call_id":"call_1","call_status":"ended"}}"#;
///     let event = WebhookEvent::from_slice(body)?;
///     let entry = NewEntry::for_event(&event, body, now);
///     assert_eq!(inbox.insert(entry.clone()).await?, Inserted::Stored);
///     // …and Retell's retry of it is recognised.
///     assert_eq!(inbox.insert(entry).await?, Inserted::Duplicate);
///
///     // A worker leases it, runs the handler and acknowledges it.
///     let request = LeaseRequest {
///         max: 10,
///         lease: Duration::from_secs(30),
///         now_ms: now + 5,
///         consumer: "worker-1".to_owned(),
///     };
///     let leased = inbox.lease(request).await?;
///     assert_eq!(leased.len(), 1);
///     assert_eq!(leased[0].body, body);
///     assert!(inbox.ack(&leased[0].key, leased[0].token, now + 40).await?);
///
///     assert_eq!(inbox.stats(now + 50).await?.count(State::Done), 1);
///     Ok::<_, Box<dyn std::error::Error>>(())
/// })?;
/// # drop(inbox);
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct SqliteInbox {
    shared: Arc<Shared>,
    per_call_order: bool,
}

struct Shared {
    path: PathBuf,
    commands: Sender<Command>,
    /// Notified by the thread after a commit that made entries leasable.
    notify: Arc<Notify>,
    #[cfg(test)]
    probe: Arc<writer::Probe>,
}

/// A SQLite error as an [`InboxError`]. SQLite's messages name tables and
/// columns, never the values bound (no body, no key).
fn sqlite_error(error: rusqlite::Error) -> InboxError {
    InboxError::new(format!("sqlite: {error}"))
}

fn stopped() -> InboxError {
    InboxError::new("sqlite: the inbox thread has stopped")
}

impl SqliteInbox {
    /// Opens the inbox in the file at `path`, creating the file and its
    /// schema if needed, and starts the store's thread.
    ///
    /// This blocks briefly (it opens the file, switches it to WAL, checks the
    /// schema version, and may wait up to five seconds for another process
    /// holding the file's write lock): call it at start-up, or from
    /// [`spawn_blocking`](tokio::task::spawn_blocking).
    ///
    /// # Errors
    ///
    /// When the file cannot be opened or created (a missing directory, no
    /// permission), is not a SQLite database, cannot use WAL, has a schema
    /// from a newer version of this crate, or when the thread cannot start.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, InboxError> {
        let path = path.as_ref().to_path_buf();
        let conn = schema::open(&path)?;
        let notify = Arc::new(Notify::new());
        #[cfg(test)]
        let probe = Arc::new(writer::Probe::default());
        let commands = writer::spawn(
            conn,
            Arc::clone(&notify),
            #[cfg(test)]
            Arc::clone(&probe),
        )?;
        Ok(Self {
            shared: Arc::new(Shared {
                path,
                commands,
                notify,
                #[cfg(test)]
                probe,
            }),
            per_call_order: true,
        })
    }

    /// Keeps the events of one call (or chat) in the order received (`true`,
    /// the default) or leases every due entry regardless of its call
    /// (`false`). See [per-call order](super#per-call-order). Applies to the
    /// leases of this handle and of its clones made afterwards.
    #[must_use]
    pub fn with_per_call_order(mut self, on: bool) -> Self {
        self.per_call_order = on;
        self
    }

    /// Whether [`lease`](Inbox::lease) keeps per-call order.
    #[must_use]
    pub fn per_call_order(&self) -> bool {
        self.per_call_order
    }

    /// The file's path, as given to [`open`](Self::open).
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// Sends a command to the thread and waits for its answer.
    fn call<T: Send + 'static>(
        &self,
        command: impl FnOnce(Reply<T>) -> Command + Send + 'static,
    ) -> StoreFuture<'_, Result<T, InboxError>> {
        Box::pin(async move {
            let (reply, answer) = oneshot::channel();
            self.shared
                .commands
                .send(command(reply))
                .map_err(|_| stopped())?;
            answer.await.map_err(|_| stopped())?
        })
    }
}

impl fmt::Debug for SqliteInbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteInbox")
            .field("path", &self.shared.path)
            .field("per_call_order", &self.per_call_order)
            .finish_non_exhaustive()
    }
}

impl Inbox for SqliteInbox {
    fn insert(&self, entry: NewEntry) -> StoreFuture<'_, Result<Inserted, InboxError>> {
        self.call(|reply| Command::Insert(entry, reply))
    }

    fn lease(&self, request: LeaseRequest) -> StoreFuture<'_, Result<Vec<Leased>, InboxError>> {
        let ordered = self.per_call_order;
        self.call(move |reply| Command::Lease(request, ordered, reply))
    }

    fn extend<'a>(
        &'a self,
        key: &'a DedupeKey,
        token: u64,
        lease: Duration,
        now_ms: u64,
    ) -> StoreFuture<'a, Result<bool, InboxError>> {
        let key = *key;
        self.call(move |reply| Command::Extend(key, token, lease, now_ms, reply))
    }

    fn ack<'a>(
        &'a self,
        key: &'a DedupeKey,
        token: u64,
        now_ms: u64,
    ) -> StoreFuture<'a, Result<bool, InboxError>> {
        let key = *key;
        self.call(move |reply| Command::Ack(key, token, now_ms, reply))
    }

    fn fail<'a>(
        &'a self,
        key: &'a DedupeKey,
        token: u64,
        failure: Failure,
        now_ms: u64,
    ) -> StoreFuture<'a, Result<bool, InboxError>> {
        let key = *key;
        self.call(move |reply| Command::Fail(key, token, failure, now_ms, reply))
    }

    fn release<'a>(
        &'a self,
        key: &'a DedupeKey,
        token: u64,
    ) -> StoreFuture<'a, Result<bool, InboxError>> {
        let key = *key;
        self.call(move |reply| Command::Release(key, token, reply))
    }

    fn replay(&self, which: Replay, now_ms: u64) -> StoreFuture<'_, Result<u64, InboxError>> {
        self.call(move |reply| Command::Replay(which, now_ms, reply))
    }

    fn list(&self, filter: ListFilter) -> StoreFuture<'_, Result<Vec<Entry>, InboxError>> {
        self.call(move |reply| Command::List(filter, reply))
    }

    fn show<'a>(
        &'a self,
        key: &'a DedupeKey,
    ) -> StoreFuture<'a, Result<Option<(Entry, Vec<u8>)>, InboxError>> {
        let key = *key;
        self.call(move |reply| Command::Show(key, reply))
    }

    fn stats(&self, _now_ms: u64) -> StoreFuture<'_, Result<Stats, InboxError>> {
        self.call(Command::Stats)
    }

    fn prune(&self, before_ms: u64) -> StoreFuture<'_, Result<u64, InboxError>> {
        self.call(move |reply| Command::Prune(before_ms, reply))
    }

    fn contains<'a>(&'a self, key: &'a DedupeKey) -> StoreFuture<'a, Result<bool, InboxError>> {
        let key = *key;
        self.call(move |reply| Command::Contains(key, reply))
    }

    fn watermark<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Result<Option<u64>, InboxError>> {
        let name = name.to_owned();
        self.call(move |reply| Command::Watermark(name, reply))
    }

    fn advance_watermark<'a>(
        &'a self,
        name: &'a str,
        ms: u64,
    ) -> StoreFuture<'a, Result<u64, InboxError>> {
        let name = name.to_owned();
        self.call(move |reply| Command::AdvanceWatermark(name, ms, reply))
    }

    /// Completes after a commit in this process made entries leasable (an
    /// insert, a release, a replay, a settled entry whose call had later
    /// events waiting), or after `timeout`.
    fn wait_for_work(&self, timeout: Duration) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let _ = tokio::time::timeout(timeout, self.shared.notify.notified()).await;
        })
    }
}
