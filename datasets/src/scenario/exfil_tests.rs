//! The generated body sizes and the `exfiltration` scenario, read back through the
//! collector's own span pairing and access-log parsing: normal calls carry steady sizes,
//! the exfiltrating edge answers 50–100× larger inside its label's window.

use std::time::Duration;

use eastwest_collector::accesslog::calls_from_otlp_logs;
use eastwest_collector::{NormalizerConfig, SpanNormalizer};
use eastwest_model::{AlertKind, Call, Label};

use super::*;
use crate::read_scenario_dir;

fn opts(topology: TopologyKind, spans: SpanStyle, logs: Option<AccessLogFormat>) -> GenOptions {
    GenOptions {
        learning: Duration::from_secs(20 * 60),
        attack: Duration::from_secs(35 * 60),
        rate_per_sec: 0.2,
        topology,
        spans,
        access_logs: logs,
        ..Default::default()
    }
}

fn span_calls(traces: &[ExportTraceServiceRequest]) -> Vec<Call> {
    let mut n = SpanNormalizer::new(NormalizerConfig::default());
    let mut calls: Vec<Call> = traces.iter().flat_map(|r| n.push(r)).collect();
    calls.extend(n.flush());
    calls
}

/// Response sizes on the label's edge: (before the attack, inside the label's window).
fn edge_responses(label: &Label, calls: &[Call]) -> (Vec<u64>, Vec<u64>) {
    let (start, end) = (
        label.start.timestamp_nanos_opt().unwrap(),
        label.end.timestamp_nanos_opt().unwrap(),
    );
    let mut before = Vec::new();
    let mut during = Vec::new();
    for c in calls.iter().filter(|c| {
        c.source.key() == label.source
            && label.destination.as_deref() == Some(c.destination.key().as_str())
            && !c.error
            && c.status.is_some_and(|s| s < 400)
    }) {
        let bytes = c.response_bytes.expect("every answered call has a size");
        if c.event_time_ns < start {
            before.push(bytes);
        } else if c.event_time_ns <= end {
            during.push(bytes);
        }
    }
    before.sort_unstable();
    (before, during)
}

fn assert_outsized(tag: &str, label: &Label, calls: &[Call]) {
    let (before, during) = edge_responses(label, calls);
    assert!(before.len() >= 3, "{tag}: {} normal calls", before.len());
    assert!(!during.is_empty(), "{tag}: no call in the window");
    let median = before[before.len() / 2];
    // Normal jitter stays within ±25 % of an endpoint's size.
    assert!(before[before.len() - 1] <= median * 2, "{tag}: {before:?}");
    for b in &during {
        assert!(
            (median * 30..=median * 150).contains(b),
            "{tag}: {b} vs usual {median}"
        );
    }
}

#[test]
fn exfiltration_answers_a_known_endpoint_with_outsized_responses() {
    let dir = tempfile::tempdir().unwrap();
    for (topology, spans, logs) in [
        (TopologyKind::Boutique, SpanStyle::Istio, None),
        (
            TopologyKind::Trainticket,
            SpanStyle::Sdk,
            Some(AccessLogFormat::OtlpLogs),
        ),
    ] {
        let tag = format!("{topology:?}/{spans:?}");
        let out = dir.path().join(tag.replace('/', "-"));
        generate("exfiltration", &opts(topology, spans, logs), &out).unwrap();
        let data = read_scenario_dir(&out).unwrap();
        assert_eq!(data.labels.len(), 1);
        let label = &data.labels[0];
        assert_eq!(label.kind, Some(AlertKind::VolumeSpike), "{tag}");
        assert!(label.end > label.start, "{tag}");
        let calls = span_calls(&data.traces);
        assert_outsized(&tag, label, &calls);
        // Every other answered HTTP/gRPC call carries its sizes too.
        assert!(
            calls
                .iter()
                .filter(|c| c.protocol == eastwest_model::Protocol::Http)
                .all(|c| c.response_bytes.is_some()),
            "{tag}"
        );
        if logs.is_some() {
            let logged: Vec<Call> = data.logs.iter().flat_map(calls_from_otlp_logs).collect();
            assert_outsized(&format!("{tag} logs"), label, &logged);
        }
    }
}

#[test]
fn exfiltration_on_sdk_grpc_spans_alone_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let err = generate(
        "exfiltration",
        &opts(TopologyKind::Boutique, SpanStyle::Sdk, None),
        dir.path(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("body sizes"), "{err}");
}

/// A real Envoy span (zipkin-lens test data): its `request_size` / `response_size` tags,
/// strings as Envoy writes them, become the call's body sizes.
#[test]
fn a_real_envoy_span_carries_its_body_sizes_onto_the_call() {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/datasets/zipkin-lens-testdata/zipkin-lens/testdata/envoy.json");
    let mut reqs = crate::convert_zipkin_json(&path).unwrap();
    // The file's one span is a front proxy's root SERVER span (an entry, not a call):
    // give it a caller that never reported, so it makes a call of its own.
    for span in reqs
        .iter_mut()
        .flat_map(|r| &mut r.resource_spans)
        .flat_map(|rs| &mut rs.scope_spans)
        .flat_map(|ss| &mut ss.spans)
    {
        span.parent_span_id = vec![1; 8];
    }
    let calls = span_calls(&reqs);
    let sized: Vec<(Option<u64>, Option<u64>)> = calls
        .iter()
        .map(|c| (c.request_bytes, c.response_bytes))
        .filter(|s| s.1.is_some())
        .collect();
    assert!(sized.contains(&(Some(0), Some(67_342))), "{sized:?}");
}
