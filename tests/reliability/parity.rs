//! The same request gets the same answer from every receiver: status,
//! `Content-Type`, `Allow` and body equal to what the entry point returns, over
//! HTTP a `Content-Length` equal to the body (none for `204`), the same
//! handler calls and one outcome per request with the answer's status.
//!
//! A table row also states what the answer must be: its status, and where it
//! matters its body, JSON, content type and `Allow`, the handler method it
//! reaches and what its outcome says. A row without a handler method reaches
//! the handler once if its status is `2xx`, never otherwise. The rows of a
//! table run in order on one receiver of each kind, so a row can depend on the
//! ones before it (a handler that panicked, then the next request served).

use retell_webhooks::{
    ReceiverConfig, RouteKind,
    receiver::{Reason, UNAUTHORIZED_BODY},
};
use serde_json::{Value, json};

use crate::http::{Framing, Reply, call_ended_of_len, fixture, long_call_analyzed};
use crate::receivers::{
    Behaviour, KEY, NOW, Probe, Receiver, SHORT_DEADLINE, Via, all_vias, config, signature,
    verifier,
};

/// The body limit when none is configured.
const DEFAULT_LIMIT: usize = 8 * 1024 * 1024;
const INTERNAL_ERROR: &[u8] = b"internal server error\n";
const TOO_LARGE: &[u8] = b"payload too large\n";

/// What a client can tell apart, `Date` and connection handling aside.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Answer {
    status: u16,
    content_type: Option<String>,
    allow: Option<String>,
    body: String,
}

fn answer(reply: &Reply) -> Answer {
    Answer {
        status: reply.status,
        content_type: reply.header("content-type").map(str::to_owned),
        allow: reply.header("allow").map(str::to_owned),
        body: String::from_utf8_lossy(&reply.body).into_owned(),
    }
}

/// One request of a table, and what its answer must be besides the status.
struct Request {
    what: &'static str,
    method: &'static str,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    framing: Framing,
    expect: Expect,
}

#[derive(Default)]
struct Expect {
    /// The handler methods the request reaches, in order.
    methods: Option<Vec<&'static str>>,
    body: Option<Vec<u8>>,
    /// A value at a JSON pointer of the body.
    json: Option<(&'static str, Value)>,
    content_type: Option<&'static str>,
    allow: Option<&'static str>,
    reason: Option<Reason>,
    /// The event name and call id the outcome carries.
    ids: Option<(&'static str, &'static str)>,
    /// Over HTTP, the answer says `Connection: close`.
    closes: bool,
}

fn request(what: &'static str, method: &'static str, body: &[u8]) -> Request {
    Request {
        what,
        method,
        headers: Vec::new(),
        body: body.to_vec(),
        framing: Framing::Length,
        expect: Expect::default(),
    }
}

impl Request {
    fn signed(self) -> Self {
        self.signed_as("X-Retell-Signature")
    }

    /// Signed, with the header name spelled `name`.
    fn signed_as(mut self, name: &'static str) -> Self {
        let sig = signature(&self.body);
        self.headers.push((name, sig));
        self
    }

    fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }

    fn chunked(mut self) -> Self {
        self.framing = Framing::Chunked;
        self
    }

    /// Declares a `Content-Length` of `len` whatever the body.
    fn declared_length(mut self, len: u64) -> Self {
        self.framing = Framing::DeclaredLength(len);
        self
    }

    /// Reaches the handler once, at `method`.
    fn handled_by(mut self, method: &'static str) -> Self {
        self.expect.methods = Some(vec![method]);
        self
    }

    fn answers(mut self, body: &[u8]) -> Self {
        self.expect.body = Some(body.to_vec());
        self
    }

    fn answers_json(mut self, pointer: &'static str, value: Value) -> Self {
        self.expect.json = Some((pointer, value));
        self
    }

    fn content_type(mut self, content_type: &'static str) -> Self {
        self.expect.content_type = Some(content_type);
        self
    }

    fn allow(mut self, allow: &'static str) -> Self {
        self.expect.allow = Some(allow);
        self
    }

    fn reason(mut self, reason: Reason) -> Self {
        self.expect.reason = Some(reason);
        self
    }

    fn ids(mut self, event: &'static str, call_id: &'static str) -> Self {
        self.expect.ids = Some((event, call_id));
        self
    }

    fn closes(mut self) -> Self {
        self.expect.closes = true;
        self
    }
}

/// Checks the entry point's answer to `req` against the row.
fn check_reference(got: &Answer, req: &Request, status: u16) {
    let what = req.what;
    assert_eq!(got.status, status, "{what}: {got:?}");
    let expect = &req.expect;
    if status == 204 {
        assert_eq!(got.body, "", "{what}");
    }
    if let Some(body) = &expect.body {
        assert_eq!(got.body, String::from_utf8_lossy(body), "{what}");
    }
    if let Some((pointer, value)) = &expect.json {
        let json: Value =
            serde_json::from_str(&got.body).unwrap_or_else(|e| panic!("{what}: {e}: {}", got.body));
        assert_eq!(json.pointer(pointer), Some(value), "{what}: {json}");
    }
    if let Some(content_type) = expect.content_type {
        assert_eq!(got.content_type.as_deref(), Some(content_type), "{what}");
    }
    if let Some(allow) = expect.allow {
        assert_eq!(got.allow.as_deref(), Some(allow), "{what}");
    }
}

/// Sends every request of `table` to every receiver (fresh probe and a copy of
/// `config` each), checks each answer against the row (the entry point's) and
/// against the entry point's answer (the others'), the handler methods each
/// request reached and the outcome each one left. Returns the entry point's
/// answers.
async fn agree(
    behaviour: Behaviour,
    config: &ReceiverConfig,
    route: RouteKind,
    table: &[(Request, u16)],
) -> Vec<Answer> {
    let receiver = || retell_webhooks::Receiver::new(verifier(), config.clone());
    agree_on(behaviour, receiver, route, table).await
}

/// [`agree`] with each receiver around a fresh `receiver()`.
async fn agree_on(
    behaviour: Behaviour,
    receiver: impl Fn() -> retell_webhooks::Receiver,
    route: RouteKind,
    table: &[(Request, u16)],
) -> Vec<Answer> {
    let mut reference: Vec<Answer> = Vec::new();
    for via in all_vias() {
        let r = Receiver::start_receiver(via, Probe::new(behaviour), receiver(), route, 1).await;
        for (i, (req, status)) in table.iter().enumerate() {
            let what = format!("{} via {via}", req.what);
            let headers: Vec<(&str, &str)> =
                req.headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
            let called_before = r.probe.methods().len();
            let reply = r.send(req.method, &headers, &req.body, req.framing).await;
            let got = answer(&reply);
            if via == Via::Core {
                check_reference(&got, req, *status);
                reference.push(got);
            } else {
                assert_eq!(got, reference[i], "{what}");
                let length = reply.header("content-length");
                if reply.status == 204 {
                    assert_eq!(length, None, "{what}");
                } else {
                    let expected = reply.body.len().to_string();
                    assert_eq!(length, Some(expected.as_str()), "{what}");
                }
                if req.expect.closes {
                    assert_eq!(reply.header("connection"), Some("close"), "{what}");
                }
            }
            let methods = r.probe.methods()[called_before..].to_vec();
            match &req.expect.methods {
                Some(expected) => assert_eq!(&methods, expected, "{what}"),
                None => assert_eq!(
                    methods.len(),
                    usize::from((200..300).contains(status)),
                    "{what}: {methods:?}"
                ),
            }
            let outcomes = r.outcomes();
            assert_eq!(outcomes.len(), i + 1, "{what}: {outcomes:?}");
            let outcome = &outcomes[i];
            assert_eq!(outcome.status, *status, "{what}: {outcome}");
            if let Some(reason) = &req.expect.reason {
                assert_eq!(&outcome.reason, reason, "{what}");
            }
            if let Some((event, call_id)) = req.expect.ids {
                assert_eq!(outcome.event.as_deref(), Some(event), "{what}");
                assert_eq!(outcome.call_id.as_deref(), Some(call_id), "{what}");
            }
        }
    }
    reference
}

fn call_ended(id: &str) -> Vec<u8> {
    format!(r#"{{"event":"call_ended","call":{{"call_id":"{id}"}}}}"#).into_bytes()
}

/// Every way a request to the event route can end, with a handler that
/// succeeds, at a small body limit.
#[tokio::test]
async fn event_route_answers_agree() {
    let limit = 256;
    let limited = config().with_body_limit(limit);
    let ok = call_ended("call_parity");
    let big = call_ended_of_len(limit + 1);
    let exact = call_ended_of_len(limit);
    let table = vec![
        (
            request("signed", "POST", &ok)
                .signed()
                .handled_by("on_call_ended")
                .reason(Reason::Handled)
                .ids("call_ended", "call_parity"),
            204,
        ),
        (
            request("signed, chunked", "POST", &ok).signed().chunked(),
            204,
        ),
        // Header names are case-insensitive.
        (
            request("signature header in lower case", "POST", &ok).signed_as("x-retell-signature"),
            204,
        ),
        (
            request("signature header in upper case", "POST", &ok).signed_as("X-RETELL-SIGNATURE"),
            204,
        ),
        (request("unsigned", "POST", &ok), 401),
        (
            request("wrong key", "POST", &ok).header(
                "X-Retell-Signature",
                &retell_webhooks::sign(&ok, "key_other", NOW),
            ),
            401,
        ),
        (
            request("two signature headers", "POST", &ok)
                .signed()
                .signed(),
            401,
        ),
        (request("GET", "GET", b"").allow("POST"), 405),
        (
            request("GET, signed", "GET", &ok).signed().allow("POST"),
            405,
        ),
        (
            request("PUT, signed", "PUT", &ok).signed().allow("POST"),
            405,
        ),
        (
            request("gzip", "POST", &ok)
                .signed()
                .header("Content-Encoding", "gzip"),
            415,
        ),
        (
            request("identity", "POST", &ok)
                .signed()
                .header("Content-Encoding", "identity"),
            204,
        ),
        (request("exactly the limit", "POST", &exact).signed(), 204),
        (
            request("one byte over", "POST", &big)
                .signed()
                .answers(TOO_LARGE),
            413,
        ),
        (
            request("one byte over, chunked", "POST", &big)
                .signed()
                .chunked(),
            413,
        ),
        (request("not JSON", "POST", b"not json").signed(), 400),
        (request("empty", "POST", b"").signed(), 400),
        (
            request("truncated object", "POST", b"{\"event\":").signed(),
            400,
        ),
        (request("an array", "POST", b"[1,2,3]").signed(), 400),
        (request("not UTF-8", "POST", b"\xff\xfe").signed(), 400),
        (
            request("unknown event", "POST", br#"{"event":"call_future"}"#)
                .signed()
                .handled_by("on_unknown"),
            204,
        ),
        (
            request(
                "unreadable call",
                "POST",
                br#"{"event":"call_ended","call":7}"#,
            )
            .signed(),
            400,
        ),
    ];
    agree(Behaviour::Ok, &limited, RouteKind::Events, &table).await;
}

/// A missing, malformed, stale, wrongly keyed or duplicated signature: one and
/// the same `401`, whichever receiver, and the handler is never called.
#[tokio::test]
async fn every_verification_failure_is_the_same_401() {
    let body = call_ended("call_unverified");
    let good = signature(&body);
    let table = vec![
        request("no signature", "POST", &body),
        request("malformed", "POST", &body).header("X-Retell-Signature", &format!("v={NOW},d=xyz")),
        request("stale", "POST", &body).header(
            "X-Retell-Signature",
            &retell_webhooks::sign(&body, KEY, NOW - 300_001),
        ),
        request("wrong key", "POST", &body).header(
            "X-Retell-Signature",
            &retell_webhooks::sign(&body, "some_other_key", NOW),
        ),
        request("the same signature twice", "POST", &body)
            .signed()
            .signed(),
        request("an empty header, then a valid one", "POST", &body)
            .header("X-Retell-Signature", "")
            .header("x-retell-signature", &good),
    ];
    let table: Vec<_> = table
        .into_iter()
        .map(|req| (req.answers(UNAUTHORIZED_BODY), 401))
        .collect();
    let answers = agree(Behaviour::Ok, &config(), RouteKind::Events, &table).await;
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");
}

/// At the default body limit (8 MiB): the limit is exact, enforced from the
/// declared length and while reading a chunked body; a two-hour call
/// (about 3 MiB) and an inbound call's answer go through.
#[tokio::test]
async fn answers_agree_at_the_default_body_limit() {
    let at_limit = call_ended_of_len(DEFAULT_LIMIT);
    let over = call_ended_of_len(DEFAULT_LIMIT + 1);
    let long_call = long_call_analyzed();
    assert!(
        (2_900_000..4_000_000).contains(&long_call.len()),
        "generated {} bytes",
        long_call.len()
    );
    let inbound = fixture("call_inbound_request.json");
    let table = vec![
        (
            request("exactly the limit", "POST", &at_limit)
                .signed()
                .handled_by("on_call_ended"),
            204,
        ),
        (
            request("one byte over", "POST", &over)
                .signed()
                .answers(TOO_LARGE),
            413,
        ),
        // Refused once the limit is crossed, and the connection is closed
        // instead of the rest being read and discarded.
        (
            request("one byte over, chunked", "POST", &over)
                .signed()
                .chunked()
                .closes(),
            413,
        ),
        // Refused before any byte of the body is read.
        (
            request("100 MiB declared", "POST", b"{}").declared_length(100 * 1024 * 1024),
            413,
        ),
        (
            request("a two-hour call", "POST", &long_call)
                .signed()
                .handled_by("on_call_analyzed"),
            204,
        ),
        (
            request("inbound call", "POST", &inbound)
                .signed()
                .handled_by("on_call_inbound")
                .content_type("application/json")
                .answers_json(
                    "/call_inbound/dynamic_variables/caller",
                    json!("+14155550142"),
                ),
            200,
        ),
    ];
    agree(Behaviour::Ok, &config(), RouteKind::Events, &table).await;
}

/// A handler that fails, panics or overruns its deadline: the same `5xx`, and
/// the next request is served.
#[tokio::test]
async fn handler_failures_agree() {
    let body = call_ended("call_parity_fail");
    let started = fixture("call_started.json");
    let failed = |reason: Reason| {
        request("signed", "POST", &body)
            .signed()
            .handled_by("on_call_ended")
            .reason(reason)
    };
    let served = || (failed(Reason::Handled), 204);
    let tables = [
        (
            Behaviour::FailFirst(usize::MAX),
            config(),
            vec![(
                failed(Reason::HandlerFailed("store unavailable".to_owned()))
                    .answers(INTERNAL_ERROR),
                500,
            )],
        ),
        (
            Behaviour::PanicFirst(usize::MAX),
            config(),
            vec![
                (failed(Reason::HandlerPanicked).answers(INTERNAL_ERROR), 500),
                (failed(Reason::HandlerPanicked), 500),
                (failed(Reason::HandlerPanicked), 500),
            ],
        ),
        (
            Behaviour::PanicFirst(1),
            config(),
            vec![
                (failed(Reason::HandlerPanicked).answers(INTERNAL_ERROR), 500),
                served(),
            ],
        ),
        (
            Behaviour::HangFirst(1),
            config().with_handler_deadline(SHORT_DEADLINE),
            vec![
                (failed(Reason::DeadlineExceeded), 503),
                (
                    request("another event", "POST", &started)
                        .signed()
                        .handled_by("on_call_started"),
                    204,
                ),
            ],
        ),
    ];
    for (behaviour, config, table) in tables {
        agree(behaviour, &config, RouteKind::Events, &table).await;
    }
}

/// The function route: tool methods with a signed body (`GET` and `DELETE`
/// with an empty one) are answered `200` with the handler's JSON.
#[tokio::test]
async fn function_route_answers_agree() {
    let call = fixture("custom_function_request.json");
    let args_only = fixture("custom_function_request_args_only.json");
    let table = vec![
        (
            request("POST", "POST", &call)
                .signed()
                .handled_by("on_function_call")
                .content_type("application/json")
                .answers_json("/booked", json!(true)),
            200,
        ),
        (
            request("POST, arguments only", "POST", &args_only)
                .signed()
                .handled_by("on_function_call")
                .answers_json("/booked", json!(true)),
            200,
        ),
        (request("PATCH", "PATCH", &call).signed(), 200),
        (request("GET, empty body", "GET", b"").signed(), 200),
        (request("DELETE, empty body", "DELETE", b"").signed(), 200),
        (request("OPTIONS", "OPTIONS", b"").signed(), 405),
        (request("unsigned", "POST", &call), 401),
        (request("not JSON", "POST", b"[1,").signed(), 400),
    ];
    agree(Behaviour::Ok, &config(), RouteKind::Function, &table).await;
}

/// A receiver built without a verifier answers a correctly signed delivery
/// `500` and never calls the handler.
#[tokio::test]
async fn an_unconfigured_receiver_fails_closed() {
    let unconfigured = || retell_webhooks::Receiver::unconfigured(config());
    let table = [(
        request("signed", "POST", &call_ended("call_unconfigured"))
            .signed()
            .answers(INTERNAL_ERROR)
            .reason(Reason::NotConfigured),
        500,
    )];
    agree_on(Behaviour::Ok, unconfigured, RouteKind::Events, &table).await;
}
