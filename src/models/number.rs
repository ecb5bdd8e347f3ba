//! Lenient integer fields.
//!
//! Retell's TypeScript types say `number` for timestamps, durations and versions, so
//! a JavaScript producer may legally write `1e3` or `1000.0`. Integer fields accept
//! such *integral* floats and reject everything that would lose information: a
//! fraction (`1.5`), a negative value, or a value above `u64::MAX`.

use std::fmt;

use serde::Deserializer;
use serde::de::{self, Visitor};

/// Largest float strictly above `u64::MAX` (2^64); floats at or above it overflow.
const TWO_POW_64: f64 = 18_446_744_073_709_551_616.0;

/// Deserializes an optional non-negative integer (`null` → `None`).
pub(crate) fn opt_u64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    deserializer.deserialize_option(OptU64)
}

struct OptU64;

impl<'de> Visitor<'de> for OptU64 {
    type Value = Option<u64>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a non-negative integer or null")
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(U64).map(Some)
    }
}

/// Visitor for one lenient `u64`.
struct U64;

impl Visitor<'_> for U64 {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a non-negative integer")
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<u64, E> {
        Ok(value)
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<u64, E> {
        u64::try_from(value)
            .map_err(|_| E::custom("negative value where a non-negative integer is expected"))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<u64, E> {
        if !value.is_finite() || value.fract() != 0.0 {
            return Err(E::custom("fractional number where an integer is expected"));
        }
        if value < 0.0 && value != 0.0 {
            return Err(E::custom(
                "negative value where a non-negative integer is expected",
            ));
        }
        if value >= TWO_POW_64 {
            return Err(E::custom("integer out of range"));
        }
        // In range and integral: the conversion is exact.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        Ok(value as u64)
    }
}
