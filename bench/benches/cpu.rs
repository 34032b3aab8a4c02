//! CPU per span of the real path (prints a table): the release binary's `serve` receives a
//! generated Online Boutique stream over OTLP gRPC as fast as it takes it — receivers,
//! admission, pairing, event-time order, engine, alert store and Parquet history, on its
//! default config — and its CPU time (every thread, from `/proc/PID/task/*/schedstat`) is
//! divided by the spans it accepted. In the same run, this process decodes the same
//! bytes with `prost` on one thread, which is the reference. The server's threads are
//! listed by name, so the table says where the CPU goes.
//!
//! Run: `cargo build --release --bin eastwest && cargo bench -p eastwest-bench --bench cpu`

mod bench_support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use bench_support::{generate, release_bin, serve};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use prost::Message;

/// Nanoseconds on CPU of one thread (`/proc/.../schedstat`, first field).
fn schedstat(path: &Path) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// CPU nanoseconds of each thread of `pid`, summed by thread name.
fn cpu_by_thread(pid: u32) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for task in tasks.filter_map(Result::ok) {
        let dir = task.path();
        let name = std::fs::read_to_string(dir.join("comm"))
            .unwrap_or_default()
            .trim()
            .to_string();
        // Worker threads are numbered; group them.
        let name = name
            .trim_end_matches(|c: char| c.is_ascii_digit() || c == '-')
            .to_string();
        *out.entry(name).or_insert(0) += schedstat(&dir.join("schedstat"));
    }
    out
}

async fn stats(api: u16) -> serde_json::Value {
    reqwest::get(format!("http://127.0.0.1:{api}/api/v1/stats"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let bin = release_bin();
    let work = tempfile::tempdir().unwrap();
    let scenario = work.path().join("scenario");
    generate(&bin, "20m", "20m", &scenario);
    let mut requests: Vec<ExportTraceServiceRequest> =
        eastwest_datasets::read_otlp_file(&scenario.join("traces.pb")).unwrap();
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap();
    eastwest_datasets::retime_requests(&mut requests, &mut [], now);
    let bodies: Vec<Vec<u8>> = requests.iter().map(|r| r.encode_to_vec()).collect();
    let spans: u64 = requests.iter().map(eastwest_datasets::span_count).sum();
    let bytes: usize = bodies.iter().map(Vec::len).sum();

    // Reference: decode the same bytes, one thread, three passes.
    let thread_cpu = || schedstat(Path::new("/proc/thread-self/schedstat"));
    let decode_ns = {
        let mut best = u64::MAX;
        for _ in 0..3 {
            let before = thread_cpu();
            for b in &bodies {
                std::hint::black_box(ExportTraceServiceRequest::decode(b.as_slice()).unwrap());
            }
            best = best.min(thread_cpu() - before);
        }
        best
    };

    let server = serve(
        &bin,
        &work.path().join("data"),
        ["--learning-period", "20m"],
    )
    .await;
    let (grpc, api, pid) = (server.grpc, server.api, server.process.0.id());
    let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{grpc}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = TraceServiceClient::new(channel);
    let idle = cpu_by_thread(pid);
    let started = Instant::now();
    for r in &requests {
        let mut backoff = Duration::from_millis(20);
        while let Err(status) = client.export(r.clone()).await {
            assert_eq!(status.code(), tonic::Code::Unavailable, "{status}");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    }
    // Until the pipeline has caught up: every span accepted, and the call count still.
    let mut last_calls = u64::MAX;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let s = stats(api).await;
        let calls = s["calls"].as_u64().unwrap_or(0);
        if s["spans"].as_u64() == Some(spans) && calls == last_calls {
            break;
        }
        last_calls = calls;
    }
    let elapsed = started.elapsed();
    let busy = cpu_by_thread(pid);
    let per_thread: Vec<(String, u64)> = busy
        .iter()
        .map(|(name, ns)| (name.clone(), ns - idle.get(name).copied().unwrap_or(0)))
        .filter(|(_, ns)| *ns > 0)
        .collect();
    let server_ns: u64 = per_thread.iter().map(|(_, ns)| ns).sum();
    let per_span = |ns: u64| ns as f64 / spans as f64;

    println!(
        "{spans} spans ({} bytes/span) in {} requests; server caught up in {:.1} s",
        bytes as u64 / spans.max(1),
        requests.len(),
        elapsed.as_secs_f64()
    );
    println!();
    println!("| path | CPU per span | × raw decode |");
    println!("|---|---:|---:|");
    println!(
        "| raw `prost` decode of the same bytes (one thread) | {:.2} µs | 1.00 |",
        per_span(decode_ns) / 1e3
    );
    println!(
        "| `eastwest serve`, all threads | {:.2} µs | {:.2} |",
        per_span(server_ns) / 1e3,
        server_ns as f64 / decode_ns as f64
    );
    let mut per_thread = per_thread;
    per_thread.sort_by_key(|(_, ns)| std::cmp::Reverse(*ns));
    for (name, ns) in per_thread {
        println!(
            "| … thread `{name}` | {:.2} µs | {:.2} |",
            per_span(ns) / 1e3,
            ns as f64 / decode_ns as f64
        );
    }
}
