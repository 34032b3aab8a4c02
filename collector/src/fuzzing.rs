//! Fuzz targets as plain functions, shared by the `cargo fuzz` project in `fuzz/` and by
//! the smoke test that runs them in the normal test suite (`tests/fuzz_smoke.rs`). Each
//! takes arbitrary bytes, must never panic, and asserts that what comes out is bounded:
//! no more calls than input items allow, and every name within the field cap. Each
//! returns the number of calls produced, so callers can see the input did something.

use std::time::Duration;

use eastwest_model::{Call, Workload};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

use crate::accesslog::{
    AccessLogFields, calls_from_otlp_logs_with_origin, parse_istio_json, parse_istio_text,
};
use crate::dedup::{CallDeduper, CallOrigin, DedupConfig};
use crate::otlp::wire::read_traces;
use crate::otlp::{ReceiverConfig, TimeWindow, shape, span_count, validate_traces};
use crate::spans::{NormalizerConfig, SpanBatch, SpanNormalizer};

/// Inputs beyond this are ignored: real payloads are capped by the receivers long before
/// and big inputs only slow the fuzzer down.
pub const MAX_FUZZ_INPUT_BYTES: usize = 1 << 20;
/// Bound checked on every name of a call (service, namespace, method, route).
pub const MAX_NAME_BYTES: usize = 1024;

fn assert_bounded(call: &Call) {
    for (what, value) in [
        ("source service", call.source.service.as_str()),
        ("destination service", call.destination.service.as_str()),
        (
            "source namespace",
            call.source.namespace.as_deref().unwrap_or(""),
        ),
        (
            "destination namespace",
            call.destination.namespace.as_deref().unwrap_or(""),
        ),
        ("method", call.method.as_str()),
        ("route", call.route.as_str()),
    ] {
        assert!(
            value.len() <= MAX_NAME_BYTES,
            "{what} of {} bytes",
            value.len()
        );
    }
    assert!(
        call.weight.is_finite() && call.weight >= 0.0,
        "weight {}",
        call.weight
    );
}

/// OTLP trace export bytes → decode → `SpanNormalizer::push` + `flush`.
pub fn otlp_traces(data: &[u8]) -> usize {
    if data.len() > MAX_FUZZ_INPUT_BYTES {
        return 0;
    }
    let Ok(request) = ExportTraceServiceRequest::decode(data) else {
        return 0;
    };
    let spans: usize = request
        .resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .map(|ss| ss.spans.len())
        .sum();
    pair_and_check(SpanBatch::from_request(&request), spans)
}

/// Pairs `batch` (read from `spans` spans) to the end and checks the calls are bounded:
/// at most two per span (a virtual peer's call besides a pair's), every name capped.
fn pair_and_check(batch: SpanBatch, spans: usize) -> usize {
    let mut normalizer = SpanNormalizer::new(NormalizerConfig::default());
    let mut calls = normalizer.push_batch(batch);
    calls.extend(normalizer.advance(i64::MAX));
    calls.extend(normalizer.flush());
    assert!(
        calls.len() <= spans.saturating_mul(2),
        "{} calls from {spans} spans",
        calls.len()
    );
    calls.iter().for_each(assert_bounded);
    calls.len()
}

/// The receivers' admission of OTLP trace bytes: the wire walk sizes the request under
/// the default limits before anything is decoded; whatever it lets through must decode
/// to exactly the counts it reported, within the limits, and then normalise as
/// [`otlp_traces`] checks. Amplification shapes (empty groups, attribute floods, deep
/// nesting) must be refused by the walk, never reach decoding.
pub fn otlp_admission(data: &[u8]) -> usize {
    if data.len() > MAX_FUZZ_INPUT_BYTES {
        return 0;
    }
    let limits = ReceiverConfig::default().limits();
    let _ = shape::logs_protobuf(data, &limits);
    let _ = shape::json_bound(data, &limits);
    let Ok(walked) = shape::traces_protobuf(data, &limits) else {
        return 0;
    };
    let Ok(request) = ExportTraceServiceRequest::decode(data) else {
        return 0;
    };
    let groups: u64 = request
        .resource_spans
        .iter()
        .map(|rs| 1 + rs.scope_spans.len() as u64)
        .sum();
    let spans: u64 = request
        .resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .map(|ss| ss.spans.len() as u64)
        .sum();
    assert_eq!((walked.groups, walked.records), (groups, spans));
    assert!(groups <= limits.max_groups && spans <= limits.max_records);
    assert!(walked.decoded_bytes <= limits.max_decoded_bytes);
    otlp_traces(data)
}

/// "Now" for [`otlp_wire`]'s time window: a minute after the seeds' spans start.
const WIRE_NOW_NS: i64 = 1_700_000_060_000_000_000;
/// A window as narrow as `serve`'s (minutes ahead, days behind), so timestamps on both
/// sides of it are cut.
const WIRE_WINDOW: TimeWindow = TimeWindow {
    future_skew: Duration::from_secs(5 * 60),
    max_age: Duration::from_secs(7 * 24 * 3600),
};

/// The path `serve` takes for protobuf trace bytes: the walk that leaves span and
/// resource attributes to the reader, the wire reader straight into pairing form, then
/// pairing. Checked against the whole walk and `prost`, under `serve`'s time window and
/// an open one: walk and reader together refuse exactly what the whole walk refuses and
/// add up to its shape, and what they read is what decoding and validating gives (span
/// counts, rejections, the batch). The batch then pairs into calls as [`otlp_traces`]
/// checks.
pub fn otlp_wire(data: &[u8]) -> usize {
    if data.len() > MAX_FUZZ_INPUT_BYTES {
        return 0;
    }
    let limits = ReceiverConfig::default().limits();
    let whole = shape::traces_protobuf(data, &limits);
    let mut open_batch = None;
    for window in [TimeWindow::default(), WIRE_WINDOW] {
        let read = shape::traces_protobuf_for_reader(data, &limits)
            .and_then(|walked| read_traces(data, &walked, &limits, &window, WIRE_NOW_NS));
        let read = match (&whole, read) {
            (Err(_), Err(_)) => return 0,
            (Ok(whole), Ok(read)) => {
                assert_eq!(read.shape, *whole, "the reader adds up to the whole walk");
                read
            }
            (whole, read) => panic!(
                "the whole walk passes: {}, walk and reader pass: {}",
                whole.is_ok(),
                read.is_ok()
            ),
        };
        let mut request =
            ExportTraceServiceRequest::decode(data).expect("what the walk passes decodes");
        let received = span_count(&request);
        let rejections = validate_traces(&mut request, &window, WIRE_NOW_NS);
        assert_eq!(read.received, received);
        assert_eq!(read.rejections, rejections);
        assert_eq!(read.batch, SpanBatch::from_request(&request));
        open_batch.get_or_insert(read.batch);
    }
    let Some(batch) = open_batch else {
        return 0;
    };
    let spans = batch.infos.len();
    pair_and_check(batch, spans)
}

/// OTLP log export bytes → decode → access-log records → calls → deduplication (both
/// modes).
pub fn otlp_logs(data: &[u8]) -> usize {
    if data.len() > MAX_FUZZ_INPUT_BYTES {
        return 0;
    }
    let Ok(request) = ExportLogsServiceRequest::decode(data) else {
        return 0;
    };
    let records: usize = request
        .resource_logs
        .iter()
        .flat_map(|rl| &rl.scope_logs)
        .map(|sl| sl.log_records.len())
        .sum();
    let (calls, rejected) = calls_from_otlp_logs_with_origin(&request);
    assert!(calls.len() + rejected as usize <= records);
    calls.iter().for_each(|(c, _)| assert_bounded(c));
    let mut immediate = CallDeduper::new(DedupConfig {
        max_entries: 8,
        ..Default::default()
    });
    let admitted = calls.iter().filter(|(c, o)| immediate.admit(c, *o)).count();
    let mut merging = CallDeduper::new(DedupConfig {
        max_entries: 8,
        merge_window: std::time::Duration::from_secs(1),
        ..Default::default()
    });
    let mut released = 0;
    for (call, origin) in calls.iter().cloned() {
        released += merging.offer(call, origin).len();
    }
    released += merging.flush().len();
    assert_eq!(admitted, released, "both modes count the same calls");
    assert!(merging.stats().entries <= 8);
    calls.len()
}

fn fields_to_calls(fields: AccessLogFields) -> usize {
    let mut produced = 0;
    for reporter in [
        Workload::new("unknown"),
        Workload::new("web").in_namespace("shop"),
    ] {
        if let Ok((call, origin)) = fields.clone().into_call(&reporter, 1) {
            assert_bounded(&call);
            assert!(matches!(
                origin,
                CallOrigin::InboundLog | CallOrigin::OutboundLog
            ));
            produced += 1;
        }
    }
    produced
}

/// Bytes as one Istio text access-log line.
pub fn access_log_text(data: &[u8]) -> usize {
    if data.len() > MAX_FUZZ_INPUT_BYTES {
        return 0;
    }
    parse_istio_text(&String::from_utf8_lossy(data)).map_or(0, fields_to_calls)
}

/// Bytes as one Istio JSON access-log line.
pub fn access_log_json(data: &[u8]) -> usize {
    if data.len() > MAX_FUZZ_INPUT_BYTES {
        return 0;
    }
    parse_istio_json(&String::from_utf8_lossy(data)).map_or(0, fields_to_calls)
}
