//! [`RedisDedupe`]: the keys in Redis, shared by every replica.

use std::fmt;
use std::sync::LazyLock;
use std::time::Duration;

use ::redis::Script;
use ::redis::aio::ConnectionManager;

use crate::redis_conn::{self, millis};
use crate::tokens::Tokens;

use super::{Begin, DedupeError, DedupeKey, DedupeStore, StoreFuture, Ticket};

/// The value of a processed key. Tokens are written in decimal, so no token
/// reads as this.
const DONE: &str = "done";

/// `KEYS[1]` the key; `ARGV` token, lease in ms, done marker. Returns 0 when
/// the key was claimed, 1 when it is in flight, 2 when it is done.
static BEGIN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"local held = redis.call('GET', KEYS[1])
if held == ARGV[3] then return 2 end
if held then return 1 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 0",
    )
});

/// `ARGV` token, done marker, done TTL in ms. Returns 1 when the caller held
/// the key, 0 otherwise (its lease ended, or someone else holds it).
static FINISH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0",
    )
});

/// `ARGV` token. Deletes the key only if the caller still holds it.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0",
    )
});

/// `ARGV` token, lease in ms. Returns 1 when the caller held the key (its
/// lease now ends `lease` from now), 0 otherwise.
static EXTEND: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0",
    )
});

/// Pause between two releases of a claim whose `begin` got no answer.
const ORPHAN_RETRY: Duration = Duration::from_millis(100);

/// A [`DedupeStore`] in Redis (or Valkey): every replica behind a load
/// balancer sees the same keys, so a retry landing on another replica is
/// still recognised. Feature `redis` (`redis://`, `redis+unix://`);
/// `rediss://` needs feature `redis-tls`.
///
/// Each event is one Redis string, `<prefix><64 hex digits>`
/// ([`redis_key`](Self::redis_key)), and every method is one Lua script, so
/// its check and its write are atomic:
///
/// | method | script |
/// |---|---|
/// | [`begin`](DedupeStore::begin) | value `done` → [`Begin::Done`]; any other value → [`Begin::InFlight`]; absent → `SET key <token> PX <lease>` and [`Begin::Fresh`] |
/// | [`finish`](DedupeStore::finish) | if the value is the caller's token: `SET key done PX <done TTL>` |
/// | [`release`](DedupeStore::release) | if the value is the caller's token: `DEL key` |
/// | [`abandon`](DedupeStore::abandon) | spawns `release` on the current tokio runtime and returns at once; outside a runtime it does nothing and the lease frees the key |
/// | [`extend`](DedupeStore::extend) | if the value is the caller's token: `PEXPIRE key <lease>` |
///
/// Tokens are random 64-bit numbers (SHA-256 over a per-store seed drawn
/// from the OS's randomness, the process id and the time, and a counter), so
/// a replica whose lease ran out cannot finish or release the claim another
/// replica took since. Lease and TTL are Redis expiries: no clock of the
/// replicas is involved.
///
/// Every call is bounded by the [command timeout](Self::with_timeout)
/// (default [`DEFAULT_COMMAND_TIMEOUT`](RedisDedupe::DEFAULT_COMMAND_TIMEOUT)):
/// when Redis is unreachable, slow or down, `begin` fails with a
/// [`DedupeError`] within that time, the receiver answers `503` without
/// calling the handler, and Retell retries. The [`ConnectionManager`]
/// reconnects by itself once Redis is back. What a failure costs:
///
/// * a `begin` that timed out (or was dropped) may still reach a Redis that
///   was only slow, with a token nobody holds: a background task releases
///   it with that token, sent after the `begin` on the same connection and
///   repeated until Redis answers (at most for the lease), so the key is
///   free as soon as Redis resumes and the next copy is processed;
/// * a `finish` that failed after the handler succeeded leaves the key in
///   flight until its lease ends (the answer stands); a copy after that is
///   processed again;
/// * keys lost by Redis (a restart without persistence, an eviction) are
///   processed again by the next delivery.
///
/// It needs a tokio runtime with the time driver (as the redis client does);
/// clones share the connection.
///
/// ```no_run
/// use retell_webhooks::dedupe::RedisDedupe;
/// use retell_webhooks::{Receiver, ReceiverConfig};
/// use retell_webhooks::Verifier;
/// use std::time::Duration;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// // `redis+unix:///run/redis/redis.sock` and `rediss://` (feature
/// // `redis-tls`) work too.
/// let store = RedisDedupe::connect("redis://:secret@cache.internal:6379/0")
///     .await?
///     .with_prefix("shop-a:retell:")
///     .with_done_ttl(Duration::from_secs(6 * 3600));
/// let config = ReceiverConfig::new().with_dedupe(store);
/// let receiver = Receiver::new(Verifier::new("key_9f3c2e1d7a8b4c6e0f5a2b3c")?, config);
/// # let _ = receiver;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisDedupe {
    conn: ConnectionManager,
    /// Where it connects, without credentials (for `Debug`).
    target: String,
    prefix: String,
    done_ttl: Duration,
    timeout: Duration,
    tokens: std::sync::Arc<Tokens>,
}

impl RedisDedupe {
    /// Default prefix of every key: `retell-webhooks:`.
    pub const DEFAULT_PREFIX: &'static str = "retell-webhooks:";

    /// Default time a processed event is remembered: one hour (Retell's
    /// retries come within minutes).
    pub const DEFAULT_DONE_TTL: Duration = Duration::from_secs(3600);

    /// Default bound on each Redis call: one second. A Redis that answers at
    /// all answers in milliseconds, and every call of the receiver also ends
    /// at the handler deadline (9 s), within Retell's 10 s.
    pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(1);

    /// Connects to the Redis at `url`: `redis://[[user]:password@]host[:port][/db]`,
    /// `redis+unix:///path/to/redis.sock[?db=N]`, or with feature `redis-tls`
    /// `rediss://…`. Retries a refused connection a few times with a short
    /// backoff, each attempt bounded by [`DEFAULT_COMMAND_TIMEOUT`](Self::DEFAULT_COMMAND_TIMEOUT).
    ///
    /// With `redis-tls`, the first `rediss://` connection installs rustls'
    /// ring provider as the process default unless one is installed already.
    ///
    /// # Errors
    ///
    /// When the URL does not parse (the message never repeats it) or no
    /// connection could be made.
    pub async fn connect(url: &str) -> Result<Self, DedupeError> {
        let (conn, target) = redis_conn::connect(url, Self::DEFAULT_COMMAND_TIMEOUT)
            .await
            .map_err(DedupeError)?;
        let mut store = Self::from_manager(conn);
        store.target = target;
        Ok(store)
    }

    /// A store on a connection you configured yourself (TLS settings, retry
    /// policy, response timeout). The command timeout still bounds each call.
    #[must_use]
    pub fn from_manager(conn: ConnectionManager) -> Self {
        Self {
            conn,
            target: "a given ConnectionManager".to_owned(),
            prefix: Self::DEFAULT_PREFIX.to_owned(),
            done_ttl: Self::DEFAULT_DONE_TTL,
            timeout: Self::DEFAULT_COMMAND_TIMEOUT,
            tokens: std::sync::Arc::new(Tokens::new()),
        }
    }

    /// Prefixes every key with `prefix` (default [`DEFAULT_PREFIX`](Self::DEFAULT_PREFIX)), e.g. to
    /// keep two applications on one Redis apart. Replicas of one receiver
    /// must use the same prefix.
    #[must_use]
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Remembers a processed event for `ttl` (default [`DEFAULT_DONE_TTL`](Self::DEFAULT_DONE_TTL);
    /// at least a millisecond).
    #[must_use]
    pub fn with_done_ttl(mut self, ttl: Duration) -> Self {
        self.done_ttl = ttl;
        self
    }

    /// Bounds each Redis call by `timeout` (default
    /// [`DEFAULT_COMMAND_TIMEOUT`](Self::DEFAULT_COMMAND_TIMEOUT)). Keep it well under the handler deadline:
    /// `begin`, the handler and `finish` share it.
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

    /// How long a processed event is remembered.
    #[must_use]
    pub fn done_ttl(&self) -> Duration {
        self.done_ttl
    }

    /// The bound on each Redis call.
    #[must_use]
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The Redis key of `key`: the prefix and [`DedupeKey::to_hex`]. Its value
    /// is a decimal token while in flight, `done` once processed.
    #[must_use]
    pub fn redis_key(&self, key: &DedupeKey) -> String {
        let mut out = String::with_capacity(self.prefix.len() + 64);
        out.push_str(&self.prefix);
        out.push_str(&key.to_hex());
        out
    }

    /// The connection, e.g. to share it with the rest of the application.
    #[must_use]
    pub fn connection(&self) -> &ConnectionManager {
        &self.conn
    }
}

impl fmt::Debug for RedisDedupe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisDedupe")
            .field("target", &self.target)
            .field("prefix", &self.prefix)
            .field("done_ttl", &self.done_ttl)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl DedupeStore for RedisDedupe {
    fn begin<'a>(
        &'a self,
        key: &'a DedupeKey,
        lease: Duration,
        _now_ms: u64,
    ) -> StoreFuture<'a, Result<Begin, DedupeError>> {
        let token = self.tokens.next();
        let mut call = BEGIN.prepare_invoke();
        call.key(self.redis_key(key))
            .arg(token)
            .arg(millis(lease))
            .arg(DONE);
        let mut conn = self.conn.clone();
        let timeout = self.timeout;
        // Until Redis answers, the claim may exist with a token nobody will
        // finish: unless disarmed, the guard releases it in the background.
        let orphan = Orphan {
            claim: Some((self.conn.clone(), self.redis_key(key), Ticket::new(token))),
            lease,
            timeout,
        };
        Box::pin(async move {
            let mut orphan = orphan;
            let answer: i64 = bounded("begin", timeout, call.invoke_async(&mut conn)).await?;
            orphan.claim = None;
            match answer {
                0 => Ok(Begin::Fresh(Ticket::new(token))),
                1 => Ok(Begin::InFlight),
                2 => Ok(Begin::Done),
                other => Err(DedupeError(format!(
                    "redis begin: unexpected answer {other}"
                ))),
            }
        })
    }

    fn finish<'a>(
        &'a self,
        key: &'a DedupeKey,
        ticket: Ticket,
        _now_ms: u64,
    ) -> StoreFuture<'a, Result<(), DedupeError>> {
        let mut call = FINISH.prepare_invoke();
        call.key(self.redis_key(key))
            .arg(ticket.token())
            .arg(DONE)
            .arg(millis(self.done_ttl));
        let mut conn = self.conn.clone();
        let timeout = self.timeout;
        Box::pin(async move {
            let _held: i64 = bounded("finish", timeout, call.invoke_async(&mut conn)).await?;
            Ok(())
        })
    }

    fn release<'a>(
        &'a self,
        key: &'a DedupeKey,
        ticket: Ticket,
    ) -> StoreFuture<'a, Result<(), DedupeError>> {
        Box::pin(release(
            self.conn.clone(),
            self.redis_key(key),
            ticket,
            self.timeout,
        ))
    }

    fn extend<'a>(
        &'a self,
        key: &'a DedupeKey,
        ticket: Ticket,
        lease: Duration,
        _now_ms: u64,
    ) -> StoreFuture<'a, Result<bool, DedupeError>> {
        let mut call = EXTEND.prepare_invoke();
        call.key(self.redis_key(key))
            .arg(ticket.token())
            .arg(millis(lease));
        let mut conn = self.conn.clone();
        let timeout = self.timeout;
        Box::pin(async move {
            let held: i64 = bounded("extend", timeout, call.invoke_async(&mut conn)).await?;
            Ok(held == 1)
        })
    }

    fn abandon(&self, key: &DedupeKey, ticket: Ticket) {
        // Called from a destructor: never wait for Redis here. Without a
        // runtime the lease frees the key.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(release(
                self.conn.clone(),
                self.redis_key(key),
                ticket,
                self.timeout,
            ));
        }
    }
}

async fn release(
    mut conn: ConnectionManager,
    redis_key: String,
    ticket: Ticket,
    timeout: Duration,
) -> Result<(), DedupeError> {
    let mut call = RELEASE.prepare_invoke();
    call.key(redis_key).arg(ticket.token());
    let _deleted: i64 = bounded("release", timeout, call.invoke_async(&mut conn)).await?;
    Ok(())
}

/// The claim of a `begin` that got no answer (timed out, failed or dropped).
struct Orphan {
    claim: Option<(ConnectionManager, String, Ticket)>,
    lease: Duration,
    timeout: Duration,
}

impl Drop for Orphan {
    fn drop(&mut self) {
        let Some((conn, redis_key, ticket)) = self.claim.take() else {
            return;
        };
        // Without a runtime the lease frees the key.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (lease, timeout) = (self.lease, self.timeout);
        runtime.spawn(async move {
            // Past the lease the key is free anyway, and the token guard
            // keeps a later claim safe from a late release.
            let until = tokio::time::Instant::now() + lease;
            while tokio::time::Instant::now() < until {
                let attempt = release(conn.clone(), redis_key.clone(), ticket, timeout);
                if attempt.await.is_ok() {
                    return;
                }
                tokio::time::sleep(ORPHAN_RETRY).await;
            }
        });
    }
}

/// Runs one Redis call within `timeout`; a timeout and a Redis error are both
/// a [`DedupeError`] (the receiver answers `503`).
async fn bounded<T>(
    what: &'static str,
    timeout: Duration,
    call: impl Future<Output = Result<T, ::redis::RedisError>>,
) -> Result<T, DedupeError> {
    redis_conn::bounded(what, timeout, call)
        .await
        .map_err(|e| DedupeError(e.to_string()))
}
