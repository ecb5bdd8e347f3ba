//! [`RedisInbox`]: the inbox in Redis Streams, shared by every replica.

mod scripts;
mod store;

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ::redis::aio::ConnectionManager;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::InboxError;
use crate::dedupe::DedupeKey;
use crate::redis_conn::{self, bounded};
use crate::tokens::Tokens;

/// An [`Inbox`](super::Inbox) in Redis (or Valkey) Streams with a consumer
/// group: several replicas behind a load balancer store into one Redis and
/// their workers share the work, each event leased by one worker at a time.
/// Feature `redis` (`redis://`, `redis+unix://`); `rediss://` needs feature
/// `redis-tls`.
///
/// # Key layout
///
/// Every key starts with the [prefix](Self::with_prefix) (default
/// [`DEFAULT_PREFIX`](Self::DEFAULT_PREFIX)); `<hex>` is
/// [`DedupeKey::to_hex`]:
///
/// | key | type | holds |
/// |---|---|---|
/// | `e:<hex>` | hash | one entry: `body`, `state`, `event`, `order`, `received`, `attempts`, `due`, `token`, `consumer`, `error`, `sid` (its stream entry), `seq`. The hash existing *is* the deduplication record |
/// | `stream` | stream | one entry (`k` = `<hex>`) per event a worker may lease; consumer group [`GROUP`](Self::GROUP) |
/// | `o:<order>` | list | per call (`call:<id>`) or chat: the keys of its unfinished events, in arrival order |
/// | `retry` | sorted set | entries waiting for a retry, by due time |
/// | `leases` | sorted set | leased entries, by lease end |
/// | `all` | sorted set | every entry, by received time |
/// | `s:<state>` | sorted set | the entries in each state (`s:ready`, `s:leased`, `s:retry`, `s:dead`, `s:done`), by received time: counts, listings, dead letters |
/// | `seq` | string | entries stored so far: each entry's `seq`, the order they were stored in |
/// | `w:<name>` | string | a backfill's watermark (Unix milliseconds; module `backfill`, feature `api`) |
///
/// Each method is one Lua script (EVALSHA, EVAL after a Redis restart), so
/// its check and its writes are atomic: [`insert`](super::Inbox::insert)
/// creates the hash *and* adds the stream entry, so no crash leaves an event
/// stored but not deduplicated, or the reverse.
///
/// [`lease`](super::Inbox::lease) takes over entries whose lease ended by
/// the caller's `now_ms` (their worker stopped extending them; the pending
/// stream entry moves to the new consumer), moves due retries into the
/// stream, reads new entries (`XREADGROUP`) and leases each with a fresh
/// random token, at most 1024 per call, handed out in the order they were
/// stored. `ack`, `fail`, `extend` and `release` act only while the
/// caller's token holds the lease.
///
/// # Durability: configure Redis persistence
///
/// `insert` returns [`Stored`](super::Inserted::Stored), and the receiver
/// answers Retell `204`, once Redis has applied the script; whether that
/// survives a crash is Redis' persistence setting:
///
/// * AOF with `appendfsync always`: nothing acknowledged is lost;
/// * AOF with `appendfsync everysec` (Redis' default for AOF): a power loss
///   or kernel crash loses at most about the last second of acknowledged
///   events (a crash of the Redis process alone loses none);
/// * RDB snapshots only, or no persistence: a restart loses every event
///   since the last snapshot, acknowledged or not, and the consumer group.
///
/// A lost consumer group (`NOGROUP`: Redis restarted without its data, or
/// the stream was deleted) is created again by the next `lease`, reading the
/// stream from its start; a failing attempt is repeated at most once per
/// [`GROUP_RETRY`](Self::GROUP_RETRY), never in a loop.
///
/// # Per-call order
///
/// With [per-call order](Self::with_per_call_order) (the default), only the
/// first unfinished event of a call is in the stream: an event whose call
/// has an earlier one running, waiting for a retry or waiting itself is
/// stored ready but waits in the call's `o:` list. When the first one is
/// done or dead, the same script streams the next; a retry keeps its place.
/// Since the lists are in Redis, this holds across replicas. A replayed dead
/// letter is queued again at the end of its call's list: it runs after the
/// events of its call that arrived after it. All replicas must use the same
/// setting; without ordering every event is streamed at once.
///
/// # Deployment
///
/// One Redis (a primary, optionally with replicas or Sentinel): the scripts
/// derive key names from the prefix, which Redis Cluster does not allow.
/// Every replica uses the same prefix. Each consumer name (the worker's
/// [`LeaseRequest::consumer`](super::LeaseRequest::consumer)) stays in the
/// group once used; keep them stable (one per worker, not per start).
/// Lease ends, retry times and the done TTL are reckoned by the callers'
/// clocks (each call's `now_ms`), never Redis': keep the replicas' clocks in
/// sync (NTP).
///
/// Every call is bounded by the [command timeout](Self::with_timeout): a
/// Redis that is down, slow or unreachable makes `insert` fail within it
/// (the receiver answers `503`, and Retell retries); the
/// [`ConnectionManager`] reconnects once Redis is back. Errors and `Debug`
/// show the target without credentials, and never a body.
///
/// ```no_run
/// use retell_webhooks::inbox::RedisInbox;
/// use std::time::Duration;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let inbox = RedisInbox::connect("redis://:secret@queue.internal:6379/0")
///     .await?
///     .with_prefix("shop-a:retell:inbox:")
///     .with_done_ttl(Some(Duration::from_secs(3 * 24 * 3600)));
/// # let _ = inbox;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisInbox {
    conn: ConnectionManager,
    /// Extra connections for inserts, taken in turn with `conn`: Redis
    /// reads one socket's queued commands per turn, so inserts spread over
    /// several sockets share one AOF fsync instead of each waiting for its own.
    spare: Arc<[ConnectionManager]>,
    next: Arc<std::sync::atomic::AtomicUsize>,
    /// Where it connects, without credentials (for `Debug` and errors).
    target: String,
    prefix: String,
    ordered: bool,
    done_ttl: Option<Duration>,
    timeout: Duration,
    tokens: Arc<Tokens>,
    group: Arc<Mutex<GroupState>>,
    /// Woken by this process' inserts and settlements (`wait_for_work`).
    work: Arc<Notify>,
}

/// Connections [`RedisInbox::connect`] opens for inserts.
const INSERT_CONNECTIONS: usize = 16;

/// Whether the consumer group is known to exist, and when this store last
/// tried to create it.
#[derive(Debug, Default)]
struct GroupState {
    exists: bool,
    last_attempt: Option<Instant>,
}

impl RedisInbox {
    /// Default prefix of every key: `retell-webhooks:inbox:`.
    pub const DEFAULT_PREFIX: &'static str = "retell-webhooks:inbox:";

    /// Default time a processed event is kept (and so deduplicated): seven
    /// days after it was received.
    pub const DEFAULT_DONE_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

    /// Default bound on each Redis call: one second.
    pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(1);

    /// The consumer group on the stream.
    pub const GROUP: &'static str = "workers";

    /// The least time between two attempts to create the consumer group.
    pub const GROUP_RETRY: Duration = Duration::from_secs(1);

    /// Connects to the Redis at `url`: `redis://[[user]:password@]host[:port][/db]`,
    /// `redis+unix:///path/to/redis.sock[?db=N]`, or with feature `redis-tls`
    /// `rediss://…`. Each connection attempt is bounded by
    /// [`DEFAULT_COMMAND_TIMEOUT`](Self::DEFAULT_COMMAND_TIMEOUT).
    ///
    /// It opens 16 connections, which inserts take in turn: Redis with
    /// `appendfsync always` then covers the inserts of many sockets with one
    /// fsync (about twice the stored events per second of one connection).
    ///
    /// # Errors
    ///
    /// When the URL does not parse (the message never repeats it) or no
    /// connection could be made.
    pub async fn connect(url: &str) -> Result<Self, InboxError> {
        let (conn, target) = redis_conn::connect(url, Self::DEFAULT_COMMAND_TIMEOUT)
            .await
            .map_err(InboxError)?;
        let mut spare = Vec::with_capacity(INSERT_CONNECTIONS - 1);
        for _ in 1..INSERT_CONNECTIONS {
            let (extra, _) = redis_conn::connect(url, Self::DEFAULT_COMMAND_TIMEOUT)
                .await
                .map_err(InboxError)?;
            spare.push(extra);
        }
        let mut inbox = Self::from_manager(conn);
        inbox.spare = spare.into();
        inbox.target = target;
        Ok(inbox)
    }

    /// An inbox on a connection you configured yourself (TLS settings, retry
    /// policy). The command timeout still bounds each call; every call, inserts
    /// included, shares this one connection.
    #[must_use]
    pub fn from_manager(conn: ConnectionManager) -> Self {
        Self {
            conn,
            spare: Arc::new([]),
            next: Arc::default(),
            target: "a given ConnectionManager".to_owned(),
            prefix: Self::DEFAULT_PREFIX.to_owned(),
            ordered: true,
            done_ttl: Some(Self::DEFAULT_DONE_TTL),
            timeout: Self::DEFAULT_COMMAND_TIMEOUT,
            tokens: Arc::new(Tokens::new()),
            group: Arc::default(),
            work: Arc::new(Notify::new()),
        }
    }

    /// Prefixes every key with `prefix` (default
    /// [`DEFAULT_PREFIX`](Self::DEFAULT_PREFIX)), e.g. to keep two
    /// applications on one Redis apart. Replicas of one receiver must use
    /// the same prefix.
    #[must_use]
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self.group = Arc::default();
        self
    }

    /// Whether the events of one call (or chat) run one at a time in the
    /// order they were received (default `true`); see the type's docs. All
    /// replicas must agree.
    #[must_use]
    pub fn with_per_call_order(mut self, ordered: bool) -> Self {
        self.ordered = ordered;
        self
    }

    /// Deletes a processed entry `ttl` after it was received (default
    /// [`DEFAULT_DONE_TTL`](Self::DEFAULT_DONE_TTL)), by a Redis expiry set
    /// to the time left by the caller's clock when it is acknowledged; a
    /// copy of the event arriving later is stored again. `None` keeps done
    /// entries until [`prune`](super::Inbox::prune)d.
    #[must_use]
    pub fn with_done_ttl(mut self, ttl: Option<Duration>) -> Self {
        self.done_ttl = ttl;
        self
    }

    /// Bounds each Redis call by `timeout` (default
    /// [`DEFAULT_COMMAND_TIMEOUT`](Self::DEFAULT_COMMAND_TIMEOUT)). `insert`
    /// runs while Retell waits: keep it well under Retell's 10 s.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The key prefix.
    #[must_use]
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Whether per-call order is on.
    #[must_use]
    pub fn per_call_order(&self) -> bool {
        self.ordered
    }

    /// How long a processed entry is kept after it was received.
    #[must_use]
    pub fn done_ttl(&self) -> Option<Duration> {
        self.done_ttl
    }

    /// The bound on each Redis call.
    #[must_use]
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The Redis key of the hash of `key`'s entry: the prefix, `e:` and
    /// [`DedupeKey::to_hex`].
    #[must_use]
    pub fn entry_key(&self, key: &DedupeKey) -> String {
        format!("{}e:{}", self.prefix, key.to_hex())
    }

    /// The Redis key of the watermark `name` (a string of Unix
    /// milliseconds): the prefix, `w:` and the name.
    #[must_use]
    pub fn watermark_key(&self, name: &str) -> String {
        format!("{}w:{name}", self.prefix)
    }

    /// The Redis key of the stream.
    #[must_use]
    pub fn stream_key(&self) -> String {
        format!("{}stream", self.prefix)
    }

    /// The connection, e.g. to share it with the rest of the application.
    #[must_use]
    pub fn connection(&self) -> &ConnectionManager {
        &self.conn
    }

    /// The connection for the next insert.
    fn insert_connection(&self) -> ConnectionManager {
        let turn =
            self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % (self.spare.len() + 1);
        match turn.checked_sub(1).and_then(|i| self.spare.get(i)) {
            Some(conn) => conn.clone(),
            None => self.conn.clone(),
        }
    }

    fn group_state(&self) -> std::sync::MutexGuard<'_, GroupState> {
        self.group.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Creates the consumer group unless this store knows it exists: at
    /// most one attempt per [`GROUP_RETRY`](Self::GROUP_RETRY), whatever the
    /// number of callers.
    async fn ensure_group(&self) -> Result<(), InboxError> {
        {
            let mut group = self.group_state();
            if group.exists {
                return Ok(());
            }
            if let Some(last) = group.last_attempt {
                let wait = Self::GROUP_RETRY.saturating_sub(last.elapsed());
                if !wait.is_zero() {
                    return Err(InboxError::new(format!(
                        "redis lease: the consumer group of {} is missing; \
                         next attempt to create it in {wait:?}",
                        self.target
                    )));
                }
            }
            group.last_attempt = Some(Instant::now());
        }
        let mut conn = self.conn.clone();
        let create = ::redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(self.stream_key())
            .arg(Self::GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .to_owned();
        let created: Result<(), _> =
            bounded("create group", self.timeout, create.query_async(&mut conn)).await;
        match created {
            Ok(()) => {}
            Err(e) if e.redis().and_then(|r| r.code()) == Some("BUSYGROUP") => {}
            Err(e) => return Err(InboxError(e.to_string())),
        }
        self.group_state().exists = true;
        Ok(())
    }

    /// After a `NOGROUP`: the group has to be created again.
    fn group_lost(&self) {
        self.group_state().exists = false;
    }
}

impl fmt::Debug for RedisInbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisInbox")
            .field("target", &self.target)
            .field("prefix", &self.prefix)
            .field("per_call_order", &self.ordered)
            .field("done_ttl", &self.done_ttl)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}
