//! Baseline bench (prints a table): history write and DataFusion rebuild rate over N calls
//! of Parquet history (default 10M, `EASTWEST_BENCH_ROWS` to change), hot-path lookup cost
//! per call, and heap bytes per learned endpoint at the scale of the Jaeger UI sample graph
//! (1,238 services, 4,271 edges) with many routes per edge.
//!
//! Run: `cargo bench -p eastwest-baseline --bench baseline`

use std::alloc::System;
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use eastwest_baseline::{Baseline, BaselineConfig, HistoryWriter, LookupIndex, rebuild};
use eastwest_model::{Call, Entry, Workload};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const ROUTES_PER_EDGE: usize = 20;
const SEC: i64 = 1_000_000_000;
const T0: i64 = 1_767_571_200 * SEC;

/// (caller, callee) pairs of the Jaeger UI large sample graph, or a synthetic graph of the
/// same size when the dataset is not next to the repo.
fn graph() -> (Vec<(String, String)>, &'static str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(
        "../../shared/datasets/jaeger-ui-dependency-graph-samples/packages/jaeger-ui/src/components/DependencyGraph/sample_data/large.json",
    );
    if let Ok(text) = std::fs::read_to_string(&path) {
        let v: serde_json::Value = serde_json::from_str(&text).expect("large.json is JSON");
        let mut edges: Vec<(String, String)> = v
            .as_array()
            .expect("an array of edges")
            .iter()
            .map(|e| {
                (
                    e["parent"].as_str().unwrap_or_default().to_string(),
                    e["child"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        edges.sort();
        edges.dedup();
        return (edges, "jaeger-ui large.json");
    }
    let edges = (0..4271u64)
        .map(|i| {
            let a = (i * 7919) % 1238;
            let b = (a + 1 + (i * 104_729) % 1237) % 1238;
            (format!("Service{a}"), format!("Service{b}"))
        })
        .collect();
    (edges, "synthetic 1238/4271")
}

fn call(edges: &[(String, String)], i: usize, t: i64) -> Call {
    let (src, dst) = &edges[i % edges.len()];
    let route = (i / edges.len()) % ROUTES_PER_EDGE;
    Call {
        event_time_ns: t,
        source: Workload::new(src.clone()).in_namespace("prod"),
        destination: Workload::new(dst.clone()).in_namespace("prod"),
        method: if route.is_multiple_of(3) {
            "POST"
        } else {
            "GET"
        }
        .into(),
        route: format!("/api/v1/{dst}/resource{route}/{{id}}").into(),
        status: Some(200),
        mtls: Some(true),
        trace_id: format!("{i:032x}").into(),
        span_id: format!("{i:016x}").into(),
        entry: Some(Entry {
            service: "gateway.prod".into(),
            // A function of the endpoint, so every endpoint has exactly one context.
            route: format!("GET /page{}", (i % (edges.len() * ROUTES_PER_EDGE)) % 8).into(),
        }),
        weight: 1.0,
        ..Default::default()
    }
}

fn main() {
    let (edges, source) = graph();
    let services: std::collections::HashSet<&String> =
        edges.iter().flat_map(|(a, b)| [a, b]).collect();
    println!(
        "graph: {source}: {} services, {} edges, {ROUTES_PER_EDGE} routes per edge",
        services.len(),
        edges.len()
    );
    let endpoints = edges.len() * ROUTES_PER_EDGE;

    // Memory: heap bytes of the learned index (the one copy the server holds).
    let config = BaselineConfig {
        window: Duration::from_secs(24 * 3600),
        max_endpoints: 10 * endpoints,
        max_contexts: 10 * endpoints,
        ..Default::default()
    };
    let mut b = Baseline::new(config.clone());
    for i in 0..endpoints {
        let c = call(&edges, i, T0 + i as i64);
        b.advance(c.event_time_ns);
        b.observe(&c);
    }
    let region = Region::new(GLOBAL);
    let index: LookupIndex = b.working().clone();
    let bytes = region.change().bytes_allocated as f64 - region.change().bytes_deallocated as f64;
    let learned = index.endpoint_count();
    let contexts = index.context_count();
    drop(b);

    let lookup = measure_lookups(&index, &edges);

    // History write and rebuild.
    let rows: usize = std::env::var("EASTWEST_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut writer = HistoryWriter::new(dir.path(), Duration::from_secs(365 * 86400), 262_144);
    let start = Instant::now();
    // ~1000 calls/s of event time: 10M rows span ~3 hours of hourly partitions.
    for i in 0..rows {
        writer
            .append(call(&edges, i, T0 + i as i64 * SEC / 1000), true)
            .expect("history write");
    }
    writer.flush().expect("history flush");
    let write_secs = start.elapsed().as_secs_f64();
    let on_disk: u64 = walk_size(&dir.path().join("calls"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let cfg = BaselineConfig {
        window: Duration::from_secs(60),
        ..config
    };
    // Three rebuilds of the same history: the table shows each, as the VM is shared.
    let rebuilds: Vec<_> = (0..3)
        .map(|_| {
            let (rebuilt, stats) = runtime
                .block_on(rebuild(dir.path(), None, None, &cfg))
                .expect("rebuild");
            assert_eq!(stats.rows, rows as u64);
            (rebuilt.endpoint_count(), stats)
        })
        .collect();

    println!();
    println!("| measure | value | target |");
    println!("|---|---|---|");
    println!(
        "| memory per baseline endpoint ({learned} endpoints, {contexts} contexts, {} edges) | {:.0} bytes | ≤ 512 bytes |",
        index.edge_count(),
        bytes / learned as f64
    );
    lookup.print();
    println!(
        "| history write ({rows} calls, {:.0} MiB Parquet) | {:.2} M rows/s | |",
        on_disk as f64 / (1024.0 * 1024.0),
        rows as f64 / write_secs / 1e6
    );
    let rates: Vec<String> = rebuilds
        .iter()
        .map(|(_, stats)| {
            format!(
                "{:.2} ({:.1} s)",
                stats.rows_per_sec() / 1e6,
                stats.elapsed.as_secs_f64()
            )
        })
        .collect();
    println!(
        "| rebuild from Parquet history with DataFusion ({rows} calls → {} endpoints), three runs | {} M rows/s | ≥ 5 M rows/s |",
        rebuilds[0].0,
        rates.join(", ")
    );
}

/// Calls scored together, as one decoded export batch is: built just before they are
/// looked up, so the calls are warm in cache (but building them evicts index lines).
const LOOKUP_BATCH: usize = 1024;
const LOOKUP_CALLS: usize = 100 * LOOKUP_BATCH;

/// What the detector reads per call (`detector/src/findings.rs`): the call's names resolved
/// once, then edge, endpoint, endpoint context and entry count; the edge's context only
/// when the endpoint is not known under the entry, and the source's stats only for a new
/// edge. Returns how many calls were known on all four.
fn lookups(index: &LookupIndex, calls: &[Call]) -> usize {
    let mut known = 0;
    for c in calls {
        let keys = index.call_keys(c);
        let stats = index.call_stats(&keys);
        if stats.edge.is_none() {
            black_box(keys.source.and_then(|s| index.source(s)));
        }
        if stats.endpoint_context.is_none()
            && let (Some(entry), Some(edge)) = (keys.entry, keys.edge)
        {
            black_box(index.edge_context(entry, edge));
        }
        known += usize::from(
            stats.edge.is_some()
                && stats.endpoint.is_some()
                && stats.endpoint_context.is_some()
                && stats.entry_calls.is_some(),
        );
    }
    known
}

struct LookupFigures {
    /// ns per call, all calls built up front (the headline figure; the most stable).
    per_call: f64,
    /// ns per call, each batch built just before its lookups, as a decoded export is.
    per_call_fresh_batches: f64,
    /// ns to resolve a call's names to ids (fresh batches).
    resolve: f64,
    /// ns per lookup kind with resolved keys: edge, edge ctx, endpoint, endpoint ctx, entry,
    /// source.
    per_kind: [f64; 6],
}

impl LookupFigures {
    fn print(&self) {
        println!(
            "| lookup per call (names resolved from the call, then edge + endpoint + endpoint context + entry) | {:.0} ns | ≤ 200 ns |",
            self.per_call
        );
        println!(
            "| ... the same with each batch of {LOOKUP_BATCH} calls built just before its lookups (allocation between batches evicts index lines) | {:.0} ns | |",
            self.per_call_fresh_batches
        );
        println!(
            "| ... of which resolving the call's names to ids | {:.0} ns | |",
            self.resolve
        );
        println!(
            "| ... per lookup with resolved ids: edge, edge ctx, endpoint, endpoint ctx, entry, source | {:.0?} ns | |",
            self.per_kind
        );
    }
}

/// Walks calls over every learned endpoint (stride 7 through the graph, so consecutive
/// calls land on unrelated rows). Best of three rounds each: the first runs on caches
/// cold from building the index.
fn measure_lookups(index: &LookupIndex, edges: &[(String, String)]) -> LookupFigures {
    let batch = |b: usize| -> Vec<Call> {
        (b * LOOKUP_BATCH..(b + 1) * LOOKUP_BATCH)
            .map(|i| call(edges, i * 7, T0))
            .collect()
    };
    let batches = LOOKUP_CALLS / LOOKUP_BATCH;
    let per_call_ns = |d: Duration| d.as_nanos() as f64 / LOOKUP_CALLS as f64;
    let mut per_call_fresh_batches = f64::MAX;
    let mut resolve = f64::MAX;
    for _ in 0..3 {
        let (mut looking, mut resolving) = (Duration::ZERO, Duration::ZERO);
        for b in 0..batches {
            let calls = batch(b);
            let start = Instant::now();
            for c in &calls {
                black_box(index.call_keys(c));
            }
            resolving += start.elapsed();
            let calls = batch(b + batches);
            let start = Instant::now();
            let hits = lookups(index, &calls);
            looking += start.elapsed();
            assert_eq!(black_box(hits), calls.len(), "every call is known");
        }
        per_call_fresh_batches = per_call_fresh_batches.min(per_call_ns(looking));
        resolve = resolve.min(per_call_ns(resolving));
    }

    let calls: Vec<Call> = (0..batches).flat_map(batch).collect();
    let mut per_call = f64::MAX;
    for _ in 0..3 {
        let start = Instant::now();
        assert_eq!(black_box(lookups(index, &calls)), calls.len());
        per_call = per_call.min(per_call_ns(start.elapsed()));
    }

    let resolved: Vec<_> = calls.iter().map(|c| index.call_keys(c)).collect();
    let mut per_kind = [0f64; 6];
    for (kind, figure) in per_kind.iter_mut().enumerate() {
        let start = Instant::now();
        for keys in &resolved {
            let (Some(edge), Some(_), Some(entry), Some(source)) =
                (keys.edge, keys.endpoint, keys.entry, keys.source)
            else {
                continue;
            };
            match kind {
                0 => black_box(index.edge(edge).is_some()),
                1 => black_box(index.edge_context(entry, edge).is_some()),
                2 => black_box(index.call_endpoint(keys).is_some()),
                3 => black_box(index.call_endpoint_context(keys).is_some()),
                4 => black_box(index.entry_calls(entry).is_some()),
                _ => black_box(index.source(source).is_some()),
            };
        }
        *figure = per_call_ns(start.elapsed());
    }
    LookupFigures {
        per_call_fresh_batches,
        per_call,
        resolve,
        per_kind,
    }
}

fn walk_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| {
                    let p = e.path();
                    if p.is_dir() {
                        walk_size(&p)
                    } else {
                        e.metadata().map(|m| m.len()).unwrap_or(0)
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}
