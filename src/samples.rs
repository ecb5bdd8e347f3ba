//! Built-in sample bodies of every request Retell sends (feature `samples`).
//!
//! Realistic bodies for the eleven events, the inbound call and SMS webhooks
//! and a custom-function request, as compact JSON (the form Retell sends).
//! They are the crate's own test fixtures, embedded at compile time, so they
//! stay in step with the models. Handy in your own receiver's tests:
//!
//! ```
//! use retell_webhooks::dispatch::Route;
//! use retell_webhooks::{samples, sign, Verifier, WebhookEvent};
//!
//! let body = samples::body("call_ended").ok_or("no such sample")?;
//! let header = sign(body, "key_for_tests", 1_785_423_600_000);
//! let event = Verifier::new("key_for_tests")?.verify_and_parse_at(body, &header, 1_785_423_600_000)?;
//! assert!(matches!(event, WebhookEvent::CallEnded(_)));
//!
//! // Every sample, with the kind of URL it is sent to.
//! for sample in samples::SAMPLES {
//!     let url = match sample.route {
//!         Route::Events => "/retell/webhook",
//!         Route::Function => "/retell/function",
//!     };
//!     assert!(!sample.body.is_empty() && !url.is_empty());
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Ids in the samples are invented but shaped like Retell's
//! (`call_8e2f4a6c…`, `chat_…`, `agent_…`); phone numbers are fictional.

use crate::dispatch::Route;
use crate::events::EventKind;

/// One built-in sample body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Sample {
    /// The sample's name: the `event` value (`call_ended`, `call_inbound`, …),
    /// or `custom_function` for the custom-function request.
    pub name: &'static str,
    /// The kind of URL Retell sends it to: the event webhook (events and the
    /// inbound call/SMS webhook) or a custom function URL.
    pub route: Route,
    /// The body: compact JSON, UTF-8, no trailing newline.
    pub body: &'static [u8],
}

impl Sample {
    /// The kind of the sample's request; `None` for `custom_function`.
    #[must_use]
    pub fn kind(&self) -> Option<EventKind> {
        self.name.parse().ok()
    }
}

/// Number of bytes of `pretty` once the whitespace outside strings is removed.
const fn compact_len(pretty: &[u8]) -> usize {
    let mut len = 0;
    let mut i = 0;
    let mut in_string = false;
    let mut escaped = false;
    while i < pretty.len() {
        let b = pretty[i];
        i += 1;
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if b == b'"' {
            in_string = true;
        } else if matches!(b, b' ' | b'\n' | b'\r' | b'\t') {
            continue;
        }
        len += 1;
    }
    len
}

/// `pretty` without the whitespace outside strings, in an array of exactly
/// [`compact_len`] bytes (evaluated at compile time).
const fn compact<const N: usize>(pretty: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    let mut len = 0;
    let mut i = 0;
    let mut in_string = false;
    let mut escaped = false;
    while i < pretty.len() {
        let b = pretty[i];
        i += 1;
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if b == b'"' {
            in_string = true;
        } else if matches!(b, b' ' | b'\n' | b'\r' | b'\t') {
            continue;
        }
        out[len] = b;
        len += 1;
    }
    out
}

/// A fixture from `tests/fixtures/`, compacted at compile time.
macro_rules! fixture {
    ($file:literal) => {{
        const PRETTY: &[u8] = include_bytes!(concat!("../tests/fixtures/", $file));
        static COMPACT: [u8; compact_len(PRETTY)] = compact(PRETTY);
        &COMPACT
    }};
}

/// The sample of an [`EventKind`] (sent to the event webhook URL).
macro_rules! sample {
    ($kind:ident, $file:literal) => {
        Sample {
            name: EventKind::$kind.as_str(),
            route: Route::Events,
            body: fixture!($file),
        }
    };
}

/// The name of the custom-function sample.
const CUSTOM_FUNCTION: &str = "custom_function";

/// Every built-in sample, in the order of [`NAMES`]: one per [`EventKind`],
/// in the order of [`EventKind::ALL`], then `custom_function`.
pub static SAMPLES: &[Sample] = &[
    sample!(CallStarted, "call_started.json"),
    sample!(CallEnded, "call_ended_phone.json"),
    sample!(CallAnalyzed, "call_analyzed_maximal.json"),
    sample!(TranscriptUpdated, "transcript_updated.json"),
    sample!(TransferStarted, "transfer_started.json"),
    sample!(TransferBridged, "transfer_bridged.json"),
    sample!(TransferCancelled, "transfer_cancelled.json"),
    sample!(TransferEnded, "transfer_ended.json"),
    sample!(ChatStarted, "chat_started.json"),
    sample!(ChatEnded, "chat_ended.json"),
    sample!(ChatAnalyzed, "chat_analyzed.json"),
    sample!(CallInbound, "call_inbound_request.json"),
    sample!(ChatInbound, "chat_inbound_request.json"),
    Sample {
        name: CUSTOM_FUNCTION,
        route: Route::Function,
        body: fixture!("custom_function_request.json"),
    },
];

/// [`NAMES`] as an array: the name of every [`EventKind`], then
/// `custom_function` (evaluated at compile time).
const NAME_TABLE: [&str; EventKind::ALL.len() + 1] = {
    let mut names = [CUSTOM_FUNCTION; EventKind::ALL.len() + 1];
    let mut i = 0;
    while i < EventKind::ALL.len() {
        names[i] = EventKind::ALL[i].as_str();
        i += 1;
    }
    names
};

/// The names of every built-in sample: the eleven events, `call_inbound`,
/// `chat_inbound` (the names of [`EventKind::ALL`], in its order) and
/// `custom_function`.
pub const NAMES: &[&str] = &NAME_TABLE;

/// The sample called `name` (one of [`NAMES`]).
#[must_use]
pub fn get(name: &str) -> Option<&'static Sample> {
    SAMPLES.iter().find(|sample| sample.name == name)
}

/// The body of the sample called `name` (one of [`NAMES`]): compact JSON.
#[must_use]
pub fn body(name: &str) -> Option<&'static [u8]> {
    get(name).map(|sample| sample.body)
}

/// The kind of URL the sample called `name` is sent to.
#[must_use]
pub fn route(name: &str) -> Option<Route> {
    get(name).map(|sample| sample.route)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FunctionCall, Incoming};

    #[test]
    fn names_match_samples_and_cover_every_event() {
        let names: Vec<_> = SAMPLES.iter().map(|s| s.name).collect();
        assert_eq!(names, NAMES);
        let kinds: Vec<_> = SAMPLES.iter().filter_map(Sample::kind).collect();
        assert_eq!(kinds, EventKind::ALL);
        assert_eq!(NAMES.len(), EventKind::ALL.len() + 1);
        assert_eq!(get(CUSTOM_FUNCTION).and_then(Sample::kind), None);
        assert_eq!(body("call_ended"), Some(SAMPLES[1].body));
        assert_eq!(route("custom_function"), Some(Route::Function));
        assert_eq!(get("call_exploded"), None);
    }

    #[test]
    fn every_sample_parses_with_its_name() {
        for sample in SAMPLES {
            match sample.route {
                Route::Events => {
                    let incoming = Incoming::from_slice(sample.body)
                        .unwrap_or_else(|e| panic!("{}: {e}", sample.name));
                    assert_eq!(incoming.event_name(), sample.name);
                    assert_eq!(incoming.kind(), sample.kind(), "{}", sample.name);
                    if let Incoming::Event(event) = &incoming {
                        assert!(!event.is_unknown(), "{}", sample.name);
                    }
                }
                Route::Function => {
                    let call = FunctionCall::from_slice(sample.body)
                        .unwrap_or_else(|e| panic!("{}: {e}", sample.name));
                    assert!(call.name().is_some() && call.call().is_some());
                }
            }
        }
    }

    #[test]
    fn samples_are_the_compacted_fixtures() {
        for sample in SAMPLES {
            assert!(!sample.body.contains(&b'\n'), "{}", sample.name);
            assert!(sample.body.starts_with(b"{\"event\":") || sample.name == "custom_function");
        }
        // The maximal `call_analyzed` fixture compacts to signature vector 4's body.
        let vector4 = include_bytes!("../tests/fixtures/signature-vector-4-body.json");
        assert_eq!(body("call_analyzed"), Some(&vector4[..]));
        // Whitespace inside strings is kept.
        const PRETTY: &[u8] = br#"{ "a" : "b \" c" ,"d":[ 1 ] }"#;
        let compacted: [u8; compact_len(PRETTY)] = compact(PRETTY);
        assert_eq!(&compacted, br#"{"a":"b \" c","d":[1]}"#);
    }
}
