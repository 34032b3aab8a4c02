//! Replay throughput to a local counting OTLP gRPC receiver (target ≥ 200k spans/s).
//! Prints a table; `cargo bench -p eastwest-datasets --bench replay`.

use std::sync::atomic::Ordering;
use std::time::Duration;

use eastwest_datasets::{
    GenOptions, Pace, ReplayOptions, generate, replay, spawn_counting_receiver,
};

/// The allocator the `eastwest` binary (and so `eastwest replay`) uses.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = GenOptions {
        learning: Duration::from_secs(3600),
        attack: Duration::from_secs(600),
        rate_per_sec: 5.0,
        ..Default::default()
    };
    let summary = generate("benign-surge", &opts, dir.path()).expect("generate");
    println!(
        "{:<28} {:>10} {:>10} {:>14}",
        "run", "spans", "seconds", "spans/s"
    );
    rt.block_on(async {
        let (addr, counts) = spawn_counting_receiver().await.expect("receiver");
        for run in 1..=3 {
            let ro = ReplayOptions {
                endpoint: format!("http://{addr}"),
                pace: Pace::Unlimited,
                progress: false,
                // The sender's own ceiling: order does not matter to a counting receiver.
                in_flight: 8,
                ..Default::default()
            };
            let report = replay(&[dir.path().join("traces.pb")], ro)
                .await
                .expect("replay");
            assert_eq!(report.spans, summary.meta.spans);
            println!(
                "{:<28} {:>10} {:>10.3} {:>14.0}",
                format!("grpc unlimited #{run}"),
                report.spans,
                report.elapsed.as_secs_f64(),
                report.spans_per_sec()
            );
        }
        println!(
            "receiver counted {} spans",
            counts.spans.load(Ordering::Relaxed)
        );
    });
}
