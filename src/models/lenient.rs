//! Reading one known field without ever failing the body on its type.
//!
//! Every typed field of a model is read through [`Lenient::read`], which
//! accepts any JSON value: the expected type gives [`Read::Typed`], `null`
//! gives [`Read::Null`], and anything else gives [`Read::Raw`] with the value
//! kept for re-serialization (a *fallback*). Only the JSON itself can fail:
//! syntax, nesting depth, invalid strings and duplicate keys, which the
//! deserializer reports before a visitor sees a value.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::fmt;
use std::marker::PhantomData;

use serde::Serialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::raw::{
    RawJson, RawObject, Sink, duplicate, raw_bool, raw_f64, raw_i64, raw_map, raw_seq, raw_str,
    raw_u64, read_raw, to_raw,
};
use super::untyped::{Path, Untyped};

/// What one field read gave.
pub(crate) enum Read<T> {
    /// A value of the expected type.
    Typed(T),
    /// An explicit `null`.
    Null,
    /// A value of another type or out of range, kept as it came.
    Raw(RawJson),
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
// Errors about keys.
// ---------------------------------------------------------------------------

/// Inserts a key that must not be present yet.
pub(crate) fn insert_unique<E: de::Error>(
    object: &mut BTreeMap<String, RawJson>,
    key: String,
    value: RawJson,
) -> Result<(), E> {
    match object.entry(key) {
        Entry::Occupied(entry) => Err(duplicate(entry.key())),
        Entry::Vacant(entry) => {
            entry.insert(value);
            Ok(())
        }
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

fn typed_or<T>(typed: Option<T>, raw: impl FnOnce() -> RawJson) -> Read<T> {
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
        Ok(typed_or(T::from_bool(v), || raw_bool(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Read<T>, E> {
        Ok(typed_or(T::from_i64(v), || raw_i64(v)))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Read<T>, E> {
        Ok(typed_or(T::from_u64(v), || raw_u64(v)))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Read<T>, E> {
        Ok(typed_or(T::from_f64(v), || raw_f64(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Read<T>, E> {
        Ok(typed_or(T::from_str(v), || raw_str(v)))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Read<T>, E> {
        Ok(match T::from_string(v) {
            Ok(value) => Read::Typed(value),
            Err(v) => Read::Raw(raw_str(&v)),
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
        raw_seq(seq).map(Read::Raw)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Read<T>, A::Error> {
        raw_map(map).map(Read::Raw)
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

/// Items a list holds on the stack before it spills to the heap: enough for a
/// typical utterance's word timings.
const INLINE: usize = 16;

/// Collects the items of one list. Short lists (most word-timing lists) stay
/// on the stack and end in one allocation of the exact length, instead of a
/// heap buffer that is grown and then shrunk (a realloc per list).
struct Items<T> {
    head: [Option<T>; INLINE],
    len: usize,
    /// Everything once `head` is full (then `head` is empty).
    spill: Vec<T>,
}

impl<T> Items<T> {
    fn new() -> Self {
        Self {
            head: Default::default(),
            len: 0,
            spill: Vec::new(),
        }
    }

    fn push(&mut self, item: T) {
        if self.spill.capacity() == 0 {
            if let Some(slot) = self.head.get_mut(self.len) {
                *slot = Some(item);
                self.len += 1;
                return;
            }
            self.spill.reserve_exact(2 * INLINE);
            self.spill
                .extend(self.head.iter_mut().filter_map(Option::take));
        } else if self.spill.len() == self.spill.capacity() {
            // Grow by half, not double: while a long list grows, the old and
            // the new buffer are both live, and the last long list of a body
            // grows when everything else is already allocated.
            self.spill.reserve_exact(self.spill.len() / 2);
        }
        self.spill.push(item);
    }

    fn len(&self) -> usize {
        if self.spill.capacity() == 0 {
            self.len
        } else {
            self.spill.len()
        }
    }

    /// Moves the items to the end of `list`.
    fn move_into(mut self, list: &mut Vec<T>) {
        list.extend(self.head.iter_mut().filter_map(Option::take));
        list.append(&mut self.spill);
    }

    fn finish(mut self) -> Vec<T> {
        if self.spill.capacity() == 0 {
            let mut items = Vec::with_capacity(self.len);
            items.extend(self.head.iter_mut().filter_map(Option::take));
            return items;
        }
        // Long lists grow to up to one and a half times their length; they
        // are trimmed so a parsed body stays close to its size in memory.
        self.spill.shrink_to_fit();
        self.spill
    }
}

/// A list with an item of another type: the whole list as raw JSON, the
/// items read so far re-encoded (losslessly) in front.
fn fall_back<'de, T: Serialize, A: SeqAccess<'de>>(
    items: Vec<T>,
    odd: Read<T>,
    seq: A,
) -> Result<RawJson, A::Error> {
    let odd = match odd {
        Read::Typed(item) => to_raw(&item).map_err(de::Error::custom)?,
        Read::Null => RawJson::null(),
        Read::Raw(value) => value,
    };
    let mut sink = Sink::new();
    sink.push('[');
    for item in items {
        sink.push_raw(&serde_json::to_string(&item).map_err(de::Error::custom)?);
        sink.push(',');
    }
    sink.push_raw(odd.as_str());
    sink.write_seq_rest(seq, true)?;
    Ok(sink.finish())
}

/// The rest of a long list: written as compact text while its items are
/// counted, then read from that text into a list of the exact length. A list
/// grown item by item holds up to twice its length while it grows, which for
/// items of a few bytes of JSON is many times the body.
fn long_list<'de, T: Lenient, A: SeqAccess<'de>>(
    items: Items<T>,
    seq: A,
) -> Result<Read<Vec<T>>, A::Error> {
    let mut sink = Sink::new();
    sink.push('[');
    let rest = sink.write_seq_rest(seq, false)?;
    // Trimmed before the list is allocated, so that only the text's length
    // is live next to it.
    let text = sink.finish();
    let mut list = Vec::new();
    list.try_reserve_exact(items.len() + rest)
        .map_err(de::Error::custom)?;
    items.move_into(&mut list);
    let mut de = serde_json::Deserializer::from_str(text.as_str());
    de.deserialize_seq(Refill(list)).map_err(de::Error::custom)
}

/// Reads the items of a list into a list that has room for all of them.
struct Refill<T>(Vec<T>);

impl<'de, T: Lenient> Visitor<'de> for Refill<T> {
    type Value = Read<Vec<T>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut list = self.0;
        loop {
            match seq.next_element_seed(ReadSeed::<T>::new())? {
                Some(Read::Typed(item)) => list.push(item),
                Some(odd) => return fall_back(list, odd, seq).map(Read::Raw),
                None => return Ok(Read::Typed(list)),
            }
        }
    }
}

/// Items a list reads before it measures the rest: lists longer than this
/// (far above a long call's utterances or an utterance's words) are counted
/// before they are stored.
const LONG: usize = 4096;

struct ListVisitor<T>(PhantomData<T>);

impl<'de, T: Lenient> Visitor<'de> for ListVisitor<T> {
    type Value = Read<Vec<T>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Items::new();
        while items.len() < LONG {
            match seq.next_element_seed(ReadSeed::<T>::new())? {
                Some(Read::Typed(item)) => items.push(item),
                Some(odd) => return fall_back(items.finish(), odd, seq).map(Read::Raw),
                None => return Ok(Read::Typed(items.finish())),
            }
        }
        long_list(items, seq)
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
        raw_map(map).map(Read::Raw)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Read::Raw(raw_bool(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Read::Raw(raw_i64(v)))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Read::Raw(raw_u64(v)))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Read::Raw(raw_f64(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Read::Raw(raw_str(v)))
    }
}

// ---------------------------------------------------------------------------
// Objects: free-form maps and string maps.
// ---------------------------------------------------------------------------

/// A JSON object of strings (SIP headers). Any other value in it makes the
/// whole field fall back.
impl Lenient for BTreeMap<String, String> {
    const EXPECTED: &'static str = "an object of strings";

    fn read<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Read<Self>, D::Error> {
        let raw = read_raw(deserializer)?;
        if raw.is_null() {
            return Ok(Read::Null);
        }
        // Checked as raw JSON first (duplicate keys, nesting); a map of
        // strings is then read from the text.
        Ok(match raw.deserialize::<BTreeMap<String, String>>() {
            Ok(map) if raw.is_object() => Read::Typed(map),
            _ => Read::Raw(raw),
        })
    }
}

/// A free-form field: any value but `null` is typed.
impl Lenient for RawJson {
    const EXPECTED: &'static str = "any JSON value";

    fn read<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Read<Self>, D::Error> {
        let raw = read_raw(deserializer)?;
        Ok(if raw.is_null() {
            Read::Null
        } else {
            Read::Typed(raw)
        })
    }
}

/// A free-form object field: an object is typed, any other value a fallback.
impl Lenient for RawObject {
    const EXPECTED: &'static str = "an object";

    fn read<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Read<Self>, D::Error> {
        let raw = read_raw(deserializer)?;
        Ok(if raw.is_null() {
            Read::Null
        } else {
            match Self::try_from(raw) {
                Ok(object) => Read::Typed(object),
                Err(other) => Read::Raw(other),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{Lenient, Read};

    fn read_list(text: &str) -> Read<Vec<f64>> {
        let mut de = serde_json::Deserializer::from_str(text);
        match <Vec<f64>>::read(&mut de) {
            Ok(read) => read,
            Err(error) => panic!("{text}: {error}"),
        }
    }

    fn numbers(n: usize, odd_at: Option<usize>) -> String {
        let items: Vec<String> = (0..n)
            .map(|i| match odd_at {
                Some(at) if at == i => "\"x\"".to_owned(),
                _ => format!("{i}.5"),
            })
            .collect();
        format!("[{}]", items.join(","))
    }

    /// Lists below, at and above the stack buffer and the length at which a
    /// list is counted first keep every item in order, at their exact length;
    /// an odd item anywhere keeps the list as received.
    #[test]
    fn lists_around_the_inline_buffer() {
        for n in [0, 1, 15, 16, 17, 32, 33, 100, 4095, 4096, 4097, 9000] {
            match read_list(&numbers(n, None)) {
                Read::Typed(items) => {
                    let expected: Vec<f64> = (0..n).map(|i| i as f64 + 0.5).collect();
                    assert_eq!(items, expected, "{n}");
                    assert_eq!(items.capacity(), n, "{n}");
                }
                _ => panic!("{n}: not typed"),
            }
            for at in [0, 15, 16, 17, 40, 4095, 4096, 4097, 8999]
                .into_iter()
                .filter(|at| *at < n)
            {
                let text = numbers(n, Some(at));
                match read_list(&text) {
                    Read::Raw(raw) => assert_eq!(raw.as_str(), text, "{n} odd at {at}"),
                    _ => panic!("{n} odd at {at}: not raw"),
                }
            }
        }
    }
}
