//! Requests built to cost far more after decoding than on the wire, against the real
//! binary over HTTP and gRPC: the server stays up, its peak RSS stays within the memory
//! budget (plus what it held before), `/healthz` answers within a second throughout,
//! every refusal has its OTLP status and is counted, and normal traffic still gets in.

mod hostile_support;
mod otlp_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use hostile_support::*;
use otlp_support::*;
use prost::Message;

const MIB: u64 = 1 << 20;
/// What the test configures (smaller than the default so the test is quick).
const BUDGET: u64 = 256 * MIB;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn amplified_and_attribute_heavy_requests_stay_within_the_budget() -> anyhow::Result<()> {
    let data_dir = tempfile::tempdir()?;
    let config = data_dir.path().join("eastwest.toml");
    std::fs::write(
        &config,
        format!(
            "[otlp]\nmemory_budget_bytes = {BUDGET}\nmax_decoded_bytes_per_request = {}\n",
            128 * MIB
        ),
    )?;
    // The budget bounds what requests hold, and the peak below checks that. mimalloc
    // keeps freed memory mapped for a while (1 s by default) so a steady load reuses it;
    // after a burst of refused requests that is their freed bodies, resident until the
    // delay passes, a figure the allocator sets and the budget cannot. Purging at once
    // makes RSS follow what is live.
    let mut server = serve_on_free_ports_with_env(
        data_dir.path(),
        &["--config", config.to_str().unwrap()],
        &[("MIMALLOC_PURGE_DELAY", "0")],
    )
    .await?;
    let pid = server.child.0.id();
    let base_kib = proc_status_kib(pid, "VmRSS:");
    let traces_url = format!("http://{}/v1/traces", server.http);
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", server.grpc))?
        .connect()
        .await?;
    let stop = Arc::new(AtomicBool::new(false));
    let health = watch_health(server.api, stop.clone());

    // Over a per-request limit: refused before decoding, not retryable.
    let bomb = gzip(&empty_resources());
    assert!(bomb.len() < 64 << 10, "the bomb is small on the wire");
    let r = http_export(&traces_url, bomb.clone(), true).await;
    assert_eq!(r.status(), 413);
    let heavy_attrs = attribute_heavy(4_000_000);
    let r = http_export(&traces_url, gzip(&heavy_attrs), true).await;
    assert_eq!(r.status(), 413);
    assert!(r.text().await?.contains("attributes"));
    for body in [empty_resources(), heavy_attrs] {
        assert_eq!(
            grpc_export(channel.clone(), Bytes::from(body)).await,
            tonic::Code::ResourceExhausted
        );
    }

    // Within the limits but heavy once decoded (190k spans, about 100 MiB each):
    // many at once over both edges. Each is accepted or refused as retryable, never
    // allowed to push the process past its budget.
    let heavy = span_heavy(190_000);
    assert!(heavy.len() < 16 << 20);
    let gz_heavy = gzip(&heavy);
    let (accepted, retryable) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut tasks = Vec::new();
    for i in 0..24 {
        let (accepted, retryable) = (accepted.clone(), retryable.clone());
        if i % 2 == 0 {
            let (url, body) = (traces_url.clone(), gz_heavy.clone());
            tasks.push(tokio::spawn(async move {
                let r = http_export(&url, body, true).await;
                match r.status().as_u16() {
                    200 => accepted.fetch_add(1, Ordering::Relaxed),
                    503 => {
                        assert!(r.headers().contains_key("retry-after"));
                        retryable.fetch_add(1, Ordering::Relaxed)
                    }
                    other => panic!("unexpected HTTP status {other}"),
                };
            }));
        } else {
            let (channel, body) = (channel.clone(), Bytes::from(heavy.clone()));
            tasks.push(tokio::spawn(async move {
                match grpc_export(channel, body).await {
                    tonic::Code::Ok => accepted.fetch_add(1, Ordering::Relaxed),
                    tonic::Code::Unavailable => retryable.fetch_add(1, Ordering::Relaxed),
                    other => panic!("unexpected gRPC code {other:?}"),
                };
            }));
        }
    }
    for t in tasks {
        t.await?;
    }
    let (accepted, retryable) = (
        accepted.load(Ordering::Relaxed),
        retryable.load(Ordering::Relaxed),
    );
    assert_eq!(accepted + retryable, 24);
    assert!(accepted > 0, "some heavy requests fit in the budget");
    assert!(retryable > 0, "the budget held the rest back");

    stop.store(true, Ordering::Relaxed);
    let slowest_health = health.await?;
    let peak_kib = proc_status_kib(pid, "VmHWM:");
    assert!(
        server.child.0.try_wait()?.is_none(),
        "the server is still running"
    );
    eprintln!(
        "heavy requests: {accepted} accepted, {retryable} refused as retryable; RSS base {base_kib} KiB, peak {peak_kib} KiB; slowest /healthz {slowest_health:?}"
    );
    let slack = 96 * MIB / 1024; // allocator and transport buffers outside the budget
    assert!(
        peak_kib <= base_kib + BUDGET / 1024 + slack,
        "peak RSS {peak_kib} KiB over base {base_kib} KiB + budget {} KiB + slack",
        BUDGET / 1024
    );
    assert!(
        slowest_health < Duration::from_secs(1),
        "/healthz took {slowest_health:?}"
    );

    // Every refusal is counted by reason.
    let metrics = reqwest::get(format!("http://{}/metrics", server.api))
        .await?
        .text()
        .await?;
    let count = |reason: &str| {
        metric_value(
            &metrics,
            &format!("eastwest_requests_rejected_total{{reason=\"{reason}\"}}"),
        )
    };
    assert_eq!(count("over_limit"), 4, "{metrics}");
    assert_eq!(count("memory_budget"), retryable);

    // Normal traffic still gets in.
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap() as u64;
    let req = opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest {
        resource_spans: vec![opentelemetry_proto::tonic::trace::v1::ResourceSpans {
            resource: Some(opentelemetry_proto::tonic::resource::v1::Resource {
                attributes: vec![opentelemetry_proto::tonic::common::v1::KeyValue {
                    key: "service.name".into(),
                    value: Some(opentelemetry_proto::tonic::common::v1::AnyValue {
                        value: Some(
                            opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(
                                "cart".into(),
                            ),
                        ),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            scope_spans: vec![opentelemetry_proto::tonic::trace::v1::ScopeSpans {
                spans: vec![opentelemetry_proto::tonic::trace::v1::Span {
                    trace_id: vec![7; 16],
                    span_id: vec![7; 8],
                    name: "GET /x".into(),
                    kind: 2,
                    start_time_unix_nano: now,
                    end_time_unix_nano: now + 1_000_000,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let r = http_export(&traces_url, req.encode_to_vec(), false).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        grpc_export(channel, Bytes::from(req.encode_to_vec())).await,
        tonic::Code::Ok
    );
    stop_gracefully(&mut server.child)?;
    Ok(())
}
