//! Spans read into pairing form ahead of the pipeline: the stateless half of
//! normalisation, done on the receiver's thread so the single stateful pairing thread
//! gets compact spans and never frees a decoded request.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

use super::attributes::{Attrs, KeyIndex};
use super::info::{SpanHead, SpanInfo};

/// The spans of one export request, read and ready for [`super::SpanNormalizer`].
#[derive(Debug, Clone, Default)]
pub struct SpanBatch {
    pub(crate) infos: Vec<SpanInfo>,
    /// Spans in the request, and those of them pairing ignores (INTERNAL, bad ids).
    pub(crate) seen: u64,
    pub(crate) ignored: u64,
    max_event_time_ns: Option<i64>,
    /// Heap bytes of the spans' strings, added up as they are read (a second pass over
    /// the batch would fetch every span again).
    heap_bytes: usize,
}

/// Equal when they hold the same spans: a string can be on the heap in one and inline in
/// the other, depending on the path that read it.
impl PartialEq for SpanBatch {
    fn eq(&self, other: &Self) -> bool {
        (self.infos == other.infos)
            && (self.seen, self.ignored, self.max_event_time_ns)
                == (other.seen, other.ignored, other.max_event_time_ns)
    }
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
                batch.add(SpanInfo::from_span(span, &resource));
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
        self.add(SpanInfo::from_parts(span, attrs));
    }

    /// A span read into pairing form, or `None` for one pairing ignores.
    fn add(&mut self, info: Option<SpanInfo>) {
        match info {
            Some(info) => {
                self.heap_bytes += info.heap_bytes();
                self.infos.push(info);
            }
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
        (std::mem::size_of::<Self>() + inline + self.heap_bytes) as u64
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

#[cfg(test)]
mod tests {
    use super::super::attributes::test_support::kv;
    use super::super::naming_tests::{client, request, server, workload};
    use super::*;

    #[test]
    fn memory_counts_every_span_string_on_the_heap() {
        let long = "f3a1c2d4-0b9e-4c1a-9d2e-7a6b5c4d3e2f-and-more";
        let attrs = vec![kv("guid:x-request-id", long), kv("http.method", "GET")];
        let batch = SpanBatch::from_request(&request(vec![
            client(1, workload("frontend", "shop"), attrs.clone()),
            server(1, workload("cartservice", "shop"), attrs),
        ]));
        assert_eq!(batch.infos.len(), 2);
        let heap: usize = batch.infos.iter().map(SpanInfo::heap_bytes).sum();
        assert!(
            heap >= 2 * long.len(),
            "request ids are on the heap: {heap}"
        );
        let inline = batch.infos.capacity() * std::mem::size_of::<SpanInfo>();
        assert_eq!(
            batch.memory_bytes(),
            (std::mem::size_of::<SpanBatch>() + inline + heap) as u64
        );
    }
}
