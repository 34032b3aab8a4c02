//! Structure tests over generated scenarios.

use std::collections::{HashMap, HashSet};

use opentelemetry_proto::tonic::trace::v1::span::SpanKind;

use crate::otlp::{attr, spans_with_service};
use crate::*;

fn small() -> GenOptions {
    GenOptions {
        learning: std::time::Duration::from_secs(20 * 60),
        attack: std::time::Duration::from_secs(35 * 60),
        rate_per_sec: 0.2,
        ..Default::default()
    }
}

#[test]
fn every_scenario_is_deterministic_and_structurally_sound() {
    let dir = tempfile::tempdir().unwrap();
    for name in scenario_names() {
        let (a, b) = (
            dir.path().join(format!("{name}-a")),
            dir.path().join(format!("{name}-b")),
        );
        generate(name, &small(), &a).unwrap();
        generate(name, &small(), &b).unwrap();
        for f in ["traces.pb", "labels.jsonl", "scenario.json"] {
            assert_eq!(
                std::fs::read(a.join(f)).unwrap(),
                std::fs::read(b.join(f)).unwrap(),
                "{name}/{f} differs"
            );
        }
        let data = read_scenario_dir(&a).unwrap();
        assert_eq!(data.meta.name, *name);
        assert!(!data.labels.is_empty());
        let spans: Vec<(String, _)> = data
            .traces
            .iter()
            .flat_map(|r| spans_with_service(r).map(|(s, sp)| (s.to_string(), sp.clone())))
            .collect();
        assert_eq!(spans.len() as u64, data.meta.spans);
        let ids: HashMap<(Vec<u8>, Vec<u8>), usize> = spans
            .iter()
            .enumerate()
            .map(|(i, (_, s))| ((s.trace_id.clone(), s.span_id.clone()), i))
            .collect();
        assert_eq!(ids.len(), spans.len(), "{name}: duplicate span ids");
        let mut with_server_child = HashSet::new();
        for (_, s) in &spans {
            assert_eq!(s.trace_id.len(), 16);
            assert!(s.end_time_unix_nano >= s.start_time_unix_nano);
            if s.parent_span_id.is_empty() {
                assert_eq!(
                    s.kind,
                    SpanKind::Server as i32,
                    "{name}: root must be SERVER"
                );
            } else {
                let parent = &spans[*ids
                    .get(&(s.trace_id.clone(), s.parent_span_id.clone()))
                    .unwrap_or_else(|| panic!("{name}: dangling parent"))]
                .1;
                if s.kind == SpanKind::Server as i32 {
                    assert_eq!(parent.kind, SpanKind::Client as i32);
                    with_server_child.insert(parent.span_id.clone());
                }
            }
        }
        for (_, s) in &spans {
            let virtual_peer = attr(&s.attributes, "db.system").is_some()
                || attr(&s.attributes, "http.url").is_some_and(|u| u.contains("169.254.169.254"));
            if s.kind == SpanKind::Client as i32 && !virtual_peer {
                assert!(
                    with_server_child.contains(&s.span_id),
                    "{name}: client {} without server",
                    s.name
                );
            }
        }
        check_labels(name, &data, &spans);
    }
}

/// Every attack label's source really calls its destination/route inside the window.
fn check_labels(
    name: &str,
    data: &ScenarioData,
    spans: &[(String, opentelemetry_proto::tonic::trace::v1::Span)],
) {
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
                && {
                    let target = attr(&s.attributes, "upstream_cluster")
                        .or(attr(&s.attributes, "server.address"))
                        .or(attr(&s.attributes, "http.url"))
                        .unwrap_or("");
                    let dst_ok = l
                        .destination
                        .as_ref()
                        .is_none_or(|d| target.contains(d.as_str()));
                    let route_ok = l.route.as_ref().is_none_or(|r| {
                        s.name.contains(r.as_str())
                            || attr(&s.attributes, "db.collection.name") == Some(r)
                    });
                    dst_ok && route_ok
                }
        });
        assert!(hit, "{name}: label {l:?} has no matching call");
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
}
