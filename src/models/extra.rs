//! [`Extra`]: everything an object held that its typed fields do not.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::{Deref, DerefMut};

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use super::RawJson;

/// What a model read besides its typed fields, so that serialization writes
/// back exactly what was received:
///
/// * **unknown keys** with their values as [`RawJson`] (this type
///   dereferences to that [`BTreeMap`], so `call.extra.get("batch_call_id")`
///   works);
/// * which known fields were an explicit `null` (the typed field is `None`,
///   and `null` is written back);
/// * values of known fields that did not fit their type (the typed field is
///   `None`, the value is kept and written back; see the model's
///   `fallback()` method).
///
///
/// The whole set lives behind one pointer, allocated on the first unknown key,
/// `null` or fallback: the typical object of a long transcript has none and
/// pays eight bytes.
#[derive(Clone, Default)]
pub struct Extra {
    inner: Option<Box<Inner>>,
}

#[derive(Clone, Default, PartialEq)]
struct Inner {
    unknown: BTreeMap<String, RawJson>,
    /// Known fields that were an explicit `null`, one bit per field index.
    nulls: u128,
    /// Raw values of known fields that did not fit their type, by field index.
    fallbacks: Vec<(u8, RawJson)>,
}

/// The empty map [`Extra`] dereferences to while it holds nothing.
static EMPTY: BTreeMap<String, RawJson> = BTreeMap::new();

fn bit(index: u8) -> u128 {
    1u128.checked_shl(u32::from(index)).unwrap_or(0)
}

impl Extra {
    /// An empty set: no unknown keys, nulls or fallbacks.
    pub fn new() -> Self {
        Self::default()
    }

    /// The unknown keys.
    pub fn unknown(&self) -> &BTreeMap<String, RawJson> {
        match &self.inner {
            Some(inner) => &inner.unknown,
            None => &EMPTY,
        }
    }

    /// The unknown keys, by value.
    pub fn into_unknown(self) -> BTreeMap<String, RawJson> {
        self.inner.map(|inner| inner.unknown).unwrap_or_default()
    }

    /// The value of unknown key `key` as a [`serde_json::Value`], when
    /// present (built on each call).
    pub fn value(&self, key: &str) -> Option<Value> {
        self.unknown().get(key).map(Value::from)
    }

    /// `true` when there are no unknown keys, nulls or fallbacks.
    pub(crate) fn holds_nothing(&self) -> bool {
        self.inner
            .as_ref()
            .is_none_or(|inner| **inner == Inner::default())
    }

    fn inner_mut(&mut self) -> &mut Inner {
        self.inner.get_or_insert_with(Box::default)
    }

    /// Remembers that field `index` was an explicit `null`.
    pub(crate) fn note_null(&mut self, index: u8) {
        self.inner_mut().nulls |= bit(index);
    }

    /// Keeps the raw value of field `index`, which did not fit its type.
    pub(crate) fn note_fallback(&mut self, index: u8, value: RawJson) {
        self.inner_mut().fallbacks.push((index, value));
    }

    /// Whether field `index` was an explicit `null`.
    pub(crate) fn is_null(&self, index: u8) -> bool {
        self.inner
            .as_ref()
            .is_some_and(|inner| inner.nulls & bit(index) != 0)
    }

    /// The raw value of field `index`, if it fell back.
    pub(crate) fn fallback(&self, index: u8) -> Option<&RawJson> {
        let inner = self.inner.as_ref()?;
        inner
            .fallbacks
            .iter()
            .find_map(|(i, value)| (*i == index).then_some(value))
    }

    /// Removes what was kept of field `index`: its raw value, or `null`.
    pub(crate) fn take_absent(&mut self, index: u8) -> Option<RawJson> {
        let inner = self.inner.as_mut()?;
        match inner.fallbacks.iter().position(|(i, _)| *i == index) {
            Some(at) => Some(inner.fallbacks.remove(at).1),
            None => {
                let was_null = inner.nulls & bit(index) != 0;
                inner.nulls &= !bit(index);
                was_null.then(RawJson::null)
            }
        }
    }

    /// Field indices that fell back, in reading order.
    pub(crate) fn fallback_indices(&self) -> impl Iterator<Item = u8> + '_ {
        self.inner
            .iter()
            .flat_map(|inner| inner.fallbacks.iter().map(|(i, _)| *i))
    }

    /// Writes a known field whose typed value is `None`: its raw value if it
    /// fell back, `null` if it was `null`, nothing if it was absent.
    pub(crate) fn write_absent<M: SerializeMap>(
        &self,
        map: &mut M,
        key: &'static str,
        index: u8,
    ) -> Result<(), M::Error> {
        if self.inner.is_none() {
            return Ok(());
        }
        if let Some(value) = self.fallback(index) {
            map.serialize_entry(key, value)
        } else if self.is_null(index) {
            map.serialize_entry(key, &())
        } else {
            Ok(())
        }
    }

    /// Writes the unknown keys.
    pub(crate) fn write_unknown<M: SerializeMap>(&self, map: &mut M) -> Result<(), M::Error> {
        for (key, value) in self.unknown() {
            map.serialize_entry(key, value)?;
        }
        Ok(())
    }
}

/// Equal when they hold the same unknown keys, nulls and fallbacks (however
/// they came to be allocated).
impl PartialEq for Extra {
    fn eq(&self, other: &Self) -> bool {
        match (&self.inner, &other.inner) {
            (Some(a), Some(b)) => a == b,
            (Some(one), None) | (None, Some(one)) => **one == Inner::default(),
            (None, None) => true,
        }
    }
}

/// Shows the unknown keys, and the indices of nulls and fallbacks when there
/// are any.
impl fmt::Debug for Extra {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            None => f.write_str("{}"),
            Some(inner) if inner.nulls == 0 && inner.fallbacks.is_empty() => {
                fmt::Debug::fmt(&inner.unknown, f)
            }
            Some(inner) => f
                .debug_struct("Extra")
                .field("unknown", &inner.unknown)
                .field("nulls", &format_args!("{:#x}", inner.nulls))
                .field("fallbacks", &inner.fallbacks)
                .finish(),
        }
    }
}

impl Deref for Extra {
    type Target = BTreeMap<String, RawJson>;

    fn deref(&self) -> &BTreeMap<String, RawJson> {
        self.unknown()
    }
}

impl DerefMut for Extra {
    fn deref_mut(&mut self) -> &mut BTreeMap<String, RawJson> {
        &mut self.inner_mut().unknown
    }
}

impl From<Map<String, Value>> for Extra {
    fn from(unknown: Map<String, Value>) -> Self {
        unknown.into_iter().collect()
    }
}

impl From<BTreeMap<String, RawJson>> for Extra {
    fn from(unknown: BTreeMap<String, RawJson>) -> Self {
        if unknown.is_empty() {
            return Self::default();
        }
        Self {
            inner: Some(Box::new(Inner {
                unknown,
                ..Inner::default()
            })),
        }
    }
}

impl FromIterator<(String, Value)> for Extra {
    fn from_iter<I: IntoIterator<Item = (String, Value)>>(iter: I) -> Self {
        iter.into_iter()
            .map(|(key, value)| (key, RawJson::from(value)))
            .collect()
    }
}

impl FromIterator<(String, RawJson)> for Extra {
    fn from_iter<I: IntoIterator<Item = (String, RawJson)>>(iter: I) -> Self {
        Self::from(iter.into_iter().collect::<BTreeMap<String, RawJson>>())
    }
}

/// Serializes the unknown keys as an object.
impl Serialize for Extra {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.unknown().serialize(serializer)
    }
}
