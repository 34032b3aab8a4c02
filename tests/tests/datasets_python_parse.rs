//! Files written by `eastwest gen` parse with the OpenTelemetry Python protobuf classes
//! (the venv from `scripts/setup-test-env.sh`, `EASTWEST_VENV` or
//! `~/.cache/eastwest-venv`): the length-delimited `ExportTraceServiceRequest` sequence of
//! every topology and span style, and the OTLP access-log records
//! (`ExportLogsServiceRequest`). Counts must equal `scenario.json`'s.

mod otlp_support;

use std::path::Path;
use std::process::Command;

use otlp_support::{eastwest_bin, python};

/// Reads a `.pb` file of varint-length-prefixed requests; prints requests, spans or log
/// records, and the distinct resource `service.name`s as JSON.
const SCRIPT: &str = r#"
import json, sys
from google.protobuf.internal.decoder import _DecodeVarint32
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

path, kind = sys.argv[1], sys.argv[2]
data = open(path, "rb").read()
pos, requests, items, services, states = 0, 0, 0, set(), set()
while pos < len(data):
    size, pos = _DecodeVarint32(data, pos)
    req = ExportTraceServiceRequest() if kind == "traces" else ExportLogsServiceRequest()
    req.ParseFromString(data[pos:pos + size])
    pos += size
    requests += 1
    groups = req.resource_spans if kind == "traces" else req.resource_logs
    for g in groups:
        for a in g.resource.attributes:
            if a.key == "service.name":
                services.add(a.value.string_value)
        if kind == "traces":
            for ss in g.scope_spans:
                for s in ss.spans:
                    assert len(s.trace_id) == 16 and len(s.span_id) == 8, s
                    states.add(s.trace_state.split(";th:")[-1] if ";th:" in s.trace_state else s.trace_state)
                    items += 1
        else:
            for sl in g.scope_logs:
                for r in sl.log_records:
                    assert r.body.string_value.startswith("["), r
                    items += 1
print(json.dumps({"requests": requests, "items": items, "services": sorted(services),
                  "trace_states": sorted(states)}))
"#;

fn generate(dir: &Path, scenario: &str, extra: &[&str]) -> serde_json::Value {
    let out = Command::new(eastwest_bin())
        .args(["gen", scenario, "--out"])
        .arg(dir)
        .args(["--learning", "10m", "--attack", "5m", "--rate", "0.5"])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "eastwest gen {scenario} {extra:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&std::fs::read_to_string(dir.join("scenario.json")).unwrap()).unwrap()
}

fn parse(file: &Path, kind: &str) -> serde_json::Value {
    let out = Command::new(python())
        .args(["-c", SCRIPT])
        .arg(file)
        .arg(kind)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python could not parse {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn python_protobuf_classes_parse_generated_traces_and_logs() {
    let tmp = tempfile::tempdir().unwrap();
    let cases: &[(&str, &[&str], &str)] = &[
        ("admin-endpoint", &[], "paymentservice.boutique"),
        (
            "new-endpoint",
            &["--topology", "trainticket", "--spans", "sdk"],
            "ts-order-service",
        ),
        (
            "fan-out",
            &["--topology", "large", "--sample-ratio", "0.5"],
            ".mesh",
        ),
    ];
    for (i, (scenario, extra, service)) in cases.iter().enumerate() {
        let dir = tmp.path().join(format!("case{i}"));
        let meta = generate(&dir, scenario, extra);
        let parsed = parse(&dir.join("traces.pb"), "traces");
        assert_eq!(parsed["items"], meta["spans"], "{scenario} {extra:?}");
        assert_eq!(parsed["requests"], meta["requests"], "{scenario} {extra:?}");
        let services = parsed["services"].as_array().unwrap();
        let named = services
            .iter()
            .filter(|s| s.as_str().unwrap().ends_with(service))
            .count();
        assert!(named >= 1, "{scenario}: no {service} in {services:?}");
        if *service == ".mesh" {
            assert!(named > 100, "the large mesh: {named} services");
        }
        let want_th = if extra.contains(&"--sample-ratio") {
            "8"
        } else {
            "ot=th:0"
        };
        assert_eq!(parsed["trace_states"], serde_json::json!([want_th]));
    }
    let dir = tmp.path().join("logs");
    let meta = generate(&dir, "identity-spoof", &["--access-logs", "otlp-logs"]);
    let parsed = parse(&dir.join("logs.pb"), "logs");
    assert_eq!(parsed["items"], meta["access_log_lines"]);
    assert!(
        parsed["services"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == "paymentservice")
    );
}
