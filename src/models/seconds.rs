//! [`Seconds`]: a word time stored in eight bytes, `None` included.

use std::fmt;
use std::num::NonZeroU64;

use serde::{Serialize, Serializer};

use super::lenient::{Lenient, Read, Scalar, read_scalar};

/// A time in seconds (the `start` and `end` of a [`Word`](crate::Word)).
///
/// Holds any `f64` exactly (of the NaN bit patterns, which JSON cannot carry,
/// one is stored as the standard NaN). A transcript carries thousands of word
/// timings, and `Option<f64>` takes sixteen bytes where `Option<Seconds>`
/// takes eight: this keeps a parsed transcript smaller than its JSON.
///
/// ```
/// use retell_webhooks::models::Seconds;
///
/// let start = Seconds::new(1.25);
/// assert_eq!(start.get(), 1.25);
/// assert_eq!(f64::from(start), 1.25);
/// assert_eq!(size_of::<Option<Seconds>>(), 8);
/// ```
#[derive(Clone, Copy)]
pub struct Seconds(NonZeroU64);

/// The one bit pattern that cannot be stored as is: a NaN, so storing the
/// standard NaN in its place keeps the value.
const UNSTORABLE: u64 = u64::MAX;

impl Seconds {
    /// Wraps a value.
    pub fn new(value: f64) -> Self {
        let bits = match value.to_bits() {
            UNSTORABLE => f64::NAN.to_bits(),
            bits => bits,
        };
        // Adding one keeps every other pattern non-zero, `0.0` included.
        Self(NonZeroU64::new(bits.wrapping_add(1)).unwrap_or(NonZeroU64::MIN))
    }

    /// The value.
    pub fn get(self) -> f64 {
        f64::from_bits(self.0.get().wrapping_sub(1))
    }
}

impl From<f64> for Seconds {
    fn from(value: f64) -> Self {
        Self::new(value)
    }
}

impl From<Seconds> for f64 {
    fn from(value: Seconds) -> Self {
        value.get()
    }
}

/// Equal when the values are (as `f64`: `NaN` is not equal to itself).
impl PartialEq for Seconds {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl PartialOrd for Seconds {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        self.get().partial_cmp(&other.get())
    }
}

impl fmt::Debug for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.get(), f)
    }
}

impl fmt::Display for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.get(), f)
    }
}

impl Serialize for Seconds {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(self.get())
    }
}

/// Read as a float field is: integers that a float holds exactly are accepted.
impl Scalar for Seconds {
    const EXPECTED: &'static str = <f64 as Scalar>::EXPECTED;
    fn from_u64(v: u64) -> Option<Self> {
        f64::from_u64(v).map(Self::new)
    }
    fn from_i64(v: i64) -> Option<Self> {
        f64::from_i64(v).map(Self::new)
    }
    fn from_f64(v: f64) -> Option<Self> {
        Some(Self::new(v))
    }
}

impl Lenient for Seconds {
    const EXPECTED: &'static str = <Self as Scalar>::EXPECTED;
    fn read<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Read<Self>, D::Error> {
        read_scalar(deserializer)
    }
}

#[cfg(test)]
mod tests {
    use super::Seconds;

    #[test]
    fn every_value_round_trips() {
        for value in [
            0.0,
            -0.0,
            1.5,
            f64::MIN_POSITIVE,
            f64::MAX,
            f64::INFINITY,
            2023.5500000000002,
        ] {
            assert_eq!(Seconds::new(value).get().to_bits(), value.to_bits());
        }
        assert!(Seconds::new(f64::from_bits(u64::MAX)).get().is_nan());
        assert!(Seconds::new(f64::NAN).get().is_nan());
    }
}
