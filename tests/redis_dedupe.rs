//! `RedisDedupe` against a real `redis-server` (a child process on a Unix
//! socket, no mock): the store's protocol, two receivers sharing one Redis as
//! two replicas would, a replica that goes away mid-handler, Redis hung,
//! killed and restarted, a load over HTTP, and two `listen` processes of the
//! command-line tool sharing one Redis.
//!
//! Its own harness (libtest-mimic, `harness = false`), which takes libtest's
//! arguments: without `redis-server` on the `PATH` the tests that need one
//! are reported as ignored, and the install hint is printed once; when `CI`
//! is `true` they fail instead, with that hint.

#[cfg(feature = "cli")]
#[path = "common/cli_binary.rs"]
mod cli_binary;
#[path = "common/http.rs"]
mod http;
#[path = "common/receivers.rs"]
mod receivers;
#[path = "common/redis_server.rs"]
mod redis_server;

use std::collections::BTreeMap;
use std::future::Future;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Trial};
use retell_webhooks::Incoming;
use retell_webhooks::dedupe::{Begin, DedupeKey, DedupeStore, RedisDedupe, Ticket};
use retell_webhooks::{ReceiverConfig, RouteKind, receiver::Reason};
use tokio::runtime::Builder;

use receivers::{Behaviour, Probe, Receiver, Via, config, http_vias};
use redis_server::RedisServer;

fn main() -> ExitCode {
    let args = Arguments::from_args();
    let redis = Redis::find(&args);
    quiet_deliberate_panics();
    #[allow(unused_mut)]
    let mut needs_redis = vec![
        // The store
        case!(current_thread fresh_then_in_flight_then_done_for_the_done_ttl),
        case!(current_thread the_done_ttl_expires),
        case!(current_thread the_lease_frees_the_key_of_a_holder_that_never_came_back),
        case!(current_thread a_stale_ticket_cannot_finish_or_release_another_claim),
        case!(current_thread abandon_frees_the_key_without_waiting_for_the_lease),
        case!(current_thread prefixes_keep_applications_apart),
        case!(current_thread the_password_authenticates_and_is_never_shown),
        // Two replicas sharing one Redis
        case!(two_workers duplicate_storm_over_two_replicas),
        case!(two_workers a_copy_on_the_other_replica_while_the_first_runs_is_409),
        case!(two_workers a_failure_on_one_replica_is_retried_on_the_other),
        case!(two_workers a_replica_gone_mid_handler_frees_the_key),
        case!(two_workers a_hung_redis_is_503_within_the_command_timeout),
        case!(two_workers a_begin_cut_by_a_stopped_redis_frees_its_claim_when_redis_resumes),
        case!(two_workers a_finish_stalled_by_redis_is_cut_at_the_deadline),
        case!(two_workers a_handler_that_outlives_its_lease_keeps_its_key_on_both_replicas),
        case!(two_workers a_killed_redis_is_503_and_after_a_restart_the_retries_are_processed),
        case!(two_workers a_thousand_distinct_events_over_64_connections_and_two_replicas),
    ];
    // The command-line tool
    #[cfg(feature = "cli")]
    needs_redis.push(case!(two_listeners_share_a_redis_dedupe_store));

    let mut trials: Vec<Trial> = needs_redis.into_iter().map(|c| redis.needed(c)).collect();
    trials.push(case!(current_thread connecting_to_nothing_is_an_error_not_a_hang).trial());
    #[cfg(feature = "redis-tls")]
    trials.push(case!(current_thread a_tls_url_connects_with_rustls).trial());
    libtest_mimic::run(&args, trials).exit_code()
}

/// The handlers' deliberate panics (`Behaviour::PanicFirst`) are part of the
/// tests: libtest would capture what the panic hook prints about them, this
/// harness does not capture, so the hook keeps quiet about those (and only
/// those).
fn quiet_deliberate_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info.payload().downcast_ref::<&str>() != Some(&"handler bug") {
            default(info);
        }
    }));
}

/// A test function and how to run it, named after the function.
struct Test {
    name: &'static str,
    run: Box<dyn FnOnce() + Send>,
}

/// `case!(f)` runs `fn f()`; `case!(current_thread f)` runs `async fn f()`
/// on a current-thread runtime (as `#[tokio::test]`), `case!(two_workers f)`
/// on a multi-thread runtime with two workers.
macro_rules! case {
    ($test:ident) => {
        Test {
            name: stringify!($test),
            run: Box::new($test),
        }
    };
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

impl Test {
    /// A trial for a test that needs no `redis-server`.
    fn trial(self) -> Trial {
        Trial::test(self.name, move || {
            (self.run)();
            Ok(())
        })
    }
}

/// Whether a `redis-server` can be started here, found once.
#[derive(Clone, Copy)]
struct Redis {
    installed: bool,
    required: bool,
}

impl Redis {
    /// Finds `redis-server`; without one, says so once (not for `--list`).
    fn find(args: &Arguments) -> Self {
        let redis = Self {
            installed: redis_server::installed(),
            required: redis_server::required(),
        };
        if !redis.installed && !args.list {
            let fate = if redis.required {
                "fail"
            } else {
                "are ignored"
            };
            eprintln!(
                "{}\nthe tests that need a redis-server {fate}",
                redis_server::missing()
            );
        }
        redis
    }

    /// A trial for a test that starts a `redis-server`: without one, ignored,
    /// or failed with the install hint when `CI` is `true` (or when asked to
    /// run with `--ignored` / `--include-ignored`).
    fn needed(self, test: Test) -> Trial {
        let missing = !self.installed;
        Trial::test(test.name, move || {
            if missing {
                return Err(redis_server::missing().into());
            }
            (test.run)();
            Ok(())
        })
        .with_ignored_flag(missing && !self.required)
    }
}

const LONG: Duration = Duration::from_secs(60);

fn key(n: u64) -> DedupeKey {
    let mut bytes = [7u8; 32];
    bytes[..8].copy_from_slice(&n.to_be_bytes());
    DedupeKey::from_bytes(bytes)
}

fn call_ended(id: &str) -> Vec<u8> {
    format!(r#"{{"event":"call_ended","call":{{"call_id":"{id}"}}}}"#).into_bytes()
}

/// The key the receiver derives from `body`.
fn key_of(body: &[u8]) -> DedupeKey {
    let incoming = Incoming::from_slice(body).unwrap();
    DedupeKey::for_incoming(&incoming, body).unwrap()
}

async fn store(server: &RedisServer) -> RedisDedupe {
    RedisDedupe::connect(&server.url()).await.unwrap()
}

/// A plain connection, to look at what the store wrote.
async fn raw(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

async fn get(server: &RedisServer, key: &str) -> Option<String> {
    redis::cmd("GET")
        .arg(key)
        .query_async(&mut raw(server).await)
        .await
        .unwrap()
}

async fn pttl(server: &RedisServer, key: &str) -> i64 {
    redis::cmd("PTTL")
        .arg(key)
        .query_async(&mut raw(server).await)
        .await
        .unwrap()
}

async fn fresh(store: &RedisDedupe, key: &DedupeKey, lease: Duration) -> Ticket {
    match store.begin(key, lease, 0).await {
        Ok(Begin::Fresh(ticket)) => ticket,
        other => panic!("{key:?} was not fresh: {other:?}"),
    }
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

/// The `n`-th receiver served over HTTP (cycling), or the entry point when
/// no HTTP receiver is compiled in.
fn http_via(n: usize) -> Via {
    let vias = http_vias();
    if vias.is_empty() {
        println!(
            "no HTTP receiver compiled in (features axum, actix, tower): the entry point instead"
        );
        return Via::Core;
    }
    vias[n % vias.len()]
}

/// Two replicas: `vias.0` and `vias.1`, one `RedisDedupe` connection each,
/// the same probe (so its counts are over both).
async fn replicas(
    server: &RedisServer,
    vias: (Via, Via),
    probe: &Arc<Probe>,
    config: impl Fn(RedisDedupe) -> ReceiverConfig,
) -> (Arc<Receiver>, Arc<Receiver>) {
    let mut out = Vec::new();
    for via in [vias.0, vias.1] {
        let config = config(store(server).await);
        let replica = Receiver::start_with(via, Arc::clone(probe), config, RouteKind::Events, 2);
        out.push(Arc::new(replica.await));
    }
    let b = out.pop().unwrap();
    (out.pop().unwrap(), b)
}

fn shared(store: RedisDedupe) -> ReceiverConfig {
    config().with_dedupe(store)
}

// ---------------------------------------------------------------------------
// The store
// ---------------------------------------------------------------------------

async fn fresh_then_in_flight_then_done_for_the_done_ttl() {
    let server = RedisServer::start();
    let s = store(&server).await;
    assert_eq!(s.prefix(), "retell-webhooks:");
    assert_eq!(s.done_ttl(), Duration::from_secs(3600));
    assert_eq!(s.timeout(), Duration::from_secs(1));
    let k = key(1);
    let redis_key = s.redis_key(&k);
    assert_eq!(redis_key, format!("retell-webhooks:{}", k.to_hex()));

    let ticket = fresh(&s, &k, LONG).await;
    assert_eq!(
        get(&server, &redis_key).await,
        Some(ticket.token().to_string())
    );
    assert!((1..=60_000).contains(&pttl(&server, &redis_key).await));
    assert_eq!(s.begin(&k, LONG, 0).await, Ok(Begin::InFlight));

    s.finish(&k, ticket, 0).await.unwrap();
    assert_eq!(get(&server, &redis_key).await.as_deref(), Some("done"));
    let ttl = pttl(&server, &redis_key).await;
    assert!((3_590_000..=3_600_000).contains(&ttl), "{ttl}");
    assert_eq!(s.begin(&k, LONG, 0).await, Ok(Begin::Done));
    // The ticket that finished holds nothing any more.
    s.release(&k, ticket).await.unwrap();
    assert_eq!(s.begin(&k, LONG, 0).await, Ok(Begin::Done));

    // Another key is independent; its release frees it at once.
    let other = fresh(&s, &key(2), LONG).await;
    s.release(&key(2), other).await.unwrap();
    assert_eq!(get(&server, &s.redis_key(&key(2))).await, None);
    fresh(&s, &key(2), LONG).await;
}

async fn the_done_ttl_expires() {
    let server = RedisServer::start();
    let s = store(&server)
        .await
        .with_done_ttl(Duration::from_millis(300));
    let k = key(3);
    let ticket = fresh(&s, &k, LONG).await;
    s.finish(&k, ticket, 0).await.unwrap();
    assert_eq!(s.begin(&k, LONG, 0).await, Ok(Begin::Done));
    assert!((1..=300).contains(&pttl(&server, &s.redis_key(&k)).await));
    let s = &s;
    let took = eventually(Duration::from_secs(3), "done key expired", || async move {
        matches!(s.begin(&k, LONG, 0).await, Ok(Begin::Fresh(_)))
    })
    .await;
    println!("a 300 ms done TTL freed the key after {took:?}");
}

async fn the_lease_frees_the_key_of_a_holder_that_never_came_back() {
    let server = RedisServer::start();
    let s = store(&server).await;
    let k = key(4);
    let started = Instant::now();
    fresh(&s, &k, Duration::from_millis(200)).await;
    assert!((1..=200).contains(&pttl(&server, &s.redis_key(&k)).await));
    assert_eq!(s.begin(&k, LONG, 0).await, Ok(Begin::InFlight));
    let s = &s;
    eventually(Duration::from_secs(3), "lease expired", || async move {
        matches!(s.begin(&k, LONG, 0).await, Ok(Begin::Fresh(_)))
    })
    .await;
    // Redis expires the key, not earlier than its lease.
    assert!(started.elapsed() >= Duration::from_millis(190));
}

/// A holder whose lease ran out cannot finish or release the claim another
/// replica took since: the token is compared in the script.
async fn a_stale_ticket_cannot_finish_or_release_another_claim() {
    let server = RedisServer::start();
    let (a, b) = (store(&server).await, store(&server).await);
    let k = key(5);
    let old = fresh(&a, &k, Duration::from_millis(200)).await;
    let started = Instant::now();
    let new = loop {
        if let Ok(Begin::Fresh(t)) = b.begin(&k, LONG, 0).await {
            break t;
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "b never took over"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_ne!(old, new);

    a.finish(&k, old, 0).await.unwrap();
    assert_eq!(a.begin(&k, LONG, 0).await, Ok(Begin::InFlight));
    a.release(&k, old).await.unwrap();
    a.abandon(&k, old);
    a.release(&k, Ticket::new(12_345)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let redis_key = b.redis_key(&k);
    assert_eq!(
        get(&server, &redis_key).await,
        Some(new.token().to_string())
    );
    assert_eq!(b.begin(&k, LONG, 0).await, Ok(Begin::InFlight));

    b.finish(&k, new, 0).await.unwrap();
    assert_eq!(a.begin(&k, LONG, 0).await, Ok(Begin::Done));
    a.release(&k, old).await.unwrap();
    b.release(&k, new).await.unwrap();
    assert_eq!(a.begin(&k, LONG, 0).await, Ok(Begin::Done));
}

/// `abandon` returns at once and frees the key a round trip later, long
/// before the lease; outside a runtime it leaves the key to its lease.
async fn abandon_frees_the_key_without_waiting_for_the_lease() {
    let server = RedisServer::start();
    let s = store(&server).await;
    let k = key(6);
    let ticket = fresh(&s, &k, LONG).await;
    let started = Instant::now();
    s.abandon(&k, ticket);
    assert!(started.elapsed() < Duration::from_millis(50));
    let s = &s;
    let took = eventually(
        Duration::from_secs(2),
        "abandoned key freed",
        || async move { matches!(s.begin(&k, LONG, 0).await, Ok(Begin::Fresh(_))) },
    )
    .await;
    println!("abandon freed the key after {took:?}");

    let k = key(7);
    let ticket = fresh(s, &k, LONG).await;
    let away = s.clone();
    std::thread::spawn(move || away.abandon(&k, ticket))
        .join()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(s.begin(&k, LONG, 0).await, Ok(Begin::InFlight));
}

/// Prefixes keep two applications on one Redis apart.
async fn prefixes_keep_applications_apart() {
    let server = RedisServer::start();
    let a = store(&server).await.with_prefix("app-a:");
    let b = store(&server).await.with_prefix("app-b:");
    let k = key(8);
    let t = fresh(&a, &k, LONG).await;
    a.finish(&k, t, 0).await.unwrap();
    assert_eq!(a.begin(&k, LONG, 0).await, Ok(Begin::Done));
    fresh(&b, &k, LONG).await;
    assert_eq!(
        get(&server, &format!("app-a:{}", k.to_hex()))
            .await
            .as_deref(),
        Some("done")
    );
    // A store on an existing connection: the same keys, the given prefix.
    let c = RedisDedupe::from_manager(a.connection().clone());
    assert_eq!(c.prefix(), "retell-webhooks:");
    assert!(
        format!("{c:?}").contains("a given ConnectionManager"),
        "{c:?}"
    );
    let c = c.with_prefix("app-a:");
    assert_eq!(c.begin(&k, LONG, 0).await, Ok(Begin::Done));
}

/// The password in the URL authenticates, and is never shown: not by
/// `Debug`, not in a connection error.
async fn the_password_authenticates_and_is_never_shown() {
    let server = RedisServer::start_with(&["--requirepass", "hunter2-secret"]);
    let url = format!("{}?pass=hunter2-secret", server.url());
    let s = RedisDedupe::connect(&url).await.unwrap();
    let debug = format!("{s:?}");
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(
        debug.contains(&server.socket().display().to_string()),
        "{debug}"
    );
    fresh(&s, &key(9), LONG).await;

    let wrong = format!("{}?pass=wrong-guess", server.url());
    let error = RedisDedupe::connect(&wrong).await.unwrap_err();
    assert!(!error.to_string().contains("wrong-guess"), "{error}");
    let without = RedisDedupe::connect(&server.url()).await;
    // Depending on the server, connecting may succeed and the first command fail.
    if let Ok(s) = without {
        assert!(s.begin(&key(9), LONG, 0).await.is_err());
    }
}

async fn connecting_to_nothing_is_an_error_not_a_hang() {
    let started = Instant::now();
    let url = "redis+unix:///nonexistent-dir/redis.sock";
    assert!(RedisDedupe::connect(url).await.is_err());
    assert!(RedisDedupe::connect("not a url").await.is_err());
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}

/// `rediss://` builds its TLS configuration (rustls with a provider) instead
/// of panicking for want of one; nothing listens, so it is an error.
#[cfg(feature = "redis-tls")]
async fn a_tls_url_connects_with_rustls() {
    let error = RedisDedupe::connect("rediss://127.0.0.1:1/0")
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("rediss://127.0.0.1:1/0"),
        "{error}"
    );
}

// ---------------------------------------------------------------------------
// Two replicas sharing one Redis
// ---------------------------------------------------------------------------

/// 200 events × 3 copies spread over both replicas: the handler runs exactly
/// 200 times; every other answer is `204` (done) or `409` (in flight); all of
/// them again afterwards, on either replica, are `204` without a handler call.
async fn duplicate_storm_over_two_replicas() {
    let server = RedisServer::start();
    let probe = Probe::new(Behaviour::Yield(20));
    let (a, b) = replicas(&server, (Via::Core, http_via(0)), &probe, shared).await;
    let bodies: Vec<Arc<Vec<u8>>> = (0..200)
        .map(|i| Arc::new(call_ended(&format!("call_storm_{i}"))))
        .collect();
    let started = Instant::now();
    let tasks: Vec<_> = (0..3)
        .flat_map(|copy| bodies.iter().enumerate().map(move |(i, b)| (i + copy, b)))
        .map(|(n, body)| {
            let replica = Arc::clone(if n % 2 == 0 { &a } else { &b });
            let body = Arc::clone(body);
            tokio::spawn(async move { replica.post_signed(&body).await.status })
        })
        .collect();
    let mut statuses = BTreeMap::<u16, usize>::new();
    for task in tasks {
        *statuses.entry(task.await.unwrap()).or_default() += 1;
    }
    let elapsed = started.elapsed();
    assert_eq!(probe.calls(), 200, "{statuses:?}");
    assert!(probe.effects().values().all(|n| *n == 1));
    assert!(
        statuses.keys().all(|s| *s == 204 || *s == 409),
        "{statuses:?}"
    );
    for body in &bodies {
        assert_eq!(a.post_signed(body).await.status, 204);
        assert_eq!(b.post_signed(body).await.status, 204);
    }
    assert_eq!(probe.calls(), 200);
    println!(
        "duplicate storm over {} and {}: 600 requests in {elapsed:?}, statuses {statuses:?}",
        a.via, b.via
    );
}

/// A copy on the other replica while the first is running is `409`; once the
/// first succeeds, copies on either replica are `204` without a handler call.
async fn a_copy_on_the_other_replica_while_the_first_runs_is_409() {
    let server = RedisServer::start();
    let probe = Probe::new(Behaviour::Gated);
    let (a, b) = replicas(&server, (Via::Core, http_via(1)), &probe, shared).await;
    let body = call_ended("call_gated");
    let first = {
        let (a, body) = (Arc::clone(&a), body.clone());
        tokio::spawn(async move { a.post_signed(&body).await.status })
    };
    probe.entered().await;
    assert_eq!(b.post_signed(&body).await.status, 409);
    let reasons: Vec<Reason> = b.outcomes().into_iter().map(|o| o.reason).collect();
    assert_eq!(reasons, [Reason::InFlight]);
    probe.open(1);
    assert_eq!(first.await.unwrap(), 204);
    assert_eq!(b.post_signed(&body).await.status, 204);
    assert_eq!(a.post_signed(&body).await.status, 204);
    assert_eq!(probe.calls(), 1);
}

/// A failure on replica A releases the key: Retell's retry on replica B is
/// processed, and later copies on either are `204`.
async fn a_failure_on_one_replica_is_retried_on_the_other() {
    let server = RedisServer::start();
    for behaviour in [Behaviour::FailFirst(1), Behaviour::PanicFirst(1)] {
        let probe = Probe::new(behaviour);
        let (a, b) = replicas(&server, (Via::Core, http_via(2)), &probe, shared).await;
        let body = call_ended(&format!("call_retry_{behaviour:?}"));
        assert_eq!(a.post_signed(&body).await.status, 500, "{behaviour:?}");
        assert_eq!(b.post_signed(&body).await.status, 204, "{behaviour:?}");
        assert_eq!(a.post_signed(&body).await.status, 204, "{behaviour:?}");
        assert_eq!(b.post_signed(&body).await.status, 204, "{behaviour:?}");
        assert_eq!(probe.calls(), 2, "{behaviour:?}");
        assert_eq!(probe.effect_count(), 1, "{behaviour:?}");
    }
}

/// A replica whose delivery is dropped mid-handler (its client went away, its
/// task was cancelled) hands the key back through `abandon`: the retry on the
/// other replica is processed at once, not after the 10 s lease. A replica
/// that died without a word (a claim nobody will finish) is freed by its
/// lease.
async fn a_replica_gone_mid_handler_frees_the_key() {
    let server = RedisServer::start();
    let stuck = Probe::new(Behaviour::Gated);
    let a = Arc::new(
        Receiver::start(Via::Core, Arc::clone(&stuck), shared(store(&server).await)).await,
    );
    let probe = Probe::new(Behaviour::Ok);
    let b = Receiver::start(
        http_via(0),
        Arc::clone(&probe),
        shared(store(&server).await),
    )
    .await;
    assert_eq!(a.config().handler_deadline(), Duration::from_secs(9));

    let body = call_ended("call_dropped");
    let first = {
        let (a, body) = (Arc::clone(&a), body.clone());
        tokio::spawn(async move { a.post_signed(&body).await.status })
    };
    stuck.entered().await;
    assert_eq!(b.post_signed(&body).await.status, 409);
    first.abort();
    assert!(first.await.unwrap_err().is_cancelled());
    let (b, body, probe) = (&b, &body, &probe);
    let took = eventually(
        Duration::from_secs(3),
        "retry processed after abandon",
        || async move { b.post_signed(body).await.status == 204 && probe.calls() == 1 },
    )
    .await;
    println!("the retry was processed {took:?} after the first delivery was dropped");
    assert_eq!(stuck.effect_count(), 0);

    // A claim whose holder is gone for good: only its lease frees it.
    let body = call_ended("call_crashed");
    let crashed = store(&server).await;
    fresh(&crashed, &key_of(&body), Duration::from_millis(300)).await;
    drop(crashed);
    assert_eq!(b.post_signed(&body).await.status, 409);
    let (b, body) = (&b, &body);
    eventually(
        Duration::from_secs(3),
        "lease of a crashed replica",
        || async move { b.post_signed(body).await.status == 204 },
    )
    .await;
    assert_eq!(probe.calls(), 2);
}

/// Redis hung (`CLIENT PAUSE`): deliveries are answered `503` within the
/// command timeout, long before the deadline, and the handler is not called.
/// The `begin` that timed out still runs when Redis resumes, and its claim is
/// released right after; the retries are processed.
async fn a_hung_redis_is_503_within_the_command_timeout() {
    let server = RedisServer::start();
    let timeout = Duration::from_millis(300);
    let deadline = Duration::from_secs(2);
    let probe = Probe::new(Behaviour::Ok);
    let (a, b) = replicas(&server, (Via::Core, http_via(0)), &probe, |s| {
        shared(s.with_timeout(timeout)).with_handler_deadline(deadline)
    })
    .await;
    let warm = call_ended("call_before_pause");
    assert_eq!(a.post_signed(&warm).await.status, 204);

    let _: () = redis::cmd("CLIENT")
        .arg(&["PAUSE", "1500", "ALL"])
        .query_async(&mut raw(&server).await)
        .await
        .unwrap();
    let bodies = [call_ended("call_paused_a"), call_ended("call_paused_b")];
    for (replica, body) in [(&a, &bodies[0]), (&b, &bodies[1])] {
        let started = Instant::now();
        assert_eq!(
            replica.post_signed(body).await.status,
            503,
            "via {}",
            replica.via
        );
        let took = started.elapsed();
        assert!(
            took >= timeout && took < timeout + Duration::from_millis(700),
            "{took:?}"
        );
        let last = replica.outcomes().pop().unwrap();
        assert!(matches!(last.reason, Reason::DedupeFailed(_)), "{last}");
    }
    assert_eq!(probe.calls(), 1);

    for (replica, body) in [(&b, &bodies[0]), (&a, &bodies[1])] {
        let took = eventually(
            Duration::from_secs(8),
            "processed after the pause",
            || async move { replica.post_signed(body).await.status == 204 },
        )
        .await;
        println!("processed {took:?} after the retries began");
    }
    assert_eq!(probe.calls(), 3);
    assert_eq!(a.post_signed(&bodies[1]).await.status, 204);
    assert_eq!(probe.calls(), 3);
}

/// Stops `redis-server` (SIGSTOP) until dropped (SIGCONT), so a failed
/// assertion never leaves it stopped.
struct Stopped(u32);

impl Stopped {
    fn new(server: &RedisServer) -> Self {
        let pid = server.pid().unwrap();
        Self::signal(pid, "-STOP");
        Self(pid)
    }

    fn signal(pid: u32, signal: &str) {
        let status = std::process::Command::new("kill")
            .arg(signal)
            .arg(pid.to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill {signal} {pid}");
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        Self::signal(self.0, "-CONT");
    }
}

/// Redis stopped for 3 s while a `begin` is on its way: that delivery is
/// `503` after the command timeout, and the claim its `begin` makes when
/// Redis resumes (with a token nobody holds) is released right after it, so
/// a retry 0.5 s after Redis resumes is processed, on either replica.
async fn a_begin_cut_by_a_stopped_redis_frees_its_claim_when_redis_resumes() {
    let server = RedisServer::start();
    let probe = Probe::new(Behaviour::Ok);
    let (a, b) = replicas(&server, (Via::Core, http_via(0)), &probe, shared).await;
    for (n, replica) in [&a, &b].into_iter().enumerate() {
        let warm = call_ended(&format!("call_warm_{n}"));
        assert_eq!(replica.post_signed(&warm).await.status, 204);
    }
    let body = call_ended("call_stopped");
    let stopped = Stopped::new(&server);
    let started = Instant::now();
    assert_eq!(a.post_signed(&body).await.status, 503);
    let last = a.outcomes().pop().unwrap();
    assert!(matches!(last.reason, Reason::DedupeFailed(_)), "{last}");
    tokio::time::sleep(Duration::from_secs(3).saturating_sub(started.elapsed())).await;
    drop(stopped);
    let resumed = Instant::now();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let status = b.post_signed(&body).await.status;
    if status != 204 {
        let (b, body) = (&b, &body);
        eventually(
            Duration::from_secs(15),
            "retry processed at last",
            || async move { b.post_signed(body).await.status == 204 },
        )
        .await;
        panic!(
            "the retry 0.5 s after Redis resumed got {status}; one was processed {:?} after",
            resumed.elapsed()
        );
    }
    println!(
        "a retry {:?} after Redis resumed was processed",
        Duration::from_millis(500)
    );
    assert_eq!(probe.calls(), 3);
    assert_eq!(a.post_signed(&body).await.status, 204);
    assert_eq!(probe.calls(), 3);
}

/// Redis stopped while the handler runs: its `finish` cannot complete, and
/// the answer (the handler's `204`) still comes at the deadline, not a
/// command timeout later, and the claim is not given up.
async fn a_finish_stalled_by_redis_is_cut_at_the_deadline() {
    let server = RedisServer::start();
    let deadline = Duration::from_secs(2);
    let probe = Probe::new(Behaviour::Sleep(Duration::from_millis(1500)));
    let (a, b) = replicas(&server, (Via::Core, http_via(0)), &probe, |s| {
        shared(s).with_handler_deadline(deadline)
    })
    .await;
    for (n, replica) in [&a, &b].into_iter().enumerate() {
        let body = call_ended(&format!("call_stalled_finish_{n}"));
        let started = Instant::now();
        let answer = {
            let (replica, body) = (Arc::clone(replica), body.clone());
            tokio::spawn(async move { replica.post_signed(&body).await.status })
        };
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let stopped = Stopped::new(&server);
        let status = answer.await.unwrap();
        let took = started.elapsed();
        drop(stopped);
        println!("via {}: {status} after {took:?}", replica.via);
        assert_eq!(status, 204, "via {}", replica.via);
        assert!(
            took < deadline + Duration::from_millis(150),
            "via {}: answered after {took:?}",
            replica.via
        );
        // The claim stands (done once a late `finish` lands, or in flight
        // until its lease ends): a copy now is not handled again.
        let copy = replica.post_signed(&body).await.status;
        assert!(
            copy == 204 || copy == 409,
            "via {}: copy got {copy}",
            replica.via
        );
        assert_eq!(probe.calls(), n + 1);
    }
    assert_eq!(probe.calls(), 2);
}

/// A handler that runs longer than its lease (3 s against 2 s) keeps its key:
/// the lease is renewed while it runs, so a copy on the other replica 2.5 s
/// in is `409`, and the event is handled once.
async fn a_handler_that_outlives_its_lease_keeps_its_key_on_both_replicas() {
    let server = RedisServer::start();
    let lease = Duration::from_secs(2);
    let probe = Probe::new(Behaviour::Sleep(Duration::from_secs(3)));
    for (n, vias) in [(Via::Core, http_via(1)), (http_via(0), Via::Core)]
        .into_iter()
        .enumerate()
    {
        let (a, b) = replicas(&server, vias, &probe, |s| {
            shared(s)
                .with_handler_deadline(Duration::from_secs(5))
                .with_dedupe_lease(lease)
        })
        .await;
        assert_eq!(a.config().dedupe_lease(), lease);
        let body = call_ended(&format!("call_slow_{n}"));
        let started = Instant::now();
        let first = {
            let (a, body) = (Arc::clone(&a), body.clone());
            tokio::spawn(async move { a.post_signed(&body).await.status })
        };
        let probe = &probe;
        eventually(Duration::from_secs(2), "handler started", || async move {
            probe.calls() == n + 1
        })
        .await;
        let copy_at = lease + Duration::from_millis(500);
        tokio::time::sleep(copy_at.saturating_sub(started.elapsed())).await;
        assert_eq!(b.post_signed(&body).await.status, 409, "via {}", b.via);
        assert_eq!(first.await.unwrap(), 204);
        assert_eq!(b.post_signed(&body).await.status, 204);
        assert_eq!(probe.calls(), n + 1);
    }
}

/// Redis killed: deliveries are `503` at once and nothing is marked done;
/// restarted on the same socket (empty, no persistence), the retries are
/// processed once each on either replica.
async fn a_killed_redis_is_503_and_after_a_restart_the_retries_are_processed() {
    let mut server = RedisServer::start();
    let timeout = Duration::from_millis(300);
    let probe = Probe::new(Behaviour::Ok);
    let (a, b) = replicas(&server, (Via::Core, http_via(0)), &probe, |s| {
        shared(s.with_timeout(timeout))
    })
    .await;
    assert_eq!(
        a.post_signed(&call_ended("call_before_kill")).await.status,
        204
    );

    server.kill();
    let bodies: Vec<Vec<u8>> = (0..6)
        .map(|i| call_ended(&format!("call_down_{i}")))
        .collect();
    for (n, body) in bodies.iter().enumerate() {
        let replica = if n % 2 == 0 { &a } else { &b };
        let started = Instant::now();
        assert_eq!(
            replica.post_signed(body).await.status,
            503,
            "via {}",
            replica.via
        );
        assert!(started.elapsed() < timeout + Duration::from_millis(700));
    }
    assert_eq!(probe.calls(), 1, "a handler ran while Redis was down");

    server.restart();
    for (n, body) in bodies.iter().enumerate() {
        // The retry lands on the other replica.
        let replica = if n % 2 == 0 { &b } else { &a };
        eventually(
            Duration::from_secs(10),
            "processed after the restart",
            || async move { replica.post_signed(body).await.status == 204 },
        )
        .await;
    }
    assert_eq!(probe.calls(), 7);
    assert!(probe.effects().values().all(|n| *n == 1));
    for body in &bodies {
        assert_eq!(a.post_signed(body).await.status, 204);
        assert_eq!(b.post_signed(body).await.status, 204);
    }
    assert_eq!(probe.calls(), 7);
}

/// 1 000 distinct events over 64 concurrent connections, alternating between
/// two replicas served over HTTP: 1 000 × `204`, the handler exactly 1 000
/// times.
async fn a_thousand_distinct_events_over_64_connections_and_two_replicas() {
    let server = RedisServer::start();
    let vias = http_vias();
    let pair = (http_via(0), http_via(vias.len().saturating_sub(1)));
    let probe = Probe::new(Behaviour::Ok);
    let (a, b) = replicas(&server, pair, &probe, shared).await;
    let queue: Vec<(usize, Vec<u8>)> = (0..1000)
        .map(|i| (i, call_ended(&format!("call_load_{i}"))))
        .collect();
    let queue = Arc::new(std::sync::Mutex::new(queue));
    let started = Instant::now();
    let workers: Vec<_> = (0..64)
        .map(|_| {
            let (a, b, queue) = (Arc::clone(&a), Arc::clone(&b), Arc::clone(&queue));
            tokio::spawn(async move {
                let mut seen = BTreeMap::<u16, usize>::new();
                loop {
                    let Some((n, body)) = queue.lock().unwrap().pop() else {
                        return seen;
                    };
                    let replica = if n % 2 == 0 { &a } else { &b };
                    *seen
                        .entry(replica.post_signed(&body).await.status)
                        .or_default() += 1;
                }
            })
        })
        .collect();
    let mut statuses = BTreeMap::<u16, usize>::new();
    for worker in workers {
        for (status, n) in worker.await.unwrap() {
            *statuses.entry(status).or_default() += n;
        }
    }
    let elapsed = started.elapsed();
    assert_eq!(statuses, BTreeMap::from([(204, 1000)]));
    assert_eq!(probe.calls(), 1000);
    assert_eq!(probe.effects().len(), 1000);
    println!(
        "1000 events over 64 connections, {} and {}, one Redis: {elapsed:?}",
        a.via, b.via
    );
}

// ---------------------------------------------------------------------------
// The command-line tool
// ---------------------------------------------------------------------------

/// Two `listen` processes sharing one real Redis: the copy Retell sends to the
/// second one is a duplicate there.
#[cfg(feature = "cli")]
fn two_listeners_share_a_redis_dedupe_store() {
    use cli_binary::{Listener, send_call_ended};
    let redis = RedisServer::start();
    let store = redis.url();
    let (mut first, first_url) = Listener::start(&["--dedupe", &store]);
    let (mut second, second_url) = Listener::start(&["--dedupe", &store]);
    send_call_ended(&first_url);
    assert!(first.next_line().ends_with(" 204 ok"));
    send_call_ended(&second_url);
    let line = second.next_line();
    assert!(line.contains("204 duplicate"), "{line}");
}
