//! Scoring cost per call: the engine (per-call detectors, windows, alert book, baseline
//! drift update) on three hours of the synthetic mesh after two hours of learning. Prints a markdown table; the
//! reference row is the bare baseline lookup of the same calls' edges, measured in the
//! same run, so the ratio survives a change of machine.
//!
//!     cargo bench -p eastwest-detector --bench scoring

use std::hint::black_box;
use std::time::Instant;

use eastwest_baseline::{Baseline, EdgeKey};
use eastwest_detector::testmesh::{self, LEARNING_SECS, Rng, SEC, START_NS};
use eastwest_detector::{DetectorConfig, Engine};

/// The allocator the `eastwest` binary uses, so the figures are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let learn = testmesh::normal_traffic(&mut Rng::new(1), START_NS, LEARNING_SECS, 2.0, 0);
    let detect_start = START_NS + LEARNING_SECS * SEC;
    let normal = testmesh::normal_traffic(&mut Rng::new(2), detect_start, 3 * 3600, 2.0, 1 << 50);

    let baseline = eastwest_baseline::BaselineConfig {
        learning_period: std::time::Duration::from_secs(LEARNING_SECS as u64),
        ..Default::default()
    };
    let mut engine = Engine::new(DetectorConfig::default(), Baseline::new(baseline));
    let started = Instant::now();
    for c in &learn {
        black_box(engine.process(c));
    }
    let learn_ns = started.elapsed().as_nanos() as f64 / learn.len() as f64;
    engine.end_learning(detect_start);

    let lookup_ns = {
        let index = engine.baseline().working();
        let keys: Vec<EdgeKey> = normal
            .iter()
            .filter_map(|c| index.call_keys(c).edge)
            .collect();
        let started = Instant::now();
        for k in &keys {
            black_box(index.edge(*k));
        }
        started.elapsed().as_nanos() as f64 / keys.len() as f64
    };

    let mut run = |calls: &[eastwest_model::Call]| {
        let started = Instant::now();
        let mut alerts = 0usize;
        for c in calls {
            alerts += black_box(engine.process(c)).alerts.len();
        }
        (
            started.elapsed().as_nanos() as f64 / calls.len() as f64,
            alerts,
        )
    };
    let (normal_ns, normal_alerts) = run(&normal);

    println!("| phase | calls | ns per call | × bare edge lookup | alerts |");
    println!("|---|---:|---:|---:|---:|");
    let row = |name: &str, n: usize, ns: f64, alerts: Option<usize>| {
        println!(
            "| {name} | {n} | {ns:.0} | {:.1} | {} |",
            ns / lookup_ns,
            alerts.map(|a| a.to_string()).unwrap_or_else(|| "-".into())
        );
    };
    row("learning", learn.len(), learn_ns, None);
    row(
        "detecting, normal traffic",
        normal.len(),
        normal_ns,
        Some(normal_alerts),
    );
    row("bare baseline edge lookup", normal.len(), lookup_ns, None);
}
