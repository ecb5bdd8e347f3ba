//! The cheap JSON-object check of a verified body.

use super::outcome::BadBody;
use std::fmt;

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
