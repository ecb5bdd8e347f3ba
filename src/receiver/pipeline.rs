//! The request path after admission: authenticate the body, parse it once,
//! claim it, run the handler against the deadline, settle the claim.

use std::time::Duration;

use super::claim::Claim;
use super::guard::{CatchUnwind, Panicked, Raced, race};
use super::handler::WebhookHandler;
use super::head::Admitted;
#[cfg(feature = "inbox")]
use super::outcome::Ids;
use super::outcome::{Dispatched, Reason};
use super::request::RawRequest;
use super::state::Receiver;
use super::trace::{record_ids, traced};
use super::work::{Work, run_handler};
use crate::RouteKind;
use crate::telemetry;

impl Receiver {
    /// Handles one request whose whole body is at hand, from start to
    /// finish; see the [module docs](crate::receiver) for the order of checks
    /// and the status of each outcome.
    ///
    /// `sleep` makes the deadline's timer: it is called once with the route's
    /// deadline ([`ReceiverConfig::deadline_of`](crate::ReceiverConfig::deadline_of))
    /// when the handler starts (pass `tokio::time::sleep` on tokio, or
    /// `|_| std::future::pending()` for no deadline). When the timer completes
    /// first, the handler future is dropped and the answer is `503`.
    ///
    /// The crate's own adapters run the same phases, reading the body in
    /// between; this entry point needs no runtime. It takes no in-flight
    /// place: that is the server's business.
    ///
    /// Never panics; a panicking handler is caught and answered with `500`.
    pub async fn dispatch<H, S, F>(
        &self,
        handler: &H,
        route: RouteKind,
        request: &RawRequest<'_>,
        sleep: S,
    ) -> Dispatched
    where
        H: WebhookHandler + ?Sized,
        S: FnOnce(Duration) -> F + Send,
        F: Future<Output = ()> + Send,
    {
        let deadline_after = self.config().deadline_of(route);
        traced(route, async move {
            let admitted = match self.admit(route, request) {
                Ok(admitted) => admitted,
                Err(rejected) => return *rejected,
            };
            if let Err(rejected) = admitted.authenticate(self, request.body) {
                return *rejected;
            }
            let deadline = async move { sleep(deadline_after).await };
            self.handle(handler, &admitted, request, deadline).await
        })
        .await
    }

    /// Parses an authenticated body, claims its dedupe key and runs the
    /// handler until `deadline`.
    pub(crate) async fn handle<H, D>(
        &self,
        handler: &H,
        admitted: &Admitted<'_>,
        request: &RawRequest<'_>,
        deadline: D,
    ) -> Dispatched
    where
        H: WebhookHandler + ?Sized,
        D: Future<Output = ()> + Send,
    {
        let route = admitted.route;
        let parsed = Work::parse(route, request);
        #[cfg(feature = "inbox")]
        if let (RouteKind::Events, Some(inbox)) = (route, &self.config().inbox)
            && let Some(entry) = super::store::entry_of(&parsed, request.body, admitted.now_ms)
        {
            let ids = match &parsed {
                Ok((_, ids)) => ids.clone(),
                Err(refused) => Ids::of_outcome(&refused.outcome),
            };
            record_ids(&ids);
            return super::store::store(inbox, entry, deadline)
                .await
                .with_ids(&ids);
        }
        let (work, ids) = match parsed {
            Ok(parsed) => parsed,
            Err(rejected) => return *rejected,
        };
        record_ids(&ids);
        let body = request.body;
        let claim = match Claim::take(self.config(), &work, body, admitted.now_ms).await {
            Ok(claim) => claim,
            Err(reason) => return Dispatched::from_reason(route, reason).with_ids(&ids),
        };
        // The handler's error is rendered (and dropped) inside `CatchUnwind`
        // too: its `Display` is handler code as well.
        let run = CatchUnwind::new(async move {
            run_handler(handler, work, body)
                .await
                .map_err(|error| error.to_string())
        });
        let timer = telemetry::Timer::start();
        let done = match race(run, deadline).await {
            Raced::Deadline => Dispatched::from_reason(route, Reason::DeadlineExceeded),
            Raced::Done(Err(Panicked)) => Dispatched::from_reason(route, Reason::HandlerPanicked),
            Raced::Done(Ok(Err(message))) => {
                Dispatched::from_reason(route, Reason::HandlerFailed(message))
            }
            Raced::Done(Ok(Ok(answer))) => answer.into_dispatched(route),
        };
        timer.handler(route);
        claim.settle(done.outcome.is_success()).await;
        done.with_ids(&ids)
    }
}
