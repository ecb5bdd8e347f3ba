use super::request::SignatureHeader;
use super::*;
use crate::dedupe::{Begin, DedupeKey, DedupeStore, Ticket};
use crate::sign;
use crate::{
    CallEvent, ChatEvent, FunctionMethod, FunctionRequest, FunctionResponse, InboundCallRequest,
    InboundChatRequest, InboundResponse, ParseError, TranscriptUpdatedEvent, TransferEvent,
    UnknownEvent, Verifier, VerifyError,
};
use crate::{Receiver, ReceiverConfig, RouteKind, WebhookHandler};
use std::fmt;
use std::future::poll_fn;
use std::net::IpAddr;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Waker;
use std::task::{Context, Poll};
use std::time::Duration;

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

    async fn on_function_call(
        &self,
        _request: FunctionRequest,
    ) -> Result<FunctionResponse, String> {
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
    ReceiverConfig::new()
}

/// The receiver's one clock is its verifier's.
fn verifier() -> Verifier {
    Verifier::new(KEY).unwrap().with_clock(|| NOW)
}

/// A request with this classified signature header.
fn with_header<'a>(request: RawRequest<'a>, signature: SignatureHeader<'a>) -> RawRequest<'a> {
    RawRequest {
        signature,
        ..request
    }
}

fn run_with<H: WebhookHandler>(
    handler: &H,
    route: RouteKind,
    config: &ReceiverConfig,
    request: &RawRequest<'_>,
) -> Dispatched {
    block_on(
        Receiver::new(verifier(), config.clone())
            .dispatch(handler, route, request, |_| std::future::pending()),
    )
}

fn run<H: WebhookHandler>(handler: &H, request: &RawRequest<'_>) -> Dispatched {
    run_with(handler, RouteKind::Events, &config(), request)
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
    let debug = format!("{c:?}");
    assert!(debug.contains("8388608"), "{debug}");
}

#[test]
fn futures_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    let v = verifier();
    let c = config();
    let request = RawRequest::post(CALL_ENDED);
    let h = Counting::new(Mode::Ok);
    let receiver = Receiver::new(v.clone(), c.clone());
    let fut = receiver.dispatch(&h, RouteKind::Events, &request, |_| std::future::pending());
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
        run_with(&h, RouteKind::Events, &small, &at)
            .response
            .status(),
        204
    );
    // One byte more, even correctly signed, does not reach the handler.
    let mut bigger = CALL_ENDED.to_vec();
    bigger.push(b' ');
    let sig2 = signed(&bigger);
    let over = RawRequest::post(&bigger).signature_values([sig2.as_bytes()]);
    let done = run_with(&h, RouteKind::Events, &small, &over);
    assert_eq!(done.response.status(), 413);
    assert_eq!(done.outcome.reason, Reason::PayloadTooLarge { limit });
    // A declared Content-Length over the limit is refused at admission.
    let declared = RawRequest::post(b"").with_content_length(Some(limit as u64 + 1));
    let receiver = Receiver::new(verifier(), small.clone());
    let Err(pre) = receiver.admit(RouteKind::Events, &declared).map(|_| ()) else {
        panic!("admitted a declared length over the limit");
    };
    assert_eq!(pre.response.status(), 413);
    let header = signed(CALL_ENDED);
    let fine = RawRequest::post(b"")
        .with_content_length(Some(limit as u64))
        .signature_values([header.as_bytes()]);
    assert!(receiver.admit(RouteKind::Events, &fine).is_ok());
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
        let done = run(&h, &with_header(RawRequest::post(CALL_ENDED), header));
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
            let done = run(&h, &with_header(RawRequest::post(body), header));
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
            route: RouteKind::Events,
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
    let done = block_on(Receiver::new(verifier(), config()).dispatch(
        &HangsHoldingPanicOnDrop,
        RouteKind::Events,
        &request,
        |_| std::future::ready(()),
    ));
    assert_eq!(done.response.status(), 503);
    assert_eq!(done.outcome.reason, Reason::DeadlineExceeded);
}

#[test]
fn deadline_is_503_and_drops_the_handler() {
    let h = Counting::new(Mode::Hang);
    let sig = signed(CALL_ENDED);
    let request = RawRequest::post(CALL_ENDED).signature_values([sig.as_bytes()]);
    let done = block_on(Receiver::new(verifier(), config()).dispatch(
        &h,
        RouteKind::Events,
        &request,
        |_| std::future::ready(()),
    ));
    assert_eq!(done.response.status(), 503);
    assert_eq!(done.outcome.reason, Reason::DeadlineExceeded);
    assert_eq!(done.outcome.call_id.as_deref(), Some("call_1"));
    assert_eq!(h.calls(), 1);
    // A ready deadline does not beat a handler that is ready too.
    let quick = Counting::new(Mode::Ok);
    let done = block_on(Receiver::new(verifier(), config()).dispatch(
        &quick,
        RouteKind::Events,
        &request,
        |_| std::future::ready(()),
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

/// Failures release the key, so Retell's retries are processed, and exactly
/// one attempt has the side effect.
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
                run_with(&h, RouteKind::Events, &config, &request)
                    .response
                    .status()
            })
            .collect();
        assert_eq!(statuses, [500, 500, 204, 204], "panic: {panic_instead}");
        assert_eq!(h.calls.load(Ordering::SeqCst), 3);
        assert_eq!(h.successes.load(Ordering::SeqCst), 1);
        let last = run_with(&h, RouteKind::Events, &config, &request);
        assert_eq!(last.outcome.reason, Reason::Duplicate);
        assert_eq!(last.outcome.call_id.as_deref(), Some("call_1"));
    }
}

/// A copy arriving while the first runs gets 409; when the first hits the
/// deadline (503) the key is released and a retry runs.
#[test]
fn dedupe_in_flight_is_409_and_deadline_releases() {
    let h = Counting::new(Mode::Hang);
    let config = dedupe_config();
    let v = verifier();
    let sig = signed(CALL_ENDED);
    let request = RawRequest::post(CALL_ENDED).signature_values([sig.as_bytes()]);
    let trigger = Trigger::new();
    let receiver = Receiver::new(v.clone(), config.clone());
    let mut first =
        Box::pin(receiver.dispatch(&h, RouteKind::Events, &request, |_| trigger.wait()));
    let mut cx = Context::from_waker(Waker::noop());
    assert!(first.as_mut().poll(&mut cx).is_pending());
    assert_eq!(h.calls(), 1);
    let copy = run_with(&h, RouteKind::Events, &config, &request);
    assert_eq!(copy.response.status(), 409);
    assert_eq!(copy.outcome.reason, Reason::InFlight);
    assert_eq!(h.calls(), 1);
    trigger.fire();
    let Poll::Ready(first) = first.as_mut().poll(&mut cx) else {
        panic!("deadline did not fire")
    };
    assert_eq!(first.response.status(), 503);
    // Released: the retry reaches the handler again.
    let retry = block_on(Receiver::new(v.clone(), config.clone()).dispatch(
        &h,
        RouteKind::Events,
        &request,
        |_| std::future::ready(()),
    ));
    assert_eq!(retry.response.status(), 503);
    assert_eq!(h.calls(), 2);
}

#[test]
fn dedupe_never_applies_to_requests_that_expect_an_answer() {
    let config = dedupe_config();
    let inbound = include_bytes!("../../tests/fixtures/call_inbound_request.json");
    let function = include_bytes!("../../tests/fixtures/custom_function_request.json");
    let h = Counting::new(Mode::Ok);
    for (route, body) in [
        (RouteKind::Events, &inbound[..]),
        (RouteKind::Function, &function[..]),
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
            _: u64,
        ) -> StoreFuture<'a, Result<Begin, DedupeError>> {
            Box::pin(async { Err(DedupeError("connection refused".to_owned())) })
        }
        fn finish<'a>(
            &'a self,
            _: &'a DedupeKey,
            _: Ticket,
            _: u64,
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
    let done = run_with(&h, RouteKind::Events, &config().with_dedupe(Down), &request);
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
            _: u64,
        ) -> StoreFuture<'a, Result<Begin, DedupeError>> {
            assert!(!self.begin_panics, "store bug in begin");
            Box::pin(async { Ok(Begin::Fresh(Ticket::new(1))) })
        }
        fn finish<'a>(
            &'a self,
            _: &'a DedupeKey,
            _: Ticket,
            _: u64,
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
    let done = run_with(
        &h,
        RouteKind::Events,
        &config().with_dedupe(store),
        &request,
    );
    assert_eq!(done.response.status(), 503);
    assert!(matches!(done.outcome.reason, Reason::DedupeFailed(_)));
    assert_eq!(h.calls(), 0);
    for (mode, status) in [(Mode::Ok, 204), (Mode::Fail, 500)] {
        let h = Counting::new(mode);
        let store = Buggy {
            begin_panics: false,
        };
        let done = run_with(
            &h,
            RouteKind::Events,
            &config().with_dedupe(store),
            &request,
        );
        assert_eq!(done.response.status(), status);
        assert_eq!(h.calls(), 1);
    }
}

/// The alert fires at the 10th mismatch in a row, then at most once a minute;
/// other failures neither count nor reset; a verified request resets the
/// streak.
#[test]
fn mismatch_streak_alert_is_rate_limited() {
    let now = Arc::new(std::sync::atomic::AtomicU64::new(NOW));
    let clock = Arc::clone(&now);
    let verifier = Verifier::new(KEY)
        .unwrap()
        .with_clock(move || clock.load(Ordering::SeqCst));
    let receiver = Receiver::new(verifier, ReceiverConfig::new());
    let send = |header: &str| {
        let request = RawRequest::post(CALL_ENDED).signature_values([header.as_bytes()]);
        block_on(
            receiver.dispatch(&Defaults, RouteKind::Events, &request, |_| {
                std::future::pending()
            }),
        )
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
    assert_eq!(receiver.signature_mismatch_streak(), 12);
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
    assert_eq!(receiver.signature_mismatch_streak(), 0);
    // Clones share the streak (one per adapter, whatever the workers).
    let clone = receiver.clone();
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
    let body = include_bytes!("../../tests/fixtures/call_inbound_request.json");
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
    let body = include_bytes!("../../tests/fixtures/custom_function_request.json");
    let sig = signed(body);
    let request = RawRequest::post(body).signature_values([sig.as_bytes()]);
    let h = Counting::new(Mode::Ok);
    let done = run_with(&h, RouteKind::Function, &config(), &request);
    assert_eq!(done.response.status(), 200);
    assert_eq!(done.response.body(), b"booked");
    assert!(done.response.content_type().is_some());
    assert_eq!(done.outcome.route, RouteKind::Function);
    assert_eq!(h.calls(), 1);
    // Args-only bodies are function calls too.
    let args = include_bytes!("../../tests/fixtures/custom_function_request_args_only.json");
    let sig = signed(args);
    let request = RawRequest::post(args).signature_values([sig.as_bytes()]);
    let done = run_with(&Defaults, RouteKind::Function, &config(), &request);
    assert_eq!(done.response.status(), 200);
    assert_eq!(done.response.body(), b"function not implemented");
    // Not an object: 400 on the function route as well.
    let sig = signed(b"[]");
    let request = RawRequest::post(b"[]").signature_values([sig.as_bytes()]);
    let done = run_with(&h, RouteKind::Function, &config(), &request);
    assert_eq!(done.response.status(), 400);
}

/// Retell signs the body and the timestamp, not the method or the query: a
/// signature captured from a `GET` tool call (empty body) replayed within
/// its window as `DELETE /function?amount=1000000` reaches the handler as
/// such. With the replay guard on it is refused (`401`); a call that failed
/// hands its signature back, so Retell's retry with the same one gets
/// through.
#[test]
fn the_replay_guard_refuses_a_function_signature_used_before() {
    let sig = signed(b"");
    let get = RawRequest::new("GET", b"").signature_values([sig.as_bytes()]);
    let replay = RawRequest::new("DELETE", b"")
        .with_query("customer=999&amount=1000000")
        .signature_values([sig.as_bytes()]);
    let h = Counting::new(Mode::Ok);
    let receiver = Receiver::new(verifier(), config());
    for request in [&get, &replay] {
        let done = block_on(
            receiver.dispatch(&h, RouteKind::Function, request, |_| std::future::pending()),
        );
        assert_eq!(done.response.status(), 200);
    }
    assert_eq!(h.calls(), 2, "without the guard the replay is served");

    let guarded = Receiver::new(verifier(), config().with_function_replay_guard());
    let dispatch = |h: &Counting, request| {
        block_on(guarded.dispatch(h, RouteKind::Function, request, |_| std::future::pending()))
    };
    let h = Counting::new(Mode::Ok);
    assert_eq!(dispatch(&h, &get).response.status(), 200);
    let done = dispatch(&h, &replay);
    assert_eq!(done.response.status(), 401);
    assert_eq!(
        done.outcome.reason,
        Reason::Unauthorized(VerifyError::Replayed)
    );
    assert_eq!(h.calls(), 1);

    // A failed call: its retry, same signature, is served.
    let sig = signed(br#"{"a":1}"#);
    let call = RawRequest::post(br#"{"a":1}"#).signature_values([sig.as_bytes()]);
    let failing = Counting::new(Mode::Fail);
    assert_eq!(dispatch(&failing, &call).response.status(), 500);
    assert_eq!(dispatch(&h, &call).response.status(), 200);
    assert_eq!(dispatch(&h, &call).response.status(), 401);
    // Events are not affected: they are deduplicated by their ids instead.
    let body = br#"{"event":"call_ended","call":{"call_id":"call_1"}}"#;
    let sig = signed(body);
    let event = RawRequest::post(body).signature_values([sig.as_bytes()]);
    for _ in 0..2 {
        let done =
            block_on(guarded.dispatch(&h, RouteKind::Events, &event, |_| std::future::pending()));
        assert_eq!(done.response.status(), 204);
    }
}

/// A Retell webhook POSTed to a function URL (a misconfigured webhook URL)
/// is refused with a `400` that names the events route, never answered `200`
/// as an "arguments only" function call: Retell retries it, and the handler's
/// function method never sees it.
#[test]
fn an_event_on_the_function_route_is_refused_not_acknowledged() {
    let h = Counting::new(Mode::Ok);
    for body in [
        &b"{\"event\":\"call_ended\",\"call\":{\"call_id\":\"call_1\"}}"[..],
        include_bytes!("../../tests/fixtures/call_analyzed_maximal.json"),
        include_bytes!("../../tests/fixtures/chat_ended.json"),
        include_bytes!("../../tests/fixtures/call_inbound_request.json"),
    ] {
        let sig = signed(body);
        let request = RawRequest::post(body).signature_values([sig.as_bytes()]);
        let done = run_with(&h, RouteKind::Function, &config(), &request);
        assert_eq!(done.response.status(), 400);
        let Reason::BadRequest(BadBody::EventOnFunctionRoute { event }) = &done.outcome.reason
        else {
            panic!("{:?}", done.outcome.reason);
        };
        assert_eq!(done.outcome.event.as_deref(), Some(*event));
        assert!(done.outcome.to_string().contains("events route"));
    }
    assert_eq!(h.calls(), 0);
    // Arguments that merely mention an event, or name an unknown one, are
    // still a function call.
    for args in [
        &br#"{"event":"call_ended","call":"not an object"}"#[..],
        br#"{"event":"birthday","call":{"call_id":"c"}}"#,
        br#"{"event":"call_ended"}"#,
    ] {
        let sig = signed(args);
        let request = RawRequest::post(args).signature_values([sig.as_bytes()]);
        let done = run_with(&h, RouteKind::Function, &config(), &request);
        assert_eq!(
            done.response.status(),
            200,
            "{}",
            String::from_utf8_lossy(args)
        );
    }
    assert_eq!(h.calls(), 3);
}

/// One request reads the clock once and parses its signature header once:
/// admission hands the instant and the signature to every later step (the
/// window, the digest, the key monitor and the dedupe store).
#[test]
fn a_request_reads_the_clock_once() {
    let reads = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&reads);
    let verifier = Verifier::new(KEY).unwrap().with_clock(move || {
        counted.fetch_add(1, Ordering::SeqCst);
        NOW
    });
    let config = config().with_dedupe(crate::dedupe::MemoryDedupe::new());
    let receiver = Receiver::new(verifier, config);
    let sig = signed(CALL_ENDED);
    let forged = sign(CALL_ENDED, "another_key", NOW);
    for (header, status) in [(&sig, 204), (&sig, 204), (&forged, 401)] {
        let request = RawRequest::post(CALL_ENDED).signature_values([header.as_bytes()]);
        let before = reads.load(Ordering::SeqCst);
        let done = block_on(
            receiver.dispatch(&Defaults, RouteKind::Events, &request, |_| {
                std::future::pending()
            }),
        );
        assert_eq!(done.response.status(), status);
        assert_eq!(reads.load(Ordering::SeqCst) - before, 1);
    }
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
    async fn on_transcript_updated(&self, _: TranscriptUpdatedEvent) -> Result<(), Self::Error> {
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
    async fn on_call_inbound(&self, _: InboundCallRequest) -> Result<InboundResponse, Self::Error> {
        self.hit("on_call_inbound")?;
        Ok(InboundResponse::call())
    }
    async fn on_chat_inbound(&self, _: InboundChatRequest) -> Result<InboundResponse, Self::Error> {
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
                &include_bytes!(concat!("../../tests/fixtures/", $name))[..],
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
        assert_eq!(
            bad.parse::<IpRange>(),
            Err(IpRangeParseError::Invalid),
            "{bad}"
        );
    }
}

#[test]
fn ipv4_mapped_blocks_never_widen_to_every_ipv4_address() {
    // Every mapped address would be every IPv4 address: refused, with a
    // reason that names the IPv4 spelling.
    for all in [
        "::ffff:0:0/96",
        "::ffff:10.1.2.3/96",
        "::ffff:100.20.5.228/96",
    ] {
        assert_eq!(
            all.parse::<IpRange>(),
            Err(IpRangeParseError::AllIpv4),
            "{all}"
        );
    }
    assert_eq!(
        IpRange::new(ip("::ffff:0:0"), 96),
        Err(IpRangeParseError::AllIpv4)
    );
    assert!(IpRangeParseError::AllIpv4.to_string().contains("0.0.0.0/0"));
    // Narrower mapped blocks are exactly their IPv4 block.
    for (mapped, v4) in [
        ("::ffff:10.0.0.0/104", "10.0.0.0/8"),
        ("::ffff:0:0/97", "0.0.0.0/1"),
        ("::ffff:192.168.1.7/120", "192.168.1.0/24"),
    ] {
        let r: IpRange = mapped.parse().unwrap();
        assert_eq!(r, v4.parse().unwrap(), "{mapped}");
    }
    let half: IpRange = "::ffff:0:0/97".parse().unwrap();
    assert!(half.contains(ip("127.0.0.1")) && !half.contains(ip("128.0.0.1")));
    // An IPv6 block containing the mapped range matches IPv6 clients only.
    for wide in ["::/0", "::/80", "::ffff:0:0/95"] {
        let r: IpRange = wide.parse().unwrap();
        assert!(!r.contains(ip("203.0.113.9")), "{wide}");
        assert!(!r.contains(ip("::ffff:203.0.113.9")), "{wide}");
    }
    // The IPv4 spelling still means every IPv4 address, as written.
    assert!(
        "0.0.0.0/0"
            .parse::<IpRange>()
            .unwrap()
            .contains(ip("203.0.113.9"))
    );

    // A trusted proxy written as a narrow mapped block does not make every
    // peer's `X-Forwarded-For` count.
    let proxies: IpRange = "::ffff:10.0.0.0/104".parse().unwrap();
    let allow = SourceAllowlist::retell().with_trusted_proxies([proxies]);
    let spoof: [&[u8]; 1] = [b"100.20.5.228"];
    assert_eq!(
        allow.check(Some(ip("203.0.113.9")), spoof),
        Err(SourceRejection::NotAllowed(ip("203.0.113.9")))
    );
    assert_eq!(
        allow.check(Some(ip("::ffff:10.1.2.3")), spoof),
        Ok(RETELL_SOURCE_IP)
    );
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
    let done = run_with(&h, RouteKind::Events, &config, &request);
    assert_eq!(done.response.status(), 403);
    let ok = RawRequest::post(CALL_ENDED)
        .signature_values([sig.as_bytes()])
        .with_peer(Some(RETELL_SOURCE_IP));
    assert_eq!(
        run_with(&h, RouteKind::Events, &config, &ok)
            .response
            .status(),
        204
    );
    // The signature is still required from an allowed source.
    let unsigned = RawRequest::post(CALL_ENDED).with_peer(Some(RETELL_SOURCE_IP));
    assert_eq!(
        run_with(&h, RouteKind::Events, &config, &unsigned)
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
        assert!(!text.contains(KEY) && !text.contains(&wrong[16..]) && !text.contains("call_1"));
    }
}

/// Records what a function handler was given.
#[derive(Default)]
struct Tools {
    seen: std::sync::Mutex<Vec<(FunctionMethod, String, Option<String>)>>,
}

impl WebhookHandler for Tools {
    type Error = String;

    async fn on_function_call(&self, request: FunctionRequest) -> Result<FunctionResponse, String> {
        let name = request.name().map(str::to_owned);
        let slot = request.query_param("slot").unwrap_or_default();
        self.seen
            .lock()
            .map_err(|_| "poisoned".to_owned())?
            .push((request.method, slot, name));
        Ok(FunctionResponse::text("ok"))
    }
}

#[test]
fn functions_take_every_tool_method_with_the_query() {
    let tools = Tools::default();
    let receiver = Receiver::new(verifier(), config());
    let wrapped = br#"{"name":"book","call":{"call_id":"c1"},"args":{}}"#;
    for (method, body) in [
        ("GET", &b""[..]),
        ("DELETE", b""),
        ("POST", wrapped),
        ("PUT", wrapped),
        ("PATCH", b"{\"a\":1}"),
    ] {
        let sig = signed(body);
        let request = RawRequest::new(method, body)
            .with_query("slot=10%3A00&x=1")
            .signature_values([sig.as_bytes()]);
        let done = block_on(
            receiver.dispatch(&tools, RouteKind::Function, &request, |_| {
                std::future::pending()
            }),
        );
        assert_eq!(done.response.status(), 200, "{method}");
    }
    let seen = tools.seen.lock().unwrap().clone();
    let methods: Vec<_> = seen.iter().map(|(m, _, _)| m.as_str()).collect();
    assert_eq!(methods, ["GET", "DELETE", "POST", "PUT", "PATCH"]);
    assert!(seen.iter().all(|(_, slot, _)| slot == "10:00"));
    assert_eq!(seen[2].2.as_deref(), Some("book"));
    assert_eq!(seen[0].2, None);
    // Other methods, and anything but POST on the event route, are 405.
    for (route, method) in [(RouteKind::Function, "OPTIONS"), (RouteKind::Events, "GET")] {
        let request = RawRequest::new(method, b"");
        let done = block_on(receiver.dispatch(&tools, route, &request, |_| std::future::pending()));
        assert_eq!(done.response.status(), 405, "{route} {method}");
    }
}

#[test]
fn functions_get_their_own_deadline() {
    let c = ReceiverConfig::new();
    assert_eq!(c.function_deadline(), Duration::from_secs(120));
    assert_eq!(c.deadline_of(RouteKind::Function), Duration::from_secs(120));
    assert_eq!(c.deadline_of(RouteKind::Events), Duration::from_secs(9));
    // The timer is made from the route's deadline.
    let asked = std::sync::Mutex::new(Vec::new());
    let receiver = Receiver::new(
        verifier(),
        config().with_function_deadline(Duration::from_secs(30)),
    );
    // The timer is made when the handler is still running after its first poll.
    let hangs = Counting::new(Mode::Hang);
    for (route, body) in [
        (RouteKind::Function, &br#"{"a":1}"#[..]),
        (RouteKind::Events, CALL_ENDED),
    ] {
        let sig = signed(body);
        let request = RawRequest::post(body).signature_values([sig.as_bytes()]);
        let done = block_on(receiver.dispatch(&hangs, route, &request, |d| {
            asked.lock().unwrap().push(d);
            std::future::ready(())
        }));
        assert_eq!(done.response.status(), 503);
    }
    assert_eq!(
        *asked.lock().unwrap(),
        [Duration::from_secs(30), Duration::from_secs(9)]
    );
}

#[test]
fn shared_handlers_are_handlers() {
    let shared = Arc::new(Counting::new(Mode::Ok));
    let sig = signed(CALL_ENDED);
    let request = RawRequest::post(CALL_ENDED).signature_values([sig.as_bytes()]);
    assert_eq!(run(&Arc::clone(&shared), &request).response.status(), 204);
    assert_eq!(run(&&*shared, &request).response.status(), 204);
    assert_eq!(shared.calls(), 2);
}

#[test]
fn an_unconfigured_receiver_answers_500() {
    let receiver = Receiver::unconfigured(config());
    let sig = signed(CALL_ENDED);
    let request = RawRequest::post(CALL_ENDED).signature_values([sig.as_bytes()]);
    let done = block_on(
        receiver.dispatch(&Defaults, RouteKind::Events, &request, |_| {
            std::future::pending()
        }),
    );
    assert_eq!(done.response.status(), 500);
    assert_eq!(done.outcome.reason, Reason::NotConfigured);
}

#[test]
fn a_tool_router_serves_several_tools_on_one_url() {
    let tools: ToolRouter<String> = ToolRouter::new()
        .tool("book", |_| async { Ok(FunctionResponse::text("booked")) })
        .tool("fail", |_| async { Err("no slots".to_owned()) });
    let receiver = Receiver::new(verifier(), config());
    let ask = |body: &[u8]| {
        let sig = signed(body);
        let request = RawRequest::post(body).signature_values([sig.as_bytes()]);
        let done = block_on(
            receiver.dispatch(&tools, RouteKind::Function, &request, |_| {
                std::future::pending()
            }),
        );
        (done.response.status(), done.response.body().to_vec())
    };
    let wrapped =
        |name: &str| format!(r#"{{"name":"{name}","call":{{"call_id":"c1"}},"args":{{}}}}"#);
    assert_eq!(ask(wrapped("book").as_bytes()), (200, b"booked".to_vec()));
    assert_eq!(ask(wrapped("fail").as_bytes()).0, 500);
    assert_eq!(
        ask(wrapped("other").as_bytes()),
        (200, b"unknown tool".to_vec())
    );
    assert_eq!(ask(br#"{"date":"x"}"#), (200, b"unknown tool".to_vec()));
    let with_fallback = ToolRouter::<String>::new()
        .fallback(|request| async move { Ok(FunctionResponse::text(request.method.as_str())) });
    let sig = signed(b"");
    let get = RawRequest::new("GET", b"").signature_values([sig.as_bytes()]);
    let done = block_on(
        receiver.dispatch(&with_fallback, RouteKind::Function, &get, |_| {
            std::future::pending()
        }),
    );
    assert_eq!(done.response.body(), b"GET");
}
