//! Reading JSON objects whose kind is named by a `role` key.
//!
//! Transcript items and chat messages are tagged by `role`. serde's internally
//! tagged enums buffer the whole object first (and then fail on deep unknown
//! fields, see the module docs of `events`). Retell writes `role` first, so the
//! fast path reads it and streams the rest straight into the right struct. When
//! `role` is not first, the object is collected into a `serde_json::Map` once and
//! converted (rare, correct, slower).

use std::fmt;
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};

/// A family of kinds selected by the `role` string.
pub(crate) trait RoleTagged: Sized {
    /// What the visitor expects, for error messages.
    const EXPECTING: &'static str;

    /// Builds the kind for `role` from the object's other keys.
    fn from_rest<'de, D: Deserializer<'de>>(role: String, rest: D) -> Result<Self, D::Error>;

    /// Wraps an object whose role is unknown, missing or not a string.
    fn unknown(object: Map<String, Value>) -> Self;

    /// The struct's unknown-key map, used to detect a repeated `role` key.
    fn extra_has_role(&self) -> bool;
}

/// Deserializes a role-tagged object.
pub(crate) fn deserialize_tagged<'de, D: Deserializer<'de>, T: RoleTagged>(
    deserializer: D,
) -> Result<T, D::Error> {
    deserializer.deserialize_map(TaggedVisitor(PhantomData))
}

struct TaggedVisitor<T>(PhantomData<T>);

impl<'de, T: RoleTagged> Visitor<'de> for TaggedVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(T::EXPECTING)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<T, A::Error> {
        let first = match map.next_key_seed(FirstKey)? {
            None => return Ok(T::unknown(Map::new())),
            Some(first) => first,
        };
        let Some(first_key) = first else {
            // Fast path: `role` came first.
            let role: Value = map.next_value()?;
            let Value::String(role) = role else {
                let mut object: Map<String, Value> = collect_rest(map)?;
                insert_unique::<A::Error>(&mut object, "role".to_owned(), role)?;
                return Ok(T::unknown(object));
            };
            let item = T::from_rest(role, MapAccessDeserializer::new(map))?;
            if item.extra_has_role() {
                return Err(de::Error::duplicate_field("role"));
            }
            return Ok(item);
        };
        // Slow path: collect, then dispatch.
        let first_value: Value = map.next_value()?;
        let mut object = collect_rest(map)?;
        insert_unique::<A::Error>(&mut object, first_key, first_value)?;
        match object.remove("role") {
            Some(Value::String(role)) => {
                T::from_rest(role, Value::Object(object)).map_err(de::Error::custom)
            }
            Some(other) => {
                object.insert("role".to_owned(), other);
                Ok(T::unknown(object))
            }
            None => Ok(T::unknown(object)),
        }
    }
}

/// Reads the remaining entries, rejecting duplicate keys.
fn collect_rest<'de, A: MapAccess<'de>>(mut map: A) -> Result<Map<String, Value>, A::Error> {
    let mut object = Map::new();
    while let Some(key) = map.next_key::<String>()? {
        let value: Value = map.next_value()?;
        insert_unique::<A::Error>(&mut object, key, value)?;
    }
    Ok(object)
}

fn insert_unique<E: de::Error>(
    object: &mut Map<String, Value>,
    key: String,
    value: Value,
) -> Result<(), E> {
    if object.contains_key(&key) {
        return Err(E::custom(format_args!(
            "duplicate field `{}`",
            short_key(&key)
        )));
    }
    object.insert(key, value);
    Ok(())
}

/// Key names in messages are capped so an error never echoes a huge key.
pub(crate) fn short_key(key: &str) -> &str {
    match key.char_indices().nth(64) {
        Some((end, _)) => key.get(..end).unwrap_or(key),
        None => key,
    }
}

/// Reads the first key: `None` for `role` (no allocation), else the key.
struct FirstKey;

impl<'de> DeserializeSeed<'de> for FirstKey {
    type Value = Option<String>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl Visitor<'_> for FirstKey {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Self::Value, E> {
        Ok((key != "role").then(|| key.to_owned()))
    }

    fn visit_string<E: de::Error>(self, key: String) -> Result<Self::Value, E> {
        Ok((key != "role").then_some(key))
    }
}
