//! Reading JSON objects whose kind is named by a `role` key.
//!
//! Transcript items and chat messages are tagged by `role`. serde's internally
//! tagged enums buffer the whole object first (and then fail on deep unknown
//! fields, see the module docs of `events`). Retell writes `role` first, so the
//! fast path reads it and streams the rest straight into the right struct. Keys
//! that come before `role` are buffered as JSON values and replayed first, so
//! any key order works and only those few keys pay for buffering.

use std::fmt;
use std::marker::PhantomData;

use serde::de::value::{MapAccessDeserializer, StringDeserializer};
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
        // Keys before `role` (none in Retell's own bodies) are buffered as
        // JSON values; everything after it streams into the typed struct.
        let mut before: Vec<(String, Value)> = Vec::new();
        loop {
            match map.next_key_seed(FirstKey)? {
                None => {
                    let mut object = Map::new();
                    for (key, value) in before {
                        insert_unique::<A::Error>(&mut object, key, value)?;
                    }
                    return Ok(T::unknown(object));
                }
                Some(Some(key)) => {
                    if before.iter().any(|(k, _)| *k == key) {
                        return Err(de::Error::custom(format_args!(
                            "duplicate field `{}`",
                            short_key(&key)
                        )));
                    }
                    let value: Value = map.next_value()?;
                    before.push((key, value));
                }
                Some(None) => break,
            }
        }
        let role: Value = map.next_value()?;
        let Value::String(role) = role else {
            let mut object = collect_rest(map)?;
            for (key, value) in before {
                insert_unique::<A::Error>(&mut object, key, value)?;
            }
            insert_unique::<A::Error>(&mut object, "role".to_owned(), role)?;
            return Ok(T::unknown(object));
        };
        let rest = Chain {
            before: before.into_iter(),
            pending: None,
            live: map,
        };
        let item = T::from_rest(role, MapAccessDeserializer::new(rest))?;
        if item.extra_has_role() {
            return Err(de::Error::duplicate_field("role"));
        }
        Ok(item)
    }
}

/// A map that yields the buffered entries first, then the live ones.
struct Chain<A> {
    before: std::vec::IntoIter<(String, Value)>,
    pending: Option<Value>,
    live: A,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Chain<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        match self.before.next() {
            Some((key, value)) => {
                self.pending = Some(value);
                seed.deserialize(StringDeserializer::<A::Error>::new(key))
                    .map(Some)
            }
            None => self.live.next_key_seed(seed),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        match self.pending.take() {
            Some(value) => seed.deserialize(value).map_err(de::Error::custom),
            None => self.live.next_value_seed(seed),
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
