//! Spans read straight from a protobuf traces request, without decoding it into `prost`
//! structs: the fields pairing needs are borrowed from the bytes, so a span costs one
//! pass over its fields instead of a decoded copy of every attribute that is then read
//! and freed.
//!
//! Only bytes that [`super::shape::traces_protobuf_for_reader`] passed are read here:
//! that walk checks wire types, lengths and the UTF-8 of every string as `prost` would,
//! and counts what decoding would build, down to the spans. Spans it only counts: this
//! reader walks each field of a span as the walk would ([`read_span_field`]: events,
//! links and status included) while it reads the span, so a span's bytes are gone
//! through once. Span and resource attributes it checks itself (and the strings it
//! reads, of every span, also those it then cuts). What it walks is added to the walk's
//! shape before the request's limits are checked, so what it accepts and what it sees
//! are what decoding would give. Validation and span reading follow
//! [`super::validate::validate_traces`] and [`crate::spans::SpanBatch::from_request`]
//! exactly (the tests compare them on the same bytes).

use super::fields::{Fields, Payload};
use super::ingest::IngestError;
use super::shape::{
    Msg, RESOURCE_ATTRIBUTE_VALUE_DEPTH, RequestLimits, SPAN_ATTRIBUTE_VALUE_DEPTH, Shape,
    check_shape, check_wire_type, malformed, nested_in_read_value, read_span_field,
};
use super::validate::{Rejections, TimeWindow, names_a_service, valid_ids};
use crate::spans::{Attrs, Key, KeyIndex, SpanBatch, SpanHead, Val};

/// What a field the reader skips adds to the decoded size: its bytes, when it has any.
fn unread_bytes(payload: Payload<'_>) -> u64 {
    payload.bytes().map_or(0, |b| b.len() as u64)
}

fn text(bytes: &[u8]) -> Result<&str, IngestError> {
    std::str::from_utf8(bytes).map_err(|_| malformed("string is not UTF-8"))
}

/// Span and resource attributes, which the shape walk only counted: checked here as
/// the walk checks them (wire types, nested values), and their size added up.
struct Attributes<'l> {
    limits: &'l RequestLimits,
    /// What the walk would have added for them.
    shape: Shape,
}

impl Attributes<'_> {
    /// An attribute's key, counted: the key span reading looks up, or `None` for any
    /// other (a known key is ASCII; any other is only checked).
    fn key(&mut self, bytes: &[u8]) -> Result<Option<Key>, IngestError> {
        self.shape.decoded_bytes += bytes.len() as u64;
        let key = Key::of_bytes(bytes);
        if key.is_none() {
            text(bytes)?;
        }
        Ok(key)
    }

    /// A `string_value`, counted and checked.
    fn string_value<'a>(&mut self, bytes: &'a [u8]) -> Result<Val<'a>, IngestError> {
        self.shape.decoded_bytes += bytes.len() as u64;
        Ok(Val::Str(text(bytes)?))
    }

    /// Merges one `AnyValue` message at `depth` into `value`: the last value field wins,
    /// as when `prost` merges repeated occurrences of a oneof.
    fn any_value<'a>(
        &mut self,
        bytes: &'a [u8],
        depth: u32,
        value: &mut Val<'a>,
    ) -> Result<(), IngestError> {
        for field in Fields(bytes) {
            // The arms that match a field of its schema type need no wire-type check.
            *value = match field? {
                (1, Payload::Bytes(s)) => self.string_value(s)?,
                (2, Payload::Varint(b)) => Val::Bool(b != 0),
                (3, Payload::Varint(i)) => Val::Int(i as i64),
                (4, Payload::Fixed64(d)) => Val::Double(f64::from_bits(d)),
                (tag @ (5 | 6), Payload::Bytes(nested)) => {
                    self.shape += nested_in_read_value(nested, tag, depth, self.limits)?;
                    Val::Other
                }
                (7, Payload::Bytes(b)) => {
                    self.shape.decoded_bytes += b.len() as u64;
                    Val::Other
                }
                (8, Payload::Varint(_)) => Val::Other,
                (tag, payload) => {
                    check_wire_type(Msg::AnyValue, tag, payload.wire_type())?;
                    self.shape.decoded_bytes += unread_bytes(payload);
                    continue;
                }
            };
        }
        Ok(())
    }

    /// A `KeyValue` whose value is at `value_depth`: its key, when span reading looks
    /// it up, and its value (`None` when it carries no value message).
    fn key_value<'a>(
        &mut self,
        bytes: &'a [u8],
        value_depth: u32,
    ) -> Result<(Option<Key>, Option<Val<'a>>), IngestError> {
        if let Some((k, s)) = short_string_attribute(bytes) {
            return Ok((self.key(k)?, Some(self.string_value(s)?)));
        }
        self.key_value_fields(bytes, value_depth)
    }

    /// [`Attributes::key_value`] for any layout, field by field.
    fn key_value_fields<'a>(
        &mut self,
        bytes: &'a [u8],
        value_depth: u32,
    ) -> Result<(Option<Key>, Option<Val<'a>>), IngestError> {
        let (mut key, mut value) = (None, None);
        for field in Fields(bytes) {
            match field? {
                (1, Payload::Bytes(k)) => key = self.key(k)?,
                (2, Payload::Bytes(v)) => {
                    self.any_value(v, value_depth, value.get_or_insert(Val::Other))?;
                }
                (tag, payload) => {
                    check_wire_type(Msg::KeyValue, tag, payload.wire_type())?;
                    self.shape.decoded_bytes += unread_bytes(payload);
                }
            }
        }
        Ok((key, value))
    }
}

/// The key and string value of a `KeyValue` laid out as nearly every exporter writes a
/// string attribute with a key under 128 bytes and a value under 126: key (field 1),
/// then value (field 2) holding only `string_value` (field 1), every length one byte.
/// Such bytes read here without the field loop, and to what the loop would make of
/// them; any other layout is `None`.
fn short_string_attribute(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let [0x0A, key_len, rest @ ..] = bytes else {
        return None;
    };
    let (key, rest) = rest.split_at_checked(usize::from(*key_len))?;
    let [0x12, value_len, 0x0A, string_len, string @ ..] = rest else {
        return None;
    };
    let whole = *key_len < 0x80
        && *value_len < 0x80
        && usize::from(*value_len) == usize::from(*string_len) + 2
        && string.len() == usize::from(*string_len);
    whole.then_some((key, string))
}

/// What reading a request found: spans in it, those cut by validation, and the batch.
pub(crate) struct ReadSpans {
    /// The request's shape: the walk's, with the attributes it left to the reader.
    pub shape: Shape,
    pub received: u64,
    pub rejections: Rejections,
    pub batch: SpanBatch,
}

#[derive(Default)]
struct Cut {
    nameless: u64,
    bad_ids: u64,
    out_of_window: u64,
}

/// Validates the spans of a protobuf `ExportTraceServiceRequest` (which the shape walk
/// passed) and reads the valid ones into pairing form. `spans` sizes the batch.
pub(crate) fn read_traces(
    bytes: &[u8],
    walked: &Shape,
    limits: &RequestLimits,
    window: &TimeWindow,
    now_ns: i64,
) -> Result<ReadSpans, IngestError> {
    let mut read = Reader {
        window: window.bounds(now_ns),
        received: 0,
        cut: Cut::default(),
        batch: SpanBatch::with_capacity(walked.records as usize),
        attributes: Attributes {
            limits,
            shape: *walked,
        },
    };
    for field in Fields(bytes) {
        if let (1, Payload::Bytes(rs)) = field? {
            read.resource_spans(rs)?;
        }
    }
    // Every span the walk left to the reader has been walked.
    let shape = Shape {
        unwalked_bytes: 0,
        ..read.attributes.shape
    };
    check_shape(shape, limits)?;
    let mut rejections = Rejections::default();
    let cut = read.cut;
    rejections.add_spans(cut.nameless, cut.bad_ids, cut.out_of_window, window);
    Ok(ReadSpans {
        shape,
        received: read.received,
        rejections,
        batch: read.batch,
    })
}

struct Reader<'l> {
    /// Accepted span starts, inclusive.
    window: (u64, u64),
    received: u64,
    cut: Cut,
    batch: SpanBatch,
    /// Starts as the walk's shape; the attributes add theirs.
    attributes: Attributes<'l>,
}

impl Reader<'_> {
    fn resource_spans(&mut self, bytes: &[u8]) -> Result<(), IngestError> {
        // The resource may come after its spans on the wire, and in pieces (decoding
        // merges them): index all of it first.
        let mut resource = KeyIndex::default();
        let mut named = false;
        for field in Fields(bytes) {
            if let (1, Payload::Bytes(r)) = field? {
                for field in Fields(r) {
                    if let (1, Payload::Bytes(kv)) = field? {
                        let (key, value) = self
                            .attributes
                            .key_value(kv, RESOURCE_ATTRIBUTE_VALUE_DEPTH)?;
                        if let Some(key) = key {
                            named |= key == Key::ServiceName && names_a_service(value);
                            resource.insert_key(key, value);
                        }
                    }
                }
            }
        }
        for field in Fields(bytes) {
            if let (2, Payload::Bytes(scope)) = field? {
                for field in Fields(scope) {
                    if let (2, Payload::Bytes(span)) = field? {
                        self.received += 1;
                        self.span(span, &resource, named)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Reads one span (its strings are checked even when it is cut: the walk left them
    /// to this reader) and keeps it when it is valid.
    fn span(
        &mut self,
        bytes: &[u8],
        resource: &KeyIndex<'_>,
        named: bool,
    ) -> Result<(), IngestError> {
        let mut head = SpanHead::default();
        let mut attrs = KeyIndex::default();
        let mut status_code = None;
        let mut attributes_here = 0;
        for field in Fields(bytes) {
            let (tag, payload) = field?;
            read_span_field(
                &mut self.attributes.shape,
                self.attributes.limits,
                tag,
                payload.wire_type(),
                payload.bytes(),
                &mut attributes_here,
            )?;
            match (tag, payload) {
                (1, Payload::Bytes(b)) => head.trace_id = b,
                (2, Payload::Bytes(b)) => head.span_id = b,
                (3, Payload::Bytes(s)) => head.trace_state = text(s)?,
                (4, Payload::Bytes(b)) => head.parent_span_id = b,
                (5, Payload::Bytes(s)) => head.name = text(s)?,
                (6, Payload::Varint(k)) => head.kind = k as i32,
                (7, Payload::Fixed64(t)) => head.start_time_unix_nano = t,
                (8, Payload::Fixed64(t)) => head.end_time_unix_nano = t,
                (9, Payload::Bytes(kv)) => {
                    let (key, value) = self.attributes.key_value(kv, SPAN_ATTRIBUTE_VALUE_DEPTH)?;
                    if let Some(key) = key {
                        attrs.insert_key(key, value);
                    }
                }
                (15, Payload::Bytes(status)) => {
                    let code = status_code.get_or_insert(0);
                    for field in Fields(status) {
                        if let (3, Payload::Varint(c)) = field? {
                            *code = c as i32;
                        }
                    }
                }
                _ => {}
            }
        }
        head.status_error = status_code
            == Some(opentelemetry_proto::tonic::trace::v1::status::StatusCode::Error as i32);
        if !named {
            self.cut.nameless += 1;
        } else if !valid_ids(head.trace_id, head.span_id) {
            self.cut.bad_ids += 1;
        } else if !(self.window.0..=self.window.1).contains(&head.start_time_unix_nano) {
            self.cut.out_of_window += 1;
        } else {
            self.batch.push(&head, &Attrs::indexed(&attrs, resource));
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;
