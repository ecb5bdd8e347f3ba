//! The same request gets the same answer from every receiver: status,
//! `Content-Type`, `Allow` and body equal to what the entry point returns, and
//! over HTTP a `Content-Length` equal to the body (none for `204`).

use retell_webhooks::{ReceiverConfig, RouteKind};

use crate::http::{Framing, Reply, fixture};
use crate::receivers::{
    Behaviour, Probe, Receiver, SHORT_DEADLINE, Via, all_vias, config, signature,
};

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

/// One request of a table.
struct Request {
    what: &'static str,
    method: &'static str,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    framing: Framing,
}

fn request(what: &'static str, method: &'static str, body: &[u8]) -> Request {
    Request {
        what,
        method,
        headers: Vec::new(),
        body: body.to_vec(),
        framing: Framing::Length,
    }
}

impl Request {
    fn signed(mut self) -> Self {
        let sig = signature(&self.body);
        self.headers.push(("X-Retell-Signature", sig));
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
}

/// Sends every request of `table` to every receiver (fresh probe and a copy of
/// `config` each) and checks each answer against the entry point's, then
/// against the expected status.
async fn agree(
    behaviour: Behaviour,
    config: &ReceiverConfig,
    route: RouteKind,
    table: &[(Request, u16)],
) -> usize {
    let mut reference: Vec<Answer> = Vec::new();
    let mut checked = 0;
    for via in all_vias() {
        let r = Receiver::start_with(via, Probe::new(behaviour), config.clone(), route, 1).await;
        for (i, (req, status)) in table.iter().enumerate() {
            let headers: Vec<(&str, &str)> =
                req.headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
            let reply = r.send(req.method, &headers, &req.body, req.framing).await;
            let got = answer(&reply);
            if via == Via::Core {
                assert_eq!(got.status, *status, "{} via {via}: {got:?}", req.what);
                reference.push(got);
            } else {
                assert_eq!(got, reference[i], "{} via {via}", req.what);
                let length = reply.header("content-length");
                if reply.status == 204 {
                    assert_eq!(length, None, "{} via {via}", req.what);
                } else {
                    let expected = reply.body.len().to_string();
                    assert_eq!(length, Some(expected.as_str()), "{} via {via}", req.what);
                }
            }
            checked += 1;
        }
    }
    checked
}

fn call_ended(id: &str) -> Vec<u8> {
    format!(r#"{{"event":"call_ended","call":{{"call_id":"{id}"}}}}"#).into_bytes()
}

/// Every way a request to the event route can end, with a handler that
/// succeeds.
#[tokio::test]
async fn event_route_answers_agree() {
    let limit = 256;
    let limited = config().with_body_limit(limit);
    let ok = call_ended("call_parity");
    let big = crate::http::call_ended_of_len(limit + 1);
    let exact = crate::http::call_ended_of_len(limit);
    let table = vec![
        (request("signed", "POST", &ok).signed(), 204),
        (
            request("signed, chunked", "POST", &ok).signed().chunked(),
            204,
        ),
        (request("unsigned", "POST", &ok), 401),
        (
            request("wrong key", "POST", &ok).header(
                "X-Retell-Signature",
                &retell_webhooks::sign(&ok, "key_other", crate::receivers::NOW),
            ),
            401,
        ),
        (
            request("two signature headers", "POST", &ok)
                .signed()
                .signed(),
            401,
        ),
        (request("GET", "GET", b""), 405),
        (request("PUT, signed", "PUT", &ok).signed(), 405),
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
        (request("one byte over", "POST", &big).signed(), 413),
        (
            request("one byte over, chunked", "POST", &big)
                .signed()
                .chunked(),
            413,
        ),
        (request("not JSON", "POST", b"not json").signed(), 400),
        (request("empty", "POST", b"").signed(), 400),
        (
            request("unknown event", "POST", br#"{"event":"call_future"}"#).signed(),
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
    let mut checked = agree(Behaviour::Ok, &limited, RouteKind::Events, &table).await;
    // The inbound request fixture is over the small limit above.
    let inbound = fixture("call_inbound_request.json");
    let answers = vec![(request("inbound call", "POST", &inbound).signed(), 200)];
    checked += agree(Behaviour::Ok, &config(), RouteKind::Events, &answers).await;
    assert_eq!(checked, (table.len() + answers.len()) * all_vias().len());
}

/// A handler that fails, panics or overruns its deadline: the same `5xx`.
#[tokio::test]
async fn handler_failures_agree() {
    let body = call_ended("call_parity_fail");
    for (behaviour, config, status) in [
        (Behaviour::FailFirst(usize::MAX), config(), 500),
        (Behaviour::PanicFirst(usize::MAX), config(), 500),
        (
            Behaviour::Hang,
            config().with_handler_deadline(SHORT_DEADLINE),
            503,
        ),
    ] {
        let table = [(request("signed", "POST", &body).signed(), status)];
        agree(behaviour, &config, RouteKind::Events, &table).await;
    }
}

/// The function route: tool methods with a signed body (`GET` and `DELETE`
/// with an empty one) are answered `200` with the handler's JSON.
#[tokio::test]
async fn function_route_answers_agree() {
    let call = fixture("custom_function_request.json");
    let table = vec![
        (request("POST", "POST", &call).signed(), 200),
        (request("PATCH", "PATCH", &call).signed(), 200),
        (request("GET, empty body", "GET", b"").signed(), 200),
        (request("DELETE, empty body", "DELETE", b"").signed(), 200),
        (request("OPTIONS", "OPTIONS", b"").signed(), 405),
        (request("unsigned", "POST", &call), 401),
        (request("not JSON", "POST", b"[1,").signed(), 400),
    ];
    agree(Behaviour::Ok, &config(), RouteKind::Function, &table).await;
}
