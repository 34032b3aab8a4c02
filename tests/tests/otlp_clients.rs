//! Real OTLP clients nobody here wrote → the real `eastwest serve` binary → the exact
//! calls that come out. Clients: the OpenTelemetry Python SDK with its OTLP gRPC and
//! OTLP HTTP exporters, and the SDK → `rotel-agent` (a collector) → eastwest.
//! Needs the venv from `scripts/setup-test-env.sh` and a built binary
//! (`cargo build --bin eastwest`); fails with a message naming them when missing.

mod otlp_support;

use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use otlp_support::*;

type Shape = (String, String, String, String, Option<(String, String)>);

fn entry() -> Option<(String, String)> {
    Some(("frontend".to_string(), "GET /cart".to_string()))
}

/// The calls `tests/py/emit_trace.py`'s trace must become, sorted.
fn expected_calls() -> Vec<Shape> {
    let s = |x: &str| x.to_string();
    let mut v = vec![
        (
            s("frontend.shop"),
            s("cart.shop"),
            s("GET"),
            s("/api/cart/{id}"),
            entry(),
        ),
        (s("cart.shop"), s("redis"), s("GET"), s("*"), entry()),
    ];
    v.sort();
    v
}

async fn assert_trace_becomes_expected_calls(eastwest: &Eastwest, trace_id: &str) {
    let calls = eastwest
        .calls_of_trace(trace_id, expected_calls().len())
        .await
        .unwrap();
    // Give late duplicates a moment to show up: the exact set is asserted, not a subset.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let calls = eastwest
        .calls_of_trace(trace_id, calls.len())
        .await
        .unwrap();
    let mut shapes: Vec<Shape> = calls.iter().map(shape).collect();
    shapes.sort();
    assert_eq!(
        shapes,
        expected_calls(),
        "calls of trace {trace_id}: {calls:#?}"
    );
    let http_call = calls
        .iter()
        .find(|c| c.destination.service == "cart")
        .unwrap();
    assert_eq!(http_call.status, Some(200));
    assert!(!http_call.error);
}

#[tokio::test]
async fn python_sdk_otlp_grpc_exporter_trace_becomes_exact_calls() {
    venv();
    let eastwest = Eastwest::start().await.unwrap();
    let endpoint = format!("http://{}", eastwest.grpc);
    let trace_id = tokio::task::spawn_blocking(move || emit_trace("grpc", &endpoint))
        .await
        .unwrap()
        .unwrap();
    assert_trace_becomes_expected_calls(&eastwest, &trace_id).await;
    let stats = eastwest.stats().await.unwrap();
    assert!(stats["spans"].as_u64().unwrap() >= 4, "{stats}");
}

#[tokio::test]
async fn python_sdk_otlp_http_exporter_trace_becomes_exact_calls() {
    venv();
    let eastwest = Eastwest::start().await.unwrap();
    let endpoint = format!("http://{}", eastwest.http);
    let trace_id = tokio::task::spawn_blocking(move || emit_trace("http", &endpoint))
        .await
        .unwrap()
        .unwrap();
    assert_trace_becomes_expected_calls(&eastwest, &trace_id).await;
}

fn wait_listening(addr: std::net::SocketAddr, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(addr).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not listen on {addr} within 20s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test]
async fn python_sdk_through_rotel_collector_becomes_exact_calls() {
    venv();
    let eastwest = Eastwest::start().await.unwrap();
    let (rotel_grpc, rotel_http) = (free_addr(), free_addr());
    let scratch = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(rotel_agent());
    cmd.arg("start")
        .args(["--otlp-grpc-endpoint", &rotel_grpc.to_string()])
        .args(["--otlp-http-endpoint", &rotel_http.to_string()])
        .args(["--exporter", "otlp", "--otlp-exporter-protocol", "grpc"])
        .args([
            "--otlp-exporter-endpoint",
            &format!("http://{}", eastwest.grpc),
        ])
        .args(["--batch-timeout", "100ms"])
        .arg("--pid-file")
        .arg(scratch.path().join("rotel.pid"))
        .arg("--log-file")
        .arg(scratch.path().join("rotel.log"));
    let _rotel = spawn_quiet(cmd).unwrap();
    wait_listening(rotel_grpc, "rotel-agent");
    let endpoint = format!("http://{rotel_grpc}");
    let trace_id = tokio::task::spawn_blocking(move || emit_trace("grpc", &endpoint))
        .await
        .unwrap()
        .unwrap();
    assert_trace_becomes_expected_calls(&eastwest, &trace_id).await;
}

/// An Istio access-log line as an OTLP log record from the Python SDK's logs pipeline.
async fn assert_access_log_becomes_call(protocol: &str) {
    venv();
    let eastwest = Eastwest::start().await.unwrap();
    let endpoint = match protocol {
        "grpc" => format!("http://{}", eastwest.grpc),
        _ => format!("http://{}", eastwest.http),
    };
    let protocol_owned = protocol.to_string();
    let request_id =
        tokio::task::spawn_blocking(move || emit_access_log(&protocol_owned, &endpoint))
            .await
            .unwrap()
            .unwrap();
    let calls = eastwest.calls_of_request(&request_id).await.unwrap();
    let shapes: Vec<Shape> = calls.iter().map(shape).collect();
    let s = |x: &str| x.to_string();
    assert_eq!(
        shapes,
        vec![(
            s("sleep.foo"),
            s("httpbin.foo"),
            s("GET"),
            s("/status/{id}"),
            None
        )],
        "{calls:#?}"
    );
    assert_eq!(calls[0].status, Some(418));
    let stats = eastwest.stats().await.unwrap();
    assert_eq!(stats["logs"], 1, "{stats}");
}

#[tokio::test]
async fn python_sdk_otlp_grpc_log_exporter_access_log_becomes_a_call() {
    assert_access_log_becomes_call("grpc").await;
}

#[tokio::test]
async fn python_sdk_otlp_http_log_exporter_access_log_becomes_a_call() {
    assert_access_log_becomes_call("http").await;
}
