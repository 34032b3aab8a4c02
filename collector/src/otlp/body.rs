//! Request-body handling for OTLP/HTTP: media types, a size-capped read, and gzip
//! decompression that stops at the limit instead of allocating whatever a bomb inflates to.

use std::io::Read;
use std::time::Duration;

use axum::body::Body;
use axum::body::HttpBody as _;
use bytes::Bytes;
use http::HeaderMap;
use http::header::{CONTENT_ENCODING, CONTENT_TYPE};
use http_body_util::BodyExt;

use super::budget::Reservation;
use super::ingest::IngestError;

/// The two OTLP/HTTP encodings; responses use the request's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }

    /// Parses `Content-Type`, ignoring parameters (`; charset=utf-8`) and case.
    pub fn from_headers(headers: &HeaderMap) -> Result<Encoding, IngestError> {
        let raw = headers
            .get(CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let raw = raw.unwrap_or_default();
        let media = raw
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match media.as_str() {
            "application/x-protobuf" | "application/protobuf" => Ok(Encoding::Protobuf),
            "application/json" => Ok(Encoding::Json),
            _ => Err(IngestError::UnsupportedMediaType(truncate(&raw, 100))),
        }
    }
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// Whether the body is gzip (`Content-Encoding: gzip`) or plain.
pub fn is_gzip(headers: &HeaderMap) -> Result<bool, IngestError> {
    let Some(value) = headers.get(CONTENT_ENCODING) else {
        return Ok(false);
    };
    let value = String::from_utf8_lossy(value.as_bytes())
        .trim()
        .to_ascii_lowercase();
    match value.as_str() {
        "" | "identity" => Ok(false),
        "gzip" | "x-gzip" => Ok(true),
        _ => Err(IngestError::UnsupportedEncoding(truncate(&value, 100))),
    }
}

/// Reads at most `limit` bytes of the body, growing `reservation` as bytes arrive; a
/// declared `Content-Length` over the limit is refused before reading anything.
pub async fn read_capped(
    body: Body,
    limit: usize,
    reservation: &mut Reservation,
    wait: Duration,
) -> Result<Bytes, IngestError> {
    let drain_limit = (limit as u64).saturating_mul(DRAIN_FACTOR);
    let declared = body.size_hint().lower();
    if declared > drain_limit {
        return Err(IngestError::TooLarge { limit });
    }
    // A declared length within the limit is reserved and allocated at once: one buffer,
    // not one that doubles (and copies, and leaves the smaller ones to the allocator) as
    // frames come. Over it, nothing is allocated before the bytes are reserved.
    let reserved = if declared <= limit as u64 {
        reservation.grow_to(declared, wait).await?;
        declared as usize
    } else {
        0
    };
    let mut body = body;
    let mut kept = bytes::BytesMut::with_capacity(reserved);
    let mut seen: u64 = 0;
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| IngestError::Malformed(format!("reading request body: {e}")))?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        seen += data.len() as u64;
        if seen > drain_limit {
            return Err(IngestError::TooLarge { limit });
        }
        if seen <= limit as u64 {
            reservation.grow_to(seen, wait).await?;
            kept.extend_from_slice(&data);
        }
    }
    if seen > limit as u64 {
        return Err(IngestError::TooLarge { limit });
    }
    Ok(kept.freeze())
}

/// How many bytes `compressed` says it inflates to: gzip's trailer holds the last
/// member's size modulo 4 GiB, exact for the single-member bodies clients send, so the
/// output is allocated once instead of doubling (and copying) its way there. The sender
/// controls it: it only sizes the first allocation, which the caller caps, and a wrong
/// value costs only the growth it would have anyway. Without a trailer, four times
/// the input.
fn inflated_size_hint(compressed: &[u8]) -> usize {
    match compressed.last_chunk::<4>() {
        Some(size) if compressed.len() >= GZIP_MIN_LEN => u32::from_le_bytes(*size) as usize,
        _ => compressed.len().saturating_mul(4),
    }
}

/// A gzip member's header (10 bytes) and trailer (8 bytes) around at least one byte.
const GZIP_MIN_LEN: usize = 19;

/// An oversized body up to this many times the limit is read and discarded before the
/// 413 goes out: a client still writing its body would otherwise see a broken pipe
/// instead of the status that tells it not to retry.
const DRAIN_FACTOR: u64 = 4;

/// Inflates gzip, holding at most `limit + 1` bytes: one byte past the limit proves
/// the body too large without inflating the rest.
pub fn gunzip_capped(compressed: &[u8], limit: usize) -> Result<Vec<u8>, IngestError> {
    let mut out = Vec::with_capacity(inflated_size_hint(compressed).min(limit + 1));
    let mut decoder = flate2::read::MultiGzDecoder::new(compressed).take(limit as u64 + 1);
    decoder
        .read_to_end(&mut out)
        .map_err(|e| IngestError::Malformed(format!("invalid gzip body: {e}")))?;
    if out.len() > limit {
        return Err(IngestError::TooLarge { limit });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    pub(crate) fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn gzip_round_trips_below_the_limit() {
        assert_eq!(gunzip_capped(&gzip(b"hello"), 5).unwrap(), b"hello");
    }

    #[test]
    fn a_gzip_bomb_stops_one_byte_past_the_limit() {
        let bomb = gzip(&vec![0u8; 8 << 20]);
        assert!(
            bomb.len() < 64 << 10,
            "bomb should compress well: {}",
            bomb.len()
        );
        assert_eq!(
            gunzip_capped(&bomb, 1 << 20),
            Err(IngestError::TooLarge { limit: 1 << 20 })
        );
    }

    #[test]
    fn inflating_allocates_the_trailer_size_once() {
        let data = vec![7u8; 300_000];
        let out = gunzip_capped(&gzip(&data), 1 << 20).unwrap();
        assert_eq!(out, data);
        assert_eq!(out.capacity(), data.len(), "no doubling past the size");
        assert_eq!(inflated_size_hint(b"short"), 20, "no trailer: four times");
        let mut lying = gzip(b"x");
        let at = lying.len() - 4;
        lying[at..].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(inflated_size_hint(&lying), u32::MAX as usize);
        // Sized to the cap, not to 4 GiB, and then refused for the wrong size.
        assert!(matches!(
            gunzip_capped(&lying, 1 << 10),
            Err(IngestError::Malformed(_))
        ));
    }

    #[test]
    fn corrupt_gzip_is_malformed() {
        assert!(matches!(
            gunzip_capped(b"not gzip", 100),
            Err(IngestError::Malformed(_))
        ));
    }

    #[test]
    fn media_types_ignore_parameters_and_case() {
        let mut h = HeaderMap::new();
        h.insert(
            CONTENT_TYPE,
            "Application/JSON; charset=utf-8".parse().unwrap(),
        );
        assert_eq!(Encoding::from_headers(&h), Ok(Encoding::Json));
        h.insert(CONTENT_TYPE, "text/plain".parse().unwrap());
        assert!(matches!(
            Encoding::from_headers(&h),
            Err(IngestError::UnsupportedMediaType(_))
        ));
        assert!(Encoding::from_headers(&HeaderMap::new()).is_err());
        h.insert(CONTENT_ENCODING, "br".parse().unwrap());
        assert!(is_gzip(&h).is_err());
    }
}
