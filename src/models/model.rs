//! `model!`: the one definition of how every model object is read and written.
//!
//! A model is a struct of `Option` fields (plus, for calls and chats, a
//! required id) and an [`Extra`](super::Extra). The macro generates the struct
//! and a [`Model`] impl; the generic code here turns that into `Deserialize`,
//! `Serialize` and [`Lenient`]. The rules it implements:
//!
//! * every key at most once per object (a duplicate is an error, unknown keys
//!   included), keys in any order;
//! * each known field is read leniently ([`Lenient`]): `null` is remembered,
//!   a value of another type is kept as a fallback, neither fails the body;
//! * unknown keys go to `extra`;
//! * a missing or non-string id is an error: without it the object cannot be
//!   told apart from another.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::SerializeMap;

use super::lenient::{Lenient, Read};
use super::raw::{RawJson, raw_bool, raw_f64, raw_i64, raw_seq, raw_str, raw_u64};
use super::untyped::{Path, Untyped, UntypedReason};

/// Keys already read in one object: one bit per known field, one for the id.
#[derive(Default)]
pub(crate) struct Seen {
    pub(crate) bits: u128,
    pub(crate) id: bool,
}

impl Seen {
    /// Marks field `index` as read; `false` if it already was.
    pub(crate) fn first(&mut self, index: u8) -> bool {
        let bit = 1u128.checked_shl(u32::from(index)).unwrap_or(0);
        let first = self.bits & bit == 0;
        self.bits |= bit;
        first
    }
}

/// Where the value of one entry comes from: the live map being parsed, or a
/// value buffered before the object's kind was known. Seeds build owned
/// values, so they can read either.
pub(crate) trait Source<'de> {
    type Error: de::Error;
    fn value<V, T: for<'a> DeserializeSeed<'a, Value = V>>(self, seed: T)
    -> Result<V, Self::Error>;
}

impl<'de, A: MapAccess<'de>> Source<'de> for &mut A {
    type Error = A::Error;
    fn value<V, T: for<'a> DeserializeSeed<'a, Value = V>>(self, seed: T) -> Result<V, A::Error> {
        self.next_value_seed(seed)
    }
}

/// A buffered value; errors are converted to the caller's error type.
pub(crate) struct Buffered<E>(pub(crate) RawJson, pub(crate) PhantomData<E>);

impl<'de, E: de::Error> Source<'de> for Buffered<E> {
    type Error = E;
    fn value<V, T: for<'a> DeserializeSeed<'a, Value = V>>(self, seed: T) -> Result<V, E> {
        // The text is already checked: this only re-reads it (keys that came
        // before an item's `role`, which Retell may send in any order).
        let mut de = serde_json::Deserializer::from_str(self.0.as_str());
        seed.deserialize(&mut de).map_err(E::custom)
    }
}

/// What `model!` generates for each struct.
pub(crate) trait Model: Default {
    /// Reads one entry whose key is `key`.
    fn entry<'de, S: Source<'de>>(
        &mut self,
        seen: &mut Seen,
        key: &str,
        source: S,
    ) -> Result<(), S::Error>;

    /// Reads the remaining entries of a live map.
    fn entries<'de, A: MapAccess<'de>>(
        &mut self,
        seen: &mut Seen,
        map: &mut A,
    ) -> Result<(), A::Error>;

    /// Fails when a required key is missing.
    fn complete<E: de::Error>(&self, seen: &Seen) -> Result<(), E>;

    /// Writes every field and unknown key.
    fn write_fields<M: SerializeMap>(&self, map: &mut M) -> Result<(), M::Error>;

    /// Lists what is kept only as raw JSON.
    fn walk_fields(&self, path: &mut Path, out: &mut Vec<Untyped>);

    /// The object's unknown keys, nulls and fallbacks.
    fn extra(&self) -> &super::Extra;
}

/// Reads a model from a whole object.
pub(crate) fn read_model<'de, D: Deserializer<'de>, T: Model>(
    deserializer: D,
) -> Result<Read<T>, D::Error> {
    deserializer.deserialize_any(ModelVisitor(PhantomData))
}

/// Reads a model that must be an object (the `Deserialize` impls).
pub(crate) fn deserialize_model<'de, D: Deserializer<'de>, T: Model>(
    deserializer: D,
) -> Result<T, D::Error> {
    match read_model(deserializer)? {
        Read::Typed(model) => Ok(model),
        _ => Err(de::Error::custom("invalid type, expected an object")),
    }
}

struct ModelVisitor<T>(PhantomData<T>);

impl<'de, T: Model> Visitor<'de> for ModelVisitor<T> {
    type Value = Read<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Read<T>, A::Error> {
        let mut model = T::default();
        let mut seen = Seen::default();
        model.entries(&mut seen, &mut map)?;
        model.complete(&seen)?;
        Ok(Read::Typed(model))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Read<T>, E> {
        Ok(Read::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Read<T>, E> {
        Ok(Read::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Read<T>, D::Error> {
        read_model(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Read<T>, A::Error> {
        raw_seq(seq).map(Read::Raw)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Read<T>, E> {
        Ok(Read::Raw(raw_bool(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Read<T>, E> {
        Ok(Read::Raw(raw_i64(v)))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Read<T>, E> {
        Ok(Read::Raw(raw_u64(v)))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Read<T>, E> {
        Ok(Read::Raw(raw_f64(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Read<T>, E> {
        Ok(Read::Raw(raw_str(v)))
    }
}

/// Stores what one field read gave.
pub(crate) fn store<T>(slot: &mut Option<T>, extra: &mut super::Extra, index: u8, read: Read<T>) {
    match read {
        Read::Typed(value) => *slot = Some(value),
        Read::Null => extra.note_null(index),
        Read::Raw(value) => extra.note_fallback(index, value),
    }
}

/// Records the fallbacks and unknown keys of one object.
pub(crate) fn walk_extra(
    extra: &super::Extra,
    wire: &[&str],
    expected: &[&'static str],
    path: &mut Path,
    out: &mut Vec<Untyped>,
) {
    for index in extra.fallback_indices() {
        let index = usize::from(index);
        if let (Some(key), Some(expected)) = (wire.get(index), expected.get(index)) {
            path.record_key(key, out, UntypedReason::Fallback { expected });
        }
    }
    for key in extra.keys() {
        path.record_key(key, out, UntypedReason::UnknownKey);
    }
}

impl<T: Lenient> Lenient for Box<T> {
    const EXPECTED: &'static str = T::EXPECTED;

    fn read<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Read<Self>, D::Error> {
        Ok(match T::read(deserializer)? {
            Read::Typed(value) => Read::Typed(Box::new(value)),
            Read::Null => Read::Null,
            Read::Raw(value) => Read::Raw(value),
        })
    }

    fn walk(&self, path: &mut Path, out: &mut Vec<Untyped>) {
        T::walk(self, path, out);
    }
}

/// The wire name of a field: its Rust name unless renamed.
macro_rules! wire_name {
    ($field:ident) => {
        stringify!($field)
    };
    ($field:ident $wire:literal) => {
        $wire
    };
}

/// Defines a model struct and its serde impls (see the module docs).
///
/// ```text
/// model! {
///     /// Docs.
///     pub struct Call [call_id: "Unique call id."] {
///         /// Docs.
///         agent_id: String,
///         /// Docs.
///         tool_type as "type": ToolType,
///     }
/// }
/// ```
macro_rules! model {
    (
        $(#[$meta:meta])*
        pub struct $name:ident $([$id:ident : $iddoc:literal])? {
            $(
                $(#[doc = $doc:literal])*
                $field:ident $(as $wire:literal)? : $ty:ty,
            )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Default, PartialEq)]
        pub struct $name {
            $( #[doc = $iddoc] pub $id: String, )?
            $( $(#[doc = $doc])* pub $field: Option<$ty>, )+
            /// Unknown keys, explicit `null`s and fallbacks of this object
            /// (see [`Extra`](crate::models::Extra)).
            pub extra: $crate::models::Extra,
        }

        const _: () = {
            use ::serde::de::{self, MapAccess};
            use ::serde::ser::SerializeMap;
            use $crate::models::lenient::{Lenient, Read, ReadSeed, insert_unique};
            use $crate::models::raw::RawSeed;
            use $crate::models::model::{self as m, Model, Seen, Source};
            use $crate::models::untyped::{Path, Untyped};

            #[allow(non_camel_case_types, dead_code)]
            #[derive(Clone, Copy)]
            #[repr(u8)]
            enum Field { $($field,)+ }

            const WIRE: &[&str] = &[$(wire_name!($field $($wire)?)),+];
            const EXPECTED: &[&'static str] = &[$(<$ty as Lenient>::EXPECTED),+];
            const _: () = assert!(WIRE.len() <= 128, "a model holds at most 128 fields");

            #[allow(non_camel_case_types)]
            enum Key { $($id,)? Known(Field), Other }

            fn key_of(key: &str) -> Key {
                match key {
                    $( stringify!($id) => Key::$id, )?
                    $( wire_name!($field $($wire)?) => Key::Known(Field::$field), )+
                    _ => Key::Other,
                }
            }

            /// Reads a key, allocating only for unknown ones.
            struct KeySeed;

            impl<'de> ::serde::de::DeserializeSeed<'de> for KeySeed {
                type Value = (Key, Option<String>);
                fn deserialize<D: ::serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                    d.deserialize_str(self)
                }
            }

            impl ::serde::de::Visitor<'_> for KeySeed {
                type Value = (Key, Option<String>);
                fn expecting(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                    f.write_str("a key")
                }
                fn visit_str<E: de::Error>(self, key: &str) -> Result<Self::Value, E> {
                    Ok(match key_of(key) {
                        Key::Other => (Key::Other, Some(key.to_owned())),
                        known => (known, None),
                    })
                }
            }

            impl $name {
                fn entry_of<'de, S: Source<'de>>(
                    &mut self,
                    seen: &mut Seen,
                    key: Key,
                    name: Option<String>,
                    source: S,
                ) -> Result<(), S::Error> {
                    match key {
                        $( Key::$id => {
                            if ::std::mem::replace(&mut seen.id, true) {
                                return Err(de::Error::duplicate_field(stringify!($id)));
                            }
                            self.$id = source.value(::std::marker::PhantomData::<String>)?;
                        } )?
                        Key::Known(field) => {
                            let index = field as u8;
                            if !seen.first(index) {
                                return Err(de::Error::duplicate_field(
                                    WIRE.get(usize::from(index)).copied().unwrap_or(""),
                                ));
                            }
                            match field {
                                $( Field::$field => {
                                    let read = source.value(ReadSeed::<$ty>::new())?;
                                    m::store(&mut self.$field, &mut self.extra, index, read);
                                } )+
                            }
                        }
                        Key::Other => {
                            let name = name.unwrap_or_default();
                            let value = source.value(RawSeed)?;
                            insert_unique(&mut self.extra, name, value)?;
                        }
                    }
                    Ok(())
                }

                /// What this object keeps only as raw JSON: unknown keys, unknown
                /// enum values and item kinds, and fallbacks, at any depth (paths
                /// relative to this object).
                pub fn untyped_paths(&self) -> Vec<Untyped> {
                    let mut out = Vec::new();
                    self.walk_fields(&mut Path::new(""), &mut out);
                    out
                }

                /// The known fields at any depth whose values did not fit their
                /// type (read as `None`, kept and written back as received).
                pub fn fallbacks(&self) -> Vec<Untyped> {
                    let mut all = self.untyped_paths();
                    all.retain(Untyped::is_fallback);
                    all
                }

                /// The value a known field of this object held when it did not
                /// fit its type (`None` if it fitted, was absent or `null`).
                pub fn fallback(&self, key: &str) -> Option<&$crate::models::RawJson> {
                    match key_of(key) {
                        Key::Known(field) => self.extra.fallback(field as u8),
                        _ => None,
                    }
                }

                /// Whether a known field of this object was an explicit `null`
                /// (its typed value is `None` either way).
                pub fn is_null(&self, key: &str) -> bool {
                    match key_of(key) {
                        Key::Known(field) => self.extra.is_null(field as u8),
                        _ => false,
                    }
                }
            }

            impl Model for $name {
                fn entry<'de, S: Source<'de>>(
                    &mut self,
                    seen: &mut Seen,
                    key: &str,
                    source: S,
                ) -> Result<(), S::Error> {
                    let parsed = key_of(key);
                    let name = matches!(parsed, Key::Other).then(|| key.to_owned());
                    self.entry_of(seen, parsed, name, source)
                }

                fn entries<'de, A: MapAccess<'de>>(
                    &mut self,
                    seen: &mut Seen,
                    map: &mut A,
                ) -> Result<(), A::Error> {
                    while let Some((key, name)) = map.next_key_seed(KeySeed)? {
                        self.entry_of(seen, key, name, &mut *map)?;
                    }
                    Ok(())
                }

                #[allow(unused_variables)]
                fn complete<E: de::Error>(&self, seen: &Seen) -> Result<(), E> {
                    $( if !seen.id {
                        return Err(E::missing_field(stringify!($id)));
                    } )?
                    Ok(())
                }

                fn write_fields<M: SerializeMap>(&self, map: &mut M) -> Result<(), M::Error> {
                    $( map.serialize_entry(stringify!($id), &self.$id)?; )?
                    $( match &self.$field {
                        Some(value) => map.serialize_entry(wire_name!($field $($wire)?), value)?,
                        None => self.extra.write_absent(
                            map,
                            wire_name!($field $($wire)?),
                            Field::$field as u8,
                        )?,
                    } )+
                    self.extra.write_unknown(map)
                }

                fn walk_fields(&self, path: &mut Path, out: &mut Vec<Untyped>) {
                    $( if let Some(value) = &self.$field {
                        path.push_key(wire_name!($field $($wire)?));
                        Lenient::walk(value, path, out);
                        path.pop();
                    } )+
                    m::walk_extra(&self.extra, WIRE, EXPECTED, path, out);
                }

                fn extra(&self) -> &$crate::models::Extra {
                    &self.extra
                }
            }

            /// Shows the fields that are set (and `extra` when it holds anything).
            impl ::std::fmt::Debug for $name {
                fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                    let mut out = f.debug_struct(stringify!($name));
                    $( out.field(stringify!($id), &self.$id); )?
                    $( if let Some(value) = &self.$field {
                        out.field(stringify!($field), value);
                    } )+
                    if !self.extra.holds_nothing() {
                        out.field("extra", &self.extra);
                    }
                    out.finish_non_exhaustive()
                }
            }

            impl Lenient for $name {
                const EXPECTED: &'static str = "an object";

                fn read<'de, D: ::serde::Deserializer<'de>>(d: D) -> Result<Read<Self>, D::Error> {
                    m::read_model(d)
                }

                fn walk(&self, path: &mut Path, out: &mut Vec<Untyped>) {
                    self.walk_fields(path, out);
                }
            }

            impl<'de> ::serde::Deserialize<'de> for $name {
                fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                    m::deserialize_model(d)
                }
            }

            impl ::serde::Serialize for $name {
                fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                    let mut map = s.serialize_map(None)?;
                    self.write_fields(&mut map)?;
                    map.end()
                }
            }
        };
    };
}
