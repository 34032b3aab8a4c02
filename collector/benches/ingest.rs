//! Ingest throughput on a realistic payload (Istio sidecar spans, 512 per export
//! request), all in one run so the numbers are comparable:
//!   (a) raw `prost` decode of the request bytes,
//!   (b) decode + `SpanNormalizer` (pairing and normalisation into calls),
//!   (c) end-to-end: pre-encoded requests sent over loopback gRPC to the real
//!       `Receivers`, through the bounded channel, into `CallExtractor`.
//! Run: `cargo bench -p eastwest-collector --bench ingest` (prints a table). With
//! `EASTWEST_PROFILE_EXTRACT=1` it only loops stage (b') for 10 s, and with
//! `EASTWEST_PROFILE_E2E=1` it only runs stage (c), for `perf record`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use eastwest_collector::{
    CallExtractor, CollectorMetrics, IngestBatch, NormalizerConfig, ReceiverConfig, Receivers,
    SpanNormalizer,
};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, span::SpanKind};
use prost::Message;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The allocator the `eastwest` binary uses, so the figures are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SPANS_PER_REQUEST: usize = 512;
const REQUESTS: usize = 200;
/// End-to-end sends every request once (distinct traces, as live traffic has), so it
/// needs enough of them to run for a couple of seconds.
const E2E_REQUESTS: usize = 500;
/// Watermark lag used when advancing, as `eastwest serve` does (allowed lateness).
const LATENESS_NS: i64 = 2_000_000_000;
const E2E_RUNS: usize = 3;
const MIN_MEASURE: Duration = Duration::from_secs(2);

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

/// One Istio sidecar span as Envoy's Zipkin/OTel tracer reports it.
fn sidecar_span(
    trace: u64,
    span_id: u64,
    parent: u64,
    outbound: bool,
    (from, to, port, path): (&str, &str, u16, &str),
    start_ns: u64,
) -> Span {
    let (kind, cluster, service) = if outbound {
        (
            SpanKind::Client,
            format!("outbound|{port}|v1|{to}.bookinfo.svc.cluster.local"),
            from,
        )
    } else {
        (SpanKind::Server, format!("inbound|{port}||"), to)
    };
    Span {
        trace_id: [trace.to_be_bytes(), (trace ^ 0x5a5a).to_be_bytes()].concat(),
        span_id: span_id.to_be_bytes().to_vec(),
        parent_span_id: if parent == 0 {
            Vec::new()
        } else {
            parent.to_be_bytes().to_vec()
        },
        name: format!("{to}.bookinfo.svc.cluster.local:{port}{path}"),
        kind: kind as i32,
        start_time_unix_nano: start_ns,
        end_time_unix_nano: start_ns + 3_000_000,
        attributes: vec![
            kv(
                "node_id",
                &format!(
                    "sidecar~10.1.{}.{}~{service}-v1-6f9c8d7b5-x2k4p.bookinfo~bookinfo.svc.cluster.local",
                    trace % 200,
                    span_id % 200
                ),
            ),
            kv("zone", "us-east1-b"),
            kv(
                "guid:x-request-id",
                &format!("{:08x}-4b1c-9a2e-{:012x}", trace, span_id),
            ),
            kv("http.url", &format!("http://{to}:{port}{path}")),
            kv("http.method", "GET"),
            kv("downstream_cluster", "-"),
            kv(
                "user_agent",
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36",
            ),
            kv("http.protocol", "HTTP/1.1"),
            kv(
                "peer.address",
                &format!("10.1.{}.{}", span_id % 250, trace % 250),
            ),
            kv("request_size", "0"),
            kv("response_size", "1432"),
            kv("response_flags", "-"),
            kv("http.status_code", "200"),
            kv("upstream_cluster", &cluster),
            kv("upstream_cluster.name", &cluster),
            kv("istio.canonical_revision", "v1"),
            kv("istio.canonical_service", service),
            kv("istio.mesh_id", "cluster.local"),
            kv("istio.namespace", "bookinfo"),
            kv("component", "proxy"),
        ],
        ..Default::default()
    }
}

const HOPS: [(&str, &str, u16, &str); 4] = [
    ("istio-ingressgateway", "productpage", 9080, "/productpage"),
    ("productpage", "details", 9080, "/details/0"),
    ("productpage", "reviews", 9080, "/reviews/0"),
    ("reviews", "ratings", 9080, "/ratings/0"),
];

/// An export request of `SPANS_PER_REQUEST` spans: whole bookinfo requests (4 hops,
/// client + server span each), grouped by the sidecar that reported them.
fn request(index: usize) -> ExportTraceServiceRequest {
    let mut by_service: Vec<(String, Vec<Span>)> = Vec::new();
    let traces = SPANS_PER_REQUEST / (HOPS.len() * 2);
    for t in 0..traces {
        let trace = (index * traces + t) as u64 + 1;
        let base = 1_700_000_000_000_000_000 + trace * 10_000_000;
        for (h, hop) in HOPS.iter().enumerate() {
            let client_id = trace * 100 + h as u64 * 2 + 1;
            let server_parent = client_id;
            for (outbound, sid, parent, service) in [
                (true, client_id, 0, hop.0),
                (false, client_id + 1, server_parent, hop.1),
            ] {
                let span = sidecar_span(
                    trace,
                    sid,
                    parent,
                    outbound,
                    *hop,
                    base + h as u64 * 1_000_000,
                );
                match by_service.iter_mut().find(|(s, _)| s == service) {
                    Some((_, spans)) => spans.push(span),
                    None => by_service.push((service.to_string(), vec![span])),
                }
            }
        }
    }
    let resource_spans = by_service
        .into_iter()
        .map(|(service, spans)| ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", &format!("{service}.bookinfo"))],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        })
        .collect();
    ExportTraceServiceRequest { resource_spans }
}

/// Runs `round` until at least MIN_MEASURE has passed; returns spans per second.
fn measure(mut round: impl FnMut() -> usize) -> f64 {
    round(); // warm-up
    let start = Instant::now();
    let mut spans = 0;
    while start.elapsed() < MIN_MEASURE {
        spans += round();
    }
    spans as f64 / start.elapsed().as_secs_f64()
}

fn decode_all(payloads: &[Vec<u8>]) -> usize {
    payloads
        .iter()
        .map(|p| ExportTraceServiceRequest::decode(p.as_slice()).unwrap())
        .map(|r| span_total(&r))
        .sum()
}

fn span_total(r: &ExportTraceServiceRequest) -> usize {
    r.resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .map(|s| s.spans.len())
        .sum()
}

fn max_start(r: &ExportTraceServiceRequest) -> Option<i64> {
    r.resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .flat_map(|s| &s.spans)
        .map(|s| s.start_time_unix_nano as i64)
        .max()
}

fn decode_and_normalize(payloads: &[Vec<u8>]) -> usize {
    let mut normalizer = SpanNormalizer::new(NormalizerConfig::default());
    let mut calls = 0;
    let mut spans = 0;
    for p in payloads {
        let req = ExportTraceServiceRequest::decode(p.as_slice()).unwrap();
        spans += span_total(&req);
        calls += normalizer.push(&req).len();
        if let Some(max) = max_start(&req) {
            calls += normalizer.advance(max - LATENESS_NS).len();
        }
    }
    calls += normalizer.flush().len();
    assert!(calls > 0, "normalizer produced no calls");
    spans
}

/// Sends every payload once over loopback gRPC; spans/s until the pipeline drained.
/// Like (b) but through `CallExtractor` (normaliser + access-log dedup + counters):
/// separates pipeline-glue cost from transport cost.
fn decode_and_extract(payloads: &[Vec<u8>]) -> usize {
    let mut extractor = CallExtractor::new(NormalizerConfig::default(), Arc::default());
    let mut spans = 0;
    for p in payloads {
        let req = ExportTraceServiceRequest::decode(p.as_slice()).unwrap();
        spans += span_total(&req);
        extractor.process(IngestBatch::Traces(req));
        extractor.advance(extractor.max_event_time_ns() - LATENESS_NS);
    }
    extractor.flush();
    spans
}

/// (spans/s, share of the wall time the single pipeline consumer was busy).
async fn end_to_end(payloads: Arc<Vec<bytes::Bytes>>, extract: bool) -> (f64, f64) {
    let config = ReceiverConfig {
        grpc_addr: "127.0.0.1:0".parse().unwrap(),
        http_addr: "127.0.0.1:0".parse().unwrap(),
        ..Default::default()
    };
    let receivers = Receivers::bind(&config).await.unwrap();
    let url = format!("http://{}", receivers.grpc_local_addr());
    let (tx, mut rx) = mpsc::channel(config.queue_capacity);
    let metrics = Arc::new(CollectorMetrics::default());
    let cancel = CancellationToken::new();
    let server = tokio::spawn(receivers.serve(tx, metrics.clone(), cancel.clone()));
    let consumer = {
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let mut extractor = CallExtractor::new(NormalizerConfig::default(), metrics);
            let mut calls = 0;
            let mut busy = Duration::ZERO;
            while let Some(batch) = rx.recv().await {
                if !extract {
                    calls += 1; // transport only: count batches, extract nothing
                    continue;
                }
                let t = Instant::now();
                calls += extractor.process(batch.into_parts().0).len();
                let watermark = extractor.max_event_time_ns() - LATENESS_NS;
                calls += extractor.advance(watermark).len();
                busy += t.elapsed();
            }
            let t = Instant::now();
            let calls = calls + extractor.flush().len();
            (calls, busy + t.elapsed())
        })
    };
    let channel = tonic::transport::Endpoint::from_shared(url)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let send_round = |channel: tonic::transport::Channel, payloads: Arc<Vec<bytes::Bytes>>| async move {
        // A few requests in flight, as an exporter with several workers would have.
        const IN_FLIGHT: usize = 4;
        let mut tasks = Vec::new();
        for worker in 0..IN_FLIGHT {
            let mut grpc = tonic::client::Grpc::new(channel.clone());
            let payloads = payloads.clone();
            tasks.push(tokio::spawn(async move {
                let path =
                    http::uri::PathAndQuery::from_static(eastwest_datasets::TRACES_EXPORT_PATH);
                for p in payloads.iter().skip(worker).step_by(IN_FLIGHT) {
                    grpc.ready().await.unwrap();
                    grpc.unary(
                        tonic::Request::new(p.clone()),
                        path.clone(),
                        eastwest_datasets::RawCodec,
                    )
                    .await
                    .unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    };
    let spans = payloads.len() * SPANS_PER_REQUEST;
    let start = Instant::now();
    send_round(channel.clone(), payloads.clone()).await;
    cancel.cancel();
    server.await.unwrap().unwrap();
    let (calls, busy) = consumer.await.unwrap();
    // Stop the clock only when the pipeline has drained everything that was sent.
    let elapsed = start.elapsed().as_secs_f64();
    assert!(calls > 0, "no calls came out end to end");
    assert_eq!(metrics.snapshot().span_counts.accepted as usize, spans);
    (spans as f64 / elapsed, busy.as_secs_f64() / elapsed)
}

/// The runtime the end-to-end stage runs in, and its requests (distinct traces each).
fn end_to_end_setup() -> (tokio::runtime::Runtime, Arc<Vec<bytes::Bytes>>) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let payloads = (0..E2E_REQUESTS)
        .map(|i| request(i).encode_to_vec().into())
        .collect();
    (runtime, Arc::new(payloads))
}

fn main() {
    let payloads: Vec<Vec<u8>> = (0..REQUESTS).map(|i| request(i).encode_to_vec()).collect();
    let bytes: usize = payloads.iter().map(Vec::len).sum();
    println!(
        "payload: {REQUESTS} export requests x {SPANS_PER_REQUEST} Istio sidecar spans, {:.0} bytes/span",
        bytes as f64 / (REQUESTS * SPANS_PER_REQUEST) as f64
    );
    if std::env::var_os("EASTWEST_PROFILE_EXTRACT").is_some() {
        // For `perf record`: only the single-threaded extraction stage, for a while.
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            decode_and_extract(&payloads);
        }
        return;
    }
    if std::env::var_os("EASTWEST_PROFILE_E2E").is_some() {
        // For `perf record`: only the end-to-end stage.
        let (runtime, e2e_payloads) = end_to_end_setup();
        let (e2e, _) = runtime.block_on(end_to_end(e2e_payloads, true));
        println!("end-to-end {e2e:.0} spans/s");
        return;
    }
    let raw = measure(|| decode_all(&payloads));
    let normalized = measure(|| decode_and_normalize(&payloads));
    let extracted = measure(|| decode_and_extract(&payloads));
    let (runtime, e2e_payloads) = end_to_end_setup();
    let (transport, _) = runtime.block_on(end_to_end(e2e_payloads.clone(), false));
    // Three fresh runs: the two cores are shared by client, receivers and pipeline, so
    // single runs vary; the table shows the median.
    let mut runs: Vec<(f64, f64)> = (0..E2E_RUNS)
        .map(|_| runtime.block_on(end_to_end(e2e_payloads.clone(), true)))
        .collect();
    runs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (e2e, consumer_busy) = runs[E2E_RUNS / 2];
    println!();
    println!("| stage | spans/s | vs raw decode |");
    println!("|---|---:|---:|");
    for (name, rate) in [
        ("(a) raw prost decode", raw),
        ("(b) decode + SpanNormalizer", normalized),
        (
            "(b') decode + CallExtractor (normaliser + dedup)",
            extracted,
        ),
        (
            "(c0) gRPC ingest into the queue only (no extraction)",
            transport,
        ),
        ("(c) end-to-end gRPC ingest → CallExtractor", e2e),
    ] {
        println!("| {name} | {rate:.0} | {:.0}% |", 100.0 * rate / raw);
    }
    println!();
    println!(
        "end-to-end / raw decode = {:.2} (target >= 0.50; median of {E2E_RUNS} runs: {}); the pipeline consumer was busy {:.0}% of the median run",
        e2e / raw,
        runs.iter()
            .map(|(rate, _)| format!("{:.2}", rate / raw))
            .collect::<Vec<_>>()
            .join(", "),
        100.0 * consumer_busy
    );
}
