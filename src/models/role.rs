//! Reading JSON objects whose kind is named by a `role` key.
//!
//! Transcript items and chat messages are tagged by `role`. serde's internally
//! tagged enums buffer the whole object first (and then fail on deep unknown
//! fields, see the module docs of `events`). Retell writes `role` first, so the
//! fast path reads it and streams the rest straight into the right model. Keys
//! that come before `role` are buffered as JSON values and applied first, so
//! any key order works and only those few keys pay for buffering.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::value::{BorrowedStrDeserializer, StringDeserializer};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serializer};

use super::lenient::Read;
use super::model::{Buffered, Model, Seen, Source};
use super::raw::duplicate;
use super::raw::{
    RawJson, RawSeed, Sink, raw_bool, raw_f64, raw_i64, raw_map, raw_seq, raw_str, raw_u64,
};

/// A family of kinds selected by the `role` string.
pub(crate) trait RoleTagged: Sized {
    /// What the visitor expects, for error messages.
    const EXPECTING: &'static str;

    /// Reads the kind named `role`; `kind` is given what came before `role`
    /// and the live rest of the object (see [`read_kind`]).
    fn from_role<'de, A: MapAccess<'de>>(
        role: Cow<'static, str>,
        before: Vec<(String, RawJson)>,
        map: &mut A,
    ) -> Result<Self, A::Error>;

    /// Wraps a value whose role is unknown or missing, or that is not an
    /// object at all.
    fn unknown(value: RawJson) -> Self;
}

/// Reads a model of one kind: the entries buffered before `role`, then the
/// rest. `role_field` passes the role on to kinds that keep it as a field
/// (utterances); for the others a second `role` key is a duplicate.
pub(crate) fn read_kind<'de, T: Model, A: MapAccess<'de>>(
    role_field: Option<Cow<'static, str>>,
    before: Vec<(String, RawJson)>,
    map: &mut A,
) -> Result<T, A::Error> {
    let mut item = T::default();
    let mut seen = Seen::default();
    let keeps_role = role_field.is_some();
    if let Some(role) = role_field {
        item.entry(&mut seen, "role", Named::<A::Error>(role, PhantomData))?;
    }
    for (key, value) in before {
        item.entry(&mut seen, &key, Buffered(value, PhantomData))?;
    }
    item.entries(&mut seen, map)?;
    item.complete(&seen)?;
    if !keeps_role && item.extra().contains_key("role") {
        return Err(de::Error::duplicate_field("role"));
    }
    Ok(item)
}

/// [`read_kind`] for a kind stored boxed (the rarer kinds of a list, so that
/// its items stay the size of the common one).
pub(crate) fn read_boxed<'de, T: Model, A: MapAccess<'de>>(
    before: Vec<(String, RawJson)>,
    map: &mut A,
) -> Result<Box<T>, A::Error> {
    read_kind(None, before, map).map(Box::new)
}

/// Reads the rest of an object of an unknown kind, with its `role`.
pub(crate) fn read_unknown<'de, A: MapAccess<'de>>(
    role: Cow<'static, str>,
    before: Vec<(String, RawJson)>,
    map: &mut A,
) -> Result<RawJson, A::Error> {
    unknown_object(before, Some(raw_str(&role)), map)
}

/// An object of an unknown kind: the entries read before `role`, `role`
/// itself, then the rest, in the order received.
fn unknown_object<'de, A: MapAccess<'de>>(
    before: Vec<(String, RawJson)>,
    role: Option<RawJson>,
    map: A,
) -> Result<RawJson, A::Error> {
    let mut sink = Sink::new();
    let mut object = sink.open_object();
    for (key, value) in &before {
        sink.raw_entry::<A::Error>(&mut object, key, value.as_str())?;
    }
    if let Some(role) = role {
        sink.raw_entry::<A::Error>(&mut object, "role", role.as_str())?;
        sink.map_entries(&mut object, map)?;
    }
    sink.close_object::<A::Error>(object)?;
    Ok(sink.finish())
}

/// The `role` of an item of an unknown kind, when it is a string.
pub(crate) fn unknown_role_text(raw: &RawJson) -> Option<Cow<'_, str>> {
    #[derive(Deserialize)]
    struct RoleOf<'a> {
        #[serde(borrow, default)]
        role: Option<Cow<'a, str>>,
    }
    if !raw.is_object() {
        return None;
    }
    raw.deserialize::<RoleOf<'_>>().ok()?.role
}

/// [`unknown_role_text`], borrowed from the text (see
/// [`str_at`](super::raw::str_at)).
pub(crate) fn unknown_role(raw: &RawJson) -> Option<&str> {
    super::raw::str_at(raw, &["role"])
}
/// Reads a role-tagged item leniently: never a fallback, since any value
/// that is not a known kind is kept as the family's unknown item.
pub(crate) fn read_tagged<'de, D: Deserializer<'de>, T: RoleTagged>(
    deserializer: D,
) -> Result<Read<T>, D::Error> {
    deserializer
        .deserialize_any(TaggedVisitor(PhantomData))
        .map(Read::Typed)
}

/// Deserializes a role-tagged item that must be an object.
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
        // Keys before `role` (none in Retell's own bodies) are buffered.
        let mut before: Vec<(String, RawJson)> = Vec::new();
        loop {
            match map.next_key_seed(FirstKey)? {
                None => return Ok(T::unknown(unknown_object(before, None, map)?)),
                Some(Some(key)) => {
                    if before.iter().any(|(k, _)| *k == key) {
                        return Err(duplicate(&key));
                    }
                    let value = map.next_value_seed(RawSeed)?;
                    before.push((key, value));
                }
                Some(None) => break,
            }
        }
        match map.next_value_seed(RoleValue)? {
            Ok(name) => T::from_role(name, before, &mut map),
            Err(role) => Ok(T::unknown(unknown_object(before, Some(role), map)?)),
        }
    }

    fn visit_unit<E: de::Error>(self) -> Result<T, E> {
        Ok(T::unknown(RawJson::null()))
    }
    fn visit_none<E: de::Error>(self) -> Result<T, E> {
        Ok(T::unknown(RawJson::null()))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<T, A::Error> {
        raw_seq(seq).map(T::unknown)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<T, E> {
        Ok(T::unknown(raw_bool(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        Ok(T::unknown(raw_i64(v)))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        Ok(T::unknown(raw_u64(v)))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
        Ok(T::unknown(raw_f64(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        Ok(T::unknown(raw_str(v)))
    }
}

/// Roles of Retell's own item kinds: read without allocating.
const KNOWN_ROLES: [&str; 10] = [
    "agent",
    "user",
    "transfer_target",
    "tool_call_invocation",
    "tool_call_result",
    "node_transition",
    "state_transition",
    "dtmf",
    "sms",
    "injected",
];

/// A role string: borrowed when it is one of [`KNOWN_ROLES`].
fn role_name(role: &str) -> Cow<'static, str> {
    match KNOWN_ROLES.iter().find(|known| **known == role) {
        Some(known) => Cow::Borrowed(known),
        None => Cow::Owned(role.to_owned()),
    }
}

/// The value of `role`: the string, or any other value as raw JSON.
struct RoleValue;

impl<'de> DeserializeSeed<'de> for RoleValue {
    type Value = Result<Cow<'static, str>, RawJson>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for RoleValue {
    type Value = Result<Cow<'static, str>, RawJson>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a role")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Ok(role_name(v)))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Ok(match role_name(&v) {
            Cow::Borrowed(known) => Cow::Borrowed(known),
            Cow::Owned(_) => Cow::Owned(v),
        }))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Err(RawJson::null()))
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Err(RawJson::null()))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        raw_seq(seq).map(Err)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        raw_map(map).map(Err)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Err(raw_bool(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Err(raw_i64(v)))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Err(raw_u64(v)))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Err(raw_f64(v)))
    }
}

/// The role string, handed to a kind that keeps it as a field (no parsing).
struct Named<E>(Cow<'static, str>, PhantomData<E>);

impl<'de, E: de::Error> Source<'de> for Named<E> {
    type Error = E;
    fn value<V, T: for<'a> DeserializeSeed<'a, Value = V>>(self, seed: T) -> Result<V, E> {
        match self.0 {
            Cow::Borrowed(role) => seed.deserialize(BorrowedStrDeserializer::<E>::new(role)),
            Cow::Owned(role) => seed.deserialize(StringDeserializer::<E>::new(role)),
        }
    }
}

/// Writes `role` followed by the fields of a kind that does not keep it.
pub(crate) fn write_tagged<S: Serializer, T: Model>(
    serializer: S,
    role: &str,
    item: &T,
) -> Result<S::Ok, S::Error> {
    let mut map = serializer.serialize_map(None)?;
    map.serialize_entry("role", role)?;
    item.write_fields(&mut map)?;
    map.end()
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
