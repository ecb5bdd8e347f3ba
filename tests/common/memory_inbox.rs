//! An in-memory `Inbox` for tests of the worker and the receiver (not
//! durable: the crate's stores are `SqliteInbox` and `RedisInbox`), and a
//! wrapper that makes any store fail or hang on demand.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use retell_webhooks::dedupe::DedupeKey;
use retell_webhooks::inbox::{
    Entry, Failure, Inbox, InboxError, Inserted, LeaseRequest, Leased, ListFilter, NewEntry,
    Replay, State, Stats, StoreFuture,
};

#[derive(Clone)]
struct Row {
    seq: u64,
    new: NewEntry,
    state: State,
    attempts: u32,
    due_ms: u64,
    token: u64,
    last_error: Option<String>,
}

#[derive(Default)]
pub struct MemoryInbox {
    rows: Mutex<BTreeMap<DedupeKey, Row>>,
    next: AtomicU64,
    pub ordered: bool,
    watermarks: Mutex<BTreeMap<String, u64>>,
}

impl MemoryInbox {
    pub fn new() -> Self {
        Self {
            ordered: true,
            ..Self::default()
        }
    }

    fn entry(row: &Row) -> Entry {
        Entry {
            key: row.new.key,
            state: row.state,
            event: row.new.event.clone(),
            order: row.new.order.clone(),
            received_ms: row.new.received_ms,
            attempts: row.attempts,
            due_ms: matches!(row.state, State::Retry | State::Leased).then_some(row.due_ms),
            last_error: row.last_error.clone(),
            body_len: row.new.body.len() as u64,
        }
    }

    fn with_held<T>(
        &self,
        key: &DedupeKey,
        token: u64,
        change: impl FnOnce(&mut Row) -> T,
    ) -> Result<bool, InboxError> {
        let mut rows = self.rows.lock().unwrap();
        match rows.get_mut(key) {
            Some(row) if row.state == State::Leased && row.token == token => {
                change(row);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    pub fn states(&self) -> Vec<(Option<String>, State, u32)> {
        let rows = self.rows.lock().unwrap();
        let mut all: Vec<&Row> = rows.values().collect();
        all.sort_by_key(|row| row.seq);
        all.iter()
            .map(|row| (row.new.event.clone(), row.state, row.attempts))
            .collect()
    }
}

impl Inbox for MemoryInbox {
    fn insert(&self, entry: NewEntry) -> StoreFuture<'_, Result<Inserted, InboxError>> {
        Box::pin(async move {
            let mut rows = self.rows.lock().unwrap();
            if rows.contains_key(&entry.key) {
                return Ok(Inserted::Duplicate);
            }
            let state = if entry.dead_reason.is_some() {
                State::Dead
            } else {
                State::Ready
            };
            rows.insert(
                entry.key,
                Row {
                    seq: self.next.fetch_add(1, Ordering::Relaxed),
                    last_error: entry.dead_reason.clone(),
                    due_ms: entry.received_ms,
                    new: entry,
                    state,
                    attempts: 0,
                    token: 0,
                },
            );
            Ok(Inserted::Stored)
        })
    }

    fn lease(&self, request: LeaseRequest) -> StoreFuture<'_, Result<Vec<Leased>, InboxError>> {
        Box::pin(async move {
            let mut rows = self.rows.lock().unwrap();
            let mut order: Vec<(u64, DedupeKey)> =
                rows.values().map(|row| (row.seq, row.new.key)).collect();
            order.sort();
            let unfinished =
                |row: &Row| matches!(row.state, State::Ready | State::Leased | State::Retry);
            let mut out = Vec::new();
            for (seq, key) in order {
                if out.len() >= request.max {
                    break;
                }
                let row = &rows[&key];
                let due = match row.state {
                    State::Ready => true,
                    State::Retry | State::Leased => row.due_ms <= request.now_ms,
                    State::Dead | State::Done => false,
                };
                let blocked = self.ordered
                    && row.new.order.is_some()
                    && rows.values().any(|other| {
                        other.seq < seq && other.new.order == row.new.order && unfinished(other)
                    });
                if !due || blocked {
                    continue;
                }
                let token = self.next.fetch_add(1, Ordering::Relaxed) + 1_000_000;
                let row = rows.get_mut(&key).unwrap();
                row.state = State::Leased;
                row.token = token;
                row.due_ms = request.now_ms + request.lease.as_millis() as u64;
                out.push(Leased {
                    key,
                    token,
                    body: row.new.body.clone(),
                    event: row.new.event.clone(),
                    received_ms: row.new.received_ms,
                    attempts: row.attempts,
                });
            }
            Ok(out)
        })
    }

    fn extend<'a>(
        &'a self,
        key: &'a DedupeKey,
        token: u64,
        lease: Duration,
        now_ms: u64,
    ) -> StoreFuture<'a, Result<bool, InboxError>> {
        Box::pin(async move {
            self.with_held(key, token, |row| {
                row.due_ms = now_ms + lease.as_millis() as u64
            })
        })
    }

    fn ack<'a>(
        &'a self,
        key: &'a DedupeKey,
        token: u64,
        _now_ms: u64,
    ) -> StoreFuture<'a, Result<bool, InboxError>> {
        Box::pin(async move { self.with_held(key, token, |row| row.state = State::Done) })
    }

    fn fail<'a>(
        &'a self,
        key: &'a DedupeKey,
        token: u64,
        failure: Failure,
        _now_ms: u64,
    ) -> StoreFuture<'a, Result<bool, InboxError>> {
        Box::pin(async move {
            self.with_held(key, token, |row| {
                row.attempts += 1;
                row.last_error = Some(failure.error);
                match failure.retry_at_ms {
                    Some(at) => {
                        row.state = State::Retry;
                        row.due_ms = at;
                    }
                    None => row.state = State::Dead,
                }
            })
        })
    }

    fn release<'a>(
        &'a self,
        key: &'a DedupeKey,
        token: u64,
    ) -> StoreFuture<'a, Result<bool, InboxError>> {
        Box::pin(async move { self.with_held(key, token, |row| row.state = State::Ready) })
    }

    fn replay(&self, which: Replay, _now_ms: u64) -> StoreFuture<'_, Result<u64, InboxError>> {
        Box::pin(async move {
            let mut rows = self.rows.lock().unwrap();
            let mut n = 0;
            for row in rows.values_mut() {
                let chosen = match &which {
                    Replay::Key(key) => row.new.key == *key && row.state != State::Leased,
                    Replay::Dead { since_ms } => {
                        row.state == State::Dead
                            && since_ms.is_none_or(|since| row.new.received_ms >= since)
                    }
                    Replay::Received { from_ms, to_ms } => {
                        row.state != State::Leased
                            && (*from_ms..*to_ms).contains(&row.new.received_ms)
                    }
                };
                if chosen {
                    row.state = State::Ready;
                    row.attempts = 0;
                    n += 1;
                }
            }
            Ok(n)
        })
    }

    fn list(&self, filter: ListFilter) -> StoreFuture<'_, Result<Vec<Entry>, InboxError>> {
        Box::pin(async move {
            let rows = self.rows.lock().unwrap();
            let mut all: Vec<&Row> = rows.values().collect();
            all.sort_by_key(|row| row.seq);
            Ok(all
                .into_iter()
                .filter(|row| filter.state.is_none_or(|state| row.state == state))
                .filter(|row| {
                    filter
                        .since_ms
                        .is_none_or(|since| row.new.received_ms >= since)
                })
                .take(filter.limit)
                .map(Self::entry)
                .collect())
        })
    }

    fn show<'a>(
        &'a self,
        key: &'a DedupeKey,
    ) -> StoreFuture<'a, Result<Option<(Entry, Vec<u8>)>, InboxError>> {
        Box::pin(async move {
            let rows = self.rows.lock().unwrap();
            Ok(rows
                .get(key)
                .map(|row| (Self::entry(row), row.new.body.clone())))
        })
    }

    fn stats(&self, _now_ms: u64) -> StoreFuture<'_, Result<Stats, InboxError>> {
        Box::pin(async move {
            let rows = self.rows.lock().unwrap();
            let mut stats = Stats::default();
            for row in rows.values() {
                match row.state {
                    State::Ready => {
                        stats.ready += 1;
                        let at = row.new.received_ms;
                        stats.oldest_ready_ms =
                            Some(stats.oldest_ready_ms.map_or(at, |o| o.min(at)));
                    }
                    State::Leased => stats.leased += 1,
                    State::Retry => stats.retry += 1,
                    State::Dead => stats.dead += 1,
                    State::Done => stats.done += 1,
                }
            }
            Ok(stats)
        })
    }

    fn prune(&self, before_ms: u64) -> StoreFuture<'_, Result<u64, InboxError>> {
        Box::pin(async move {
            let mut rows = self.rows.lock().unwrap();
            let before = rows.len();
            rows.retain(|_, row| !(row.state == State::Done && row.new.received_ms < before_ms));
            Ok((before - rows.len()) as u64)
        })
    }

    fn contains<'a>(&'a self, key: &'a DedupeKey) -> StoreFuture<'a, Result<bool, InboxError>> {
        Box::pin(async move { Ok(self.rows.lock().unwrap().contains_key(key)) })
    }

    fn watermark<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Result<Option<u64>, InboxError>> {
        Box::pin(async move { Ok(self.watermarks.lock().unwrap().get(name).copied()) })
    }

    fn advance_watermark<'a>(
        &'a self,
        name: &'a str,
        ms: u64,
    ) -> StoreFuture<'a, Result<u64, InboxError>> {
        Box::pin(async move {
            let mut marks = self.watermarks.lock().unwrap();
            let mark = marks.entry(name.to_owned()).or_insert(ms);
            *mark = (*mark).max(ms);
            Ok(*mark)
        })
    }
}

/// Wraps a store: `fail` makes every insert and lease fail, `hang` makes
/// them never answer.
pub struct Faulty<I> {
    pub inner: I,
    pub fail: AtomicBool,
    pub hang: AtomicBool,
    pub leases: AtomicU64,
}

impl<I> Faulty<I> {
    pub fn new(inner: I) -> Arc<Self> {
        Arc::new(Self {
            inner,
            fail: AtomicBool::new(false),
            hang: AtomicBool::new(false),
            leases: AtomicU64::new(0),
        })
    }
}

impl<I: Inbox> Faulty<I> {
    async fn gate(&self) -> Result<(), InboxError> {
        if self.hang.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        if self.fail.load(Ordering::SeqCst) {
            return Err(InboxError::new("disk I/O error (injected)"));
        }
        Ok(())
    }
}

impl<I: Inbox> Inbox for Faulty<I> {
    fn insert(&self, entry: NewEntry) -> StoreFuture<'_, Result<Inserted, InboxError>> {
        Box::pin(async move {
            self.gate().await?;
            self.inner.insert(entry).await
        })
    }
    fn lease(&self, request: LeaseRequest) -> StoreFuture<'_, Result<Vec<Leased>, InboxError>> {
        Box::pin(async move {
            self.leases.fetch_add(1, Ordering::SeqCst);
            self.gate().await?;
            self.inner.lease(request).await
        })
    }
    fn extend<'a>(
        &'a self,
        key: &'a DedupeKey,
        token: u64,
        lease: Duration,
        now_ms: u64,
    ) -> StoreFuture<'a, Result<bool, InboxError>> {
        self.inner.extend(key, token, lease, now_ms)
    }
    fn ack<'a>(
        &'a self,
        key: &'a DedupeKey,
        token: u64,
        now_ms: u64,
    ) -> StoreFuture<'a, Result<bool, InboxError>> {
        self.inner.ack(key, token, now_ms)
    }
    fn fail<'a>(
        &'a self,
        key: &'a DedupeKey,
        token: u64,
        failure: Failure,
        now_ms: u64,
    ) -> StoreFuture<'a, Result<bool, InboxError>> {
        self.inner.fail(key, token, failure, now_ms)
    }
    fn release<'a>(
        &'a self,
        key: &'a DedupeKey,
        token: u64,
    ) -> StoreFuture<'a, Result<bool, InboxError>> {
        self.inner.release(key, token)
    }
    fn replay(&self, which: Replay, now_ms: u64) -> StoreFuture<'_, Result<u64, InboxError>> {
        self.inner.replay(which, now_ms)
    }
    fn list(&self, filter: ListFilter) -> StoreFuture<'_, Result<Vec<Entry>, InboxError>> {
        self.inner.list(filter)
    }
    fn show<'a>(
        &'a self,
        key: &'a DedupeKey,
    ) -> StoreFuture<'a, Result<Option<(Entry, Vec<u8>)>, InboxError>> {
        self.inner.show(key)
    }
    fn stats(&self, now_ms: u64) -> StoreFuture<'_, Result<Stats, InboxError>> {
        self.inner.stats(now_ms)
    }
    fn prune(&self, before_ms: u64) -> StoreFuture<'_, Result<u64, InboxError>> {
        self.inner.prune(before_ms)
    }
    fn contains<'a>(&'a self, key: &'a DedupeKey) -> StoreFuture<'a, Result<bool, InboxError>> {
        self.inner.contains(key)
    }
    fn watermark<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Result<Option<u64>, InboxError>> {
        self.inner.watermark(name)
    }
    fn advance_watermark<'a>(
        &'a self,
        name: &'a str,
        ms: u64,
    ) -> StoreFuture<'a, Result<u64, InboxError>> {
        Box::pin(async move {
            self.gate().await?;
            self.inner.advance_watermark(name, ms).await
        })
    }
}
