//! Bad input against the real binary's receivers: every refusal has the OTLP status and
//! shows up in `/api/v1/stats` and `/metrics`. (A full queue needs a stalled pipeline,
//! which the binary never has: the collector crate's `tests/receivers.rs` covers it.)

mod otlp_support;

use std::io::Write;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use otlp_support::*;

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

async fn post(url: &str, content_type: &str, gzip: bool, body: Vec<u8>) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("content-type", content_type)
        .body(body);
    if gzip {
        req = req.header("content-encoding", "gzip");
    }
    req.send().await.unwrap()
}

fn nameless_and_named_request() -> ExportTraceServiceRequest {
    // Now: the receivers refuse records far from their clock.
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap() as u64;
    let span = |n: u8| Span {
        trace_id: vec![n; 16],
        span_id: vec![n; 8],
        name: "GET /x".into(),
        kind: 2,
        start_time_unix_nano: now,
        end_time_unix_nano: now + 1_000_000,
        ..Default::default()
    };
    let resource = |name: Option<&str>| Resource {
        attributes: name
            .map(|n| {
                vec![KeyValue {
                    key: "service.name".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::StringValue(n.into())),
                    }),
                    ..Default::default()
                }]
            })
            .unwrap_or_default(),
        ..Default::default()
    };
    ExportTraceServiceRequest {
        resource_spans: vec![
            ResourceSpans {
                resource: Some(resource(Some("checkout"))),
                scope_spans: vec![ScopeSpans {
                    spans: vec![span(1)],
                    ..Default::default()
                }],
                ..Default::default()
            },
            ResourceSpans {
                resource: Some(resource(None)),
                scope_spans: vec![ScopeSpans {
                    spans: vec![span(2), span(3)],
                    ..Default::default()
                }],
                ..Default::default()
            },
        ],
    }
}

#[tokio::test]
async fn refusals_have_otlp_statuses_and_are_counted_by_the_binary() {
    let eastwest = Eastwest::start().await.unwrap();
    let traces = format!("http://{}/v1/traces", eastwest.http);

    let resp = post(&traces, "application/x-protobuf", false, vec![0x0a, 100, 1]).await;
    assert_eq!(resp.status(), 400);
    let resp = post(&traces, "application/json", false, b"{not json".to_vec()).await;
    assert_eq!(resp.status(), 400);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(
        body["code"], 3,
        "google.rpc.Status INVALID_ARGUMENT: {body}"
    );

    let oversized = vec![0u8; 17 << 20];
    assert_eq!(
        post(&traces, "application/x-protobuf", false, oversized)
            .await
            .status(),
        413
    );
    let bomb = gzip(&vec![0u8; 64 << 20]);
    assert_eq!(
        post(&traces, "application/x-protobuf", true, bomb)
            .await
            .status(),
        413
    );
    assert_eq!(
        post(&traces, "text/plain", false, b"x".to_vec())
            .await
            .status(),
        415
    );

    // Partial success: spans of a resource without service.name are rejected, the rest kept.
    let resp = post(
        &traces,
        "application/json",
        false,
        serde_json::to_vec(&nameless_and_named_request()).unwrap(),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(
        body["partialSuccess"]["rejectedSpans"]
            .to_string()
            .trim_matches('"'),
        "2",
        "{body}"
    );

    let mut grpc = TraceServiceClient::connect(format!("http://{}", eastwest.grpc))
        .await
        .unwrap();
    let partial = grpc
        .export(nameless_and_named_request())
        .await
        .unwrap()
        .into_inner()
        .partial_success
        .unwrap();
    assert_eq!(partial.rejected_spans, 2);
    let err = grpc
        .export(ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                schema_url: "x".repeat(17 << 20),
                ..Default::default()
            }],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err:?}");

    let stats = eastwest.stats().await.unwrap();
    let rejected = &stats["requests_rejected"];
    assert_eq!(rejected["malformed"], 2, "{stats}");
    assert_eq!(rejected["too_large"], 3, "{stats}");
    assert_eq!(rejected["unsupported_media_type"], 1, "{stats}");
    assert_eq!(stats["span_counts"]["rejected"], 4, "{stats}");
    assert_eq!(stats["span_counts"]["accepted"], 2, "{stats}");
    let metrics = reqwest::get(eastwest.api_url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("eastwest_requests_rejected_total{reason=\"too_large\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("eastwest_spans_total{outcome=\"rejected\"} 4"),
        "{metrics}"
    );
}
