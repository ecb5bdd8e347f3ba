//! `tracing` support (feature `tracing`): one span per request and one event
//! per outcome. Without the feature every function here is a no-op, so call
//! sites need no `cfg`.
//!
//! Span `retell_webhook` fields: `route`, `event`, `call_id`, `chat_id` (the
//! ids recorded as soon as the body is parsed, so the handler's own events
//! carry them), `status` and `reason` (recorded with the answer). The event at
//! the end is the [`Outcome`] line: `INFO`, `WARN` for `503`, `ERROR` for
//! `500` and for the wrong-key alert.
//!
//! Nothing from the body reaches a field but the event name and the ids, and
//! those are escaped as in the outcome line; never a key, a digest or a
//! signature header.
//!
//! [`traced`] also counts each request's answer (feature `metrics`, see
//! `crate::telemetry`), with or without `tracing`.

use std::future::Future;

use super::config::RouteKind;
use super::outcome::Dispatched;
use super::outcome::Ids;
use crate::telemetry;

#[cfg(feature = "tracing")]
mod on {
    use std::fmt;
    use std::future::Future;

    use tracing::Instrument as _;
    use tracing::field::{Empty, display};

    use crate::RouteKind;
    use crate::receiver::outcome::{Dispatched, Ids, Outcome};

    /// A body-derived string as it appears in the outcome line.
    struct LogValue<'a>(&'a str);

    impl fmt::Display for LogValue<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            crate::receiver::outcome::write_log_value(f, self.0)
        }
    }

    pub(crate) async fn traced<F>(route: RouteKind, request: F) -> Dispatched
    where
        F: Future<Output = Dispatched>,
    {
        let span = tracing::info_span!(
            "retell_webhook",
            route = %route,
            event = Empty,
            call_id = Empty,
            chat_id = Empty,
            status = Empty,
            reason = Empty,
        );
        let done = request.instrument(span.clone()).await;
        let outcome = &done.outcome;
        record(
            &span,
            outcome.event.as_deref(),
            outcome.call_id.as_deref(),
            outcome.chat_id.as_deref(),
        );
        span.record("status", outcome.status);
        span.record("reason", display(&outcome.reason));
        span.in_scope(|| emit(outcome));
        done
    }

    fn record(
        span: &tracing::Span,
        event: Option<&str>,
        call_id: Option<&str>,
        chat_id: Option<&str>,
    ) {
        for (name, value) in [("event", event), ("call_id", call_id), ("chat_id", chat_id)] {
            if let Some(value) = value {
                span.record(name, display(LogValue(value)));
            }
        }
    }

    pub(crate) fn record_ids(ids: &Ids) {
        record(
            &tracing::Span::current(),
            ids.event.as_deref(),
            ids.call_id.as_deref(),
            ids.chat_id.as_deref(),
        );
    }

    fn emit(outcome: &Outcome) {
        if outcome.key_alert.is_some() || outcome.status == 500 {
            tracing::error!(target: "retell_webhooks", "{outcome}");
        } else if outcome.status == 503 {
            tracing::warn!(target: "retell_webhooks", "{outcome}");
        } else {
            tracing::info!(target: "retell_webhooks", "{outcome}");
        }
    }
}

/// Runs one request inside its span, logs its outcome and counts it.
#[cfg(feature = "tracing")]
pub(crate) async fn traced<F>(route: RouteKind, request: F) -> Dispatched
where
    F: Future<Output = Dispatched>,
{
    let done = on::traced(route, request).await;
    telemetry::answered(&done.outcome);
    done
}

/// Runs one request (no `tracing`: no span, no log) and counts it.
#[cfg(not(feature = "tracing"))]
pub(crate) async fn traced<F>(_route: RouteKind, request: F) -> Dispatched
where
    F: Future<Output = Dispatched>,
{
    let done = request.await;
    telemetry::answered(&done.outcome);
    done
}

/// Records the ids of the parsed body on the request's span.
#[cfg(feature = "tracing")]
pub(crate) fn record_ids(ids: &Ids) {
    on::record_ids(ids);
}

/// Records the ids of the parsed body (no `tracing`: nothing to do).
#[cfg(not(feature = "tracing"))]
pub(crate) fn record_ids(_ids: &Ids) {}
