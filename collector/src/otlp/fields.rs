//! Reading a protobuf message's fields off its bytes: the one loop under both the
//! admission walk ([`super::shape`]) and the span reader ([`super::wire`]). A field's
//! payload is borrowed, never copied; errors are the malformed-input kind `prost` would
//! report.

use prost::encoding::{
    WireType, decode_key as prost_decode_key, decode_varint as prost_decode_varint,
};

use super::ingest::IngestError;
use super::shape::malformed;

/// One field's payload.
#[derive(Clone, Copy)]
pub(super) enum Payload<'a> {
    Varint(u64),
    Fixed64(u64),
    Fixed32,
    Bytes(&'a [u8]),
}

impl<'a> Payload<'a> {
    pub fn wire_type(self) -> WireType {
        match self {
            Payload::Varint(_) => WireType::Varint,
            Payload::Fixed64(_) => WireType::SixtyFourBit,
            Payload::Fixed32 => WireType::ThirtyTwoBit,
            Payload::Bytes(_) => WireType::LengthDelimited,
        }
    }

    /// A length-delimited field's bytes.
    pub fn bytes(self) -> Option<&'a [u8]> {
        match self {
            Payload::Bytes(b) => Some(b),
            _ => None,
        }
    }
}

/// The fields of one message, in wire order.
pub(super) struct Fields<'a>(pub &'a [u8]);

impl<'a> Fields<'a> {
    fn next_field(&mut self) -> Result<(u32, Payload<'a>), IngestError> {
        let buf = &mut self.0;
        let (tag, wire_type) = decode_key(buf)?;
        let take = |buf: &mut &'a [u8], n: usize| -> Result<&'a [u8], IngestError> {
            if buf.len() < n {
                return Err(malformed("field past the end of the message"));
            }
            let (head, rest) = buf.split_at(n);
            *buf = rest;
            Ok(head)
        };
        let payload = match wire_type {
            WireType::Varint => Payload::Varint(decode_varint(buf)?),
            WireType::SixtyFourBit => {
                let b = take(buf, 8)?;
                Payload::Fixed64(u64::from_le_bytes(b.try_into().unwrap_or_default()))
            }
            WireType::ThirtyTwoBit => {
                take(buf, 4)?;
                Payload::Fixed32
            }
            WireType::LengthDelimited => {
                let len = decode_varint(buf)?;
                let len = usize::try_from(len).map_err(|_| malformed("length too large"))?;
                Payload::Bytes(take(buf, len)?)
            }
            WireType::StartGroup | WireType::EndGroup => {
                return Err(malformed("protobuf groups are not part of OTLP"));
            }
        };
        Ok((tag, payload))
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u32, Payload<'a>), IngestError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.0.is_empty() {
            return None;
        }
        let next = self.next_field();
        if next.is_err() {
            self.0 = &[];
        }
        Some(next)
    }
}

/// A field's key. Tags up to 15 with a valid wire type (every OTLP field) take one byte
/// and are read here; anything else is `prost`'s, errors included.
#[inline]
fn decode_key(buf: &mut &[u8]) -> Result<(u32, WireType), IngestError> {
    if let Some((&byte, rest)) = buf.split_first()
        && (8..0x80).contains(&byte)
        && let Ok(wire_type) = WireType::try_from(u64::from(byte & 7))
    {
        *buf = rest;
        return Ok((u32::from(byte >> 3), wire_type));
    }
    prost_decode_key(buf).map_err(|e| malformed(&e.to_string()))
}

/// A varint: one byte read here (most lengths and enums), longer ones by `prost`.
#[inline]
fn decode_varint(buf: &mut &[u8]) -> Result<u64, IngestError> {
    if let Some((&byte, rest)) = buf.split_first()
        && byte < 0x80
    {
        *buf = rest;
        return Ok(u64::from(byte));
    }
    prost_decode_varint(buf).map_err(|e| malformed(&e.to_string()))
}
