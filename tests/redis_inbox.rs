//! `RedisInbox` against a real `redis-server` (a child process on a Unix
//! socket, no mock): every case of the store contract
//! (`common/inbox_contract.rs`, as `contract::<case>`, each under a key
//! prefix of its own on one shared server), then the store's states and
//! token guards, leases taken over by another consumer, per-call order
//! across two replicas, Redis flushed, restarted and stopped.
//!
//! Its own harness (libtest-mimic, `harness = false`), which takes libtest's
//! arguments: without `redis-server` on the `PATH` the tests that need one
//! are reported as ignored, and the install hint is printed once; when `CI`
//! is `true` they fail instead, with that hint.

#[path = "common/redis_server.rs"]
mod redis_server;

#[macro_use]
#[path = "common/inbox_contract.rs"]
mod inbox_contract;

use std::future::Future;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use inbox_contract::Stores;
use libtest_mimic::{Arguments, Trial};
use retell_webhooks::WebhookEvent;
use retell_webhooks::dedupe::DedupeKey;
use retell_webhooks::inbox::{
    Failure, Inbox, Inserted, LeaseRequest, Leased, ListFilter, NewEntry, RedisInbox, Replay,
    State, StoreFuture,
};
use tokio::runtime::Builder;

use redis_server::RedisServer;

fn main() -> ExitCode {
    let args = Arguments::from_args();
    let installed = redis_server::installed();
    let required = redis_server::required();
    if !installed && !args.list {
        let fate = if required { "fail" } else { "are ignored" };
        eprintln!(
            "{}\nthe tests that need a redis-server {fate}",
            redis_server::missing()
        );
    }
    // Started by the first contract case that runs; stopped when `main`
    // returns (a static would never be dropped, leaving the server running).
    let shared = Shared::default();
    let mut cases = contract(&shared);
    cases.extend([
        // The store
        case!(current_thread insert_is_deduplicated_in_every_state),
        case!(current_thread lease_returns_the_exact_body),
        case!(current_thread a_stale_token_settles_nothing),
        case!(current_thread an_expired_lease_is_claimed_by_another_consumer_unless_extended),
        case!(current_thread a_failure_is_retried_when_due),
        case!(current_thread the_last_failure_makes_a_dead_letter),
        case!(current_thread release_makes_it_ready_at_once_without_an_attempt),
        case!(current_thread replay_by_key_dead_letters_and_received_range),
        case!(current_thread list_show_stats_and_prune),
        case!(current_thread done_entries_expire_after_the_done_ttl),
        case!(current_thread lease_ends_and_the_done_ttl_follow_the_callers_clock),
        case!(current_thread prefixes_keep_inboxes_apart),
        case!(current_thread contains_and_watermarks),
        // Two replicas sharing one Redis
        case!(two_workers per_call_order_holds_across_two_replicas),
        case!(current_thread without_per_call_order_every_event_is_leased_at_once),
        case!(two_workers four_concurrent_inserts_of_one_event_store_it_once),
        // Redis failing
        case!(current_thread a_lost_consumer_group_is_recreated_at_most_once_a_second),
        case!(current_thread after_a_restart_without_persistence_lease_recovers),
        case!(current_thread a_stopped_redis_fails_insert_within_the_command_timeout),
        case!(current_thread the_password_is_never_shown),
    ]);
    let trials = cases
        .into_iter()
        .map(|test| {
            let missing = !installed;
            Trial::test(test.name, move || {
                if missing {
                    return Err(redis_server::missing().into());
                }
                (test.run)();
                Ok(())
            })
            .with_ignored_flag(missing && !required)
        })
        .collect();
    let conclusion = libtest_mimic::run(&args, trials);
    drop(shared);
    conclusion.exit_code()
}

/// A test function and how to run it, named after the function.
struct Test {
    name: &'static str,
    run: Box<dyn FnOnce() + Send>,
}

/// `case!(current_thread f)` runs `async fn f()` on a current-thread
/// runtime (as `#[tokio::test]`), `case!(two_workers f)` on a multi-thread
/// runtime with two workers.
macro_rules! case {
    (current_thread $test:ident) => {
        Test {
            name: stringify!($test),
            run: Box::new(|| block_on(Builder::new_current_thread(), $test())),
        }
    };
    (two_workers $test:ident) => {
        Test {
            name: stringify!($test),
            run: Box::new(|| {
                let mut runtime = Builder::new_multi_thread();
                runtime.worker_threads(2);
                block_on(runtime, $test())
            }),
        }
    };
}
use case;

fn block_on(mut runtime: Builder, test: impl Future<Output = ()>) {
    runtime.enable_all().build().unwrap().block_on(test);
}

// ---------------------------------------------------------------------------
// The store contract
// ---------------------------------------------------------------------------

/// The server the contract cases share, started on first use.
type Shared = Arc<OnceLock<RedisServer>>;

/// The stores of one contract case: each a `RedisInbox` (default done TTL)
/// under a prefix of its own, `contract:<case>:<n>:`, so no case sees
/// another's keys.
struct Prefixed {
    url: String,
    case: &'static str,
    made: AtomicU64,
}

impl Prefixed {
    fn on(shared: &Shared, case: &'static str) -> Self {
        Self {
            url: shared.get_or_init(RedisServer::start).url(),
            case,
            made: AtomicU64::new(0),
        }
    }
}

impl Stores for Prefixed {
    fn fresh(&self, per_call_order: bool) -> StoreFuture<'_, Arc<dyn Inbox>> {
        let n = self.made.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("contract:{}:{n}:", self.case);
        Box::pin(async move {
            let inbox = RedisInbox::connect(&self.url).await.unwrap();
            Arc::new(
                inbox
                    .with_prefix(prefix)
                    .with_per_call_order(per_call_order),
            ) as Arc<dyn Inbox>
        })
    }
}

/// `contract::<case>` for every case, each on a current-thread runtime.
macro_rules! contract_cases {
    ($($case:ident),* $(,)?) => {
        fn contract(shared: &Shared) -> Vec<Test> {
            vec![$({
                let shared = shared.clone();
                Test {
                    name: concat!("contract::", stringify!($case)),
                    run: Box::new(move || {
                        let stores = Prefixed::on(&shared, stringify!($case));
                        block_on(Builder::new_current_thread(), async move {
                            inbox_contract::$case(&stores).await;
                        });
                    }),
                }
            }),*]
        }
    };
}

for_each_case!(contract_cases);

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

const MINUTE: Duration = Duration::from_secs(60);

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn body(event: &str, call_id: &str) -> Vec<u8> {
    format!(r#"{{"event":"{event}","call":{{"call_id":"{call_id}"}}}}"#).into_bytes()
}

/// The entry the receiver stores for `json`.
fn entry(json: &[u8], received_ms: u64) -> NewEntry {
    NewEntry::for_event(&WebhookEvent::from_slice(json).unwrap(), json, received_ms)
}

fn ended(call_id: &str, received_ms: u64) -> NewEntry {
    entry(&body("call_ended", call_id), received_ms)
}

fn analyzed(call_id: &str, received_ms: u64) -> NewEntry {
    entry(&body("call_analyzed", call_id), received_ms)
}

async fn inbox(server: &RedisServer) -> RedisInbox {
    RedisInbox::connect(&server.url()).await.unwrap()
}

fn request(consumer: &str, max: usize, lease: Duration, now_ms: u64) -> LeaseRequest {
    LeaseRequest {
        max,
        lease,
        now_ms,
        consumer: consumer.to_owned(),
    }
}

async fn lease(inbox: &RedisInbox, consumer: &str, now_ms: u64) -> Vec<Leased> {
    inbox
        .lease(request(consumer, 10, MINUTE, now_ms))
        .await
        .unwrap()
}

/// Leases exactly one entry, `key`'s.
async fn lease_one(inbox: &RedisInbox, key: &DedupeKey, now_ms: u64) -> Leased {
    let mut leased = lease(inbox, "worker-1", now_ms).await;
    assert_eq!(leased.len(), 1, "{leased:?}");
    let one = leased.remove(0);
    assert_eq!(one.key, *key);
    one
}

fn keys(leased: &[Leased]) -> Vec<DedupeKey> {
    leased.iter().map(|l| l.key).collect()
}

async fn state(inbox: &RedisInbox, key: &DedupeKey) -> Option<State> {
    inbox.show(key).await.unwrap().map(|(entry, _)| entry.state)
}

fn retry_at(ms: u64) -> Failure {
    Failure {
        error: "database down".to_owned(),
        retry_at_ms: Some(ms),
    }
}

fn dead() -> Failure {
    Failure {
        error: "gave up".to_owned(),
        retry_at_ms: None,
    }
}

/// A plain connection, to look at what the store wrote or to break Redis.
async fn raw(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

async fn command<T: redis::FromRedisValue>(server: &RedisServer, args: &[&str]) -> T {
    let mut cmd = redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    cmd.query_async(&mut raw(server).await).await.unwrap()
}

/// Polls `check` every 10 ms until it holds; fails after `bound`. Returns how
/// long it took.
async fn eventually<F, Fut>(bound: Duration, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if check().await {
            return started.elapsed();
        }
        assert!(started.elapsed() < bound, "{what}: not within {bound:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// ---------------------------------------------------------------------------
// The store
// ---------------------------------------------------------------------------

/// The stored entry is the deduplication record: a copy is a duplicate
/// while the entry is ready, leased, done or dead, and changes nothing.
async fn insert_is_deduplicated_in_every_state() {
    let server = RedisServer::start();
    let inbox = inbox(&server).await;
    assert_eq!(inbox.prefix(), "retell-webhooks:inbox:");
    assert!(inbox.per_call_order());
    assert_eq!(inbox.done_ttl(), Some(Duration::from_secs(7 * 24 * 3600)));
    assert_eq!(inbox.timeout(), Duration::from_secs(1));
    let t = now();
    let first = ended("call_dup", t);
    let key = first.key;
    assert_eq!(inbox.insert(first.clone()).await, Ok(Inserted::Stored));
    let hash = inbox.entry_key(&key);
    assert_eq!(hash, format!("retell-webhooks:inbox:e:{}", key.to_hex()));
    let stored: String = command(&server, &["HGET", &hash, "state"]).await;
    assert_eq!(stored, "ready");
    let streamed: u64 = command(&server, &["XLEN", &inbox.stream_key()]).await;
    assert_eq!(streamed, 1);

    assert_eq!(inbox.insert(first.clone()).await, Ok(Inserted::Duplicate));
    let leased = lease_one(&inbox, &key, t).await;
    assert_eq!(inbox.insert(first.clone()).await, Ok(Inserted::Duplicate));
    assert!(inbox.ack(&key, leased.token, t).await.unwrap());
    assert_eq!(state(&inbox, &key).await, Some(State::Done));
    assert_eq!(inbox.insert(first.clone()).await, Ok(Inserted::Duplicate));
    assert!(lease(&inbox, "worker-1", t).await.is_empty());
    // Settled entries leave the stream.
    let streamed: u64 = command(&server, &["XLEN", &inbox.stream_key()]).await;
    assert_eq!(streamed, 0);

    let second = ended("call_dup_dead", t);
    inbox.insert(second.clone()).await.unwrap();
    let leased = lease_one(&inbox, &second.key, t).await;
    assert!(
        inbox
            .fail(&second.key, leased.token, dead(), t)
            .await
            .unwrap()
    );
    assert_eq!(inbox.insert(second.clone()).await, Ok(Inserted::Duplicate));

    // A body the models cannot read: dead on arrival, keyed by its bytes.
    let garbage = NewEntry::unreadable(b"\xff{not json", "expected value at line 1", t);
    assert_eq!(inbox.insert(garbage.clone()).await, Ok(Inserted::Stored));
    assert_eq!(inbox.insert(garbage.clone()).await, Ok(Inserted::Duplicate));
    assert_eq!(state(&inbox, &garbage.key).await, Some(State::Dead));
    assert!(lease(&inbox, "worker-1", t).await.is_empty());
    let stats = inbox.stats(t).await.unwrap();
    assert_eq!(
        (stats.ready, stats.done, stats.dead),
        (0, 1, 2),
        "{stats:?}"
    );
}

/// The leased body is byte for byte the stored one: spacing, escapes,
/// non-ASCII text, a megabyte, bytes that are not UTF-8.
async fn lease_returns_the_exact_body() {
    let server = RedisServer::start();
    let inbox = inbox(&server).await;
    let t = now();
    let json = " {\"event\" : \"call_ended\",\n \"call\":{\"call_id\":\"call_bytes\",\
        \"transcript\":\"Gr\\u00fc\\u00df Gott \u{2014} \\\"ok\\\" \u{1f600}\",\
        \"latency\":2023.5500000000002}}\r\n"
        .as_bytes();
    let big = format!(
        r#"{{"event":"call_ended","call":{{"call_id":"call_big","transcript":"{}"}}}}"#,
        "word ".repeat(200_000)
    )
    .into_bytes();
    for body in [json, &big[..]] {
        let e = entry(body, t);
        inbox.insert(e.clone()).await.unwrap();
        let leased = lease_one(&inbox, &e.key, t).await;
        assert!(leased.body == body, "the leased body differs");
        assert_eq!(leased.event.as_deref(), Some("call_ended"));
        assert_eq!((leased.received_ms, leased.attempts), (t, 0));
        let (shown, shown_body) = inbox.show(&e.key).await.unwrap().unwrap();
        assert!(shown_body == body, "the shown body differs");
        assert_eq!(shown.body_len, body.len() as u64);
        assert!(inbox.ack(&e.key, leased.token, t).await.unwrap());
    }
    let bytes: Vec<u8> = (0..=255u8).chain(*b"\r\n\0").collect();
    let garbage = NewEntry::unreadable(&bytes, "not JSON", t);
    inbox.insert(garbage.clone()).await.unwrap();
    assert_eq!(inbox.replay(Replay::Key(garbage.key), t).await, Ok(1));
    let leased = lease_one(&inbox, &garbage.key, t).await;
    assert_eq!(leased.body, bytes);
    assert_eq!(leased.event, None);
}

/// A token that does not hold the lease acks, fails, extends and releases
/// nothing; once settled, the right one holds nothing either.
async fn a_stale_token_settles_nothing() {
    let server = RedisServer::start();
    let inbox = inbox(&server).await;
    let t = now();
    let e = ended("call_token", t);
    inbox.insert(e.clone()).await.unwrap();
    let leased = lease_one(&inbox, &e.key, t).await;
    let key = &e.key;
    for token in [leased.token.wrapping_add(1), 0] {
        assert!(!inbox.ack(key, token, t).await.unwrap());
        assert!(!inbox.fail(key, token, dead(), t).await.unwrap());
        assert!(!inbox.extend(key, token, MINUTE, t).await.unwrap());
        assert!(!inbox.release(key, token).await.unwrap());
    }
    let unknown = ended("call_never_stored", t).key;
    assert!(!inbox.ack(&unknown, leased.token, t).await.unwrap());
    assert_eq!(state(&inbox, key).await, Some(State::Leased));

    assert!(inbox.extend(key, leased.token, MINUTE, t).await.unwrap());
    assert!(inbox.ack(key, leased.token, t).await.unwrap());
    assert!(!inbox.ack(key, leased.token, t).await.unwrap());
    assert!(!inbox.fail(key, leased.token, dead(), t).await.unwrap());
    assert!(!inbox.extend(key, leased.token, MINUTE, t).await.unwrap());
    assert!(!inbox.release(key, leased.token).await.unwrap());
    assert_eq!(state(&inbox, key).await, Some(State::Done));
}

/// A worker that stops extending (it crashed) loses its entry to another
/// consumer once the lease has run out, and its stale token
/// settles nothing; a worker that extends keeps it.
async fn an_expired_lease_is_claimed_by_another_consumer_unless_extended() {
    let server = RedisServer::start();
    let (a, b) = (inbox(&server).await, inbox(&server).await);
    let short = Duration::from_millis(500);
    let e = ended("call_crashed_worker", now());
    a.insert(e.clone()).await.unwrap();
    let first = a
        .lease(request("worker-a", 10, short, now()))
        .await
        .unwrap();
    let started = Instant::now();
    assert_eq!(keys(&first), [e.key]);
    let second = loop {
        let got = b
            .lease(request("worker-b", 10, short, now()))
            .await
            .unwrap();
        if !got.is_empty() {
            break got;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "never claimed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // Not before the lease ran out.
    assert!(started.elapsed() >= Duration::from_millis(450));
    println!("claimed {:?} after the lease began", started.elapsed());
    assert_eq!(keys(&second), [e.key]);
    assert_ne!(second[0].token, first[0].token);
    assert_eq!(second[0].attempts, 0);
    assert!(!a.ack(&e.key, first[0].token, now()).await.unwrap());
    assert!(b.ack(&e.key, second[0].token, now()).await.unwrap());

    let e = ended("call_long_handler", now());
    a.insert(e.clone()).await.unwrap();
    let held = a
        .lease(request("worker-a", 10, short, now()))
        .await
        .unwrap();
    assert_eq!(keys(&held), [e.key]);
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(1500) {
        assert!(a.extend(&e.key, held[0].token, short, now()).await.unwrap());
        let got = b
            .lease(request("worker-b", 10, short, now()))
            .await
            .unwrap();
        assert!(got.is_empty(), "claimed although extended");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(a.ack(&e.key, held[0].token, now()).await.unwrap());
    assert_eq!(state(&b, &e.key).await, Some(State::Done));
}

/// A failure with a retry time: not leased before it, leased (with the
/// attempt counted) from then on.
async fn a_failure_is_retried_when_due() {
    let server = RedisServer::start();
    let inbox = inbox(&server).await;
    let t = now();
    let e = ended("call_retry", t);
    inbox.insert(e.clone()).await.unwrap();
    let first = lease_one(&inbox, &e.key, t).await;
    assert!(
        inbox
            .fail(&e.key, first.token, retry_at(t + 60_000), t)
            .await
            .unwrap()
    );
    let (shown, _) = inbox.show(&e.key).await.unwrap().unwrap();
    assert_eq!(shown.state, State::Retry);
    assert_eq!(shown.attempts, 1);
    assert_eq!(shown.due_ms, Some(t + 60_000));
    assert_eq!(shown.last_error.as_deref(), Some("database down"));
    assert_eq!(inbox.stats(t).await.unwrap().retry, 1);

    assert!(lease(&inbox, "worker-1", t + 59_999).await.is_empty());
    let second = lease_one(&inbox, &e.key, t + 60_000).await;
    assert_eq!(second.attempts, 1);
    assert!(
        inbox
            .fail(&e.key, second.token, retry_at(t + 120_000), t)
            .await
            .unwrap()
    );
    let third = lease_one(&inbox, &e.key, t + 180_000).await;
    assert_eq!(third.attempts, 2);
    assert!(inbox.ack(&e.key, third.token, t).await.unwrap());
    let stats = inbox.stats(t).await.unwrap();
    assert_eq!((stats.retry, stats.done), (0, 1), "{stats:?}");
}

async fn the_last_failure_makes_a_dead_letter() {
    let server = RedisServer::start();
    let inbox = inbox(&server).await;
    let t = now();
    let e = ended("call_dead", t);
    inbox.insert(e.clone()).await.unwrap();
    let leased = lease_one(&inbox, &e.key, t).await;
    assert!(inbox.fail(&e.key, leased.token, dead(), t).await.unwrap());
    let (shown, _) = inbox.show(&e.key).await.unwrap().unwrap();
    assert_eq!(shown.state, State::Dead);
    assert_eq!((shown.attempts, shown.due_ms), (1, None));
    assert_eq!(shown.last_error.as_deref(), Some("gave up"));
    assert!(lease(&inbox, "worker-1", t + 3_600_000).await.is_empty());
    let dead_letters = inbox
        .list(ListFilter {
            state: Some(State::Dead),
            ..ListFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(dead_letters, [shown]);
    assert_eq!(inbox.stats(t).await.unwrap().dead, 1);
}

/// A worker shutting down gives its lease back: ready at once, no attempt
/// counted.
async fn release_makes_it_ready_at_once_without_an_attempt() {
    let server = RedisServer::start();
    let inbox = inbox(&server).await;
    let t = now();
    let e = ended("call_release", t);
    inbox.insert(e.clone()).await.unwrap();
    let first = lease_one(&inbox, &e.key, t).await;
    assert!(inbox.release(&e.key, first.token).await.unwrap());
    assert_eq!(state(&inbox, &e.key).await, Some(State::Ready));
    let second = lease_one(&inbox, &e.key, t).await;
    assert_eq!(second.attempts, 0);
    assert_ne!(second.token, first.token);
    assert!(!inbox.release(&e.key, first.token).await.unwrap());
    assert!(inbox.ack(&e.key, second.token, t).await.unwrap());
}

/// Replay one key, the dead letters (since an instant), a received range:
/// attempts reset, leased entries left alone.
async fn replay_by_key_dead_letters_and_received_range() {
    let server = RedisServer::start();
    let inbox = inbox(&server).await;
    let (t, now) = (now() - 10_000, now());
    let e: Vec<NewEntry> = (0..5)
        .map(|i| ended(&format!("call_replay_{i}"), t + i))
        .collect();
    for entry in &e {
        inbox.insert(entry.clone()).await.unwrap();
    }
    let leased = lease(&inbox, "worker-1", now).await;
    assert_eq!(keys(&leased), e.iter().map(|e| e.key).collect::<Vec<_>>());
    let token = |i: usize| leased[i].token;
    assert!(inbox.ack(&e[0].key, token(0), now).await.unwrap());
    assert!(inbox.fail(&e[1].key, token(1), dead(), now).await.unwrap());
    assert!(inbox.fail(&e[2].key, token(2), dead(), now).await.unwrap());
    let later = retry_at(now + 3_600_000);
    assert!(inbox.fail(&e[3].key, token(3), later, now).await.unwrap());
    // e[4] stays leased.

    let unknown = ended("call_never_stored", t).key;
    assert_eq!(inbox.replay(Replay::Key(unknown), now).await, Ok(0));
    assert_eq!(inbox.replay(Replay::Key(e[4].key), now).await, Ok(0));
    assert_eq!(inbox.replay(Replay::Key(e[1].key), now).await, Ok(1));
    let since = Replay::Dead {
        since_ms: Some(t + 2),
    };
    assert_eq!(inbox.replay(since, now).await, Ok(1));
    let again = lease(&inbox, "worker-1", now).await;
    assert_eq!(keys(&again), [e[1].key, e[2].key]);
    assert!(again.iter().all(|l| l.attempts == 0));
    for l in &again {
        assert!(inbox.fail(&l.key, l.token, dead(), now).await.unwrap());
    }
    let all_dead = Replay::Dead { since_ms: None };
    assert_eq!(inbox.replay(all_dead, now).await, Ok(2));
    for l in lease(&inbox, "worker-1", now).await {
        assert!(inbox.ack(&l.key, l.token, now).await.unwrap());
    }

    // Done (0, 1, 2) and retry (3) are replayed; the leased one (4) is not.
    let range = Replay::Received {
        from_ms: t,
        to_ms: t + 5,
    };
    assert_eq!(inbox.replay(range, now).await, Ok(4));
    assert_eq!(state(&inbox, &e[4].key).await, Some(State::Leased));
    let replayed = lease(&inbox, "worker-1", now).await;
    let mut got = keys(&replayed);
    got.sort();
    let mut want: Vec<_> = e[..4].iter().map(|e| e.key).collect();
    want.sort();
    assert_eq!(got, want);
    assert!(replayed.iter().all(|l| l.attempts == 0));
}

async fn list_show_stats_and_prune() {
    let server = RedisServer::start();
    let inbox = inbox(&server).await.with_done_ttl(None);
    let base = 1_700_000_000_000;
    let e: Vec<NewEntry> = (0..6)
        .map(|i| ended(&format!("call_list_{i}"), base + i * 1000))
        .collect();
    for entry in &e[..5] {
        inbox.insert(entry.clone()).await.unwrap();
    }
    let at = base + 10_000;
    let leased = lease(&inbox, "worker-1", at).await;
    assert_eq!(leased.len(), 5);
    assert!(inbox.ack(&e[0].key, leased[0].token, at).await.unwrap());
    assert!(inbox.ack(&e[1].key, leased[1].token, at).await.unwrap());
    assert!(
        inbox
            .fail(&e[2].key, leased[2].token, dead(), at)
            .await
            .unwrap()
    );
    let retry = retry_at(base + 99_000);
    assert!(
        inbox
            .fail(&e[3].key, leased[3].token, retry, at)
            .await
            .unwrap()
    );
    inbox.insert(e[5].clone()).await.unwrap();

    let stats = inbox.stats(at).await.unwrap();
    assert_eq!(
        [
            stats.ready,
            stats.leased,
            stats.retry,
            stats.dead,
            stats.done
        ],
        [1, 1, 1, 1, 2]
    );
    assert_eq!(stats.oldest_ready_ms, Some(base + 5000));
    assert_eq!(stats.count(State::Done), 2);

    let all = inbox.list(ListFilter::default()).await.unwrap();
    let states: Vec<State> = all.iter().map(|entry| entry.state).collect();
    use State::*;
    assert_eq!(states, [Done, Done, Dead, Retry, Leased, Ready]);
    assert_eq!(keys_of(&all), e.iter().map(|e| e.key).collect::<Vec<_>>());
    assert_eq!(all[4].due_ms, Some(at + 60_000));
    assert_eq!(all[3].due_ms, Some(base + 99_000));
    assert_eq!(all[3].last_error.as_deref(), Some("database down"));
    assert_eq!(all[0].event.as_deref(), Some("call_ended"));
    assert_eq!(all[0].order.as_deref(), Some("call:call_list_0"));
    assert_eq!(all[0].body_len, e[0].body.len() as u64);
    let filtered = |state, since_ms, limit| {
        let inbox = &inbox;
        async move {
            let filter = ListFilter {
                state,
                since_ms,
                limit,
            };
            keys_of(&inbox.list(filter).await.unwrap())
        }
    };
    assert_eq!(filtered(Some(Done), None, 100).await, [e[0].key, e[1].key]);
    assert_eq!(
        filtered(None, Some(base + 4000), 100).await,
        [e[4].key, e[5].key]
    );
    assert_eq!(filtered(None, None, 2).await, [e[0].key, e[1].key]);
    assert_eq!(filtered(Some(Retry), None, 100).await, [e[3].key]);
    assert!(filtered(None, None, 0).await.is_empty());

    let (shown, body) = inbox.show(&e[4].key).await.unwrap().unwrap();
    assert_eq!(shown, all[4]);
    assert_eq!(body, e[4].body);
    assert_eq!(inbox.show(&ended("call_unknown", 0).key).await, Ok(None));

    // Only done entries received before the bound go; a pruned event is
    // forgotten, so a copy is stored again.
    assert_eq!(inbox.prune(base + 1000).await, Ok(1));
    assert_eq!(inbox.show(&e[0].key).await, Ok(None));
    assert_eq!(inbox.list(ListFilter::default()).await.unwrap().len(), 5);
    assert_eq!(inbox.insert(e[0].clone()).await, Ok(Inserted::Stored));
    assert_eq!(inbox.prune(u64::MAX).await, Ok(1));
    let stats = inbox.stats(at).await.unwrap();
    assert_eq!([stats.ready, stats.done], [2, 0]);
    assert_eq!(stats.oldest_ready_ms, Some(base));
}

fn keys_of(entries: &[retell_webhooks::inbox::Entry]) -> Vec<DedupeKey> {
    entries.iter().map(|entry| entry.key).collect()
}

/// A done entry is deleted (a Redis expiry) once its TTL, counted from
/// when it was received, has passed; then a copy is stored again.
async fn done_entries_expire_after_the_done_ttl() {
    let server = RedisServer::start();
    let ttl = Duration::from_millis(500);
    let inbox = inbox(&server).await.with_done_ttl(Some(ttl));
    let t = now();
    let e = ended("call_ttl", t);
    inbox.insert(e.clone()).await.unwrap();
    let leased = lease_one(&inbox, &e.key, t).await;
    assert!(inbox.ack(&e.key, leased.token, t).await.unwrap());
    let pttl: i64 = command(&server, &["PTTL", &inbox.entry_key(&e.key)]).await;
    assert!((1..=500).contains(&pttl), "{pttl}");
    assert_eq!(inbox.insert(e.clone()).await, Ok(Inserted::Duplicate));
    let (inbox, e) = (&inbox, &e);
    let took = eventually(Duration::from_secs(5), "stored again", || async move {
        inbox.insert(e.clone()).await == Ok(Inserted::Stored)
    })
    .await;
    println!("a 500 ms done TTL forgot the event after {took:?}");
    // Stored again, it is ready, not done.
    let done = ListFilter {
        state: Some(State::Done),
        ..ListFilter::default()
    };
    assert!(inbox.list(done).await.unwrap().is_empty());
    assert_eq!(state(inbox, &e.key).await, Some(State::Ready));
    // Done longer than the TTL after it was received: deleted at once.
    let old = ended("call_old", now() - 10_000);
    inbox.insert(old.clone()).await.unwrap();
    let leased = lease(inbox, "worker-1", now()).await;
    let old_lease = leased.iter().find(|l| l.key == old.key).unwrap();
    assert!(inbox.ack(&old.key, old_lease.token, now()).await.unwrap());
    assert_eq!(inbox.show(&old.key).await, Ok(None));
    assert_eq!(inbox.stats(now()).await.unwrap().done, 0);
}

/// A caller whose clock is a month behind Redis': a lease ends, and a done
/// entry expires, by the `now_ms` given, not by Redis' clock.
async fn lease_ends_and_the_done_ttl_follow_the_callers_clock() {
    let server = RedisServer::start();
    let inbox = inbox(&server).await;
    let t = now() - 30 * 24 * 3_600_000;
    let e = ended("call_clock", t);
    inbox.insert(e.clone()).await.unwrap();
    let first = lease_one(&inbox, &e.key, t).await;
    // A minute later by the caller's clock, milliseconds by Redis'.
    let second = lease(&inbox, "worker-2", t + 60_000).await;
    assert_eq!(keys(&second), [e.key]);
    let pending: Vec<(String, String, u64, u64)> = command(
        &server,
        &["XPENDING", &inbox.stream_key(), "workers", "-", "+", "10"],
    )
    .await;
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].1, "worker-2");
    assert!(!inbox.ack(&e.key, first.token, t + 60_000).await.unwrap());
    assert!(
        inbox
            .ack(&e.key, second[0].token, t + 61_000)
            .await
            .unwrap()
    );
    // Seven days from `t` by the caller's clock, though Redis' is past them.
    let pttl: i64 = command(&server, &["PTTL", &inbox.entry_key(&e.key)]).await;
    let left = 7 * 24 * 3_600_000 - 61_000;
    assert!((left - 5_000..=left).contains(&pttl), "{pttl}");
    assert_eq!(state(&inbox, &e.key).await, Some(State::Done));
    assert_eq!(inbox.insert(e.clone()).await, Ok(Inserted::Duplicate));
    assert_eq!(inbox.stats(t + 61_000).await.unwrap().done, 1);
}

/// Two prefixes on one Redis are two inboxes.
async fn prefixes_keep_inboxes_apart() {
    let server = RedisServer::start();
    let a = inbox(&server).await.with_prefix("app-a:");
    let b = inbox(&server).await.with_prefix("app-b:");
    let e = ended("call_prefixed", now());
    assert_eq!(a.insert(e.clone()).await, Ok(Inserted::Stored));
    assert_eq!(b.insert(e.clone()).await, Ok(Inserted::Stored));
    assert_eq!(lease(&a, "worker-1", now()).await.len(), 1);
    assert_eq!(lease(&b, "worker-1", now()).await.len(), 1);
    let exists: u64 = command(&server, &["EXISTS", "app-a:e:00", "app-b:stream"]).await;
    assert_eq!(exists, 1);
    assert_eq!(a.entry_key(&e.key), format!("app-a:e:{}", e.key.to_hex()));
    let c = RedisInbox::from_manager(a.connection().clone());
    assert_eq!(c.prefix(), "retell-webhooks:inbox:");
    assert!(format!("{c:?}").contains("a given ConnectionManager"));
    let c = c.with_prefix("app-a:");
    assert_eq!(c.insert(e.clone()).await, Ok(Inserted::Duplicate));
}

/// `contains` in every state, and the backfill's watermarks under the
/// prefix (`w:<name>`), raised only.
async fn contains_and_watermarks() {
    let server = RedisServer::start();
    let inbox = inbox(&server).await;
    let e = ended("call_kept", now());
    assert_eq!(inbox.contains(&e.key).await, Ok(false));
    assert_eq!(inbox.insert(e.clone()).await, Ok(Inserted::Stored));
    assert_eq!(inbox.contains(&e.key).await, Ok(true));
    let leased = lease(&inbox, "worker-1", now()).await;
    assert!(
        inbox
            .ack(&leased[0].key, leased[0].token, now())
            .await
            .unwrap()
    );
    assert_eq!(inbox.contains(&e.key).await, Ok(true));
    assert_eq!(inbox.prune(now() + 1).await, Ok(1));
    assert_eq!(inbox.contains(&e.key).await, Ok(false));

    assert_eq!(inbox.watermark("calls").await, Ok(None));
    assert_eq!(
        inbox.advance_watermark("calls", 1_785_000_000_123).await,
        Ok(1_785_000_000_123)
    );
    assert_eq!(
        inbox.advance_watermark("calls", 5).await,
        Ok(1_785_000_000_123)
    );
    assert_eq!(inbox.watermark("calls").await, Ok(Some(1_785_000_000_123)));
    let raw: String = command(&server, &["GET", &inbox.watermark_key("calls")]).await;
    assert_eq!(raw, "1785000000123");
    assert_eq!(
        inbox.watermark_key("calls"),
        "retell-webhooks:inbox:w:calls"
    );
}

// ---------------------------------------------------------------------------
// Two replicas sharing one Redis
// ---------------------------------------------------------------------------

/// Two replicas (two `RedisInbox`es, two connections) on one Redis: a
/// call's `call_analyzed` is leased by neither while its `call_ended`
/// waits for a retry, and goes ahead once that one is done or dead; other
/// calls are not held up. A replayed dead letter runs after the later
/// events of its call.
async fn per_call_order_holds_across_two_replicas() {
    let server = RedisServer::start();
    let (a, b) = (inbox(&server).await, inbox(&server).await);
    let t = now();
    let (ended_1, analyzed_1) = (ended("call_1", t), analyzed("call_1", t + 1));
    let ended_2 = ended("call_2", t + 2);
    a.insert(ended_1.clone()).await.unwrap();
    b.insert(analyzed_1.clone()).await.unwrap();
    b.insert(ended_2.clone()).await.unwrap();

    let first = lease(&a, "worker-a", t).await;
    assert_eq!(keys(&first), [ended_1.key, ended_2.key]);
    assert!(lease(&b, "worker-b", t).await.is_empty());
    let stats = b.stats(t).await.unwrap();
    assert_eq!((stats.ready, stats.leased), (1, 2), "{stats:?}");
    // The other call is not held up.
    assert!(a.ack(&ended_2.key, first[1].token, t).await.unwrap());

    assert!(
        a.fail(&ended_1.key, first[0].token, retry_at(t + 1000), t)
            .await
            .unwrap()
    );
    for at in [t, t + 999] {
        assert!(lease(&a, "worker-a", at).await.is_empty());
        assert!(lease(&b, "worker-b", at).await.is_empty());
    }
    let retried = lease(&b, "worker-b", t + 1000).await;
    assert_eq!(keys(&retried), [ended_1.key]);
    assert_eq!(retried[0].attempts, 1);
    assert!(lease(&a, "worker-a", t + 1000).await.is_empty());
    assert!(b.ack(&ended_1.key, retried[0].token, t).await.unwrap());
    let next = lease(&a, "worker-a", t + 1000).await;
    assert_eq!(keys(&next), [analyzed_1.key]);
    assert!(a.ack(&analyzed_1.key, next[0].token, t).await.unwrap());

    // Dead does not block its call.
    let (ended_3, analyzed_3) = (ended("call_3", t + 10), analyzed("call_3", t + 11));
    a.insert(ended_3.clone()).await.unwrap();
    b.insert(analyzed_3.clone()).await.unwrap();
    let l = lease(&b, "worker-b", t).await;
    assert_eq!(keys(&l), [ended_3.key]);
    assert!(b.fail(&ended_3.key, l[0].token, dead(), t).await.unwrap());
    let l = lease(&a, "worker-a", t).await;
    assert_eq!(keys(&l), [analyzed_3.key]);
    // Replayed while the later event runs: it waits for that one.
    assert_eq!(a.replay(Replay::Key(ended_3.key), t).await, Ok(1));
    assert!(lease(&b, "worker-b", t).await.is_empty());
    assert!(a.ack(&analyzed_3.key, l[0].token, t).await.unwrap());
    let l = lease(&b, "worker-b", t).await;
    assert_eq!(keys(&l), [ended_3.key]);
    assert!(b.ack(&ended_3.key, l[0].token, t).await.unwrap());
    let stats = a.stats(t).await.unwrap();
    assert_eq!(stats.done, 5, "{stats:?}");
    assert_eq!(stats.ready + stats.leased + stats.retry + stats.dead, 0);
}

async fn without_per_call_order_every_event_is_leased_at_once() {
    let server = RedisServer::start();
    let inbox = inbox(&server).await.with_per_call_order(false);
    assert!(!inbox.per_call_order());
    let t = now();
    let (first, second) = (ended("call_unordered", t), analyzed("call_unordered", t));
    inbox.insert(first.clone()).await.unwrap();
    inbox.insert(second.clone()).await.unwrap();
    let leased = lease(&inbox, "worker-1", t).await;
    assert_eq!(keys(&leased), [first.key, second.key]);
}

/// Four copies of one event inserted at once through two replicas: one is
/// stored, three are duplicates, and it is leased once.
async fn four_concurrent_inserts_of_one_event_store_it_once() {
    let server = RedisServer::start();
    let (a, b) = (inbox(&server).await, inbox(&server).await);
    for round in 0..20 {
        let e = ended(&format!("call_storm_{round}"), now());
        let tasks: Vec<_> = (0..4)
            .map(|i| {
                let replica = if i % 2 == 0 { a.clone() } else { b.clone() };
                let e = e.clone();
                tokio::spawn(async move { replica.insert(e).await.unwrap() })
            })
            .collect();
        let mut answers = Vec::new();
        for task in tasks {
            answers.push(task.await.unwrap());
        }
        let stored = answers.iter().filter(|a| **a == Inserted::Stored).count();
        assert_eq!(stored, 1, "{answers:?}");
        let mut leased = lease(&a, "worker-a", now()).await;
        leased.extend(lease(&b, "worker-b", now()).await);
        assert_eq!(keys(&leased), [e.key]);
        assert!(b.ack(&e.key, leased[0].token, now()).await.unwrap());
    }
}

// ---------------------------------------------------------------------------
// Redis failing
// ---------------------------------------------------------------------------

/// Attempts to create a consumer group so far (`INFO commandstats`: calls
/// and calls refused by an ACL).
async fn group_creations(server: &RedisServer) -> u64 {
    let info: String = command(server, &["INFO", "commandstats"]).await;
    info.lines()
        .filter(|line| line.starts_with("cmdstat_xgroup"))
        .flat_map(|line| line.split([':', ',']))
        .filter_map(|field| {
            let (name, value) = field.split_once('=')?;
            matches!(name, "calls" | "rejected_calls").then(|| value.parse::<u64>().ok())?
        })
        .sum()
}

/// Leases every 20 ms until something is leased (errors included); fails
/// after 5 s. Returns what was leased and how long it took.
async fn lease_until_some(inbox: &RedisInbox) -> (Vec<Leased>, Duration) {
    let started = Instant::now();
    loop {
        let leased = inbox.lease(request("worker-1", 10, MINUTE, now())).await;
        match leased {
            Ok(leased) if !leased.is_empty() => return (leased, started.elapsed()),
            _ => {}
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "never recovered"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Redis loses its data (`FLUSHALL`, as a restart without persistence
/// would) and creating the group fails (the permission revoked): a worker
/// polling in a tight loop makes at most one attempt per second. With the
/// permission back, lease recovers within about one back-off and delivers
/// the event stored meanwhile.
async fn a_lost_consumer_group_is_recreated_at_most_once_a_second() {
    let server = RedisServer::start();
    let inbox = inbox(&server).await;
    let t = now();
    let before_flush = ended("call_before_flush", t);
    inbox.insert(before_flush.clone()).await.unwrap();
    let leased = lease_one(&inbox, &before_flush.key, t).await;
    assert!(inbox.ack(&before_flush.key, leased.token, t).await.unwrap());

    let _: () = command(&server, &["FLUSHALL"]).await;
    let _: () = command(&server, &["ACL", "SETUSER", "default", "-xgroup"]).await;
    let after_flush = ended("call_after_flush", t);
    assert_eq!(
        inbox.insert(after_flush.clone()).await,
        Ok(Inserted::Stored)
    );
    let before = group_creations(&server).await;
    let started = Instant::now();
    let mut failures = 0;
    while started.elapsed() < Duration::from_millis(2500) {
        let error = inbox
            .lease(request("worker-1", 10, MINUTE, now()))
            .await
            .unwrap_err();
        assert!(error.to_string().contains("redis"), "{error}");
        failures += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let window = started.elapsed();
    let attempts = group_creations(&server).await - before;
    println!("{failures} leases over {window:?}: {attempts} attempts to create the group");
    assert!(failures >= 20, "the loop did not spin: {failures}");
    // One attempt per second at most (loosely: the window's whole seconds
    // plus two), and at least one.
    let most = window.as_secs() + 2;
    assert!((1..=most).contains(&attempts), "{attempts} attempts");

    let _: () = command(&server, &["ACL", "SETUSER", "default", "+xgroup"]).await;
    let (recovered, took) = lease_until_some(&inbox).await;
    println!("recovered {took:?} after the permission came back");
    assert_eq!(keys(&recovered), [after_flush.key]);
}

/// Redis restarted on the same socket without its data: the connection
/// comes back, the group is created again, and events stored since are
/// leased; what was stored before is gone with Redis' data.
async fn after_a_restart_without_persistence_lease_recovers() {
    let mut server = RedisServer::start();
    let inbox = inbox(&server)
        .await
        .with_timeout(Duration::from_millis(300));
    let lost = ended("call_lost", now());
    inbox.insert(lost.clone()).await.unwrap();
    lease_one(&inbox, &lost.key, now()).await;

    server.restart();
    let kept = ended("call_after_restart", now());
    let (inbox, kept) = (&inbox, &kept);
    eventually(
        Duration::from_secs(5),
        "insert after restart",
        || async move { inbox.insert(kept.clone()).await.is_ok() },
    )
    .await;
    let (leased, took) = lease_until_some(inbox).await;
    println!("lease recovered {took:?} after the restart");
    assert_eq!(keys(&leased), [kept.key]);
    assert_eq!(inbox.show(&lost.key).await, Ok(None));
}

/// Redis hung (`CLIENT PAUSE`) or stopped: insert fails within the command
/// timeout (the receiver answers `503`) instead of hanging, and the error
/// names the call, not the body.
async fn a_stopped_redis_fails_insert_within_the_command_timeout() {
    let mut server = RedisServer::start();
    let timeout = Duration::from_millis(300);
    let inbox = inbox(&server).await.with_timeout(timeout);
    inbox.insert(ended("call_before", now())).await.unwrap();

    let _: () = command(&server, &["CLIENT", "PAUSE", "2000", "WRITE"]).await;
    let started = Instant::now();
    let error = inbox.insert(ended("call_paused", now())).await.unwrap_err();
    let took = started.elapsed();
    assert!(
        took >= timeout && took < timeout + Duration::from_secs(1),
        "{took:?}"
    );
    assert!(
        error.to_string().contains("redis insert: no answer"),
        "{error}"
    );

    server.kill();
    for i in 0..3 {
        let started = Instant::now();
        let error = inbox
            .insert(ended(&format!("call_secret_{i}"), now()))
            .await
            .unwrap_err()
            .to_string();
        let took = started.elapsed();
        assert!(took < timeout + Duration::from_secs(1), "{took:?}");
        assert!(error.contains("redis insert"), "{error}");
        assert!(!error.contains("call_secret"), "{error}");
    }
    let lease = inbox.lease(request("worker-1", 10, MINUTE, now())).await;
    assert!(lease.is_err());
    assert!(inbox.stats(now()).await.is_err());
}

/// The password in the URL authenticates and is never shown: not by
/// `Debug`, not in an error.
async fn the_password_is_never_shown() {
    let mut server = RedisServer::start_with(&["--requirepass", "hunter2-secret"]);
    let url = format!("{}?pass=hunter2-secret", server.url());
    let inbox = RedisInbox::connect(&url)
        .await
        .unwrap()
        .with_timeout(Duration::from_millis(300));
    let debug = format!("{inbox:?}");
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(
        debug.contains(&server.socket().display().to_string()),
        "{debug}"
    );
    let e = ended("call_auth", now());
    inbox.insert(e.clone()).await.unwrap();
    lease_one(&inbox, &e.key, now()).await;

    let wrong = format!("{}?pass=wrong-guess", server.url());
    let error = RedisInbox::connect(&wrong).await.unwrap_err().to_string();
    assert!(!error.contains("wrong-guess"), "{error}");
    if let Ok(without) = RedisInbox::connect(&server.url()).await {
        let error = without.insert(e.clone()).await.unwrap_err().to_string();
        assert!(!error.contains("hunter2"), "{error}");
    }
    server.kill();
    let error = inbox.insert(e.clone()).await.unwrap_err().to_string();
    assert!(!error.contains("hunter2"), "{error}");
    let request = request("worker-1", 10, MINUTE, now());
    let error = inbox.lease(request).await.unwrap_err().to_string();
    assert!(!error.contains("hunter2"), "{error}");
}
