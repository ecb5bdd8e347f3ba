//! Framework-agnostic request handling: one entry point that every HTTP adapter
//! calls, so the status policy cannot drift between frameworks.
//!
//! The flow for one request is fixed:
//!
//! 1. source address allowlist, when configured ([`SourceAllowlist`]) → `403`;
//! 2. method must be `POST` → `405`;
//! 3. `Content-Encoding` must be absent or `identity` → `415`;
//! 4. body at most [`ReceiverConfig::body_limit`] bytes → `413`;
//! 5. `X-Retell-Signature` verified over the raw bytes → `401`, with one
//!    identical response whatever the reason;
//! 6. only now is the body looked at: whole-body UTF-8, a JSON object, then the
//!    typed models → `400` (an object the models cannot read goes to
//!    [`WebhookHandler::on_unparsed`] first);
//! 7. the matching [`WebhookHandler`] method runs, with panics caught and the
//!    deadline applied → `500` / `503`, or `204` (events) / `200` with the
//!    answer (inbound webhook, custom functions).
//!
//! | status | when | retried by Retell |
//! |---|---|---|
//! | `204` | event handled, unknown event acknowledged, `on_unparsed` accepted, duplicate of a handled event ([dedupe](crate::dedupe) on) | no |
//! | `200` | inbound webhook or custom function answered (JSON or text body) | no |
//! | `400` | verified body not UTF-8, not JSON, not an object, or not readable by the models; body not fully received | yes |
//! | `401` | any signature failure: one identical response, the reason only in the [`Outcome`] | yes |
//! | `403` | source address not in the opt-in [`SourceAllowlist`] | yes |
//! | `405` | method other than `POST` (with `Allow: POST`) | yes |
//! | `413` | body or `Content-Length` over [`ReceiverConfig::body_limit`] | yes |
//! | `409` | the same event is being handled by another request ([dedupe](crate::dedupe) on) | yes |
//! | `415` | `Content-Encoding` other than `identity` | yes |
//! | `500` | handler error or panic; adapter without a verifier | yes |
//! | `503` | handler deadline exceeded; dedupe store failed | yes |
//!
//! [`dispatch`] returns a [`Dispatched`]: the [`WebhookResponse`] to send and an
//! [`Outcome`] to log (status, reason, event name, call id; never a body, a header
//! value or a key). Adapters call [`precheck`] before reading the body, read it
//! within the limit, then call [`dispatch`] with a timer future for the deadline
//! (the core needs no runtime).
//!
//! ```
//! use retell_webhooks::dispatch::{dispatch, RawRequest, ReceiverConfig, Route, WebhookHandler};
//! use retell_webhooks::{sign, CallEvent, Verifier};
//!
//! struct Handler;
//!
//! impl WebhookHandler for Handler {
//!     type Error = std::convert::Infallible;
//!
//!     async fn on_call_ended(&self, event: CallEvent) -> Result<(), Self::Error> {
//!         let _ = event; // store the transcript, enqueue work, ...
//!         Ok(())
//!     }
//! }
//!
//! # block_on(async {
//! let now = 1_785_423_600_000;
//! let verifier = Verifier::new("key_test")?;
//! let config = ReceiverConfig::new().with_clock(move || now);
//! let body = br#"{"event":"call_ended","call":{"call_id":"call_1"}}"#;
//! let header = sign(body, "key_test", now);
//! let request = RawRequest::post(body).signature_values([header.as_bytes()]);
//! let done = dispatch(&verifier, &Handler, Route::Events, &config, &request, std::future::pending()).await;
//! assert_eq!(done.response.status(), 204);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })
//! # .unwrap();
//! # fn block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     use std::task::{Context, Poll, Waker};
//! #     let mut f = std::pin::pin!(f);
//! #     let mut cx = Context::from_waker(Waker::noop());
//! #     loop { if let Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; } }
//! # }
//! ```

use std::fmt;
use std::future::{Future, poll_fn};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::{Pin, pin};
use std::str::FromStr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use crate::dedupe::{Begin, DedupeKey, DedupeStore, Ticket};
use crate::signature::{Verifier, VerifyError, unix_ms};
use crate::{
    CallEvent, ChatEvent, FunctionCall, FunctionResponse, InboundCallRequest, InboundChatRequest,
    InboundResponse, Incoming, ParseError, ParseErrorKind, TranscriptUpdatedEvent, TransferEvent,
    UnknownEvent, WebhookEvent,
};

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

/// Default cap on requests an adapter handles at once: 32.
///
/// Each request in flight may hold up to the body limit in memory, so the cap
/// bounds buffered bodies at 32 × 8 MiB = 256 MiB by default. Requests over the
/// cap wait (their bodies stay unread in the socket) rather than fail: Retell
/// would only retry them.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 32;

/// The one documented address Retell sends webhooks from: `100.20.5.228`.
pub const RETELL_SOURCE_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(100, 20, 5, 228));

const TEXT_PLAIN: &str = "text/plain; charset=utf-8";
const APPLICATION_JSON: &str = "application/json";

/// Body of every `401` response, whatever the verification failure was.
pub const UNAUTHORIZED_BODY: &[u8] = b"invalid or missing signature\n";

// ---------------------------------------------------------------------------
// Handler trait
// ---------------------------------------------------------------------------

/// What to do with each kind of request Retell sends.
///
/// Every method has a default: events are acknowledged (`Ok(())`, answered with
/// `204`), the inbound call/SMS webhook answers an empty response (Retell keeps
/// the number's configured agent), and a custom function call answers the text
/// `function not implemented` (see [`on_function_call`](Self::on_function_call)).
/// Override the methods you need; write them as `async fn`.
///
/// Returning `Err` answers `500`, so Retell retries the delivery (up to 3 times).
/// A panic is caught and also answers `500`; the server keeps serving. Keep
/// handlers short (Retell gives up after 10 seconds; see
/// [`ReceiverConfig::handler_deadline`]) and idempotent: the same event can
/// arrive more than once. [`ReceiverConfig::with_dedupe`] filters the copies
/// (see [`crate::dedupe`]); a side effect outside your own database (an email,
/// a charge) should still carry its own idempotency key.
///
/// For slow work, acknowledge fast and process later ("ack then process"):
/// hand the event to a durable queue in the handler and return `Ok` only once
/// the queue has accepted it; return `Err` when it has not (`500`, Retell
/// retries), never `Ok` for work that is not durably handed off.
///
/// The returned futures must be `Send` so a multi-threaded runtime can run them;
/// an `async fn` is `Send` when everything it holds across an `.await` is.
pub trait WebhookHandler: Send + Sync {
    /// Error returned by the handler. Its `Display` text is put in the
    /// [`Outcome`] for logging; it is never sent to the client.
    type Error: fmt::Display + Send + 'static;

    /// `call_started`: a call began (not sent for calls that never connect).
    fn on_call_started(
        &self,
        event: CallEvent,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        let _ = event;
        async { Ok(()) }
    }

    /// `call_ended`: a call ended; carries the transcript and recording links.
    fn on_call_ended(
        &self,
        event: CallEvent,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        let _ = event;
        async { Ok(()) }
    }

    /// `call_analyzed`: post-call analysis (`call_analysis`) is ready.
    fn on_call_analyzed(
        &self,
        event: CallEvent,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        let _ = event;
        async { Ok(()) }
    }

    /// `transcript_updated`: the live transcript changed (opt-in; fires many
    /// times per call, keep the latest).
    fn on_transcript_updated(
        &self,
        event: TranscriptUpdatedEvent,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        let _ = event;
        async { Ok(()) }
    }

    /// `transfer_started`: a call transfer began (opt-in).
    fn on_transfer_started(
        &self,
        event: TransferEvent,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        let _ = event;
        async { Ok(()) }
    }

    /// `transfer_bridged`: the transfer target answered (opt-in).
    fn on_transfer_bridged(
        &self,
        event: TransferEvent,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        let _ = event;
        async { Ok(()) }
    }

    /// `transfer_cancelled`: the transfer was abandoned (opt-in).
    fn on_transfer_cancelled(
        &self,
        event: TransferEvent,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        let _ = event;
        async { Ok(()) }
    }

    /// `transfer_ended`: the transferred leg ended (opt-in).
    fn on_transfer_ended(
        &self,
        event: TransferEvent,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        let _ = event;
        async { Ok(()) }
    }

    /// `chat_started`: a chat (SMS or web chat) began.
    fn on_chat_started(
        &self,
        event: ChatEvent,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        let _ = event;
        async { Ok(()) }
    }

    /// `chat_ended`: a chat ended.
    fn on_chat_ended(
        &self,
        event: ChatEvent,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        let _ = event;
        async { Ok(()) }
    }

    /// `chat_analyzed`: post-chat analysis is ready.
    fn on_chat_analyzed(
        &self,
        event: ChatEvent,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        let _ = event;
        async { Ok(()) }
    }

    /// An event this version of the crate does not know. Acknowledged (`204`) by
    /// default, so a new Retell event type never turns into failed deliveries.
    fn on_unknown(
        &self,
        event: UnknownEvent,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        let _ = event;
        async { Ok(()) }
    }

    /// The inbound call webhook (`call_inbound`): choose the agent, add dynamic
    /// variables or reject the call. Answered with `200` and the JSON response.
    ///
    /// Default: an empty response, which keeps the number's configured agent.
    fn on_call_inbound(
        &self,
        request: InboundCallRequest,
    ) -> impl Future<Output = Result<InboundResponse, Self::Error>> + Send {
        let _ = request;
        async { Ok(InboundResponse::call()) }
    }

    /// The inbound SMS webhook (`chat_inbound`). Answered with `200` and the JSON
    /// response.
    ///
    /// Default: an empty response, which keeps the number's configured agent.
    fn on_chat_inbound(
        &self,
        request: InboundChatRequest,
    ) -> impl Future<Output = Result<InboundResponse, Self::Error>> + Send {
        let _ = request;
        async { Ok(InboundResponse::chat()) }
    }

    /// A custom function (tool) call on a [`Route::Function`] route. The answer is
    /// sent with `200` and handed to the LLM (Retell caps it at 15 000
    /// characters).
    ///
    /// Default: the text `function not implemented`, so the agent can tell the
    /// caller at once instead of waiting on failed retries. Override this method
    /// whenever you mount a function route.
    fn on_function_call(
        &self,
        call: FunctionCall,
    ) -> impl Future<Output = Result<FunctionResponse, Self::Error>> + Send {
        let _ = call;
        async { Ok(FunctionResponse::text("function not implemented")) }
    }

    /// A verified JSON object on the event route that the typed models could not
    /// read (a field of an unexpected type, say). `body` is the raw verified
    /// bytes, e.g. to store for a later replay; `error` names the JSON path and,
    /// when readable, the event name and call/chat id.
    ///
    /// Return [`Fallback::Accepted`] to answer `204`, or [`Fallback::Declined`]
    /// (the default) to answer `400`. Either way the outcome names the failure.
    fn on_unparsed(
        &self,
        body: &[u8],
        error: &ParseError,
    ) -> impl Future<Output = Result<Fallback, Self::Error>> + Send {
        let _ = (body, error);
        async { Ok(Fallback::Declined) }
    }
}

/// The answer of [`WebhookHandler::on_unparsed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    /// The raw body was handled (stored, queued): answer `204`.
    Accepted,
    /// Not handled: answer `400`.
    Declined,
}

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

/// Which kind of request a route receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    /// The event webhook (account- or agent-level URL) and the inbound call/SMS
    /// webhook: bodies with an `event` field, parsed as [`Incoming`].
    Events,
    /// A custom function URL: bodies parsed as [`FunctionCall`] (wrapped
    /// `{name, call, args}` or args only).
    ///
    /// Configure the tool with method `POST` (Retell's default); other methods
    /// are answered `405`. Retell waits up to the tool's `timeout_ms` (2 minutes
    /// by default) for a function, so raise
    /// [`ReceiverConfig::with_handler_deadline`] for slow tools.
    Function,
}

impl Route {
    /// `"events"` or `"function"`, for logs.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Events => "events",
            Self::Function => "function",
        }
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone)]
enum Clock {
    System,
    Custom(Arc<dyn Fn() -> u64 + Send + Sync>),
}

/// Limits and policies shared by every adapter.
///
/// | setting | default | why |
/// |---|---|---|
/// | [`body_limit`](Self::body_limit) | [`DEFAULT_BODY_LIMIT`] (8 MiB) | long calls produce ~3 MiB bodies; framework defaults (axum 2 MiB, actix-web 256 KiB) would drop them |
/// | [`handler_deadline`](Self::handler_deadline) | [`DEFAULT_HANDLER_DEADLINE`] (9 s) | under Retell's 10 s timeout, so a retry never overlaps a running handler |
/// | [`max_in_flight`](Self::max_in_flight) | [`DEFAULT_MAX_IN_FLIGHT`] (32) | bounds the bodies adapters buffer at once (32 × 8 MiB); later requests wait |
/// | clock | the system clock | injectable with [`with_clock`](Self::with_clock) for tests |
/// | [`source_allowlist`](Self::source_allowlist) | off | the signature is the authority; an allowlist only adds defence in depth |
/// | [`dedupe`](Self::dedupe) | off | process each event once although Retell redelivers it; see [`crate::dedupe`] |
///
/// `Debug` shows the settings; nothing in it is secret.
#[derive(Clone)]
pub struct ReceiverConfig {
    body_limit: usize,
    handler_deadline: Duration,
    max_in_flight: usize,
    clock: Clock,
    source_allowlist: Option<SourceAllowlist>,
    dedupe: Option<Arc<dyn DedupeStore>>,
    mismatches: Arc<MismatchMonitor>,
}

/// After this many signature mismatches in a row, with no verified request in
/// between, the [`Outcome`] carries a [`key_alert`](Outcome::key_alert): the
/// configured key is most likely not the one Retell signs with.
pub const MISMATCH_ALERT_THRESHOLD: u64 = 10;

/// At most one [`key_alert`](Outcome::key_alert) per this many milliseconds
/// (by the configured clock), so a log line raised on it is rate limited.
pub const MISMATCH_ALERT_INTERVAL_MS: u64 = 60_000;

/// Counts digest mismatches in a row (shared by every clone of a config, so by
/// every worker of an adapter).
#[derive(Default)]
struct MismatchMonitor {
    streak: std::sync::atomic::AtomicU64,
    /// Clock value of the last alert plus one (0: never).
    last_alert: std::sync::atomic::AtomicU64,
}

impl MismatchMonitor {
    /// Records one verification result; returns the streak when an alert is due.
    fn record(&self, result: &Result<(), VerifyError>, now_ms: u64) -> Option<u64> {
        use std::sync::atomic::Ordering::Relaxed;
        match result {
            Ok(()) => {
                self.streak.store(0, Relaxed);
                None
            }
            Err(VerifyError::Mismatch) => {
                let streak = self.streak.fetch_add(1, Relaxed).saturating_add(1);
                if streak < MISMATCH_ALERT_THRESHOLD {
                    return None;
                }
                let last = self.last_alert.load(Relaxed);
                let due =
                    last == 0 || now_ms.saturating_sub(last - 1) >= MISMATCH_ALERT_INTERVAL_MS;
                let stamp = now_ms.saturating_add(1);
                (due && self
                    .last_alert
                    .compare_exchange(last, stamp, Relaxed, Relaxed)
                    .is_ok())
                .then_some(streak)
            }
            // Missing, stale or malformed signatures say nothing about the key.
            Err(_) => None,
        }
    }
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
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            clock: Clock::System,
            source_allowlist: None,
            dedupe: None,
            mismatches: Arc::default(),
        }
    }

    /// Sets the largest accepted body, in bytes (`413` above it).
    #[must_use]
    pub fn with_body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// Sets how many requests the framework adapters read and handle at once
    /// (at least 1; default [`DEFAULT_MAX_IN_FLIGHT`]). Further requests wait
    /// before their body is read. The framework-agnostic [`dispatch`] itself
    /// does not limit anything.
    #[must_use]
    pub fn with_max_in_flight(mut self, requests: usize) -> Self {
        self.max_in_flight = requests.max(1);
        self
    }

    /// Sets how long a handler may run before the request is answered `503`
    /// (adapters apply it; the handler future is dropped).
    #[must_use]
    pub fn with_handler_deadline(mut self, deadline: Duration) -> Self {
        self.handler_deadline = deadline;
        self
    }

    /// Replaces the system clock used for the signature window with `now_ms`,
    /// which returns Unix milliseconds. Meant for tests.
    #[must_use]
    pub fn with_clock<F>(mut self, now_ms: F) -> Self
    where
        F: Fn() -> u64 + Send + Sync + 'static,
    {
        self.clock = Clock::Custom(Arc::new(now_ms));
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

    /// Signature digest mismatches in a row since the last verified request
    /// (shared by every clone of this configuration). See
    /// [`MISMATCH_ALERT_THRESHOLD`].
    #[must_use]
    pub fn signature_mismatch_streak(&self) -> u64 {
        self.mismatches
            .streak
            .load(std::sync::atomic::Ordering::Relaxed)
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

    /// How many requests the adapters read and handle at once.
    #[must_use]
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight
    }

    /// The source allowlist, if one is configured.
    #[must_use]
    pub fn source_allowlist(&self) -> Option<&SourceAllowlist> {
        self.source_allowlist.as_ref()
    }

    /// The current time in Unix milliseconds from the configured clock.
    pub fn now_ms(&self) -> Result<u64, VerifyError> {
        match &self.clock {
            Clock::System => unix_ms(SystemTime::now()),
            Clock::Custom(now) => Ok(now()),
        }
    }
}

impl fmt::Debug for ReceiverConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReceiverConfig")
            .field("body_limit", &self.body_limit)
            .field("handler_deadline", &self.handler_deadline)
            .field("max_in_flight", &self.max_in_flight)
            .field(
                "clock",
                &match self.clock {
                    Clock::System => "system",
                    Clock::Custom(_) => "custom",
                },
            )
            .field("source_allowlist", &self.source_allowlist)
            .field("dedupe", &self.dedupe.as_ref().map_or("off", |_| "on"))
            .field(
                "signature_mismatch_streak",
                &self.signature_mismatch_streak(),
            )
            .finish()
    }
}

// ---------------------------------------------------------------------------
// Source allowlist
// ---------------------------------------------------------------------------

/// A single address or a CIDR block, e.g. `10.0.0.0/8` or `2001:db8::/32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpRange {
    network: IpAddr,
    prefix: u8,
}

impl IpRange {
    /// A block of `prefix` leading bits; `None` when `prefix` is longer than
    /// the address (32 for IPv4, 128 for IPv6). Host bits are cleared.
    ///
    /// An IPv4-mapped IPv6 block (`::ffff:10.0.0.0/104`) is the IPv4 block it
    /// maps (`10.0.0.0/8`); with a prefix under 96 it stays an IPv6 block.
    #[must_use]
    pub fn new(addr: IpAddr, prefix: u8) -> Option<Self> {
        let (addr, prefix) = match addr {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) if prefix >= 96 => (IpAddr::V4(v4), prefix - 96),
                _ => (addr, prefix),
            },
            IpAddr::V4(_) => (addr, prefix),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return None;
        }
        Some(Self {
            network: mask(addr, prefix),
            prefix,
        })
    }

    /// Whether `addr` is inside the block (IPv4-mapped IPv6 addresses count as
    /// IPv4).
    #[must_use]
    pub fn contains(&self, addr: IpAddr) -> bool {
        let addr = addr.to_canonical();
        addr.is_ipv4() == self.network.is_ipv4() && mask(addr, self.prefix) == self.network
    }
}

impl From<IpAddr> for IpRange {
    fn from(addr: IpAddr) -> Self {
        let addr = addr.to_canonical();
        let prefix = if addr.is_ipv4() { 32 } else { 128 };
        Self {
            network: addr,
            prefix,
        }
    }
}

/// Error from parsing an [`IpRange`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid IP address or CIDR block (expected e.g. `100.20.5.228` or `10.0.0.0/8`)")]
pub struct IpRangeParseError;

impl FromStr for IpRange {
    type Err = IpRangeParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('/') {
            None => s
                .parse::<IpAddr>()
                .map(Self::from)
                .map_err(|_| IpRangeParseError),
            Some((addr, prefix)) => {
                let addr = addr.parse::<IpAddr>().map_err(|_| IpRangeParseError)?;
                if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(IpRangeParseError);
                }
                let prefix = prefix.parse::<u8>().map_err(|_| IpRangeParseError)?;
                Self::new(addr, prefix).ok_or(IpRangeParseError)
            }
        }
    }
}

fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let keep = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((bits & keep).into())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let keep = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((bits & keep).into())
        }
    }
}

/// Which source addresses may deliver webhooks (opt-in defence in depth; the
/// signature is always checked as well).
///
/// The client address is the TCP peer, unless the peer is one of the
/// [trusted proxies](Self::with_trusted_proxies): then `X-Forwarded-For` is read
/// from the right, skipping trusted proxies, and the first untrusted entry is the
/// client. Entries a client wrote itself sit to the left of what the proxies
/// appended, so a spoofed `X-Forwarded-For: 100.20.5.228` from an untrusted peer
/// changes nothing.
///
/// ```
/// use retell_webhooks::dispatch::{IpRange, SourceAllowlist};
///
/// let proxies: IpRange = "10.0.0.0/8".parse()?;
/// let allow = SourceAllowlist::retell().with_trusted_proxies([proxies]);
/// // Direct from Retell:
/// assert!(allow.check(Some("100.20.5.228".parse()?), [] as [&[u8]; 0]).is_ok());
/// // Spoofed header from an untrusted peer:
/// assert!(allow.check(Some("127.0.0.1".parse()?), [&b"100.20.5.228"[..]]).is_err());
/// // Through a trusted load balancer:
/// assert!(allow.check(Some("10.1.2.3".parse()?), [&b"203.0.113.9, 100.20.5.228"[..]]).is_ok());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceAllowlist {
    allowed: Vec<IpRange>,
    trusted_proxies: Vec<IpRange>,
}

/// Why [`SourceAllowlist::check`] refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SourceRejection {
    /// The adapter could not tell the TCP peer address (for axum, serve with
    /// `into_make_service_with_connect_info::<SocketAddr>()`).
    #[error("source address unknown: the server does not report the TCP peer address")]
    PeerUnknown,
    /// An `X-Forwarded-For` entry is not an IP address.
    #[error("X-Forwarded-For from a trusted proxy has an entry that is not an IP address")]
    BadForwardedFor,
    /// The client address is not allowed.
    #[error("source address {0} is not in the allowlist")]
    NotAllowed(IpAddr),
}

impl SourceAllowlist {
    /// Allows exactly the given addresses or blocks; no trusted proxies.
    pub fn new<I>(allowed: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<IpRange>,
    {
        Self {
            allowed: allowed.into_iter().map(Into::into).collect(),
            trusted_proxies: Vec::new(),
        }
    }

    /// Allows Retell's documented address, [`RETELL_SOURCE_IP`].
    #[must_use]
    pub fn retell() -> Self {
        Self::new([RETELL_SOURCE_IP])
    }

    /// Trusts these proxies (load balancers, reverse proxies) to append the real
    /// client address to `X-Forwarded-For`.
    #[must_use]
    pub fn with_trusted_proxies<I>(mut self, proxies: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<IpRange>,
    {
        self.trusted_proxies
            .extend(proxies.into_iter().map(Into::into));
        self
    }

    /// Decides whether a request from TCP peer `peer` carrying these
    /// `X-Forwarded-For` header values (in the order received) may proceed.
    /// Returns the client address on success.
    pub fn check<'a, I>(
        &self,
        peer: Option<IpAddr>,
        forwarded_for: I,
    ) -> Result<IpAddr, SourceRejection>
    where
        I: IntoIterator<Item = &'a [u8]>,
    {
        let peer = peer.ok_or(SourceRejection::PeerUnknown)?.to_canonical();
        let client = if self.is_trusted(peer) {
            self.client_behind_proxies(peer, forwarded_for)?
        } else {
            peer
        };
        if self.allowed.iter().any(|r| r.contains(client)) {
            Ok(client)
        } else {
            Err(SourceRejection::NotAllowed(client))
        }
    }

    fn is_trusted(&self, addr: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|r| r.contains(addr))
    }

    fn client_behind_proxies<'a, I>(
        &self,
        peer: IpAddr,
        forwarded_for: I,
    ) -> Result<IpAddr, SourceRejection>
    where
        I: IntoIterator<Item = &'a [u8]>,
    {
        let mut entries = Vec::new();
        for value in forwarded_for {
            for entry in value.split(|&b| b == b',') {
                entries.push(parse_forwarded_entry(entry).ok_or(SourceRejection::BadForwardedFor)?);
            }
        }
        let mut client = peer;
        for addr in entries.into_iter().rev() {
            client = addr;
            if !self.is_trusted(addr) {
                break;
            }
        }
        Ok(client)
    }
}

fn parse_forwarded_entry(entry: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(trim_ows(entry)).ok()?;
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    text.parse::<SocketAddr>()
        .ok()
        .map(|s| s.ip().to_canonical())
}

fn trim_ows(mut value: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = value {
        value = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = value {
        value = rest;
    }
    value
}

// ---------------------------------------------------------------------------
// Request
// ---------------------------------------------------------------------------

/// The `X-Retell-Signature` header as received: absent, exactly one, or several
/// (rejected: never pick the first or the last).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SignatureHeader<'a> {
    /// No such header.
    #[default]
    Absent,
    /// Exactly one header line, with its raw value.
    One(&'a [u8]),
    /// The header was sent more than once.
    Several,
}

impl<'a> SignatureHeader<'a> {
    /// Classifies every value of the header, in the order received.
    pub fn from_values<I>(values: I) -> Self
    where
        I: IntoIterator<Item = &'a [u8]>,
    {
        let mut values = values.into_iter();
        match (values.next(), values.next()) {
            (None, _) => Self::Absent,
            (Some(one), None) => Self::One(one),
            (Some(_), Some(_)) => Self::Several,
        }
    }
}

/// The parts of an HTTP request the dispatcher looks at, borrowed from whatever
/// the HTTP stack hands out.
///
/// Header values are raw bytes; names are the adapter's business (they are
/// case-insensitive). Build it with [`RawRequest::new`] or [`RawRequest::post`]
/// and the `with`-style methods.
///
/// The body is the raw bytes as received (`&[u8]`): the signature covers
/// exactly those bytes, so no entry point of the core takes a parsed value or
/// a re-serialised string.
///
/// ```
/// use retell_webhooks::dispatch::RawRequest;
///
/// fn from_the_wire<'a>(body: &'a [u8], signature: &'a [u8]) -> RawRequest<'a> {
///     RawRequest::post(body).signature_values([signature])
/// }
/// # let _ = from_the_wire(b"{}", b"");
/// ```
///
/// A parsed value does not compile:
///
/// ```compile_fail
/// use retell_webhooks::dispatch::RawRequest;
///
/// let parsed = serde_json::json!({ "event": "call_ended" });
/// let _ = RawRequest::post(&parsed);
/// ```
///
/// Nor does a `String` (re-serialised JSON is not the signed bytes):
///
/// ```compile_fail
/// use retell_webhooks::dispatch::RawRequest;
///
/// let text = String::from(r#"{"event":"call_ended"}"#);
/// let _ = RawRequest::post(&text);
/// ```
#[derive(Clone, Default)]
pub struct RawRequest<'a> {
    method: &'a str,
    body: &'a [u8],
    signature: SignatureHeader<'a>,
    encoded: bool,
    content_length: Option<u64>,
    peer: Option<IpAddr>,
    forwarded_for: Vec<&'a [u8]>,
}

impl<'a> RawRequest<'a> {
    /// A request with this method (case-sensitive, as in HTTP) and body.
    #[must_use]
    pub fn new(method: &'a str, body: &'a [u8]) -> Self {
        Self {
            method,
            body,
            ..Self::default()
        }
    }

    /// A `POST` request with this body.
    #[must_use]
    pub fn post(body: &'a [u8]) -> Self {
        Self::new("POST", body)
    }

    /// Replaces the body (e.g. after reading it; the head can be checked first
    /// with [`precheck`]).
    #[must_use]
    pub fn with_body(mut self, body: &'a [u8]) -> Self {
        self.body = body;
        self
    }

    /// Sets the `X-Retell-Signature` header.
    #[must_use]
    pub fn with_signature(mut self, signature: SignatureHeader<'a>) -> Self {
        self.signature = signature;
        self
    }

    /// Sets the `X-Retell-Signature` header from all its values, in order.
    #[must_use]
    pub fn signature_values<I>(self, values: I) -> Self
    where
        I: IntoIterator<Item = &'a [u8]>,
    {
        self.with_signature(SignatureHeader::from_values(values))
    }

    /// Sets the `Content-Encoding` header from all its values. Absent, empty or
    /// `identity` (any case) means the body is not encoded.
    #[must_use]
    pub fn content_encoding_values<I>(mut self, values: I) -> Self
    where
        I: IntoIterator<Item = &'a [u8]>,
    {
        self.encoded = values.into_iter().any(|value| {
            value.split(|&b| b == b',').any(|coding| {
                let coding = trim_ows(coding);
                !coding.is_empty() && !coding.eq_ignore_ascii_case(b"identity")
            })
        });
        self
    }

    /// Sets the `Content-Length` header value, if the request had a valid one.
    #[must_use]
    pub fn with_content_length(mut self, length: Option<u64>) -> Self {
        self.content_length = length;
        self
    }

    /// Sets the TCP peer address, for the source allowlist.
    #[must_use]
    pub fn with_peer(mut self, peer: Option<IpAddr>) -> Self {
        self.peer = peer;
        self
    }

    /// Sets the `X-Forwarded-For` header values, in the order received.
    #[must_use]
    pub fn forwarded_for_values<I>(mut self, values: I) -> Self
    where
        I: IntoIterator<Item = &'a [u8]>,
    {
        self.forwarded_for = values.into_iter().collect();
        self
    }

    /// The method.
    #[must_use]
    pub fn method(&self) -> &'a str {
        self.method
    }

    /// The body.
    #[must_use]
    pub fn body(&self) -> &'a [u8] {
        self.body
    }

    /// The `Content-Length` given with [`with_content_length`](Self::with_content_length).
    #[must_use]
    pub fn content_length(&self) -> Option<u64> {
        self.content_length
    }
}

impl fmt::Debug for RawRequest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawRequest")
            .field("method", &self.method)
            .field("body_len", &self.body.len())
            .field(
                "signature",
                &match self.signature {
                    SignatureHeader::Absent => "absent",
                    SignatureHeader::One(_) => "one [REDACTED]",
                    SignatureHeader::Several => "several",
                },
            )
            .field("encoded", &self.encoded)
            .field("content_length", &self.content_length)
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

// ---------------------------------------------------------------------------
// Response and outcome
// ---------------------------------------------------------------------------

/// The HTTP response to send: status, optional body and its content type, and
/// an `Allow` header for `405`.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookResponse {
    status: u16,
    content_type: Option<&'static str>,
    allow: Option<&'static str>,
    body: Vec<u8>,
}

impl WebhookResponse {
    fn empty(status: u16) -> Self {
        Self {
            status,
            content_type: None,
            allow: None,
            body: Vec::new(),
        }
    }

    fn text(status: u16, body: &[u8]) -> Self {
        Self {
            status,
            content_type: Some(TEXT_PLAIN),
            allow: None,
            body: body.to_vec(),
        }
    }

    /// The status code.
    #[must_use]
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The body (empty for `204`).
    #[must_use]
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// Takes the body out.
    #[must_use]
    pub fn into_body(self) -> Vec<u8> {
        self.body
    }

    /// The `Content-Type` of the body, if there is one.
    #[must_use]
    pub fn content_type(&self) -> Option<&'static str> {
        self.content_type
    }

    /// Every header to set, as `(lower-case name, value)` pairs.
    pub fn headers(&self) -> impl Iterator<Item = (&'static str, &'static str)> + use<> {
        let content_type = self.content_type.map(|v| ("content-type", v));
        let allow = self.allow.map(|v| ("allow", v));
        content_type.into_iter().chain(allow)
    }
}

impl fmt::Debug for WebhookResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookResponse")
            .field("status", &self.status)
            .field("content_type", &self.content_type)
            .field("body_len", &self.body.len())
            .finish_non_exhaustive()
    }
}

/// Why a verified body was refused with `400`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BadBody {
    /// The body is not valid UTF-8.
    #[error("body is not valid UTF-8 (first invalid byte at offset {valid_up_to})")]
    NotUtf8 {
        /// Length of the valid prefix.
        valid_up_to: usize,
    },
    /// The body is not JSON.
    #[error("body is not valid JSON (line {line}, column {column})")]
    NotJson {
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
    },
    /// The body is JSON but not an object.
    #[error("body is JSON but not an object")]
    NotObject,
    /// The JSON object does not match the expected model.
    #[error("body does not match the {route} model: {error}")]
    Invalid {
        /// The route whose model failed.
        route: Route,
        /// Where and why (JSON path, position; never a value from the body).
        error: ParseError,
    },
}

impl BadBody {
    /// Classifies a typed-parse failure of a verified body: not UTF-8, not JSON,
    /// not an object, or an object the models cannot read
    /// ([`BadBody::Invalid`]). Adapters' typed extractors use it so their `400`s
    /// carry the same reasons as [`dispatch`].
    #[must_use]
    pub fn from_parse_error(route: Route, body: &[u8], error: ParseError) -> Self {
        match error.kind() {
            ParseErrorKind::InvalidUtf8 => Self::NotUtf8 {
                valid_up_to: std::str::from_utf8(body)
                    .err()
                    .map_or(0, |e| e.valid_up_to()),
            },
            ParseErrorKind::Syntax | ParseErrorKind::Eof => Self::NotJson {
                line: error.line(),
                column: error.column(),
            },
            // A shape error can hide a syntax error further on (the models stop
            // at the first problem, e.g. a missing `event` before trailing
            // garbage): one syntax-only pass, on this cold path only, tells.
            _ => match check_json_object(body) {
                Err(why) => why,
                Ok(()) => Self::Invalid { route, error },
            },
        }
    }
}

/// Why the request got its status: one value per request, for one log line.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason {
    /// A handler returned `Ok` for an event (`204`).
    Handled,
    /// A handler answered an inbound webhook or a function call (`200`).
    Answered,
    /// An event unknown to this crate was acknowledged by `on_unknown` (`204`).
    UnknownEvent,
    /// `on_unparsed` accepted a body the models could not read (`204`).
    FallbackAccepted,
    /// The event was already handled successfully; the handler was not called
    /// again (`204`, deduplication on).
    Duplicate,
    /// The same event is being handled by another request (`409`, deduplication
    /// on); Retell retries later.
    InFlight,
    /// The deduplication store failed (`503`); its message.
    DedupeFailed(String),
    /// The source address is not allowed (`403`).
    Forbidden(SourceRejection),
    /// The method is not `POST` (`405`).
    MethodNotAllowed,
    /// The body has a `Content-Encoding` other than `identity` (`415`).
    UnsupportedEncoding,
    /// The adapter could not read the whole body (client went away, malformed
    /// chunked encoding, `Content-Length` longer than what was sent) (`400`).
    BodyReadFailed,
    /// The body (or its `Content-Length`) is over the limit (`413`).
    PayloadTooLarge {
        /// The configured limit in bytes.
        limit: usize,
    },
    /// Signature verification failed (`401`). The reason is for logs only.
    Unauthorized(VerifyError),
    /// The verified body is unusable (`400`).
    BadRequest(BadBody),
    /// The handler returned an error (`500`); its `Display` text.
    HandlerFailed(String),
    /// The handler panicked (`500`).
    HandlerPanicked,
    /// The handler's answer could not be serialized (`500`).
    AnswerNotSerializable,
    /// The handler did not finish within the deadline (`503`).
    DeadlineExceeded,
    /// The adapter has no verifier or handler configured (`500`, fail closed).
    NotConfigured,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Handled => f.write_str("handled"),
            Self::Answered => f.write_str("answered"),
            Self::UnknownEvent => f.write_str("unknown event acknowledged"),
            Self::FallbackAccepted => f.write_str("unparsed body accepted by fallback"),
            Self::Duplicate => f.write_str("duplicate of an event already handled"),
            Self::InFlight => f.write_str("duplicate of an event still being handled"),
            Self::DedupeFailed(why) => write!(f, "dedupe store failed: {why}"),
            Self::Forbidden(why) => write!(f, "forbidden: {why}"),
            Self::MethodNotAllowed => f.write_str("method not allowed (POST only)"),
            Self::UnsupportedEncoding => {
                f.write_str("unsupported Content-Encoding (only identity is accepted)")
            }
            Self::BodyReadFailed => f.write_str("request body could not be read"),
            Self::PayloadTooLarge { limit } => write!(f, "body over the {limit}-byte limit"),
            Self::Unauthorized(why) => write!(f, "unauthorized: {why}"),
            Self::BadRequest(why) => write!(f, "bad request: {why}"),
            Self::HandlerFailed(why) => write!(f, "handler error: {why}"),
            Self::HandlerPanicked => f.write_str("handler panicked"),
            Self::AnswerNotSerializable => f.write_str("handler answer could not be serialized"),
            Self::DeadlineExceeded => f.write_str("handler deadline exceeded"),
            Self::NotConfigured => f.write_str("receiver not configured (no verifier or handler)"),
        }
    }
}

/// What happened to one request: enough for one log line, with no body, header
/// value or key in it.
///
/// `Display` renders `status=204 route=events event=call_ended call_id=call_1
/// reason="handled"`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Outcome {
    /// The status sent.
    pub status: u16,
    /// Why.
    pub reason: Reason,
    /// The route kind.
    pub route: Route,
    /// The `event` name, once the body was verified and parsed.
    pub event: Option<String>,
    /// The call id, when the event has one.
    pub call_id: Option<String>,
    /// The chat id, when the event has one.
    pub chat_id: Option<String>,
    /// How many parts of the parsed body are kept only as raw JSON (unknown
    /// keys, enum values and item kinds, fallbacks): non-zero when Retell
    /// sends something this version does not model. The paths are in the
    /// parsed value's `untyped_paths()`.
    pub untyped: usize,
    /// Set on a `401` when the signature digest has mismatched
    /// [`MISMATCH_ALERT_THRESHOLD`] times or more in a row (the value is the
    /// count), at most once per [`MISMATCH_ALERT_INTERVAL_MS`]: the key is
    /// probably not the Retell API key with the webhook badge, and every event
    /// is being lost after Retell's retries. Log it as an error.
    pub key_alert: Option<u64>,
}

impl Outcome {
    /// Whether the status is 2xx (Retell will not retry).
    #[must_use]
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "status={} route={}", self.status, self.route)?;
        for (name, value) in [
            ("event", &self.event),
            ("call_id", &self.call_id),
            ("chat_id", &self.chat_id),
        ] {
            if let Some(value) = value {
                write!(f, " {name}=")?;
                write_log_value(f, value)?;
            }
        }
        if self.untyped > 0 {
            write!(f, " untyped={}", self.untyped)?;
        }
        write!(f, " reason=\"{}\"", self.reason)?;
        if let Some(streak) = self.key_alert {
            write!(
                f,
                " alert=\"{streak} signature mismatches in a row: check that the key is the Retell API key with the webhook badge\""
            )?;
        }
        Ok(())
    }
}

/// Writes a value taken from a verified body into a log line: plain ids as
/// they are, anything else quoted with control characters, quotes and
/// backslashes escaped, so a crafted id cannot forge or split log lines.
fn write_log_value(f: &mut fmt::Formatter<'_>, value: &str) -> fmt::Result {
    let plain = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'));
    if plain {
        f.write_str(value)
    } else {
        write!(f, "\"{}\"", value.escape_debug())
    }
}

/// The result of [`dispatch`] (or [`precheck`]): the response to send and the
/// outcome to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dispatched {
    /// Send this.
    pub response: WebhookResponse,
    /// Log this.
    pub outcome: Outcome,
}

impl Dispatched {
    fn new(route: Route, reason: Reason, response: WebhookResponse) -> Self {
        Self {
            outcome: Outcome {
                status: response.status,
                reason,
                route,
                event: None,
                call_id: None,
                chat_id: None,
                untyped: 0,
                key_alert: None,
            },
            response,
        }
    }

    /// The response for `reason`, as the dispatcher builds it. Adapters use it
    /// for outcomes they detect themselves (a body over the limit while reading,
    /// a missing configuration, an expired deadline), so every framework sends
    /// the same bytes.
    #[must_use]
    pub fn from_reason(route: Route, reason: Reason) -> Self {
        let response = match &reason {
            Reason::Handled
            | Reason::UnknownEvent
            | Reason::FallbackAccepted
            | Reason::Duplicate => WebhookResponse::empty(204),
            Reason::InFlight => WebhookResponse::text(409, b"conflict: already in progress\n"),
            Reason::Answered => WebhookResponse::empty(200),
            Reason::Forbidden(_) => WebhookResponse::text(403, b"forbidden\n"),
            Reason::MethodNotAllowed => WebhookResponse {
                allow: Some("POST"),
                ..WebhookResponse::text(405, b"method not allowed\n")
            },
            Reason::UnsupportedEncoding => {
                WebhookResponse::text(415, b"unsupported content encoding\n")
            }
            Reason::PayloadTooLarge { .. } => WebhookResponse::text(413, b"payload too large\n"),
            Reason::Unauthorized(_) => WebhookResponse::text(401, UNAUTHORIZED_BODY),
            Reason::BadRequest(_) | Reason::BodyReadFailed => {
                WebhookResponse::text(400, b"bad request\n")
            }
            Reason::HandlerFailed(_)
            | Reason::HandlerPanicked
            | Reason::AnswerNotSerializable
            | Reason::NotConfigured => WebhookResponse::text(500, b"internal server error\n"),
            Reason::DeadlineExceeded | Reason::DedupeFailed(_) => {
                WebhookResponse::text(503, b"service unavailable\n")
            }
        };
        Self::new(route, reason, response)
    }

    fn with_ids(mut self, ids: &Ids) -> Self {
        self.outcome.event.clone_from(&ids.event);
        self.outcome.call_id.clone_from(&ids.call_id);
        self.outcome.chat_id.clone_from(&ids.chat_id);
        self.outcome.untyped = ids.untyped;
        self
    }
}

// ---------------------------------------------------------------------------
// Entry points
// ---------------------------------------------------------------------------

/// Checks everything that does not need the body: source allowlist (`403`),
/// method (`405`), `Content-Encoding` (`415`) and `Content-Length` against the
/// limit (`413`). Returns `Some` with the rejection, `None` to go on.
///
/// Adapters call it before reading the body; [`dispatch`] runs it again, so
/// calling it is an optimisation, never a requirement.
#[must_use]
pub fn precheck(
    config: &ReceiverConfig,
    route: Route,
    request: &RawRequest<'_>,
) -> Option<Dispatched> {
    if let Some(allowlist) = &config.source_allowlist
        && let Err(why) = allowlist.check(request.peer, request.forwarded_for.iter().copied())
    {
        return Some(Dispatched::from_reason(route, Reason::Forbidden(why)));
    }
    if request.method != "POST" {
        return Some(Dispatched::from_reason(route, Reason::MethodNotAllowed));
    }
    if request.encoded {
        return Some(Dispatched::from_reason(route, Reason::UnsupportedEncoding));
    }
    let limit = config.body_limit;
    let declared_over = request
        .content_length
        .is_some_and(|len| u64::try_from(limit).is_ok_and(|limit| len > limit));
    if declared_over {
        return Some(Dispatched::from_reason(
            route,
            Reason::PayloadTooLarge { limit },
        ));
    }
    None
}

/// Runs every check up to and including "the verified body is a JSON object":
/// steps 1–6 of the [module docs](self) except the typed parse. `Ok(())` means
/// the body is authentic and safe to parse; `Err` carries the rejection to send
/// (boxed: it is the cold path).
///
/// Adapters' raw-body extractors use it, so they answer like [`dispatch`].
/// [`dispatch`] and the typed extractors skip the separate JSON pass: their
/// typed parse rejects the same bodies ([`BadBody::from_parse_error`]), so the
/// body is parsed once.
pub fn authenticate(
    verifier: &Verifier,
    config: &ReceiverConfig,
    route: Route,
    request: &RawRequest<'_>,
) -> Result<(), Box<Dispatched>> {
    authenticate_signature(verifier, config, route, request)?;
    // The body is authentic from here on; only now is it parsed.
    check_json_object(request.body)
        .map_err(|why| Box::new(Dispatched::from_reason(route, Reason::BadRequest(why))))
}

/// [`authenticate`] without the JSON check: prechecks, body size and signature.
pub(crate) fn authenticate_signature(
    verifier: &Verifier,
    config: &ReceiverConfig,
    route: Route,
    request: &RawRequest<'_>,
) -> Result<(), Box<Dispatched>> {
    if let Some(rejected) = precheck(config, route, request) {
        return Err(Box::new(rejected));
    }
    let reject = |reason| Box::new(Dispatched::from_reason(route, reason));
    let limit = config.body_limit;
    if request.body.len() > limit {
        return Err(reject(Reason::PayloadTooLarge { limit }));
    }
    let verified = verify(verifier, config, request);
    let alert = config
        .mismatches
        .record(&verified, config.now_ms().unwrap_or(0));
    if let Err(why) = verified {
        let mut rejected = reject(Reason::Unauthorized(why));
        rejected.outcome.key_alert = alert;
        return Err(rejected);
    }
    Ok(())
}

/// Handles one request from start to finish; see the [module docs](self) for the
/// order of checks and the status of each outcome.
///
/// `deadline` bounds the handler only (not verification or parsing): when it
/// completes first, the handler future is dropped and the answer is `503`. It
/// is first polled when the handler starts, so a lazy timer such as
/// `async move { tokio::time::sleep(deadline).await }` gives the handler the
/// whole of `deadline` (a bare `tokio::time::sleep` counts from its creation);
/// pass `std::future::pending()` for no deadline.
///
/// Never panics; a panicking handler is caught and answered with `500`.
pub async fn dispatch<H, D>(
    verifier: &Verifier,
    handler: &H,
    route: Route,
    config: &ReceiverConfig,
    request: &RawRequest<'_>,
    deadline: D,
) -> Dispatched
where
    H: WebhookHandler + ?Sized,
    D: Future<Output = ()> + Send,
{
    if let Err(rejected) = authenticate_signature(verifier, config, route, request) {
        return *rejected;
    }
    // The body is authentic from here on; only now is it parsed, once.
    let body = request.body;
    #[cfg(test)]
    JSON_PARSES.with(|n| n.set(n.get() + 1));
    let parsed = match route {
        Route::Events => Incoming::from_slice(body).map(Work::Incoming),
        Route::Function => FunctionCall::from_slice(body).map(Work::Function),
    };
    let (work, ids) = match parsed {
        Ok(work) => {
            let ids = work.ids();
            (work, ids)
        }
        Err(error) => {
            let ids = Ids::of_error(&error);
            match BadBody::from_parse_error(route, body, error) {
                // Valid JSON object that the models cannot read: give the
                // handler's raw fallback a chance before refusing it.
                BadBody::Invalid {
                    route: Route::Events,
                    error,
                } => (Work::Unparsed(error), ids),
                why => {
                    return Dispatched::from_reason(route, Reason::BadRequest(why)).with_ids(&ids);
                }
            }
        }
    };
    let claim = match claim(config, &work, body).await {
        Ok(claim) => claim,
        Err(reason) => return Dispatched::from_reason(route, reason).with_ids(&ids),
    };
    // The handler's error is rendered (and dropped) inside `CatchUnwind` too:
    // its `Display` is handler code as well.
    let run = CatchUnwind::new(async move {
        run_handler(handler, work, body)
            .await
            .map_err(|error| error.to_string())
    });
    let result = match race(run, deadline).await {
        Raced::Deadline => Err(Reason::DeadlineExceeded),
        Raced::Done(Err(Panicked)) => Err(Reason::HandlerPanicked),
        Raced::Done(Ok(Err(message))) => Err(Reason::HandlerFailed(message)),
        Raced::Done(Ok(Ok(answer))) => Ok(answer),
    };
    let done = match result {
        Err(reason) => Dispatched::from_reason(route, reason),
        Ok(Answer::Ack(reason)) => Dispatched::from_reason(route, reason),
        Ok(Answer::Declined(error)) => {
            Dispatched::from_reason(route, Reason::BadRequest(BadBody::Invalid { route, error }))
        }
        Ok(Answer::NotSerializable) => {
            Dispatched::from_reason(route, Reason::AnswerNotSerializable)
        }
        Ok(Answer::Body {
            bytes,
            content_type,
        }) => Dispatched::new(
            route,
            Reason::Answered,
            WebhookResponse {
                status: 200,
                content_type: Some(content_type),
                allow: None,
                body: bytes,
            },
        ),
    };
    if let Some((store, key, ticket)) = claim {
        // A store failure (or panic) here only weakens deduplication (a later
        // delivery is processed again); the answer stands.
        let success = done.outcome.is_success();
        let _ = CatchUnwind::new(async {
            if success {
                store.finish(&key, ticket).await
            } else {
                store.release(&key, ticket).await
            }
        })
        .await;
    }
    done.with_ids(&ids)
}

type Claim<'a> = Option<(&'a Arc<dyn DedupeStore>, DedupeKey, Ticket)>;

/// With deduplication on, claims the event's key: `Ok(Some)` to process it,
/// `Ok(None)` when deduplication does not apply, `Err` with the answer for a
/// duplicate or a store failure.
async fn claim<'a>(
    config: &'a ReceiverConfig,
    work: &Work,
    body: &[u8],
) -> Result<Claim<'a>, Reason> {
    let Some(store) = &config.dedupe else {
        return Ok(None);
    };
    let key = match work {
        Work::Incoming(incoming) => DedupeKey::for_incoming(incoming, body),
        Work::Unparsed(_) => Some(DedupeKey::of_body(body)),
        Work::Function(_) => None,
    };
    let Some(key) = key else {
        return Ok(None);
    };
    let lease = config
        .handler_deadline
        .saturating_add(Duration::from_secs(1));
    // The store is user code too: a panic in it is a store failure (`503`).
    let begun = CatchUnwind::new(async { store.begin(&key, lease).await }).await;
    match begun {
        Ok(Ok(Begin::Fresh(ticket))) => Ok(Some((store, key, ticket))),
        Ok(Ok(Begin::InFlight)) => Err(Reason::InFlight),
        Ok(Ok(Begin::Done)) => Err(Reason::Duplicate),
        Ok(Err(error)) => Err(Reason::DedupeFailed(error.0)),
        Err(Panicked) => Err(Reason::DedupeFailed("the store panicked".to_owned())),
    }
}

fn verify(
    verifier: &Verifier,
    config: &ReceiverConfig,
    request: &RawRequest<'_>,
) -> Result<(), VerifyError> {
    let header = match request.signature {
        SignatureHeader::Absent => return Err(VerifyError::MissingSignature),
        SignatureHeader::Several => return Err(VerifyError::DuplicateSignature),
        SignatureHeader::One(value) => value,
    };
    let now_ms = config.now_ms()?;
    verifier.verify_bytes_at(request.body, header, now_ms)
}

#[derive(Default)]
struct Ids {
    event: Option<String>,
    call_id: Option<String>,
    chat_id: Option<String>,
    untyped: usize,
}

impl Ids {
    fn of_error(error: &ParseError) -> Self {
        Self {
            event: error.event().map(str::to_owned),
            call_id: error.call_id().map(str::to_owned),
            chat_id: error.chat_id().map(str::to_owned),
            untyped: 0,
        }
    }

    fn of_incoming(incoming: &Incoming) -> Self {
        match incoming {
            Incoming::Event(event) => Self {
                event: Some(event.event_name().to_owned()),
                call_id: event.call_id().map(str::to_owned),
                chat_id: event.chat_id().map(str::to_owned),
                untyped: event.untyped_paths().len(),
            },
            Incoming::CallInbound(request) => Self {
                event: Some("call_inbound".to_owned()),
                call_id: request.call_inbound.call_id.clone(),
                untyped: request.untyped_paths().len(),
                ..Self::default()
            },
            Incoming::ChatInbound(request) => Self {
                event: Some("chat_inbound".to_owned()),
                chat_id: request.chat_inbound.chat_id.clone(),
                untyped: request.untyped_paths().len(),
                ..Self::default()
            },
        }
    }
}

enum Work {
    Incoming(Incoming),
    Unparsed(ParseError),
    Function(FunctionCall),
}

impl Work {
    fn ids(&self) -> Ids {
        match self {
            Work::Incoming(incoming) => Ids::of_incoming(incoming),
            Work::Function(call) => Ids {
                event: None,
                call_id: call.call().map(|c| c.call_id.clone()),
                chat_id: call.chat().map(|c| c.chat_id.clone()),
                untyped: call.untyped_paths().len(),
            },
            Work::Unparsed(error) => Ids::of_error(error),
        }
    }
}

enum Answer {
    Ack(Reason),
    Declined(ParseError),
    Body {
        bytes: Vec<u8>,
        content_type: &'static str,
    },
    NotSerializable,
}

async fn run_handler<H>(handler: &H, work: Work, body: &[u8]) -> Result<Answer, H::Error>
where
    H: WebhookHandler + ?Sized,
{
    let handled = Answer::Ack(Reason::Handled);
    let event = match work {
        Work::Incoming(Incoming::Event(event)) => event,
        Work::Incoming(Incoming::CallInbound(request)) => {
            let answer = handler.on_call_inbound(request).await?;
            return Ok(json_answer(&answer));
        }
        Work::Incoming(Incoming::ChatInbound(request)) => {
            let answer = handler.on_chat_inbound(request).await?;
            return Ok(json_answer(&answer));
        }
        Work::Function(call) => {
            let answer = handler.on_function_call(call).await?;
            return Ok(Answer::Body {
                bytes: answer.to_body(),
                content_type: answer.content_type(),
            });
        }
        Work::Unparsed(error) => {
            return Ok(match handler.on_unparsed(body, &error).await? {
                Fallback::Accepted => Answer::Ack(Reason::FallbackAccepted),
                Fallback::Declined => Answer::Declined(error),
            });
        }
    };
    match event {
        WebhookEvent::CallStarted(e) => handler.on_call_started(e).await?,
        WebhookEvent::CallEnded(e) => handler.on_call_ended(e).await?,
        WebhookEvent::CallAnalyzed(e) => handler.on_call_analyzed(e).await?,
        WebhookEvent::TranscriptUpdated(e) => handler.on_transcript_updated(e).await?,
        WebhookEvent::TransferStarted(e) => handler.on_transfer_started(e).await?,
        WebhookEvent::TransferBridged(e) => handler.on_transfer_bridged(e).await?,
        WebhookEvent::TransferCancelled(e) => handler.on_transfer_cancelled(e).await?,
        WebhookEvent::TransferEnded(e) => handler.on_transfer_ended(e).await?,
        WebhookEvent::ChatStarted(e) => handler.on_chat_started(e).await?,
        WebhookEvent::ChatEnded(e) => handler.on_chat_ended(e).await?,
        WebhookEvent::ChatAnalyzed(e) => handler.on_chat_analyzed(e).await?,
        WebhookEvent::Unknown(e) => {
            handler.on_unknown(e).await?;
            return Ok(Answer::Ack(Reason::UnknownEvent));
        }
    }
    Ok(handled)
}

fn json_answer(answer: &InboundResponse) -> Answer {
    match serde_json::to_vec(answer) {
        Ok(bytes) => Answer::Body {
            bytes,
            content_type: APPLICATION_JSON,
        },
        Err(_) => Answer::NotSerializable,
    }
}

// ---------------------------------------------------------------------------
// Body checks (only ever called on verified bytes)
// ---------------------------------------------------------------------------

#[cfg(test)]
thread_local! {
    /// Counts calls of the JSON parser on this thread, so tests can prove that
    /// unverified bodies are never parsed.
    static JSON_PARSES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Calls of the JSON parser on this thread so far (test builds only).
#[cfg(test)]
pub(crate) fn json_parses() -> usize {
    JSON_PARSES.with(std::cell::Cell::get)
}

/// Whole-body UTF-8 check (serde_json would accept invalid bytes inside values
/// the models skip), then one pass of the JSON parser that accepts only an
/// object and builds nothing.
fn check_json_object(body: &[u8]) -> Result<(), BadBody> {
    if let Err(e) = std::str::from_utf8(body) {
        return Err(BadBody::NotUtf8 {
            valid_up_to: e.valid_up_to(),
        });
    }
    #[cfg(test)]
    JSON_PARSES.with(|n| n.set(n.get() + 1));
    match serde_json::from_slice::<AnyObject>(body) {
        Ok(AnyObject) => Ok(()),
        Err(e) if e.classify() == serde_json::error::Category::Data => Err(BadBody::NotObject),
        Err(e) => Err(BadBody::NotJson {
            line: e.line(),
            column: e.column(),
        }),
    }
}

/// Any JSON object, content ignored.
struct AnyObject;

impl<'de> serde::Deserialize<'de> for AnyObject {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(AnyObjectVisitor)
    }
}

struct AnyObjectVisitor;

impl<'de> serde::de::Visitor<'de> for AnyObjectVisitor {
    type Value = AnyObject;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<AnyObject, A::Error> {
        while map
            .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
            .is_some()
        {}
        Ok(AnyObject)
    }
}

// ---------------------------------------------------------------------------
// Futures plumbing (no runtime needed)
// ---------------------------------------------------------------------------

struct Panicked;

/// Polls the inner future inside `catch_unwind`, turning a panic into
/// `Err(Panicked)`. After a panic it is never polled again.
///
/// Dropping it drops the inner future inside `catch_unwind` as well: a
/// handler cut short by the deadline runs its destructors then.
struct CatchUnwind<F> {
    inner: Option<Pin<Box<F>>>,
}

impl<F: Future> CatchUnwind<F> {
    fn new(inner: F) -> Self {
        Self {
            inner: Some(Box::pin(inner)),
        }
    }
}

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, Panicked>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(inner) = self.get_mut().inner.as_mut() else {
            return Poll::Ready(Err(Panicked));
        };
        match catch_unwind(AssertUnwindSafe(|| inner.as_mut().poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(value)) => Poll::Ready(Ok(value)),
            Err(_payload) => Poll::Ready(Err(Panicked)),
        }
    }
}

impl<F> Drop for CatchUnwind<F> {
    fn drop(&mut self) {
        let inner = self.inner.take();
        let _ = catch_unwind(AssertUnwindSafe(move || drop(inner)));
    }
}

enum Raced<T> {
    Done(T),
    Deadline,
}

/// Runs `work` until it completes or `deadline` does, whichever is first
/// (`work` wins a tie).
async fn race<F, D>(work: F, deadline: D) -> Raced<F::Output>
where
    F: Future,
    D: Future<Output = ()>,
{
    let mut work = pin!(work);
    let mut deadline = pin!(deadline);
    poll_fn(move |cx| {
        if let Poll::Ready(value) = work.as_mut().poll(cx) {
            return Poll::Ready(Raced::Done(value));
        }
        if deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Raced::Deadline);
        }
        Poll::Pending
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Waker;

    type IsVerifyError = fn(&VerifyError) -> bool;
    type IsBadBody = fn(&BadBody) -> bool;

    const KEY: &str = "key_dispatch_test";
    const NOW: u64 = 1_785_423_600_000;
    const CALL_ENDED: &[u8] = br#"{"event":"call_ended","call":{"call_id":"call_1"}}"#;

    /// Polls a future to completion on this thread (the futures here never wait
    /// on I/O, so a bounded loop with a no-op waker is enough).
    fn block_on<F: Future>(f: F) -> F::Output {
        let mut f = pin!(f);
        let mut cx = Context::from_waker(Waker::noop());
        for _ in 0..1_000 {
            if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
        }
        panic!("future did not complete");
    }

    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Mode {
        Ok,
        Fail,
        Panic,
        Hang,
        AcceptUnparsed,
    }

    struct Counting {
        mode: Mode,
        calls: AtomicUsize,
        unknown: AtomicUsize,
        unparsed: AtomicUsize,
    }

    impl Counting {
        fn new(mode: Mode) -> Self {
            Self {
                mode,
                calls: AtomicUsize::new(0),
                unknown: AtomicUsize::new(0),
                unparsed: AtomicUsize::new(0),
            }
        }

        fn calls(&self) -> usize {
            self.calls.load(Ordering::SeqCst)
        }

        async fn act(&self) -> Result<(), String> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            match self.mode {
                Mode::Ok | Mode::AcceptUnparsed => Ok(()),
                Mode::Fail => Err("database unavailable".to_owned()),
                Mode::Panic => panic!("handler bug"),
                Mode::Hang => std::future::pending().await,
            }
        }
    }

    impl WebhookHandler for Counting {
        type Error = String;

        async fn on_call_ended(&self, _event: CallEvent) -> Result<(), String> {
            self.act().await
        }

        async fn on_unknown(&self, _event: UnknownEvent) -> Result<(), String> {
            self.unknown.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }

        async fn on_call_inbound(
            &self,
            _request: InboundCallRequest,
        ) -> Result<InboundResponse, String> {
            self.act().await?;
            Ok(InboundResponse::call())
        }

        async fn on_function_call(&self, _call: FunctionCall) -> Result<FunctionResponse, String> {
            self.act().await?;
            Ok(FunctionResponse::text("booked"))
        }

        async fn on_unparsed(&self, _body: &[u8], _error: &ParseError) -> Result<Fallback, String> {
            self.unparsed.fetch_add(1, Ordering::SeqCst);
            Ok(if self.mode == Mode::AcceptUnparsed {
                Fallback::Accepted
            } else {
                Fallback::Declined
            })
        }
    }

    /// Handler that keeps every default.
    struct Defaults;

    impl WebhookHandler for Defaults {
        type Error = std::convert::Infallible;
    }

    fn config() -> ReceiverConfig {
        ReceiverConfig::new().with_clock(|| NOW)
    }

    fn verifier() -> Verifier {
        Verifier::new(KEY).unwrap()
    }

    fn run_with<H: WebhookHandler>(
        handler: &H,
        route: Route,
        config: &ReceiverConfig,
        request: &RawRequest<'_>,
    ) -> Dispatched {
        block_on(dispatch(
            &verifier(),
            handler,
            route,
            config,
            request,
            std::future::pending(),
        ))
    }

    fn run<H: WebhookHandler>(handler: &H, request: &RawRequest<'_>) -> Dispatched {
        run_with(handler, Route::Events, &config(), request)
    }

    fn signed(body: &[u8]) -> String {
        sign(body, KEY, NOW)
    }

    #[test]
    fn defaults_are_pinned() {
        let c = ReceiverConfig::default();
        assert_eq!(c.body_limit(), 8_388_608);
        assert_eq!(DEFAULT_BODY_LIMIT, 8_388_608);
        assert_eq!(c.handler_deadline(), Duration::from_secs(9));
        assert!(c.source_allowlist().is_none());
        assert!(c.now_ms().unwrap() > 1_600_000_000_000);
        assert_eq!(config().now_ms().unwrap(), NOW);
        let debug = format!("{c:?}");
        assert!(
            debug.contains("8388608") && debug.contains("system"),
            "{debug}"
        );
    }

    #[test]
    fn futures_are_send() {
        fn assert_send<T: Send>(_: &T) {}
        let v = verifier();
        let c = config();
        let request = RawRequest::post(CALL_ENDED);
        let h = Counting::new(Mode::Ok);
        let fut = dispatch(&v, &h, Route::Events, &c, &request, std::future::pending());
        assert_send(&fut);
    }

    #[test]
    fn valid_event_is_204_and_calls_the_handler_once() {
        let h = Counting::new(Mode::Ok);
        let sig = signed(CALL_ENDED);
        let done = run(
            &h,
            &RawRequest::post(CALL_ENDED).signature_values([sig.as_bytes()]),
        );
        assert_eq!(done.response.status(), 204);
        assert!(done.response.body().is_empty());
        assert_eq!(done.response.content_type(), None);
        assert_eq!(done.outcome.reason, Reason::Handled);
        assert_eq!(done.outcome.event.as_deref(), Some("call_ended"));
        assert_eq!(done.outcome.call_id.as_deref(), Some("call_1"));
        assert!(done.outcome.is_success());
        assert_eq!(h.calls(), 1);
        assert_eq!(
            done.outcome.to_string(),
            "status=204 route=events event=call_ended call_id=call_1 reason=\"handled\""
        );
    }

    #[test]
    fn ids_from_the_body_cannot_forge_log_lines() {
        let h = Counting::new(Mode::Ok);
        let body = br#"{"event":"call_ended","call":{"call_id":"c1\nstatus=200 reason=\"ok\""}}"#;
        let sig = signed(body);
        let done = run(
            &h,
            &RawRequest::post(body).signature_values([sig.as_bytes()]),
        );
        assert_eq!(done.response.status(), 204);
        let line = done.outcome.to_string();
        assert!(!line.contains('\n'), "{line}");
        assert!(
            line.contains(r#"call_id="c1\nstatus=200 reason=\"ok\"""#),
            "{line}"
        );
    }

    #[test]
    fn non_post_is_405_with_allow_header() {
        for method in ["GET", "PUT", "DELETE", "post", "HEAD"] {
            let h = Counting::new(Mode::Ok);
            let sig = signed(CALL_ENDED);
            let request = RawRequest::new(method, CALL_ENDED).signature_values([sig.as_bytes()]);
            let done = run(&h, &request);
            assert_eq!(done.response.status(), 405, "{method}");
            assert_eq!(done.outcome.reason, Reason::MethodNotAllowed);
            assert!(done.response.headers().any(|h| h == ("allow", "POST")));
            assert_eq!(h.calls(), 0);
        }
    }

    #[test]
    fn content_encoding_other_than_identity_is_415() {
        let sig = signed(CALL_ENDED);
        for (values, status) in [
            (vec![&b"gzip"[..]], 415),
            (vec![&b"GZIP"[..]], 415),
            (vec![&b"identity, br"[..]], 415),
            (vec![&b"identity"[..], &b"deflate"[..]], 415),
            (vec![&b"identity"[..]], 204),
            (vec![&b" Identity "[..]], 204),
            (vec![&b""[..]], 204),
            (vec![], 204),
        ] {
            let h = Counting::new(Mode::Ok);
            let request = RawRequest::post(CALL_ENDED)
                .signature_values([sig.as_bytes()])
                .content_encoding_values(values.iter().copied());
            let done = run(&h, &request);
            assert_eq!(done.response.status(), status, "{values:?}");
            assert_eq!(h.calls(), usize::from(status == 204));
        }
    }

    #[test]
    fn body_over_limit_is_413_from_length_or_content_length() {
        let limit = CALL_ENDED.len();
        let small = config().with_body_limit(limit);
        let sig = signed(CALL_ENDED);
        let h = Counting::new(Mode::Ok);
        // Exactly at the limit passes.
        let at = RawRequest::post(CALL_ENDED).signature_values([sig.as_bytes()]);
        assert_eq!(
            run_with(&h, Route::Events, &small, &at).response.status(),
            204
        );
        // One byte more, even correctly signed, does not reach the handler.
        let mut bigger = CALL_ENDED.to_vec();
        bigger.push(b' ');
        let sig2 = signed(&bigger);
        let over = RawRequest::post(&bigger).signature_values([sig2.as_bytes()]);
        let done = run_with(&h, Route::Events, &small, &over);
        assert_eq!(done.response.status(), 413);
        assert_eq!(done.outcome.reason, Reason::PayloadTooLarge { limit });
        // A declared Content-Length over the limit is refused by the precheck.
        let declared = RawRequest::post(b"").with_content_length(Some(limit as u64 + 1));
        let pre = precheck(&small, Route::Events, &declared).unwrap();
        assert_eq!(pre.response.status(), 413);
        let fine = RawRequest::post(b"").with_content_length(Some(limit as u64));
        assert!(precheck(&small, Route::Events, &fine).is_none());
        assert_eq!(h.calls(), 1);
    }

    #[test]
    fn every_verification_failure_is_the_same_401() {
        let h = Counting::new(Mode::Ok);
        let good = signed(CALL_ENDED);
        let stale = sign(CALL_ENDED, KEY, NOW - 300_001);
        let future = sign(CALL_ENDED, KEY, NOW + 300_001);
        let seconds = sign(CALL_ENDED, KEY, NOW / 1000);
        let wrong_key = sign(CALL_ENDED, "another_key", NOW);
        let tampered = sign(br#"{"event":"call_started"}"#, KEY, NOW);
        // Two values merged into one line by a proxy.
        let merged = format!("{good}, {good}");
        let cases: Vec<(SignatureHeader<'_>, IsVerifyError)> = vec![
            (SignatureHeader::Absent, |e| {
                *e == VerifyError::MissingSignature
            }),
            (SignatureHeader::One(b""), |e| {
                *e == VerifyError::MissingSignature
            }),
            (
                SignatureHeader::from_values([good.as_bytes(), good.as_bytes()]),
                |e| *e == VerifyError::DuplicateSignature,
            ),
            (SignatureHeader::One(merged.as_bytes()), |e| {
                matches!(
                    e,
                    VerifyError::Malformed(_) | VerifyError::SignatureTooLong { .. }
                )
            }),
            (SignatureHeader::One(b"v=1,d=zz"), |e| {
                matches!(e, VerifyError::Malformed(_))
            }),
            (SignatureHeader::One(stale.as_bytes()), |e| {
                matches!(e, VerifyError::TooOld { .. })
            }),
            (SignatureHeader::One(future.as_bytes()), |e| {
                matches!(e, VerifyError::TooNew { .. })
            }),
            (SignatureHeader::One(seconds.as_bytes()), |e| {
                matches!(
                    e,
                    VerifyError::TooOld {
                        looks_like_seconds: true,
                        ..
                    }
                )
            }),
            (SignatureHeader::One(wrong_key.as_bytes()), |e| {
                *e == VerifyError::Mismatch
            }),
            (SignatureHeader::One(tampered.as_bytes()), |e| {
                *e == VerifyError::Mismatch
            }),
        ];
        let mut responses = Vec::new();
        for (header, expected) in cases {
            let done = run(&h, &RawRequest::post(CALL_ENDED).with_signature(header));
            assert_eq!(done.response.status(), 401);
            match &done.outcome.reason {
                Reason::Unauthorized(e) => assert!(expected(e), "{e:?}"),
                other => panic!("{other:?}"),
            }
            assert_eq!(done.outcome.event, None);
            responses.push(done.response);
        }
        assert!(responses.windows(2).all(|w| w[0] == w[1]));
        assert_eq!(responses[0].body(), UNAUTHORIZED_BODY);
        assert_eq!(h.calls(), 0);
    }

    #[test]
    fn json_parser_never_runs_before_the_signature_passes() {
        let h = Counting::new(Mode::Ok);
        let before = json_parses();
        let deep = "[".repeat(10_000);
        let huge_object = format!("{{{}\"k\":1}}", "\"a\":1,".repeat(50_000));
        for body in [
            deep.as_bytes(),
            huge_object.as_bytes(),
            b"not json",
            CALL_ENDED,
        ] {
            let bad = sign(body, "wrong_key", NOW);
            for header in [
                SignatureHeader::Absent,
                SignatureHeader::One(bad.as_bytes()),
            ] {
                let done = run(&h, &RawRequest::post(body).with_signature(header));
                assert_eq!(done.response.status(), 401);
            }
        }
        assert_eq!(
            json_parses(),
            before,
            "an unverified body reached the JSON parser"
        );
        // With a valid signature the same garbage is parsed (once) and refused.
        let sig = signed(b"not json");
        let done = run(
            &h,
            &RawRequest::post(b"not json").signature_values([sig.as_bytes()]),
        );
        assert_eq!(done.response.status(), 400);
        assert_eq!(json_parses(), before + 1);
        assert_eq!(h.calls(), 0);
        // A valid event is parsed exactly once on its way to the handler.
        let sig = signed(CALL_ENDED);
        let done = run(
            &h,
            &RawRequest::post(CALL_ENDED).signature_values([sig.as_bytes()]),
        );
        assert_eq!(done.response.status(), 204);
        assert_eq!(json_parses(), before + 2);
        assert_eq!(h.calls(), 1);
    }

    #[test]
    fn verified_but_unusable_bodies_are_400() {
        let h = Counting::new(Mode::Ok);
        let cases: [(&[u8], IsBadBody); 6] = [
            (b"{\"event\":\"call_ended\",\"x\":\"\xff\"}", |b| {
                matches!(b, BadBody::NotUtf8 { valid_up_to: 27 })
            }),
            (b"{\"event\":", |b| matches!(b, BadBody::NotJson { .. })),
            (b"", |b| matches!(b, BadBody::NotJson { .. })),
            (b"[\"call_ended\"]", |b| *b == BadBody::NotObject),
            (b"\"call_ended\"", |b| *b == BadBody::NotObject),
            (b"{} trailing", |b| matches!(b, BadBody::NotJson { .. })),
        ];
        for (body, expected) in cases {
            let sig = signed(body);
            let done = run(
                &h,
                &RawRequest::post(body).signature_values([sig.as_bytes()]),
            );
            assert_eq!(done.response.status(), 400, "{body:?}");
            assert_eq!(done.response.body(), b"bad request\n");
            match &done.outcome.reason {
                Reason::BadRequest(b) => assert!(expected(b), "{b:?}"),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(h.calls(), 0);
        assert_eq!(h.unparsed.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn model_mismatch_goes_to_on_unparsed() {
        // A known event whose typed parse fails.
        let body = br#"{"event":"call_ended","call":{"call_id":987654}}"#;
        let sig = signed(body);
        let request = RawRequest::post(body).signature_values([sig.as_bytes()]);

        let declining = Counting::new(Mode::Ok);
        let done = run(&declining, &request);
        assert_eq!(done.response.status(), 400);
        assert!(matches!(
            done.outcome.reason,
            Reason::BadRequest(BadBody::Invalid {
                route: Route::Events,
                ..
            })
        ));
        assert_eq!(done.outcome.event.as_deref(), Some("call_ended"));
        assert!(
            !done.outcome.to_string().contains("987654"),
            "{}",
            done.outcome
        );
        assert_eq!(declining.unparsed.load(Ordering::SeqCst), 1);

        let accepting = Counting::new(Mode::AcceptUnparsed);
        let done = run(&accepting, &request);
        assert_eq!(done.response.status(), 204);
        assert_eq!(done.outcome.reason, Reason::FallbackAccepted);
        assert_eq!(accepting.unparsed.load(Ordering::SeqCst), 1);
        assert_eq!(accepting.calls(), 0);
    }

    #[test]
    fn handler_error_is_500_with_a_generic_body() {
        let h = Counting::new(Mode::Fail);
        let sig = signed(CALL_ENDED);
        let done = run(
            &h,
            &RawRequest::post(CALL_ENDED).signature_values([sig.as_bytes()]),
        );
        assert_eq!(done.response.status(), 500);
        assert_eq!(done.response.body(), b"internal server error\n");
        assert_eq!(
            done.outcome.reason,
            Reason::HandlerFailed("database unavailable".to_owned())
        );
        assert_eq!(done.outcome.call_id.as_deref(), Some("call_1"));
        assert!(!done.outcome.is_success());
        assert_eq!(h.calls(), 1);
    }

    #[test]
    fn handler_panic_is_500_and_the_next_request_succeeds() {
        let panicking = Counting::new(Mode::Panic);
        let sig = signed(CALL_ENDED);
        let request = RawRequest::post(CALL_ENDED).signature_values([sig.as_bytes()]);
        let done = run(&panicking, &request);
        assert_eq!(done.response.status(), 500);
        assert_eq!(done.outcome.reason, Reason::HandlerPanicked);
        assert_eq!(done.response.body(), b"internal server error\n");
        let fine = Counting::new(Mode::Ok);
        assert_eq!(run(&fine, &request).response.status(), 204);
    }

    /// An error whose `Display` panics.
    struct BadDisplay;

    impl fmt::Display for BadDisplay {
        fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
            panic!("Display bug")
        }
    }

    struct FailsWithBadDisplay;

    impl WebhookHandler for FailsWithBadDisplay {
        type Error = BadDisplay;

        async fn on_call_ended(&self, _event: CallEvent) -> Result<(), BadDisplay> {
            Err(BadDisplay)
        }
    }

    #[test]
    fn handler_error_whose_display_panics_is_500() {
        let sig = signed(CALL_ENDED);
        let request = RawRequest::post(CALL_ENDED).signature_values([sig.as_bytes()]);
        let done = run(&FailsWithBadDisplay, &request);
        assert_eq!(done.response.status(), 500);
        assert_eq!(done.outcome.reason, Reason::HandlerPanicked);
    }

    /// Panics when dropped.
    struct PanicOnDrop;

    impl Drop for PanicOnDrop {
        fn drop(&mut self) {
            panic!("destructor bug");
        }
    }

    struct HangsHoldingPanicOnDrop;

    impl WebhookHandler for HangsHoldingPanicOnDrop {
        type Error = String;

        async fn on_call_ended(&self, _event: CallEvent) -> Result<(), String> {
            let guard = PanicOnDrop;
            std::future::pending::<()>().await;
            drop(guard);
            Ok(())
        }
    }

    #[test]
    fn handler_dropped_at_the_deadline_may_panic_in_drop() {
        let sig = signed(CALL_ENDED);
        let request = RawRequest::post(CALL_ENDED).signature_values([sig.as_bytes()]);
        let done = block_on(dispatch(
            &verifier(),
            &HangsHoldingPanicOnDrop,
            Route::Events,
            &config(),
            &request,
            std::future::ready(()),
        ));
        assert_eq!(done.response.status(), 503);
        assert_eq!(done.outcome.reason, Reason::DeadlineExceeded);
    }

    #[test]
    fn deadline_is_503_and_drops_the_handler() {
        let h = Counting::new(Mode::Hang);
        let sig = signed(CALL_ENDED);
        let request = RawRequest::post(CALL_ENDED).signature_values([sig.as_bytes()]);
        let done = block_on(dispatch(
            &verifier(),
            &h,
            Route::Events,
            &config(),
            &request,
            std::future::ready(()),
        ));
        assert_eq!(done.response.status(), 503);
        assert_eq!(done.outcome.reason, Reason::DeadlineExceeded);
        assert_eq!(done.outcome.call_id.as_deref(), Some("call_1"));
        assert_eq!(h.calls(), 1);
        // A ready deadline does not beat a handler that is ready too.
        let quick = Counting::new(Mode::Ok);
        let done = block_on(dispatch(
            &verifier(),
            &quick,
            Route::Events,
            &config(),
            &request,
            std::future::ready(()),
        ));
        assert_eq!(done.response.status(), 204);
    }

    /// A deadline the test fires by hand.
    struct Trigger(std::sync::atomic::AtomicBool);

    impl Trigger {
        fn new() -> Self {
            Self(std::sync::atomic::AtomicBool::new(false))
        }

        fn fire(&self) {
            self.0.store(true, Ordering::SeqCst);
        }

        fn wait(&self) -> impl Future<Output = ()> + Send + '_ {
            poll_fn(|_| {
                if self.0.load(Ordering::SeqCst) {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            })
        }
    }

    fn dedupe_config() -> ReceiverConfig {
        config().with_dedupe(crate::dedupe::MemoryDedupe::new())
    }

    /// Fails on the first `failures` calls, then succeeds; counts successes.
    struct Flaky {
        failures: usize,
        calls: AtomicUsize,
        successes: AtomicUsize,
        panic_instead: bool,
    }

    impl WebhookHandler for Flaky {
        type Error = String;

        async fn on_call_ended(&self, _event: CallEvent) -> Result<(), String> {
            if self.calls.fetch_add(1, Ordering::SeqCst) < self.failures {
                if self.panic_instead {
                    panic!("handler bug");
                }
                return Err("temporarily down".to_owned());
            }
            self.successes.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }

    /// Checklist R5 / R2 / R3: failures release the key, so Retell's retries are
    /// processed, and exactly one attempt has the side effect.
    #[test]
    fn dedupe_fail_fail_succeed_has_one_side_effect() {
        for panic_instead in [false, true] {
            let h = Flaky {
                failures: 2,
                calls: AtomicUsize::new(0),
                successes: AtomicUsize::new(0),
                panic_instead,
            };
            let config = dedupe_config();
            let sig = signed(CALL_ENDED);
            let request = RawRequest::post(CALL_ENDED).signature_values([sig.as_bytes()]);
            let statuses: Vec<u16> = (0..4)
                .map(|_| {
                    run_with(&h, Route::Events, &config, &request)
                        .response
                        .status()
                })
                .collect();
            assert_eq!(statuses, [500, 500, 204, 204], "panic: {panic_instead}");
            assert_eq!(h.calls.load(Ordering::SeqCst), 3);
            assert_eq!(h.successes.load(Ordering::SeqCst), 1);
            let last = run_with(&h, Route::Events, &config, &request);
            assert_eq!(last.outcome.reason, Reason::Duplicate);
            assert_eq!(last.outcome.call_id.as_deref(), Some("call_1"));
        }
    }

    /// Checklist R6 and R4: a copy arriving while the first runs gets 409; when
    /// the first hits the deadline (503) the key is released and a retry runs.
    #[test]
    fn dedupe_in_flight_is_409_and_deadline_releases() {
        let h = Counting::new(Mode::Hang);
        let config = dedupe_config();
        let v = verifier();
        let sig = signed(CALL_ENDED);
        let request = RawRequest::post(CALL_ENDED).signature_values([sig.as_bytes()]);
        let trigger = Trigger::new();
        let mut first = Box::pin(dispatch(
            &v,
            &h,
            Route::Events,
            &config,
            &request,
            trigger.wait(),
        ));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(first.as_mut().poll(&mut cx).is_pending());
        assert_eq!(h.calls(), 1);
        let copy = run_with(&h, Route::Events, &config, &request);
        assert_eq!(copy.response.status(), 409);
        assert_eq!(copy.outcome.reason, Reason::InFlight);
        assert_eq!(h.calls(), 1);
        trigger.fire();
        let Poll::Ready(first) = first.as_mut().poll(&mut cx) else {
            panic!("deadline did not fire")
        };
        assert_eq!(first.response.status(), 503);
        // Released: the retry reaches the handler again.
        let retry = block_on(dispatch(
            &v,
            &h,
            Route::Events,
            &config,
            &request,
            std::future::ready(()),
        ));
        assert_eq!(retry.response.status(), 503);
        assert_eq!(h.calls(), 2);
    }

    #[test]
    fn dedupe_never_applies_to_requests_that_expect_an_answer() {
        let config = dedupe_config();
        let inbound = include_bytes!("../tests/fixtures/call_inbound_request.json");
        let function = include_bytes!("../tests/fixtures/custom_function_request.json");
        let h = Counting::new(Mode::Ok);
        for (route, body) in [
            (Route::Events, &inbound[..]),
            (Route::Function, &function[..]),
        ] {
            let sig = signed(body);
            let request = RawRequest::post(body).signature_values([sig.as_bytes()]);
            for _ in 0..3 {
                assert_eq!(
                    run_with(&h, route, &config, &request).response.status(),
                    200
                );
            }
        }
        assert_eq!(h.calls(), 6);
    }

    #[test]
    fn dedupe_store_failure_is_503() {
        use crate::dedupe::{DedupeError, StoreFuture};
        struct Down;
        impl DedupeStore for Down {
            fn begin<'a>(
                &'a self,
                _: &'a DedupeKey,
                _: Duration,
            ) -> StoreFuture<'a, Result<Begin, DedupeError>> {
                Box::pin(async { Err(DedupeError("connection refused".to_owned())) })
            }
            fn finish<'a>(
                &'a self,
                _: &'a DedupeKey,
                _: Ticket,
            ) -> StoreFuture<'a, Result<(), DedupeError>> {
                Box::pin(async { Ok(()) })
            }
            fn release<'a>(
                &'a self,
                _: &'a DedupeKey,
                _: Ticket,
            ) -> StoreFuture<'a, Result<(), DedupeError>> {
                Box::pin(async { Ok(()) })
            }
        }
        let h = Counting::new(Mode::Ok);
        let sig = signed(CALL_ENDED);
        let request = RawRequest::post(CALL_ENDED).signature_values([sig.as_bytes()]);
        let done = run_with(&h, Route::Events, &config().with_dedupe(Down), &request);
        assert_eq!(done.response.status(), 503);
        assert!(done.outcome.to_string().contains("connection refused"));
        assert_eq!(h.calls(), 0);
    }

    #[test]
    fn dedupe_store_panic_is_503_and_never_unwinds() {
        use crate::dedupe::{DedupeError, StoreFuture};
        /// Panics in `begin` (synchronously) when `begin_panics`, else in
        /// `finish` and `release` (inside the future).
        struct Buggy {
            begin_panics: bool,
        }
        impl DedupeStore for Buggy {
            fn begin<'a>(
                &'a self,
                _: &'a DedupeKey,
                _: Duration,
            ) -> StoreFuture<'a, Result<Begin, DedupeError>> {
                assert!(!self.begin_panics, "store bug in begin");
                Box::pin(async { Ok(Begin::Fresh(Ticket::new(1))) })
            }
            fn finish<'a>(
                &'a self,
                _: &'a DedupeKey,
                _: Ticket,
            ) -> StoreFuture<'a, Result<(), DedupeError>> {
                Box::pin(async { panic!("store bug in finish") })
            }
            fn release<'a>(
                &'a self,
                _: &'a DedupeKey,
                _: Ticket,
            ) -> StoreFuture<'a, Result<(), DedupeError>> {
                Box::pin(async { panic!("store bug in release") })
            }
        }
        let sig = signed(CALL_ENDED);
        let request = RawRequest::post(CALL_ENDED).signature_values([sig.as_bytes()]);
        let h = Counting::new(Mode::Ok);
        let store = Buggy { begin_panics: true };
        let done = run_with(&h, Route::Events, &config().with_dedupe(store), &request);
        assert_eq!(done.response.status(), 503);
        assert!(matches!(done.outcome.reason, Reason::DedupeFailed(_)));
        assert_eq!(h.calls(), 0);
        for (mode, status) in [(Mode::Ok, 204), (Mode::Fail, 500)] {
            let h = Counting::new(mode);
            let store = Buggy {
                begin_panics: false,
            };
            let done = run_with(&h, Route::Events, &config().with_dedupe(store), &request);
            assert_eq!(done.response.status(), status);
            assert_eq!(h.calls(), 1);
        }
    }

    /// Checklist R8: the alert fires at the 10th mismatch in a row, then at most
    /// once a minute; other failures neither count nor reset; a verified
    /// request resets the streak.
    #[test]
    fn mismatch_streak_alert_is_rate_limited() {
        let now = Arc::new(std::sync::atomic::AtomicU64::new(NOW));
        let clock = Arc::clone(&now);
        let config = ReceiverConfig::new().with_clock(move || clock.load(Ordering::SeqCst));
        let v = verifier();
        let send = |header: &str| {
            let request = RawRequest::post(CALL_ENDED).signature_values([header.as_bytes()]);
            block_on(dispatch(
                &v,
                &Defaults,
                Route::Events,
                &config,
                &request,
                std::future::pending(),
            ))
        };
        let at = |ms| sign(CALL_ENDED, "wrong_key", ms);
        let alerts: Vec<_> = (0..12)
            .map(|_| send(&at(now.load(Ordering::SeqCst))).outcome.key_alert)
            .collect();
        let mut expected = vec![None; 12];
        expected[9] = Some(10);
        assert_eq!(alerts, expected);
        // A stale signature is not a mismatch: no count, no reset.
        assert_eq!(
            send(&sign(CALL_ENDED, KEY, NOW - 400_000))
                .response
                .status(),
            401
        );
        assert_eq!(config.signature_mismatch_streak(), 12);
        now.fetch_add(59_999, Ordering::SeqCst);
        assert_eq!(
            send(&at(now.load(Ordering::SeqCst))).outcome.key_alert,
            None
        );
        now.fetch_add(1, Ordering::SeqCst);
        let done = send(&at(now.load(Ordering::SeqCst)));
        assert_eq!(done.outcome.key_alert, Some(14));
        assert!(
            done.outcome
                .to_string()
                .contains("14 signature mismatches in a row"),
            "{}",
            done.outcome
        );
        let ok = send(&sign(CALL_ENDED, KEY, now.load(Ordering::SeqCst)));
        assert_eq!(ok.response.status(), 204);
        assert_eq!(config.signature_mismatch_streak(), 0);
        // Clones share the streak (one per adapter, whatever the workers).
        let clone = config.clone();
        send(&at(now.load(Ordering::SeqCst)));
        assert_eq!(clone.signature_mismatch_streak(), 1);
    }

    #[test]
    fn unknown_event_is_acknowledged() {
        let h = Counting::new(Mode::Ok);
        let body = br#"{"event":"call_teleported","call":{"call_id":"c"}}"#;
        let sig = signed(body);
        let done = run(
            &h,
            &RawRequest::post(body).signature_values([sig.as_bytes()]),
        );
        assert_eq!(done.response.status(), 204);
        assert_eq!(done.outcome.reason, Reason::UnknownEvent);
        assert_eq!(done.outcome.event.as_deref(), Some("call_teleported"));
        assert_eq!(h.unknown.load(Ordering::SeqCst), 1);
        assert_eq!(
            run(
                &Defaults,
                &RawRequest::post(body).signature_values([sig.as_bytes()])
            )
            .response
            .status(),
            204
        );
    }

    #[test]
    fn inbound_call_is_answered_with_json() {
        let body = include_bytes!("../tests/fixtures/call_inbound_request.json");
        let sig = signed(body);
        let request = RawRequest::post(body).signature_values([sig.as_bytes()]);
        for done in [
            run(&Counting::new(Mode::Ok), &request),
            run(&Defaults, &request),
        ] {
            assert_eq!(done.response.status(), 200);
            assert_eq!(done.response.content_type(), Some("application/json"));
            assert_eq!(done.outcome.reason, Reason::Answered);
            assert_eq!(done.outcome.event.as_deref(), Some("call_inbound"));
            let json: serde_json::Value = serde_json::from_slice(done.response.body()).unwrap();
            assert!(json.is_object(), "{json}");
        }
        let failing = Counting::new(Mode::Fail);
        assert_eq!(run(&failing, &request).response.status(), 500);
    }

    #[test]
    fn function_route_answers_the_handler_body() {
        let body = include_bytes!("../tests/fixtures/custom_function_request.json");
        let sig = signed(body);
        let request = RawRequest::post(body).signature_values([sig.as_bytes()]);
        let h = Counting::new(Mode::Ok);
        let done = run_with(&h, Route::Function, &config(), &request);
        assert_eq!(done.response.status(), 200);
        assert_eq!(done.response.body(), b"booked");
        assert!(done.response.content_type().is_some());
        assert_eq!(done.outcome.route, Route::Function);
        assert_eq!(h.calls(), 1);
        // Args-only bodies are function calls too.
        let args = include_bytes!("../tests/fixtures/custom_function_request_args_only.json");
        let sig = signed(args);
        let request = RawRequest::post(args).signature_values([sig.as_bytes()]);
        let done = run_with(&Defaults, Route::Function, &config(), &request);
        assert_eq!(done.response.status(), 200);
        assert_eq!(done.response.body(), b"function not implemented");
        // Not an object: 400 on the function route as well.
        let sig = signed(b"[]");
        let request = RawRequest::post(b"[]").signature_values([sig.as_bytes()]);
        let done = run_with(&h, Route::Function, &config(), &request);
        assert_eq!(done.response.status(), 400);
    }

    /// Records which method each body was routed to.
    #[derive(Default)]
    struct Recorder(std::sync::Mutex<Vec<&'static str>>);

    impl Recorder {
        fn hit(&self, name: &'static str) -> Result<(), std::convert::Infallible> {
            self.0.lock().unwrap().push(name);
            Ok(())
        }
    }

    impl WebhookHandler for Recorder {
        type Error = std::convert::Infallible;

        async fn on_call_started(&self, _: CallEvent) -> Result<(), Self::Error> {
            self.hit("on_call_started")
        }
        async fn on_call_ended(&self, _: CallEvent) -> Result<(), Self::Error> {
            self.hit("on_call_ended")
        }
        async fn on_call_analyzed(&self, _: CallEvent) -> Result<(), Self::Error> {
            self.hit("on_call_analyzed")
        }
        async fn on_transcript_updated(
            &self,
            _: TranscriptUpdatedEvent,
        ) -> Result<(), Self::Error> {
            self.hit("on_transcript_updated")
        }
        async fn on_transfer_started(&self, _: TransferEvent) -> Result<(), Self::Error> {
            self.hit("on_transfer_started")
        }
        async fn on_transfer_bridged(&self, _: TransferEvent) -> Result<(), Self::Error> {
            self.hit("on_transfer_bridged")
        }
        async fn on_transfer_cancelled(&self, _: TransferEvent) -> Result<(), Self::Error> {
            self.hit("on_transfer_cancelled")
        }
        async fn on_transfer_ended(&self, _: TransferEvent) -> Result<(), Self::Error> {
            self.hit("on_transfer_ended")
        }
        async fn on_chat_started(&self, _: ChatEvent) -> Result<(), Self::Error> {
            self.hit("on_chat_started")
        }
        async fn on_chat_ended(&self, _: ChatEvent) -> Result<(), Self::Error> {
            self.hit("on_chat_ended")
        }
        async fn on_chat_analyzed(&self, _: ChatEvent) -> Result<(), Self::Error> {
            self.hit("on_chat_analyzed")
        }
        async fn on_unknown(&self, _: UnknownEvent) -> Result<(), Self::Error> {
            self.hit("on_unknown")
        }
        async fn on_call_inbound(
            &self,
            _: InboundCallRequest,
        ) -> Result<InboundResponse, Self::Error> {
            self.hit("on_call_inbound")?;
            Ok(InboundResponse::call())
        }
        async fn on_chat_inbound(
            &self,
            _: InboundChatRequest,
        ) -> Result<InboundResponse, Self::Error> {
            self.hit("on_chat_inbound")?;
            Ok(InboundResponse::chat())
        }
    }

    #[test]
    fn every_kind_of_body_reaches_its_method() {
        macro_rules! fixture {
            ($name:literal) => {
                (
                    $name,
                    &include_bytes!(concat!("../tests/fixtures/", $name))[..],
                )
            };
        }
        let cases = [
            (fixture!("call_started.json"), "on_call_started", 204),
            (fixture!("call_ended_phone.json"), "on_call_ended", 204),
            (fixture!("call_ended_web.json"), "on_call_ended", 204),
            (
                fixture!("call_analyzed_maximal.json"),
                "on_call_analyzed",
                204,
            ),
            (
                fixture!("transcript_updated.json"),
                "on_transcript_updated",
                204,
            ),
            (
                fixture!("transfer_started.json"),
                "on_transfer_started",
                204,
            ),
            (
                fixture!("transfer_bridged.json"),
                "on_transfer_bridged",
                204,
            ),
            (
                fixture!("transfer_cancelled.json"),
                "on_transfer_cancelled",
                204,
            ),
            (fixture!("transfer_ended.json"), "on_transfer_ended", 204),
            (fixture!("chat_started.json"), "on_chat_started", 204),
            (fixture!("chat_ended.json"), "on_chat_ended", 204),
            (fixture!("chat_analyzed.json"), "on_chat_analyzed", 204),
            (fixture!("synthetic_forward_compat.json"), "on_unknown", 204),
            (
                fixture!("call_inbound_request.json"),
                "on_call_inbound",
                200,
            ),
            (
                fixture!("chat_inbound_request.json"),
                "on_chat_inbound",
                200,
            ),
        ];
        for ((name, body), method, status) in cases {
            let recorder = Recorder::default();
            let sig = signed(body);
            let done = run(
                &recorder,
                &RawRequest::post(body).signature_values([sig.as_bytes()]),
            );
            assert_eq!(done.response.status(), status, "{name}: {}", done.outcome);
            assert_eq!(*recorder.0.lock().unwrap(), [method], "{name}");
            assert!(done.outcome.event.is_some(), "{name}");
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn allowlist_uses_the_peer_unless_it_is_a_trusted_proxy() {
        let retell = SourceAllowlist::retell();
        let none: [&[u8]; 0] = [];
        assert_eq!(
            retell.check(Some(RETELL_SOURCE_IP), none),
            Ok(RETELL_SOURCE_IP)
        );
        assert_eq!(
            retell.check(Some(ip("::ffff:100.20.5.228")), none),
            Ok(RETELL_SOURCE_IP)
        );
        assert_eq!(retell.check(None, none), Err(SourceRejection::PeerUnknown));
        // Spoofed header from an untrusted peer is ignored.
        assert_eq!(
            retell.check(Some(ip("127.0.0.1")), [&b"100.20.5.228"[..]]),
            Err(SourceRejection::NotAllowed(ip("127.0.0.1")))
        );
        let behind = SourceAllowlist::retell().with_trusted_proxies([
            IpRange::from(ip("127.0.0.1")),
            "10.0.0.0/8".parse().unwrap(),
        ]);
        // Right-most untrusted entry wins; what the client wrote on the left is ignored.
        assert_eq!(
            behind.check(Some(ip("127.0.0.1")), [&b"100.20.5.228"[..]]),
            Ok(RETELL_SOURCE_IP)
        );
        assert_eq!(
            behind.check(
                Some(ip("127.0.0.1")),
                [&b"1.2.3.4, 100.20.5.228, 10.9.8.7"[..]]
            ),
            Ok(RETELL_SOURCE_IP)
        );
        assert_eq!(
            behind.check(
                Some(ip("10.1.1.1")),
                [&b"100.20.5.228"[..], &b"6.6.6.6"[..]]
            ),
            Err(SourceRejection::NotAllowed(ip("6.6.6.6")))
        );
        assert_eq!(
            behind.check(Some(ip("127.0.0.1")), [&b"100.20.5.228:443"[..]]),
            Ok(RETELL_SOURCE_IP)
        );
        assert_eq!(
            behind.check(Some(ip("127.0.0.1")), [&b"unknown"[..]]),
            Err(SourceRejection::BadForwardedFor)
        );
        // A trusted peer without the header is judged by its own address.
        assert_eq!(
            behind.check(Some(ip("127.0.0.1")), none),
            Err(SourceRejection::NotAllowed(ip("127.0.0.1")))
        );
    }

    #[test]
    fn ip_ranges_parse_and_match() {
        let r: IpRange = "10.0.0.0/8".parse().unwrap();
        assert!(r.contains(ip("10.255.0.1")) && !r.contains(ip("11.0.0.1")));
        let r: IpRange = "2001:db8::/32".parse().unwrap();
        assert!(r.contains(ip("2001:db8::1")) && !r.contains(ip("2001:db9::1")));
        assert!(
            "0.0.0.0/0"
                .parse::<IpRange>()
                .unwrap()
                .contains(ip("8.8.8.8"))
        );
        assert!(!"0.0.0.0/0".parse::<IpRange>().unwrap().contains(ip("::1")));
        // IPv4-mapped IPv6 blocks: the prefix counts IPv6 bits.
        let r: IpRange = "::ffff:10.0.0.0/104".parse().unwrap();
        assert_eq!(r, "10.0.0.0/8".parse().unwrap());
        assert!(r.contains(ip("10.1.2.3")) && r.contains(ip("::ffff:10.1.2.3")));
        let r: IpRange = "::ffff:100.20.5.228/128".parse().unwrap();
        assert_eq!(r, IpRange::from(RETELL_SOURCE_IP));
        let r: IpRange = "::ffff:10.0.0.0/8".parse().unwrap();
        assert!(!r.contains(ip("10.1.2.3")) && !r.contains(ip("11.0.0.1")));
        for bad in ["10.0.0.0/33", "10.0.0.0/", "10.0.0.0/+8", "nope", "::/129"] {
            assert_eq!(bad.parse::<IpRange>(), Err(IpRangeParseError), "{bad}");
        }
    }

    #[test]
    fn forbidden_source_is_403_before_anything_else() {
        let config = config().with_source_allowlist(SourceAllowlist::retell());
        let h = Counting::new(Mode::Ok);
        let sig = signed(CALL_ENDED);
        let request = RawRequest::new("GET", CALL_ENDED)
            .signature_values([sig.as_bytes()])
            .with_peer(Some(ip("127.0.0.1")))
            .forwarded_for_values([&b"100.20.5.228"[..]]);
        let done = run_with(&h, Route::Events, &config, &request);
        assert_eq!(done.response.status(), 403);
        let ok = RawRequest::post(CALL_ENDED)
            .signature_values([sig.as_bytes()])
            .with_peer(Some(RETELL_SOURCE_IP));
        assert_eq!(
            run_with(&h, Route::Events, &config, &ok).response.status(),
            204
        );
        // The signature is still required from an allowed source.
        let unsigned = RawRequest::post(CALL_ENDED).with_peer(Some(RETELL_SOURCE_IP));
        assert_eq!(
            run_with(&h, Route::Events, &config, &unsigned)
                .response
                .status(),
            401
        );
        assert_eq!(h.calls(), 1);
    }

    #[test]
    fn nothing_secret_in_debug_or_display() {
        let sig = signed(CALL_ENDED);
        let request = RawRequest::post(CALL_ENDED).signature_values([sig.as_bytes()]);
        let debug = format!("{request:?}");
        assert!(
            !debug.contains(&sig[20..]) && !debug.contains("call_1"),
            "{debug}"
        );
        let wrong = sign(CALL_ENDED, "wrong", NOW);
        let done = run(
            &Defaults,
            &RawRequest::post(CALL_ENDED).signature_values([wrong.as_bytes()]),
        );
        for text in [
            format!("{:?}", done),
            done.outcome.to_string(),
            format!("{:?}", done.response),
        ] {
            assert!(
                !text.contains(KEY) && !text.contains(&wrong[16..]) && !text.contains("call_1")
            );
        }
    }
}
