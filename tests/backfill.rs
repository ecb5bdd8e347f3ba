//! `backfill::Backfill` against the stand-in Retell API
//! (`common/retell_api.rs`) and a `SqliteInbox` in a file: a downtime
//! recovered while live deliveries arrive over signed HTTP, overlapping
//! runs, a live delivery winning the race, a run cut short that resumes
//! from its watermark, page limits, chats, and dry runs. One test prints
//! the throughput figures (`-- --nocapture`).

#[path = "common/http.rs"]
mod http;
#[path = "common/retell_api.rs"]
mod retell_api;
#[path = "common/temp_dir.rs"]
mod temp_dir;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use temp_dir::TempDir;

use retell_webhooks::adapters::axum::router;
use retell_webhooks::api::{ApiError, Client};
use retell_webhooks::backfill::{Backfill, BackfillError, Outcome, RecoveredEvent};
use retell_webhooks::dedupe::DedupeKey;
use retell_webhooks::inbox::{
    Entry, Failure, Inbox, InboxError, Inserted, LeaseRequest, Leased, ListFilter, NewEntry,
    Replay, SqliteInbox, State, Stats, StoreFuture, Worker,
};
use retell_webhooks::serde_json::{self, Value};
use retell_webhooks::{
    CallEvent, ChatEvent, Receiver, ReceiverConfig, SIGNATURE_HEADER, Verifier, WebhookEvent,
    WebhookHandler,
};

use http::{Framing, send_raw};
use retell_api::{API_KEY, Server};

const MINUTE: u64 = 60_000;

fn now_ms() -> u64 {
    retell_webhooks::unix_ms(SystemTime::now()).unwrap()
}

fn client(server: &Server) -> Client {
    Client::builder(API_KEY)
        .base_url(server.base_url())
        .build()
        .unwrap()
}

/// A backfill of calls only, unpaced, at a fixed clock.
fn backfill<I: Inbox>(server: &Server, inbox: I, now: u64) -> Backfill<I> {
    Backfill::new(client(server), inbox)
        .with_kinds(true, false)
        .with_requests_per_second(0.0)
        .with_clock(move || now)
}

/// `count` calls a minute apart, the first at `first_ms`, each 30 s long.
fn calls(count: usize, first_ms: u64) -> Vec<Value> {
    (0..count)
        .map(|n| retell_api::call(n, first_ms + n as u64 * MINUTE, 30_000))
        .collect()
}

/// Every entry's event name and call id, with whether it carries the mark.
async fn stored(inbox: &dyn Inbox) -> Vec<(String, String, bool)> {
    let entries = inbox
        .list(ListFilter {
            limit: 100_000,
            ..ListFilter::default()
        })
        .await
        .unwrap();
    let mut out = Vec::new();
    for entry in entries {
        let (_, body) = inbox.show(&entry.key).await.unwrap().unwrap();
        let event = WebhookEvent::from_slice(&body).unwrap();
        let id = event
            .call_id()
            .or(event.chat_id())
            .unwrap_or_default()
            .to_owned();
        out.push((
            event.event_name().to_owned(),
            id,
            event.recovered().is_some(),
        ));
    }
    out.sort();
    out
}

/// Records each run of the handler: (event, id) → runs, and how many came
/// from the backfill.
#[derive(Default)]
struct Tally {
    runs: Mutex<HashMap<(String, String), u32>>,
    recovered: AtomicU64,
    total: AtomicU64,
}

impl Tally {
    fn record(&self, event: &str, id: &str, recovered: bool) {
        *self
            .runs
            .lock()
            .unwrap()
            .entry((event.to_owned(), id.to_owned()))
            .or_default() += 1;
        if recovered {
            self.recovered.fetch_add(1, Ordering::SeqCst);
        }
        self.total.fetch_add(1, Ordering::SeqCst);
    }
}

struct App(Arc<Tally>);

impl WebhookHandler for App {
    type Error = String;
    async fn on_call_ended(&self, event: CallEvent) -> Result<(), String> {
        // call_ended never carries the analysis, live or rebuilt.
        assert!(event.call.call_analysis.is_none());
        assert!(
            event.call.transcript.is_some(),
            "the whole call, transcript included"
        );
        self.0.record(
            "call_ended",
            &event.call.call_id,
            event.recovered().is_some(),
        );
        Ok(())
    }
    async fn on_call_analyzed(&self, event: CallEvent) -> Result<(), String> {
        assert!(event.call.call_analysis.is_some());
        self.0.record(
            "call_analyzed",
            &event.call.call_id,
            event.recovered().is_some(),
        );
        Ok(())
    }
    async fn on_chat_ended(&self, event: ChatEvent) -> Result<(), String> {
        self.0.record(
            "chat_ended",
            &event.chat.chat_id,
            event.recovered().is_some(),
        );
        Ok(())
    }
    async fn on_chat_analyzed(&self, event: ChatEvent) -> Result<(), String> {
        self.0.record(
            "chat_analyzed",
            &event.chat.chat_id,
            event.recovered().is_some(),
        );
        Ok(())
    }
}

/// The body Retell would have sent for `event` of the stand-in's `call`.
fn live_body(event: &str, call: &Value) -> Vec<u8> {
    let mut call = call.clone();
    if event == "call_ended" {
        call.as_object_mut().unwrap().remove("call_analysis");
    }
    serde_json::to_vec(&serde_json::json!({ "event": event, "call": call })).unwrap()
}

/// A receiver storing into `inbox`, served on 127.0.0.1 at `/webhook`.
async fn serve_receiver(inbox: SqliteInbox) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let receiver = Receiver::new(
        Verifier::new(API_KEY).unwrap(),
        ReceiverConfig::new().with_inbox(inbox),
    );
    // With an inbox the route stores; the worker runs the handler.
    let app: axum::Router = router("/webhook", &receiver, App(Arc::default()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (addr, task)
}

async fn deliver(addr: std::net::SocketAddr, body: &[u8]) -> u16 {
    let signature = retell_webhooks::sign(body, API_KEY, now_ms());
    let headers = [
        (SIGNATURE_HEADER, signature.as_str()),
        ("Content-Type", "application/json"),
    ];
    send_raw(addr, "POST", "/webhook", &headers, body, Framing::Length)
        .await
        .status
}

async fn until(what: &str, done: impl Fn() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < Duration::from_secs(60), "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The receiver was down while the stand-in "made" 300 calls; 50 of Retell's
/// deliveries of some of them arrive while the backfill runs. Every call's
/// `call_ended` and `call_analyzed` reach the handler exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_downtime_every_event_reaches_the_handler_exactly_once() {
    let server = Server::start().await;
    let now = now_ms();
    // 300 calls, 20 s apart, started 110 to 10 minutes ago.
    server.add_calls(
        (0..300).map(|n| retell_api::call(n, now - 110 * MINUTE + n as u64 * 20_000, 45_000)),
    );
    let dir = TempDir::new("downtime");
    let inbox = SqliteInbox::open(dir.file()).unwrap();
    let (addr, _server_task) = serve_receiver(inbox.clone()).await;
    let tally = Arc::new(Tally::default());
    let worker = Worker::new(inbox.clone(), App(Arc::clone(&tally)))
        .with_poll_interval(Duration::from_millis(20))
        .with_concurrency(8)
        .spawn();

    // Retell's late attempts for calls 100..125: both events each.
    let live: Vec<Vec<u8>> = (100..125)
        .flat_map(|n| {
            let call = server.call(&format!("call_{n:05}"));
            [
                live_body("call_ended", &call),
                live_body("call_analyzed", &call),
            ]
        })
        .collect();
    assert_eq!(live.len(), 50);
    let deliveries = async {
        let mut statuses = Vec::new();
        for body in &live {
            statuses.push(deliver(addr, body).await);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        statuses
    };
    let backfill = Backfill::new(client(&server), inbox.clone())
        .with_kinds(true, false)
        .with_page_size(50)
        .with_requests_per_second(0.0);
    let (statuses, report) = tokio::join!(deliveries, backfill.run());
    assert!(statuses.iter().all(|s| *s == 204), "{statuses:?}");
    assert_eq!(report.error(), None);
    assert!(report.is_complete());
    assert_eq!(report.calls.listed, 300);
    assert_eq!(report.calls.pages, 6);

    until("600 events handled", || {
        tally.total.load(Ordering::SeqCst) >= 600
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    worker.shutdown().await;
    let runs = tally.runs.lock().unwrap().clone();
    assert_eq!(runs.len(), 600);
    for n in 0..300 {
        for event in ["call_ended", "call_analyzed"] {
            let id = format!("call_{n:05}");
            assert_eq!(
                runs.get(&(event.to_owned(), id.clone())),
                Some(&1),
                "{event} {id}"
            );
        }
    }
    // What the backfill stored is what the handler saw as recovered; the
    // live deliveries it lost to, and those it found stored, it left alone.
    assert_eq!(
        tally.recovered.load(Ordering::SeqCst),
        report.calls.recovered
    );
    assert!(report.calls.recovered >= 550, "{report:?}");
    assert_eq!(inbox.stats(now_ms()).await.unwrap().done, 600);
}

/// Two runs over overlapping windows at once, then a third: nothing is
/// stored twice, and a call whose events are stored is not fetched again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_backfills_store_nothing_twice() {
    let server = Server::start().await;
    let t0 = 1_785_420_000_000;
    server.add_calls(calls(120, t0));
    let dir = TempDir::new("overlap");
    let inbox = SqliteInbox::open(dir.file()).unwrap();
    let now = t0 + 200 * MINUTE;
    let a = backfill(&server, inbox.clone(), now).with_page_size(25);
    let b = backfill(&server, inbox.clone(), now).with_page_size(40);
    let (ra, rb) = tokio::join!(
        a.run_window(t0, t0 + 80 * MINUTE),
        b.run_window(t0 + 40 * MINUTE, t0 + 119 * MINUTE)
    );
    assert_eq!((ra.error(), rb.error()), (None, None));
    assert_eq!(ra.recovered() + rb.recovered(), 240);
    let all = stored(&inbox).await;
    assert_eq!(all.len(), 240);
    assert!(all.iter().all(|(_, _, recovered)| *recovered));

    let again = backfill(&server, inbox.clone(), now)
        .run_window(t0, t0 + 200 * MINUTE)
        .await;
    assert_eq!(again.recovered(), 0);
    assert_eq!(again.calls.already_stored, 120);
    assert_eq!(again.calls.fetched, 0);
    assert_eq!(stored(&inbox).await.len(), 240);
}

/// Wraps a store: the first `contains` of `key` answers `false`, then lets
/// `live` be stored before the backfill inserts (Retell's delivery
/// arriving between the look-up and the insert).
struct RaceInbox {
    inner: SqliteInbox,
    key: DedupeKey,
    live: Mutex<Option<NewEntry>>,
}

impl Inbox for RaceInbox {
    fn insert(&self, entry: NewEntry) -> StoreFuture<'_, Result<Inserted, InboxError>> {
        self.inner.insert(entry)
    }
    fn lease(&self, request: LeaseRequest) -> StoreFuture<'_, Result<Vec<Leased>, InboxError>> {
        self.inner.lease(request)
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
        Box::pin(async move {
            let found = self.inner.contains(key).await?;
            if *key == self.key {
                let live = self.live.lock().unwrap().take();
                if let Some(live) = live {
                    assert_eq!(self.inner.insert(live).await?, Inserted::Stored);
                }
            }
            Ok(found)
        })
    }
    fn watermark<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Result<Option<u64>, InboxError>> {
        self.inner.watermark(name)
    }
    fn advance_watermark<'a>(
        &'a self,
        name: &'a str,
        ms: u64,
    ) -> StoreFuture<'a, Result<u64, InboxError>> {
        self.inner.advance_watermark(name, ms)
    }
}

#[tokio::test]
async fn a_live_delivery_that_wins_the_race_is_kept_and_not_stored_twice() {
    let server = Server::start().await;
    let t0 = 1_785_420_000_000;
    server.add_calls(calls(3, t0));
    let dir = TempDir::new("race");
    let body = live_body("call_ended", &server.call("call_00001"));
    let event = WebhookEvent::from_slice(&body).unwrap();
    let live = NewEntry::for_event(&event, &body, t0 + 5 * MINUTE);
    let inbox = Arc::new(RaceInbox {
        inner: SqliteInbox::open(dir.file()).unwrap(),
        key: live.key,
        live: Mutex::new(Some(live.clone())),
    });
    let seen = Arc::new(Mutex::new(Vec::<RecoveredEvent>::new()));
    let observed = Arc::clone(&seen);
    let report = backfill(&server, Arc::clone(&inbox), t0 + 60 * MINUTE)
        .with_observer(move |event| observed.lock().unwrap().push(event.clone()))
        .run_window(t0, t0 + 10 * MINUTE)
        .await;
    assert_eq!(report.error(), None);
    assert_eq!((report.calls.recovered, report.calls.duplicates), (5, 1));
    let seen = seen.lock().unwrap().clone();
    let lost: Vec<_> = seen
        .iter()
        .filter(|e| e.outcome == Outcome::Duplicate)
        .collect();
    assert_eq!(lost.len(), 1);
    assert_eq!((lost[0].id.as_str(), lost[0].key), ("call_00001", live.key));
    // Retell's own body is the one kept.
    let (_, kept) = inbox.show(&live.key).await.unwrap().unwrap();
    assert_eq!(kept, body);
    assert_eq!(stored(&*inbox).await.len(), 6);
}

/// get-call fails after 40 successes: the run stops, the watermark stays at
/// the last call stored, and the next run resumes from there (less the
/// overlap) and stores the rest once.
#[tokio::test]
async fn a_run_cut_short_resumes_from_the_last_stored_call() {
    let server = Server::start().await;
    let t0 = 1_785_420_000_000;
    server.add_calls(calls(100, t0));
    server.fail_gets_after(Some(40));
    let dir = TempDir::new("resume");
    let inbox = SqliteInbox::open(dir.file()).unwrap();
    let now = t0 + 120 * MINUTE;
    let make = |inbox: SqliteInbox| {
        Backfill::new(
            Client::builder(API_KEY)
                .base_url(server.base_url())
                .max_retries(0)
                .build()
                .unwrap(),
            inbox,
        )
        .with_kinds(true, false)
        .with_requests_per_second(0.0)
        .with_page_size(30)
        .with_overlap(Duration::from_secs(10 * 60))
        .with_settle(Duration::from_secs(5 * 60))
        .with_first_lookback(Duration::from_secs(3 * 3600))
        .with_clock(move || now)
    };
    let first = make(inbox.clone()).run().await;
    assert!(!first.is_complete());
    assert!(
        matches!(
            first.error(),
            Some(BackfillError::Api(ApiError::Status { status: 500, .. }))
        ),
        "{:?}",
        first.error()
    );
    assert_eq!(first.calls.recovered, 80);
    let name = "backfill:default:calls";
    // Calls 0..40 are stored: the watermark is call 39's start.
    assert_eq!(inbox.watermark(name).await, Ok(Some(t0 + 39 * MINUTE)));
    assert_eq!(
        first.calls.window,
        Some((now - 180 * MINUTE, now - 5 * MINUTE))
    );

    server.fail_gets_after(None);
    let second = make(inbox.clone()).run().await;
    assert_eq!(second.error(), None);
    assert!(second.is_complete());
    // From call 29 (10 minutes before call 39): 29..=39 are found stored.
    assert_eq!(
        second.calls.window,
        Some((t0 + 29 * MINUTE, now - 5 * MINUTE))
    );
    assert_eq!(second.calls.already_stored, 11);
    assert_eq!((second.calls.fetched, second.calls.recovered), (60, 120));
    assert_eq!(inbox.watermark(name).await, Ok(Some(now - 5 * MINUTE)));
    let all = stored(&inbox).await;
    assert_eq!(all.len(), 200);

    // Nothing new: the next run fetches nothing, the watermark stays.
    let third = make(inbox.clone()).run().await;
    assert_eq!((third.calls.fetched, third.recovered()), (0, 0));
    assert_eq!(third.calls.listed, 0);
}

#[tokio::test]
async fn the_page_limit_stops_a_run_and_the_next_goes_on() {
    let server = Server::start().await;
    let t0 = 1_785_420_000_000;
    server.add_calls(calls(50, t0));
    let dir = TempDir::new("pages");
    let inbox = SqliteInbox::open(dir.file()).unwrap();
    let now = t0 + 60 * MINUTE;
    let paged = backfill(&server, inbox.clone(), now)
        .with_page_size(10)
        .with_max_pages(2)
        .with_overlap(Duration::from_secs(60))
        .with_first_lookback(Duration::from_secs(2 * 3600));
    let first = paged.run().await;
    assert!(!first.is_complete() && first.error().is_none());
    assert_eq!((first.calls.pages, first.calls.recovered), (2, 40));
    assert_eq!(first.calls.watermark, Some(t0 + 19 * MINUTE));
    // From a minute before the watermark: calls 18 and 19 again.
    let second = paged.run().await;
    assert_eq!(
        (second.calls.already_stored, second.calls.recovered),
        (2, 36)
    );
    let third = paged.run().await;
    assert!(third.is_complete());
    assert_eq!((third.calls.already_stored, third.calls.recovered), (2, 24));
    assert_eq!(stored(&inbox).await.len(), 100);
}

#[tokio::test]
async fn chats_and_calls_without_analysis_yet() {
    let server = Server::start().await;
    let t0 = 1_785_420_000_000;
    server.add_chats((0..3).map(|n| retell_api::chat(n, t0 + n as u64 * MINUTE)));
    let mut pending = retell_api::call(7, t0, 30_000);
    pending.as_object_mut().unwrap().remove("call_analysis");
    server.add_calls([pending]);
    let mut ongoing = retell_api::call(8, t0 + 1, 30_000);
    ongoing["call_status"] = "ongoing".into();
    server.add_calls([ongoing]);
    let dir = TempDir::new("chats");
    let inbox = SqliteInbox::open(dir.file()).unwrap();
    let now = t0 + 60 * MINUTE;
    let both = Backfill::new(client(&server), inbox.clone())
        .with_requests_per_second(0.0)
        .with_clock(move || now);
    let first = both.run().await;
    assert_eq!(first.error(), None);
    assert_eq!((first.chats.recovered, first.calls.recovered), (6, 1));
    let all = stored(&inbox).await;
    assert!(all.contains(&("call_ended".to_owned(), "call_00007".to_owned(), true)));
    assert!(all.contains(&("chat_analyzed".to_owned(), "chat_00002".to_owned(), true)));
    assert_eq!(all.len(), 7);

    // The analysis arrives: the next run adds `call_analyzed` only.
    server.state.calls.lock().unwrap()[0]["call_analysis"] =
        serde_json::json!({"call_summary": "Late.", "call_successful": true});
    let second = both.run().await;
    assert_eq!((second.calls.recovered, second.chats.recovered), (1, 0));
    assert_eq!(second.chats.fetched, 0);
    assert_eq!(stored(&inbox).await.len(), 8);
    // The rebuilt body carries the mark and reads as Retell's event.
    let key = DedupeKey::for_event(
        &WebhookEvent::call_analyzed(retell_webhooks::Call::new("call_00007")),
        b"",
    );
    let (entry, body) = inbox.show(&key).await.unwrap().unwrap();
    assert_eq!(entry.state, State::Ready);
    assert_eq!(entry.order.as_deref(), Some("call:call_00007"));
    let event = WebhookEvent::from_slice(&body).unwrap();
    assert_eq!(event.recovered().and_then(|r| r.recovered_ms), Some(now));
    assert!(event.untyped_paths().is_empty());
}

#[tokio::test]
async fn a_dry_run_stores_nothing_and_keeps_the_watermark() {
    let server = Server::start().await;
    let t0 = 1_785_420_000_000;
    server.add_calls(calls(10, t0));
    let dir = TempDir::new("dry");
    let inbox = SqliteInbox::open(dir.file()).unwrap();
    let seen = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&seen);
    let report = backfill(&server, inbox.clone(), t0 + 60 * MINUTE)
        .with_dry_run(true)
        .with_observer(move |event| {
            assert_eq!(event.outcome, Outcome::DryRun);
            counted.fetch_add(1, Ordering::SeqCst);
        })
        .run()
        .await;
    assert_eq!((report.calls.would_recover, report.recovered()), (20, 0));
    assert_eq!(seen.load(Ordering::SeqCst), 20);
    assert_eq!(inbox.stats(0).await.unwrap(), Stats::default());
    assert_eq!(inbox.watermark("backfill:default:calls").await, Ok(None));
}

/// Calls recovered per second and requests per recovered call against the
/// stand-in on 127.0.0.1, into a SQLite file; printed with `--nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput_against_the_stand_in() {
    let server = Server::start().await;
    let t0 = 1_785_420_000_000;
    let count = 1000;
    server.add_calls((0..count).map(|n| retell_api::call(n, t0 + n as u64 * 5_000, 30_000)));
    let dir = TempDir::new("throughput");
    let inbox = SqliteInbox::open(dir.file()).unwrap();
    let report = backfill(&server, inbox.clone(), t0 + 200 * MINUTE)
        .with_page_size(500)
        .run_window(t0, t0 + 100 * MINUTE)
        .await;
    assert_eq!(report.error(), None);
    assert_eq!(report.calls.recovered, 2 * count as u64);
    let seconds = report.elapsed.as_secs_f64();
    println!(
        "backfill: {count} calls ({} events) in {seconds:.2} s: {:.0} calls/s, {:.0} events/s; \
         {} requests ({} pages, {} get-call): {:.3} requests per recovered call",
        report.calls.recovered,
        count as f64 / seconds,
        report.calls.recovered as f64 / seconds,
        report.requests,
        report.calls.pages,
        report.calls.fetched,
        report.requests as f64 / count as f64,
    );
    assert_eq!(report.requests, report.calls.pages as u64 + count as u64);
}
