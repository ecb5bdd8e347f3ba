//! The worker: leases stored events, runs the handler, settles each one.

use std::collections::HashMap;
use std::fmt;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio::task::{Id, JoinSet};

use super::process::{Process, Raw, RawHandler, Typed, Verdict};
use super::{Failure, Inbox, LeaseRequest, Leased, RetrySchedule};
use crate::dedupe::DedupeKey;
use crate::receiver::guard::{CatchUnwind, Panicked};
use crate::telemetry::{self, Attempt, StoreOp};
use crate::{WebhookHandler, unix_ms};

type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// Runs a [`WebhookHandler`] (or a [`RawHandler`]) on the events an
/// [`Inbox`] stored: the other half of
/// [`ReceiverConfig::with_inbox`](crate::ReceiverConfig::with_inbox).
///
/// | setting | default | why |
/// |---|---|---|
/// | [`concurrency`](Self::with_concurrency) | 8 | events handled at once by this worker |
/// | [`handler_timeout`](Self::with_handler_timeout) | 60 s | a run that takes longer is cut and retried; the worker's own, not Retell's 10 s |
/// | lease | handler timeout + 30 s | extended every third of itself while the handler runs, so a slow run is never handed to a second worker; a worker that died frees its events when the lease ends |
/// | [`retry schedule`](Self::with_retry_schedule) | [`RetrySchedule::default`] (10 attempts over ~15 h 43 min) | `Err`, a panic and the timeout all count as failed attempts |
/// | [`poll interval`](Self::with_poll_interval) | 1 s | how soon events stored by another process (or due retries) are seen; inserts of this process wake it at once |
/// | [`retention`](Self::with_retention) | 7 days | processed events are kept this long as the deduplication record, then pruned (hourly) |
/// | [`shutdown grace`](Self::with_shutdown_grace) | 10 s | on shutdown, running handlers get this long to finish; the rest are cut and their events released at once |
///
/// The worker never stops on a store error: it backs off (1 s, doubling up
/// to 30 s) and tries again, so an outage of the store delays events but
/// never ends processing.
///
/// ```no_run
/// # #[cfg(feature = "sqlite")]
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use retell_webhooks::inbox::{SqliteInbox, Worker};
/// use retell_webhooks::{CallEvent, WebhookHandler};
///
/// struct App;
/// impl WebhookHandler for App {
///     type Error = std::io::Error;
///     async fn on_call_analyzed(&self, event: CallEvent) -> Result<(), Self::Error> {
///         // Write to the CRM; an error here is retried for hours.
///         let _ = event.call.call_id;
///         Ok(())
///     }
/// }
///
/// let inbox = SqliteInbox::open("retell-inbox.sqlite3")?;
/// let worker = Worker::new(inbox, App).spawn();
/// // … serve the receiver; at shutdown:
/// worker.shutdown().await;
/// # Ok(())
/// # }
/// ```
pub struct Worker {
    inbox: Arc<dyn Inbox>,
    process: Arc<dyn Process>,
    concurrency: usize,
    handler_timeout: Duration,
    schedule: RetrySchedule,
    poll_interval: Duration,
    retention: Duration,
    shutdown_grace: Duration,
    clock: Clock,
    consumer: String,
}

impl fmt::Debug for Worker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Worker")
            .field("concurrency", &self.concurrency)
            .field("handler_timeout", &self.handler_timeout)
            .field("schedule", &self.schedule)
            .field("poll_interval", &self.poll_interval)
            .field("retention", &self.retention)
            .field("shutdown_grace", &self.shutdown_grace)
            .field("consumer", &self.consumer)
            .finish_non_exhaustive()
    }
}

impl Worker {
    /// Default events handled at once: 8.
    pub const DEFAULT_CONCURRENCY: usize = 8;
    /// Default bound on one handler run: 60 s.
    pub const DEFAULT_HANDLER_TIMEOUT: Duration = Duration::from_secs(60);
    /// Default wait between polls when nothing is ready: 1 s.
    pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);
    /// Default time processed events are kept: 7 days.
    pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 86_400);
    /// Default time running handlers get to finish at shutdown: 10 s.
    pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

    /// A worker that runs `handler`'s methods on the stored events, as the
    /// receiver would have (`on_call_ended`, …; `on_unparsed` for a body the
    /// models cannot read: declined, it is dead at once).
    pub fn new(inbox: impl Inbox + 'static, handler: impl WebhookHandler + 'static) -> Self {
        Self::with_process(Arc::new(inbox), Arc::new(Typed(handler)))
    }

    /// A worker that hands each stored event's original bytes to `handler`.
    pub fn raw(inbox: impl Inbox + 'static, handler: impl RawHandler) -> Self {
        Self::with_process(Arc::new(inbox), Arc::new(Raw(handler)))
    }

    fn with_process(inbox: Arc<dyn Inbox>, process: Arc<dyn Process>) -> Self {
        static WORKERS: AtomicU64 = AtomicU64::new(0);
        Self {
            inbox,
            process,
            concurrency: Self::DEFAULT_CONCURRENCY,
            handler_timeout: Self::DEFAULT_HANDLER_TIMEOUT,
            schedule: RetrySchedule::default(),
            poll_interval: Self::DEFAULT_POLL_INTERVAL,
            retention: Self::DEFAULT_RETENTION,
            shutdown_grace: Self::DEFAULT_SHUTDOWN_GRACE,
            clock: Arc::new(|| unix_ms(SystemTime::now()).unwrap_or(0)),
            consumer: format!(
                "worker-{}-{}",
                std::process::id(),
                WORKERS.fetch_add(1, Ordering::Relaxed)
            ),
        }
    }

    /// Events handled at once (at least 1).
    #[must_use]
    pub fn with_concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency.max(1);
        self
    }

    /// The bound on one handler run; the lease is this plus 30 s.
    #[must_use]
    pub fn with_handler_timeout(mut self, timeout: Duration) -> Self {
        self.handler_timeout = timeout;
        self
    }

    /// When failed events are tried again, and how often.
    #[must_use]
    pub fn with_retry_schedule(mut self, schedule: RetrySchedule) -> Self {
        self.schedule = schedule;
        self
    }

    /// The longest wait between polls of the store.
    #[must_use]
    pub fn with_poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// How long processed events are kept (the deduplication window).
    #[must_use]
    pub fn with_retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    /// How long running handlers get to finish at shutdown.
    #[must_use]
    pub fn with_shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// The clock (Unix milliseconds) for leases and retries; for tests.
    #[must_use]
    pub fn with_clock(mut self, now_ms: impl Fn() -> u64 + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(now_ms);
        self
    }

    /// The name this worker leases under (a consumer name in Redis).
    #[must_use]
    pub fn with_consumer(mut self, name: impl Into<String>) -> Self {
        self.consumer = name.into();
        self
    }

    /// The lease: the handler timeout plus 30 s.
    #[must_use]
    pub fn lease(&self) -> Duration {
        self.handler_timeout.saturating_add(Duration::from_secs(30))
    }

    /// Runs on the current tokio runtime in a task of its own until
    /// [`WorkerHandle::shutdown`].
    #[must_use]
    pub fn spawn(self) -> WorkerHandle {
        let (stop, stopped) = watch::channel(false);
        let running = Arc::new(AtomicBool::new(true));
        let flag = Arc::clone(&running);
        let task = tokio::spawn(async move {
            self.run_until(wait_for(stopped)).await;
            flag.store(false, Ordering::Release);
        });
        WorkerHandle {
            stop,
            task,
            running,
        }
    }

    /// Runs until `shutdown` completes, then stops leasing, gives running
    /// handlers the shutdown grace, and releases what is still held.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send) {
        let shared = Arc::new(Shared {
            inbox: self.inbox,
            process: self.process,
            handler_timeout: self.handler_timeout,
            lease: self.handler_timeout.saturating_add(Duration::from_secs(30)),
            schedule: self.schedule,
            clock: self.clock,
        });
        let mut shutdown = pin!(shutdown);
        let mut running: JoinSet<()> = JoinSet::new();
        let mut held: HashMap<Id, (DedupeKey, u64)> = HashMap::new();
        let mut backoff = Backoff::default();
        let mut next_prune_ms = 0;
        let mut next_stats_ms = 0;
        loop {
            let now_ms = (shared.clock)();
            if now_ms >= next_prune_ms {
                let before = now_ms.saturating_sub(millis(self.retention));
                let _ = telemetry::counted(StoreOp::Prune, shared.inbox.prune(before).await);
                next_prune_ms = now_ms.saturating_add(3_600_000);
            }
            if now_ms >= next_stats_ms {
                telemetry::inbox_depth(shared.inbox.as_ref(), now_ms).await;
                next_stats_ms = now_ms.saturating_add(telemetry::DEPTH_EVERY_MS);
            }
            let free = self.concurrency.saturating_sub(running.len());
            let mut leased_all = false;
            if free > 0 && backoff.ready() {
                let request = LeaseRequest {
                    max: free,
                    lease: shared.lease,
                    now_ms,
                    consumer: self.consumer.clone(),
                };
                match telemetry::counted(StoreOp::Lease, shared.inbox.lease(request).await) {
                    Ok(entries) => {
                        telemetry::polled(now_ms);
                        backoff.reset();
                        leased_all = !entries.is_empty() && entries.len() == free;
                        for entry in entries {
                            let hold = (entry.key, entry.token);
                            let shared = Arc::clone(&shared);
                            let handle = running.spawn(async move { shared.run(entry).await });
                            held.insert(handle.id(), hold);
                        }
                    }
                    Err(_) => backoff.failed(),
                }
            }
            // A full batch may mean more is ready: lease again as soon as a
            // place frees up; otherwise wait for news or the poll interval.
            let wait = backoff.wait().unwrap_or(if leased_all {
                Duration::ZERO
            } else {
                self.poll_interval
            });
            tokio::select! {
                () = &mut shutdown => break,
                Some(done) = running.join_next_with_id(), if !running.is_empty() => {
                    held.remove(&task_id(&done));
                }
                () = shared.inbox.wait_for_work(wait), if free > 0 && !leased_all => {}
                () = tokio::time::sleep(wait), if free == 0 || leased_all => {}
            }
        }
        drain(&shared, running, held, self.shutdown_grace).await;
    }
}

/// The id of a task that ended, however it ended.
fn task_id(done: &Result<(Id, ()), tokio::task::JoinError>) -> Id {
    match done {
        Ok((id, ())) => *id,
        Err(error) => error.id(),
    }
}

/// Gives running handlers `grace` to finish, then cuts them and releases
/// their events, so another worker takes them at once rather than after the
/// lease.
async fn drain(
    shared: &Shared,
    mut running: JoinSet<()>,
    mut held: HashMap<Id, (DedupeKey, u64)>,
    grace: Duration,
) {
    let finish = async {
        while let Some(done) = running.join_next_with_id().await {
            held.remove(&task_id(&done));
        }
    };
    if tokio::time::timeout(grace, finish).await.is_err() {
        running.abort_all();
        while let Some(done) = running.join_next_with_id().await {
            // A task that completed (settled) after all is not released.
            if let Ok((id, ())) = done {
                held.remove(&id);
            }
        }
    }
    for (key, token) in held.into_values() {
        let _ = telemetry::counted(StoreOp::Release, shared.inbox.release(&key, token).await);
    }
}

async fn wait_for(mut stopped: watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stop| *stop).await;
}

/// What every run of one worker shares.
struct Shared {
    inbox: Arc<dyn Inbox>,
    process: Arc<dyn Process>,
    handler_timeout: Duration,
    lease: Duration,
    schedule: RetrySchedule,
    clock: Clock,
}

impl Shared {
    /// Runs one leased entry: the handler against the timeout, the lease
    /// extended meanwhile, then the verdict recorded.
    async fn run(&self, entry: Leased) {
        let (key, token, attempts) = (entry.key, entry.token, entry.attempts);
        let process = Arc::clone(&self.process);
        let mut run = Box::pin(CatchUnwind::new(
            async move { process.process(&entry).await },
        ));
        let every = (self.lease / 3).max(Duration::from_millis(10));
        // Extended on its own schedule, so a slow store never pauses the
        // handler; ends only when the lease is lost to another worker.
        let renewing = async {
            let mut renew = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            loop {
                renew.tick().await;
                let now_ms = (self.clock)();
                let extended = self.inbox.extend(&key, token, self.lease, now_ms).await;
                if let Ok(false) = telemetry::counted(StoreOp::Extend, extended) {
                    return;
                }
            }
        };
        let timer = telemetry::Timer::start();
        let (attempt, verdict) = tokio::select! {
            done = &mut run => match done {
                Ok(verdict) => (verdict.attempt(), verdict),
                Err(Panicked) => {
                    (Attempt::Panic, Verdict::Failed("the handler panicked".to_owned()))
                }
            },
            () = tokio::time::sleep(self.handler_timeout) => {
                let error = format!(
                    "the handler did not finish within {} ms",
                    self.handler_timeout.as_millis()
                );
                (Attempt::Timeout, Verdict::Failed(error))
            }
            // Someone else holds the event now: stop running it here.
            () = renewing => return telemetry::attempt(Attempt::LostLease),
        };
        timer.worker_handler();
        telemetry::attempt(attempt);
        // A handler cut by the timeout is dropped (its destructors run)
        // before its event is scheduled again.
        drop(run);
        self.settle(&key, token, attempts, verdict).await;
    }

    async fn settle(&self, key: &DedupeKey, token: u64, attempts: u32, verdict: Verdict) {
        let now_ms = (self.clock)();
        let failure = match verdict {
            Verdict::Done => {
                for pause in SETTLE_RETRIES {
                    let acked = self.inbox.ack(key, token, now_ms).await;
                    match telemetry::counted(StoreOp::Ack, acked) {
                        Ok(_) => return,
                        Err(_) => tokio::time::sleep(pause).await,
                    }
                }
                return;
            }
            Verdict::Failed(error) => Failure {
                retry_at_ms: self.schedule.retry_at(attempts.saturating_add(1), now_ms),
                error,
            },
            Verdict::Unreadable(error) => Failure {
                error,
                retry_at_ms: None,
            },
        };
        for pause in SETTLE_RETRIES {
            let failed = self.inbox.fail(key, token, failure.clone(), now_ms).await;
            match telemetry::counted(StoreOp::Fail, failed) {
                // Recorded under this worker's lease, with no retry: dead.
                Ok(true) if failure.retry_at_ms.is_none() => return telemetry::dead_letter(),
                Ok(_) => return,
                Err(_) => tokio::time::sleep(pause).await,
            }
        }
    }
}

/// Pauses between attempts to record a verdict while the store fails; after
/// the last, the lease runs out and the event runs again (at least once).
const SETTLE_RETRIES: [Duration; 3] = [
    Duration::from_millis(200),
    Duration::from_secs(1),
    Duration::from_secs(3),
];

/// Back-off after store errors: 1 s, doubling up to 30 s.
#[derive(Default)]
struct Backoff {
    failures: u32,
    until: Option<tokio::time::Instant>,
}

impl Backoff {
    fn ready(&self) -> bool {
        self.until
            .is_none_or(|until| tokio::time::Instant::now() >= until)
    }

    fn failed(&mut self) {
        self.failures = self.failures.saturating_add(1);
        let secs = 1u64 << self.failures.saturating_sub(1).min(5);
        self.until = Some(tokio::time::Instant::now() + Duration::from_secs(secs.min(30)));
    }

    fn reset(&mut self) {
        self.failures = 0;
        self.until = None;
    }

    fn wait(&self) -> Option<Duration> {
        self.until
            .map(|until| until.saturating_duration_since(tokio::time::Instant::now()))
            .filter(|wait| !wait.is_zero())
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// A spawned [`Worker`].
#[derive(Debug)]
pub struct WorkerHandle {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    running: Arc<AtomicBool>,
}

impl WorkerHandle {
    /// Whether the worker's task is still running (it only ends on shutdown).
    #[must_use]
    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::Acquire)
    }

    /// Stops leasing, gives running handlers the shutdown grace, releases
    /// what is still held, and waits for all of it.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}
