//! What can be wrong with a verified body (`400`), and the cheap JSON-object
//! check.

use super::config::RouteKind;
use crate::{ParseError, ParseErrorKind};
use std::fmt;

/// Why a verified body was refused with `400`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BadBody {
    /// The body is not valid UTF-8.
    #[error("body is not valid UTF-8 (first invalid byte at offset {valid_up_to})")]
    NotUtf8 {
        /// Length of the valid prefix.
        valid_up_to: usize,
    },
    /// The body is not JSON.
    #[error("body is not valid JSON (line {line}, column {column})")]
    NotJson {
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
    },
    /// The body is JSON but not an object.
    #[error("body is JSON but not an object")]
    NotObject,
    /// A Retell event (or inbound webhook) sent to a custom-function route:
    /// the webhook URL in Retell points at the function route. Refused, so
    /// that Retell retries and the event is not acknowledged unhandled.
    #[error(
        "body is a `{event}` webhook, not a custom-function call: point Retell's webhook URL at the events route"
    )]
    EventOnFunctionRoute {
        /// The event name (from the catalogue).
        event: &'static str,
    },
    /// The JSON object does not match the expected model.
    #[error("body does not match the {route} model: {error}")]
    Invalid {
        /// The route whose model failed.
        route: RouteKind,
        /// Where and why (JSON path, position; never a value from the body).
        error: ParseError,
    },
}

impl BadBody {
    /// Classifies a typed-parse failure of a verified body: not UTF-8, not JSON,
    /// not an object, or an object the models cannot read
    /// ([`BadBody::Invalid`]). The extractors use it too, so their `400`s
    /// carry the same reasons as the ready-made routes.
    pub(crate) fn from_parse_error(route: RouteKind, body: &[u8], error: ParseError) -> Self {
        match error.kind() {
            ParseErrorKind::InvalidUtf8 => Self::NotUtf8 {
                valid_up_to: std::str::from_utf8(body)
                    .err()
                    .map_or(0, |e| e.valid_up_to()),
            },
            ParseErrorKind::Syntax | ParseErrorKind::Eof => Self::NotJson {
                line: error.line(),
                column: error.column(),
            },
            // A shape error can hide a syntax error further on (the models stop
            // at the first problem, e.g. a missing `event` before trailing
            // garbage): one syntax-only pass, on this cold path only, tells.
            _ => match check_json_object(body) {
                Err(why) => why,
                Ok(()) => Self::Invalid { route, error },
            },
        }
    }
}

// ---------------------------------------------------------------------------
// Body checks (only ever called on verified bytes)
// ---------------------------------------------------------------------------

#[cfg(test)]
thread_local! {
    /// Counts calls of the JSON parser on this thread, so tests can prove that
    /// unverified bodies are never parsed.
    pub(crate) static JSON_PARSES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Calls of the JSON parser on this thread so far (test builds only).
#[cfg(test)]
pub(crate) fn json_parses() -> usize {
    JSON_PARSES.with(std::cell::Cell::get)
}

/// Whole-body UTF-8 check (serde_json would accept invalid bytes inside values
/// the models skip), then one pass of the JSON parser that accepts only an
/// object and builds nothing.
pub(crate) fn check_json_object(body: &[u8]) -> Result<(), BadBody> {
    if let Err(e) = std::str::from_utf8(body) {
        return Err(BadBody::NotUtf8 {
            valid_up_to: e.valid_up_to(),
        });
    }
    #[cfg(test)]
    JSON_PARSES.with(|n| n.set(n.get() + 1));
    match serde_json::from_slice::<AnyObject>(body) {
        Ok(AnyObject) => Ok(()),
        Err(e) if e.classify() == serde_json::error::Category::Data => Err(BadBody::NotObject),
        Err(e) => Err(BadBody::NotJson {
            line: e.line(),
            column: e.column(),
        }),
    }
}

/// Any JSON object, content ignored.
pub(crate) struct AnyObject;

impl<'de> serde::Deserialize<'de> for AnyObject {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(AnyObjectVisitor)
    }
}

pub(crate) struct AnyObjectVisitor;

impl<'de> serde::de::Visitor<'de> for AnyObjectVisitor {
    type Value = AnyObject;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<AnyObject, A::Error> {
        while map
            .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
            .is_some()
        {}
        Ok(AnyObject)
    }
}
