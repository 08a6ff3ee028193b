//! Hex on the wire: fixed-size byte identifiers (peer ids, room ids,
//! rendezvous tags, signatures) travel in JSON as lowercase hex strings of
//! exactly their length. Anything else — wrong length, uppercase, non-hex —
//! is a deserialisation error, so a hostile datagram is rejected while it is
//! parsed, before any of it is used.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Visitor};
use serde::{Deserializer, Serializer};

/// Serialises `bytes` as lowercase hex.
pub(crate) fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&hex::encode(bytes))
}

/// Deserialises exactly `N` bytes written as `2 * N` lowercase hex characters.
pub(crate) fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
    deserializer: D,
) -> Result<[u8; N], D::Error> {
    deserializer.deserialize_str(HexVisitor::<N>(PhantomData))
}

struct HexVisitor<const N: usize>(PhantomData<[u8; N]>);

impl<const N: usize> Visitor<'_> for HexVisitor<N> {
    type Value = [u8; N];

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} lowercase hex characters", N * 2)
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
        if s.len() != N * 2 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(E::invalid_value(de::Unexpected::Str(s), &self));
        }
        let mut out = [0u8; N];
        hex::decode_to_slice(s, &mut out)
            .map_err(|_| E::invalid_value(de::Unexpected::Str(s), &self))?;
        Ok(out)
    }
}

/// Implements `Serialize` and `Deserialize` as hex for a newtype over
/// `[u8; N]` with `as_bytes` and `from_bytes`.
macro_rules! impl_hex_serde {
    ($ty:ty, $len:expr) => {
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                $crate::hex_serde::serialize(self.as_bytes(), s)
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                $crate::hex_serde::deserialize::<D, { $len }>(d).map(<$ty>::from_bytes)
            }
        }
    };
}
pub(crate) use impl_hex_serde;
