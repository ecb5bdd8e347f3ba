//! Built-in sample bodies of every request Retell sends (feature `samples`).
//!
//! Realistic bodies for the eleven events, the inbound call and SMS webhooks
//! and a custom-function request, as compact JSON (the form Retell sends).
//! They are the crate's own test fixtures, embedded at compile time, so they
//! stay in step with the models. Handy in your own receiver's tests:
//!
//! ```
//! use retell_webhooks::RouteKind;
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
//!         RouteKind::Events => "/retell/webhook",
//!         RouteKind::Function => "/retell/function",
//!     };
//!     assert!(!sample.body.is_empty() && !url.is_empty());
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The typed accessors ([`event`], [`incoming`], and [`call_event`],
//! [`transfer_event`], [`chat_event`], [`transcript_updated`],
//! [`call_inbound`], [`chat_inbound`], [`function_call`] for the payload a
//! [`WebhookHandler`](crate::WebhookHandler) method takes) parse a
//! sample, so a handler can be tested without HTTP or signatures:
//!
//! ```
//! use retell_webhooks::{samples, EventKind, WebhookEvent};
//!
//! // A realistic analyzed call, as the `on_call_analyzed` method receives it.
//! let event = samples::call_event(EventKind::CallAnalyzed)?;
//! let analysis = event.call.call_analysis.as_ref().ok_or("no analysis")?;
//! assert_eq!(analysis.call_successful, Some(true));
//!
//! // Any event, as `WebhookEvent::from_slice` gives it.
//! let event = samples::event(EventKind::ChatEnded)?;
//! assert!(matches!(event, WebhookEvent::ChatEnded(_)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Ids in the samples are invented but shaped like Retell's
//! (`call_8e2f4a6c…`, `chat_…`, `agent_…`); phone numbers are fictional.

use crate::RouteKind;
use crate::error::ParseError;
use crate::events::{
    CallEvent, ChatEvent, EventKind, Incoming, TranscriptUpdatedEvent, TransferEvent, WebhookEvent,
};
use crate::{FunctionCall, InboundCallRequest, InboundChatRequest};

/// One built-in sample body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Sample {
    /// The sample's name: the `event` value (`call_ended`, `call_inbound`, …),
    /// or `custom_function` for the custom-function request.
    pub name: &'static str,
    /// The kind of URL Retell sends it to: the event webhook (events and the
    /// inbound call/SMS webhook) or a custom function URL.
    pub route: RouteKind,
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
            route: RouteKind::Events,
            body: fixture!($file),
        }
    };
}

/// The name of the custom-function sample.
const CUSTOM_FUNCTION: &str = "custom_function";

/// The body of the custom-function sample.
const CUSTOM_FUNCTION_BODY: &[u8] = fixture!("custom_function_request.json");

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
        route: RouteKind::Function,
        body: CUSTOM_FUNCTION_BODY,
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
pub fn route(name: &str) -> Option<RouteKind> {
    get(name).map(|sample| sample.route)
}

/// Why a typed sample accessor gave no value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SampleError {
    /// The kind's payload is not the one asked for: an inbound request from
    /// [`event`], or an event of another payload (`chat_ended` from
    /// [`call_event`]).
    #[error("the `{0}` sample is not a payload of the kind asked for")]
    OtherPayload(EventKind),
    /// No built-in sample has this kind (every kind of this version has one;
    /// the crate's tests check it).
    #[error("no built-in sample of `{0}`")]
    Missing(EventKind),
    /// The built-in sample did not parse (never for the samples of this
    /// version; the crate's tests parse each one).
    #[error("the built-in `{0}` sample did not parse: {1}")]
    Parse(&'static str, ParseError),
}

/// The sample of `kind`.
fn of_kind(kind: EventKind) -> Result<&'static Sample, SampleError> {
    SAMPLES
        .iter()
        .find(|sample| sample.kind() == Some(kind))
        .ok_or(SampleError::Missing(kind))
}

/// The sample of `kind`, parsed as the event webhook parses it: every kind has
/// one, [`Incoming::CallInbound`] and [`Incoming::ChatInbound`] included.
///
/// ```
/// use retell_webhooks::{samples, EventKind, Incoming};
///
/// let Incoming::CallInbound(request) = samples::incoming(EventKind::CallInbound)? else {
///     return Err("not an inbound call".into());
/// };
/// assert_eq!(request.call_inbound.from_number.as_deref(), Some("+14155550142"));
/// for kind in EventKind::ALL {
///     assert_eq!(samples::incoming(*kind)?.kind(), Some(*kind));
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn incoming(kind: EventKind) -> Result<Incoming, SampleError> {
    let sample = of_kind(kind)?;
    Incoming::from_slice(sample.body).map_err(|error| SampleError::Parse(sample.name, error))
}

/// The sample of an event `kind` (one that is not
/// [inbound](EventKind::is_inbound)), parsed as [`WebhookEvent::from_slice`]
/// parses it; [`SampleError::OtherPayload`] for `call_inbound` and
/// `chat_inbound` (see [`incoming`]).
///
/// ```
/// use retell_webhooks::{samples, EventKind, WebhookEvent};
///
/// let event = samples::event(EventKind::CallAnalyzed)?;
/// assert_eq!(event.call_id(), Some("call_8e2f4a6c1b9d3e7f5a0c2b4d6e"));
/// assert!(matches!(event, WebhookEvent::CallAnalyzed(_)));
/// assert!(samples::event(EventKind::CallInbound).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn event(kind: EventKind) -> Result<WebhookEvent, SampleError> {
    match incoming(kind)? {
        Incoming::Event(event) => Ok(event),
        _ => Err(SampleError::OtherPayload(kind)),
    }
}

/// The payload of the `call_started`, `call_ended` or `call_analyzed`
/// sample, as [`on_call_started`](crate::WebhookHandler::on_call_started),
/// [`on_call_ended`](crate::WebhookHandler::on_call_ended) and
/// [`on_call_analyzed`](crate::WebhookHandler::on_call_analyzed)
/// receive it; [`SampleError::OtherPayload`] for other kinds.
///
/// ```
/// use retell_webhooks::{samples, EventKind};
///
/// let event = samples::call_event(EventKind::CallEnded)?;
/// assert_eq!(event.call.agent_id.as_deref(), Some("agent_3f9c2b7e4a1d8c6b5e0f2a9d7c"));
/// assert!(samples::call_event(EventKind::ChatEnded).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn call_event(kind: EventKind) -> Result<CallEvent, SampleError> {
    match event(kind)? {
        WebhookEvent::CallStarted(event)
        | WebhookEvent::CallEnded(event)
        | WebhookEvent::CallAnalyzed(event) => Ok(event),
        _ => Err(SampleError::OtherPayload(kind)),
    }
}

/// The payload of a `transfer_*` sample, as the `on_transfer_*` methods
/// receive it; [`SampleError::OtherPayload`] for other kinds.
///
/// ```
/// use retell_webhooks::{samples, EventKind};
///
/// let event = samples::transfer_event(EventKind::TransferStarted)?;
/// assert_eq!(event.destination_number(), Some("+15105550177"));
/// assert_eq!(event.transfer_type(), Some("warm_transfer"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn transfer_event(kind: EventKind) -> Result<TransferEvent, SampleError> {
    match event(kind)? {
        WebhookEvent::TransferStarted(event)
        | WebhookEvent::TransferBridged(event)
        | WebhookEvent::TransferCancelled(event)
        | WebhookEvent::TransferEnded(event) => Ok(event),
        _ => Err(SampleError::OtherPayload(kind)),
    }
}

/// The payload of the `chat_started`, `chat_ended` or `chat_analyzed`
/// sample, as the `on_chat_*` methods receive it;
/// [`SampleError::OtherPayload`] for other kinds.
///
/// ```
/// use retell_webhooks::{samples, EventKind};
///
/// let event = samples::chat_event(EventKind::ChatAnalyzed)?;
/// assert_eq!(event.chat.chat_id, "chat_4c9e1a7f2b8d6e0a3f5c9b1d2e");
/// assert!(event.chat.chat_analysis.is_some());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn chat_event(kind: EventKind) -> Result<ChatEvent, SampleError> {
    match event(kind)? {
        WebhookEvent::ChatStarted(event)
        | WebhookEvent::ChatEnded(event)
        | WebhookEvent::ChatAnalyzed(event) => Ok(event),
        _ => Err(SampleError::OtherPayload(kind)),
    }
}

/// The payload of the `transcript_updated` sample (a voice call), as
/// [`on_transcript_updated`](crate::WebhookHandler::on_transcript_updated)
/// receives it.
///
/// ```
/// use retell_webhooks::samples;
///
/// let event = samples::transcript_updated()?;
/// assert!(event.call().is_some());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn transcript_updated() -> Result<TranscriptUpdatedEvent, SampleError> {
    let kind = EventKind::TranscriptUpdated;
    match event(kind)? {
        WebhookEvent::TranscriptUpdated(event) => Ok(event),
        _ => Err(SampleError::OtherPayload(kind)),
    }
}

/// The `call_inbound` sample, as
/// [`on_call_inbound`](crate::WebhookHandler::on_call_inbound)
/// receives it.
///
/// ```
/// use retell_webhooks::samples;
///
/// let request = samples::call_inbound()?;
/// assert_eq!(request.call_inbound.to_number.as_deref(), Some("+16505550199"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn call_inbound() -> Result<InboundCallRequest, SampleError> {
    let kind = EventKind::CallInbound;
    match incoming(kind)? {
        Incoming::CallInbound(request) => Ok(request),
        _ => Err(SampleError::OtherPayload(kind)),
    }
}

/// The `chat_inbound` (inbound SMS) sample, as
/// [`on_chat_inbound`](crate::WebhookHandler::on_chat_inbound)
/// receives it.
///
/// ```
/// use retell_webhooks::samples;
///
/// let request = samples::chat_inbound()?;
/// assert_eq!(request.chat_inbound.from_number.as_deref(), Some("+14155550142"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn chat_inbound() -> Result<InboundChatRequest, SampleError> {
    let kind = EventKind::ChatInbound;
    match incoming(kind)? {
        Incoming::ChatInbound(request) => Ok(request),
        _ => Err(SampleError::OtherPayload(kind)),
    }
}

/// The `custom_function` sample (tool `check_availability`), parsed; wrap it
/// in [`FunctionRequest::post`](crate::FunctionRequest::post) for
/// [`on_function_call`](crate::WebhookHandler::on_function_call).
///
/// ```
/// use retell_webhooks::FunctionRequest;
/// use retell_webhooks::samples;
///
/// let request = FunctionRequest::post(samples::function_call()?);
/// assert_eq!(request.name(), Some("check_availability"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn function_call() -> Result<FunctionCall, SampleError> {
    FunctionCall::from_slice(CUSTOM_FUNCTION_BODY)
        .map_err(|error| SampleError::Parse(CUSTOM_FUNCTION, error))
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
        assert_eq!(route("custom_function"), Some(RouteKind::Function));
        assert_eq!(get("call_exploded"), None);
    }

    #[test]
    fn every_sample_parses_with_its_name() {
        for sample in SAMPLES {
            match sample.route {
                RouteKind::Events => {
                    let incoming = Incoming::from_slice(sample.body)
                        .unwrap_or_else(|e| panic!("{}: {e}", sample.name));
                    assert_eq!(incoming.event_name(), sample.name);
                    assert_eq!(incoming.kind(), sample.kind(), "{}", sample.name);
                    if let Incoming::Event(event) = &incoming {
                        assert!(!event.is_unknown(), "{}", sample.name);
                    }
                }
                RouteKind::Function => {
                    let call = FunctionCall::from_slice(sample.body)
                        .unwrap_or_else(|e| panic!("{}: {e}", sample.name));
                    assert!(call.name().is_some() && call.call().is_some());
                }
            }
        }
    }

    #[test]
    fn typed_accessors_give_each_kind_its_payload() {
        for &kind in EventKind::ALL {
            let incoming = incoming(kind).unwrap_or_else(|e| panic!("{kind}: {e}"));
            assert_eq!(incoming.kind(), Some(kind));
            assert_eq!(event(kind).is_ok(), !kind.is_inbound(), "{kind}");
            let typed = [
                call_event(kind).is_ok(),
                transfer_event(kind).is_ok(),
                chat_event(kind).is_ok(),
                kind == EventKind::TranscriptUpdated,
                kind == EventKind::CallInbound,
                kind == EventKind::ChatInbound,
            ];
            assert_eq!(typed.iter().filter(|ok| **ok).count(), 1, "{kind}");
        }
        assert!(transcript_updated().is_ok());
        assert!(call_inbound().is_ok() && chat_inbound().is_ok());
        assert_eq!(
            event(EventKind::ChatInbound),
            Err(SampleError::OtherPayload(EventKind::ChatInbound))
        );
        assert_eq!(
            call_event(EventKind::ChatEnded),
            Err(SampleError::OtherPayload(EventKind::ChatEnded))
        );
        let call = function_call().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(call.name(), Some("check_availability"));
        assert_eq!(
            SampleError::OtherPayload(EventKind::CallInbound).to_string(),
            "the `call_inbound` sample is not a payload of the kind asked for"
        );
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
