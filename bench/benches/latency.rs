//! Detection latency under load (prints a table): the real release binary receives a
//! generated Online Boutique stream over OTLP gRPC at a steady span rate (default 100k
//! spans/s, `EASTWEST_BENCH_SPANS_PER_SEC`); every 100 ms a request calling an admin route
//! is slipped in, and the time from sending it to its alert arriving on the SSE stream
//! (emitted after the alert is committed to the store) is recorded.
//!
//! Run: `cargo build --release --bin eastwest && cargo bench -p eastwest-bench --bench latency`

mod bench_support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bench_support::{connect, generate, release_bin, serve};
use eastwest_datasets::kv;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, span::SpanKind};
use parking_lot::Mutex;
use prost::Message;

const INJECT_EVERY: Duration = Duration::from_millis(100);
const LEARNING: &str = "20m";

/// Route segment from `i` in letters g..z (no digits or hex runs, so it is not templated).
fn letters(mut i: usize) -> String {
    let mut s = String::new();
    loop {
        s.push((b'g' + (i % 20) as u8) as char);
        i /= 20;
        if i == 0 {
            return s;
        }
    }
}

/// Destinations of the admin calls, in turn (the collector caps distinct routes per edge).
const TARGETS: [(&str, u16); 6] = [
    ("cartservice", 7070),
    ("paymentservice", 50051),
    ("emailservice", 8080),
    ("shippingservice", 50051),
    ("currencyservice", 7000),
    ("adservice", 9555),
];

/// frontend (root SERVER) → a target's `GET /admin/<tag>` as Istio sidecar spans.
fn admin_request(i: usize, t: u64) -> (ExportTraceServiceRequest, String) {
    let route = format!("/admin/{}", letters(i));
    let (target, port) = TARGETS[i % TARGETS.len()];
    let mut trace = vec![0xA5u8; 16];
    trace[..8].copy_from_slice(&(i as u64 + 1).to_be_bytes());
    let host = format!("{target}.boutique.svc.cluster.local");
    let span = |id: u64, parent: u64, kind: SpanKind, name: &str, attrs: Vec<KeyValue>| Span {
        trace_id: trace.clone(),
        span_id: id.to_be_bytes().to_vec(),
        parent_span_id: if parent == 0 {
            vec![]
        } else {
            parent.to_be_bytes().to_vec()
        },
        name: name.into(),
        kind: kind as i32,
        start_time_unix_nano: t,
        end_time_unix_nano: t + 1_000_000,
        attributes: attrs,
        ..Default::default()
    };
    let base = 0x7000_0000_0000_0000u64 + (i as u64) * 4;
    let common = vec![
        kv("http.method", "GET"),
        kv("http.url", &format!("http://{host}:{port}{route}")),
        kv("http.status_code", "200"),
        kv(
            "source.principal",
            "spiffe://cluster.local/ns/boutique/sa/frontend",
        ),
        kv(
            "destination.principal",
            "spiffe://cluster.local/ns/boutique/sa/cartservice",
        ),
    ];
    let mut client = common.clone();
    client.push(kv("upstream_cluster", &format!("outbound|{port}||{host}")));
    let mut server = common;
    server.push(kv("upstream_cluster", &format!("inbound|{port}||")));
    let resource = |svc: &str| Resource {
        attributes: vec![
            kv("service.name", &format!("{svc}.boutique")),
            kv("istio.canonical_service", svc),
            kv("istio.namespace", "boutique"),
        ],
        ..Default::default()
    };
    let rs = |svc: &str, spans: Vec<Span>| ResourceSpans {
        resource: Some(resource(svc)),
        scope_spans: vec![ScopeSpans {
            spans,
            ..Default::default()
        }],
        ..Default::default()
    };
    let root = span(
        base,
        0,
        SpanKind::Server,
        "GET /cart",
        vec![
            kv("http.method", "GET"),
            kv("http.url", "http://frontend.boutique/cart"),
            kv("http.status_code", "200"),
            kv("upstream_cluster", "inbound|8080||"),
        ],
    );
    let name = format!("{host}:{port}{route}");
    let c = span(base + 1, base, SpanKind::Client, &name, client);
    let s = span(base + 2, base + 1, SpanKind::Server, &name, server);
    (
        ExportTraceServiceRequest {
            resource_spans: vec![rs("frontend", vec![root, c]), rs(target, vec![s])],
        },
        route,
    )
}

fn read_requests(path: &std::path::Path) -> Vec<ExportTraceServiceRequest> {
    let bytes = std::fs::read(path).expect("traces.pb");
    let mut buf = bytes.as_slice();
    let mut out = Vec::new();
    while !buf.is_empty() {
        out.push(ExportTraceServiceRequest::decode_length_delimited(&mut buf).expect("valid pb"));
    }
    out
}

fn spans(r: &ExportTraceServiceRequest) -> usize {
    r.resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .map(|s| s.spans.len())
        .sum()
}

fn max_start(r: &ExportTraceServiceRequest) -> u64 {
    r.resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .flat_map(|s| &s.spans)
        .map(|s| s.start_time_unix_nano)
        .max()
        .unwrap_or(0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let rate: f64 = std::env::var("EASTWEST_BENCH_SPANS_PER_SEC")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000.0);
    let bin = release_bin();
    let work = tempfile::tempdir().unwrap();
    let scenario = work.path().join("scenario");
    generate(&bin, LEARNING, "10m", &scenario);
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(scenario.join("scenario.json")).unwrap()).unwrap();
    let attack_start = chrono::DateTime::parse_from_rfc3339(meta["attack_start"].as_str().unwrap())
        .unwrap()
        .timestamp_nanos_opt()
        .unwrap() as u64;
    let mut requests = read_requests(&scenario.join("traces.pb"));
    // The receivers refuse records far from their clock: move the scenario by whole days
    // to end before now, as `replay` does.
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap();
    let shift = eastwest_datasets::retime_requests(&mut requests, &mut [], now);
    let attack_start = (attack_start as i64 + shift) as u64;
    let split = requests
        .iter()
        .position(|r| max_start(r) >= attack_start)
        .unwrap_or(requests.len());
    let (learning, detecting) = requests.split_at(split);

    let config = work.path().join("bench.toml");
    std::fs::write(
        &config,
        "[detector]\nalert_budget_per_namespace = 100000\n[otlp]\nqueue_capacity = 4096\n",
    )
    .unwrap();
    let server = serve(
        &bin,
        &work.path().join("data"),
        [
            "--learning-period".as_ref(),
            LEARNING.as_ref(),
            "--config".as_ref(),
            config.as_os_str(),
        ],
    )
    .await;
    let (grpc, api) = (server.grpc, server.api);

    // SSE: route of each alert → when it arrived.
    let arrived: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    {
        let arrived = arrived.clone();
        let mut resp = reqwest::get(format!("http://127.0.0.1:{api}/api/v1/alerts/stream"))
            .await
            .unwrap();
        tokio::spawn(async move {
            let mut pending = String::new();
            while let Ok(Some(chunk)) = resp.chunk().await {
                let now = Instant::now();
                pending.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = pending.find('\n') {
                    let line: String = pending.drain(..=end).collect();
                    if let Some(data) = line.trim_end().strip_prefix("data:")
                        && let Ok(v) = serde_json::from_str::<serde_json::Value>(data.trim())
                        && v["kind"] == "sensitive_endpoint"
                        && let Some(route) = v["route"].as_str()
                    {
                        arrived.lock().entry(route.to_string()).or_insert(now);
                    }
                }
            }
        });
    }

    let channel = connect(grpc).await.unwrap();
    let mut client = TraceServiceClient::new(channel).max_decoding_message_size(64 << 20);

    // Learning traffic as fast as the server takes it.
    let started = Instant::now();
    let mut learned_spans = 0;
    for r in learning {
        learned_spans += spans(r);
        client.export(r.clone()).await.expect("learning export");
    }
    let learn_secs = started.elapsed().as_secs_f64();

    // Detection traffic paced at `rate`, with admin calls slipped in.
    let mut sent: Vec<(String, Instant)> = Vec::new();
    let started = Instant::now();
    let mut spans_sent = 0usize;
    let mut next_inject = started;
    for r in detecting {
        let due = started + Duration::from_secs_f64(spans_sent as f64 / rate);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            tokio::time::sleep(wait).await;
        }
        if Instant::now() >= next_inject {
            let (req, route) = admin_request(sent.len(), max_start(r));
            let at = Instant::now();
            client.export(req).await.expect("inject export");
            sent.push((route, at));
            next_inject += INJECT_EVERY;
        }
        spans_sent += spans(r);
        client.export(r.clone()).await.expect("detect export");
    }
    let send_secs = started.elapsed().as_secs_f64();
    // The last admin calls wait for the watermark: once input stops, for idle advance
    // (3 s) and the pairs still pending.
    tokio::time::sleep(Duration::from_secs(12)).await;

    let arrived = arrived.lock();
    let mut latencies: Vec<Duration> = sent
        .iter()
        .filter_map(|(route, at)| arrived.get(route).map(|t| t.saturating_duration_since(*at)))
        .collect();
    latencies.sort();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p).ceil() as usize).saturating_sub(1))
            .copied()
            .unwrap_or_default()
    };
    println!(
        "learning: {learned_spans} spans in {learn_secs:.1} s ({:.0} spans/s, unpaced)",
        learned_spans as f64 / learn_secs
    );
    println!();
    println!("| measure | value | target |");
    println!("|---|---|---|");
    println!(
        "| offered load while detecting | {:.0} spans/s over {send_secs:.1} s (target rate {rate:.0}) | 100k spans/s |",
        spans_sent as f64 / send_secs
    );
    println!(
        "| admin calls detected | {}/{} | all |",
        latencies.len(),
        sent.len()
    );
    println!(
        "| span arrival → alert stored, p50 | {:.1} ms | |",
        pct(0.50).as_secs_f64() * 1e3
    );
    println!(
        "| span arrival → alert stored, p99 | {:.1} ms | ≤ 1000 ms |",
        pct(0.99).as_secs_f64() * 1e3
    );
    println!(
        "| span arrival → alert stored, max | {:.1} ms | |",
        pct(1.0).as_secs_f64() * 1e3
    );
}
