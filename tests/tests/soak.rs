//! Soak: a bounded run (about a minute and a half, loopback only) of valid traffic mixed
//! with every hostile shape the receivers and the API must hold against — decode bombs,
//! attribute floods, heavy span floods, malformed bodies, timestamps far from the clock,
//! cross-site and rebinding requests — against the real binary. Asserts that no accepted
//! span is lost (what the clients were told was accepted is what the server counted,
//! and every valid call reached the service graph), that peak RSS stays within the
//! memory budget, that `/healthz` answers within a second throughout, and that each
//! attack injected after learning raises its alert within the latency target. Prints
//! the figures the README quotes.
//!
//! `EASTWEST_SOAK_SECS` sets the length of the mixed phase (default 60).

mod hostile_support;
mod otlp_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use eastwest_datasets::{kv, kv_int};
use hostile_support::*;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use otlp_support::*;
use prost::Message;

const MIB: u64 = 1 << 20;
const BUDGET: u64 = 512 * MIB;
/// Valid traces per request, and requests per second.
const TRACES_PER_REQUEST: u64 = 50;
const REQUESTS_PER_SEC: u64 = 10;
/// An injected attack must raise its alert within this (event-time release: the
/// allowed lateness plus pairing, at this traffic rate).
const ALERT_LATENCY_TARGET: Duration = Duration::from_secs(5);

fn now_ns() -> u64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap() as u64
}

fn resource_spans(service: &str, spans: Vec<Span>) -> ResourceSpans {
    ResourceSpans {
        resource: Some(Resource {
            attributes: vec![
                kv("service.name", service),
                kv("k8s.namespace.name", "shop"),
            ],
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            spans,
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// `web` (entry) calls `dst` on `route`: a root server span, its client span and the
/// callee's server span, ending now.
fn trace(trace_no: u64, dst: &str, route: &str) -> Vec<(String, Span)> {
    let end = now_ns();
    let start = end - 3_000_000;
    let mut trace_id = [0u8; 16];
    trace_id[..8].copy_from_slice(&trace_no.to_be_bytes());
    trace_id[8] = 0xee;
    let span = |id: u8, parent: Option<u8>, kind: i32, attrs: Vec<KeyValue>| Span {
        trace_id: trace_id.to_vec(),
        span_id: vec![id; 8],
        parent_span_id: parent.map(|p| vec![p; 8]).unwrap_or_default(),
        name: format!("GET {route}"),
        kind,
        start_time_unix_nano: start,
        end_time_unix_nano: end,
        attributes: attrs,
        ..Default::default()
    };
    let http = |route: &str| {
        vec![
            kv("http.request.method", "GET"),
            kv("http.route", route),
            kv_int("http.response.status_code", 200),
        ]
    };
    vec![
        ("web".into(), span(1, None, 2, http("/"))),
        ("web".into(), span(2, Some(1), 3, http(route))),
        (dst.into(), span(3, Some(2), 2, http(route))),
    ]
}

fn request(traces: Vec<Vec<(String, Span)>>) -> ExportTraceServiceRequest {
    let mut by_service: Vec<(String, Vec<Span>)> = Vec::new();
    for (service, span) in traces.into_iter().flatten() {
        match by_service.iter_mut().find(|(s, _)| *s == service) {
            Some((_, spans)) => spans.push(span),
            None => by_service.push((service, vec![span])),
        }
    }
    ExportTraceServiceRequest {
        resource_spans: by_service
            .into_iter()
            .map(|(s, spans)| resource_spans(&s, spans))
            .collect(),
    }
}

/// What the clients were told: spans accepted, and valid `web → cart` calls sent.
#[derive(Default)]
struct Ledger {
    accepted_spans: AtomicU64,
    valid_calls: AtomicU64,
    valid_retries: AtomicU64,
    hostile_sent: AtomicU64,
}

/// Sends one valid request over gRPC, retrying (as an exporter does) while the server
/// says UNAVAILABLE.
async fn send_valid(
    channel: &tonic::transport::Channel,
    req: &ExportTraceServiceRequest,
    ledger: &Ledger,
) {
    let spans: u64 = req
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len() as u64)
        .sum();
    let body = Bytes::from(req.encode_to_vec());
    for _ in 0..50 {
        match grpc_export(channel.clone(), body.clone()).await {
            tonic::Code::Ok => {
                ledger.accepted_spans.fetch_add(spans, Ordering::Relaxed);
                return;
            }
            tonic::Code::Unavailable => {
                ledger.valid_retries.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            other => panic!("a valid request was refused: {other:?}"),
        }
    }
    panic!("a valid request was refused as retryable 50 times");
}

/// `web → cart` traffic at a steady rate until `stop`.
fn valid_traffic(
    channel: tonic::transport::Channel,
    ledger: Arc<Ledger>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(1000 / REQUESTS_PER_SEC));
        let mut trace_no = 0u64;
        while !stop.load(Ordering::Relaxed) {
            tick.tick().await;
            let traces = (0..TRACES_PER_REQUEST)
                .map(|_| {
                    trace_no += 1;
                    trace(trace_no, "cart", "/cart/{id}")
                })
                .collect();
            send_valid(&channel, &request(traces), &ledger).await;
            ledger
                .valid_calls
                .fetch_add(TRACES_PER_REQUEST, Ordering::Relaxed);
        }
    })
}

/// Every hostile shape in turn, one a second, each checked for its refusal.
fn hostile_traffic(
    server: (
        std::net::SocketAddr,
        std::net::SocketAddr,
        std::net::SocketAddr,
    ),
    channel: tonic::transport::Channel,
    ledger: Arc<Ledger>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    let (http, api) = (server.1, server.2);
    tokio::spawn(async move {
        let traces_url = format!("http://{http}/v1/traces");
        let (bomb, attrs) =
            tokio::task::spawn_blocking(|| (gzip(&empty_resources()), attribute_heavy(1_000_000)))
                .await
                .unwrap();
        let client = reqwest::Client::new();
        let mut round = 0u8;
        while !stop.load(Ordering::Relaxed) {
            round = round.wrapping_add(1);
            match round % 7 {
                0 => assert_eq!(
                    http_export(&traces_url, bomb.clone(), true).await.status(),
                    413
                ),
                1 => assert_eq!(
                    grpc_export(channel.clone(), Bytes::from(attrs.clone())).await,
                    tonic::Code::ResourceExhausted
                ),
                2 => {
                    // Heavy but within the limits: accepted, or refused as retryable.
                    // Built off the runtime: it is seconds of CPU in a debug build.
                    let heavy = tokio::task::spawn_blocking(move || {
                        gzip(&span_heavy_with_seed(100_000, round))
                    })
                    .await
                    .unwrap();
                    let r = http_export(&traces_url, heavy, true).await;
                    match r.status().as_u16() {
                        200 => {
                            ledger.accepted_spans.fetch_add(100_000, Ordering::Relaxed);
                        }
                        503 => assert!(r.headers().contains_key("retry-after")),
                        other => panic!("heavy request: HTTP {other}"),
                    }
                }
                3 => assert_eq!(
                    http_export(&traces_url, b"\x0a\xff\xff\xff\xff\x0f".to_vec(), false)
                        .await
                        .status(),
                    400
                ),
                4 => {
                    // A span dated in the year 2200 next to a valid one: only it is refused.
                    let mut req = request(vec![trace(
                        u64::MAX - u64::from(round),
                        "cart",
                        "/cart/{id}",
                    )]);
                    for rs in &mut req.resource_spans {
                        for s in &mut rs.scope_spans[0].spans {
                            s.start_time_unix_nano = 7_258_118_400_000_000_000;
                            s.end_time_unix_nano = 7_258_118_400_000_000_001;
                        }
                    }
                    let r = http_export(&traces_url, req.encode_to_vec(), false).await;
                    assert_eq!(r.status(), 200, "partial success");
                }
                5 => {
                    let r = client
                        .post(format!("http://{api}/api/v1/baseline/detect"))
                        .header("content-type", "text/plain")
                        .header("origin", "https://evil.example")
                        .body("x")
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 403);
                }
                _ => {
                    let r = client
                        .get(format!("http://{api}/api/v1/alerts"))
                        .header("host", "rebind.example")
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 421);
                }
            }
            ledger.hostile_sent.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(1000)).await;
        }
    })
}

async fn alerts_text(api: std::net::SocketAddr) -> String {
    reqwest::get(format!("http://{api}/api/v1/alerts?limit=1000"))
        .await
        .and_then(|r| r.error_for_status())
        .map(|r| r.text())
        .unwrap()
        .await
        .unwrap_or_default()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn valid_and_hostile_traffic_together_lose_nothing_and_stay_bounded() -> anyhow::Result<()> {
    let mixed_secs: u64 = std::env::var("EASTWEST_SOAK_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let data_dir = tempfile::tempdir()?;
    let config = data_dir.path().join("eastwest.toml");
    std::fs::write(&config, format!("[otlp]\nmemory_budget_bytes = {BUDGET}\n"))?;
    let mut server = serve_on_free_ports(
        data_dir.path(),
        &[
            "--config",
            config.to_str().unwrap(),
            "--learning-period",
            "1h",
        ],
    )
    .await?;
    let pid = server.child.0.id();
    let base_kib = proc_status_kib(pid, "VmRSS:");
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", server.grpc))?
        .connect()
        .await?;
    let ledger = Arc::new(Ledger::default());
    let stop = Arc::new(AtomicBool::new(false));
    let health = watch_health(server.api, stop.clone());
    let valid = valid_traffic(channel.clone(), ledger.clone(), stop.clone());

    // Learn the normal traffic, then end learning the way the dashboard does.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let r = reqwest::Client::new()
        .post(format!("http://{}/api/v1/baseline/detect", server.api))
        .header("x-eastwest-request", "1")
        .send()
        .await?;
    assert!(r.status().is_success(), "ending learning: {}", r.status());

    let hostile = hostile_traffic(
        (server.grpc, server.http, server.api),
        channel.clone(),
        ledger.clone(),
        stop.clone(),
    );
    // Attacks: web calls a service it never called, every few seconds.
    let mut latencies = Vec::new();
    let mixed_until = Instant::now() + Duration::from_secs(mixed_secs);
    let mut attack = 0u64;
    while Instant::now() < mixed_until {
        attack += 1;
        let target = format!("vault-{attack}");
        let req = request(vec![trace(1 << 40 | attack, &target, "/admin/keys")]);
        let sent = Instant::now();
        send_valid(&channel, &req, &ledger).await;
        loop {
            if alerts_text(server.api)
                .await
                .contains(&format!("\"{target}\""))
            {
                latencies.push(sent.elapsed());
                break;
            }
            assert!(
                sent.elapsed() < Duration::from_secs(30),
                "no alert for the call to {target}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_secs(4)).await;
    }
    stop.store(true, Ordering::Relaxed);
    valid.await?;
    hostile.await?;
    let slowest_health = health.await?;
    let peak_kib = proc_status_kib(pid, "VmHWM:");

    // In = out: what the clients were told was accepted is what the server counted, and
    // once the last calls are released every valid call is on the service graph.
    let metrics_url = format!("http://{}/metrics", server.api);
    let accepted = ledger.accepted_spans.load(Ordering::Relaxed);
    let valid_calls = ledger.valid_calls.load(Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(30);
    let (server_accepted, graph_calls) = loop {
        let text = reqwest::get(&metrics_url).await?.text().await?;
        let server_accepted = metric_value(&text, "eastwest_spans_total{outcome=\"accepted\"}");
        let graph_calls = metric_value(
            &text,
            "traces_service_graph_request_total{client=\"web.shop\",server=\"cart.shop\",connection_type=\"\"}",
        );
        if graph_calls >= valid_calls || Instant::now() > deadline {
            break (server_accepted, graph_calls);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    latencies.sort();
    let (p50, p99) = (percentile(&latencies, 0.5), percentile(&latencies, 0.99));
    eprintln!(
        "soak: {mixed_secs} s mixed; {valid_calls} valid calls ({} retried requests), {} hostile \
         requests; spans accepted {accepted} (server counted {server_accepted}); \
         web→cart on the graph {graph_calls}; RSS base {} MiB, peak {} MiB (budget {} MiB); \
         slowest /healthz {slowest_health:?}; alert latency over {} attacks p50 {p50:?} p99 {p99:?}",
        ledger.valid_retries.load(Ordering::Relaxed),
        ledger.hostile_sent.load(Ordering::Relaxed),
        base_kib / 1024,
        peak_kib / 1024,
        BUDGET / MIB,
        latencies.len(),
    );
    assert_eq!(server_accepted, accepted, "accepted spans = spans counted");
    assert_eq!(
        graph_calls, valid_calls,
        "every valid call reached the graph"
    );
    assert!(
        peak_kib <= base_kib + (BUDGET + 128 * MIB) / 1024,
        "peak RSS {peak_kib} KiB"
    );
    assert!(
        slowest_health < Duration::from_secs(1),
        "/healthz took {slowest_health:?}"
    );
    assert!(
        p99 <= ALERT_LATENCY_TARGET,
        "alert latency p99 {p99:?} over {ALERT_LATENCY_TARGET:?}"
    );
    stop_gracefully(&mut server.child)?;
    Ok(())
}
