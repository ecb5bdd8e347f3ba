//! The baseline of the inbox benchmarks: an `Inbox` that commits one SQLite
//! transaction per delivery (same PRAGMAs as `SqliteInbox`: 16 KiB pages,
//! WAL, `synchronous=FULL`), which is what group commit is measured against.
//! Only `insert` is implemented; the receiver needs nothing else.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use retell_webhooks::dedupe::DedupeKey;
use retell_webhooks::inbox::{
    Entry, Failure, Inbox, InboxError, Inserted, LeaseRequest, Leased, ListFilter, NewEntry,
    Replay, Shown, Stats, StoreFuture,
};

pub struct PerDelivery {
    conn: Arc<Mutex<rusqlite::Connection>>,
}

impl PerDelivery {
    pub fn open(path: impl AsRef<Path>) -> Result<Self, rusqlite::Error> {
        let conn = rusqlite::Connection::open(path)?;
        conn.pragma_update(None, "page_size", 16384)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS entries (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                key BLOB NOT NULL UNIQUE,
                received_ms INTEGER NOT NULL,
                body BLOB NOT NULL
            )",
        )?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }
}

fn unsupported<T>() -> Result<T, InboxError> {
    Err(InboxError::new("not part of the per-delivery baseline"))
}

impl Inbox for PerDelivery {
    fn insert(&self, entry: NewEntry) -> StoreFuture<'_, Result<Inserted, InboxError>> {
        let conn = Arc::clone(&self.conn);
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let mut conn = conn.lock().map_err(|_| InboxError::new("poisoned"))?;
                let tx = conn
                    .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                    .map_err(|e| InboxError::new(e.to_string()))?;
                let changed = tx
                    .execute(
                        "INSERT OR IGNORE INTO entries (key, received_ms, body) VALUES (?1, ?2, ?3)",
                        rusqlite::params![
                            &entry.key.as_bytes()[..],
                            entry.received_ms as i64,
                            entry.body
                        ],
                    )
                    .map_err(|e| InboxError::new(e.to_string()))?;
                tx.commit().map_err(|e| InboxError::new(e.to_string()))?;
                Ok(if changed == 1 {
                    Inserted::Stored
                } else {
                    Inserted::Duplicate
                })
            })
            .await
            .map_err(|e| InboxError::new(e.to_string()))?
        })
    }
    fn lease(&self, _: LeaseRequest) -> StoreFuture<'_, Result<Vec<Leased>, InboxError>> {
        Box::pin(async { unsupported() })
    }
    fn extend<'a>(
        &'a self,
        _: &'a DedupeKey,
        _: u64,
        _: Duration,
        _: u64,
    ) -> StoreFuture<'a, Result<bool, InboxError>> {
        Box::pin(async { unsupported() })
    }
    fn ack<'a>(
        &'a self,
        _: &'a DedupeKey,
        _: u64,
        _: u64,
    ) -> StoreFuture<'a, Result<bool, InboxError>> {
        Box::pin(async { unsupported() })
    }
    fn fail<'a>(
        &'a self,
        _: &'a DedupeKey,
        _: u64,
        _: Failure,
        _: u64,
    ) -> StoreFuture<'a, Result<bool, InboxError>> {
        Box::pin(async { unsupported() })
    }
    fn release<'a>(
        &'a self,
        _: &'a DedupeKey,
        _: u64,
    ) -> StoreFuture<'a, Result<bool, InboxError>> {
        Box::pin(async { unsupported() })
    }
    fn replay(&self, _: Replay, _: u64) -> StoreFuture<'_, Result<u64, InboxError>> {
        Box::pin(async { unsupported() })
    }
    fn list(&self, _: ListFilter) -> StoreFuture<'_, Result<Vec<Entry>, InboxError>> {
        Box::pin(async { unsupported() })
    }
    fn show<'a>(&'a self, _: &'a DedupeKey) -> StoreFuture<'a, Result<Option<Shown>, InboxError>> {
        Box::pin(async { unsupported() })
    }
    fn stats(&self, _: u64) -> StoreFuture<'_, Result<Stats, InboxError>> {
        Box::pin(async { unsupported() })
    }
    fn prune(&self, _: u64) -> StoreFuture<'_, Result<u64, InboxError>> {
        Box::pin(async { unsupported() })
    }
}
