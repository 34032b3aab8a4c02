//! The receivers over real sockets: a tonic client and reqwest against `Receivers`
//! bound on port 0, asserting status codes, response bodies, the queue and the counters.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use eastwest_collector::otlp::RpcStatus;
use eastwest_collector::{CollectorMetrics, IngestBatch, Queued, ReceiverConfig, Receivers};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tonic::Code;
use tonic::codec::CompressionEncoding;

struct Running {
    grpc: String,
    http: String,
    rx: mpsc::Receiver<Queued>,
    metrics: Arc<CollectorMetrics>,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), eastwest_collector::CollectorError>>,
}

async fn start(max_body_bytes: usize, queue_capacity: usize) -> Running {
    start_with(ReceiverConfig {
        max_body_bytes,
        queue_capacity,
        ..Default::default()
    })
    .await
}

/// `config` on ephemeral loopback ports.
async fn start_with(config: ReceiverConfig) -> Running {
    let config = ReceiverConfig {
        grpc_addr: "127.0.0.1:0".parse().unwrap(),
        http_addr: "127.0.0.1:0".parse().unwrap(),
        ..config
    };
    let queue_capacity = config.queue_capacity;
    // Raw requests downstream: these tests look at what the receivers decoded.
    let receivers = Receivers::bind(&config).await.unwrap().with_raw_traces();
    let grpc = format!("http://{}", receivers.grpc_local_addr());
    let http = format!("http://{}", receivers.http_local_addr());
    let (tx, rx) = mpsc::channel(queue_capacity);
    let metrics = Arc::new(CollectorMetrics::default());
    let cancel = CancellationToken::new();
    let task = tokio::spawn(receivers.serve(tx, metrics.clone(), cancel.clone()));
    Running {
        grpc,
        http,
        rx,
        metrics,
        cancel,
        task,
    }
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

fn spans(service: Option<&str>, n: usize, attr_len: usize) -> ResourceSpans {
    let spans = (0..n)
        .map(|i| Span {
            trace_id: vec![7; 16],
            span_id: (i as u64 + 1).to_be_bytes().to_vec(),
            name: "GET /cart".into(),
            kind: 2,
            start_time_unix_nano: 1_700_000_000_000_000_000,
            end_time_unix_nano: 1_700_000_000_002_000_000,
            attributes: vec![
                kv("http.route", "/cart"),
                kv("filler", &"a".repeat(attr_len)),
            ],
            ..Default::default()
        })
        .collect();
    ResourceSpans {
        resource: Some(Resource {
            attributes: service
                .map(|s| vec![kv("service.name", s)])
                .unwrap_or_default(),
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            spans,
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn request(parts: Vec<ResourceSpans>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: parts,
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

async fn grpc_client(url: &str) -> TraceServiceClient<tonic::transport::Channel> {
    TraceServiceClient::connect(url.to_string()).await.unwrap()
}

#[tokio::test]
async fn grpc_accepts_valid_spans_and_reports_partial_success() {
    let mut s = start(1 << 20, 8).await;
    let mut client = grpc_client(&s.grpc)
        .await
        .send_compressed(CompressionEncoding::Gzip);
    let req = request(vec![spans(Some("frontend"), 3, 10), spans(None, 2, 10)]);
    let resp = client.export(req).await.unwrap().into_inner();
    let partial = resp
        .partial_success
        .expect("partial success for the nameless resource");
    assert_eq!(partial.rejected_spans, 2);
    assert!(
        partial.error_message.contains("service.name"),
        "{}",
        partial.error_message
    );
    let Some(IngestBatch::Traces(batch)) = s.rx.recv().await.map(|q| q.into_parts().0) else {
        panic!("expected a traces batch")
    };
    assert_eq!(batch.resource_spans.len(), 1);
    assert_eq!(batch.resource_spans[0].scope_spans[0].spans.len(), 3);
    let c = s.metrics.snapshot().span_counts;
    assert_eq!((c.received, c.accepted, c.rejected), (5, 3, 2));

    // A fully valid request has no partial_success.
    let resp = client
        .export(request(vec![spans(Some("frontend"), 1, 10)]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.partial_success, None);
}

#[tokio::test]
async fn grpc_oversized_and_gzip_bomb_are_resource_exhausted_and_queue_full_is_unavailable() {
    let s = start(64 << 10, 1).await;
    let mut client = grpc_client(&s.grpc).await;
    let big = request(vec![spans(Some("a"), 4, 32 << 10)]);
    let err = client.export(big.clone()).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");

    // Compresses to a few KiB, inflates past the limit.
    let mut gz = grpc_client(&s.grpc)
        .await
        .send_compressed(CompressionEncoding::Gzip);
    let bomb = request(vec![spans(Some("a"), 64, 64 << 10)]);
    let err = gz.export(bomb).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert_eq!(s.metrics.snapshot().requests_rejected.too_large, 2);

    // Queue of one, nobody reading: the second request is refused, retryably.
    client
        .export(request(vec![spans(Some("a"), 1, 1)]))
        .await
        .unwrap();
    let err = client
        .export(request(vec![spans(Some("a"), 1, 1)]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    let details = String::from_utf8_lossy(err.details());
    assert!(
        details.contains("type.googleapis.com/google.rpc.RetryInfo"),
        "{details:?}"
    );
    let snap = s.metrics.snapshot();
    assert_eq!(snap.requests_rejected.queue_full, 1);
    assert_eq!(snap.span_counts.refused, 1);
    drop(s.rx);
}

#[tokio::test]
async fn grpc_gzip_reserves_the_inflated_size_before_reading_the_message() {
    const MAX_BODY: usize = 1 << 20;
    let mut s = start_with(ReceiverConfig {
        max_body_bytes: MAX_BODY,
        memory_budget_bytes: (MAX_BODY + (256 << 10)) as u64,
        max_decoded_bytes_per_request: MAX_BODY as u64,
        queue_capacity: 4,
        queue_wait: Duration::from_millis(50),
        ..Default::default()
    })
    .await;
    // A queued batch (nobody reads the queue yet) holds part of the budget.
    let mut plain = grpc_client(&s.grpc).await;
    plain
        .export(request(vec![spans(Some("a"), 1, 300 << 10)]))
        .await
        .unwrap();
    let held = s.metrics.memory_reserved.load(Ordering::Relaxed);
    assert!(held > 256 << 10, "the queued batch holds {held} bytes");

    // A compressed message a few hundred bytes long could inflate to the whole decoded
    // limit in tonic's buffer: that room is not left, so it is refused, retryably.
    let mut gz = grpc_client(&s.grpc)
        .await
        .send_compressed(CompressionEncoding::Gzip);
    let small = request(vec![spans(Some("b"), 1, 10)]);
    let err = gz.export(small.clone()).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert_eq!(s.metrics.snapshot().requests_rejected.memory_budget, 1);

    // Once the pipeline has taken the batch, the room is there again.
    drop(s.rx.recv().await.unwrap());
    gz.export(small).await.unwrap();
    let queued = s.rx.recv().await.unwrap();
    drop(queued);
    assert_eq!(s.metrics.memory_reserved.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn grpc_malformed_protobuf_is_invalid_argument() {
    let s = start(1 << 20, 4).await;
    let channel = tonic::transport::Endpoint::from_shared(s.grpc.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let path = http::uri::PathAndQuery::from_static(eastwest_datasets::TRACES_EXPORT_PATH);
    // Field 1, wire type 2 (length-delimited), length 100, but only 3 bytes follow.
    let garbage = bytes::Bytes::from_static(&[0x0a, 100, 1, 2, 3]);
    let err = grpc
        .unary(
            tonic::Request::new(garbage.clone()),
            path,
            eastwest_datasets::RawCodec,
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("malformed"), "{err:?}");
    assert_eq!(s.metrics.snapshot().requests_rejected.malformed, 1);

    // A method the service does not have is UNIMPLEMENTED and is no rejection.
    for path in [
        "/opentelemetry.proto.collector.trace.v1.TraceService/Exports",
        "/opentelemetry.proto.collector.logs.v1.LogsService/Query",
    ] {
        grpc.ready().await.unwrap();
        let err = grpc
            .unary(
                tonic::Request::new(garbage.clone()),
                http::uri::PathAndQuery::from_static(path),
                eastwest_datasets::RawCodec,
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unimplemented, "{path}: {err:?}");
    }
    assert_eq!(s.metrics.snapshot().requests_rejected.malformed, 1);
}

#[tokio::test]
async fn http_protobuf_gzip_and_partial_success_round_trip() {
    let mut s = start(1 << 20, 8).await;
    let http = reqwest::Client::new();
    let body = gzip(&request(vec![spans(Some("cart"), 2, 10), spans(None, 1, 10)]).encode_to_vec());
    let resp = http
        .post(format!("{}/v1/traces", s.http))
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "gzip")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/x-protobuf");
    let decoded = ExportTraceServiceResponse::decode(resp.bytes().await.unwrap()).unwrap();
    assert_eq!(decoded.partial_success.unwrap().rejected_spans, 1);
    let Some(IngestBatch::Traces(batch)) = s.rx.recv().await.map(|q| q.into_parts().0) else {
        panic!("expected traces")
    };
    assert_eq!(batch.resource_spans[0].scope_spans[0].spans.len(), 2);
}

/// The example from the OTLP specification's `examples/trace.json`: hex ids,
/// camelCase fields, int64 as strings, enums as integers.
const SPEC_TRACE_JSON: &str = r#"{
  "resourceSpans": [{
    "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "my.service"}}]},
    "scopeSpans": [{
      "scope": {"name": "my.library", "version": "1.0.0",
                "attributes": [{"key": "my.scope.attribute", "value": {"stringValue": "some scope attribute"}}]},
      "spans": [{
        "traceId": "5B8EFFF798038103D269B633813FC60C",
        "spanId": "EEE19B7EC3C1B174",
        "parentSpanId": "EEE19B7EC3C1B173",
        "name": "I'm a server span",
        "startTimeUnixNano": "1544712660000000000",
        "endTimeUnixNano": "1544712661000000000",
        "kind": 2,
        "attributes": [
          {"key": "my.span.attr", "value": {"stringValue": "some value"}},
          {"key": "http.response.status_code", "value": {"intValue": "200"}}
        ]
      }]
    }]
  }]
}"#;

#[tokio::test]
async fn http_json_follows_the_otlp_json_mapping() {
    let mut s = start(1 << 20, 8).await;
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/traces", s.http))
        .header("content-type", "application/json")
        .body(SPEC_TRACE_JSON)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert!(
        body.get("partialSuccess").is_none_or(|p| p.is_null()),
        "{body}"
    );
    let Some(IngestBatch::Traces(batch)) = s.rx.recv().await.map(|q| q.into_parts().0) else {
        panic!("expected traces")
    };
    let span = &batch.resource_spans[0].scope_spans[0].spans[0];
    assert_eq!(
        hex::encode(&span.trace_id),
        "5b8efff798038103d269b633813fc60c"
    );
    assert_eq!(hex::encode(&span.parent_span_id), "eee19b7ec3c1b173");
    assert_eq!(span.start_time_unix_nano, 1_544_712_660_000_000_000);
    assert_eq!(span.kind, 2);
    assert_eq!(
        span.attributes[1].value.as_ref().unwrap().value,
        Some(any_value::Value::IntValue(200))
    );
}

async fn post(
    url: &str,
    content_type: &str,
    encoding: Option<&str>,
    body: Vec<u8>,
) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("content-type", content_type)
        .body(body);
    if let Some(e) = encoding {
        req = req.header("content-encoding", e);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn http_refusals_have_spec_statuses_bodies_and_counters() {
    let s = start(64 << 10, 1).await;
    let url = format!("{}/v1/traces", s.http);

    let resp = post(&url, "application/x-protobuf", None, vec![0x0a, 100, 1]).await;
    assert_eq!(resp.status(), 400);
    let status = RpcStatus::decode(resp.bytes().await.unwrap()).unwrap();
    assert_eq!(status.code, Code::InvalidArgument as i32);
    assert!(
        status.message.contains("invalid protobuf"),
        "{}",
        status.message
    );

    let resp = post(
        &url,
        "application/json",
        None,
        b"{\"resourceSpans\": 5}".to_vec(),
    )
    .await;
    assert_eq!(resp.status(), 400);
    let status: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(status["code"], 3);

    let big = request(vec![spans(Some("a"), 4, 32 << 10)]).encode_to_vec();
    let resp = post(&url, "application/x-protobuf", None, big).await;
    assert_eq!(resp.status(), 413);
    let status = RpcStatus::decode(resp.bytes().await.unwrap()).unwrap();
    assert_eq!(status.code, Code::ResourceExhausted as i32);

    let bomb = gzip(&vec![0u8; 32 << 20]);
    assert!(bomb.len() < 64 << 10);
    let resp = post(&url, "application/x-protobuf", Some("gzip"), bomb).await;
    assert_eq!(resp.status(), 413);

    let resp = post(&url, "text/plain", None, b"hello".to_vec()).await;
    assert_eq!(resp.status(), 415);
    let resp = post(&url, "application/x-protobuf", Some("br"), b"x".to_vec()).await;
    assert_eq!(resp.status(), 415);

    let ok = request(vec![spans(Some("a"), 1, 1)]).encode_to_vec();
    assert_eq!(
        post(&url, "application/x-protobuf", None, ok.clone())
            .await
            .status(),
        200
    );
    let resp = post(&url, "application/x-protobuf", None, ok).await;
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "1");

    let snap = s.metrics.snapshot().requests_rejected;
    assert_eq!(
        (
            snap.malformed,
            snap.too_large,
            snap.unsupported_media_type,
            snap.queue_full
        ),
        (2, 2, 2, 1)
    );
    let mut text = String::new();
    s.metrics.write_prometheus(&mut text);
    assert!(
        text.contains("eastwest_requests_rejected_total{reason=\"too_large\"} 2"),
        "{text}"
    );
    drop(s.rx);
}

#[tokio::test]
async fn cancel_stops_both_servers_and_closes_the_queue() {
    let mut s = start(1 << 20, 4).await;
    let mut client = grpc_client(&s.grpc).await;
    client
        .export(request(vec![spans(Some("a"), 1, 1)]))
        .await
        .unwrap();
    s.cancel.cancel();
    tokio::time::timeout(Duration::from_secs(10), s.task)
        .await
        .expect("servers stop")
        .unwrap()
        .unwrap();
    assert!(
        s.rx.recv().await.is_some(),
        "the accepted batch is still delivered"
    );
    assert!(
        s.rx.recv().await.is_none(),
        "the sender is dropped after shutdown"
    );
    assert!(
        reqwest::get(format!("{}/v1/traces", s.http)).await.is_err(),
        "HTTP listener closed"
    );
}

#[tokio::test]
async fn http_body_over_the_default_limit_is_413_even_when_large_on_the_wire() {
    let s = start(eastwest_collector::otlp::DEFAULT_MAX_BODY_BYTES, 4).await;
    let url = format!("{}/v1/traces", s.http);
    for _ in 0..3 {
        let resp = post(&url, "application/x-protobuf", None, vec![0u8; 17 << 20]).await;
        assert_eq!(resp.status(), 413);
    }
    assert_eq!(s.metrics.snapshot().requests_rejected.too_large, 3);
}

#[tokio::test]
async fn grpc_and_http_logs_services_queue_log_batches() {
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};

    let mut s = start(1 << 20, 8).await;
    let record = LogRecord {
        time_unix_nano: 1_700_000_000_000_000_000,
        body: Some(AnyValue {
            value: Some(any_value::Value::StringValue("a line".into())),
        }),
        ..Default::default()
    };
    let req = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: vec![record.clone(), record],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let mut client = LogsServiceClient::connect(s.grpc.clone()).await.unwrap();
    let resp = client.export(req.clone()).await.unwrap().into_inner();
    assert_eq!(resp.partial_success, None);
    let http = post(
        &format!("{}/v1/logs", s.http),
        "application/x-protobuf",
        None,
        req.encode_to_vec(),
    )
    .await;
    assert_eq!(http.status(), 200);
    for _ in 0..2 {
        let Some(IngestBatch::Logs(batch)) = s.rx.recv().await.map(|q| q.into_parts().0) else {
            panic!("expected a logs batch")
        };
        assert_eq!(batch, req);
    }
    let c = s.metrics.snapshot().log_record_counts;
    assert_eq!((c.received, c.accepted), (4, 4));
}

#[tokio::test]
async fn a_grpc_refusal_is_counted_once_under_its_own_reason() {
    let s = start_with(ReceiverConfig {
        max_records_per_request: 2,
        ..Default::default()
    })
    .await;
    let mut client = grpc_client(&s.grpc).await;
    let err = client
        .export(request(vec![spans(Some("a"), 3, 10)]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    let rejected = s.metrics.snapshot().requests_rejected;
    assert_eq!((rejected.over_limit, rejected.too_large), (1, 0));

    // A compressed export whose inflated room no budget of this size could hold is too
    // large, not retryable.
    let s = start_with(ReceiverConfig {
        max_body_bytes: 1 << 20,
        memory_budget_bytes: 1 << 20,
        max_decoded_bytes_per_request: 1 << 20,
        ..Default::default()
    })
    .await;
    let mut gz = grpc_client(&s.grpc)
        .await
        .send_compressed(CompressionEncoding::Gzip);
    let err = gz
        .export(request(vec![spans(Some("a"), 1, 10)]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    let rejected = s.metrics.snapshot().requests_rejected;
    assert_eq!((rejected.over_limit, rejected.too_large), (1, 0));
}
