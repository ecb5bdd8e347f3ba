//! Metrics (feature `metrics`), through the `metrics` facade: every name and
//! every label in one place. Without the feature every function here is a
//! no-op, so call sites need no `cfg`.
//!
//! Label values are `&'static str`s from closed sets (a route, a status code,
//! a failure kind, a state, an outcome, a store operation): nothing read from
//! a body, a header, an id or a key ever becomes a label or a name. The crate
//! installs no recorder and no exporter; the application does.
//!
//! The README's "Metrics" section lists them for users; keep the two in step.

// Names and label helpers are read only by the emitting half (feature
// `metrics`; the inbox's with feature `inbox`), but are checked by the unit
// tests either way.
#![cfg_attr(not(all(feature = "metrics", feature = "inbox")), allow(dead_code))]

#[cfg(feature = "inbox")]
use crate::inbox::Stats;
use crate::receiver::outcome::Reason;

/// Every metric name starts with this.
#[cfg(test)]
pub(crate) const PREFIX: &str = "retell_webhooks_";

/// Counter: answered requests, by `route` and `status`.
pub(crate) const REQUESTS_TOTAL: &str = "retell_webhooks_requests_total";
/// Counter: `401`s, by `reason` (the [`VerifyError`](crate::VerifyError) kind).
pub(crate) const SIGNATURE_FAILURES_TOTAL: &str = "retell_webhooks_signature_failures_total";
/// Histogram (seconds): inline handler runs, by `route`.
pub(crate) const HANDLER_DURATION: &str = "retell_webhooks_handler_duration_seconds";
/// Counter: the receiver's inbox inserts, by `result`.
pub(crate) const INBOX_STORED_TOTAL: &str = "retell_webhooks_inbox_stored_total";
/// Counter: worker attempts, by `outcome`.
pub(crate) const WORKER_ATTEMPTS_TOTAL: &str = "retell_webhooks_worker_attempts_total";
/// Counter: failures recorded as dead letters by a worker.
pub(crate) const DEAD_LETTERS_TOTAL: &str = "retell_webhooks_dead_letters_total";
/// Histogram (seconds): worker handler runs.
pub(crate) const WORKER_HANDLER_DURATION: &str = "retell_webhooks_worker_handler_duration_seconds";
/// Counter: failed store calls of a worker, by `op`.
pub(crate) const WORKER_STORE_ERRORS_TOTAL: &str = "retell_webhooks_worker_store_errors_total";
/// Gauge: entries by `state`, from `Inbox::stats`.
pub(crate) const INBOX_DEPTH: &str = "retell_webhooks_inbox_depth";
/// Gauge (seconds): age of the oldest ready entry, 0 when none.
pub(crate) const INBOX_OLDEST_READY_AGE: &str = "retell_webhooks_inbox_oldest_ready_age_seconds";
/// Gauge (Unix seconds): the last successful lease call of a worker.
pub(crate) const WORKER_LAST_POLL: &str = "retell_webhooks_worker_last_poll_timestamp_seconds";

/// Every metric name, for the tests.
#[cfg(test)]
pub(crate) const ALL: [&str; 11] = [
    REQUESTS_TOTAL,
    SIGNATURE_FAILURES_TOTAL,
    HANDLER_DURATION,
    INBOX_STORED_TOTAL,
    WORKER_ATTEMPTS_TOTAL,
    DEAD_LETTERS_TOTAL,
    WORKER_HANDLER_DURATION,
    WORKER_STORE_ERRORS_TOTAL,
    INBOX_DEPTH,
    INBOX_OLDEST_READY_AGE,
    WORKER_LAST_POLL,
];

/// How often a worker reads `Inbox::stats` for the depth gauges.
#[cfg(feature = "inbox")]
pub(crate) const DEPTH_EVERY_MS: u64 = 15_000;

/// The status code as a label: every status the receiver sends, `other` for
/// anything else, so the set stays closed.
pub(crate) fn status_label(status: u16) -> &'static str {
    match status {
        200 => "200",
        204 => "204",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        408 => "408",
        409 => "409",
        413 => "413",
        415 => "415",
        500 => "500",
        503 => "503",
        _ => "other",
    }
}

/// The `result` of an inbox insert, from the answer it made.
pub(crate) fn stored_label(reason: &Reason) -> Option<&'static str> {
    match reason {
        Reason::Stored => Some("stored"),
        Reason::Duplicate => Some("duplicate"),
        Reason::StoredUnreadable(_) => Some("unreadable"),
        Reason::InboxFailed(_) => Some("failed"),
        _ => None,
    }
}

/// How one worker attempt ended.
#[cfg(feature = "inbox")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Attempt {
    /// The handler returned `Ok` (or the fallback accepted the body).
    Ok,
    /// The handler returned `Err`.
    Error,
    /// The handler panicked.
    Panic,
    /// The handler ran past the worker's timeout.
    Timeout,
    /// The body cannot be read and the fallback declined it.
    Unreadable,
    /// Another worker took the event while it ran.
    LostLease,
}

#[cfg(feature = "inbox")]
impl Attempt {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Error => "error",
            Self::Panic => "panic",
            Self::Timeout => "timeout",
            Self::Unreadable => "unreadable",
            Self::LostLease => "lost_lease",
        }
    }
}

/// A worker's call to its store.
#[cfg(feature = "inbox")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StoreOp {
    Lease,
    Ack,
    Fail,
    Extend,
    Release,
    Prune,
    Stats,
}

#[cfg(feature = "inbox")]
impl StoreOp {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Lease => "lease",
            Self::Ack => "ack",
            Self::Fail => "fail",
            Self::Extend => "extend",
            Self::Release => "release",
            Self::Prune => "prune",
            Self::Stats => "stats",
        }
    }
}

/// Unix milliseconds as seconds.
#[cfg(feature = "inbox")]
fn seconds(ms: u64) -> f64 {
    #[allow(clippy::cast_precision_loss)] // exact below 2^53 ms (year 285 616)
    let ms = ms as f64;
    ms / 1000.0
}

/// How long the oldest ready entry has waited, in seconds (0 when none).
#[cfg(feature = "inbox")]
pub(crate) fn oldest_ready_age(stats: &Stats, now_ms: u64) -> f64 {
    stats
        .oldest_ready_ms
        .map_or(0.0, |oldest| seconds(now_ms.saturating_sub(oldest)))
}

#[cfg(feature = "metrics")]
mod on {
    use std::time::Instant;

    #[cfg(feature = "inbox")]
    use ::metrics::gauge;
    use ::metrics::{counter, histogram};

    use super::*;
    use crate::RouteKind;
    #[cfg(feature = "inbox")]
    use crate::inbox::{Inbox, State};
    use crate::receiver::outcome::Outcome;

    /// Counts one answered request, and its signature failure if it is one.
    pub(crate) fn answered(outcome: &Outcome) {
        let route = outcome.route.as_str();
        let status = status_label(outcome.status);
        counter!(REQUESTS_TOTAL, "route" => route, "status" => status).increment(1);
        if let Reason::Unauthorized(why) = &outcome.reason {
            counter!(SIGNATURE_FAILURES_TOTAL, "reason" => why.kind()).increment(1);
        }
    }

    /// Counts one inbox insert by its answer.
    #[cfg(feature = "inbox")]
    pub(crate) fn inbox_stored(reason: &Reason) {
        if let Some(result) = stored_label(reason) {
            counter!(INBOX_STORED_TOTAL, "result" => result).increment(1);
        }
    }

    /// Measures a handler run.
    pub(crate) struct Timer(Option<Instant>);

    impl Timer {
        pub(crate) fn start() -> Self {
            // `wasm32-unknown-unknown` has no clock: `Instant::now` panics.
            let wasm = cfg!(all(target_arch = "wasm32", target_os = "unknown"));
            Self((!wasm).then(Instant::now))
        }

        /// Records an inline handler run of `route`.
        pub(crate) fn handler(self, route: RouteKind) {
            if let Some(start) = self.0 {
                histogram!(HANDLER_DURATION, "route" => route.as_str()).record(start.elapsed());
            }
        }

        /// Records a worker's handler run.
        #[cfg(feature = "inbox")]
        pub(crate) fn worker_handler(self) {
            if let Some(start) = self.0 {
                histogram!(WORKER_HANDLER_DURATION).record(start.elapsed());
            }
        }
    }

    /// Counts one worker attempt by how it ended.
    #[cfg(feature = "inbox")]
    pub(crate) fn attempt(attempt: Attempt) {
        counter!(WORKER_ATTEMPTS_TOTAL, "outcome" => attempt.as_str()).increment(1);
    }

    /// Counts a failure that made its event dead.
    #[cfg(feature = "inbox")]
    pub(crate) fn dead_letter() {
        counter!(DEAD_LETTERS_TOTAL).increment(1);
    }

    /// Counts `result` as a failed `op` when it is an error; returns it.
    #[cfg(feature = "inbox")]
    pub(crate) fn counted<T, E>(op: StoreOp, result: Result<T, E>) -> Result<T, E> {
        if result.is_err() {
            counter!(WORKER_STORE_ERRORS_TOTAL, "op" => op.as_str()).increment(1);
        }
        result
    }

    /// Records a successful lease call at `now_ms`.
    #[cfg(feature = "inbox")]
    pub(crate) fn polled(now_ms: u64) {
        gauge!(WORKER_LAST_POLL).set(seconds(now_ms));
    }

    /// Reads the store's counts and sets the depth gauges.
    #[cfg(feature = "inbox")]
    pub(crate) async fn inbox_depth(inbox: &dyn Inbox, now_ms: u64) {
        if let Ok(stats) = counted(StoreOp::Stats, inbox.stats(now_ms).await) {
            for state in State::ALL {
                #[allow(clippy::cast_precision_loss)] // counts stay far below 2^53
                let count = stats.count(state) as f64;
                gauge!(INBOX_DEPTH, "state" => state.as_str()).set(count);
            }
            gauge!(INBOX_OLDEST_READY_AGE).set(oldest_ready_age(&stats, now_ms));
        }
    }
}

#[cfg(not(feature = "metrics"))]
mod off {
    #[cfg(feature = "inbox")]
    use super::{Attempt, Reason, StoreOp};
    use crate::RouteKind;
    #[cfg(feature = "inbox")]
    use crate::inbox::Inbox;
    use crate::receiver::outcome::Outcome;

    pub(crate) fn answered(_outcome: &Outcome) {}

    #[cfg(feature = "inbox")]
    pub(crate) fn inbox_stored(_reason: &Reason) {}

    pub(crate) struct Timer;

    impl Timer {
        pub(crate) fn start() -> Self {
            Self
        }

        pub(crate) fn handler(self, _route: RouteKind) {}

        #[cfg(feature = "inbox")]
        pub(crate) fn worker_handler(self) {}
    }

    #[cfg(feature = "inbox")]
    pub(crate) fn attempt(_attempt: Attempt) {}

    #[cfg(feature = "inbox")]
    pub(crate) fn dead_letter() {}

    #[cfg(feature = "inbox")]
    pub(crate) fn counted<T, E>(_op: StoreOp, result: Result<T, E>) -> Result<T, E> {
        result
    }

    #[cfg(feature = "inbox")]
    pub(crate) fn polled(_now_ms: u64) {}

    /// Nothing to read the store for without a recorder.
    #[cfg(feature = "inbox")]
    pub(crate) async fn inbox_depth(_inbox: &dyn Inbox, _now_ms: u64) {}
}

#[cfg(feature = "metrics")]
pub(crate) use on::*;

#[cfg(not(feature = "metrics"))]
pub(crate) use off::*;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_has_the_prefix_and_is_unique() {
        for name in ALL {
            assert!(name.starts_with(PREFIX), "{name}");
            assert!(
                name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{name}"
            );
        }
        let mut names = ALL.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
    }

    #[test]
    fn every_status_the_receiver_sends_is_its_own_label() {
        for status in [
            200, 204, 400, 401, 403, 404, 405, 408, 409, 413, 415, 500, 503,
        ] {
            assert_eq!(status_label(status), status.to_string());
        }
        assert_eq!(status_label(418), "other");
        assert_eq!(status_label(0), "other");
    }

    #[test]
    fn store_results_come_from_the_store_reasons_only() {
        assert_eq!(stored_label(&Reason::Stored), Some("stored"));
        assert_eq!(stored_label(&Reason::Duplicate), Some("duplicate"));
        let why = "a body-derived reason".to_owned();
        assert_eq!(
            stored_label(&Reason::StoredUnreadable(why.clone())),
            Some("unreadable")
        );
        assert_eq!(stored_label(&Reason::InboxFailed(why)), Some("failed"));
        assert_eq!(stored_label(&Reason::Handled), None);
    }

    #[cfg(feature = "inbox")]
    #[test]
    fn oldest_ready_age_is_zero_without_a_ready_entry() {
        let mut stats = Stats::default();
        assert!(oldest_ready_age(&stats, 10_000).abs() < f64::EPSILON);
        stats.oldest_ready_ms = Some(7_500);
        assert!((oldest_ready_age(&stats, 10_000) - 2.5).abs() < f64::EPSILON);
        stats.oldest_ready_ms = Some(20_000);
        assert!(oldest_ready_age(&stats, 10_000).abs() < f64::EPSILON);
    }

    #[cfg(feature = "inbox")]
    #[test]
    fn attempt_and_op_labels_are_distinct() {
        let attempts = [
            Attempt::Ok,
            Attempt::Error,
            Attempt::Panic,
            Attempt::Timeout,
            Attempt::Unreadable,
            Attempt::LostLease,
        ]
        .map(Attempt::as_str);
        assert_eq!(
            attempts,
            [
                "ok",
                "error",
                "panic",
                "timeout",
                "unreadable",
                "lost_lease"
            ]
        );
        let ops = [
            StoreOp::Lease,
            StoreOp::Ack,
            StoreOp::Fail,
            StoreOp::Extend,
            StoreOp::Release,
            StoreOp::Prune,
            StoreOp::Stats,
        ]
        .map(StoreOp::as_str);
        assert_eq!(
            ops,
            [
                "lease", "ack", "fail", "extend", "release", "prune", "stats"
            ]
        );
    }
}
