//! What an export request will cost once decoded, read from its bytes before decoding.
//!
//! Protobuf's smallest message is two bytes on the wire but a whole struct in memory: a
//! 16 MiB body of empty `ResourceSpans` decodes to gigabytes. So the receivers walk the
//! wire format first (no allocation), count what decoding would build, refuse requests
//! over the per-request limits, and reserve the decoded size from the memory budget
//! before `prost` or `serde_json` allocates anything. JSON gets a cheaper bound (every
//! object counted at the size of the largest element), then its exact shape after
//! decoding, from the typed request.

use std::mem::size_of;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, EntityRef, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, span};
use prost::encoding::WireType;

use super::fields::{Fields, Payload};
use super::ingest::IngestError;

/// Nesting deeper than this (attribute values inside values) is refused as malformed;
/// `prost` itself stops at 100.
const MAX_DEPTH: u32 = 32;

/// Caps on one request, checked before it is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLimits {
    /// `ResourceSpans`/`ResourceLogs` plus their scope groups.
    pub max_groups: u64,
    /// Spans or log records.
    pub max_records: u64,
    /// Attributes on one resource, scope, span, event, link, log record or key-value
    /// list: every lookup into such a list is paid per span.
    pub max_attributes_per_list: u64,
    /// Estimated memory of the decoded request.
    pub max_decoded_bytes: u64,
}

/// What decoding a request would build.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub groups: u64,
    pub records: u64,
    /// Attributes at every level, nested key-value lists included.
    pub attributes: u64,
    /// Upper bound of the decoded request's heap and inline size, in bytes.
    pub decoded_bytes: u64,
    /// Bytes of the messages the walk counted but left to the wire reader to walk
    /// (spans): what they decode to is not in `decoded_bytes` until the reader adds it.
    pub unwalked_bytes: u64,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Msg {
    TraceRequest,
    ResourceSpans,
    ScopeSpans,
    Span,
    Event,
    Link,
    Status,
    LogsRequest,
    ResourceLogs,
    ScopeLogs,
    LogRecord,
    Resource,
    EntityRef,
    Scope,
    KeyValue,
    AnyValue,
    ArrayValue,
    KeyValueList,
}

/// How decoding treats one field of a message. The walk checks each field's wire type
/// and string encoding as `prost` does, so a request the walk passes decodes: the
/// receivers may then read spans straight from the bytes (see [`super::wire`]).
enum Field {
    /// An element pushed onto a `Vec` of this message.
    Repeated(Msg),
    /// A message stored inline (optional or oneof): no allocation of its own.
    Inline(Msg),
    /// A `String` pushed onto a `Vec`.
    RepeatedString,
    /// A string: UTF-8, its payload counted as it is.
    Str,
    /// Bytes: counted as they are.
    Bytes,
    /// A scalar of this wire type.
    Scalar(WireType),
    /// Not in the schema: skipped, whatever its wire type.
    Unknown,
}

fn field(msg: Msg, tag: u32) -> Field {
    use Field::*;
    use WireType::{SixtyFourBit as F64, ThirtyTwoBit as F32, Varint};
    match (msg, tag) {
        (Msg::TraceRequest, 1) => Repeated(Msg::ResourceSpans),
        (Msg::ResourceSpans, 1) | (Msg::ResourceLogs, 1) => Inline(Msg::Resource),
        (Msg::ResourceSpans, 2) => Repeated(Msg::ScopeSpans),
        (Msg::ScopeSpans, 1) | (Msg::ScopeLogs, 1) => Inline(Msg::Scope),
        (Msg::ScopeSpans, 2) => Repeated(Msg::Span),
        (Msg::Span, 9) | (Msg::Event, 3) | (Msg::Link, 4) => Repeated(Msg::KeyValue),
        (Msg::Span, 11) => Repeated(Msg::Event),
        (Msg::Span, 13) => Repeated(Msg::Link),
        (Msg::Span, 15) => Inline(Msg::Status),
        (Msg::LogsRequest, 1) => Repeated(Msg::ResourceLogs),
        (Msg::ResourceLogs, 2) => Repeated(Msg::ScopeLogs),
        (Msg::ScopeLogs, 2) => Repeated(Msg::LogRecord),
        (Msg::LogRecord, 5) => Inline(Msg::AnyValue),
        (Msg::LogRecord, 6) => Repeated(Msg::KeyValue),
        (Msg::Resource, 1) | (Msg::Scope, 3) | (Msg::KeyValueList, 1) => Repeated(Msg::KeyValue),
        (Msg::Resource, 3) => Repeated(Msg::EntityRef),
        (Msg::EntityRef, 3 | 4) => RepeatedString,
        (Msg::KeyValue, 2) => Inline(Msg::AnyValue),
        (Msg::AnyValue, 5) => Inline(Msg::ArrayValue),
        (Msg::AnyValue, 6) => Inline(Msg::KeyValueList),
        (Msg::ArrayValue, 1) => Repeated(Msg::AnyValue),
        // Strings.
        (Msg::ResourceSpans | Msg::ScopeSpans | Msg::ResourceLogs | Msg::ScopeLogs, 3)
        | (Msg::Span, 3 | 5)
        | (Msg::Event, 2)
        | (Msg::Link, 3)
        | (Msg::Status, 2)
        | (Msg::LogRecord, 3 | 12)
        | (Msg::EntityRef, 1 | 2)
        | (Msg::Scope, 1 | 2)
        | (Msg::KeyValue, 1)
        | (Msg::AnyValue, 1) => Str,
        (Msg::Span, 1 | 2 | 4)
        | (Msg::Link, 1 | 2)
        | (Msg::LogRecord, 9 | 10)
        | (Msg::AnyValue, 7) => Bytes,
        (Msg::Span, 6 | 10 | 12 | 14)
        | (Msg::Event, 4)
        | (Msg::Link, 5)
        | (Msg::Status, 3)
        | (Msg::LogRecord, 2 | 7)
        | (Msg::Resource, 2)
        | (Msg::Scope, 4)
        | (Msg::KeyValue, 3)
        | (Msg::AnyValue, 2 | 3 | 8) => Scalar(Varint),
        (Msg::Span, 7 | 8) | (Msg::Event, 1) | (Msg::LogRecord, 1 | 11) | (Msg::AnyValue, 4) => {
            Scalar(F64)
        }
        (Msg::Span, 16) | (Msg::Link, 6) | (Msg::LogRecord, 8) => Scalar(F32),
        _ => Unknown,
    }
}

/// Refuses field `tag` of `msg` when its wire type is not the schema's, as `prost`
/// does; a field the schema does not have may be of any wire type (it is skipped).
pub(super) fn check_wire_type(msg: Msg, tag: u32, wire_type: WireType) -> Result<(), IngestError> {
    let expected = match field(msg, tag) {
        Field::Scalar(expected) => expected,
        Field::Unknown => return Ok(()),
        _ => WireType::LengthDelimited,
    };
    if wire_type == expected {
        Ok(())
    } else {
        Err(malformed(&format!(
            "invalid wire type: {wire_type:?} (expected {expected:?})"
        )))
    }
}

/// The size of one element in its `Vec`.
fn element_size(msg: Msg) -> u64 {
    (match msg {
        Msg::ResourceSpans => size_of::<ResourceSpans>(),
        Msg::ScopeSpans => size_of::<ScopeSpans>(),
        Msg::Span => size_of::<Span>(),
        Msg::Event => size_of::<span::Event>(),
        Msg::Link => size_of::<span::Link>(),
        Msg::ResourceLogs => size_of::<ResourceLogs>(),
        Msg::ScopeLogs => size_of::<ScopeLogs>(),
        Msg::LogRecord => size_of::<LogRecord>(),
        Msg::EntityRef => size_of::<EntityRef>(),
        Msg::KeyValue => size_of::<KeyValue>(),
        Msg::AnyValue => size_of::<AnyValue>(),
        // Never repeated: stored inline in their parent.
        _ => 0,
    }) as u64
}

/// The largest element any OTLP JSON object can become (the JSON bound uses it).
fn largest_element() -> u64 {
    [
        size_of::<ResourceSpans>(),
        size_of::<ScopeSpans>(),
        size_of::<Span>(),
        size_of::<span::Event>(),
        size_of::<span::Link>(),
        size_of::<ResourceLogs>(),
        size_of::<ScopeLogs>(),
        size_of::<LogRecord>(),
        size_of::<EntityRef>(),
        size_of::<KeyValue>(),
        size_of::<AnyValue>(),
        size_of::<any_value::Value>(),
    ]
    .into_iter()
    .max()
    .unwrap_or(0) as u64
}

/// `Vec`s grow by doubling: an element may cost twice its size in capacity.
const GROWTH: u64 = 2;

struct Walk<'l> {
    limits: &'l RequestLimits,
    shape: Shape,
}

/// The strings of `msg`'s field `tag` that the wire reader checks itself, when `msg` is
/// one it reads.
fn reader_checks(msg: Msg, tag: u32) -> bool {
    matches!((msg, tag), (Msg::Span, 3 | 5))
}

/// Whether the wire reader reads the child message at `msg`'s field `tag`, when it
/// reads `msg`: down to spans and resources, not events, links or scopes.
fn reader_reads_child(msg: Msg, tag: u32) -> bool {
    matches!(
        (msg, tag),
        (Msg::TraceRequest, 1) | (Msg::ResourceSpans, 1 | 2) | (Msg::ScopeSpans, 2)
    )
}

/// Whether the wire reader validates and sizes the child message at `msg`'s field `tag`
/// itself, when it reads `msg`: spans (it goes through every field of each; see
/// [`read_span_field`]), and span and resource attributes, which it takes apart anyway
/// (most of a span's fields are in them). The walk counts them and goes on.
fn reader_walks_child(msg: Msg, tag: u32) -> bool {
    matches!(
        (msg, tag),
        (Msg::ScopeSpans, 2) | (Msg::Span, 9) | (Msg::Resource, 1)
    )
}

/// Where spans are in a traces request, as the walk counts depth.
const SPAN_DEPTH: u32 = 3;

/// The walk of one field of a span that the wire reader goes through itself (the walk
/// counts spans but leaves their fields to it): checked and counted into `shape` as the
/// walk does when it walks the span, `body` being a length-delimited field's bytes.
/// `attributes_here` counts the span's attributes.
pub(super) fn read_span_field(
    shape: &mut Shape,
    limits: &RequestLimits,
    tag: u32,
    wire_type: WireType,
    body: Option<&[u8]>,
    attributes_here: &mut u64,
) -> Result<(), IngestError> {
    // The fields every span has, of the schema's wire type: ids and strings (the names
    // the reader checks itself) count their bytes, scalars nothing.
    match (tag, wire_type, body) {
        (1..=5, WireType::LengthDelimited, Some(body)) => {
            shape.decoded_bytes += body.len() as u64;
            return Ok(());
        }
        (6, WireType::Varint, _) | (7 | 8, WireType::SixtyFourBit, _) => return Ok(()),
        _ => {}
    }
    check_wire_type(Msg::Span, tag, wire_type)?;
    let Some(body) = body else {
        return Ok(());
    };
    let mut walk = Walk {
        limits,
        shape: *shape,
    };
    walk.length_delimited(Msg::Span, tag, body, SPAN_DEPTH, true, attributes_here)?;
    *shape = walk.shape;
    Ok(())
}

impl Walk<'_> {
    fn over(&self, what: &str, count: u64, limit: u64) -> Result<(), IngestError> {
        if count > limit {
            return Err(IngestError::OverLimit(format!(
                "more than {limit} {what} in one request"
            )));
        }
        Ok(())
    }

    fn check(&self) -> Result<(), IngestError> {
        let l = self.limits;
        self.over("resource and scope groups", self.shape.groups, l.max_groups)?;
        self.over("spans or log records", self.shape.records, l.max_records)?;
        if self.shape.decoded_bytes > l.max_decoded_bytes {
            return Err(IngestError::OverLimit(format!(
                "request would take more than {} bytes once decoded",
                l.max_decoded_bytes
            )));
        }
        Ok(())
    }

    /// Walks one message; `read` is true when the wire reader reads it (see
    /// [`reader_reads_child`]): the walk then leaves to the reader the strings it reads
    /// (span names and trace states) and the attributes it takes apart (see
    /// [`reader_walks_child`]).
    fn message(&mut self, buf: &[u8], msg: Msg, depth: u32, read: bool) -> Result<(), IngestError> {
        if depth > MAX_DEPTH {
            return Err(malformed("attribute values nested too deeply"));
        }
        let mut attributes_here = 0u64;
        for field in Fields(buf) {
            let (tag, payload) = field?;
            check_wire_type(msg, tag, payload.wire_type())?;
            if let Payload::Bytes(body) = payload {
                self.length_delimited(msg, tag, body, depth, read, &mut attributes_here)?;
            }
        }
        Ok(())
    }

    /// One length-delimited field `tag` of `msg` (which is at `depth`), its bytes cut
    /// from the message.
    fn length_delimited(
        &mut self,
        msg: Msg,
        tag: u32,
        body: &[u8],
        depth: u32,
        read: bool,
        attributes_here: &mut u64,
    ) -> Result<(), IngestError> {
        let len = body.len() as u64;
        let child_read = read && reader_reads_child(msg, tag);
        match field(msg, tag) {
            Field::Repeated(child) => {
                self.count(child, attributes_here)?;
                if read && reader_walks_child(msg, tag) {
                    if child == Msg::Span {
                        self.shape.unwalked_bytes += len;
                    }
                } else {
                    self.message(body, child, depth + 1, child_read)?;
                }
            }
            Field::Inline(child) => {
                self.message(body, child, depth + 1, child_read)?;
            }
            Field::RepeatedString => {
                utf8(body)?;
                self.shape.decoded_bytes += GROWTH * size_of::<String>() as u64;
                self.shape.decoded_bytes += len;
            }
            Field::Str => {
                if !(read && reader_checks(msg, tag)) {
                    utf8(body)?;
                }
                self.shape.decoded_bytes += len;
            }
            Field::Bytes | Field::Scalar(_) | Field::Unknown => self.shape.decoded_bytes += len,
        }
        Ok(())
    }

    /// Counts one repeated element about to be decoded, failing as soon as a limit is
    /// passed so a huge request costs no more than the limit to refuse.
    fn count(&mut self, child: Msg, attributes_here: &mut u64) -> Result<(), IngestError> {
        self.shape.decoded_bytes += GROWTH * element_size(child);
        match child {
            Msg::ResourceSpans | Msg::ScopeSpans | Msg::ResourceLogs | Msg::ScopeLogs => {
                self.shape.groups += 1;
            }
            Msg::Span | Msg::LogRecord => self.shape.records += 1,
            Msg::KeyValue => {
                self.shape.attributes += 1;
                *attributes_here += 1;
                self.over(
                    "attributes on one item",
                    *attributes_here,
                    self.limits.max_attributes_per_list,
                )?;
            }
            _ => {}
        }
        self.check()
    }
}

fn utf8(bytes: &[u8]) -> Result<(), IngestError> {
    std::str::from_utf8(bytes)
        .map(|_| ())
        .map_err(|_| malformed("invalid string value: data is not UTF-8 encoded"))
}

pub(super) fn malformed(detail: &str) -> IngestError {
    IngestError::Malformed(format!("invalid protobuf: {detail}"))
}

fn walk(
    bytes: &[u8],
    root: Msg,
    limits: &RequestLimits,
    reader_checks_strings: bool,
) -> Result<Shape, IngestError> {
    let mut walk = Walk {
        limits,
        shape: Shape {
            decoded_bytes: size_of::<ExportTraceServiceRequest>() as u64,
            ..Shape::default()
        },
    };
    walk.message(bytes, root, 0, reader_checks_strings)?;
    walk.check()?;
    Ok(walk.shape)
}

/// The depth of the `AnyValue` of a span attribute, as the walk counts it.
pub(super) const SPAN_ATTRIBUTE_VALUE_DEPTH: u32 = SPAN_DEPTH + 2;
/// The depth of the `AnyValue` of a resource attribute, as the walk counts it.
pub(super) const RESOURCE_ATTRIBUTE_VALUE_DEPTH: u32 = 4;

/// What the walk finds in a message field `tag` (an array or a key-value list) of an
/// attribute value at `value_depth` that the reader reads: checked and counted as the
/// walk would have, for the reader to add to the request's shape.
pub(super) fn nested_in_read_value(
    body: &[u8],
    tag: u32,
    value_depth: u32,
    limits: &RequestLimits,
) -> Result<Shape, IngestError> {
    let Field::Inline(msg) = field(Msg::AnyValue, tag) else {
        return Err(malformed("an attribute value field that holds no message"));
    };
    let mut walk = Walk {
        limits,
        shape: Shape::default(),
    };
    walk.message(body, msg, value_depth + 1, false)?;
    Ok(walk.shape)
}

/// Checks the whole request's shape, once the reader has added what it walked.
pub(super) fn check_shape(shape: Shape, limits: &RequestLimits) -> Result<(), IngestError> {
    Walk { limits, shape }.check()
}

impl std::ops::AddAssign for Shape {
    fn add_assign(&mut self, other: Shape) {
        self.groups += other.groups;
        self.records += other.records;
        self.attributes += other.attributes;
        self.decoded_bytes += other.decoded_bytes;
        self.unwalked_bytes += other.unwalked_bytes;
    }
}

/// The shape of a protobuf `ExportTraceServiceRequest`, without decoding it. A request
/// it passes decodes with `prost`.
pub fn traces_protobuf(bytes: &[u8], limits: &RequestLimits) -> Result<Shape, IngestError> {
    walk(bytes, Msg::TraceRequest, limits, false)
}

/// [`traces_protobuf`] for a request the wire reader ([`super::wire`]) reads next: what
/// the reader goes through itself is not gone through twice (spans and resource
/// attributes are counted but not entered: the reader walks them and adds their size;
/// their bytes are in [`Shape::unwalked_bytes`] meanwhile), so a request decodes with
/// `prost` when both this walk and the reader pass it.
pub fn traces_protobuf_for_reader(
    bytes: &[u8],
    limits: &RequestLimits,
) -> Result<Shape, IngestError> {
    walk(bytes, Msg::TraceRequest, limits, true)
}

/// The shape of a protobuf `ExportLogsServiceRequest`, without decoding it.
pub fn logs_protobuf(bytes: &[u8], limits: &RequestLimits) -> Result<Shape, IngestError> {
    walk(bytes, Msg::LogsRequest, limits, false)
}

/// An upper bound on what an OTLP/JSON body decodes to: every object (outside strings)
/// counted as the largest element, plus the text itself.
pub fn json_bound(bytes: &[u8], limits: &RequestLimits) -> Result<u64, IngestError> {
    let mut objects = 0u64;
    let (mut in_string, mut escaped) = (false, false);
    for &b in bytes {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
        } else if b == b'"' {
            in_string = true;
        } else if b == b'{' {
            objects += 1;
        }
    }
    let bound = bytes.len() as u64 + objects * GROWTH * largest_element();
    if bound > limits.max_decoded_bytes {
        return Err(IngestError::OverLimit(format!(
            "request would take more than {} bytes once decoded",
            limits.max_decoded_bytes
        )));
    }
    Ok(bound)
}

/// Checks a decoded traces request against the limits (JSON, whose bound is coarser).
pub fn check_traces(
    req: &ExportTraceServiceRequest,
    limits: &RequestLimits,
) -> Result<(), IngestError> {
    let mut walk = Walk {
        limits,
        shape: Shape::default(),
    };
    for rs in &req.resource_spans {
        walk.shape.groups += 1 + rs.scope_spans.len() as u64;
        walk.attribute_list(rs.resource.as_ref().map_or(&[][..], |r| &r.attributes))?;
        for ss in &rs.scope_spans {
            walk.attribute_list(ss.scope.as_ref().map_or(&[][..], |s| &s.attributes))?;
            walk.shape.records += ss.spans.len() as u64;
            for span in &ss.spans {
                walk.attribute_list(&span.attributes)?;
                for event in &span.events {
                    walk.attribute_list(&event.attributes)?;
                }
                for link in &span.links {
                    walk.attribute_list(&link.attributes)?;
                }
            }
        }
        walk.check()?;
    }
    Ok(())
}

/// Checks a decoded logs request against the limits (JSON, whose bound is coarser).
pub fn check_logs(
    req: &ExportLogsServiceRequest,
    limits: &RequestLimits,
) -> Result<(), IngestError> {
    let mut walk = Walk {
        limits,
        shape: Shape::default(),
    };
    for rl in &req.resource_logs {
        walk.shape.groups += 1 + rl.scope_logs.len() as u64;
        walk.attribute_list(rl.resource.as_ref().map_or(&[][..], |r| &r.attributes))?;
        for sl in &rl.scope_logs {
            walk.attribute_list(sl.scope.as_ref().map_or(&[][..], |s| &s.attributes))?;
            walk.shape.records += sl.log_records.len() as u64;
            for record in &sl.log_records {
                walk.attribute_list(&record.attributes)?;
            }
        }
        walk.check()?;
    }
    Ok(())
}

impl Walk<'_> {
    fn attribute_list(&mut self, kvs: &[KeyValue]) -> Result<(), IngestError> {
        self.shape.attributes += kvs.len() as u64;
        self.over(
            "attributes on one item",
            kvs.len() as u64,
            self.limits.max_attributes_per_list,
        )?;
        for kv in kvs {
            self.nested(kv.value.as_ref(), 1)?;
        }
        Ok(())
    }

    fn nested(&mut self, value: Option<&AnyValue>, depth: u32) -> Result<(), IngestError> {
        if depth > MAX_DEPTH {
            return Err(malformed("attribute values nested too deeply"));
        }
        match value.and_then(|v| v.value.as_ref()) {
            Some(any_value::Value::KvlistValue(list)) => {
                self.over(
                    "attributes on one item",
                    list.values.len() as u64,
                    self.limits.max_attributes_per_list,
                )?;
                for kv in &list.values {
                    self.nested(kv.value.as_ref(), depth + 1)?;
                }
            }
            Some(any_value::Value::ArrayValue(array)) => {
                for v in &array.values {
                    self.nested(Some(v), depth + 1)?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "shape_tests.rs"]
mod tests;
