//! The generator's outputs go through eastwest's own collector: Istio and SDK spans give
//! the same calls, every access-log line (text, JSON, OTLP records) parses into the call
//! of its hop, and sampled spans carry thresholds the collector weights as 1/ratio.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use eastwest_collector::accesslog::{parse_istio_json, parse_istio_text};
use eastwest_collector::dedup::CallOrigin;
use eastwest_collector::{CallExtractor, CollectorMetrics, IngestBatch, NormalizerConfig};
use eastwest_datasets::{
    AccessLogFormat, GenOptions, SpanStyle, TopologyKind, generate, read_scenario_dir,
};
use eastwest_model::{Call, CompactString, Workload};

fn small(topology: TopologyKind) -> GenOptions {
    GenOptions {
        learning: Duration::from_secs(10 * 60),
        attack: Duration::from_secs(5 * 60),
        rate_per_sec: 0.2,
        topology,
        ..Default::default()
    }
}

/// Every call the collector extracts from a scenario directory (traces and OTLP logs).
fn calls(dir: &Path) -> Vec<Call> {
    let data = read_scenario_dir(dir).unwrap();
    let mut x = CallExtractor::new(
        NormalizerConfig::default(),
        Arc::new(CollectorMetrics::default()),
    );
    let mut out = Vec::new();
    for r in data.traces {
        out.extend(x.process(IngestBatch::Traces(r)));
    }
    for r in data.logs {
        out.extend(x.process(IngestBatch::Logs(r)));
    }
    out.extend(x.flush());
    out
}

type Edge = (CompactString, CompactString, CompactString, CompactString);

fn edges(calls: &[Call]) -> BTreeSet<Edge> {
    calls
        .iter()
        .map(|c| {
            (
                c.source.key(),
                c.destination.key(),
                c.method.clone(),
                c.route.clone(),
            )
        })
        .collect()
}

#[test]
fn sdk_spans_give_the_same_calls_as_istio_spans() {
    let dir = tempfile::tempdir().unwrap();
    for topology in [TopologyKind::Boutique, TopologyKind::Trainticket] {
        let istio = dir.path().join("istio");
        let sdk = dir.path().join("sdk");
        generate("new-endpoint", &small(topology), &istio).unwrap();
        let opts = GenOptions {
            spans: SpanStyle::Sdk,
            ..small(topology)
        };
        generate("new-endpoint", &opts, &sdk).unwrap();
        let (a, b) = (calls(&istio), calls(&sdk));
        assert_eq!(a.len(), b.len(), "{topology:?}");
        let (ea, eb) = (edges(&a), edges(&b));
        let pairs = |e: &BTreeSet<Edge>| -> BTreeSet<(CompactString, CompactString)> {
            e.iter()
                .map(|(s, d, _, _)| (s.clone(), d.clone()))
                .collect()
        };
        assert_eq!(pairs(&ea), pairs(&eb), "{topology:?}");
        if topology == TopologyKind::Boutique {
            // gRPC: the same routes either way, up to the leading `/` (the collector keeps
            // it for an Istio span's URL path, not for `rpc.service`/`rpc.method`).
            let trim = |e: &BTreeSet<Edge>| -> BTreeSet<Edge> {
                e.iter()
                    .map(|(s, d, m, r)| {
                        (
                            s.clone(),
                            d.clone(),
                            m.clone(),
                            r.trim_start_matches('/').into(),
                        )
                    })
                    .collect()
            };
            assert_eq!(trim(&ea), trim(&eb));
        } else {
            // Istio spans carry no route template: the collector templates the concrete
            // path (ids → placeholders); SDK spans carry `http.route` itself.
            assert!(eb.iter().any(|e| e.3.contains("{orderId}")));
            assert!(ea.iter().all(|e| !e.3.contains("{orderId}")));
            let routes_per_edge = |e: &BTreeSet<Edge>| {
                let mut n = std::collections::BTreeMap::new();
                for (s, d, _, _) in e {
                    *n.entry((s.clone(), d.clone())).or_insert(0) += 1;
                }
                n.into_values().max().unwrap()
            };
            assert!(routes_per_edge(&ea) <= 60, "{}", routes_per_edge(&ea));
        }
        // The entry (root span's service + route) is found for SDK spans too.
        assert!(b.iter().all(|c| c.entry.is_some()), "{topology:?}");
        if topology == TopologyKind::Trainticket {
            assert!(
                eb.iter()
                    .any(|(s, d, m, _)| s == "ts-ui-dashboard.trainticket"
                        && d == "ts-order-service.trainticket"
                        && m == "DELETE")
            );
        }
    }
}

/// Span-side edges (caller → callee) of a scenario, without virtual peers.
fn span_pairs(dir: &Path) -> BTreeSet<(CompactString, CompactString)> {
    calls(dir)
        .iter()
        .map(|c| (c.source.key(), c.destination.key()))
        .collect()
}

#[test]
fn istio_text_and_json_access_logs_parse_into_the_calls_of_every_hop() {
    let dir = tempfile::tempdir().unwrap();
    for (format, parse) in [
        (
            AccessLogFormat::IstioText,
            parse_istio_text
                as fn(
                    &str,
                ) -> Result<
                    eastwest_collector::accesslog::AccessLogFields,
                    eastwest_collector::CollectorError,
                >,
        ),
        (AccessLogFormat::IstioJson, parse_istio_json),
    ] {
        for topology in [TopologyKind::Boutique, TopologyKind::Trainticket] {
            let out = dir.path().join(format!("{format:?}-{topology:?}"));
            let opts = GenOptions {
                access_logs: Some(format),
                ..small(topology)
            };
            let summary = generate("identity-spoof", &opts, &out).unwrap();
            // Access logs do not change the traces.
            let plain = dir.path().join("plain");
            generate("identity-spoof", &small(topology), &plain).unwrap();
            assert_eq!(
                std::fs::read(out.join("traces.pb")).unwrap(),
                std::fs::read(plain.join("traces.pb")).unwrap()
            );
            let mut lines = 0u64;
            let mut parsed = Vec::new();
            for f in std::fs::read_dir(out.join("access-logs")).unwrap() {
                let path = f.unwrap().path();
                let file = path.file_name().unwrap().to_str().unwrap().to_string();
                let (service, ns) = file.strip_suffix(".log").unwrap().rsplit_once('.').unwrap();
                let reporter = Workload::new(service).in_namespace(ns);
                let text = std::fs::read_to_string(&path).unwrap();
                let mut last = CompactString::default();
                for line in text.lines() {
                    lines += 1;
                    let fields = parse(line).unwrap_or_else(|e| panic!("{file}: {line}: {e}"));
                    let start = fields.start_time.clone().unwrap();
                    assert!(start >= last, "{file}: lines in time order");
                    last = start;
                    let (call, origin) = fields.into_call(&reporter, 0).unwrap();
                    match origin {
                        CallOrigin::OutboundLog => assert_eq!(call.source, reporter),
                        _ => {
                            assert_eq!(call.destination.key(), reporter.key());
                            assert_eq!(call.mtls, Some(true), "{line}");
                        }
                    }
                    parsed.push((origin, call));
                }
            }
            assert_eq!(Some(lines), summary.meta.access_log_lines);
            let pairs = |o: CallOrigin| -> BTreeSet<(CompactString, CompactString)> {
                parsed
                    .iter()
                    .filter(|(origin, _)| *origin == o)
                    .map(|(_, c)| (c.source.key(), c.destination.key()))
                    .collect()
            };
            // Outbound lines name exactly the edges the spans have; inbound lines those
            // with a server side (callers named by their SPIFFE ids).
            let spans = span_pairs(&plain);
            assert_eq!(
                pairs(CallOrigin::OutboundLog),
                spans,
                "{format:?} {topology:?}"
            );
            assert!(pairs(CallOrigin::InboundLog).is_subset(&spans));
            // The spoof: the compromised workload's outbound request arrives, by its
            // request id, as a call from the impersonated service.
            let label = &read_scenario_dir(&out).unwrap().labels[0];
            let attack_ids: BTreeSet<&str> = parsed
                .iter()
                .filter(|(o, c)| *o == CallOrigin::OutboundLog && c.source.key() == label.source)
                .filter_map(|(_, c)| c.request_id.as_deref())
                .collect();
            let seen_as: BTreeSet<CompactString> = parsed
                .iter()
                .filter(|(o, c)| {
                    *o == CallOrigin::InboundLog
                        && c.request_id
                            .as_deref()
                            .is_some_and(|r| attack_ids.contains(r))
                        && label.destination.as_deref() == Some(c.destination.key().as_str())
                })
                .map(|(_, c)| c.source.key())
                .collect();
            assert_eq!(seen_as.len(), 1, "{seen_as:?}");
            assert_ne!(
                seen_as.first().map(|s| s.as_str()),
                Some(label.source.as_str())
            );
        }
    }
}

#[test]
fn otlp_access_log_records_become_calls_and_dedupe_with_the_spans() {
    let dir = tempfile::tempdir().unwrap();
    for format in [
        eastwest_datasets::FileFormat::Pb,
        eastwest_datasets::FileFormat::Json,
    ] {
        let out = dir.path().join(format!("{format:?}"));
        let opts = GenOptions {
            access_logs: Some(AccessLogFormat::OtlpLogs),
            format,
            ..small(TopologyKind::Boutique)
        };
        let summary = generate("admin-endpoint", &opts, &out).unwrap();
        let data = read_scenario_dir(&out).unwrap();
        let records: usize = data
            .logs
            .iter()
            .flat_map(|r| &r.resource_logs)
            .flat_map(|rl| &rl.scope_logs)
            .map(|sl| sl.log_records.len())
            .sum();
        assert_eq!(Some(records as u64), summary.meta.access_log_lines);
        let mut from_logs = Vec::new();
        for r in &data.logs {
            let (calls, rejected) =
                eastwest_collector::accesslog::calls_from_otlp_logs_with_origin(r);
            assert_eq!(rejected, 0);
            from_logs.extend(calls);
        }
        assert_eq!(from_logs.len(), records, "every record is an access log");
        assert!(from_logs.iter().all(|(c, _)| c.trace_id.len() == 32));
        let admin = from_logs
            .iter()
            .filter(|(c, _)| c.route == "/admin/dump")
            .count();
        assert_eq!(admin, 2, "outbound + inbound line of the attack");
        // The attack's span pair and its two log lines are one call in the collector.
        let trace = data
            .traces
            .iter()
            .find(|r| format!("{r:?}").contains("/admin/dump"))
            .unwrap();
        let logs = data
            .logs
            .iter()
            .find(|r| format!("{r:?}").contains("/admin/dump"))
            .unwrap();
        let mut x = CallExtractor::new(
            NormalizerConfig::default(),
            Arc::new(CollectorMetrics::default()),
        );
        let mut got = x.process(IngestBatch::Traces(trace.clone()));
        got.extend(x.process(IngestBatch::Logs(logs.clone())));
        got.extend(x.flush());
        assert_eq!(got.iter().filter(|c| c.route == "/admin/dump").count(), 1);
    }
}

#[test]
fn sampled_spans_are_weighted_back_by_the_collector() {
    let dir = tempfile::tempdir().unwrap();
    let opts = GenOptions {
        rate_per_sec: 2.0,
        ..small(TopologyKind::Boutique)
    };
    let full = generate("benign-surge", &opts, &dir.path().join("full")).unwrap();
    for ratio in [0.5, 0.25, 0.1] {
        let out = dir.path().join(format!("r{ratio}"));
        let opts = GenOptions {
            sample_ratio: ratio,
            rate_per_sec: 2.0,
            ..small(TopologyKind::Boutique)
        };
        let summary = generate("benign-surge", &opts, &out).unwrap();
        let data = read_scenario_dir(&out).unwrap();
        let mut weight_sum = 0.0;
        let mut roots = 0;
        for r in &data.traces {
            for s in r
                .resource_spans
                .iter()
                .flat_map(|rs| &rs.scope_spans)
                .flat_map(|ss| &ss.spans)
            {
                let w = eastwest_collector::spans::weight_from_tracestate(&s.trace_state);
                assert!((w - 1.0 / ratio).abs() < 1e-9, "{} → {w}", s.trace_state);
                if s.parent_span_id.is_empty() {
                    weight_sum += w;
                    roots += 1;
                }
            }
        }
        assert_eq!(roots, summary.meta.traces);
        // The adjusted count estimates the unsampled number of traces.
        let estimate = weight_sum / full.meta.traces as f64;
        assert!(
            (0.85..1.15).contains(&estimate),
            "ratio {ratio}: estimate {estimate}"
        );
        // And the collector's calls carry that weight.
        let c = calls(&out);
        assert!(c.iter().all(|c| (c.weight - 1.0 / ratio).abs() < 1e-9));
    }
}
