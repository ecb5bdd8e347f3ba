//! Routes, limits and policies.

use crate::allowlist::SourceAllowlist;
use crate::dedupe::DedupeStore;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Default body limit: 8 MiB (8 388 608 bytes).
///
/// A two-hour `call_analyzed` event with the transcript and its three word-timed
/// copies is about 3 MiB, more than axum's 2 MiB and actix-web's 256 KiB
/// defaults, which would answer `413` and lose the event after Retell's retries.
/// 8 MiB leaves room for growth while bounding memory per request.
pub const DEFAULT_BODY_LIMIT: usize = 8 * 1024 * 1024;

/// Default handler deadline: 9 seconds.
///
/// Retell waits 10 seconds (the agent's `webhook_timeout_ms` default) before it
/// counts a delivery as failed and retries it. Answering `503` a second earlier
/// means the retry never races a handler that is still running.
pub const DEFAULT_HANDLER_DEADLINE: Duration = Duration::from_secs(9);

/// Default deadline of custom functions: 120 seconds, Retell's default tool
/// `timeout_ms`.
pub const DEFAULT_FUNCTION_DEADLINE: Duration = Duration::from_secs(120);

/// Default cap on verified requests an adapter handles at once on each route
/// kind: 32 events and 32 custom-function calls.
///
/// It also sizes the budget of body bytes buffered at once: 32 × 8 MiB =
/// 256 MiB by default, shared out between the routes (see
/// [`ReceiverConfig::body_budget_of`]). Requests over the cap wait (within
/// their deadline) rather than fail: Retell would only retry them.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 32;

/// Default slowest average rate of a body still being read: 128 KiB/s, after
/// [`DEFAULT_BODY_RATE_GRACE`].
///
/// A body is read before its signature can be checked, so this is what an
/// unauthenticated client may cost. Retell sends a body at once: a 3 MB
/// `call_analyzed` across an ocean arrives in under 2 s even in TCP slow
/// start, and averages several MB/s after it. The rate is measured on the
/// server, so a server too busy to read counts against it too: 16 concurrent
/// 3 MB bodies on two saturated cores (debug build) still arrived at
/// 600 KiB/s or more. A client that trickles its body falls below this rate
/// within seconds and is answered `408`, so it holds its share of the body
/// budget for seconds, not for the route's whole deadline (two minutes on
/// the function route).
pub const DEFAULT_BODY_MIN_RATE: u64 = 128 * 1024;

/// Default time before [`DEFAULT_BODY_MIN_RATE`] applies: 3 seconds from the
/// request's arrival (slow start, a busy server's first reads).
pub const DEFAULT_BODY_RATE_GRACE: Duration = Duration::from_secs(3);

/// Default time within which a whole body must arrive: 4 seconds from the
/// request's arrival (less any wait for its first share of the budget),
/// whatever the route's deadline.
///
/// The minimum rate alone would let a client that sends 4 MiB at once and
/// then a byte now and then hold 8 MiB of budget for half a minute; with
/// this limit no unauthenticated body holds budget longer than 4 s, so a
/// delivery waiting behind such bodies gets its turn well within Retell's
/// 10 s. A real delivery needs a fraction of it: 16 concurrent 3 MB
/// deliveries on two saturated cores were all answered within 0.5 s.
pub const DEFAULT_BODY_TIME_LIMIT: Duration = Duration::from_secs(4);

/// Default time the adapters wait for the next bytes of a body: 5 seconds.
///
/// Retell sends its largest bodies (a few MiB) in well under a second; a
/// client that sends nothing for 5 seconds is answered `408` and cut off.
/// Counted between chunks, so a delivery delayed by a busy server is not cut
/// off for the server's own slowness.
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

/// Which kind of request a route receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteKind {
    /// The event webhook (account- or agent-level URL) and the inbound call/SMS
    /// webhook: bodies with an `event` field, parsed as [`Incoming`](crate::Incoming).
    Events,
    /// A custom function URL: a [`FunctionRequest`](crate::FunctionRequest)
    /// with the method, the query parameters and, when there is a body, the
    /// [`FunctionCall`](crate::FunctionCall) (wrapped `{name, call, args}` or args only).
    ///
    /// Retell sends custom functions with the tool's method: `GET`, `POST`,
    /// `PUT`, `PATCH` or `DELETE` (`GET` and `DELETE` with an empty, signed
    /// body); other methods are answered `405`. Retell waits up to the tool's
    /// `timeout_ms` (2 minutes by default), so the deadline of this route is
    /// [`ReceiverConfig::function_deadline`] (120 s by default).
    Function,
}

impl RouteKind {
    /// `"events"` or `"function"`, for logs.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Events => "events",
            Self::Function => "function",
        }
    }
}

impl fmt::Display for RouteKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Limits and policies shared by every adapter.
///
/// | setting | default | why |
/// |---|---|---|
/// | [`body_limit`](Self::body_limit) | [`DEFAULT_BODY_LIMIT`] (8 MiB) | long calls produce ~3 MiB bodies; framework defaults (axum 2 MiB, actix-web 256 KiB) would drop them |
/// | [`handler_deadline`](Self::handler_deadline) | [`DEFAULT_HANDLER_DEADLINE`] (9 s) | under Retell's 10 s timeout, so a retry never overlaps a running handler; the adapters measure it from the request's arrival, so it bounds the answer |
/// | [`function_deadline`](Self::function_deadline) | [`DEFAULT_FUNCTION_DEADLINE`] (120 s) | Retell's default tool timeout for custom functions |
/// | [`max_in_flight`](Self::max_in_flight) | [`DEFAULT_MAX_IN_FLIGHT`] (32 per route kind) | bounds the verified requests handled at once, and the body bytes buffered at once ([`body_budget`](Self::body_budget), 32 × 8 MiB, ¾ for events and ¼ for custom functions); later requests wait their turn within their deadline |
/// | [`body_read_timeout`](Self::body_read_timeout) | [`DEFAULT_BODY_READ_TIMEOUT`] (5 s) | a client that stalls its body is cut off (`408`) long before Retell's 10 s |
/// | [`body_min_rate`](Self::body_min_rate) | [`DEFAULT_BODY_MIN_RATE`] (128 KiB/s) after [`DEFAULT_BODY_RATE_GRACE`] (3 s) | a client that trickles a body it cannot sign is cut off (`408`) within seconds, whatever the route's deadline |
/// | [`body_time_limit`](Self::body_time_limit) | [`DEFAULT_BODY_TIME_LIMIT`] (4 s) | no unauthenticated body holds budget longer, however it was sent (`408`) |
/// | [`source_allowlist`](Self::source_allowlist) | off | the signature is the authority; an allowlist only adds defence in depth |
/// | [`dedupe`](Self::dedupe) | off | process each event once although Retell redelivers it; see [`crate::dedupe`] |
/// | [`dedupe_lease`](Self::dedupe_lease) | handler deadline + 1 s | how long a claim outlives a replica that died mid-handler; renewed every third of itself while the handler runs |
///
/// `Debug` shows the settings; nothing in it is secret.
#[derive(Clone)]
pub struct ReceiverConfig {
    pub(crate) body_limit: usize,
    pub(crate) handler_deadline: Duration,
    pub(crate) function_deadline: Duration,
    pub(crate) max_in_flight: usize,
    pub(crate) body_read_timeout: Duration,
    pub(crate) body_min_rate: u64,
    pub(crate) body_rate_grace: Duration,
    pub(crate) body_time_limit: Duration,
    pub(crate) source_allowlist: Option<SourceAllowlist>,
    pub(crate) dedupe: Option<Arc<dyn DedupeStore>>,
    pub(crate) dedupe_lease: Option<Duration>,
    pub(crate) function_replay_guard: Option<Arc<super::replay::ReplayGuard>>,
    #[cfg(feature = "inbox")]
    pub(crate) inbox: Option<Arc<dyn crate::inbox::Inbox>>,
}

impl Default for ReceiverConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl ReceiverConfig {
    /// The defaults listed in the type docs.
    #[must_use]
    pub fn new() -> Self {
        Self {
            body_limit: DEFAULT_BODY_LIMIT,
            handler_deadline: DEFAULT_HANDLER_DEADLINE,
            function_deadline: DEFAULT_FUNCTION_DEADLINE,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            body_read_timeout: DEFAULT_BODY_READ_TIMEOUT,
            body_min_rate: DEFAULT_BODY_MIN_RATE,
            body_rate_grace: DEFAULT_BODY_RATE_GRACE,
            body_time_limit: DEFAULT_BODY_TIME_LIMIT,
            source_allowlist: None,
            dedupe: None,
            dedupe_lease: None,
            function_replay_guard: None,
            #[cfg(feature = "inbox")]
            inbox: None,
        }
    }

    /// Sets the largest accepted body, in bytes (`413` above it).
    #[must_use]
    pub fn with_body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// Sets how many verified requests are handled at once on each route kind
    /// (at least 1; default [`DEFAULT_MAX_IN_FLIGHT`]), over every clone of
    /// the [`Receiver`](crate::Receiver): events (and the inbound webhook,
    /// which shares their URL) and custom functions have places of their
    /// own, so slow tools never hold the places events need. The adapters and the tower service take a place only once
    /// a request's signature is verified, so requests that cannot prove where
    /// they come from never hold one; a delivery that finds no place within its
    /// deadline is answered `503`. It also sizes the budget of body bytes read
    /// at once ([`body_budget`](Self::body_budget)). [`Receiver::dispatch`](crate::Receiver::dispatch)
    /// itself does not wait for a place.
    #[must_use]
    pub fn with_max_in_flight(mut self, requests: usize) -> Self {
        self.max_in_flight = requests.max(1);
        self
    }

    /// Sets how long the adapters wait for the next bytes of a body (default
    /// [`DEFAULT_BODY_READ_TIMEOUT`]); a client that stalls that long is
    /// answered `408` and its connection closed. One that keeps trickling is
    /// cut off by the deadline (`503`), which counts from the request's
    /// arrival.
    #[must_use]
    pub fn with_body_read_timeout(mut self, timeout: Duration) -> Self {
        self.body_read_timeout = timeout;
        self
    }

    /// Sets the slowest average rate, in bytes per second, at which the
    /// adapters keep reading a body once `grace` has passed since the
    /// request's arrival (defaults [`DEFAULT_BODY_MIN_RATE`] and
    /// [`DEFAULT_BODY_RATE_GRACE`]). A body that falls behind is answered
    /// `408` and its connection closed; `0` turns the check off.
    ///
    /// The rate is the bytes received over the time since arrival, less the
    /// time the body waited for its share of the [body budget](Self::body_budget_of)
    /// (the receiver's doing, not the client's). It is measured on the
    /// server, so a server too busy to read counts against it: keep it well
    /// under what your slowest deliveries achieve.
    #[must_use]
    pub fn with_body_min_rate(mut self, bytes_per_second: u64, grace: Duration) -> Self {
        self.body_min_rate = bytes_per_second;
        self.body_rate_grace = grace;
        self
    }

    /// Sets the time within which a whole body must arrive, counted from the
    /// request's arrival, less the time it waited for its first share of the
    /// budget (default [`DEFAULT_BODY_TIME_LIMIT`]): so it bounds how long a
    /// body holds budget, waits for more included. A body still incomplete
    /// then is answered `408` and its connection closed, or `503` if it was
    /// waiting for budget. The route's deadline bounds it too.
    #[must_use]
    pub fn with_body_time_limit(mut self, limit: Duration) -> Self {
        self.body_time_limit = limit;
        self
    }

    /// Sets how long a handler may run before the request is answered `503`
    /// (adapters apply it; the handler future is dropped).
    #[must_use]
    pub fn with_handler_deadline(mut self, deadline: Duration) -> Self {
        self.handler_deadline = deadline;
        self
    }

    /// Sets how long a custom function may run before the request is answered
    /// `503` (default [`DEFAULT_FUNCTION_DEADLINE`], Retell's default tool
    /// timeout).
    #[must_use]
    pub fn with_function_deadline(mut self, deadline: Duration) -> Self {
        self.function_deadline = deadline;
        self
    }

    /// Turns on the source address check (`403` for other sources). The
    /// signature is still checked for every request.
    #[must_use]
    pub fn with_source_allowlist(mut self, allowlist: SourceAllowlist) -> Self {
        self.source_allowlist = Some(allowlist);
        self
    }

    /// Turns on deduplication of events with `store`, e.g.
    /// [`MemoryDedupe::new()`](crate::dedupe::MemoryDedupe::new) in one
    /// process, or a shared store for several replicas (see [`crate::dedupe`]).
    ///
    /// A delivery of an event that was already handled with a `2xx` is
    /// answered `204` without calling the handler; one that arrives while the
    /// same event is being handled is answered `409`. A failed attempt (error,
    /// panic, deadline) releases the key, so Retell's retry is processed.
    /// Requests that expect an answer (inbound webhook, custom functions) are
    /// never deduplicated.
    #[must_use]
    pub fn with_dedupe<S: DedupeStore + 'static>(self, store: S) -> Self {
        self.with_dedupe_store(Arc::new(store))
    }

    /// Like [`with_dedupe`](Self::with_dedupe) with a store shared elsewhere
    /// (to inspect it, or to share it between routes).
    #[must_use]
    pub fn with_dedupe_store(mut self, store: Arc<dyn DedupeStore>) -> Self {
        self.dedupe = Some(store);
        self
    }

    /// The deduplication store, if deduplication is on.
    #[must_use]
    pub fn dedupe(&self) -> Option<&Arc<dyn DedupeStore>> {
        self.dedupe.as_ref()
    }

    /// Claims an event for `lease` (at least 30 ms) instead of the handler
    /// deadline plus a second. The claim is renewed every third of the lease
    /// while the handler runs, so a shorter lease only frees the key of a
    /// replica that died mid-handler sooner; the renewals cost one store call
    /// each.
    #[must_use]
    pub fn with_dedupe_lease(mut self, lease: Duration) -> Self {
        self.dedupe_lease = Some(lease.max(Duration::from_millis(30)));
        self
    }

    /// How long a claim lasts without renewal: the
    /// [`with_dedupe_lease`](Self::with_dedupe_lease) value, or the handler
    /// deadline plus a second.
    #[must_use]
    pub fn dedupe_lease(&self) -> Duration {
        self.dedupe_lease
            .unwrap_or_else(|| self.handler_deadline.saturating_add(Duration::from_secs(1)))
    }

    /// Refuses, on the custom-function route, a signature whose request was
    /// answered with a success, or is being handled, for the rest of its
    /// window (`401`, [`VerifyError::Replayed`](crate::VerifyError::Replayed)).
    ///
    /// Retell signs the body and the timestamp, not the method, the query or
    /// the URL: a signature captured from one call (every `GET` or `DELETE`
    /// tool signs the same empty body) is valid for its whole window on any
    /// request with that body, e.g. as `GET /function?amount=1000000`. Keep
    /// tool arguments in the body and treat the query as untrusted; with this
    /// guard, each signature is also used once. It remembers the signatures
    /// of this process (up to 65 536, each until its window ends), so behind
    /// several replicas a replay may still reach another one: route a
    /// function URL to one replica, or make the tool itself idempotent. A
    /// request that failed (error, deadline, dropped connection) hands its
    /// signature back, so Retell's retry of a failed call gets through even
    /// if it carries the same signature.
    #[must_use]
    pub fn with_function_replay_guard(mut self) -> Self {
        self.function_replay_guard = Some(Arc::default());
        self
    }

    /// Whether the custom-function route refuses replayed signatures.
    #[must_use]
    pub fn function_replay_guard(&self) -> bool {
        self.function_replay_guard.is_some()
    }

    /// Stores every verified event in `inbox` and answers `204` once it is
    /// durable; a [`Worker`](crate::inbox::Worker) runs the handler on it
    /// later, with retries for hours (see [`crate::inbox`]).
    ///
    /// On the events route: verify, read the event, store it, answer. A copy
    /// of a stored event is answered `204` and not stored again (the inbox is
    /// the deduplication record, so a [dedupe store](Self::with_dedupe) is
    /// not consulted for events); a store that fails or does not answer
    /// within the [handler deadline](Self::handler_deadline) is answered
    /// `503`, never a 4xx, so Retell retries. A verified body the models
    /// cannot read is stored too, as a dead letter with the reason, instead
    /// of a `400` that would lose it. The inbound call/SMS webhook and custom
    /// functions need the handler's answer: they still run it inline.
    #[cfg(feature = "inbox")]
    #[cfg_attr(docsrs, doc(cfg(feature = "inbox")))]
    #[must_use]
    pub fn with_inbox<I: crate::inbox::Inbox + 'static>(self, inbox: I) -> Self {
        self.with_inbox_store(Arc::new(inbox))
    }

    /// Like [`with_inbox`](Self::with_inbox) with a store shared elsewhere
    /// (with a [`Worker`](crate::inbox::Worker), say).
    #[cfg(feature = "inbox")]
    #[cfg_attr(docsrs, doc(cfg(feature = "inbox")))]
    #[must_use]
    pub fn with_inbox_store(mut self, inbox: Arc<dyn crate::inbox::Inbox>) -> Self {
        self.inbox = Some(inbox);
        self
    }

    /// The inbox, if events are stored.
    #[cfg(feature = "inbox")]
    #[cfg_attr(docsrs, doc(cfg(feature = "inbox")))]
    #[must_use]
    pub fn inbox(&self) -> Option<&Arc<dyn crate::inbox::Inbox>> {
        self.inbox.as_ref()
    }

    /// The largest accepted body, in bytes.
    #[must_use]
    pub fn body_limit(&self) -> usize {
        self.body_limit
    }

    /// How long a handler may run before the request is answered `503`.
    #[must_use]
    pub fn handler_deadline(&self) -> Duration {
        self.handler_deadline
    }

    /// How long a custom function may run before the request is answered `503`.
    #[must_use]
    pub fn function_deadline(&self) -> Duration {
        self.function_deadline
    }

    /// The deadline of `route`: [`function_deadline`](Self::function_deadline)
    /// for functions, [`handler_deadline`](Self::handler_deadline) otherwise.
    #[must_use]
    pub fn deadline_of(&self, route: RouteKind) -> Duration {
        match route {
            RouteKind::Events => self.handler_deadline,
            RouteKind::Function => self.function_deadline,
        }
    }

    /// How many verified requests the adapters handle at once.
    #[must_use]
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight
    }

    /// How long the adapters wait for the next bytes of a body.
    #[must_use]
    pub fn body_read_timeout(&self) -> Duration {
        self.body_read_timeout
    }

    /// The slowest average body rate kept, in bytes per second (`0`: off).
    #[must_use]
    pub fn body_min_rate(&self) -> u64 {
        self.body_min_rate
    }

    /// How long after arrival [`body_min_rate`](Self::body_min_rate) applies.
    #[must_use]
    pub fn body_rate_grace(&self) -> Duration {
        self.body_rate_grace
    }

    /// The time within which a whole body must arrive.
    #[must_use]
    pub fn body_time_limit(&self) -> Duration {
        self.body_time_limit
    }

    /// Body bytes the adapters buffer at once, over every request being read
    /// or handled: [`max_in_flight`](Self::max_in_flight) ×
    /// [`body_limit`](Self::body_limit) (256 MiB by default), shared out
    /// between the routes by [`body_budget_of`](Self::body_budget_of). A
    /// request holds budget for the buffer its body has grown to (bytes that
    /// arrived, never a `Content-Length` alone) and waits its turn for more
    /// within its deadline.
    #[must_use]
    pub fn body_budget(&self) -> usize {
        self.max_in_flight.saturating_mul(self.body_limit).max(1)
    }

    /// The share of the [body budget](Self::body_budget) of one route kind:
    /// a quarter for custom functions, the rest for events (192 MiB and
    /// 64 MiB by default), each at least one [body limit](Self::body_limit).
    /// Separate shares, like the separate in-flight places, mean that bodies
    /// held on the function route (whose deadline is minutes) never delay an
    /// event delivery, and the other way round.
    #[must_use]
    pub fn body_budget_of(&self, route: RouteKind) -> usize {
        let total = self.body_budget();
        let function = (total / 4).max(self.body_limit).max(1);
        match route {
            RouteKind::Function => function,
            RouteKind::Events => total.saturating_sub(function).max(self.body_limit).max(1),
        }
    }

    /// The source allowlist, if one is configured.
    #[must_use]
    pub fn source_allowlist(&self) -> Option<&SourceAllowlist> {
        self.source_allowlist.as_ref()
    }
}

impl fmt::Debug for ReceiverConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("ReceiverConfig");
        debug
            .field("body_limit", &self.body_limit)
            .field("handler_deadline", &self.handler_deadline)
            .field("function_deadline", &self.function_deadline)
            .field("max_in_flight", &self.max_in_flight)
            .field("body_read_timeout", &self.body_read_timeout)
            .field("body_min_rate", &self.body_min_rate)
            .field("body_rate_grace", &self.body_rate_grace)
            .field("body_time_limit", &self.body_time_limit)
            .field("source_allowlist", &self.source_allowlist)
            .field("dedupe", &self.dedupe.as_ref().map_or("off", |_| "on"))
            .field("dedupe_lease", &self.dedupe_lease())
            .field("function_replay_guard", &self.function_replay_guard());
        #[cfg(feature = "inbox")]
        debug.field("inbox", &self.inbox.as_ref().map_or("off", |_| "on"));
        debug.finish()
    }
}
