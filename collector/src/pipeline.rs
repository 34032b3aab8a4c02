//! `CallExtractor`: the collector's pipeline glue. It turns ingest batches into calls —
//! spans through the `SpanNormalizer` (pairing, normalisation), log records through the
//! access-log parsers — passes every call through the `CallDeduper` (a request seen both
//! as spans and as an access-log line counts once) and keeps the counters current.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use eastwest_model::Call;

use crate::dedup::{CallDeduper, CallOrigin};
use crate::metrics::CollectorMetrics;
use crate::otlp::IngestBatch;
use crate::spans::{NormalizerConfig, SpanNormalizer};

pub struct CallExtractor {
    normalizer: SpanNormalizer,
    deduper: CallDeduper,
    metrics: Arc<CollectorMetrics>,
    max_event_time_ns: i64,
    /// Normaliser drop count already added to `metrics.pairing_drops`.
    reported_pairing_drops: u64,
}

impl CallExtractor {
    pub fn new(config: NormalizerConfig, metrics: Arc<CollectorMetrics>) -> Self {
        Self {
            normalizer: SpanNormalizer::new(config),
            deduper: CallDeduper::default(),
            metrics,
            max_event_time_ns: 0,
            reported_pairing_drops: 0,
        }
    }

    /// Calls completed by this batch (pairs that found their peer, log lines).
    pub fn process(&mut self, batch: IngestBatch) -> Vec<Call> {
        if let Some(max) = batch.max_event_time_ns() {
            self.max_event_time_ns = self.max_event_time_ns.max(max);
        }
        match batch {
            IngestBatch::Traces(req) => {
                let calls = self.normalizer.push(&req);
                self.finish_spans(calls)
            }
            IngestBatch::Spans(batch) => {
                let calls = self.normalizer.push_batch(batch);
                self.finish_spans(calls)
            }
            IngestBatch::Logs(req) => {
                let (mut calls, unparsed) =
                    crate::accesslog::calls_from_otlp_logs_with_origin(&req);
                for (call, origin) in &mut calls {
                    self.normalizer.name_logged_call(call, *origin);
                }
                self.metrics
                    .log_records_unparsed
                    .fetch_add(unparsed, Ordering::Relaxed);
                let (calls, origins): (Vec<Call>, Vec<CallOrigin>) = calls.into_iter().unzip();
                self.finish(calls, |i| origins[i])
            }
        }
    }

    /// Calls released because event time passed `watermark_ns` (expired halves become
    /// calls to virtual peers).
    pub fn advance(&mut self, watermark_ns: i64) -> Vec<Call> {
        let calls = self.normalizer.advance(watermark_ns);
        self.finish_spans(calls)
    }

    /// Everything still pending (shutdown, end of a replay).
    pub fn flush(&mut self) -> Vec<Call> {
        let calls = self.normalizer.flush();
        self.finish_spans(calls)
    }

    /// The oldest event time a call this extractor releases later can have, given that
    /// no input older than `watermark_ns` arrives: pending sides and calls waiting for
    /// their entry hold it back.
    pub fn low_watermark(&self, watermark_ns: i64) -> i64 {
        self.normalizer
            .low_watermark(watermark_ns)
            .map_or(watermark_ns, |low| low.min(watermark_ns))
    }

    /// The newest event time of any span, log record or call seen so far (0 before the
    /// first): a watermark behind it releases calls still waiting for their trace's entry.
    pub fn max_event_time_ns(&self) -> i64 {
        self.max_event_time_ns
    }

    fn finish_spans(&mut self, calls: Vec<Call>) -> Vec<Call> {
        self.finish(calls, |_| CallOrigin::Spans)
    }

    /// Drops the copies dedup has seen; `origin_of(i)` is where the i-th call came from.
    /// Calls are large: they are filtered in place, never moved into another vector.
    fn finish(
        &mut self,
        mut calls: Vec<Call>,
        origin_of: impl Fn(usize) -> CallOrigin,
    ) -> Vec<Call> {
        let before = calls.len();
        let mut index = 0;
        calls.retain(|call| {
            let origin = origin_of(index);
            index += 1;
            self.deduper.admit(call, origin)
        });
        let duplicates = (before - calls.len()) as u64;
        if let Some(max) = calls.iter().map(|c| c.event_time_ns).max() {
            self.max_event_time_ns = self.max_event_time_ns.max(max);
        }
        self.metrics
            .dedup_hits
            .fetch_add(duplicates, Ordering::Relaxed);
        self.metrics.add_calls_emitted(calls.len() as u64);
        let drops = self.normalizer.dropped();
        if drops > self.reported_pairing_drops {
            self.metrics
                .pairing_drops
                .fetch_add(drops - self.reported_pairing_drops, Ordering::Relaxed);
            self.reported_pairing_drops = drops;
        }
        calls
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

    use super::*;

    fn kv(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(value.into())),
            }),
            ..Default::default()
        }
    }

    fn resource(service: &str, spans: Vec<Span>) -> ResourceSpans {
        ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", service)],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    /// frontend CLIENT → cart SERVER, one trace, one request.
    fn client_server_pair(start_ns: u64) -> ExportTraceServiceRequest {
        let span = |id: u8, parent: Option<u8>, kind: i32, attrs: Vec<KeyValue>| Span {
            trace_id: vec![9; 16],
            span_id: vec![id; 8],
            parent_span_id: parent.map(|p| vec![p; 8]).unwrap_or_default(),
            name: "GET /cart/{id}".into(),
            kind,
            start_time_unix_nano: start_ns,
            end_time_unix_nano: start_ns + 1_000_000,
            attributes: attrs,
            ..Default::default()
        };
        let client = span(
            1,
            None,
            3,
            vec![
                kv("http.request.method", "GET"),
                kv("server.address", "cart"),
            ],
        );
        let server = span(
            2,
            Some(1),
            2,
            vec![
                kv("http.request.method", "GET"),
                kv("http.route", "/cart/{id}"),
            ],
        );
        ExportTraceServiceRequest {
            resource_spans: vec![
                resource("frontend", vec![client]),
                resource("cart", vec![server]),
            ],
        }
    }

    #[test]
    fn spans_read_ahead_give_the_same_calls_as_the_raw_request() {
        let start = 1_700_000_000_000_000_000;
        let run = |batch: IngestBatch| {
            let metrics = Arc::new(CollectorMetrics::default());
            let mut extractor = CallExtractor::new(NormalizerConfig::default(), metrics.clone());
            let mut calls = extractor.process(batch);
            let max = extractor.max_event_time_ns();
            calls.extend(extractor.flush());
            (calls, max, metrics.snapshot().calls)
        };
        let request = client_server_pair(start);
        let read_ahead = IngestBatch::Spans(crate::SpanBatch::from_request(&request));
        let raw = run(IngestBatch::Traces(request));
        assert!(!raw.0.is_empty());
        assert_eq!(run(read_ahead), raw);
    }

    #[test]
    fn spans_become_calls_counted_in_metrics_with_event_time_tracked() {
        let metrics = Arc::new(CollectorMetrics::default());
        let mut extractor = CallExtractor::new(NormalizerConfig::default(), metrics.clone());
        let start = 1_700_000_000_000_000_000;
        let mut calls = extractor.process(IngestBatch::Traces(client_server_pair(start)));
        calls.extend(extractor.advance(start as i64 + 60_000_000_000));
        calls.extend(extractor.flush());
        let edge: Vec<_> = calls
            .iter()
            .filter(|c| c.destination.service == "cart")
            .collect();
        assert_eq!(edge.len(), 1, "{calls:#?}");
        assert_eq!(edge[0].source.service, "frontend");
        assert_eq!(edge[0].route, "/cart/{id}");
        assert_eq!(metrics.snapshot().calls, calls.len() as u64);
        assert_eq!(
            extractor.max_event_time_ns(),
            calls.iter().map(|c| c.event_time_ns).max().unwrap()
        );
    }
}
