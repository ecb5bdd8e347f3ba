//! Reading one known field without ever failing the body on its type.
//!
//! Every typed field of a model is read through [`Lenient::read`], which
//! accepts any JSON value: the expected type gives [`Read::Typed`], `null`
//! gives [`Read::Null`], and anything else gives [`Read::Raw`] with the value
//! kept for re-serialization (a *fallback*). Only the JSON itself can fail:
//! syntax, nesting depth, invalid strings and duplicate keys, which the
//! deserializer reports before a visitor sees a value.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::Serialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use super::untyped::{Path, Untyped};

/// What one field read gave.
pub(crate) enum Read<T> {
    /// A value of the expected type.
    Typed(T),
    /// An explicit `null`.
    Null,
    /// A value of another type or out of range, kept as it came.
    Raw(Value),
}

/// A type a model field can hold.
pub(crate) trait Lenient: Sized + Serialize {
    /// What the field expects, for fallback reports (`"a string"`).
    const EXPECTED: &'static str;

    /// Reads the field from any JSON value.
    fn read<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Read<Self>, D::Error>;

    /// Appends what this value keeps only as raw JSON (unknown keys, enum
    /// values, item kinds, fallbacks of nested objects).
    fn walk(&self, _path: &mut Path, _out: &mut Vec<Untyped>) {}
}

/// `DeserializeSeed` adapter: `map.next_value_seed(ReadSeed::<T>::new())`.
pub(crate) struct ReadSeed<T>(PhantomData<T>);

impl<T> ReadSeed<T> {
    pub(crate) fn new() -> Self {
        Self(PhantomData)
    }
}

impl<'de, T: Lenient> DeserializeSeed<'de> for ReadSeed<T> {
    type Value = Read<T>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Read<T>, D::Error> {
        T::read(deserializer)
    }
}

// ---------------------------------------------------------------------------
// Free-form JSON, with duplicate keys rejected at every level.
// ---------------------------------------------------------------------------

/// Reads any JSON value into a [`Value`], rejecting duplicate object keys
/// (serde_json's own `Value` keeps the last one, which would let two parsers
/// disagree about a signed body).
pub(crate) struct StrictValue;

impl<'de> DeserializeSeed<'de> for StrictValue {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

/// Reads a whole JSON value with [`StrictValue`].
pub(crate) fn strict_value<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Value, D::Error> {
    StrictValue.deserialize(deserializer)
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(float_value(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        strict_value(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Value, A::Error> {
        collect_seq(seq).map(Value::Array)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Value, A::Error> {
        collect_map(map).map(Value::Object)
    }
}

/// A JSON float as a value (always finite when it comes from JSON).
pub(crate) fn float_value(v: f64) -> Value {
    Number::from_f64(v).map_or(Value::Null, Value::Number)
}

/// Reads the remaining items of an array.
pub(crate) fn collect_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<Vec<Value>, A::Error> {
    let mut items = Vec::new();
    while let Some(item) = seq.next_element_seed(StrictValue)? {
        items.push(item);
    }
    Ok(items)
}

/// Reads the remaining entries of an object, rejecting duplicate keys.
pub(crate) fn collect_map<'de, A: MapAccess<'de>>(
    mut map: A,
) -> Result<Map<String, Value>, A::Error> {
    let mut object = Map::new();
    while let Some(key) = map.next_key::<String>()? {
        let value = map.next_value_seed(StrictValue)?;
        insert_unique(&mut object, key, value)?;
    }
    Ok(object)
}

/// Inserts a key that must not be present yet.
pub(crate) fn insert_unique<E: de::Error>(
    object: &mut Map<String, Value>,
    key: String,
    value: Value,
) -> Result<(), E> {
    if object.contains_key(&key) {
        return Err(duplicate(&key));
    }
    object.insert(key, value);
    Ok(())
}

/// The error for a key that occurs twice in one object. The key comes from
/// the body: it is capped and escaped, so the message stays one short line
/// that a crafted key cannot extend or split.
pub(crate) fn duplicate<E: de::Error>(key: &str) -> E {
    E::custom(format_args!(
        "duplicate field `{}`",
        short_key(key).escape_debug()
    ))
}

/// Key names in messages are capped so an error never echoes a huge key.
pub(crate) fn short_key(key: &str) -> &str {
    match key.char_indices().nth(64) {
        Some((end, _)) => key.get(..end).unwrap_or(key),
        None => key,
    }
}

impl Lenient for Value {
    const EXPECTED: &'static str = "any JSON value";

    fn read<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Read<Self>, D::Error> {
        let value = strict_value(deserializer)?;
        Ok(match value {
            Value::Null => Read::Null,
            other => Read::Typed(other),
        })
    }
}

// ---------------------------------------------------------------------------
// Scalars: one visitor, parameterised by what the type accepts.
// ---------------------------------------------------------------------------

/// What a scalar type makes of each JSON primitive (`None`: not this type).
pub(crate) trait Scalar: Sized {
    const EXPECTED: &'static str;
    fn from_str(_v: &str) -> Option<Self> {
        None
    }
    fn from_string(v: String) -> Result<Self, String> {
        Self::from_str(&v).ok_or(v)
    }
    fn from_bool(_v: bool) -> Option<Self> {
        None
    }
    fn from_u64(_v: u64) -> Option<Self> {
        None
    }
    fn from_i64(_v: i64) -> Option<Self> {
        None
    }
    fn from_f64(_v: f64) -> Option<Self> {
        None
    }
}

struct ScalarVisitor<T>(PhantomData<T>);

/// Reads a scalar type leniently.
pub(crate) fn read_scalar<'de, D: Deserializer<'de>, T: Scalar>(
    deserializer: D,
) -> Result<Read<T>, D::Error> {
    deserializer.deserialize_any(ScalarVisitor(PhantomData))
}

fn typed_or<T>(typed: Option<T>, raw: impl FnOnce() -> Value) -> Read<T> {
    match typed {
        Some(value) => Read::Typed(value),
        None => Read::Raw(raw()),
    }
}

impl<'de, T: Scalar> Visitor<'de> for ScalarVisitor<T> {
    type Value = Read<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(T::EXPECTED)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Read<T>, E> {
        Ok(typed_or(T::from_bool(v), || Value::Bool(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Read<T>, E> {
        Ok(typed_or(T::from_i64(v), || Value::Number(v.into())))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Read<T>, E> {
        Ok(typed_or(T::from_u64(v), || Value::Number(v.into())))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Read<T>, E> {
        Ok(typed_or(T::from_f64(v), || float_value(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Read<T>, E> {
        Ok(typed_or(T::from_str(v), || Value::String(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Read<T>, E> {
        Ok(match T::from_string(v) {
            Ok(value) => Read::Typed(value),
            Err(v) => Read::Raw(Value::String(v)),
        })
    }
    fn visit_unit<E: de::Error>(self) -> Result<Read<T>, E> {
        Ok(Read::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Read<T>, E> {
        Ok(Read::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Read<T>, D::Error> {
        read_scalar(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Read<T>, A::Error> {
        collect_seq(seq).map(|items| Read::Raw(Value::Array(items)))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Read<T>, A::Error> {
        collect_map(map).map(|object| Read::Raw(Value::Object(object)))
    }
}

/// Implements [`Lenient`] for a [`Scalar`] type.
macro_rules! lenient_scalar {
    ($($ty:ty),+) => {$(
        impl Lenient for $ty {
            const EXPECTED: &'static str = <$ty as Scalar>::EXPECTED;
            fn read<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Read<Self>, D::Error> {
                read_scalar(deserializer)
            }
        }
    )+};
}

impl Scalar for String {
    const EXPECTED: &'static str = "a string";
    fn from_str(v: &str) -> Option<Self> {
        Some(v.to_owned())
    }
    fn from_string(v: String) -> Result<Self, String> {
        Ok(v)
    }
}

impl Scalar for bool {
    const EXPECTED: &'static str = "a boolean";
    fn from_bool(v: bool) -> Option<Self> {
        Some(v)
    }
}

/// Largest float strictly above `u64::MAX` (2^64); floats at or above it overflow.
const TWO_POW_64: f64 = 18_446_744_073_709_551_616.0;

/// Non-negative integers (timestamps, durations, versions). Retell's types say
/// `number`, so an *integral* float (`1e3`, `1000.0`) is accepted; a fraction,
/// a negative value or one above `u64::MAX` is not this type.
impl Scalar for u64 {
    const EXPECTED: &'static str = "a non-negative integer";
    fn from_u64(v: u64) -> Option<Self> {
        Some(v)
    }
    fn from_i64(v: i64) -> Option<Self> {
        u64::try_from(v).ok()
    }
    fn from_f64(v: f64) -> Option<Self> {
        if !v.is_finite() || v.fract() != 0.0 || !(0.0..TWO_POW_64).contains(&v) {
            return None;
        }
        // In range and integral: the conversion is exact.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        Some(v as u64)
    }
}

/// Numbers in float fields (costs, latencies, word times). Integers are read
/// as floats and written back as floats (`70` → `70.0`: the same number); an
/// integer a float cannot hold exactly (above 2^53) is not this type, so its
/// exact value is kept as a fallback instead of being rounded.
impl Scalar for f64 {
    const EXPECTED: &'static str = "a number";
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    fn from_u64(v: u64) -> Option<Self> {
        let float = v as f64;
        (float < TWO_POW_64 && float as u64 == v).then_some(float)
    }
    #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
    fn from_i64(v: i64) -> Option<Self> {
        let float = v as f64;
        // -2^63 converts exactly; anything else in range round-trips or not.
        ((-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&float)
            && float as i64 == v)
            .then_some(float)
    }
    fn from_f64(v: f64) -> Option<Self> {
        Some(v)
    }
}

lenient_scalar!(String, bool, u64, f64);

// ---------------------------------------------------------------------------
// Lists: a list whose items do not all fit falls back as a whole.
// ---------------------------------------------------------------------------

impl<T: Lenient> Lenient for Vec<T> {
    const EXPECTED: &'static str = "a list";

    fn read<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Read<Self>, D::Error> {
        deserializer.deserialize_any(ListVisitor(PhantomData))
    }

    fn walk(&self, path: &mut Path, out: &mut Vec<Untyped>) {
        for (index, item) in self.iter().enumerate() {
            path.push_index(index);
            item.walk(path, out);
            path.pop();
        }
    }
}

/// First allocation of a non-empty list: enough for a typical utterance's
/// word timings, so most arrays are read without regrowing.
const FIRST_CAPACITY: usize = 16;

struct ListVisitor<T>(PhantomData<T>);

impl<'de, T: Lenient> Visitor<'de> for ListVisitor<T> {
    type Value = Read<Vec<T>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items: Vec<T> = Vec::new();
        while let Some(item) = seq.next_element_seed(ReadSeed::<T>::new())? {
            let odd = match item {
                Read::Typed(item) => {
                    if items.capacity() == 0 {
                        items.reserve_exact(FIRST_CAPACITY);
                    }
                    items.push(item);
                    continue;
                }
                Read::Null => Value::Null,
                Read::Raw(value) => value,
            };
            // An item of another type: keep the whole list as raw JSON, the
            // items read so far re-encoded (losslessly) in front.
            let mut raw = Vec::with_capacity(items.len() + 1);
            for item in items {
                raw.push(serde_json::to_value(item).map_err(de::Error::custom)?);
            }
            raw.push(odd);
            raw.extend(collect_seq(seq)?);
            return Ok(Read::Raw(Value::Array(raw)));
        }
        // Sequences grow to up to twice their length; large ones (transcripts,
        // word timings, latency samples) are trimmed so a parsed body stays
        // close to its size in memory.
        items.shrink_to_fit();
        Ok(Read::Typed(items))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Read::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Read::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        <Vec<T>>::read(d)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        collect_map(map).map(|object| Read::Raw(Value::Object(object)))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Read::Raw(Value::Bool(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Read::Raw(Value::Number(v.into())))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Read::Raw(Value::Number(v.into())))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Read::Raw(float_value(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Read::Raw(Value::String(v.to_owned())))
    }
}

// ---------------------------------------------------------------------------
// Objects: free-form maps and string maps.
// ---------------------------------------------------------------------------

/// A JSON object with any values (dynamic variables, custom attributes).
impl Lenient for Map<String, Value> {
    const EXPECTED: &'static str = "an object";

    fn read<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Read<Self>, D::Error> {
        Ok(match strict_value(deserializer)? {
            Value::Object(object) => Read::Typed(object),
            Value::Null => Read::Null,
            other => Read::Raw(other),
        })
    }
}

/// A JSON object of strings (SIP headers). Any other value in it makes the
/// whole field fall back.
impl Lenient for BTreeMap<String, String> {
    const EXPECTED: &'static str = "an object of strings";

    fn read<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Read<Self>, D::Error> {
        Ok(match strict_value(deserializer)? {
            Value::Object(object) => {
                if object.values().all(Value::is_string) {
                    Read::Typed(
                        object
                            .into_iter()
                            .filter_map(|(k, v)| match v {
                                Value::String(s) => Some((k, s)),
                                _ => None,
                            })
                            .collect(),
                    )
                } else {
                    Read::Raw(Value::Object(object))
                }
            }
            Value::Null => Read::Null,
            other => Read::Raw(other),
        })
    }
}
