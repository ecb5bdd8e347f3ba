//! The [`Inbox`] methods of [`RedisInbox`]: arguments in, answers out; the
//! logic is in the [scripts](super::scripts).

use std::time::Duration;

use ::redis::{FromRedisValue, Script, ScriptInvocation};

use super::RedisInbox;
use super::scripts;
use crate::dedupe::DedupeKey;
use crate::inbox::{
    Entry, Failure, Inbox, InboxError, Inserted, LeaseRequest, Leased, ListFilter, NewEntry,
    Replay, State, Stats, StoreFuture,
};
use crate::redis_conn::{CallError, bounded, millis};

/// Entries per round trip of `replay`, `prune` and the expiry sweep.
const CHUNK: u64 = 500;

/// The most entries one `lease` hands out, whatever the request says.
const MAX_LEASE: usize = 1024;

/// One row of the lease script's answer.
type LeasedRow = (String, String, Vec<u8>, Option<String>, u64, u32);

/// One row of the list script's answer.
type EntryRow = (
    String,
    String,
    Option<String>,
    Option<String>,
    u64,
    u32,
    Option<u64>,
    Option<String>,
    u64,
);

/// The fields `show` reads, in order.
const SHOWN: [&str; 8] = [
    "state", "event", "order", "received", "attempts", "due", "error", "body",
];

type ShownRow = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<u64>,
    Option<u32>,
    Option<u64>,
    Option<String>,
    Option<Vec<u8>>,
);

impl RedisInbox {
    /// `script` with the arguments every script takes first.
    fn invocation(&self, script: &'static Script) -> ScriptInvocation<'static> {
        let mut call = script.prepare_invoke();
        call.arg(&self.prefix).arg(Self::GROUP);
        call
    }

    async fn run<T: FromRedisValue>(
        &self,
        what: &'static str,
        call: &ScriptInvocation<'static>,
    ) -> Result<T, CallError> {
        let mut conn = self.conn.clone();
        bounded(what, self.timeout, call.invoke_async(&mut conn)).await
    }

    async fn lease_once(
        &self,
        request: &LeaseRequest,
        max: usize,
    ) -> Result<Vec<Leased>, CallError> {
        let lease = millis(request.lease);
        let mut call = self.invocation(&scripts::LEASE);
        call.arg(&request.consumer)
            .arg(request.now_ms)
            .arg(request.now_ms.saturating_add(lease))
            .arg(max)
            .arg(self.expired_before(request.now_ms).unwrap_or_default());
        for _ in 0..max {
            call.arg(self.tokens.next());
        }
        let rows: Vec<LeasedRow> = self.run("lease", &call).await?;
        Ok(rows
            .into_iter()
            .filter_map(|(hex, token, body, event, received_ms, attempts)| {
                Some(Leased {
                    key: key_from_hex(&hex)?,
                    token: token.parse().ok()?,
                    body,
                    event,
                    received_ms,
                    attempts,
                })
            })
            .collect())
    }

    /// The bound below which done entries have expired (`(<ms>`), if they
    /// expire.
    fn expired_before(&self, now_ms: u64) -> Option<String> {
        self.done_ttl
            .map(|ttl| format!("({}", now_ms.saturating_sub(millis(ttl))))
    }

    /// Deletes done entries received before `bound` (`(<ms>`), a chunk per
    /// round trip; returns how many.
    async fn prune_below(&self, bound: &str) -> Result<u64, CallError> {
        let mut pruned = 0;
        loop {
            let mut call = self.invocation(&scripts::PRUNE);
            call.arg(bound).arg(CHUNK);
            let (n, scanned): (u64, u64) = self.run("prune", &call).await?;
            pruned += n;
            if scanned < CHUNK {
                return Ok(pruned);
            }
        }
    }

    /// Replays the entries of `index` (`all` or `s:dead`) scored in
    /// `[min, max]`, a chunk per round trip.
    async fn replay_range(&self, index: &str, min: &str, max: &str) -> Result<u64, CallError> {
        let (mut replayed, mut offset) = (0, 0);
        loop {
            let mut call = self.invocation(&scripts::REPLAY);
            call.arg(flag(self.ordered))
                .arg("range")
                .arg(index)
                .arg(min)
                .arg(max)
                .arg(offset)
                .arg(CHUNK);
            let (n, scanned, removed): (u64, u64, u64) = self.run("replay", &call).await?;
            replayed += n;
            if scanned < CHUNK {
                return Ok(replayed);
            }
            // Replayed entries leave the dead index but stay in `all`.
            let left_index = if index == "all" { 0 } else { n };
            offset += scanned.saturating_sub(removed + left_index);
        }
    }

    /// Wakes a worker of this process waiting in `wait_for_work`.
    fn wake(&self) {
        self.work.notify_one();
    }
}

impl Inbox for RedisInbox {
    fn insert(&self, entry: NewEntry) -> StoreFuture<'_, Result<Inserted, InboxError>> {
        let mut call = self.invocation(&scripts::INSERT);
        call.arg(entry.key.to_hex())
            .arg(&entry.body[..])
            .arg(opt(entry.event.as_deref()))
            .arg(opt(entry.order.as_deref()))
            .arg(entry.received_ms)
            .arg(opt(entry.dead_reason.as_deref()))
            .arg(flag(self.ordered));
        let dead = entry.dead_reason.is_some();
        Box::pin(async move {
            let mut conn = self.insert_connection();
            let stored: i64 = bounded("insert", self.timeout, call.invoke_async(&mut conn))
                .await
                .map_err(failed)?;
            if stored == 0 {
                return Ok(Inserted::Duplicate);
            }
            if !dead {
                self.wake();
            }
            Ok(Inserted::Stored)
        })
    }

    fn lease(&self, request: LeaseRequest) -> StoreFuture<'_, Result<Vec<Leased>, InboxError>> {
        Box::pin(async move {
            let max = request.max.min(MAX_LEASE);
            if max == 0 {
                return Ok(Vec::new());
            }
            self.ensure_group().await?;
            match self.lease_once(&request, max).await {
                Err(e) if is_nogroup(&e) => {
                    self.group_lost();
                    self.ensure_group().await?;
                    self.lease_once(&request, max).await.map_err(failed)
                }
                other => other.map_err(failed),
            }
        })
    }

    fn extend<'a>(
        &'a self,
        key: &'a DedupeKey,
        token: u64,
        lease: Duration,
        now_ms: u64,
    ) -> StoreFuture<'a, Result<bool, InboxError>> {
        let mut call = self.invocation(&scripts::EXTEND);
        call.arg(key.to_hex())
            .arg(token)
            .arg(now_ms.saturating_add(millis(lease)));
        Box::pin(async move {
            let held: i64 = self.run("extend", &call).await.map_err(failed)?;
            Ok(held == 1)
        })
    }

    fn ack<'a>(
        &'a self,
        key: &'a DedupeKey,
        token: u64,
        now_ms: u64,
    ) -> StoreFuture<'a, Result<bool, InboxError>> {
        let mut call = self.invocation(&scripts::ACK);
        call.arg(key.to_hex()).arg(token).arg(now_ms).arg(
            self.done_ttl
                .map(|ttl| millis(ttl).to_string())
                .unwrap_or_default(),
        );
        Box::pin(async move {
            let held: i64 = self.run("ack", &call).await.map_err(failed)?;
            if held == 1 {
                // The next event of its call may be ready now.
                self.wake();
            }
            Ok(held == 1)
        })
    }

    fn fail<'a>(
        &'a self,
        key: &'a DedupeKey,
        token: u64,
        failure: Failure,
        _now_ms: u64,
    ) -> StoreFuture<'a, Result<bool, InboxError>> {
        let mut call = self.invocation(&scripts::FAIL);
        call.arg(key.to_hex()).arg(token).arg(&failure.error).arg(
            failure
                .retry_at_ms
                .map(|at| at.to_string())
                .unwrap_or_default(),
        );
        let dead = failure.retry_at_ms.is_none();
        Box::pin(async move {
            let held: i64 = self.run("fail", &call).await.map_err(failed)?;
            if held == 1 && dead {
                self.wake();
            }
            Ok(held == 1)
        })
    }

    fn release<'a>(
        &'a self,
        key: &'a DedupeKey,
        token: u64,
    ) -> StoreFuture<'a, Result<bool, InboxError>> {
        let mut call = self.invocation(&scripts::RELEASE);
        call.arg(key.to_hex()).arg(token);
        Box::pin(async move {
            let held: i64 = self.run("release", &call).await.map_err(failed)?;
            if held == 1 {
                self.wake();
            }
            Ok(held == 1)
        })
    }

    fn replay(&self, which: Replay, _now_ms: u64) -> StoreFuture<'_, Result<u64, InboxError>> {
        Box::pin(async move {
            let replayed = match which {
                Replay::Key(key) => {
                    let mut call = self.invocation(&scripts::REPLAY);
                    call.arg(flag(self.ordered)).arg("key").arg(key.to_hex());
                    self.run("replay", &call).await
                }
                Replay::Dead { since_ms } => {
                    let min = since_ms.map_or_else(|| "-inf".to_owned(), |ms| ms.to_string());
                    self.replay_range("s:dead", &min, "+inf").await
                }
                Replay::Received { from_ms, to_ms } => {
                    self.replay_range("all", &from_ms.to_string(), &format!("({to_ms}"))
                        .await
                }
            }
            .map_err(failed)?;
            if replayed > 0 {
                self.wake();
            }
            Ok(replayed)
        })
    }

    fn list(&self, filter: ListFilter) -> StoreFuture<'_, Result<Vec<Entry>, InboxError>> {
        let state = filter.state.map_or("", State::as_str);
        let min = filter
            .since_ms
            .map_or_else(|| "-inf".to_owned(), |ms| ms.to_string());
        let mut call = self.invocation(&scripts::LIST);
        call.arg(state)
            .arg(min)
            .arg(filter.limit.min(u32::MAX as usize));
        Box::pin(async move {
            if filter.limit == 0 {
                return Ok(Vec::new());
            }
            let rows: Vec<EntryRow> = self.run("list", &call).await.map_err(failed)?;
            rows.into_iter()
                .map(
                    |(hex, state, event, order, received, attempts, due, error, len)| {
                        Ok(Entry {
                            key: key_from_hex(&hex).ok_or_else(malformed)?,
                            state: state.parse()?,
                            event,
                            order,
                            received_ms: received,
                            attempts,
                            due_ms: due,
                            last_error: error,
                            body_len: len,
                        })
                    },
                )
                .collect()
        })
    }

    fn show<'a>(
        &'a self,
        key: &'a DedupeKey,
    ) -> StoreFuture<'a, Result<Option<(Entry, Vec<u8>)>, InboxError>> {
        let command = ::redis::cmd("HMGET")
            .arg(self.entry_key(key))
            .arg(&SHOWN[..])
            .to_owned();
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let row: ShownRow = bounded("show", self.timeout, command.query_async(&mut conn))
                .await
                .map_err(failed)?;
            let (Some(state), event, order, received, attempts, due, error, body) = row else {
                return Ok(None);
            };
            let body = body.unwrap_or_default();
            let entry = Entry {
                key: *key,
                state: state.parse()?,
                event,
                order,
                received_ms: received.unwrap_or_default(),
                attempts: attempts.unwrap_or_default(),
                due_ms: due,
                last_error: error,
                body_len: body.len() as u64,
            };
            Ok(Some((entry, body)))
        })
    }

    fn stats(&self, now_ms: u64) -> StoreFuture<'_, Result<Stats, InboxError>> {
        Box::pin(async move {
            if let Some(bound) = self.expired_before(now_ms) {
                self.prune_below(&bound).await.map_err(failed)?;
            }
            let call = self.invocation(&scripts::STATS);
            let (ready, leased, retry, dead, done, oldest_ready_ms): (
                u64,
                u64,
                u64,
                u64,
                u64,
                Option<u64>,
            ) = self.run("stats", &call).await.map_err(failed)?;
            Ok(Stats {
                ready,
                leased,
                retry,
                dead,
                done,
                oldest_ready_ms,
            })
        })
    }

    fn prune(&self, before_ms: u64) -> StoreFuture<'_, Result<u64, InboxError>> {
        Box::pin(async move {
            self.prune_below(&format!("({before_ms}"))
                .await
                .map_err(failed)
        })
    }

    fn contains<'a>(&'a self, key: &'a DedupeKey) -> StoreFuture<'a, Result<bool, InboxError>> {
        let command = ::redis::cmd("EXISTS").arg(self.entry_key(key)).to_owned();
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let found: u64 = bounded("contains", self.timeout, command.query_async(&mut conn))
                .await
                .map_err(failed)?;
            Ok(found > 0)
        })
    }

    fn watermark<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Result<Option<u64>, InboxError>> {
        let command = ::redis::cmd("GET").arg(self.watermark_key(name)).to_owned();
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let ms: Option<u64> =
                bounded("watermark", self.timeout, command.query_async(&mut conn))
                    .await
                    .map_err(failed)?;
            Ok(ms)
        })
    }

    fn advance_watermark<'a>(
        &'a self,
        name: &'a str,
        ms: u64,
    ) -> StoreFuture<'a, Result<u64, InboxError>> {
        let mut call = self.invocation(&scripts::ADVANCE_WATERMARK);
        call.arg(name).arg(ms);
        Box::pin(async move { self.run("advance_watermark", &call).await.map_err(failed) })
    }

    fn wait_for_work(&self, timeout: Duration) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let _woken = tokio::time::timeout(timeout, self.work.notified()).await;
        })
    }
}

fn failed(error: CallError) -> InboxError {
    InboxError(error.to_string())
}

fn malformed() -> InboxError {
    InboxError::new("redis: malformed entry key in the inbox")
}

/// Whether the consumer group (or the stream) is gone.
fn is_nogroup(error: &CallError) -> bool {
    error
        .redis()
        .is_some_and(|e| e.code() == Some("NOGROUP") || e.to_string().contains("NOGROUP"))
}

/// An optional text as the scripts take it: `""` for none, `=` and the text
/// for some.
fn opt(text: Option<&str>) -> String {
    text.map_or_else(String::new, |text| format!("={text}"))
}

fn flag(on: bool) -> &'static str {
    if on { "1" } else { "0" }
}

/// The key of 64 lower-case hex digits, as [`DedupeKey::to_hex`] writes it.
fn key_from_hex(hex: &str) -> Option<DedupeKey> {
    fn nibble(digit: u8) -> Option<u8> {
        match digit {
            b'0'..=b'9' => Some(digit - b'0'),
            b'a'..=b'f' => Some(digit - b'a' + 10),
            _ => None,
        }
    }
    if hex.len() != 64 {
        return None;
    }
    let mut bytes = [0u8; 32];
    for (byte, pair) in bytes.iter_mut().zip(hex.as_bytes().chunks_exact(2)) {
        *byte = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(DedupeKey::from_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_hex() {
        let mut bytes = [0u8; 32];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(37);
        }
        let key = DedupeKey::from_bytes(bytes);
        assert_eq!(key_from_hex(&key.to_hex()), Some(key));
        assert_eq!(key_from_hex("ab"), None);
        assert_eq!(key_from_hex(&"G".repeat(64)), None);
        assert_eq!(key_from_hex(&key.to_hex().to_uppercase()), None);
    }

    #[test]
    fn optional_texts_keep_empty_apart_from_none() {
        assert_eq!(opt(None), "");
        assert_eq!(opt(Some("")), "=");
        assert_eq!(opt(Some("call:1")), "=call:1");
    }
}
