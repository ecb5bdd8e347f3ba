//! What the crate records through the `metrics` facade (feature `metrics`),
//! read back with `metrics-util`'s `DebuggingRecorder`.
//!
//! Each test installs its own recorder for its thread only
//! (`set_default_local_recorder`) and runs on tokio's current-thread runtime,
//! so the worker's tasks record into it too and parallel tests never see
//! each other's values.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use retell_webhooks::dedupe::DedupeKey;
use retell_webhooks::inbox::{
    Entry, Failure, Inbox, InboxError, Inserted, LeaseRequest, Leased, ListFilter, NewEntry,
    Replay, RetrySchedule, State, Stats, StoreFuture, Worker,
};
use retell_webhooks::receiver::{Dispatched, RawRequest};
use retell_webhooks::serde_json::json;
use retell_webhooks::{
    CallEvent, FunctionRequest, FunctionResponse, Receiver, ReceiverConfig, RouteKind, Verifier,
    WebhookHandler, sign,
};

const KEY: &str = "key_metrics_test";
const NOW: u64 = 1_785_423_600_000;
/// The hostile id: a quote that would end a label value in a text format.
const EVIL_ID: &str = "evil\"label";

// ---------------------------------------------------------------------------
// Reading the recorder
// ---------------------------------------------------------------------------

/// A metric's sorted labels, as (key, value).
type Labels = Vec<(String, String)>;

/// One snapshot: name, sorted labels and value of every metric recorded.
struct Recorded(Vec<(String, Labels, DebugValue)>);

impl Recorded {
    fn take(snapshotter: &Snapshotter) -> Self {
        let metrics = snapshotter.snapshot().into_vec();
        Self(
            metrics
                .into_iter()
                .map(|(key, _unit, _description, value)| {
                    let (_kind, key) = key.into_parts();
                    let mut labels: Vec<_> = key
                        .labels()
                        .map(|label| (label.key().to_owned(), label.value().to_owned()))
                        .collect();
                    labels.sort();
                    (key.name().to_owned(), labels, value)
                })
                .collect(),
        )
    }

    fn find(&self, name: &str, labels: &[(&str, &str)]) -> Option<&DebugValue> {
        let mut wanted: Vec<_> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        wanted.sort();
        self.0
            .iter()
            .find(|(n, l, _)| n == name && *l == wanted)
            .map(|(_, _, value)| value)
    }

    /// A counter's value; 0 when it was never touched.
    fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        match self.find(name, labels) {
            None => 0,
            Some(DebugValue::Counter(n)) => *n,
            Some(other) => panic!("{name} is not a counter: {other:?}"),
        }
    }

    fn gauge(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        match self.find(name, labels) {
            Some(DebugValue::Gauge(value)) => value.into_inner(),
            other => panic!("{name} {labels:?} is not a gauge: {other:?}"),
        }
    }

    fn samples(&self, name: &str, labels: &[(&str, &str)]) -> usize {
        match self.find(name, labels) {
            None => 0,
            Some(DebugValue::Histogram(values)) => values.len(),
            Some(other) => panic!("{name} is not a histogram: {other:?}"),
        }
    }

    /// Every recorded metric named `name`, whatever its labels.
    fn all_named(&self, name: &str) -> Vec<&[(String, String)]> {
        self.0
            .iter()
            .filter(|(n, _, _)| n == name)
            .map(|(_, labels, _)| labels.as_slice())
            .collect()
    }
}

/// Every label the crate may use, with its closed set of values.
fn allowed_labels() -> BTreeMap<&'static str, BTreeSet<&'static str>> {
    let statuses = [
        "200", "204", "400", "401", "403", "404", "405", "408", "409", "413", "415", "500", "503",
        "other",
    ];
    let reasons = [
        "missing",
        "duplicate",
        "too_long",
        "malformed_timestamp",
        "malformed_digest",
        "too_old",
        "too_new",
        "mismatch",
        "clock",
        "invalid_key",
    ];
    let outcomes = [
        "ok",
        "error",
        "panic",
        "timeout",
        "unreadable",
        "lost_lease",
    ];
    let ops = [
        "lease", "ack", "fail", "extend", "release", "prune", "stats",
    ];
    BTreeMap::from([
        ("route", BTreeSet::from(["events", "function"])),
        ("status", statuses.into()),
        ("reason", reasons.into()),
        (
            "result",
            ["stored", "duplicate", "unreadable", "failed"].into(),
        ),
        ("outcome", outcomes.into()),
        ("op", ops.into()),
        ("state", ["ready", "leased", "retry", "dead", "done"].into()),
    ])
}

// ---------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------

fn receiver(config: ReceiverConfig) -> Receiver {
    Receiver::new(Verifier::new(KEY).unwrap().with_clock(|| NOW), config)
}

async fn send(
    receiver: &Receiver,
    handler: &(impl WebhookHandler + ?Sized),
    route: RouteKind,
    request: &RawRequest<'_>,
) -> Dispatched {
    receiver
        .dispatch(handler, route, request, |_| std::future::pending())
        .await
}

async fn send_signed(receiver: &Receiver, handler: &impl WebhookHandler, body: &[u8]) -> u16 {
    let header = sign(body, KEY, NOW);
    let request = RawRequest::post(body).signature_values([header.as_bytes()]);
    let done = send(receiver, handler, RouteKind::Events, &request).await;
    done.response.status()
}

fn call_ended(call_id: &str) -> Vec<u8> {
    json!({ "event": "call_ended", "call": { "call_id": call_id } })
        .to_string()
        .into_bytes()
}

/// A `call_ended` whose call id is a number: signed, JSON, but not readable
/// by the models.
fn unreadable() -> Vec<u8> {
    json!({ "event": "call_ended", "call": { "call_id": 7 } })
        .to_string()
        .into_bytes()
}

/// Handles an event whose call id is `ok`, panics on `panics`, never ends on
/// `slow`, fails the rest with an error that repeats the id.
struct Outcomes;

impl WebhookHandler for Outcomes {
    type Error = String;

    async fn on_call_ended(&self, event: CallEvent) -> Result<(), String> {
        let id = event.call.call_id;
        match id.as_str() {
            "ok" => Ok(()),
            "panics" => panic!("the test handler panics on purpose"),
            "slow" => std::future::pending().await,
            _ => Err(format!("could not store {id}")),
        }
    }

    async fn on_function_call(&self, request: FunctionRequest) -> Result<FunctionResponse, String> {
        Ok(FunctionResponse::json(json!({ "name": request.name() })))
    }
}

#[tokio::test]
async fn a_signed_request_counts_one_answer_and_one_handler_run() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);
    let receiver = receiver(ReceiverConfig::new());

    assert_eq!(
        send_signed(&receiver, &Outcomes, &call_ended("ok")).await,
        204
    );
    let function = br#"{"name":"book","call":{"call_id":"ok"},"args":{}}"#;
    let header = sign(function, KEY, NOW);
    let request = RawRequest::post(function).signature_values([header.as_bytes()]);
    let done = send(&receiver, &Outcomes, RouteKind::Function, &request).await;
    assert_eq!(done.response.status(), 200);

    let recorded = Recorded::take(&snapshotter);
    let requests = "retell_webhooks_requests_total";
    assert_eq!(
        recorded.counter(requests, &[("route", "events"), ("status", "204")]),
        1
    );
    assert_eq!(
        recorded.counter(requests, &[("route", "function"), ("status", "200")]),
        1
    );
    assert_eq!(recorded.all_named(requests).len(), 2);
    let handler = "retell_webhooks_handler_duration_seconds";
    assert_eq!(recorded.samples(handler, &[("route", "events")]), 1);
    assert_eq!(recorded.samples(handler, &[("route", "function")]), 1);
    let failures = "retell_webhooks_signature_failures_total";
    assert!(recorded.all_named(failures).is_empty());
}

#[tokio::test]
async fn a_forged_request_counts_a_401_and_its_kind() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);
    let receiver = receiver(ReceiverConfig::new());
    let body = call_ended("ok");

    let forged = sign(&body, "key_of_someone_else", NOW);
    let short_digest = format!("v={NOW},d=abc");
    let stale = sign(&body, KEY, NOW - 3_600_000);
    for header in [&forged, &short_digest, &stale] {
        let request = RawRequest::post(&body).signature_values([header.as_bytes()]);
        let done = send(&receiver, &Outcomes, RouteKind::Events, &request).await;
        assert_eq!(done.response.status(), 401);
    }
    let unsigned = RawRequest::post(&body);
    let done = send(&receiver, &Outcomes, RouteKind::Events, &unsigned).await;
    assert_eq!(done.response.status(), 401);

    let recorded = Recorded::take(&snapshotter);
    let unauthorized = [("route", "events"), ("status", "401")];
    assert_eq!(
        recorded.counter("retell_webhooks_requests_total", &unauthorized),
        4
    );
    let failures = "retell_webhooks_signature_failures_total";
    for reason in ["mismatch", "malformed_digest", "too_old", "missing"] {
        let count = recorded.counter(failures, &[("reason", reason)]);
        assert_eq!(count, 1, "{reason}");
    }
    assert_eq!(recorded.all_named(failures).len(), 4);
    // No handler ran.
    let handler = "retell_webhooks_handler_duration_seconds";
    assert!(recorded.all_named(handler).is_empty());
}

#[tokio::test]
async fn nothing_from_a_body_or_a_header_becomes_a_name_or_a_label() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);
    let body = json!({
        "event": "call_ended",
        "call": { "call_id": EVIL_ID, "agent_id": EVIL_ID, "metadata": { EVIL_ID: EVIL_ID } },
        EVIL_ID: EVIL_ID,
    })
    .to_string()
    .into_bytes();

    // Inline: the handler's error repeats the id (500).
    let inline = receiver(ReceiverConfig::new());
    assert_eq!(send_signed(&inline, &Outcomes, &body).await, 500);
    // A header carrying the id.
    let forged = format!("v={NOW},d={EVIL_ID}");
    let request = RawRequest::post(&body).signature_values([forged.as_bytes()]);
    let done = send(&inline, &Outcomes, RouteKind::Events, &request).await;
    assert_eq!(done.response.status(), 401);
    // An event name nobody knows, and a body the models cannot read.
    let unknown = json!({ "event": EVIL_ID, "call": { "call_id": EVIL_ID } }).to_string();
    assert_eq!(
        send_signed(&inline, &Outcomes, unknown.as_bytes()).await,
        204
    );
    assert_eq!(send_signed(&inline, &Outcomes, &unreadable()).await, 400);

    // Stored (twice: one duplicate), then run by a worker whose handler
    // fails with the id in its error.
    let inbox = Arc::new(MemoryInbox::default());
    let stored = receiver(ReceiverConfig::new().with_inbox_store(inbox.clone()));
    assert_eq!(send_signed(&stored, &Outcomes, &body).await, 204);
    assert_eq!(send_signed(&stored, &Outcomes, &body).await, 204);
    run_worker_until(&inbox, |stats| stats.dead == 1).await;

    let recorded = Recorded::take(&snapshotter);
    assert!(!recorded.0.is_empty());
    let allowed = allowed_labels();
    for (name, labels, _) in &recorded.0 {
        assert!(name.starts_with("retell_webhooks_"), "{name}");
        assert!(!name.contains("evil"), "{name}");
        for (key, value) in labels {
            let values = allowed.get(key.as_str());
            assert!(values.is_some(), "{name}: label {key:?} is not a known one");
            assert!(
                values.is_some_and(|values| values.contains(value.as_str())),
                "{name}: {key}={value:?} is outside the label's closed set"
            );
        }
    }
    let attempts = "retell_webhooks_worker_attempts_total";
    assert_eq!(recorded.counter(attempts, &[("outcome", "error")]), 1);
    let stored = "retell_webhooks_inbox_stored_total";
    assert_eq!(recorded.counter(stored, &[("result", "stored")]), 1);
    assert_eq!(recorded.counter(stored, &[("result", "duplicate")]), 1);
}

// ---------------------------------------------------------------------------
// The worker
// ---------------------------------------------------------------------------

#[tokio::test]
async fn worker_counts_attempts_by_outcome_and_the_dead_letters() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);
    let inbox = Arc::new(MemoryInbox::default());
    let receiver = receiver(ReceiverConfig::new().with_inbox_store(inbox.clone()));
    for id in ["ok", "fails", "panics", "slow"] {
        assert_eq!(
            send_signed(&receiver, &Outcomes, &call_ended(id)).await,
            204
        );
    }
    assert_eq!(send_signed(&receiver, &Outcomes, &unreadable()).await, 204);

    run_worker_until(&inbox, |stats| stats.done == 1 && stats.dead == 4).await;

    let recorded = Recorded::take(&snapshotter);
    let stored = "retell_webhooks_inbox_stored_total";
    assert_eq!(recorded.counter(stored, &[("result", "stored")]), 5);
    let attempts = "retell_webhooks_worker_attempts_total";
    for outcome in ["ok", "error", "panic", "timeout", "unreadable"] {
        let count = recorded.counter(attempts, &[("outcome", outcome)]);
        assert_eq!(count, 1, "{outcome}");
    }
    assert_eq!(recorded.counter(attempts, &[("outcome", "lost_lease")]), 0);
    // No retries in the schedule: every failure is final.
    let dead = "retell_webhooks_dead_letters_total";
    assert_eq!(recorded.counter(dead, &[]), 4);
    let durations = "retell_webhooks_worker_handler_duration_seconds";
    assert_eq!(recorded.samples(durations, &[]), 5);
    // The test store cannot prune.
    let errors = "retell_webhooks_worker_store_errors_total";
    assert_eq!(recorded.counter(errors, &[("op", "prune")]), 1);
    assert_eq!(recorded.all_named(errors).len(), 1);

    // Read once at start (the test clock stands still): the five entries
    // waiting, the oldest for 5 s.
    let depth = "retell_webhooks_inbox_depth";
    assert_eq!(recorded.gauge(depth, &[("state", "ready")]), 5.0);
    for state in ["leased", "retry", "dead", "done"] {
        assert_eq!(recorded.gauge(depth, &[("state", state)]), 0.0, "{state}");
    }
    let oldest = "retell_webhooks_inbox_oldest_ready_age_seconds";
    assert_eq!(recorded.gauge(oldest, &[]), 5.0);
    let last_poll = "retell_webhooks_worker_last_poll_timestamp_seconds";
    assert_eq!(
        recorded.gauge(last_poll, &[]),
        (NOW + 5_000) as f64 / 1000.0
    );
}

/// Runs a worker over `inbox`, on a clock 5 s after the deliveries, until
/// its counts satisfy `done` (at most 10 s).
async fn run_worker_until(inbox: &Arc<MemoryInbox>, done: impl Fn(&Stats) -> bool) {
    let worker = Worker::new(Arc::clone(inbox), Outcomes)
        .with_clock(|| NOW + 5_000)
        .with_retry_schedule(RetrySchedule::new([]))
        .with_handler_timeout(Duration::from_millis(100))
        .with_poll_interval(Duration::from_millis(10))
        .spawn();
    for _ in 0..1_000 {
        if done(&inbox.counts()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    worker.shutdown().await;
    let stats = inbox.counts();
    assert!(done(&stats), "{stats:?}");
}

// ---------------------------------------------------------------------------
// An inbox in memory, just enough for the worker
// ---------------------------------------------------------------------------

struct Slot {
    key: DedupeKey,
    body: Vec<u8>,
    event: Option<String>,
    received_ms: u64,
    state: State,
    token: u64,
    attempts: u32,
    due_ms: u64,
}

/// Entries in a `Vec` under a lock: no per-call order, no listing, no
/// replay, and `prune` always fails (to count a store error).
#[derive(Default)]
struct MemoryInbox {
    slots: Mutex<Vec<Slot>>,
    tokens: Mutex<u64>,
}

impl MemoryInbox {
    fn counts(&self) -> Stats {
        let slots = self.slots.lock().unwrap();
        let mut stats = Stats::default();
        for slot in slots.iter() {
            match slot.state {
                State::Ready => stats.ready += 1,
                State::Leased => stats.leased += 1,
                State::Retry => stats.retry += 1,
                State::Dead => stats.dead += 1,
                State::Done => stats.done += 1,
            }
        }
        stats.oldest_ready_ms = slots
            .iter()
            .filter(|slot| slot.state == State::Ready)
            .map(|slot| slot.received_ms)
            .min();
        stats
    }

    /// Applies `change` to the entry `key` while `token` holds its lease;
    /// whether it did.
    fn with_lease(&self, key: &DedupeKey, token: u64, change: impl FnOnce(&mut Slot)) -> bool {
        let mut slots = self.slots.lock().unwrap();
        let held = slots
            .iter_mut()
            .find(|slot| slot.key == *key && slot.state == State::Leased && slot.token == token);
        held.map(change).is_some()
    }
}

fn ready<'a, T: Send + 'a>(value: T) -> StoreFuture<'a, T> {
    Box::pin(std::future::ready(value))
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap()
}

impl Inbox for MemoryInbox {
    fn insert(&self, entry: NewEntry) -> StoreFuture<'_, Result<Inserted, InboxError>> {
        let mut slots = self.slots.lock().unwrap();
        if slots.iter().any(|slot| slot.key == entry.key) {
            return ready(Ok(Inserted::Duplicate));
        }
        slots.push(Slot {
            key: entry.key,
            body: entry.body,
            event: entry.event,
            received_ms: entry.received_ms,
            state: match entry.dead_reason {
                Some(_) => State::Dead,
                None => State::Ready,
            },
            token: 0,
            attempts: 0,
            due_ms: 0,
        });
        ready(Ok(Inserted::Stored))
    }

    fn lease(&self, request: LeaseRequest) -> StoreFuture<'_, Result<Vec<Leased>, InboxError>> {
        let mut slots = self.slots.lock().unwrap();
        let mut tokens = self.tokens.lock().unwrap();
        let due = |slot: &Slot| match slot.state {
            State::Ready => true,
            State::Retry | State::Leased => slot.due_ms <= request.now_ms,
            State::Dead | State::Done => false,
        };
        let mut leased = Vec::new();
        for slot in slots.iter_mut().filter(|slot| due(slot)).take(request.max) {
            *tokens += 1;
            slot.state = State::Leased;
            slot.token = *tokens;
            slot.due_ms = request.now_ms + millis(request.lease);
            leased.push(Leased {
                key: slot.key,
                token: slot.token,
                body: slot.body.clone(),
                event: slot.event.clone(),
                received_ms: slot.received_ms,
                attempts: slot.attempts,
            });
        }
        ready(Ok(leased))
    }

    fn extend<'a>(
        &'a self,
        key: &'a DedupeKey,
        token: u64,
        lease: Duration,
        now_ms: u64,
    ) -> StoreFuture<'a, Result<bool, InboxError>> {
        let held = self.with_lease(key, token, |slot| slot.due_ms = now_ms + millis(lease));
        ready(Ok(held))
    }

    fn ack<'a>(
        &'a self,
        key: &'a DedupeKey,
        token: u64,
        _now_ms: u64,
    ) -> StoreFuture<'a, Result<bool, InboxError>> {
        ready(Ok(self.with_lease(key, token, |slot| {
            slot.state = State::Done;
        })))
    }

    fn fail<'a>(
        &'a self,
        key: &'a DedupeKey,
        token: u64,
        failure: Failure,
        _now_ms: u64,
    ) -> StoreFuture<'a, Result<bool, InboxError>> {
        let held = self.with_lease(key, token, |slot| {
            slot.attempts += 1;
            match failure.retry_at_ms {
                Some(at) => (slot.state, slot.due_ms) = (State::Retry, at),
                None => slot.state = State::Dead,
            }
        });
        ready(Ok(held))
    }

    fn release<'a>(
        &'a self,
        key: &'a DedupeKey,
        token: u64,
    ) -> StoreFuture<'a, Result<bool, InboxError>> {
        ready(Ok(self.with_lease(key, token, |slot| {
            slot.state = State::Ready;
        })))
    }

    fn replay(&self, _which: Replay, _now_ms: u64) -> StoreFuture<'_, Result<u64, InboxError>> {
        ready(Err(InboxError::new("not in the test store")))
    }

    fn list(&self, _filter: ListFilter) -> StoreFuture<'_, Result<Vec<Entry>, InboxError>> {
        ready(Err(InboxError::new("not in the test store")))
    }

    fn show<'a>(
        &'a self,
        _key: &'a DedupeKey,
    ) -> StoreFuture<'a, Result<Option<(Entry, Vec<u8>)>, InboxError>> {
        ready(Err(InboxError::new("not in the test store")))
    }

    fn stats(&self, _now_ms: u64) -> StoreFuture<'_, Result<Stats, InboxError>> {
        ready(Ok(self.counts()))
    }

    fn prune(&self, _before_ms: u64) -> StoreFuture<'_, Result<u64, InboxError>> {
        ready(Err(InboxError::new("not in the test store")))
    }
}
