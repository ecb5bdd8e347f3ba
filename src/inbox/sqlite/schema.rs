//! Opening the file: the connection's settings and the versioned schema.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::super::InboxError;
use super::sqlite_error;

/// The schema this version writes and reads, kept in `PRAGMA user_version`.
pub(super) const VERSION: i64 = 2;

/// How long a statement waits for another connection's write lock (another
/// process sharing the file) before it fails with `SQLITE_BUSY`.
pub(super) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Version 1. One row per event; `seq` is the arrival order (AUTOINCREMENT:
/// never reused, even after a prune, so order holds across deletes).
///
/// `due_ms` is when a ready entry became ready, when a retry is due, or when
/// a lease ends. `token` is the lease token's 64 bits as a signed integer.
/// Every timestamp is Unix milliseconds from the caller's clock.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS inbox (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    key         BLOB    NOT NULL UNIQUE CHECK (length(key) = 32),
    state       TEXT    NOT NULL
                CHECK (state IN ('ready', 'leased', 'retry', 'dead', 'done')),
    event       TEXT,
    order_key   TEXT,
    received_ms INTEGER NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    due_ms      INTEGER NOT NULL,
    token       INTEGER,
    consumer    TEXT,
    last_error  TEXT,
    body        BLOB    NOT NULL,
    updated_ms  INTEGER NOT NULL
);
-- Leasing: ready entries, and retries and leases whose time has come.
CREATE INDEX IF NOT EXISTS inbox_state_due ON inbox (state, due_ms);
-- Per-call order: the earlier entries of one call.
CREATE INDEX IF NOT EXISTS inbox_order_seq ON inbox (order_key, seq);
-- Listings, replay of a time range and prune.
CREATE INDEX IF NOT EXISTS inbox_received ON inbox (received_ms);
";

/// Version 2: the backfill's watermarks (how far it stored everything), by
/// name. A version 1 file gains the table when opened.
const WATERMARKS: &str = "
CREATE TABLE IF NOT EXISTS watermarks (
    name TEXT    PRIMARY KEY,
    ms   INTEGER NOT NULL
) WITHOUT ROWID;
";

/// Opens (creating if needed) the file at `path`, applies the settings and
/// creates or checks the schema.
pub(super) fn open(path: &Path) -> Result<Connection, InboxError> {
    let shown = path.display();
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)
        .map_err(|e| InboxError::new(format!("sqlite: cannot open {shown}: {e}")))?;
    configure(&conn).map_err(|e| InboxError::new(format!("sqlite: {shown}: {}", e.0)))?;
    migrate(&conn).map_err(|e| InboxError::new(format!("sqlite: {shown}: {}", e.0)))?;
    Ok(conn)
}

/// Bytes per page of a new file.
pub(super) const PAGE_SIZE: u32 = 16 * 1024;

/// The connection's settings.
fn configure(conn: &Connection) -> Result<(), InboxError> {
    // First, so that switching to WAL below waits for another process too.
    conn.busy_timeout(BUSY_TIMEOUT).map_err(sqlite_error)?;
    // 16 KiB pages (for a new file; an existing one keeps its own): a 30 KB
    // body spans 2 overflow pages instead of 8, so each commit writes fewer,
    // larger WAL frames (about 1.6 times the inserts per second).
    conn.pragma_update(None, "page_size", PAGE_SIZE)
        .map_err(sqlite_error)?;
    // WAL: readers and the writer do not block each other, and a commit is
    // one append to the log (plus its fsync) instead of a rewrite of pages.
    // It is a property of the file: every process sharing it uses it.
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(sqlite_error)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(InboxError::new(format!(
            "the file cannot use WAL (journal_mode is {mode})"
        )));
    }
    // FULL: the WAL is synced on every commit, so an answered `Stored` is on
    // disk. With NORMAL (the usual WAL setting) the log is synced only at
    // checkpoints, and a committed transaction may roll back after a power
    // loss or an OS crash: Retell would have its `204` for an event that is
    // gone. Group commit pays for that fsync once per batch.
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(sqlite_error)?;
    // Every statement the writer runs, prepared once.
    conn.set_prepared_statement_cache_capacity(32);
    Ok(())
}

/// Creates the schema of a new file, migrates an older one, or checks the
/// version of an existing one.
fn migrate(conn: &Connection) -> Result<(), InboxError> {
    let version = user_version(conn)?;
    if version > VERSION {
        return Err(InboxError::new(format!(
            "the inbox has schema version {version}; this version of retell-webhooks reads up to {VERSION}"
        )));
    }
    if version == VERSION {
        return Ok(());
    }
    // IMMEDIATE: two processes opening a new file at once create it in turn.
    conn.execute_batch("BEGIN IMMEDIATE")
        .map_err(sqlite_error)?;
    // Read again under the lock: another process may have migrated it.
    let created = user_version(conn).and_then(|version| {
        if version == 0 {
            conn.execute_batch(SCHEMA).map_err(sqlite_error)?;
        }
        if version < 2 {
            conn.execute_batch(WATERMARKS).map_err(sqlite_error)?;
        }
        if version < VERSION {
            conn.pragma_update(None, "user_version", VERSION)
                .map_err(sqlite_error)?;
        }
        Ok(())
    });
    let end = if created.is_ok() {
        "COMMIT"
    } else {
        "ROLLBACK"
    };
    let ended = conn.execute_batch(end).map_err(sqlite_error);
    created.and(ended)
}

fn user_version(conn: &Connection) -> Result<i64, InboxError> {
    conn.pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(sqlite_error)
}
