//! `baseline rebuild`: relearn the tables from the Parquet call history with DataFusion
//! (a fine GROUP BY per (entry, endpoint), one per (source, principal), and a scan whose
//! partitions are folded into per-window histories, see `rebuild_windows`), giving the
//! same tables the online learner built from the same learned calls. Equal as long as no cardinality cap overflowed and nothing aged out mid-way
//! (the online learner ages out at every window close, the rebuild once at the end).

use std::path::Path;
use std::time::{Duration, Instant};

use datafusion::arrow::array::{Array, Float64Array, Int64Array, RecordBatch};
use datafusion::arrow::datatypes::DataType;
use datafusion::prelude::SessionContext;

use crate::BaselineError;
use crate::index::{ContextStats, EdgeStats, EndpointKey, EndpointStats, LookupIndex, Names};
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
    // A view, not a cache: each pass re-reads the dictionary-encoded Parquet, which is
    // as fast as reading a materialised copy and needs no memory for one.
    let calls = ctx
        .sql(&format!(
            "SELECT source, destination, method, route, entry_service, entry_route, \
             source_principal, mtls, error, weight, CAST(time AS BIGINT) AS t \
             FROM calls WHERE {filter}"
        ))
        .await?;
    ctx.register_table("c", calls.into_view())?;
    let mut index = LookupIndex::default();
    let (rows, first_ns, last_ns) = fine(&ctx, &mut index).await?;
    if let Some(last) = last_ns {
        let current_window = last.div_euclid(width);
        finish_sources(&mut index, width, current_window);
        principals(&ctx, &mut index).await?;
        let sql = "SELECT source, destination, method, route, weight, t FROM c";
        crate::rebuild_windows::windows(
            &ctx,
            sql,
            &mut index,
            width,
            current_window,
            config.max_window_history,
        )
        .await?;
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

const ERR: &str = "CASE WHEN error THEN weight ELSE 0.0 END";
const MTLS: &str = "CASE WHEN mtls THEN weight ELSE 0.0 END";
const PLAIN: &str = "CASE WHEN NOT mtls THEN weight ELSE 0.0 END";

/// One fine aggregate per (entry, endpoint) from which edges, endpoints, contexts,
/// entries, sources and identities all derive, plus the extent (rows, first and last
/// event time). Weight sums are exact (sampling weights are powers of two), so summing in
/// another order is equal.
async fn fine(
    ctx: &SessionContext,
    index: &mut LookupIndex,
) -> Result<(u64, Option<i64>, Option<i64>), BaselineError> {
    let fine = run(
        ctx,
        &format!(
            "SELECT entry_service, entry_route, source, destination, method, route, min(t), max(t), \
             sum(weight), sum({ERR}), sum({MTLS}), sum({PLAIN}), count(*) FROM c \
             GROUP BY entry_service, entry_route, source, destination, method, route"
        ),
    )
    .await?;
    let (mut rows, mut first_ns, mut last_ns) = (0u64, None::<i64>, None::<i64>);
    for b in fine {
        let (es, er) = (string_column(&b, 0)?, string_column(&b, 1)?);
        let keys = endpoint_keys(&b, 2, &mut index.names)?;
        let (first, last) = (i64s(&b, 6)?, i64s(&b, 7)?);
        let (calls, errors) = (f64s(&b, 8)?, f64s(&b, 9)?);
        let (mtls, plain) = (f64s(&b, 10)?, f64s(&b, 11)?);
        let counts = i64s(&b, 12)?;
        for (i, k) in keys.into_iter().enumerate() {
            let (t0, t1, w) = (first.value(i), last.value(i), calls.value(i));
            rows += counts.value(i).max(0) as u64;
            first_ns = Some(first_ns.map_or(t0, |f| f.min(t0)));
            last_ns = Some(last_ns.map_or(t1, |l| l.max(t1)));
            let e = index.edges.entry(k.edge).or_insert_with(|| EdgeStats {
                first_seen_ns: t0,
                last_seen_ns: t1,
                ..Default::default()
            });
            widen(&mut e.first_seen_ns, &mut e.last_seen_ns, t0, t1);
            e.calls += w;
            e.errors += errors.value(i);
            e.mtls_calls += mtls.value(i);
            e.plaintext_calls += plain.value(i);
            let s = index.sources.entry(k.edge.source).or_default();
            if s.calls == 0.0 {
                (s.first_seen_ns, s.last_seen_ns) = (t0, t1);
            }
            widen(&mut s.first_seen_ns, &mut s.last_seen_ns, t0, t1);
            s.calls += w;
            s.callees.insert(k.edge.destination);
            let id = index.identities.entry(k.edge.source).or_default();
            id.mtls_calls += mtls.value(i);
            id.plaintext_calls += plain.value(i);
            let ep = index.endpoints.upsert(&index.names, k, || EndpointStats {
                first_seen_ns: t0,
                last_seen_ns: t1,
                ..Default::default()
            });
            widen(&mut ep.first_seen_ns, &mut ep.last_seen_ns, t0, t1);
            ep.calls += w;
            ep.errors += errors.value(i);
            if !es.is_null(i) && !er.is_null(i) {
                let entry = index.names.intern_entry(es.value(i), er.value(i));
                *index.entries.entry(entry).or_default() += w;
                let fresh = || fresh_context(t0, t1);
                let edge_context = index.edge_contexts.entry((entry, k.edge));
                add_context(edge_context.or_insert_with(fresh), t0, t1, w);
                let endpoint_context = index.endpoints.upsert_context(k, entry, fresh);
                add_context(endpoint_context.expect("row added above"), t0, t1, w);
            }
        }
    }
    for row in index.endpoints.iter() {
        *index.edge_endpoint_counts.entry(row.key.edge).or_default() += 1;
    }
    Ok((rows, first_ns, last_ns))
}

/// Every window closed since a source's first one counts, idle ones too.
fn finish_sources(index: &mut LookupIndex, width: i64, current_window: i64) {
    for s in index.sources.values_mut() {
        let observed = (current_window - s.first_seen_ns.div_euclid(width)).max(0) as u64;
        s.fan_out.windows_observed = observed;
        s.endpoint_fan_out.windows_observed = observed;
    }
}

/// Principals per source (the principal → workload index is derived when ageing).
async fn principals(ctx: &SessionContext, index: &mut LookupIndex) -> Result<(), BaselineError> {
    let principals = run(
        ctx,
        "SELECT source, source_principal, sum(weight) FROM c WHERE source_principal IS NOT NULL \
         GROUP BY source, source_principal",
    )
    .await?;
    for b in principals {
        let (s, p, calls) = (string_column(&b, 0)?, string_column(&b, 1)?, f64s(&b, 2)?);
        for i in 0..b.num_rows() {
            let (source, principal) = (
                index.names.intern(s.value(i)),
                index.names.intern(p.value(i)),
            );
            let id = index.identities.entry(source).or_default();
            id.principals.insert(principal, calls.value(i));
        }
    }
    Ok(())
}

fn widen(first: &mut i64, last: &mut i64, t0: i64, t1: i64) {
    *first = (*first).min(t0);
    *last = (*last).max(t1);
}

fn fresh_context(t0: i64, t1: i64) -> ContextStats {
    ContextStats {
        first_seen_ns: t0,
        last_seen_ns: t1,
        calls: 0.0,
    }
}

fn add_context(c: &mut ContextStats, t0: i64, t1: i64, w: f64) {
    widen(&mut c.first_seen_ns, &mut c.last_seen_ns, t0, t1);
    c.calls += w;
}

async fn run(ctx: &SessionContext, sql: &str) -> Result<Vec<RecordBatch>, BaselineError> {
    Ok(ctx.sql(sql).await?.collect().await?)
}

fn i64s(b: &RecordBatch, i: usize) -> Result<Int64Array, BaselineError> {
    typed_column(b, i, &DataType::Int64)
}

fn f64s(b: &RecordBatch, i: usize) -> Result<Float64Array, BaselineError> {
    typed_column(b, i, &DataType::Float64)
}

fn endpoint_keys(
    b: &RecordBatch,
    at: usize,
    names: &mut Names,
) -> Result<Vec<EndpointKey>, BaselineError> {
    let (s, d, m, r) = (
        string_column(b, at)?,
        string_column(b, at + 1)?,
        string_column(b, at + 2)?,
        string_column(b, at + 3)?,
    );
    Ok((0..b.num_rows())
        .map(|i| {
            let edge = names.intern_edge(s.value(i), d.value(i));
            names.intern_endpoint(edge, m.value(i), r.value(i))
        })
        .collect())
}
