//! CPU per span of the real path (prints a table): the release binary's `serve` receives a
//! generated Online Boutique stream over OTLP gRPC (requests encoded beforehand, sent as
//! bytes) as fast as it takes it — receivers, admission, pairing, event-time order,
//! engine, alert store and Parquet history, on its default config — and its CPU time
//! (every thread, from `/proc/PID/task/*/schedstat`) is divided by the spans it accepted.
//! The reference is this process decoding the same bytes with `prost` on one thread,
//! segment by segment, just before it sends each segment, with the allocator the server
//! runs with (decoding is mostly allocation: under the system allocator it takes about
//! 1.6 times as long, which would flatter the ratio). The server's threads are listed by
//! name, so the table says where the CPU goes.
//!
//! `EASTWEST_BENCH_OTHER_RECEIVER` adds a yardstick: the command line of another OTLP gRPC
//! receiver (`{port}` stands for the port it is to listen on), for instance an agent that
//! receives and drops. It is sent every segment too, right after `serve`, and its CPU
//! time per span is a row of the same table.
//!
//! Run: `cargo build --release --bin eastwest && cargo bench -p eastwest-bench --bench cpu`

mod bench_support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bench_support::{Guard, connect, free_port, generate, release_bin, serve};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

/// The `eastwest` binary's allocator, so that the reference decodes as the server would.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Nanoseconds on CPU of one thread (`/proc/.../schedstat`, first field).
fn schedstat(path: &Path) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Each thread of `pid` by thread id: its name (numbered workers grouped under one) and
/// its CPU nanoseconds so far.
fn cpu_by_thread(pid: u32) -> BTreeMap<String, (String, u64)> {
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
        let tid = task.file_name().to_string_lossy().into_owned();
        out.insert(tid, (name, schedstat(&dir.join("schedstat"))));
    }
    out
}

/// CPU nanoseconds each thread name used between two [`cpu_by_thread`] readings, added
/// to `totals`; returns their sum. A thread started in between counts from zero (one that
/// ended in between is gone from the second reading: the blocking pool's threads end
/// only after seconds idle).
fn add_cpu_used(
    before: &BTreeMap<String, (String, u64)>,
    after: BTreeMap<String, (String, u64)>,
    totals: &mut BTreeMap<String, u64>,
) -> u64 {
    let mut sum = 0;
    for (tid, (name, ns)) in after {
        let used = ns.saturating_sub(before.get(&tid).map_or(0, |(_, ns)| *ns));
        sum += used;
        *totals.entry(name).or_insert(0) += used;
    }
    sum
}

/// Segments the stream is measured in (`EASTWEST_BENCH_SEGMENTS`).
const DEFAULT_SEGMENTS: usize = 12;

/// Waits until the server has accepted `spans` and its call count stands still: the
/// pipeline has processed what it was sent.
async fn catch_up(api: u16, spans: u64) {
    let mut last_calls = u64::MAX;
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let s = stats(api).await;
        let calls = s["calls"].as_u64().unwrap_or(0);
        if s["spans"].as_u64() == Some(spans) && calls == last_calls {
            return;
        }
        last_calls = calls;
    }
}

async fn stats(api: u16) -> serde_json::Value {
    reqwest::get(format!("http://127.0.0.1:{api}/api/v1/stats"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Sends each request of a segment, retrying those refused as retryable.
async fn send_segment(channel: &tonic::transport::Channel, segment: &[bytes::Bytes]) {
    for body in segment {
        let mut backoff = Duration::from_millis(20);
        while let Err(status) =
            eastwest_datasets::export_encoded_traces(channel.clone(), body.clone()).await
        {
            assert_eq!(status.code(), tonic::Code::Unavailable, "{status}");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    }
}

/// The receiver `EASTWEST_BENCH_OTHER_RECEIVER` names, started and connected to.
struct OtherReceiver {
    label: String,
    process: Guard,
    channel: tonic::transport::Channel,
}

impl OtherReceiver {
    async fn start() -> Option<Self> {
        let command = std::env::var("EASTWEST_BENCH_OTHER_RECEIVER").ok()?;
        let port = free_port().to_string();
        let mut args = command
            .split_whitespace()
            .map(|arg| arg.replace("{port}", &port));
        let program = args.next().expect("EASTWEST_BENCH_OTHER_RECEIVER is empty");
        let process = Guard(
            Command::new(&program)
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {program}: {e}")),
        );
        let port = port.parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let channel = loop {
            match connect(port).await {
                Ok(channel) => break channel,
                Err(e) => assert!(Instant::now() < deadline, "{program} did not listen: {e}"),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let label = Path::new(&program)
            .file_name()
            .map_or_else(|| program.clone(), |n| n.to_string_lossy().into_owned());
        Some(Self {
            label,
            process,
            channel,
        })
    }

    /// CPU nanoseconds it used to take `segment`: from before the first request until
    /// its CPU time stands still (it may export or drop after answering).
    async fn take(&self, segment: &[bytes::Bytes]) -> u64 {
        let pid = self.process.0.id();
        let total = || cpu_by_thread(pid).values().map(|(_, ns)| ns).sum::<u64>();
        let before = total();
        send_segment(&self.channel, segment).await;
        let mut last = total();
        loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let now = total();
            if now.saturating_sub(last) < 1_000_000 {
                return now.saturating_sub(before);
            }
            last = now;
        }
    }
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
    // Encoded once: the client sends these bytes as they are (as a collector forwards a
    // backlog), so that the load generator's own encoding does not compete with the
    // server for the same two cores and caches.
    let bodies: Vec<bytes::Bytes> = requests.iter().map(|r| r.encode_to_vec().into()).collect();
    let span_counts: Vec<u64> = requests.iter().map(eastwest_datasets::span_count).collect();
    let spans: u64 = span_counts.iter().sum();
    let request_count = requests.len();
    drop(requests);
    let bytes: usize = bodies.iter().map(bytes::Bytes::len).sum();

    let server = serve(
        &bin,
        &work.path().join("data"),
        ["--learning-period", "20m"],
    )
    .await;
    let (grpc, api, pid) = (server.grpc, server.api, server.process.0.id());
    let channel = connect(grpc).await.unwrap();
    let other = OtherReceiver::start().await;
    let mut other_ns = 0;

    // The stream goes in segments, each first decoded here (the reference) and then sent
    // to the server, which is given time to catch up before the next one: both figures of
    // a segment are measured within seconds of each other, so the machine's drift over
    // minutes moves both alike, and neither runs while the other does.
    let segments = std::env::var("EASTWEST_BENCH_SEGMENTS")
        .ok()
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(DEFAULT_SEGMENTS)
        .clamp(1, bodies.len().max(1));
    let thread_cpu = || schedstat(Path::new("/proc/thread-self/schedstat"));
    let mut decode_ns = 0;
    let mut server_by_thread: BTreeMap<String, u64> = BTreeMap::new();
    let mut segment_ratios = Vec::new();
    let mut server_reading = cpu_by_thread(pid);
    let mut sent_spans = 0;
    let started = Instant::now();
    let segment_len = bodies.len().div_ceil(segments);
    for (segment, counts) in bodies
        .chunks(segment_len)
        .zip(span_counts.chunks(segment_len))
    {
        let before = thread_cpu();
        for b in segment {
            std::hint::black_box(ExportTraceServiceRequest::decode(b.as_ref()).unwrap());
        }
        let segment_decode = thread_cpu() - before;
        decode_ns += segment_decode;

        sent_spans += counts.iter().sum::<u64>();
        send_segment(&channel, segment).await;
        catch_up(api, sent_spans).await;
        // Readings follow one another without a gap, so whatever the server does while
        // this bench decodes or feeds the other receiver counts too.
        let reading = cpu_by_thread(pid);
        let segment_server = add_cpu_used(&server_reading, reading.clone(), &mut server_by_thread);
        server_reading = reading;
        segment_ratios.push(segment_server as f64 / segment_decode as f64);
        if let Some(other) = &other {
            other_ns += other.take(segment).await;
        }
    }
    assert_eq!(sent_spans, spans);
    let elapsed = started.elapsed();
    let per_thread: Vec<(String, u64)> = server_by_thread
        .into_iter()
        .filter(|(_, ns)| *ns > 0)
        .collect();
    let server_ns: u64 = per_thread.iter().map(|(_, ns)| ns).sum();
    let per_span = |ns: u64| ns as f64 / spans as f64;
    segment_ratios.sort_by(f64::total_cmp);

    println!(
        "{spans} spans ({} bytes/span) in {} requests, {} segments; {:.1} s",
        bytes as u64 / spans.max(1),
        request_count,
        segment_ratios.len(),
        elapsed.as_secs_f64()
    );
    println!(
        "× raw decode by segment: min {:.2}, median {:.2}, max {:.2}",
        segment_ratios[0],
        segment_ratios[segment_ratios.len() / 2],
        segment_ratios[segment_ratios.len() - 1]
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
    if let Some(other) = &other {
        println!(
            "| `{}` (EASTWEST_BENCH_OTHER_RECEIVER), all threads | {:.2} µs | {:.2} |",
            other.label,
            per_span(other_ns) / 1e3,
            other_ns as f64 / decode_ns as f64
        );
    }
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
