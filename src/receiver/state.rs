//! [`Receiver`]: the verifier, the configuration and the runtime state (the
//! in-flight places, the body budget and the key-mismatch monitor).

use super::config::ReceiverConfig;
use super::permits::{Permit, Permits};
use crate::{RouteKind, Verifier, VerifyError};
use std::fmt;
use std::sync::Arc;

/// Receives Retell's requests: built once from a [`Verifier`] and a
/// [`ReceiverConfig`], cheap to clone (one `Arc`), and shared by every route,
/// worker and framework adapter of a service.
///
/// It owns the state that must be shared to work: the in-flight places
/// ([`ReceiverConfig::max_in_flight`]) and shares of the body budget
/// ([`ReceiverConfig::body_budget_of`]) of each route kind, the signature-mismatch monitor that
/// raises [`Outcome::key_alert`](super::Outcome::key_alert), and (through the configuration) the
/// deduplication store.
///
/// [`Receiver::dispatch`] is the framework-agnostic entry point; the adapters
/// and the tower service call it.
///
/// ```
/// use retell_webhooks::{receiver::RawRequest, Receiver, ReceiverConfig, RouteKind, WebhookHandler};
/// use retell_webhooks::{sign, Verifier};
///
/// struct App;
/// impl WebhookHandler for App {
///     type Error = std::convert::Infallible;
/// }
///
/// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     use std::task::{Context, Poll, Waker};
/// #     let mut f = std::pin::pin!(f);
/// #     let mut cx = Context::from_waker(Waker::noop());
/// #     loop { if let Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; } }
/// # }
/// let key = "key_9f3c2e1d7a8b4c6e0f5a2b3c";
/// let receiver = Receiver::new(Verifier::new(key)?, ReceiverConfig::new());
/// let body = br#"{"event":"call_ended","call":{"call_id":"call_1"}}"#;
/// let header = sign(body, key, retell_webhooks::unix_ms(std::time::SystemTime::now())?);
/// let request = RawRequest::post(body).signature_values([header.as_bytes()]);
/// // The last argument makes the handler deadline's timer: `tokio::time::sleep`
/// // on tokio; `std::future::pending` here for no deadline.
/// let done = block_on(receiver.dispatch(&App, RouteKind::Events, &request, |_| std::future::pending()));
/// assert_eq!(done.response.status(), 204);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Receiver {
    inner: Arc<Inner>,
}

struct Inner {
    verifier: Option<Verifier>,
    config: ReceiverConfig,
    mismatches: MismatchMonitor,
    events: Lane,
    functions: Lane,
    /// Bytes of body being parsed on blocking threads at once.
    #[cfg_attr(not(any(feature = "tower", feature = "actix")), allow(dead_code))]
    parses: Arc<Permits>,
}

/// What the requests of one route kind share, and only they: a custom
/// function that takes minutes never holds what an event delivery needs.
struct Lane {
    places: Arc<Permits>,
    /// Body bytes being read at once: reading takes bytes from here, not an
    /// in-flight place, so requests that have not proven their signature
    /// cannot hold the places signed deliveries need.
    #[cfg_attr(not(any(feature = "tower", feature = "actix")), allow(dead_code))]
    body: Arc<Permits>,
    /// The bodies holding some of `body`.
    #[cfg(any(feature = "tower", feature = "actix"))]
    holders: super::holders::Holders,
}

impl Lane {
    fn new(config: &ReceiverConfig, route: RouteKind) -> Self {
        Self {
            places: Arc::new(Permits::new(config.max_in_flight())),
            body: Arc::new(Permits::new(config.body_budget_of(route))),
            #[cfg(any(feature = "tower", feature = "actix"))]
            holders: super::holders::Holders::default(),
        }
    }
}

impl Receiver {
    /// A receiver that verifies with `verifier`.
    #[must_use]
    pub fn new(verifier: Verifier, config: ReceiverConfig) -> Self {
        Self::build(Some(verifier), config)
    }

    /// A receiver without a verifier: every request is answered `500`, never
    /// accepted unverified (for a service that starts before its key is
    /// available, or whose key failed to load).
    #[must_use]
    pub fn unconfigured(config: ReceiverConfig) -> Self {
        Self::build(None, config)
    }

    fn build(verifier: Option<Verifier>, config: ReceiverConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                verifier,
                events: Lane::new(&config, RouteKind::Events),
                functions: Lane::new(&config, RouteKind::Function),
                parses: Arc::new(Permits::new(parse_share(&config))),
                config,
                mismatches: MismatchMonitor::default(),
            }),
        }
    }

    /// The verifier, if configured.
    #[must_use]
    pub fn verifier(&self) -> Option<&Verifier> {
        self.inner.verifier.as_ref()
    }

    /// Whether a verifier is configured.
    #[must_use]
    pub fn is_configured(&self) -> bool {
        self.inner.verifier.is_some()
    }

    /// The limits and policies.
    #[must_use]
    pub fn config(&self) -> &ReceiverConfig {
        &self.inner.config
    }

    /// Signature digest mismatches in a row since the last verified request,
    /// over every clone of this receiver. See [`MISMATCH_ALERT_THRESHOLD`](super::MISMATCH_ALERT_THRESHOLD).
    #[must_use]
    pub fn signature_mismatch_streak(&self) -> u64 {
        self.inner
            .mismatches
            .streak
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    fn lane(&self, route: RouteKind) -> &Lane {
        match route {
            RouteKind::Events => &self.inner.events,
            RouteKind::Function => &self.inner.functions,
        }
    }

    /// Waits its turn for one of the
    /// [`max_in_flight`](ReceiverConfig::max_in_flight) places of `route`;
    /// the request holds it until the permit is dropped.
    pub fn in_flight_permit(
        &self,
        route: RouteKind,
    ) -> impl Future<Output = Permit> + Send + 'static {
        self.lane(route).places.acquire()
    }

    /// In-flight places of `route` free right now.
    #[must_use]
    pub fn available_permits(&self, route: RouteKind) -> usize {
        self.lane(route).places.available()
    }

    /// Waits its turn until `bytes` more of body may be parsed at once: two
    /// bodies at the limit (16 MiB by default). Parsing is CPU work, so this
    /// costs no throughput, and it bounds the memory of parses of signed
    /// bodies built to be expensive.
    #[cfg(any(feature = "tower", feature = "actix"))]
    pub(crate) fn parse_bytes(
        &self,
        bytes: usize,
    ) -> impl Future<Output = Permit> + Send + 'static {
        self.inner
            .parses
            .acquire_many(bytes.min(parse_share(self.config())))
    }

    /// The bodies holding budget of `route`.
    #[cfg(any(feature = "tower", feature = "actix"))]
    pub(crate) fn body_holders(&self, route: RouteKind) -> &super::holders::Holders {
        &self.lane(route).holders
    }

    /// A turn in the body budget of `route`, with no bytes yet: the body's
    /// buffer grows with [`Permit::more`], in this turn.
    #[cfg(any(feature = "tower", feature = "actix"))]
    pub(crate) fn body_turn(
        &self,
        route: RouteKind,
    ) -> impl Future<Output = Permit> + Send + 'static {
        self.lane(route).body.acquire_many(0)
    }

    pub(crate) fn mismatches(&self) -> &MismatchMonitor {
        &self.inner.mismatches
    }
}

impl fmt::Debug for Receiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("verifier", &self.inner.verifier)
            .field("config", &self.inner.config)
            .field(
                "signature_mismatch_streak",
                &self.signature_mismatch_streak(),
            )
            .finish()
    }
}

/// Bytes of body parsed on blocking threads at once: two bodies at the limit.
fn parse_share(config: &ReceiverConfig) -> usize {
    config.body_limit().saturating_mul(2).max(1)
}

/// After this many signature mismatches in a row, with no verified request in
/// between, the [`Outcome`](super::Outcome) carries a [`key_alert`](super::Outcome::key_alert): the
/// configured key is most likely not the one Retell signs with.
pub const MISMATCH_ALERT_THRESHOLD: u64 = 10;

/// At most one [`key_alert`](super::Outcome::key_alert) per this many milliseconds
/// (by the verifier's clock), so a log line raised on it is rate limited.
pub const MISMATCH_ALERT_INTERVAL_MS: u64 = 60_000;

/// Counts digest mismatches in a row (shared by every clone of a receiver, so
/// by every worker of an adapter).
#[derive(Default)]
pub(crate) struct MismatchMonitor {
    pub(crate) streak: std::sync::atomic::AtomicU64,
    /// Clock value of the last alert plus one (0: never).
    pub(crate) last_alert: std::sync::atomic::AtomicU64,
}

impl MismatchMonitor {
    /// Records one verification result; returns the streak when an alert is due.
    pub(crate) fn record(&self, result: &Result<(), VerifyError>, now_ms: u64) -> Option<u64> {
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
