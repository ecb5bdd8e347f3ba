//! The failure path: a lenient probe for the event name and ids.

use std::fmt;

use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::de::strict_body;
use super::{EventKind, Incoming, UnknownEvent, WebhookEvent};
use crate::error::ParseError;
use crate::{Call, Chat};

/// Handles a failed parse (the rare path, so it may parse again).
///
/// An *unknown* event whose `call`/`chat`/… does not fit the models is not a
/// failure: it becomes [`WebhookEvent::Unknown`] with the raw body. Failures at
/// the envelope level (duplicate or non-string `event`, syntax, trailing
/// characters) stay errors whatever the event name.
pub(super) fn failure(text: &str, error: &serde_json::Error) -> Result<Incoming, ParseError> {
    let path = serde_path_to_error::deserialize::<_, Incoming>(
        &mut serde_json::Deserializer::from_str(text),
    )
    .err()
    .map(|e| e.path().to_string())
    .unwrap_or_default();
    let probe = Probe::read(text);
    let in_model = path
        .split(['.', '['])
        .next()
        .is_some_and(|first| !first.is_empty() && first != "event" && first != "event_timestamp");
    if let Some(event) = probe
        .event
        .as_deref()
        .filter(|e| in_model && EventKind::from_name(e).is_none())
        && let Ok(raw) = strict_body(text)
    {
        return Ok(Incoming::Event(WebhookEvent::Unknown(UnknownEvent {
            event: event.to_owned(),
            raw,
        })));
    }
    let known = probe
        .event
        .as_deref()
        .and_then(EventKind::from_name)
        .map(EventKind::as_str);
    Err(ParseError::json(error, path).with_context(
        probe.event,
        known,
        probe.call_id,
        probe.chat_id,
    ))
}

/// What can be read from a body that failed to parse: first `event` string,
/// `call.call_id` / `data.call_id`, `chat.chat_id`. Everything else is skipped
/// without recursion (serde's `IgnoredAny`).
#[derive(Default)]
struct Probe {
    event: Option<String>,
    call_id: Option<String>,
    chat_id: Option<String>,
}

impl Probe {
    fn read(text: &str) -> Probe {
        let mut probe = Probe::default();
        let mut de = serde_json::Deserializer::from_str(text);
        // Errors are expected here (the body already failed); keep what was read.
        let _ = de.deserialize_map(ProbeVisitor(&mut probe));
        probe
    }
}

struct ProbeVisitor<'a>(&'a mut Probe);

impl<'de> Visitor<'de> for ProbeVisitor<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "event" if self.0.event.is_none() => {
                    self.0.event = map.next_value::<AnyString>()?.0
                }
                "call" | "data" if self.0.call_id.is_none() => {
                    self.0.call_id = map.next_value::<IdIn>()?.0;
                }
                "chat" if self.0.chat_id.is_none() => self.0.chat_id = map.next_value::<IdIn>()?.0,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// Which id a standalone payload object carries at its top level.
#[derive(Clone, Copy)]
enum Standalone {
    /// A bare Call object (`call_id`).
    Call,
    /// A bare Chat object (`chat_id`).
    Chat,
}

// The bare-object parsers live here, not in `models`: the models know nothing
// of envelopes and their error reporting.
impl Call {
    /// Parses a bare Call object (not an event envelope), e.g. one stored on
    /// its own. Errors name the JSON path and, when readable, the `call_id`.
    pub fn from_slice(body: &[u8]) -> Result<Self, ParseError> {
        parse_standalone(body, Standalone::Call)
    }
}

impl Chat {
    /// Parses a bare Chat object (not an event envelope), e.g. one stored on
    /// its own. Errors name the JSON path and, when readable, the `chat_id`.
    pub fn from_slice(body: &[u8]) -> Result<Self, ParseError> {
        parse_standalone(body, Standalone::Chat)
    }
}

/// Parses a bare payload object (a Call or Chat outside its envelope) with the
/// same error reporting as the envelope: JSON path, position, and the id when
/// it can be read.
fn parse_standalone<T>(body: &[u8], subject: Standalone) -> Result<T, ParseError>
where
    T: serde::de::DeserializeOwned,
{
    let text = std::str::from_utf8(body).map_err(|e| ParseError::utf8(body, e))?;
    let mut de = serde_json::Deserializer::from_str(text);
    let parsed = serde_path_to_error::deserialize::<_, T>(&mut de)
        .map_err(|e| {
            let path = e.path().to_string();
            (e.into_inner(), path)
        })
        .and_then(|value| de.end().map(|()| value).map_err(|e| (e, String::new())));
    parsed.map_err(|(error, path)| {
        let path = if path == "." { String::new() } else { path };
        let id = standalone_id(text, subject);
        let (call_id, chat_id) = match subject {
            Standalone::Call => (id, None),
            Standalone::Chat => (None, id),
        };
        ParseError::json(&error, path).with_context(None, None, call_id, chat_id)
    })
}

/// The top-level `call_id` / `chat_id` string of a (failed) bare object.
fn standalone_id(text: &str, subject: Standalone) -> Option<String> {
    struct IdVisitor<'a>(&'a mut Option<String>, &'static str);
    impl<'de> Visitor<'de> for IdVisitor<'_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            while let Some(key) = map.next_key::<String>()? {
                if key == self.1 && self.0.is_none() {
                    *self.0 = map.next_value::<AnyString>()?.0;
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(())
        }
    }
    let key = match subject {
        Standalone::Call => "call_id",
        Standalone::Chat => "chat_id",
    };
    let mut id = None;
    let mut de = serde_json::Deserializer::from_str(text);
    // Errors are expected here (the body already failed); keep what was read.
    let _ = de.deserialize_map(IdVisitor(&mut id, key));
    id
}

/// A string, or `None` for any other JSON value.
struct AnyString(Option<String>);

impl<'de> Deserialize<'de> for AnyString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = AnyString;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any value")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<AnyString, E> {
                Ok(AnyString(Some(v.to_owned())))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<AnyString, E> {
                Ok(AnyString(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<AnyString, E> {
                Ok(AnyString(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<AnyString, E> {
                Ok(AnyString(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<AnyString, E> {
                Ok(AnyString(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<AnyString, E> {
                Ok(AnyString(None))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<AnyString, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(AnyString(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AnyString, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(AnyString(None))
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// The first `call_id` / `chat_id` string of an object (any other value: `None`).
struct IdIn(Option<String>);

impl<'de> Deserialize<'de> for IdIn {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = IdIn;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<IdIn, A::Error> {
                let mut id = None;
                while let Some(key) = map.next_key::<String>()? {
                    if id.is_none() && (key == "call_id" || key == "chat_id") {
                        id = map.next_value::<AnyString>()?.0;
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(IdIn(id))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<IdIn, E> {
                Ok(IdIn(None))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<IdIn, E> {
                Ok(IdIn(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<IdIn, E> {
                Ok(IdIn(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<IdIn, E> {
                Ok(IdIn(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<IdIn, E> {
                Ok(IdIn(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<IdIn, E> {
                Ok(IdIn(None))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<IdIn, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(IdIn(None))
            }
        }
        deserializer.deserialize_any(V)
    }
}
