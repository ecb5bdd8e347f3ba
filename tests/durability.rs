//! The durable inbox's claims, tested the way they fail in production: real
//! `retell-webhooks listen` processes killed with SIGKILL, real SQLite files
//! shared by processes, a real `redis-server` stopped with SIGSTOP, and real
//! HTTP on 127.0.0.1 to a small app in this process that verifies every
//! forwarded request. Nothing waits a fixed time for correctness: every wait
//! polls against a deadline.
//!
//! Its own harness (libtest-mimic, `harness = false`), as `redis_inbox`:
//! without `redis-server` on the `PATH` the tests that need one are reported
//! as ignored; when `CI` is `true` they fail instead.

#[path = "common/cli_binary.rs"]
mod cli_binary;
#[path = "common/redis_server.rs"]
mod redis_server;
#[path = "common/temp_dir.rs"]
mod temp_dir;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitCode, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime};
use temp_dir::TempDir;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use libtest_mimic::{Arguments, Trial};
use retell_webhooks::dedupe::DedupeKey;
use retell_webhooks::{Verifier, WebhookEvent, sign, unix_ms};

use cli_binary::cli;
use redis_server::RedisServer;

/// The key every listener verifies with and signs forwarded events with.
const KEY: &str = "key_durability_test_0123456789abcdef";

/// The call id in the `call_*` fixtures, replaced to make distinct events.
const FIXTURE_CALL_ID: &str = "call_8e2f4a6c1b9d3e7f5a0c2b4d6e";

/// A leased event whose worker was killed runs again when its lease ends:
/// the listener's `--handler-timeout` plus 30 s.
const HANDLER_TIMEOUT: &str = "5s";
const LEASE: Duration = Duration::from_secs(35);

/// Retell waits this long for an answer.
const RETELL_TIMEOUT: Duration = Duration::from_secs(10);

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
    let cases: [(&str, bool, fn()); 7] = [
        (
            "kill_9_under_load_loses_no_acknowledged_event",
            false,
            kill_9_under_load_loses_no_acknowledged_event,
        ),
        (
            "forwarding_outlasts_an_app_down_then_failing",
            false,
            forwarding_outlasts_an_app_down_then_failing,
        ),
        (
            "inbox_commands_share_the_sqlite_file_with_a_running_listener",
            false,
            inbox_commands_share_the_sqlite_file_with_a_running_listener,
        ),
        (
            "a_stopped_redis_gets_503_within_retells_timeout",
            true,
            a_stopped_redis_gets_503_within_retells_timeout,
        ),
        (
            "four_copies_across_two_redis_listeners_run_once",
            true,
            four_copies_across_two_redis_listeners_run_once,
        ),
        (
            "per_call_order_holds_across_two_redis_listeners",
            true,
            per_call_order_holds_across_two_redis_listeners,
        ),
        (
            "demo_retries_a_failure_then_processes_it",
            false,
            demo_retries_a_failure_then_processes_it,
        ),
    ];
    let trials = cases
        .into_iter()
        .map(|(name, needs_redis, run)| {
            let missing = needs_redis && !installed;
            Trial::test(name, move || {
                if missing {
                    return Err(redis_server::missing().into());
                }
                run();
                Ok(())
            })
            .with_ignored_flag(missing && !required)
        })
        .collect();
    libtest_mimic::run(&args, trials).exit_code()
}

// ---------------------------------------------------------------------------
// kill -9 under load
// ---------------------------------------------------------------------------

/// Several threads send distinct signed `call_ended` deliveries, retrying
/// like Retell (up to four tries), while the listener is killed with SIGKILL
/// three times and restarted on the same SQLite file. Every delivery that
/// got a 2xx reaches the app with its exact bytes; copies at the app are
/// bounded by the events in flight at each kill.
fn kill_9_under_load_loses_no_acknowledged_event() {
    const EVENTS: usize = 300;
    const SENDERS: usize = 6;
    const WORKERS: usize = 4;
    const KILLS: usize = 3;
    let dir = TempDir::new("kill9");
    let inbox = dir.sqlite_url();
    let app = App::start(|_, _| 204);
    let workers = WORKERS.to_string();
    let args = [
        "--inbox",
        &inbox,
        "--forward",
        &app.url(),
        "--workers",
        &workers,
        "--handler-timeout",
        HANDLER_TIMEOUT,
    ];
    let ids: Vec<String> = (0..EVENTS).map(|i| format!("call_kill9_{i:04}")).collect();
    let bodies: Vec<Vec<u8>> = ids.iter().map(|id| body("call_ended_phone", id)).collect();

    let current = Current::default();
    let mut listener = Listen::start(&args);
    current.publish(listener.url.clone());
    let next = AtomicUsize::new(0);
    let acked: Vec<AtomicBool> = (0..EVENTS).map(|_| AtomicBool::new(false)).collect();
    let acked_count = AtomicUsize::new(0);
    let tries = AtomicUsize::new(0);
    let failed_tries = AtomicUsize::new(0);
    let mut last_restart = Instant::now();
    thread::scope(|scope| {
        for _ in 0..SENDERS {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= EVENTS {
                        break;
                    }
                    for _ in 0..4 {
                        let (generation, url) = current.wait_for_url();
                        tries.fetch_add(1, Ordering::SeqCst);
                        match deliver(&url, &bodies[i]) {
                            Ok(status) if (200..300).contains(&status) => {
                                acked[i].store(true, Ordering::SeqCst);
                                acked_count.fetch_add(1, Ordering::SeqCst);
                                break;
                            }
                            _ => {
                                failed_tries.fetch_add(1, Ordering::SeqCst);
                                // Retell waits before its next try; here until
                                // the listener is back, or a short while.
                                current.wait_for_change(generation, Duration::from_millis(500));
                            }
                        }
                    }
                }
            });
        }
        for kill in 1..=KILLS {
            let mark = kill * EVENTS / (KILLS + 1);
            poll_until(Duration::from_secs(60), "deliveries acknowledged", || {
                (acked_count.load(Ordering::SeqCst) >= mark).then_some(())
            });
            current.withdraw();
            listener.kill_9();
            listener = Listen::start(&args);
            last_restart = Instant::now();
            current.publish(listener.url.clone());
        }
    });
    let acked: Vec<usize> = (0..EVENTS)
        .filter(|&i| acked[i].load(Ordering::SeqCst))
        .collect();
    assert!(
        acked.len() >= EVENTS * 9 / 10,
        "only {} of {EVENTS} deliveries acknowledged",
        acked.len()
    );

    // An event whose forward was cut by a kill before the app got it waits
    // for its lease to end: wait past it.
    app.wait(
        LEASE + Duration::from_secs(30),
        "every acknowledged delivery at the app",
        |hits| {
            let received: HashSet<&str> = hits
                .iter()
                .filter(|hit| (200..300).contains(&hit.status))
                .map(|hit| hit.call_id.as_str())
                .collect();
            acked.iter().all(|&i| received.contains(ids[i].as_str()))
        },
    );
    let all_arrived = last_restart.elapsed();
    // Then until nothing is left to run, so every copy is counted.
    let stats = poll_until(LEASE + Duration::from_secs(30), "the inbox drained", || {
        let stats = inbox_stats(&inbox);
        (stats["ready"] + stats["leased"] + stats["retry"] == 0).then_some(stats)
    });
    let drained = last_restart.elapsed();
    drop(listener);

    let hits = app.hits();
    let by_call = group_by_call(&hits);
    for &i in &acked {
        let got = &by_call[ids[i].as_str()];
        assert!(
            got.iter().any(|hit| hit.body == bodies[i]),
            "{}: the app never got the exact bytes",
            ids[i]
        );
    }
    assert_forwarded_correctly(&hits);
    let stored = usize::try_from(stats["done"]).unwrap();
    assert_eq!(stats["dead"], 0, "{stats:?}");
    assert!(
        stored >= acked.len() && stored <= EVENTS,
        "{stored} stored, {} acknowledged",
        acked.len()
    );
    assert_eq!(by_call.len(), stored, "every stored event reached the app");
    // Each event leased at a kill comes again when its lease ends: a
    // duplicate if the app had it, late if it had not.
    let duplicates = hits.len() - by_call.len();
    let late = by_call
        .values()
        .filter(|got| got[0].at > last_restart + LEASE / 3)
        .count();
    println!(
        "kill -9 x{KILLS} under load: {EVENTS} deliveries from {SENDERS} threads, {} acknowledged \
         ({} tries, {} failed), {stored} stored; app: {} requests for {} events, {duplicates} \
         duplicates and {late} events first arriving when their lease ended (bound {} together); \
         all acknowledged at the app {:.1} s after the last restart, inbox drained after {:.1} s",
        acked.len(),
        tries.load(Ordering::SeqCst),
        failed_tries.load(Ordering::SeqCst),
        hits.len(),
        by_call.len(),
        KILLS * WORKERS,
        all_arrived.as_secs_f64(),
        drained.as_secs_f64(),
    );
    assert!(
        duplicates + late <= KILLS * WORKERS,
        "{duplicates} duplicates and {late} late events for {KILLS} kills of {WORKERS} workers"
    );
}

/// The URL of the listener now running, if any, and a generation that
/// changes whenever it does.
#[derive(Default)]
struct Current {
    state: Mutex<(u64, Option<String>)>,
    changed: Condvar,
}

impl Current {
    fn publish(&self, url: String) {
        let mut state = self.state.lock().unwrap();
        *state = (state.0 + 1, Some(url));
        self.changed.notify_all();
    }

    fn withdraw(&self) {
        let mut state = self.state.lock().unwrap();
        *state = (state.0 + 1, None);
        self.changed.notify_all();
    }

    fn wait_for_url(&self) -> (u64, String) {
        let deadline = Duration::from_secs(60);
        let state = self.state.lock().unwrap();
        let (state, timeout) = self
            .changed
            .wait_timeout_while(state, deadline, |(_, url)| url.is_none())
            .unwrap();
        assert!(!timeout.timed_out(), "no listener within {deadline:?}");
        (state.0, state.1.clone().unwrap())
    }

    fn wait_for_change(&self, generation: u64, at_most: Duration) {
        let state = self.state.lock().unwrap();
        let _ = self
            .changed
            .wait_timeout_while(state, at_most, |(now, _)| *now == generation)
            .unwrap();
    }
}

// ---------------------------------------------------------------------------
// The app down, then failing
// ---------------------------------------------------------------------------

/// Forwarding to a port where nothing listens fails every event; once the
/// app is up it answers 500 to the first two attempts of half the events.
/// Every event arrives, signed, with one `Idempotency-Key` across its
/// attempts.
fn forwarding_outlasts_an_app_down_then_failing() {
    const EVENTS: usize = 8;
    let port = free_port();
    let dir = TempDir::new("down");
    let inbox = dir.sqlite_url();
    let target = format!("http://127.0.0.1:{port}/retell");
    let schedule = vec!["200ms"; 30].join(",");
    let listener = Listen::start(&[
        "--inbox",
        &inbox,
        "--forward",
        &target,
        "--retry-schedule",
        &schedule,
    ]);
    let ids: Vec<String> = (0..EVENTS).map(|i| format!("call_down_{i}")).collect();
    let bodies: Vec<Vec<u8>> = ids.iter().map(|id| body("call_ended_phone", id)).collect();
    let keys: Vec<String> = bodies.iter().map(|body| key_hex(body)).collect();
    for body in &bodies {
        assert_eq!(deliver(&listener.url, body).unwrap(), 204);
    }
    listener.wait_lines(
        Duration::from_secs(30),
        "a refused forward of every event",
        |lines| {
            keys.iter().all(|key| {
                lines.iter().any(|line| {
                    line.contains(&format!(" {} attempt ", &key[..12]))
                        && line.contains("no answer")
                })
            })
        },
    );

    // Even events: the first two attempts the app sees fail.
    let app = App::start_on(port, |hit, earlier| {
        let even = hit
            .call_id
            .rsplit('_')
            .next()
            .unwrap()
            .parse::<usize>()
            .unwrap()
            % 2
            == 0;
        if even && earlier < 2 { 500 } else { 204 }
    });
    app.wait(
        Duration::from_secs(60),
        "every event acknowledged by the app",
        |hits| {
            ids.iter().all(|id| {
                hits.iter()
                    .any(|hit| hit.call_id == *id && (200..300).contains(&hit.status))
            })
        },
    );
    let hits = app.hits();
    assert_forwarded_correctly(&hits);
    let by_call = group_by_call(&hits);
    let mut figures = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let got = &by_call[id.as_str()];
        let statuses: Vec<u16> = got.iter().map(|hit| hit.status).collect();
        let expected: &[u16] = if i % 2 == 0 { &[500, 500, 204] } else { &[204] };
        assert_eq!(statuses, expected, "{id}");
        assert!(
            got.iter()
                .all(|hit| hit.body == bodies[i] && hit.key == keys[i]),
            "{id}"
        );
        // The listener's own count, refused attempts included.
        let lines = listener.lines();
        let prefix = format!(" {} attempt ", &keys[i][..12]);
        let attempts: Vec<&String> = lines.iter().filter(|line| line.contains(&prefix)).collect();
        assert!(
            attempts.last().unwrap().ends_with(": 204 No Content"),
            "{attempts:?}"
        );
        for (n, line) in attempts.iter().enumerate() {
            assert!(
                line.contains(&format!("{prefix}{}:", n + 1)),
                "{attempts:?}"
            );
        }
        figures.push(attempts.len());
    }
    println!("app down, then failing: attempts per event until acknowledged {figures:?}");
}

// ---------------------------------------------------------------------------
// Two processes on one SQLite file
// ---------------------------------------------------------------------------

/// While a listener stores and forwards deliveries, `inbox stats`, `list`
/// and `replay --dead` run as processes of their own on the same file: none
/// fails, and the counts add up.
fn inbox_commands_share_the_sqlite_file_with_a_running_listener() {
    const EVENTS: usize = 300;
    const SENDERS: usize = 2;
    // Threads running `stats`, `list` and `replay --dead` in turn.
    const COMMANDS: usize = 2;
    let dir = TempDir::new("shared");
    let inbox = dir.sqlite_url();
    let accept_all = Arc::new(AtomicBool::new(false));
    let accept = Arc::clone(&accept_all);
    let doomed = |id: &str| id.rsplit('_').next().unwrap().parse::<usize>().unwrap() % 10 == 0;
    let app = App::start(move |hit, _| {
        if doomed(&hit.call_id) && !accept.load(Ordering::SeqCst) {
            500
        } else {
            204
        }
    });
    // One retry: a doomed event is dead after two attempts.
    let listener = Listen::start(&[
        "--inbox",
        &inbox,
        "--forward",
        &app.url(),
        "--retry-schedule",
        "100ms",
    ]);
    let ids: Vec<String> = (0..EVENTS).map(|i| format!("call_shared_{i:03}")).collect();
    let doomed_count = ids.iter().filter(|id| doomed(id)).count();
    let next = AtomicUsize::new(0);
    let acked = AtomicUsize::new(0);
    let sending = AtomicUsize::new(SENDERS);
    let runs = AtomicUsize::new(0);
    thread::scope(|scope| {
        for _ in 0..SENDERS {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= EVENTS {
                        break;
                    }
                    let body = body("call_ended_phone", &ids[i]);
                    assert_eq!(deliver(&listener.url, &body).unwrap(), 204, "{}", ids[i]);
                    acked.fetch_add(1, Ordering::SeqCst);
                }
                sending.fetch_sub(1, Ordering::SeqCst);
            });
        }
        for _ in 0..COMMANDS {
            scope.spawn(|| {
                while sending.load(Ordering::SeqCst) > 0 {
                    // Mid-stream, the total lies between what was
                    // acknowledged before and what was sent after.
                    let at_least = acked.load(Ordering::SeqCst) as u64;
                    let stats = inbox_stats(&inbox);
                    let at_most = next.load(Ordering::SeqCst).min(EVENTS) as u64;
                    let total: u64 = stats.values().sum();
                    assert!(
                        at_least <= total && total <= at_most,
                        "{at_least} <= {stats:?} <= {at_most}"
                    );
                    for command in [&["list", "--limit", "1000"][..], &["replay", "--dead"]] {
                        assert_no_lock_error(&inbox_command(&inbox, command), command);
                    }
                    runs.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
    });
    let done = EVENTS - doomed_count;
    let stats = poll_until(Duration::from_secs(30), "every event settled", || {
        let stats = inbox_stats(&inbox);
        let settled = stats["ready"] + stats["leased"] + stats["retry"] == 0;
        (settled && stats["dead"] == doomed_count as u64).then_some(stats)
    });
    assert_eq!(stats["done"], done as u64, "{stats:?}");

    let listed = inbox_command(&inbox, &["list", "--state", "dead", "--limit", "1000"]);
    let lines = cli_binary::stdout(&listed);
    assert!(
        lines.ends_with(&format!("{doomed_count} entries\n")),
        "{lines}"
    );
    let dead_keys: HashSet<&str> = lines
        .lines()
        .filter(|line| line.contains(" dead "))
        .map(|line| line.split(' ').next().unwrap())
        .collect();
    let expected: HashSet<String> = ids
        .iter()
        .filter(|id| doomed(id))
        .map(|id| key_hex(&body("call_ended_phone", id)))
        .collect();
    assert_eq!(dead_keys, expected.iter().map(String::as_str).collect());
    let all = cli_binary::stdout(&inbox_command(&inbox, &["list", "--limit", "1000"]));
    assert!(all.ends_with(&format!("{EVENTS} entries\n")), "{all}");

    // The app is fixed: one replay of the dead letters delivers them.
    accept_all.store(true, Ordering::SeqCst);
    let replayed = inbox_command(&inbox, &["replay", "--dead"]);
    assert_no_lock_error(&replayed, &["replay", "--dead"]);
    assert_eq!(
        cli_binary::stdout(&replayed),
        format!("{doomed_count} entries ready again\n")
    );
    poll_until(
        Duration::from_secs(30),
        "the replayed events processed",
        || {
            let stats = inbox_stats(&inbox);
            (stats["done"] == EVENTS as u64 && stats["dead"] == 0).then_some(())
        },
    );
    let hits = app.hits();
    assert_forwarded_correctly(&hits);
    let acknowledged: HashSet<&str> = hits
        .iter()
        .filter(|hit| hit.status == 204)
        .map(|hit| hit.call_id.as_str())
        .collect();
    assert_eq!(acknowledged.len(), EVENTS);
    drop(listener);
    println!(
        "one SQLite file, three processes: {EVENTS} events, {doomed_count} dead then replayed; \
         {} rounds of stats, list and replay --dead alongside the listener",
        runs.load(Ordering::SeqCst)
    );
}

fn assert_no_lock_error(out: &Output, command: &[&str]) {
    let stderr = cli_binary::stderr(out);
    assert_eq!(out.status.code(), Some(0), "inbox {command:?}: {stderr}");
    assert!(
        !stderr.contains("locked") && !stderr.contains("busy"),
        "inbox {command:?}: {stderr}"
    );
}

// ---------------------------------------------------------------------------
// Redis
// ---------------------------------------------------------------------------

/// With Redis frozen (SIGSTOP), a signed delivery gets `503` well within
/// Retell's 10 s; once Redis runs again, the retry gets `204` and the event
/// is processed.
fn a_stopped_redis_gets_503_within_retells_timeout() {
    let server = RedisServer::start();
    let app = App::start(|_, _| 204);
    let inbox = server.url();
    let listener = Listen::start(&["--inbox", &inbox, "--forward", &app.url()]);
    let before = body("call_ended_phone", "call_before_stop");
    assert_eq!(deliver(&listener.url, &before).unwrap(), 204);
    app.wait(Duration::from_secs(30), "the first event", |hits| {
        hits.len() == 1
    });

    let paused = body("call_ended_phone", "call_while_stopped");
    let stopped = Stopped::new(server.pid().unwrap());
    let started = Instant::now();
    let status = deliver(&listener.url, &paused).unwrap();
    let took = started.elapsed();
    assert_eq!(status, 503);
    assert!(took < RETELL_TIMEOUT, "503 after {took:?}");
    listener.wait_lines(Duration::from_secs(5), "the 503 line", |lines| {
        lines
            .iter()
            .any(|line| line.contains("call_while_stopped 503 inbox failed"))
    });
    drop(stopped);

    let retried = Instant::now();
    let status = deliver(&listener.url, &paused).unwrap();
    assert_eq!(status, 204, "the retry after Redis resumed");
    app.wait(
        Duration::from_secs(60),
        "the event refused while stopped",
        |hits| {
            hits.iter()
                .any(|hit| hit.call_id == "call_while_stopped" && hit.status == 204)
        },
    );
    assert_forwarded_correctly(&app.hits());
    let lines = listener.lines();
    let answer = lines
        .iter()
        .rfind(|line| line.contains("call_while_stopped 204"))
        .unwrap();
    println!(
        "redis stopped: 503 after {:.0} ms (Retell waits {} s); after resuming, the retry got \
         \"{}\" and the event reached the app {:.0} ms later",
        took.as_secs_f64() * 1000.0,
        RETELL_TIMEOUT.as_secs(),
        answer.split_once(" 204 ").unwrap().1,
        retried.elapsed().as_secs_f64() * 1000.0
    );
}

/// A process stopped with SIGSTOP until dropped (SIGCONT).
struct Stopped(u32);

impl Stopped {
    fn new(pid: u32) -> Self {
        signal("-STOP", pid);
        Self(pid)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        signal("-CONT", self.0);
    }
}

fn signal(which: &str, pid: u32) {
    let status = Command::new("kill")
        .args([which, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {which} {pid}");
}

/// Two listeners share one Redis inbox; each event's signed delivery is sent
/// four times at once, two copies to each: one copy is stored, the others are
/// answered as duplicates, and the app gets each event once.
fn four_copies_across_two_redis_listeners_run_once() {
    const EVENTS: usize = 10;
    let server = RedisServer::start();
    let app = App::start(|_, _| 204);
    let inbox = server.url();
    let args = ["--inbox", inbox.as_str(), "--forward", &app.url()];
    let listeners = [Listen::start(&args), Listen::start(&args)];
    for i in 0..EVENTS {
        let body = body("call_ended_phone", &format!("call_copies_{i}"));
        let signature = sign(&body, KEY, now_ms());
        let start = Barrier::new(4);
        let statuses: Vec<u16> = thread::scope(|scope| {
            let copies: Vec<_> = (0..4)
                .map(|copy| {
                    let (url, body, signature, start) =
                        (&listeners[copy % 2].url, &body, &signature, &start);
                    scope.spawn(move || {
                        start.wait();
                        post(url, body, &[("X-Retell-Signature", signature)]).unwrap()
                    })
                })
                .collect();
            copies
                .into_iter()
                .map(|copy| copy.join().unwrap())
                .collect()
        });
        assert_eq!(statuses, [204; 4], "call_copies_{i}");
    }
    poll_until(Duration::from_secs(30), "every event processed", || {
        let stats = inbox_stats(&inbox);
        let settled = stats["ready"] + stats["leased"] + stats["retry"] == 0;
        (settled && stats["done"] == EVENTS as u64).then_some(())
    });
    let hits = app.hits();
    assert_forwarded_correctly(&hits);
    let by_call = group_by_call(&hits);
    assert_eq!(by_call.len(), EVENTS);
    assert_eq!(hits.len(), EVENTS, "each event forwarded once");
    let lines: Vec<String> = listeners.iter().flat_map(Listen::lines).collect();
    let count = |what: &str| lines.iter().filter(|line| line.contains(what)).count();
    assert_eq!(count(" 204 stored in the inbox"), EVENTS, "{lines:#?}");
    assert_eq!(
        count(" 204 duplicate of an event"),
        3 * EVENTS,
        "{lines:#?}"
    );
    println!(
        "four copies at once across two listeners, {EVENTS} events: {} stored, {} duplicates, \
         {} runs at the app",
        count(" 204 stored in the inbox"),
        count(" 204 duplicate of an event"),
        hits.len()
    );
}

/// `call_started`, `call_ended` and `call_analyzed` of several calls, each
/// sent to either of two listeners on one Redis inbox; the app fails the
/// first attempt of every `call_ended`. It still sees each call's events in
/// the order they were received.
fn per_call_order_holds_across_two_redis_listeners() {
    const CALLS: usize = 6;
    let server = RedisServer::start();
    let app = App::start(|hit, earlier| {
        if hit.event == "call_ended" && earlier == 0 {
            500
        } else {
            204
        }
    });
    let inbox = server.url();
    let args = [
        "--inbox",
        inbox.as_str(),
        "--forward",
        &app.url(),
        "--retry-schedule",
        "200ms,200ms,200ms,200ms,200ms",
    ];
    let listeners = [Listen::start(&args), Listen::start(&args)];
    let events = ["call_started", "call_ended_phone", "call_analyzed_maximal"];
    thread::scope(|scope| {
        for call in 0..CALLS {
            let listeners = &listeners;
            scope.spawn(move || {
                let id = format!("call_order_{call}");
                for (n, fixture) in events.iter().enumerate() {
                    // Each call's events alternate between the listeners.
                    let url = &listeners[(call + n) % 2].url;
                    assert_eq!(
                        deliver(url, &body(fixture, &id)).unwrap(),
                        204,
                        "{id} {fixture}"
                    );
                }
            });
        }
    });
    app.wait(Duration::from_secs(60), "every call_analyzed", |hits| {
        hits.iter()
            .filter(|hit| hit.event == "call_analyzed" && hit.status == 204)
            .count()
            == CALLS
    });
    poll_until(Duration::from_secs(30), "every event processed", || {
        let stats = inbox_stats(&inbox);
        let settled = stats["ready"] + stats["leased"] + stats["retry"] == 0;
        (settled && stats["done"] == 3 * CALLS as u64).then_some(())
    });
    let hits = app.hits();
    assert_forwarded_correctly(&hits);
    for (id, got) in group_by_call(&hits) {
        let seen: Vec<(&str, u16)> = got
            .iter()
            .map(|hit| (hit.event.as_str(), hit.status))
            .collect();
        assert_eq!(
            seen,
            [
                ("call_started", 204),
                ("call_ended", 500),
                ("call_ended", 204),
                ("call_analyzed", 204)
            ],
            "{id}"
        );
    }
    println!(
        "per-call order across two listeners: {CALLS} calls, {} requests at the app, each call \
         in order with its call_analyzed held back while call_ended was retried",
        hits.len()
    );
}

// ---------------------------------------------------------------------------
// demo
// ---------------------------------------------------------------------------

fn demo_retries_a_failure_then_processes_it() {
    let out = cli().arg("demo").output().unwrap();
    let stdout = cli_binary::stdout(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        cli_binary::stderr(&out)
    );
    let failed = stdout
        .lines()
        .find(|line| line.contains(" attempt 1: failed"))
        .unwrap_or_else(|| panic!("no failed attempt: {stdout}"));
    // `HH:MM:SS worker EVENT KEY attempt 1: failed …`
    let words: Vec<&str> = failed.split(' ').collect();
    let (event, key) = (words[2], words[3]);
    let retried = format!("worker {event} {key} attempt 2: processed");
    let after = &stdout[stdout.find(failed).unwrap()..];
    assert!(after.contains(&retried), "{stdout}");
    assert!(stdout.contains("demo: ok"), "{stdout}");
}

// ---------------------------------------------------------------------------
// The app: a hyper server that records what `--forward` sends it
// ---------------------------------------------------------------------------

/// One request the app received.
#[derive(Debug, Clone)]
struct Hit {
    /// `Idempotency-Key`.
    key: String,
    body: Vec<u8>,
    event: String,
    call_id: String,
    /// Whether `X-Retell-Signature` verified with [`KEY`].
    signature_ok: bool,
    /// What the app answered.
    status: u16,
    /// When it arrived.
    at: Instant,
}

/// Decides the app's answer from the request and how many requests with the
/// same `Idempotency-Key` came before it.
type Policy = Box<dyn Fn(&Hit, usize) -> u16 + Send + Sync>;

struct AppState {
    hits: Mutex<Vec<Hit>>,
    arrived: Condvar,
    policy: Policy,
    verifier: Verifier,
}

struct App {
    addr: SocketAddr,
    state: Arc<AppState>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl App {
    fn start(policy: impl Fn(&Hit, usize) -> u16 + Send + Sync + 'static) -> Self {
        Self::start_on(0, policy)
    }

    fn start_on(port: u16, policy: impl Fn(&Hit, usize) -> u16 + Send + Sync + 'static) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(("127.0.0.1", port)))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(AppState {
            hits: Mutex::new(Vec::new()),
            arrived: Condvar::new(),
            policy: Box::new(policy),
            verifier: Verifier::new(KEY).unwrap(),
        });
        runtime.spawn(serve_app(listener, Arc::clone(&state)));
        Self {
            addr,
            state,
            runtime: Some(runtime),
        }
    }

    fn url(&self) -> String {
        format!("http://{}/retell", self.addr)
    }

    fn hits(&self) -> Vec<Hit> {
        self.state.hits.lock().unwrap().clone()
    }

    /// Waits until `done` holds for the requests received so far.
    fn wait(&self, deadline: Duration, what: &str, done: impl Fn(&[Hit]) -> bool) {
        let hits = self.state.hits.lock().unwrap();
        let (hits, timeout) = self
            .state
            .arrived
            .wait_timeout_while(hits, deadline, |hits| !done(hits))
            .unwrap();
        assert!(
            !timeout.timed_out(),
            "{what}: not within {deadline:?}; the app got {} requests",
            hits.len()
        );
    }
}

impl Drop for App {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

async fn serve_app(listener: tokio::net::TcpListener, state: Arc<AppState>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let state = Arc::clone(&state);
                async move {
                    let header = |name: &str| {
                        request
                            .headers()
                            .get(name)
                            .and_then(|value| value.to_str().ok())
                            .unwrap_or_default()
                            .to_owned()
                    };
                    let signature = header("x-retell-signature");
                    let key = header("idempotency-key");
                    let body = request.into_body().collect().await?.to_bytes().to_vec();
                    let status = state.record(key, body, &signature);
                    let response = Response::builder()
                        .status(StatusCode::from_u16(status).unwrap())
                        .body(Empty::<Bytes>::new())
                        .unwrap();
                    Ok::<_, hyper::Error>(response)
                }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

impl AppState {
    fn record(&self, key: String, body: Vec<u8>, signature: &str) -> u16 {
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let text = |value: &serde_json::Value| value.as_str().unwrap_or_default().to_owned();
        let mut hit = Hit {
            key,
            event: text(&json["event"]),
            call_id: text(&json["call"]["call_id"]),
            signature_ok: self.verifier.verify(&body, signature).is_ok(),
            body,
            status: 0,
            at: Instant::now(),
        };
        let mut hits = self.hits.lock().unwrap();
        let earlier = hits.iter().filter(|seen| seen.key == hit.key).count();
        hit.status = (self.policy)(&hit, earlier);
        hits.push(hit.clone());
        self.arrived.notify_all();
        hit.status
    }
}

/// Every forwarded request is signed with the key, carries its event's
/// dedupe key as `Idempotency-Key`, and one event has one key.
fn assert_forwarded_correctly(hits: &[Hit]) {
    let mut keys: HashMap<(&str, &str), &str> = HashMap::new();
    for hit in hits {
        let event = (hit.call_id.as_str(), hit.event.as_str());
        assert!(hit.signature_ok, "{event:?}: the signature does not verify");
        assert_eq!(hit.key, key_hex(&hit.body), "{event:?}");
        let first = *keys.entry(event).or_insert(hit.key.as_str());
        assert_eq!(first, hit.key, "{event:?}: two idempotency keys");
    }
}

/// The requests for each call, in the order the app received them.
fn group_by_call(hits: &[Hit]) -> BTreeMap<&str, Vec<&Hit>> {
    let mut by_call: BTreeMap<&str, Vec<&Hit>> = BTreeMap::new();
    for hit in hits {
        by_call.entry(hit.call_id.as_str()).or_default().push(hit);
    }
    by_call
}

// ---------------------------------------------------------------------------
// `listen` as a child process
// ---------------------------------------------------------------------------

/// A `listen` child whose standard output is read continuously by a thread
/// (a full pipe would block it). Killed with SIGKILL when dropped.
struct Listen {
    child: Child,
    url: String,
    output: Arc<Lines>,
    reader: Option<thread::JoinHandle<()>>,
}

#[derive(Default)]
struct Lines {
    lines: Mutex<(Vec<String>, bool)>,
    changed: Condvar,
}

impl Listen {
    /// Starts `listen --port 0 ARGS` with [`KEY`] and waits for its ready
    /// line.
    fn start(args: &[&str]) -> Self {
        let mut child = cli()
            .env("RETELL_API_KEY", KEY)
            .args(["listen", "--port", "0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let output = Arc::new(Lines::default());
        let sink = Arc::clone(&output);
        let reader = thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                sink.lines.lock().unwrap().0.push(line);
                sink.changed.notify_all();
            }
            sink.lines.lock().unwrap().1 = true;
            sink.changed.notify_all();
        });
        let mut listen = Self {
            child,
            url: String::new(),
            output,
            reader: Some(reader),
        };
        let mut url = None;
        listen.wait_lines(Duration::from_secs(30), "the ready line", |lines| {
            url = lines
                .iter()
                .find_map(|line| line.strip_prefix("listening on "))
                .map(|rest| rest.split(' ').next().unwrap().to_owned());
            url.is_some()
        });
        listen.url = url.unwrap();
        listen
    }

    fn lines(&self) -> Vec<String> {
        self.output.lines.lock().unwrap().0.clone()
    }

    /// Waits until `done` holds for the lines printed so far.
    fn wait_lines(&self, deadline: Duration, what: &str, mut done: impl FnMut(&[String]) -> bool) {
        let lines = self.output.lines.lock().unwrap();
        let (lines, timeout) = self
            .output
            .changed
            .wait_timeout_while(lines, deadline, |(lines, closed)| !done(lines) && !*closed)
            .unwrap();
        let (lines, closed) = &*lines;
        assert!(
            !timeout.timed_out() && (!*closed || done(lines)),
            "{what}: not within {deadline:?} (output closed: {closed}): {lines:#?}"
        );
    }

    fn kill_9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

impl Drop for Listen {
    fn drop(&mut self) {
        self.kill_9();
    }
}

// ---------------------------------------------------------------------------
// Requests, fixtures, the inbox command, files
// ---------------------------------------------------------------------------

fn now_ms() -> u64 {
    unix_ms(SystemTime::now()).unwrap()
}

/// A fixture with its call id replaced by `call_id`.
fn body(fixture: &str, call_id: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/{fixture}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(FIXTURE_CALL_ID), "{fixture}");
    text.replace(FIXTURE_CALL_ID, call_id).into_bytes()
}

/// The event's dedupe key, as `Idempotency-Key` and `inbox list` show it.
fn key_hex(body: &[u8]) -> String {
    let event = WebhookEvent::from_slice(body).unwrap();
    DedupeKey::for_event(&event, body).to_hex()
}

/// Signs `body` now and POSTs it, as Retell delivers.
fn deliver(url: &str, body: &[u8]) -> io::Result<u16> {
    let signature = sign(body, KEY, now_ms());
    post(url, body, &[("X-Retell-Signature", &signature)])
}

/// POSTs `body` over a new connection and returns the answer's status; an
/// error when no status line came (refused, reset, closed).
fn post(url: &str, body: &[u8], headers: &[(&str, &str)]) -> io::Result<u16> {
    let rest = url.strip_prefix("http://").unwrap();
    let slash = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(slash);
    let addr: SocketAddr = authority.parse().unwrap();
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    // Past Retell's wait: a slower answer is a failure of the test.
    stream.set_read_timeout(Some(Duration::from_secs(20)))?;
    stream.set_write_timeout(Some(Duration::from_secs(20)))?;
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut reply = Vec::new();
    let mut chunk = [0u8; 512];
    while !reply.windows(2).any(|pair| pair == b"\r\n") {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        reply.extend_from_slice(&chunk[..n]);
    }
    let line = String::from_utf8_lossy(&reply);
    line.split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, line.into_owned()))
}

/// `retell-webhooks inbox --inbox URL ARGS`.
fn inbox_command(inbox: &str, args: &[&str]) -> Output {
    cli()
        .args(["inbox", "--inbox", inbox])
        .args(args)
        .output()
        .unwrap()
}

/// `inbox stats` as counts by state.
fn inbox_stats(inbox: &str) -> BTreeMap<String, u64> {
    let out = inbox_command(inbox, &["stats"]);
    assert_no_lock_error(&out, &["stats"]);
    let stats: BTreeMap<String, u64> = cli_binary::stdout(&out)
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let state = words.next()?.to_owned();
            let count = words.next()?.parse().ok()?;
            Some((state, count))
        })
        .collect();
    for state in ["ready", "leased", "retry", "dead", "done"] {
        assert!(stats.contains_key(state), "{stats:?}");
    }
    stats
}

/// Polls `probe` (a few times a second) until it gives a value.
fn poll_until<T>(deadline: Duration, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(
            started.elapsed() < deadline,
            "{what}: not within {deadline:?}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// A port nothing listens on (it was free a moment ago).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
