//! The inbox worker on an in-memory store, with tokio's clock paused (time
//! jumps to the next timer, so hours of retries take milliseconds and
//! nothing depends on the machine's speed), and the receiver storing events.

#[path = "common/memory_inbox.rs"]
mod memory_inbox;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use memory_inbox::{Faulty, MemoryInbox};
use retell_webhooks::inbox::{
    Inbox, Leased, ListFilter, NewEntry, RawHandler, Replay, RetrySchedule, State, Worker,
};
use retell_webhooks::receiver::{RawRequest, Reason};
use retell_webhooks::{
    CallEvent, Receiver, ReceiverConfig, RouteKind, Verifier, WebhookEvent, WebhookHandler, sign,
};
use tokio::time::Instant;

const KEY: &str = "key_test_inbox_worker";
const T0: u64 = 1_765_000_000_000;

/// A clock that follows tokio's (paused) clock from `T0`.
fn clock() -> impl Fn() -> u64 + Send + Sync + Clone + 'static {
    let start = Instant::now();
    move || T0 + start.elapsed().as_millis() as u64
}

fn body(event: &str, call: &str) -> Vec<u8> {
    format!(r#"{{"event":"{event}","call":{{"call_id":"{call}","agent_id":"a"}}}}"#).into_bytes()
}

fn entry(event: &str, call: &str, at: u64) -> NewEntry {
    let bytes = body(event, call);
    NewEntry::for_event(&WebhookEvent::from_slice(&bytes).unwrap(), &bytes, at)
}

/// Records every run; `fail_first` runs fail, `panic_on` panics, and a run
/// may sleep.
#[derive(Default)]
struct Recorder {
    runs: Mutex<Vec<(String, String, u64)>>,
    fail_first: AtomicU32,
    panic_first: AtomicU32,
    sleep: Mutex<Option<Duration>>,
    running: AtomicU32,
    overlap: AtomicU32,
    now: Mutex<Option<Arc<dyn Fn() -> u64 + Send + Sync>>>,
}

impl Recorder {
    async fn run(&self, event: &str, call: &CallEvent) -> Result<(), String> {
        if self.running.fetch_add(1, Ordering::SeqCst) > 0 {
            self.overlap.fetch_add(1, Ordering::SeqCst);
        }
        let at = self.now.lock().unwrap().as_ref().map_or(0, |now| now());
        self.runs
            .lock()
            .unwrap()
            .push((event.to_owned(), call.call.call_id.clone(), at));
        let sleep = *self.sleep.lock().unwrap();
        if let Some(pause) = sleep {
            tokio::time::sleep(pause).await;
        }
        self.running.fetch_sub(1, Ordering::SeqCst);
        if self
            .panic_first
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            panic!("deliberate panic");
        }
        if self
            .fail_first
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err("CRM unavailable".to_owned());
        }
        Ok(())
    }

    fn runs(&self) -> Vec<(String, String, u64)> {
        self.runs.lock().unwrap().clone()
    }
}

struct App(Arc<Recorder>);

impl WebhookHandler for App {
    type Error = String;
    async fn on_call_ended(&self, event: CallEvent) -> Result<(), String> {
        self.0.run("call_ended", &event).await
    }
    async fn on_call_analyzed(&self, event: CallEvent) -> Result<(), String> {
        self.0.run("call_analyzed", &event).await
    }
}

fn worker(inbox: Arc<MemoryInbox>, recorder: &Arc<Recorder>) -> Worker {
    let now = clock();
    *recorder.now.lock().unwrap() = Some(Arc::new(now.clone()));
    Worker::new(inbox, App(Arc::clone(recorder)))
        .with_clock(now)
        .with_poll_interval(Duration::from_millis(100))
}

async fn settle(inbox: &MemoryInbox, until: impl Fn(&[(Option<String>, State, u32)]) -> bool) {
    for _ in 0..100_000 {
        if until(&inbox.states()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never settled: {:?}", inbox.states());
}

#[tokio::test(start_paused = true)]
async fn a_stored_event_is_handled_once_and_acknowledged() {
    let inbox = Arc::new(MemoryInbox::new());
    inbox.insert(entry("call_ended", "c1", T0)).await.unwrap();
    let recorder = Arc::new(Recorder::default());
    let handle = worker(Arc::clone(&inbox), &recorder).spawn();
    settle(&inbox, |s| {
        s.iter().all(|(_, state, _)| *state == State::Done)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(60)).await;
    handle.shutdown().await;
    assert_eq!(recorder.runs().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_failing_handler_follows_the_schedule_then_is_dead_and_replay_runs_it_once() {
    let inbox = Arc::new(MemoryInbox::new());
    inbox.insert(entry("call_ended", "c1", T0)).await.unwrap();
    let recorder = Arc::new(Recorder::default());
    recorder.fail_first.store(u32::MAX, Ordering::SeqCst);
    let schedule = RetrySchedule::new([
        Duration::from_secs(5),
        Duration::from_secs(60),
        Duration::from_secs(3600),
    ]);
    let handle = worker(Arc::clone(&inbox), &recorder)
        .with_retry_schedule(schedule)
        .spawn();
    settle(&inbox, |s| s[0].1 == State::Dead).await;
    let runs = recorder.runs();
    assert_eq!(runs.len(), 4, "{runs:?}");
    // Gaps follow the schedule within its ±10 % jitter (plus the poll).
    let gaps: Vec<u64> = runs.windows(2).map(|w| w[1].2 - w[0].2).collect();
    for (gap, want) in gaps.iter().zip([5_000u64, 60_000, 3_600_000]) {
        assert!(
            *gap >= want * 9 / 10 && *gap <= want * 11 / 10 + 200,
            "gap {gap} ms for a {want} ms delay: {gaps:?}"
        );
    }
    let dead = inbox
        .list(ListFilter {
            state: Some(State::Dead),
            ..ListFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(dead[0].attempts, 4);
    assert_eq!(dead[0].last_error.as_deref(), Some("CRM unavailable"));

    // Fixed: replay brings it back, and it is processed once.
    recorder.fail_first.store(0, Ordering::SeqCst);
    let replayed = inbox
        .replay(Replay::Dead { since_ms: None }, T0)
        .await
        .unwrap();
    assert_eq!(replayed, 1);
    settle(&inbox, |s| s[0].1 == State::Done).await;
    tokio::time::sleep(Duration::from_secs(3600)).await;
    handle.shutdown().await;
    assert_eq!(recorder.runs().len(), 5);
}

#[tokio::test(start_paused = true)]
async fn a_panic_and_a_timeout_count_as_failed_attempts() {
    let inbox = Arc::new(MemoryInbox::new());
    inbox.insert(entry("call_ended", "c1", T0)).await.unwrap();
    let recorder = Arc::new(Recorder::default());
    recorder.panic_first.store(1, Ordering::SeqCst);
    let handle = worker(Arc::clone(&inbox), &recorder).spawn();
    settle(&inbox, |s| s[0].1 == State::Done).await;
    handle.shutdown().await;
    assert_eq!(recorder.runs().len(), 2);

    let inbox = Arc::new(MemoryInbox::new());
    inbox.insert(entry("call_ended", "c2", T0)).await.unwrap();
    let recorder = Arc::new(Recorder::default());
    *recorder.sleep.lock().unwrap() = Some(Duration::from_secs(120));
    let handle = worker(Arc::clone(&inbox), &recorder)
        .with_handler_timeout(Duration::from_secs(10))
        .with_retry_schedule(RetrySchedule::new([]))
        .spawn();
    settle(&inbox, |s| s[0].1 == State::Dead).await;
    handle.shutdown().await;
    let dead = inbox.list(ListFilter::default()).await.unwrap();
    assert!(
        dead[0]
            .last_error
            .as_deref()
            .unwrap()
            .contains("did not finish within 10000 ms")
    );
}

#[tokio::test(start_paused = true)]
async fn a_handler_near_its_timeout_keeps_its_lease_and_never_runs_twice() {
    let inbox = Arc::new(MemoryInbox::new());
    inbox.insert(entry("call_ended", "c1", T0)).await.unwrap();
    let recorder = Arc::new(Recorder::default());
    // 290 s of a 300 s timeout: the lease (timeout + 30 s, renewed every
    // 110 s) outlasts it, while a second worker polls all along.
    *recorder.sleep.lock().unwrap() = Some(Duration::from_secs(290));
    let first = worker(Arc::clone(&inbox), &recorder)
        .with_handler_timeout(Duration::from_secs(300))
        .spawn();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let second = worker(Arc::clone(&inbox), &recorder)
        .with_handler_timeout(Duration::from_secs(300))
        .spawn();
    settle(&inbox, |s| s[0].1 == State::Done).await;
    first.shutdown().await;
    second.shutdown().await;
    assert_eq!(recorder.runs().len(), 1);
    assert_eq!(recorder.overlap.load(Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn the_lease_is_renewed_while_the_handler_runs() {
    let inbox = Arc::new(MemoryInbox::new());
    inbox.insert(entry("call_ended", "c2", T0)).await.unwrap();
    let recorder = Arc::new(Recorder::default());
    *recorder.sleep.lock().unwrap() = Some(Duration::from_secs(100));
    let handle = worker(Arc::clone(&inbox), &recorder)
        .with_handler_timeout(Duration::from_secs(200))
        .spawn();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = inbox.list(ListFilter::default()).await.unwrap()[0]
        .due_ms
        .unwrap();
    tokio::time::sleep(Duration::from_secs(80)).await;
    let after = inbox.list(ListFilter::default()).await.unwrap()[0]
        .due_ms
        .unwrap();
    handle.shutdown().await;
    assert!(after > before, "renewed: {before} -> {after}");
}

#[tokio::test(start_paused = true)]
async fn shutdown_releases_what_a_cut_handler_held() {
    let inbox = Arc::new(MemoryInbox::new());
    inbox.insert(entry("call_ended", "c1", T0)).await.unwrap();
    let recorder = Arc::new(Recorder::default());
    *recorder.sleep.lock().unwrap() = Some(Duration::from_secs(50));
    let handle = worker(Arc::clone(&inbox), &recorder)
        .with_handler_timeout(Duration::from_secs(100))
        .with_shutdown_grace(Duration::from_secs(2))
        .spawn();
    settle(&inbox, |s| s[0].1 == State::Leased).await;
    handle.shutdown().await;
    assert_eq!(inbox.states()[0].1, State::Ready);
    assert_eq!(inbox.states()[0].2, 0, "a release is not a failed attempt");
}

#[tokio::test(start_paused = true)]
async fn per_call_order_holds_with_a_failing_call_ended() {
    let inbox = Arc::new(MemoryInbox::new());
    inbox.insert(entry("call_ended", "c1", T0)).await.unwrap();
    inbox
        .insert(entry("call_analyzed", "c1", T0 + 1))
        .await
        .unwrap();
    inbox
        .insert(entry("call_ended", "c2", T0 + 2))
        .await
        .unwrap();
    let recorder = Arc::new(Recorder::default());
    recorder.fail_first.store(1, Ordering::SeqCst);
    let handle = worker(Arc::clone(&inbox), &recorder)
        .with_concurrency(1)
        .spawn();
    settle(&inbox, |s| {
        s.iter().all(|(_, state, _)| *state == State::Done)
    })
    .await;
    handle.shutdown().await;
    let runs: Vec<(String, String)> = recorder
        .runs()
        .into_iter()
        .map(|(e, c, _)| (e, c))
        .collect();
    let c1: Vec<&str> = runs
        .iter()
        .filter(|(_, c)| c == "c1")
        .map(|(e, _)| e.as_str())
        .collect();
    assert_eq!(
        c1,
        ["call_ended", "call_ended", "call_analyzed"],
        "{runs:?}"
    );
    // c2 was not held up by c1's retry: it ran before c1's second attempt.
    let c2_at = runs.iter().position(|(_, c)| c == "c2").unwrap();
    assert!(c2_at < 2, "{runs:?}");
}

#[tokio::test(start_paused = true)]
async fn a_store_that_fails_is_retried_with_back_off_and_never_stops_the_worker() {
    let inbox = Faulty::new(MemoryInbox::new());
    inbox.fail.store(true, Ordering::SeqCst);
    let recorder = Arc::new(Recorder::default());
    let handle = Worker::new(Arc::clone(&inbox), App(Arc::clone(&recorder)))
        .with_clock(clock())
        .with_poll_interval(Duration::from_millis(10))
        .spawn();
    tokio::time::sleep(Duration::from_secs(60)).await;
    let attempts = inbox.leases.load(Ordering::SeqCst);
    // 1 s, 2 s, 4 s, … 30 s: a handful in a minute, not thousands.
    assert!(
        (3..=8).contains(&attempts),
        "{attempts} lease attempts in 60 s"
    );
    assert!(handle.is_running());
    inbox.fail.store(false, Ordering::SeqCst);
    inbox.insert(entry("call_ended", "c1", T0)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(31)).await;
    handle.shutdown().await;
    assert_eq!(recorder.runs().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_raw_handler_gets_the_original_bytes() {
    struct Collect(Arc<Mutex<Vec<Vec<u8>>>>);
    impl RawHandler for Collect {
        type Error = String;
        async fn handle(&self, entry: &Leased) -> Result<(), String> {
            self.0.lock().unwrap().push(entry.body.clone());
            Ok(())
        }
    }
    let inbox = Arc::new(MemoryInbox::new());
    let original = b"{ \"event\" : \"call_ended\", \"call\": {\"call_id\":\"c1\"} }".to_vec();
    let event = WebhookEvent::from_slice(&original).unwrap();
    inbox
        .insert(NewEntry::for_event(&event, &original, T0))
        .await
        .unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let handle = Worker::raw(Arc::clone(&inbox), Collect(Arc::clone(&seen)))
        .with_clock(clock())
        .spawn();
    settle(&inbox, |s| s[0].1 == State::Done).await;
    handle.shutdown().await;
    assert_eq!(*seen.lock().unwrap(), [original]);
}

// ---------------------------------------------------------------------------
// The receiver with an inbox
// ---------------------------------------------------------------------------

fn receiver(inbox: Arc<dyn Inbox>) -> Receiver {
    let verifier = Verifier::new(KEY).unwrap().with_clock(|| T0);
    Receiver::new(verifier, ReceiverConfig::new().with_inbox_store(inbox))
}

async fn deliver(receiver: &Receiver, handler: &App, body: &[u8]) -> (u16, Reason) {
    let signature = sign(body, KEY, T0);
    let request = RawRequest::post(body).signature_values([signature.as_bytes()]);
    let done = receiver
        .dispatch(handler, RouteKind::Events, &request, tokio::time::sleep)
        .await;
    (done.response.status(), done.outcome.reason)
}

#[tokio::test(start_paused = true)]
async fn the_receiver_stores_events_once_and_the_handler_is_not_called_inline() {
    let inbox = Arc::new(MemoryInbox::new());
    let receiver = receiver(inbox.clone());
    let recorder = Arc::new(Recorder::default());
    let app = App(Arc::clone(&recorder));
    let ended = body("call_ended", "c1");
    for copy in 0..4 {
        let (status, reason) = deliver(&receiver, &app, &ended).await;
        assert_eq!(status, 204);
        let want = if copy == 0 {
            Reason::Stored
        } else {
            Reason::Duplicate
        };
        assert_eq!(reason, want);
    }
    assert!(recorder.runs().is_empty());
    assert_eq!(inbox.states().len(), 1);
    let (entry, stored) = inbox
        .show(&inbox.list(ListFilter::default()).await.unwrap()[0].key)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored, ended);
    assert_eq!(entry.order.as_deref(), Some("call:c1"));
}

#[tokio::test(start_paused = true)]
async fn a_failing_or_hanging_store_is_503_never_a_4xx() {
    let inbox = Faulty::new(MemoryInbox::new());
    let receiver = receiver(inbox.clone());
    let app = App(Arc::new(Recorder::default()));
    inbox.fail.store(true, Ordering::SeqCst);
    let (status, reason) = deliver(&receiver, &app, &body("call_ended", "c1")).await;
    assert_eq!(status, 503);
    assert!(matches!(reason, Reason::InboxFailed(_)));
    inbox.fail.store(false, Ordering::SeqCst);
    inbox.hang.store(true, Ordering::SeqCst);
    let started = Instant::now();
    let (status, _) = deliver(&receiver, &app, &body("call_ended", "c2")).await;
    assert_eq!(status, 503);
    assert_eq!(started.elapsed(), Duration::from_secs(9));
    // Recovered: Retell's retry is stored once.
    inbox.hang.store(false, Ordering::SeqCst);
    let (status, reason) = deliver(&receiver, &app, &body("call_ended", "c1")).await;
    assert_eq!((status, reason), (204, Reason::Stored));
    assert_eq!(inbox.inner.states().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_verified_body_the_models_cannot_read_is_kept_as_a_dead_letter() {
    let inbox = Arc::new(MemoryInbox::new());
    let receiver = receiver(inbox.clone());
    let app = App(Arc::new(Recorder::default()));
    for garbage in [
        &b"not json at all"[..],
        b"[1,2,3]",
        b"{\"event\":\"call_ended\"}",
    ] {
        let (status, reason) = deliver(&receiver, &app, garbage).await;
        assert_eq!(status, 204, "{reason:?}");
        assert!(
            matches!(reason, Reason::StoredUnreadable(_) | Reason::Stored),
            "{reason:?}"
        );
    }
    let states = inbox.states();
    assert_eq!(states.len(), 3);
    assert_eq!(states[0].1, State::Dead);
    assert_eq!(states[1].1, State::Dead);
    // Valid JSON missing the call: the worker gives `on_unparsed` its chance
    // (declined by default: dead at once, no retries).
    let recorder = Arc::new(Recorder::default());
    let handle = worker(Arc::clone(&inbox), &recorder).spawn();
    settle(&inbox, |s| {
        s.iter().all(|(_, state, _)| *state == State::Dead)
    })
    .await;
    handle.shutdown().await;
    assert_eq!(inbox.states()[2].2, 1);
}

#[tokio::test(start_paused = true)]
async fn inbound_requests_still_run_the_handler_inline() {
    let inbox = Arc::new(MemoryInbox::new());
    let receiver = receiver(inbox.clone());
    let app = App(Arc::new(Recorder::default()));
    let inbound =
        br#"{"event":"call_inbound","call_inbound":{"from_number":"+1","to_number":"+2"}}"#;
    let (status, reason) = deliver(&receiver, &app, inbound).await;
    assert_eq!((status, reason), (200, Reason::Answered));
    assert!(inbox.states().is_empty());
}
