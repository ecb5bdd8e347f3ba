//! The outcome line is always one line of printable text, whatever a signed
//! body or a handler's error carries: ids, event names, key names in a parse
//! error and handler messages are escaped, so a crafted body cannot forge or
//! split log lines.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use proptest::prelude::*;
use retell_webhooks::{CallEvent, Verifier, sign};
use retell_webhooks::{Receiver, ReceiverConfig, RouteKind, WebhookHandler, receiver::RawRequest};

const KEY: &str = "key_outcome_line";
const NOW: u64 = 1_785_423_600_000;

/// Fails every event with a message built from the call id.
struct EchoingHandler;

impl WebhookHandler for EchoingHandler {
    type Error = String;

    async fn on_call_ended(&self, event: CallEvent) -> Result<(), String> {
        Err(format!("could not store {}", event.call.call_id))
    }
}

fn ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(value) => value,
        Poll::Pending => panic!("the handler never waits"),
    }
}

fn outcome_line(body: &[u8]) -> String {
    let verifier = Verifier::new(KEY).unwrap().with_clock(|| NOW);
    let receiver = Receiver::new(verifier, ReceiverConfig::new());
    let header = sign(body, KEY, NOW);
    let request = RawRequest::post(body).signature_values([header.as_bytes()]);
    let done = ready(
        receiver.dispatch(&EchoingHandler, RouteKind::Events, &request, |_| {
            std::future::pending()
        }),
    );
    done.outcome.to_string()
}

fn assert_one_printable_line(line: &str) {
    let bad = line
        .chars()
        .find(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{85}'));
    assert!(bad.is_none(), "{bad:?} in {line:?}");
}

/// A JSON string literal holding `text`.
fn json(text: &str) -> String {
    serde_json::to_string(text).unwrap()
}

/// Text an attacker would pick: line breaks, terminal escapes, quotes,
/// backslashes, Unicode separators, plus anything else.
fn hostile_text() -> impl Strategy<Value = String> {
    let pieces = prop_oneof![
        Just("\n".to_owned()),
        Just("\r\n".to_owned()),
        Just("\u{1b}[31m".to_owned()),
        Just("\"".to_owned()),
        Just("\\".to_owned()),
        Just("\u{2028}".to_owned()),
        Just("\u{85}".to_owned()),
        Just(" status=204 reason=\"handled\"".to_owned()),
        "[a-z_0-9]{1,8}",
        any::<String>(),
    ];
    proptest::collection::vec(pieces, 1..6).prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The call id and the handler's message that repeats it.
    #[test]
    fn ids_and_handler_messages(id in hostile_text()) {
        let body = format!(r#"{{"event":"call_ended","call":{{"call_id":{}}}}}"#, json(&id));
        assert_one_printable_line(&outcome_line(body.as_bytes()));
    }

    /// An unknown event name (acknowledged, named in the line).
    #[test]
    fn event_names(name in hostile_text()) {
        let body = format!(r#"{{"event":{},"call":{{"call_id":"c"}}}}"#, json(&name));
        assert_one_printable_line(&outcome_line(body.as_bytes()));
    }

    /// Key names in the error of a body the models refuse (a duplicate key).
    #[test]
    fn key_names_in_parse_errors(key in hostile_text()) {
        let key = json(&key);
        let body = format!(r#"{{"event":"call_ended","call":{{"call_id":"c",{key}:1,{key}:2}}}}"#);
        let line = outcome_line(body.as_bytes());
        assert!(line.starts_with("status=400"), "{line}");
        assert_one_printable_line(&line);
    }
}

/// The test can fail: a raw line break would be caught.
#[test]
#[should_panic(expected = "in")]
fn the_check_catches_a_line_break() {
    assert_one_printable_line("status=204\nstatus=204");
}
