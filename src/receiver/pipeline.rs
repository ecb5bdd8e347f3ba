//! The request path after admission: authenticate the body, parse it once,
//! claim it, run the handler against the deadline, settle the claim.

use std::time::Duration;

use super::claim::Claim;
use super::guard::{CatchUnwind, Fused, Panicked, Raced, alongside, race};
use super::handler::WebhookHandler;
use super::head::Admitted;
use super::outcome::{Dispatched, Ids, Reason};
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
    /// `sleep` makes the timers: it is called once with the route's deadline
    /// ([`ReceiverConfig::deadline_of`](crate::ReceiverConfig::deadline_of))
    /// once the body is verified, and with deduplication on, every third of
    /// the [dedupe lease](crate::ReceiverConfig::dedupe_lease) while the
    /// handler runs, to renew its claim (pass `tokio::time::sleep` on tokio,
    /// or `|_| std::future::pending()` for no deadline and no renewal). The
    /// deadline bounds the dedupe claim, the handler and the recording of
    /// its verdict: when it passes during the handler, the handler future is
    /// dropped and the answer is `503`; when it passes while the verdict is
    /// being recorded, the handler's answer stands (see [`crate::dedupe`]).
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
        S: Fn(Duration) -> F + Send + Sync,
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
            let deadline = sleep(deadline_after);
            let parsed = Work::parse(route, request);
            self.handle(handler, &admitted, request, parsed, deadline, &sleep)
                .await
        })
        .await
    }

    /// Takes a parsed, authenticated body: claims its dedupe key (or stores
    /// it in the inbox), runs the handler (renewing the claim on `tick`'s
    /// timers) and settles the claim, all before `deadline`.
    pub(crate) async fn handle<H, D, T, TF>(
        &self,
        handler: &H,
        admitted: &Admitted<'_>,
        request: &RawRequest<'_>,
        parsed: Result<(Work, Ids), Box<Dispatched>>,
        deadline: D,
        tick: &T,
    ) -> Dispatched
    where
        H: WebhookHandler + ?Sized,
        D: Future<Output = ()> + Send,
        T: Fn(Duration) -> TF + Sync + ?Sized,
        TF: Future<Output = ()> + Send,
    {
        let route = admitted.route;
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
        let replay = match admitted.claim_replay(self) {
            Ok(claim) => claim,
            Err(rejected) => return rejected.with_ids(&ids),
        };
        record_ids(&ids);
        let body = request.body;
        // One deadline for the claim, the handler and the verdict, so the
        // answer never waits on the store past it.
        let mut deadline = Fused::new(deadline);
        let taken = Claim::take(self.config(), &work, body, admitted.now_ms);
        let claim = match race(taken, &mut deadline).await {
            Raced::Done(Ok(claim)) => claim,
            Raced::Done(Err(reason)) => {
                return Dispatched::from_reason(route, reason).with_ids(&ids);
            }
            Raced::Deadline => {
                return Dispatched::from_reason(route, Reason::DeadlineExceeded).with_ids(&ids);
            }
        };
        // The handler's error is rendered (and dropped) inside `CatchUnwind`
        // too: its `Display` is handler code as well.
        let run = CatchUnwind::new(async move {
            run_handler(handler, work, body)
                .await
                .map_err(|error| error.to_string())
        });
        let clock = || {
            self.verifier()
                .and_then(|verifier| verifier.now_ms().ok())
                .unwrap_or(admitted.now_ms)
        };
        let timer = telemetry::Timer::start();
        let raced = race(alongside(run, claim.renew(tick, clock)), &mut deadline).await;
        let done = match raced {
            Raced::Deadline => {
                // No time left to record a verdict: the key is handed back
                // in the background.
                drop(claim);
                timer.handler(route);
                return Dispatched::from_reason(route, Reason::DeadlineExceeded).with_ids(&ids);
            }
            Raced::Done(Err(Panicked)) => Dispatched::from_reason(route, Reason::HandlerPanicked),
            Raced::Done(Ok(Err(message))) => {
                Dispatched::from_reason(route, Reason::HandlerFailed(message))
            }
            Raced::Done(Ok(Ok(answer))) => answer.into_dispatched(route),
        };
        timer.handler(route);
        claim.settle(done.outcome.is_success(), &mut deadline).await;
        if let Some(replay) = replay {
            replay.settle(done.outcome.is_success());
        }
        done.with_ids(&ids)
    }
}
