//! [`SmallString`]: the text of a word, kept inline when it is short.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;

use compact_str::CompactString;
use serde::{Deserializer, Serialize, Serializer};

use super::lenient::{Lenient, Read, Scalar, read_scalar};

/// An immutable string stored inline, without an allocation, up to 24 bytes
/// (the text of a [`Word`](crate::Word)).
///
/// A transcript holds thousands of words of a few bytes each: one allocation
/// per word would cost more than all of the parse's other allocations. It
/// dereferences to `str`.
///
/// ```
/// use retell_webhooks::models::SmallString;
///
/// let word = SmallString::from("Tuesday?");
/// assert_eq!(&*word, "Tuesday?");
/// assert!(word.starts_with("Tue"));
/// assert_eq!(String::from(word), "Tuesday?");
/// assert_eq!(size_of::<Option<SmallString>>(), 24);
/// ```
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SmallString(CompactString);

impl SmallString {
    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Deref for SmallString {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for SmallString {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for SmallString {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl From<&str> for SmallString {
    fn from(text: &str) -> Self {
        Self(CompactString::from(text))
    }
}

impl From<String> for SmallString {
    fn from(text: String) -> Self {
        Self(CompactString::from(text))
    }
}

impl From<SmallString> for String {
    fn from(text: SmallString) -> Self {
        text.0.into_string()
    }
}

impl PartialEq<str> for SmallString {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for SmallString {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Debug for SmallString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for SmallString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self)
    }
}

impl Serialize for SmallString {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self)
    }
}

impl Scalar for SmallString {
    const EXPECTED: &'static str = <String as Scalar>::EXPECTED;
    fn from_str(v: &str) -> Option<Self> {
        Some(v.into())
    }
    fn from_string(v: String) -> Result<Self, String> {
        Ok(v.into())
    }
}

impl Lenient for SmallString {
    const EXPECTED: &'static str = <Self as Scalar>::EXPECTED;
    fn read<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Read<Self>, D::Error> {
        read_scalar(deserializer)
    }
}
