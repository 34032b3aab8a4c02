//! Determinism and structure tests over generated scenarios, for every topology and span
//! style.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;

use crate::otlp::attr;
use crate::*;

fn small() -> GenOptions {
    GenOptions {
        learning: std::time::Duration::from_secs(20 * 60),
        attack: std::time::Duration::from_secs(35 * 60),
        rate_per_sec: 0.2,
        ..Default::default()
    }
}

/// `service.namespace` workload key of a span's resource (Istio `svc.ns` service names
/// or SDK `service.name` + `service.namespace`).
fn spans_with_workload(reqs: &[ExportTraceServiceRequest]) -> Vec<(String, Span)> {
    let mut out = Vec::new();
    for r in reqs {
        for rs in &r.resource_spans {
            let attrs = rs
                .resource
                .as_ref()
                .map(|r| r.attributes.as_slice())
                .unwrap_or(&[]);
            let name = attr(attrs, "service.name").unwrap_or("");
            let key = match attr(attrs, "service.namespace") {
                Some(ns) => format!("{name}.{ns}"),
                None => name.to_string(),
            };
            for ss in &rs.scope_spans {
                for s in &ss.spans {
                    out.push((key.clone(), s.clone()));
                }
            }
        }
    }
    out
}

/// Where a CLIENT span says it goes.
fn target(s: &Span) -> &str {
    attr(&s.attributes, "upstream_cluster")
        .or(attr(&s.attributes, "server.address"))
        .or(attr(&s.attributes, "http.url"))
        .or(attr(&s.attributes, "url.full"))
        .unwrap_or("")
}

/// `/a/{id}/b` matches `/a/42/b`.
fn matches_template(template: &str, path: &str) -> bool {
    let (t, p): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), path.split('/').collect());
    t.len() == p.len()
        && t.iter()
            .zip(&p)
            .all(|(a, b)| a == b || (a.starts_with('{') && a.ends_with('}') && !b.is_empty()))
}

/// Does a CLIENT span carry this route (template)?
fn has_route(s: &Span, route: &str) -> bool {
    let a = &s.attributes;
    if s.name.contains(route) || attr(a, "db.collection.name") == Some(route) {
        return true;
    }
    if let (Some(svc), Some(m)) = (attr(a, "rpc.service"), attr(a, "rpc.method")) {
        return format!("/{svc}/{m}") == route;
    }
    attr(a, "http.url")
        .or(attr(a, "url.full"))
        .map(|u| {
            let rest = u.split_once("://").map_or(u, |(_, r)| r);
            rest.find('/').map_or("/", |i| &rest[i..])
        })
        .is_some_and(|p| matches_template(route, p))
}

/// Generates twice (bytes equal), then checks the structure and the labels.
fn check(name: &str, opts: &GenOptions, dir: &Path) -> ScenarioData {
    let tag = format!("{name}/{:?}/{:?}", opts.topology, opts.spans);
    let (a, b) = (dir.join(format!("{name}-a")), dir.join(format!("{name}-b")));
    generate(name, opts, &a).unwrap_or_else(|e| panic!("{tag}: {e}"));
    generate(name, opts, &b).unwrap();
    for f in ["traces.pb", "labels.jsonl", "scenario.json"] {
        assert_eq!(
            std::fs::read(a.join(f)).unwrap(),
            std::fs::read(b.join(f)).unwrap(),
            "{tag}/{f} differs"
        );
    }
    let data = read_scenario_dir(&a).unwrap();
    std::fs::remove_dir_all(&b).unwrap();
    assert_eq!(data.meta.name, *name);
    assert!(!data.labels.is_empty());
    let spans = spans_with_workload(&data.traces);
    assert_eq!(spans.len() as u64, data.meta.spans);
    let ids: HashMap<(Vec<u8>, Vec<u8>), usize> = spans
        .iter()
        .enumerate()
        .map(|(i, (_, s))| ((s.trace_id.clone(), s.span_id.clone()), i))
        .collect();
    assert_eq!(ids.len(), spans.len(), "{tag}: duplicate span ids");
    let mut with_server_child = HashSet::new();
    for (svc, s) in &spans {
        assert_eq!(s.trace_id.len(), 16);
        assert!(s.end_time_unix_nano >= s.start_time_unix_nano);
        if s.parent_span_id.is_empty() {
            assert_eq!(
                s.kind,
                SpanKind::Server as i32,
                "{tag}: root must be SERVER"
            );
            continue;
        }
        let (parent_svc, parent) = &spans[*ids
            .get(&(s.trace_id.clone(), s.parent_span_id.clone()))
            .unwrap_or_else(|| panic!("{tag}: dangling parent"))];
        if s.kind == SpanKind::Server as i32 {
            assert_eq!(parent.kind, SpanKind::Client as i32, "{tag}");
            with_server_child.insert(parent.span_id.clone());
            // The client names the server's workload, and the two differ.
            let (service, ns) = svc.split_once('.').unwrap();
            assert!(
                target(parent).contains(&format!("{service}.{ns}")),
                "{tag}: client → {} but server is {svc}",
                target(parent)
            );
            assert_ne!(parent_svc, svc, "{tag}: a hop stays in one service");
        } else {
            // A CLIENT span hangs under a SERVER span of its own service.
            assert_eq!(parent.kind, SpanKind::Server as i32, "{tag}");
            assert_eq!(parent_svc, svc, "{tag}: client under another service");
        }
    }
    for (_, s) in &spans {
        let virtual_peer = attr(&s.attributes, "db.system").is_some()
            || target(s).contains("169.254.169.254")
            || attr(&s.attributes, "http.url").is_some_and(|u| u.contains("169.254.169.254"));
        if s.kind == SpanKind::Client as i32 && !virtual_peer {
            assert!(
                with_server_child.contains(&s.span_id),
                "{tag}: client {} without server",
                s.name
            );
        }
    }
    check_labels(&tag, name, &data, &spans);
    data
}

/// Every attack label's source really calls its destination/route inside the window.
fn check_labels(tag: &str, name: &str, data: &ScenarioData, spans: &[(String, Span)]) {
    for l in &data.labels {
        assert_eq!(l.scenario, name);
        assert_eq!(l.class == "attack", l.kind.is_some());
        if l.kind.is_none() {
            continue;
        }
        let (start, end) = (
            l.start.timestamp_nanos_opt().unwrap() as u64,
            l.end.timestamp_nanos_opt().unwrap() as u64,
        );
        let hit = spans.iter().any(|(svc, s)| {
            s.kind == SpanKind::Client as i32
                && *svc == l.source
                && (start..=end).contains(&s.start_time_unix_nano)
                && l.destination
                    .as_ref()
                    .is_none_or(|d| target(s).contains(d.as_str()))
                && l.route.as_ref().is_none_or(|r| has_route(s, r))
        });
        assert!(hit, "{tag}: label {l:?} has no matching call");
    }
}

#[test]
fn every_boutique_scenario_is_deterministic_and_structurally_sound() {
    let dir = tempfile::tempdir().unwrap();
    for name in scenario_names() {
        let data = check(name, &small(), dir.path());
        assert_eq!(data.meta.topology, "online-boutique");
    }
}

#[test]
fn every_trainticket_scenario_is_deterministic_and_structurally_sound() {
    let dir = tempfile::tempdir().unwrap();
    let opts = GenOptions {
        topology: TopologyKind::Trainticket,
        ..small()
    };
    for name in scenario_names() {
        let data = check(name, &opts, dir.path());
        assert_eq!(data.meta.topology, "trainticket");
    }
    let data = read_scenario_dir(&dir.path().join("new-endpoint-a")).unwrap();
    let spans = spans_with_workload(&data.traces);
    // Path parameters are filled in on the wire; the label names the template.
    assert!(spans.iter().any(|(_, s)| {
        attr(&s.attributes, "http.url")
            .is_some_and(|u| u.contains("/api/v1/orderservice/order/") && !u.contains('{'))
    }));
    assert_eq!(
        data.labels[0].route.as_deref(),
        Some("/api/v1/orderservice/order/{orderId}")
    );
}

#[test]
fn large_topology_scenarios_are_deterministic_and_structurally_sound() {
    let dir = tempfile::tempdir().unwrap();
    let opts = GenOptions {
        topology: TopologyKind::Large,
        ..small()
    };
    for name in scenario_names() {
        if *name == "bulk-read" {
            let err = generate(name, &opts, &dir.path().join("x")).unwrap_err();
            assert!(err.to_string().contains("no database"), "{err}");
            continue;
        }
        let data = check(name, &opts, dir.path());
        assert_eq!(data.meta.topology, "jaeger-large");
        std::fs::remove_dir_all(dir.path().join(format!("{name}-a"))).unwrap();
    }
}

#[test]
fn sdk_spans_follow_current_semantic_conventions() {
    let dir = tempfile::tempdir().unwrap();
    for topology in [TopologyKind::Boutique, TopologyKind::Trainticket] {
        let opts = GenOptions {
            topology,
            spans: SpanStyle::Sdk,
            ..small()
        };
        for name in [
            "admin-endpoint",
            "fan-out",
            "new-endpoint",
            "cloud-metadata",
            "bulk-read",
        ] {
            let data = check(name, &opts, dir.path());
            std::fs::remove_dir_all(dir.path().join(format!("{name}-a"))).unwrap();
            if name != "admin-endpoint" {
                continue;
            }
            for r in &data.traces {
                for rs in &r.resource_spans {
                    let res = &rs.resource.as_ref().unwrap().attributes;
                    assert!(attr(res, "service.namespace").is_some());
                    assert!(!attr(res, "service.name").unwrap().contains('.'));
                    for s in rs.scope_spans.iter().flat_map(|ss| &ss.spans) {
                        let a = &s.attributes;
                        assert!(
                            a.iter().all(|kv| !kv.key.starts_with("istio")
                                && kv.key != "upstream_cluster"
                                && !kv.key.ends_with("principal")
                                && kv.key != "http.method"),
                            "{s:?}"
                        );
                        if s.kind == SpanKind::Server as i32 && attr(a, "rpc.system").is_none() {
                            assert!(attr(a, "http.request.method").is_some());
                            assert!(attr(a, "http.route").is_some(), "{s:?}");
                        }
                        if s.kind == SpanKind::Client as i32 && attr(a, "db.system").is_none() {
                            assert!(attr(a, "server.address").is_some());
                        }
                    }
                }
            }
        }
        // Without access logs there is no identity to spoof or leave out.
        assert!(matches!(
            generate("plaintext", &opts, dir.path()),
            Err(DatasetError::InvalidOptions(_))
        ));
    }
}

#[test]
fn sampling_keeps_about_the_ratio_with_matching_thresholds() {
    let dir = tempfile::tempdir().unwrap();
    let full = generate("admin-endpoint", &small(), &dir.path().join("full")).unwrap();
    let opts = GenOptions {
        sample_ratio: 0.25,
        ..small()
    };
    let data = check("admin-endpoint", &opts, dir.path());
    let ratio = data.meta.traces as f64 / full.meta.traces as f64;
    assert!((0.2..0.3).contains(&ratio), "kept {ratio}");
    assert_eq!(data.meta.sample_ratio, 0.25);
    let full_data = read_scenario_dir(&dir.path().join("full")).unwrap();
    let full_spans = spans_with_workload(&full_data.traces);
    let by_id: HashMap<(&[u8], &[u8]), &Span> = full_spans
        .iter()
        .map(|(_, s)| ((s.trace_id.as_slice(), s.span_id.as_slice()), s))
        .collect();
    for (_, s) in spans_with_workload(&data.traces) {
        assert!(s.trace_state.ends_with(";th:c"), "{}", s.trace_state);
        let rv = s.trace_state.strip_prefix("ot=rv:").unwrap()[..14].to_string();
        assert!(u64::from_str_radix(&rv, 16).unwrap() >= 0xc0_0000_0000_0000);
        assert_eq!(
            rv,
            hex::encode(&s.trace_id[9..]),
            "rv is the trace id's randomness"
        );
        match by_id.get(&(s.trace_id.as_slice(), s.span_id.as_slice())) {
            // A kept trace is the unsampled trace (only its tracestate differs).
            Some(orig) => assert_eq!(orig.attributes, s.attributes),
            // Only an injected attack trace may have had its id moved above the threshold.
            None => assert!(s.name.contains("/admin/dump"), "{}", s.name),
        }
    }
}

#[test]
fn json_and_pb_encodings_read_back_equal() {
    let dir = tempfile::tempdir().unwrap();
    let json = GenOptions {
        format: FileFormat::Json,
        ..small()
    };
    generate("admin-endpoint", &small(), &dir.path().join("pb")).unwrap();
    generate("admin-endpoint", &json, &dir.path().join("json")).unwrap();
    let a = read_scenario_dir(&dir.path().join("pb")).unwrap();
    let b = read_scenario_dir(&dir.path().join("json")).unwrap();
    assert_eq!(a.traces, b.traces);
}

#[test]
fn unknown_scenario_and_bad_file_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        generate("nope", &small(), dir.path()),
        Err(DatasetError::UnknownScenario(_))
    ));
    let p = dir.path().join("junk.pb");
    std::fs::write(&p, b"\xff\xff\xff").unwrap();
    let err = read_otlp_file::<
        opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest,
    >(&p)
    .unwrap_err()
    .to_string();
    assert!(err.contains("junk.pb"), "{err}");
    let bad = GenOptions {
        sample_ratio: 0.0,
        ..small()
    };
    assert!(matches!(
        generate("admin-endpoint", &bad, dir.path()),
        Err(DatasetError::InvalidOptions(_))
    ));
}
