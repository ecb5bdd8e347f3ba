//! `open_enum!`: string enums that keep values they do not know.
//!
//! Retell's enums grow every few months (`disconnection_reason` went from 19 to 34
//! values in two years). `#[serde(other)]` would drop the new string, so every enum
//! here has an `Unknown(String)` variant that keeps it and serializes it back.

/// Whether an unknown value counts as untyped: not for enums that Retell types
/// as free strings and only documents known values of (marked `[free]`).
macro_rules! unknown_is_untyped {
    () => {
        true
    };
    (free) => {
        false
    };
}

macro_rules! open_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident $([$free:ident])? {
            $( $(#[$vmeta:meta])* $variant:ident = $wire:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name {
            $(
                $(#[$vmeta])*
                #[doc = concat!("`\"", $wire, "\"`")]
                $variant,
            )+
            /// A value this version of the crate does not know (kept verbatim).
            Unknown(String),
        }

        impl $name {
            /// Every value this version knows, in wire form.
            pub const KNOWN: &'static [&'static str] = &[$($wire),+];

            /// The wire string (for `Unknown`, the string that was received).
            pub fn as_str(&self) -> &str {
                match self {
                    $( Self::$variant => $wire, )+
                    Self::Unknown(other) => other.as_str(),
                }
            }

            /// `true` for a value this version does not know.
            pub fn is_unknown(&self) -> bool {
                matches!(self, Self::Unknown(_))
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                match value {
                    $( $wire => Self::$variant, )+
                    other => Self::Unknown(other.to_owned()),
                }
            }
        }

        impl From<String> for $name {
            fn from(value: String) -> Self {
                match Self::from(value.as_str()) {
                    Self::Unknown(_) => Self::Unknown(value),
                    known => known,
                }
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = ::std::convert::Infallible;
            fn from_str(value: &str) -> Result<Self, Self::Err> {
                Ok(Self::from(value))
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct V;
                impl ::serde::de::Visitor<'_> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                        f.write_str("a string")
                    }
                    fn visit_str<E: ::serde::de::Error>(self, value: &str) -> Result<$name, E> {
                        Ok($name::from(value))
                    }
                    fn visit_string<E: ::serde::de::Error>(self, value: String) -> Result<$name, E> {
                        Ok($name::from(value))
                    }
                }
                deserializer.deserialize_str(V)
            }
        }

        impl $crate::models::lenient::Scalar for $name {
            const EXPECTED: &'static str = "a string";
            fn from_str(value: &str) -> Option<Self> {
                Some(Self::from(value))
            }
            fn from_string(value: String) -> Result<Self, String> {
                Ok(Self::from(value))
            }
        }

        impl $crate::models::lenient::Lenient for $name {
            const EXPECTED: &'static str = "a string";
            fn read<'de, D: ::serde::Deserializer<'de>>(
                deserializer: D,
            ) -> Result<$crate::models::lenient::Read<Self>, D::Error> {
                $crate::models::lenient::read_scalar(deserializer)
            }
            fn walk(
                &self,
                path: &mut $crate::models::untyped::Path,
                out: &mut Vec<$crate::models::untyped::Untyped>,
            ) {
                if unknown_is_untyped!($($free)?) && self.is_unknown() {
                    path.record(out, $crate::models::untyped::UntypedReason::UnknownValue);
                }
            }
        }
    };
}
