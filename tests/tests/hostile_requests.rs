//! Requests built to cost far more after decoding than on the wire, against the real
//! binary over HTTP and gRPC: the server stays up, its peak RSS stays within the memory
//! budget (plus what it held before), `/healthz` answers within a second throughout,
//! every refusal has its OTLP status and is counted, and normal traffic still gets in.

mod otlp_support;

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes};
use otlp_support::*;
use prost::Message;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

const TRACES_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
const MIB: u64 = 1 << 20;
/// What the test configures (smaller than the default so the test is quick).
const BUDGET: u64 = 256 * MIB;

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

/// A length-delimited protobuf field.
fn field(tag: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 10);
    prost::encoding::encode_key(tag, prost::encoding::WireType::LengthDelimited, &mut out);
    prost::encoding::encode_varint(body.len() as u64, &mut out);
    out.extend_from_slice(body);
    out
}

/// 16 MiB of empty `ResourceSpans`: two bytes each on the wire.
fn empty_resources() -> Vec<u8> {
    [0x0a, 0x00].repeat(8 << 20)
}

/// One resource with `n` empty attributes and one span: every span lookup used to scan
/// them all.
fn attribute_heavy(n: usize) -> Vec<u8> {
    let resource = field(1, &[0x0a, 0x00].repeat(n));
    let span = field(2, &[]);
    let scope = field(2, &span);
    field(1, &[resource, scope].concat())
}

/// `spans` valid server spans of one service, timed now: within every per-request
/// limit, but about 100 MiB once decoded and read, and queued for the pipeline.
fn span_heavy(spans: u32) -> Vec<u8> {
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap() as u64;
    let resource = field(
        1,
        &field(1, &[field(1, b"service.name"), field(2, &field(1, b"cart"))].concat()),
    );
    let mut scope = Vec::with_capacity(spans as usize * 64);
    for i in 0..spans {
        let mut span = Vec::with_capacity(64);
        let mut trace_id = [1u8; 16];
        trace_id[..4].copy_from_slice(&i.to_be_bytes());
        span.extend(field(1, &trace_id));
        span.extend(field(2, &[(i % 251) as u8 + 1; 8]));
        span.extend([0x30, 0x02]); // kind = SERVER
        span.push(0x39); // start_time_unix_nano, fixed64
        span.extend(now.to_le_bytes());
        span.push(0x41); // end_time_unix_nano, fixed64
        span.extend((now + 1_000_000).to_le_bytes());
        scope.extend(field(2, &span));
    }
    field(1, &[resource, field(2, &scope)].concat())
}

/// Sends pre-encoded request bytes over gRPC as they are.
#[derive(Clone, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }
    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = tonic::Status;
    fn encode(&mut self, item: Bytes, buf: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        buf.put(item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = tonic::Status;
    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, tonic::Status> {
        Ok(Some(buf.copy_to_bytes(buf.remaining())))
    }
}

async fn grpc_export(channel: tonic::transport::Channel, body: Bytes) -> tonic::Code {
    let mut grpc = tonic::client::Grpc::new(channel).max_encoding_message_size(64 << 20);
    if grpc.ready().await.is_err() {
        return tonic::Code::Unavailable;
    }
    let path = http::uri::PathAndQuery::from_static(TRACES_PATH);
    match grpc
        .unary(tonic::Request::new(body), path, RawCodec)
        .await
    {
        Ok(_) => tonic::Code::Ok,
        Err(status) => status.code(),
    }
}

async fn http_export(url: &str, body: Vec<u8>, gzipped: bool) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/x-protobuf")
        .body(body);
    if gzipped {
        req = req.header("content-encoding", "gzip");
    }
    req.send().await.unwrap()
}

fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Polls `/healthz` every 50 ms and keeps the slowest answer (or failure, as a long one).
fn watch_health(api: std::net::SocketAddr, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<Duration> {
    tokio::spawn(async move {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let mut slowest = Duration::ZERO;
        while !stop.load(Ordering::Relaxed) {
            let t = Instant::now();
            let ok = client
                .get(format!("http://{api}/healthz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            let took = if ok { t.elapsed() } else { Duration::from_secs(5) };
            slowest = slowest.max(took);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        slowest
    })
}

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
    let mut server = serve_on_free_ports(
        data_dir.path(),
        &["--config", config.to_str().unwrap()],
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
    let (accepted, retryable) = (accepted.load(Ordering::Relaxed), retryable.load(Ordering::Relaxed));
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
    let count = |reason: &str| -> u64 {
        metrics
            .lines()
            .find(|l| l.starts_with(&format!("eastwest_requests_rejected_total{{reason=\"{reason}\"}}")))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
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
