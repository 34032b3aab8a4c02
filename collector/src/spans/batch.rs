//! Spans read into pairing form ahead of the pipeline: the stateless half of
//! normalisation, done on the receiver's thread so the single stateful pairing thread
//! gets compact spans and never frees a decoded request.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

use super::attributes::{Attrs, KeyIndex};
use super::info::{SpanHead, SpanInfo};

/// The spans of one export request, read and ready for [`super::SpanNormalizer`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpanBatch {
    pub(crate) infos: Vec<SpanInfo>,
    /// Spans in the request, and those of them pairing ignores (INTERNAL, bad ids).
    pub(crate) seen: u64,
    pub(crate) ignored: u64,
    max_event_time_ns: Option<i64>,
}

impl SpanBatch {
    pub fn from_request(request: &ExportTraceServiceRequest) -> Self {
        let mut batch = SpanBatch::with_capacity(crate::otlp::span_count(request) as usize);
        for rs in &request.resource_spans {
            let resource = KeyIndex::of(
                rs.resource
                    .as_ref()
                    .map(|r| r.attributes.as_slice())
                    .unwrap_or(&[]),
            );
            for span in rs.scope_spans.iter().flat_map(|ss| &ss.spans) {
                batch.note_span(span.start_time_unix_nano);
                match SpanInfo::from_span(span, &resource) {
                    Some(info) => batch.infos.push(info),
                    None => batch.ignored += 1,
                }
            }
        }
        batch
    }

    pub(crate) fn with_capacity(spans: usize) -> Self {
        SpanBatch {
            infos: Vec::with_capacity(spans),
            ..SpanBatch::default()
        }
    }

    /// Reads one span whose fields and attributes were read elsewhere (straight from
    /// the wire), as [`SpanBatch::from_request`] reads a decoded one.
    pub(crate) fn push(&mut self, span: &SpanHead<'_>, attrs: &Attrs<'_>) {
        self.note_span(span.start_time_unix_nano);
        match SpanInfo::from_parts(span, attrs) {
            Some(info) => self.infos.push(info),
            None => self.ignored += 1,
        }
    }

    fn note_span(&mut self, start_time_unix_nano: u64) {
        self.seen += 1;
        let start = start_time_unix_nano.min(i64::MAX as u64) as i64;
        self.max_event_time_ns = Some(self.max_event_time_ns.map_or(start, |m| m.max(start)));
    }

    /// Memory the batch holds while it waits on the queue (what the receivers' budget
    /// reserves for it): resource strings are copied into every span, so this can be
    /// more than the decoded request's own size.
    pub fn memory_bytes(&self) -> u64 {
        let inline = self.infos.capacity() * std::mem::size_of::<SpanInfo>();
        let heap: usize = self.infos.iter().map(SpanInfo::heap_bytes).sum();
        (std::mem::size_of::<Self>() + inline + heap) as u64
    }

    /// Spans in the request it was read from.
    pub fn spans(&self) -> u64 {
        self.seen
    }

    /// The newest span start in the batch.
    pub fn max_event_time_ns(&self) -> Option<i64> {
        self.max_event_time_ns
    }
}
