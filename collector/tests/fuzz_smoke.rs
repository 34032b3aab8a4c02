//! Smoke mode of the `cargo fuzz` targets (`fuzz/`): the same target functions
//! (`eastwest_collector::fuzzing`) over the seed corpus in `fuzz/corpus/<target>/` plus
//! built-in seeds, then proptest-mutated seeds and random bytes. A target must never
//! panic and its output must stay bounded (asserted inside the targets).
//!
//! `EASTWEST_WRITE_FUZZ_CORPUS=1 cargo test -p eastwest-collector --test fuzz_smoke`
//! (re)writes the built-in seeds into the corpus folders.

use std::path::PathBuf;

use eastwest_collector::fuzzing;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use proptest::prelude::*;
use prost::Message;

type Target = fn(&[u8]) -> usize;

const TARGETS: [(&str, Target); 6] = [
    ("otlp_traces", fuzzing::otlp_traces),
    ("otlp_admission", fuzzing::otlp_admission),
    ("otlp_wire", fuzzing::otlp_wire),
    ("otlp_logs", fuzzing::otlp_logs),
    ("access_log_text", fuzzing::access_log_text),
    ("access_log_json", fuzzing::access_log_json),
];

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

fn resource(attrs: Vec<KeyValue>) -> Option<Resource> {
    Some(Resource {
        attributes: attrs,
        ..Default::default()
    })
}

fn trace_seeds() -> Vec<Vec<u8>> {
    let span = |id: u8, parent: u8, kind: i32, attrs: Vec<KeyValue>| Span {
        trace_id: vec![7; 16],
        span_id: vec![id; 8],
        parent_span_id: if parent == 0 { vec![] } else { vec![parent; 8] },
        name: "GET /cart/{id}".into(),
        kind,
        start_time_unix_nano: 1_700_000_000_000_000_000,
        end_time_unix_nano: 1_700_000_000_005_000_000,
        attributes: attrs,
        ..Default::default()
    };
    let sdk = ExportTraceServiceRequest {
        resource_spans: vec![
            ResourceSpans {
                resource: resource(vec![kv("service.name", "frontend")]),
                scope_spans: vec![ScopeSpans {
                    spans: vec![
                        span(
                            1,
                            0,
                            2,
                            vec![kv("http.request.method", "GET"), kv("http.route", "/")],
                        ),
                        span(
                            2,
                            1,
                            3,
                            vec![
                                kv("http.request.method", "GET"),
                                kv("server.address", "cart"),
                                kv("url.path", "/cart/42"),
                            ],
                        ),
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            },
            ResourceSpans {
                resource: resource(vec![kv("service.name", "cart")]),
                scope_spans: vec![ScopeSpans {
                    spans: vec![span(
                        3,
                        2,
                        2,
                        vec![
                            kv("http.request.method", "GET"),
                            kv("http.route", "/cart/{id}"),
                        ],
                    )],
                    ..Default::default()
                }],
                ..Default::default()
            },
        ],
    };
    let istio = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: resource(vec![kv("service.name", "reviews.bookinfo")]),
            scope_spans: vec![ScopeSpans {
                spans: vec![span(
                    4,
                    0,
                    3,
                    vec![
                        kv(
                            "upstream_cluster",
                            "outbound|9080|v3|ratings.bookinfo.svc.cluster.local",
                        ),
                        kv("http.method", "GET"),
                        kv("http.url", "http://ratings:9080/ratings/0"),
                        kv("guid:x-request-id", "b6f1a2d4-0000-4000-8000-000000000001"),
                        kv("response_flags", "-"),
                    ],
                )],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    vec![sdk.encode_to_vec(), istio.encode_to_vec()]
}

const TEXT: &str = include_str!("fixtures/accesslog/istio_text.log");
const JSON: &str = include_str!("fixtures/accesslog/istio_json.log");

fn fixture_lines(src: &str) -> Vec<Vec<u8>> {
    src.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.as_bytes().to_vec())
        .collect()
}

fn log_seeds() -> Vec<Vec<u8>> {
    let body = |s: &str| {
        Some(AnyValue {
            value: Some(Value::StringValue(s.into())),
        })
    };
    let records = TEXT
        .lines()
        .chain(JSON.lines())
        .filter(|l| !l.starts_with('#'))
        .map(|l| LogRecord {
            body: body(l),
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            ..Default::default()
        })
        .chain([LogRecord {
            attributes: vec![
                kv("method", "GET"),
                kv("path", "/a/1"),
                kv("upstream_cluster", "inbound|80||"),
                kv("x-request-id", "84961386-6d84-929d-98bd-c5aee93b5c88"),
            ],
            ..Default::default()
        }])
        .collect();
    let request = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: resource(vec![
                kv("service.name", "httpbin"),
                kv("k8s.namespace.name", "foo"),
            ]),
            scope_logs: vec![ScopeLogs {
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    vec![request.encode_to_vec()]
}

/// Trace seeds plus the shapes that cost far more decoded than on the wire.
fn admission_seeds() -> Vec<Vec<u8>> {
    let empty_groups = [0x0a, 0x00].repeat(32 << 10);
    let mut floods = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: resource(vec![KeyValue::default(); 1_000]),
            scope_spans: vec![ScopeSpans {
                spans: vec![Span::default(); 3],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let attribute_flood = floods.encode_to_vec();
    floods.resource_spans[0].resource = None;
    floods.resource_spans[0].scope_spans[0].spans = vec![Span::default(); 201_000];
    let span_flood = floods.encode_to_vec();
    let mut seeds = trace_seeds();
    seeds.extend([empty_groups, attribute_flood, span_flood]);
    seeds
}

fn builtin_seeds(target: &str) -> Vec<Vec<u8>> {
    match target {
        "otlp_traces" => trace_seeds(),
        "otlp_admission" | "otlp_wire" => admission_seeds(),
        "otlp_logs" => log_seeds(),
        "access_log_text" => fixture_lines(TEXT),
        _ => fixture_lines(JSON),
    }
}

fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target)
}

fn all_seeds(target: &str) -> Vec<Vec<u8>> {
    let mut seeds = builtin_seeds(target);
    if let Ok(entries) = std::fs::read_dir(corpus_dir(target)) {
        for entry in entries.flatten() {
            seeds.push(std::fs::read(entry.path()).unwrap());
        }
    }
    seeds
}

#[test]
fn write_seed_corpus_when_asked() {
    if std::env::var_os("EASTWEST_WRITE_FUZZ_CORPUS").is_none() {
        return;
    }
    for (target, _) in TARGETS {
        let dir = corpus_dir(target);
        std::fs::create_dir_all(&dir).unwrap();
        for (i, seed) in builtin_seeds(target).iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i:02}")), seed).unwrap();
        }
    }
}

#[test]
fn every_target_turns_its_seeds_into_calls() {
    for (name, target) in TARGETS {
        let seeds = all_seeds(name);
        assert!(!seeds.is_empty(), "{name} has seeds");
        let calls: usize = seeds.iter().map(|s| target(s)).sum();
        assert!(
            calls >= seeds.len().min(2),
            "{name}: seeds produced only {calls} calls"
        );
    }
    assert!(
        corpus_dir("otlp_traces").is_dir(),
        "the committed corpus is found"
    );
}

#[test]
fn degenerate_inputs_do_not_panic() {
    let huge_text = format!("[{}] \"{}\"", "x".repeat(100_000), "\" ".repeat(10_000));
    let deep_json = format!("{}{}", "[".repeat(200_000), "]".repeat(200_000));
    for (_, target) in TARGETS {
        for input in [
            &b""[..],
            b"\0",
            b"\xff\xfe",
            b"{",
            b"\"",
            b"[",
            huge_text.as_bytes(),
            deep_json.as_bytes(),
        ] {
            target(input);
        }
    }
}

/// A seed with random edits: byte flips, insertions, deletions, a truncation.
fn mutated(name: &'static str) -> impl Strategy<Value = Vec<u8>> {
    let seeds = all_seeds(name);
    let count = seeds.len();
    (
        0..count,
        proptest::collection::vec((0u8..4, any::<prop::sample::Index>(), any::<u8>()), 0..12),
    )
        .prop_map(move |(i, edits)| {
            let mut data = seeds[i].clone();
            for (op, at, byte) in edits {
                if data.is_empty() {
                    data.push(byte);
                    continue;
                }
                let at = at.index(data.len());
                match op {
                    0 => data[at] ^= byte | 1,
                    1 => data.insert(at, byte),
                    2 => {
                        data.remove(at);
                    }
                    _ => data.truncate(at),
                }
            }
            data
        })
}

fn bytes_or_mutation(name: &'static str) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![3 => mutated(name), 1 => proptest::collection::vec(any::<u8>(), 0..512)]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn otlp_traces_survives_mutations(data in bytes_or_mutation("otlp_traces")) {
        fuzzing::otlp_traces(&data);
    }

    #[test]
    fn otlp_admission_survives_mutations(data in bytes_or_mutation("otlp_admission")) {
        fuzzing::otlp_admission(&data);
    }

    #[test]
    fn otlp_wire_survives_mutations(data in bytes_or_mutation("otlp_wire")) {
        fuzzing::otlp_wire(&data);
    }

    #[test]
    fn otlp_logs_survives_mutations(data in bytes_or_mutation("otlp_logs")) {
        fuzzing::otlp_logs(&data);
    }

    #[test]
    fn access_log_text_survives_mutations(data in bytes_or_mutation("access_log_text")) {
        fuzzing::access_log_text(&data);
    }

    #[test]
    fn access_log_json_survives_mutations(data in bytes_or_mutation("access_log_json")) {
        fuzzing::access_log_json(&data);
    }
}
