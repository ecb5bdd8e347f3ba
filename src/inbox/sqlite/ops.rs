//! The statements behind each method of the inbox. The writer thread runs
//! them inside its transaction, one savepoint per call.

use std::time::Duration;

use rusqlite::types::Type;
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::super::{
    DedupeKey, Entry, Failure, InboxError, Inserted, LeaseRequest, Leased, ListFilter, NewEntry,
    Replay, State, Stats,
};
use super::sqlite_error;
use crate::tokens::Tokens;

const INSERT: &str = "INSERT INTO inbox
    (key, state, event, order_key, received_ms, attempts, due_ms, last_error, body, updated_ms)
    VALUES (?1, ?2, ?3, ?4, ?5, 0, ?5, ?6, ?7, ?5)
    ON CONFLICT (key) DO NOTHING";

/// The due entries, oldest first. The `IN` list walks the `(state, due_ms)`
/// index. When `?2` (per-call order) is 1, an entry is skipped while an
/// earlier entry of its call is unsettled (ready, leased or retry: an
/// expired lease still holds its call back, and is itself a candidate).
const LEASE_CANDIDATES: &str = "SELECT e.seq, e.key, e.body, e.event, e.received_ms, e.attempts
    FROM inbox AS e
    WHERE e.seq IN (
        SELECT seq FROM inbox WHERE state = 'ready'
        UNION ALL SELECT seq FROM inbox WHERE state = 'retry' AND due_ms <= ?1
        UNION ALL SELECT seq FROM inbox WHERE state = 'leased' AND due_ms <= ?1)
    AND (?2 = 0 OR e.order_key IS NULL OR NOT EXISTS (
        SELECT 1 FROM inbox AS p
        WHERE p.order_key = e.order_key AND p.seq < e.seq
        AND p.state IN ('ready', 'leased', 'retry')))
    ORDER BY e.seq
    LIMIT ?3";

const TAKE: &str = "UPDATE inbox
    SET state = 'leased', token = ?2, due_ms = ?3, consumer = ?4, updated_ms = ?5
    WHERE seq = ?1";

/// The columns of an [`Entry`], in the order [`entry`] reads them.
const ENTRY_COLUMNS: &str =
    "key, state, event, order_key, received_ms, attempts, due_ms, last_error, length(body)";

/// Unix milliseconds (or a token) as SQLite's signed integer; past
/// `i64::MAX` (in 292 million years) it saturates.
pub(super) fn ms(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn from_ms(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// A token's 64 bits, stored as a signed integer.
fn token_bits(token: u64) -> i64 {
    i64::from_be_bytes(token.to_be_bytes())
}

fn count(changed: usize) -> u64 {
    u64::try_from(changed).unwrap_or(u64::MAX)
}

pub(super) fn insert(conn: &Connection, entry: &NewEntry) -> Result<Inserted, InboxError> {
    let state = if entry.dead_reason.is_some() {
        State::Dead
    } else {
        State::Ready
    };
    let changed = conn
        .prepare_cached(INSERT)
        .and_then(|mut stmt| {
            stmt.execute(params![
                entry.key.as_bytes(),
                state.as_str(),
                entry.event,
                entry.order,
                ms(entry.received_ms),
                entry.dead_reason,
                entry.body,
            ])
        })
        .map_err(sqlite_error)?;
    Ok(if changed == 0 {
        Inserted::Duplicate
    } else {
        Inserted::Stored
    })
}

pub(super) fn lease(
    conn: &Connection,
    tokens: &Tokens,
    request: &LeaseRequest,
    per_call_order: bool,
) -> Result<Vec<Leased>, InboxError> {
    if request.max == 0 {
        return Ok(Vec::new());
    }
    let now = ms(request.now_ms);
    let limit = i64::try_from(request.max).unwrap_or(i64::MAX);
    let due = ms(request.now_ms.saturating_add(millis(request.lease)));
    let picked = conn
        .prepare_cached(LEASE_CANDIDATES)
        .and_then(|mut stmt| {
            stmt.query_map(params![now, i64::from(per_call_order), limit], |row| {
                let seq: i64 = row.get(0)?;
                let leased = Leased {
                    key: DedupeKey::from_bytes(row.get(1)?),
                    token: 0,
                    body: row.get(2)?,
                    event: row.get(3)?,
                    received_ms: from_ms(row.get(4)?),
                    attempts: u32::try_from(row.get::<_, i64>(5)?).unwrap_or(u32::MAX),
                };
                Ok((seq, leased))
            })?
            .collect::<Result<Vec<_>, _>>()
        })
        .map_err(sqlite_error)?;
    let mut take = conn.prepare_cached(TAKE).map_err(sqlite_error)?;
    let mut out = Vec::with_capacity(picked.len());
    for (seq, mut leased) in picked {
        leased.token = tokens.next();
        take.execute(params![
            seq,
            token_bits(leased.token),
            due,
            request.consumer,
            now
        ])
        .map_err(sqlite_error)?;
        out.push(leased);
    }
    Ok(out)
}

/// Runs `sql` (its first two parameters the key and the token) on an entry
/// the token holds; whether it did.
fn settle(
    conn: &Connection,
    sql: &str,
    key: &DedupeKey,
    token: u64,
    more: &[&dyn rusqlite::ToSql],
) -> Result<bool, InboxError> {
    let mut values: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(2 + more.len());
    let token = token_bits(token);
    values.push(key.as_bytes());
    values.push(&token);
    values.extend_from_slice(more);
    let changed = conn
        .prepare_cached(sql)
        .and_then(|mut stmt| stmt.execute(values.as_slice()))
        .map_err(sqlite_error)?;
    Ok(changed > 0)
}

const HELD: &str = "WHERE key = ?1 AND state = 'leased' AND token = ?2";

pub(super) fn extend(
    conn: &Connection,
    key: &DedupeKey,
    token: u64,
    lease: Duration,
    now_ms: u64,
) -> Result<bool, InboxError> {
    let due = ms(now_ms.saturating_add(millis(lease)));
    let sql = format!("UPDATE inbox SET due_ms = ?3, updated_ms = ?4 {HELD}");
    settle(conn, &sql, key, token, &[&due, &ms(now_ms)])
}

pub(super) fn ack(
    conn: &Connection,
    key: &DedupeKey,
    token: u64,
    now_ms: u64,
) -> Result<bool, InboxError> {
    let sql = format!("UPDATE inbox SET state = 'done', token = NULL, updated_ms = ?3 {HELD}");
    settle(conn, &sql, key, token, &[&ms(now_ms)])
}

pub(super) fn fail(
    conn: &Connection,
    key: &DedupeKey,
    token: u64,
    failure: &Failure,
    now_ms: u64,
) -> Result<bool, InboxError> {
    let now = ms(now_ms);
    match failure.retry_at_ms {
        Some(at) => {
            let sql = format!(
                "UPDATE inbox SET state = 'retry', attempts = attempts + 1, last_error = ?3,
                due_ms = ?4, token = NULL, updated_ms = ?5 {HELD}"
            );
            settle(conn, &sql, key, token, &[&failure.error, &ms(at), &now])
        }
        None => {
            let sql = format!(
                "UPDATE inbox SET state = 'dead', attempts = attempts + 1, last_error = ?3,
                token = NULL, updated_ms = ?4 {HELD}"
            );
            settle(conn, &sql, key, token, &[&failure.error, &now])
        }
    }
}

pub(super) fn release(conn: &Connection, key: &DedupeKey, token: u64) -> Result<bool, InboxError> {
    let sql = format!("UPDATE inbox SET state = 'ready', token = NULL {HELD}");
    settle(conn, &sql, key, token, &[])
}

pub(super) fn replay(conn: &Connection, which: &Replay, now_ms: u64) -> Result<u64, InboxError> {
    let set = "UPDATE inbox SET state = 'ready', attempts = 0, due_ms = ?1, token = NULL,
        updated_ms = ?1";
    let now = ms(now_ms);
    let changed = match which {
        Replay::Key(key) => conn
            .prepare_cached(&format!("{set} WHERE key = ?2 AND state <> 'leased'"))
            .and_then(|mut stmt| stmt.execute(params![now, key.as_bytes()])),
        Replay::Dead { since_ms } => conn
            .prepare_cached(&format!(
                "{set} WHERE state = 'dead' AND (?2 IS NULL OR received_ms >= ?2)"
            ))
            .and_then(|mut stmt| stmt.execute(params![now, since_ms.map(ms)])),
        Replay::Received { from_ms, to_ms } => conn
            .prepare_cached(&format!(
                "{set} WHERE state <> 'leased' AND received_ms >= ?2 AND received_ms < ?3"
            ))
            .and_then(|mut stmt| stmt.execute(params![now, ms(*from_ms), ms(*to_ms)])),
    }
    .map_err(sqlite_error)?;
    Ok(count(changed))
}

pub(super) fn prune(conn: &Connection, before_ms: u64) -> Result<u64, InboxError> {
    let changed = conn
        .prepare_cached("DELETE FROM inbox WHERE state = 'done' AND received_ms < ?1")
        .and_then(|mut stmt| stmt.execute(params![ms(before_ms)]))
        .map_err(sqlite_error)?;
    Ok(count(changed))
}

/// An [`Entry`] from a row of [`ENTRY_COLUMNS`].
fn entry(row: &Row<'_>) -> rusqlite::Result<Entry> {
    let state: State = row.get_ref(1)?.as_str()?.parse().map_err(|e: InboxError| {
        rusqlite::Error::FromSqlConversionFailure(1, Type::Text, Box::new(e))
    })?;
    let due_ms: i64 = row.get(6)?;
    Ok(Entry {
        key: DedupeKey::from_bytes(row.get(0)?),
        state,
        event: row.get(2)?,
        order: row.get(3)?,
        received_ms: from_ms(row.get(4)?),
        attempts: u32::try_from(row.get::<_, i64>(5)?).unwrap_or(u32::MAX),
        due_ms: matches!(state, State::Retry | State::Leased).then(|| from_ms(due_ms)),
        last_error: row.get(7)?,
        body_len: from_ms(row.get(8)?),
    })
}

pub(super) fn list(conn: &Connection, filter: &ListFilter) -> Result<Vec<Entry>, InboxError> {
    let sql = format!(
        "SELECT {ENTRY_COLUMNS} FROM inbox
        WHERE (?1 IS NULL OR state = ?1) AND (?2 IS NULL OR received_ms >= ?2)
        ORDER BY received_ms, seq LIMIT ?3"
    );
    let limit = i64::try_from(filter.limit).unwrap_or(i64::MAX);
    conn.prepare_cached(&sql)
        .and_then(|mut stmt| {
            stmt.query_map(
                params![
                    filter.state.map(State::as_str),
                    filter.since_ms.map(ms),
                    limit
                ],
                entry,
            )?
            .collect()
        })
        .map_err(sqlite_error)
}

pub(super) fn show(
    conn: &Connection,
    key: &DedupeKey,
) -> Result<Option<(Entry, Vec<u8>)>, InboxError> {
    let sql = format!("SELECT {ENTRY_COLUMNS}, body FROM inbox WHERE key = ?1");
    conn.prepare_cached(&sql)
        .and_then(|mut stmt| {
            stmt.query_row(params![key.as_bytes()], |row| {
                Ok((entry(row)?, row.get(9)?))
            })
            .optional()
        })
        .map_err(sqlite_error)
}

pub(super) fn contains(conn: &Connection, key: &DedupeKey) -> Result<bool, InboxError> {
    conn.prepare_cached("SELECT 1 FROM inbox WHERE key = ?1")
        .and_then(|mut stmt| {
            stmt.query_row(params![key.as_bytes()], |_| Ok(()))
                .optional()
        })
        .map(|found| found.is_some())
        .map_err(sqlite_error)
}

pub(super) fn watermark(conn: &Connection, name: &str) -> Result<Option<u64>, InboxError> {
    conn.prepare_cached("SELECT ms FROM watermarks WHERE name = ?1")
        .and_then(|mut stmt| stmt.query_row(params![name], |row| row.get(0)).optional())
        .map(|ms| ms.map(from_ms))
        .map_err(sqlite_error)
}

pub(super) fn advance_watermark(conn: &Connection, name: &str, to: u64) -> Result<u64, InboxError> {
    conn.prepare_cached(
        "INSERT INTO watermarks (name, ms) VALUES (?1, ?2)
         ON CONFLICT (name) DO UPDATE SET ms = max(ms, excluded.ms)
         RETURNING ms",
    )
    .and_then(|mut stmt| stmt.query_row(params![name, ms(to)], |row| row.get(0)))
    .map(from_ms)
    .map_err(sqlite_error)
}

pub(super) fn stats(conn: &Connection) -> Result<Stats, InboxError> {
    let mut stats = Stats::default();
    let counts = conn
        .prepare_cached("SELECT state, count(*) FROM inbox GROUP BY state")
        .and_then(|mut stmt| {
            stmt.query_map([], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
            })?
            .collect::<Result<Vec<_>, _>>()
        })
        .map_err(sqlite_error)?;
    for (state, n) in counts {
        let n = from_ms(n);
        match state.parse::<State>()? {
            State::Ready => stats.ready = n,
            State::Leased => stats.leased = n,
            State::Retry => stats.retry = n,
            State::Dead => stats.dead = n,
            State::Done => stats.done = n,
        }
    }
    stats.oldest_ready_ms = conn
        .prepare_cached("SELECT min(received_ms) FROM inbox WHERE state = 'ready'")
        .and_then(|mut stmt| stmt.query_row([], |row| row.get::<_, Option<i64>>(0)))
        .map_err(sqlite_error)?
        .map(from_ms);
    Ok(stats)
}
