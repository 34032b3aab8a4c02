//! Shapes of hostile export requests and the probes the hostile-client tests share:
//! raw protobuf building, a gRPC export of bytes as they are, RSS from `/proc`,
//! a `/healthz` watcher and a `/metrics` reader.
#![allow(dead_code)]

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

/// A length-delimited protobuf field.
pub fn field(tag: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 10);
    prost::encoding::encode_key(tag, prost::encoding::WireType::LengthDelimited, &mut out);
    prost::encoding::encode_varint(body.len() as u64, &mut out);
    out.extend_from_slice(body);
    out
}

/// 16 MiB of empty `ResourceSpans`: two bytes each on the wire.
pub fn empty_resources() -> Vec<u8> {
    [0x0a, 0x00].repeat(8 << 20)
}

/// One resource with `n` empty attributes and one span: every span lookup used to scan
/// them all.
pub fn attribute_heavy(n: usize) -> Vec<u8> {
    let resource = field(1, &[0x0a, 0x00].repeat(n));
    let span = field(2, &[]);
    let scope = field(2, &span);
    field(1, &[resource, scope].concat())
}

/// `spans` valid server spans of one service, timed now: within every per-request
/// limit, but about 100 MiB once decoded and read, and queued for the pipeline.
pub fn span_heavy(spans: u32) -> Vec<u8> {
    span_heavy_with_seed(spans, 1)
}

/// [`span_heavy`] with trace ids that differ by `seed`.
pub fn span_heavy_with_seed(spans: u32, seed: u8) -> Vec<u8> {
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap() as u64;
    let resource = field(
        1,
        &field(
            1,
            &[field(1, b"service.name"), field(2, &field(1, b"cart"))].concat(),
        ),
    );
    let mut scope = Vec::with_capacity(spans as usize * 64);
    for i in 0..spans {
        let mut span = Vec::with_capacity(64);
        let mut trace_id = [seed; 16];
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

/// Sends pre-encoded request bytes over gRPC as they are; the status code of the answer.
pub async fn grpc_export(channel: tonic::transport::Channel, body: Bytes) -> tonic::Code {
    match eastwest_datasets::export_encoded_traces(channel, body).await {
        Ok(_) => tonic::Code::Ok,
        Err(status) => status.code(),
    }
}

pub async fn http_export(url: &str, body: Vec<u8>, gzipped: bool) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/x-protobuf")
        .body(body);
    if gzipped {
        req = req.header("content-encoding", "gzip");
    }
    req.send().await.unwrap()
}

pub fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Polls `/healthz` every 50 ms and keeps the slowest answer (or failure, as a long one).
///
/// The probe runs on a thread and runtime of its own, as a kubelet's would: the test's
/// runtime is busy building heavy requests synchronously, and a probe task parked behind
/// that work would time the test client instead of the server.
pub fn watch_health(
    api: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Duration> {
    let probe = async move {
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
            let took = if ok {
                t.elapsed()
            } else {
                Duration::from_secs(5)
            };
            slowest = slowest.max(took);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        slowest
    };
    tokio::task::spawn_blocking(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the health probe")
            .block_on(probe)
    })
}

/// The value of one sample line of Prometheus text (`name{labels}` exactly), or 0.
pub fn metric_value(text: &str, sample: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(sample) && l[sample.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}
