//! `baseline rebuild`: relearn the tables from the Parquet call history with DataFusion
//! aggregations, giving the same tables the online learner built from the same learned
//! calls. Equal as long as no cardinality cap overflowed and nothing aged out mid-way
//! (the online learner ages out at every window close, the rebuild once at the end).

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

use datafusion::arrow::array::{Array, Float64Array, Int64Array, RecordBatch};
use datafusion::arrow::datatypes::DataType;
use datafusion::prelude::SessionContext;
use eastwest_model::Entry;

use crate::BaselineError;
use crate::index::{
    ContextStats, EdgeKey, EdgeStats, EndpointKey, EndpointStats, LookupIndex, WindowHistory,
};
use crate::learner::BaselineConfig;
use crate::query::{session, string_column, typed_column};

/// What a rebuild read and how long it took.
#[derive(Debug, Clone)]
pub struct RebuildStats {
    pub rows: u64,
    pub elapsed: Duration,
    pub first_ns: Option<i64>,
    pub last_ns: Option<i64>,
}

impl RebuildStats {
    pub fn rows_per_sec(&self) -> f64 {
        self.rows as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Rebuilds from learned calls with event time in `[since, until)` (unbounded when `None`).
pub async fn rebuild(
    data_dir: &Path,
    since_ns: Option<i64>,
    until_ns: Option<i64>,
    config: &BaselineConfig,
) -> Result<(LookupIndex, RebuildStats), BaselineError> {
    let started = Instant::now();
    let ctx = session(data_dir).await?;
    let width = (config.window.as_nanos() as i64).max(1);
    let mut filter = String::from("learned");
    if let Some(s) = since_ns {
        filter.push_str(&format!(" AND CAST(time AS BIGINT) >= {s}"));
    }
    if let Some(u) = until_ns {
        filter.push_str(&format!(" AND CAST(time AS BIGINT) < {u}"));
    }
    // One scan of the history into memory; every aggregate below reads the cache.
    let cached = ctx
        .sql(&format!(
            "SELECT source, destination, method, route, entry_service, entry_route, \
             source_principal, mtls, error, weight, CAST(time AS BIGINT) AS t, \
             CAST(time AS BIGINT) / {width} AS w FROM calls WHERE {filter}"
        ))
        .await?
        .cache()
        .await?;
    ctx.register_table("c", cached.into_view())?;
    let rows = scalar_i64(&ctx, "SELECT count(*) FROM c")
        .await?
        .unwrap_or(0) as u64;
    let first_ns = scalar_i64(&ctx, "SELECT min(t) FROM c").await?;
    let last_ns = scalar_i64(&ctx, "SELECT max(t) FROM c").await?;
    let mut index = LookupIndex::default();
    if let Some(last) = last_ns {
        aggregate(&ctx, &mut index, last / width, config.max_window_history).await?;
        index.age_out(last.saturating_sub(config.retention.as_nanos() as i64));
    }
    Ok((
        index,
        RebuildStats {
            rows,
            elapsed: started.elapsed(),
            first_ns,
            last_ns,
        },
    ))
}

const W: &str = "CASE WHEN error THEN weight ELSE 0.0 END";
const MTLS: &str = "CASE WHEN mtls THEN weight ELSE 0.0 END";
const PLAIN: &str = "CASE WHEN NOT mtls THEN weight ELSE 0.0 END";

async fn aggregate(
    ctx: &SessionContext,
    index: &mut LookupIndex,
    current_window: i64,
    cap: usize,
) -> Result<(), BaselineError> {
    for b in run(ctx, &format!(
        "SELECT source, destination, min(t), max(t), sum(weight), sum({W}), sum({MTLS}), sum({PLAIN}) \
         FROM c GROUP BY source, destination"
    ))
    .await?
    {
        let (s, d) = (string_column(&b, 0)?, string_column(&b, 1)?);
        let (first, last) = (i64s(&b, 2)?, i64s(&b, 3)?);
        let (calls, errors, mtls, plain) = (f64s(&b, 4)?, f64s(&b, 5)?, f64s(&b, 6)?, f64s(&b, 7)?);
        for i in 0..b.num_rows() {
            let edge = edge(s.value(i), d.value(i));
            index
                .sources
                .entry(edge.source.clone())
                .or_default()
                .callees
                .insert(edge.destination.clone());
            index.edges.insert(
                edge,
                EdgeStats {
                    first_seen_ns: first.value(i),
                    last_seen_ns: last.value(i),
                    calls: calls.value(i),
                    errors: errors.value(i),
                    mtls_calls: mtls.value(i),
                    plaintext_calls: plain.value(i),
                },
            );
        }
    }
    for b in run(
        ctx,
        &format!(
            "SELECT source, destination, method, route, min(t), max(t), sum(weight), sum({W}) \
         FROM c GROUP BY source, destination, method, route"
        ),
    )
    .await?
    {
        let keys = endpoint_keys(&b, 0)?;
        let (first, last, calls, errors) = (i64s(&b, 4)?, i64s(&b, 5)?, f64s(&b, 6)?, f64s(&b, 7)?);
        for (i, k) in keys.into_iter().enumerate() {
            *index
                .edge_endpoint_counts
                .entry(k.edge.clone())
                .or_default() += 1;
            index.endpoints.insert(
                k,
                EndpointStats {
                    first_seen_ns: first.value(i),
                    last_seen_ns: last.value(i),
                    calls: calls.value(i),
                    errors: errors.value(i),
                },
            );
        }
    }
    for b in run(
        ctx,
        "SELECT entry_service, entry_route, source, destination, min(t), max(t), sum(weight) \
         FROM c WHERE entry_service IS NOT NULL AND entry_route IS NOT NULL \
         GROUP BY entry_service, entry_route, source, destination",
    )
    .await?
    {
        let entries = entries(&b)?;
        let (s, d) = (string_column(&b, 2)?, string_column(&b, 3)?);
        let stats = context_stats(&b, 4)?;
        for (i, (e, st)) in entries.into_iter().zip(stats).enumerate() {
            index
                .edge_contexts
                .insert((e, edge(s.value(i), d.value(i))), st);
        }
    }
    for b in run(ctx,
        "SELECT entry_service, entry_route, source, destination, method, route, min(t), max(t), sum(weight) \
         FROM c WHERE entry_service IS NOT NULL AND entry_route IS NOT NULL \
         GROUP BY entry_service, entry_route, source, destination, method, route",
    )
    .await?
    {
        let entries = entries(&b)?;
        let keys = endpoint_keys(&b, 2)?;
        let stats = context_stats(&b, 6)?;
        for ((e, k), st) in entries.into_iter().zip(keys).zip(stats) {
            index.endpoint_contexts.insert((e, k), st);
        }
    }
    for b in run(ctx,
        "SELECT entry_service, entry_route, sum(weight) FROM c \
         WHERE entry_service IS NOT NULL AND entry_route IS NOT NULL GROUP BY entry_service, entry_route",
    )
    .await?
    {
        let calls = f64s(&b, 2)?;
        for (i, e) in entries(&b)?.into_iter().enumerate() {
            index.entries.insert(e, calls.value(i));
        }
    }
    for b in run(ctx, &format!(
        "SELECT source, min(t), max(t), sum(weight), sum({MTLS}), sum({PLAIN}), min(w) FROM c GROUP BY source"
    ))
    .await?
    {
        let s = string_column(&b, 0)?;
        let (first, last, calls) = (i64s(&b, 1)?, i64s(&b, 2)?, f64s(&b, 3)?);
        let (mtls, plain, first_w) = (f64s(&b, 4)?, f64s(&b, 5)?, i64s(&b, 6)?);
        for i in 0..b.num_rows() {
            let src = index.sources.entry(s.value(i).to_owned()).or_default();
            src.first_seen_ns = first.value(i);
            src.last_seen_ns = last.value(i);
            src.calls = calls.value(i);
            // Every window closed since the source's first one counts, idle ones too.
            let observed = (current_window - first_w.value(i)).max(0) as u64;
            src.fan_out.windows_observed = observed;
            src.endpoint_fan_out.windows_observed = observed;
            let id = index.identities.entry(s.value(i).to_owned()).or_default();
            id.mtls_calls = mtls.value(i);
            id.plaintext_calls = plain.value(i);
        }
    }
    for b in run(
        ctx,
        "SELECT source, source_principal, sum(weight) FROM c WHERE source_principal IS NOT NULL \
         GROUP BY source, source_principal",
    )
    .await?
    {
        let (s, p, calls) = (string_column(&b, 0)?, string_column(&b, 1)?, f64s(&b, 2)?);
        for i in 0..b.num_rows() {
            let id = index.identities.entry(s.value(i).to_owned()).or_default();
            id.principals.insert(p.value(i).to_owned(), calls.value(i));
            index
                .principal_workloads
                .entry(p.value(i).to_owned())
                .or_default()
                .insert(s.value(i).to_owned());
        }
    }
    fan_out(ctx, index, current_window, cap).await?;
    edge_rates(ctx, index, current_window, cap).await
}

/// Per-source distinct destinations and endpoints in every closed window.
async fn fan_out(
    ctx: &SessionContext,
    index: &mut LookupIndex,
    current_window: i64,
    cap: usize,
) -> Result<(), BaselineError> {
    let mut per_source: HashMap<String, Vec<(i64, f64, f64)>> = HashMap::new();
    for b in run(ctx, &format!(
        "SELECT d.source, d.w, d.n, e.n FROM \
         (SELECT source, w, count(DISTINCT destination) AS n FROM c WHERE w < {current_window} GROUP BY source, w) d \
         JOIN (SELECT source, w, count(*) AS n FROM \
               (SELECT DISTINCT source, w, destination, method, route FROM c WHERE w < {current_window}) \
               GROUP BY source, w) e \
         ON d.source = e.source AND d.w = e.w"
    ))
    .await?
    {
        let s = string_column(&b, 0)?;
        let (w, dn, en) = (i64s(&b, 1)?, i64s(&b, 2)?, i64s(&b, 3)?);
        for i in 0..b.num_rows() {
            per_source.entry(s.value(i).to_owned()).or_default().push((
                w.value(i),
                dn.value(i) as f64,
                en.value(i) as f64,
            ));
        }
    }
    for (src, mut windows) in per_source {
        windows.sort_by_key(|x| x.0);
        let keep = windows.len().saturating_sub(cap);
        let s = index.sources.entry(src).or_default();
        s.fan_out.values = windows[keep..].iter().map(|x| x.1).collect();
        s.endpoint_fan_out.values = windows[keep..].iter().map(|x| x.2).collect();
    }
    Ok(())
}

/// Per-edge calls in every closed window where the edge was active. Like the online
/// learner, an edge's history starts when its first active window closes (counting 1)
/// and then counts every window the learner rolled through.
async fn edge_rates(
    ctx: &SessionContext,
    index: &mut LookupIndex,
    current_window: i64,
    cap: usize,
) -> Result<(), BaselineError> {
    let mut active = BTreeSet::new();
    for b in run(ctx, "SELECT DISTINCT w FROM c").await? {
        let w = i64s(&b, 0)?;
        active.extend((0..b.num_rows()).map(|i| w.value(i)));
    }
    let mut per_edge: HashMap<EdgeKey, Vec<(i64, f64)>> = HashMap::new();
    for b in run(
        ctx,
        &format!(
            "SELECT source, destination, w, sum(weight) FROM c WHERE w < {current_window} \
         GROUP BY source, destination, w"
        ),
    )
    .await?
    {
        let (s, d) = (string_column(&b, 0)?, string_column(&b, 1)?);
        let (w, calls) = (i64s(&b, 2)?, f64s(&b, 3)?);
        for i in 0..b.num_rows() {
            per_edge
                .entry(edge(s.value(i), d.value(i)))
                .or_default()
                .push((w.value(i), calls.value(i)));
        }
    }
    for (key, mut windows) in per_edge {
        windows.sort_by_key(|x| x.0);
        let first = windows[0].0;
        // The window the learner rolled into when `first` closed.
        let next = active
            .range(first + 1..)
            .next()
            .copied()
            .unwrap_or(current_window);
        let keep = windows.len().saturating_sub(cap);
        index.edge_rates.insert(
            key,
            WindowHistory {
                values: windows[keep..].iter().map(|x| x.1).collect(),
                windows_observed: 1 + (current_window - next).max(0) as u64,
            },
        );
    }
    Ok(())
}

async fn run(ctx: &SessionContext, sql: &str) -> Result<Vec<RecordBatch>, BaselineError> {
    Ok(ctx.sql(sql).await?.collect().await?)
}

async fn scalar_i64(ctx: &SessionContext, sql: &str) -> Result<Option<i64>, BaselineError> {
    let batches = run(ctx, sql).await?;
    let Some(b) = batches.iter().find(|b| b.num_rows() > 0) else {
        return Ok(None);
    };
    let col = i64s(b, 0)?;
    Ok((!col.is_null(0)).then(|| col.value(0)))
}

fn i64s(b: &RecordBatch, i: usize) -> Result<Int64Array, BaselineError> {
    typed_column(b, i, &DataType::Int64)
}

fn f64s(b: &RecordBatch, i: usize) -> Result<Float64Array, BaselineError> {
    typed_column(b, i, &DataType::Float64)
}

fn edge(source: &str, destination: &str) -> EdgeKey {
    EdgeKey {
        source: source.to_owned(),
        destination: destination.to_owned(),
    }
}

fn endpoint_keys(b: &RecordBatch, at: usize) -> Result<Vec<EndpointKey>, BaselineError> {
    let (s, d, m, r) = (
        string_column(b, at)?,
        string_column(b, at + 1)?,
        string_column(b, at + 2)?,
        string_column(b, at + 3)?,
    );
    Ok((0..b.num_rows())
        .map(|i| EndpointKey {
            edge: edge(s.value(i), d.value(i)),
            method: m.value(i).to_owned(),
            route: r.value(i).to_owned(),
        })
        .collect())
}

fn entries(b: &RecordBatch) -> Result<Vec<Entry>, BaselineError> {
    let (s, r) = (string_column(b, 0)?, string_column(b, 1)?);
    Ok((0..b.num_rows())
        .map(|i| Entry {
            service: s.value(i).to_owned(),
            route: r.value(i).to_owned(),
        })
        .collect())
}

fn context_stats(b: &RecordBatch, at: usize) -> Result<Vec<ContextStats>, BaselineError> {
    let (first, last, calls) = (i64s(b, at)?, i64s(b, at + 1)?, f64s(b, at + 2)?);
    Ok((0..b.num_rows())
        .map(|i| ContextStats {
            first_seen_ns: first.value(i),
            last_seen_ns: last.value(i),
            calls: calls.value(i),
        })
        .collect())
}
