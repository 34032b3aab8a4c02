//! The windowed part of `baseline rebuild`: per-edge calls and per-source fan-out per
//! closed event-time window. DataFusion scans and filters the history; the distinct
//! counting per (source, window) is a fold over the scan on interned ids, because a
//! SQL GROUP BY over four string keys per (endpoint, window) was the slowest step of a
//! rebuild by far on two cores (2.4 of 5.2 s at 10M calls).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array};
use datafusion::arrow::datatypes::DataType;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::prelude::SessionContext;
use futures::StreamExt;

use crate::BaselineError;
use crate::index::{EdgeKey, EndpointKey, LookupIndex, Map, NameId, Names, Set, WindowHistory};
use crate::query::{strings, typed_column};

/// Ids of one string column, row by row (`None` for a name the fine pass did not see:
/// a row appended to the history since). No copies for the string types DataFusion's
/// Parquet scan produces.
///
/// A string view column from dictionary-encoded Parquet repeats the same 16-byte view
/// for the same value, so names are resolved once per distinct view of the batch
/// (`seen`): a view holds either the whole string (≤ 12 bytes) or its length, prefix and
/// place in the array's buffers, so equal views are equal strings within one array.
fn resolve(
    column: &ArrayRef,
    names: &Names,
    seen: &mut Map<u128, Option<NameId>>,
    out: &mut Vec<Option<NameId>>,
) -> Result<(), BaselineError> {
    out.clear();
    if column.null_count() > 0 {
        return Err(BaselineError::Query(
            "a key column of calls has nulls".into(),
        ));
    }
    if let Some(a) = column.as_string_view_opt() {
        seen.clear();
        for (row, view) in a.views().iter().enumerate() {
            let id = *seen.entry(*view).or_insert_with(|| names.get(a.value(row)));
            out.push(id);
        }
        return Ok(());
    }
    let mut push = |s: Option<&str>| out.push(names.get(s.unwrap_or_default()));
    if let Some(a) = column.as_string_opt::<i32>() {
        a.iter().for_each(&mut push);
    } else {
        strings(column)?.iter().for_each(&mut push);
    }
    Ok(())
}

/// One closed window's distinct endpoints and per-edge calls.
#[derive(Default)]
struct WindowAcc {
    endpoints: Set<EndpointKey>,
    edge_calls: Map<EdgeKey, f64>,
}

impl WindowAcc {
    fn with_capacity(endpoints: usize, edges: usize) -> Self {
        WindowAcc {
            endpoints: Set::with_capacity_and_hasher(endpoints, Default::default()),
            edge_calls: Map::with_capacity_and_hasher(edges, Default::default()),
        }
    }

    fn merge(&mut self, other: WindowAcc) {
        self.endpoints.extend(other.endpoints);
        for (edge, calls) in other.edge_calls {
            *self.edge_calls.entry(edge).or_insert(0.0) += calls;
        }
    }
}

/// Windows of one scan partition.
async fn fold(
    mut stream: SendableRecordBatchStream,
    names: Arc<Names>,
    width: i64,
    current_window: i64,
) -> Result<Map<i64, WindowAcc>, BaselineError> {
    let mut ids: [Vec<Option<NameId>>; 4] = Default::default();
    let mut seen = Map::default();
    let mut by_window: Map<i64, WindowAcc> = Map::default();
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        for (i, out) in ids.iter_mut().enumerate() {
            resolve(batch.column(i), &names, &mut seen, out)?;
        }
        let weight: Float64Array = typed_column(&batch, 4, &DataType::Float64)?;
        let t: Int64Array = typed_column(&batch, 5, &DataType::Int64)?;
        let [s, d, m, r] = &ids;
        let mut window = i64::MIN;
        let mut acc = &mut WindowAcc::default();
        for row in 0..batch.num_rows() {
            let w = t.value(row).div_euclid(width);
            let (Some(source), Some(destination), Some(method), Some(route)) =
                (s[row], d[row], m[row], r[row])
            else {
                continue;
            };
            if w >= current_window {
                continue;
            }
            // Rows come roughly in time order: most rows stay in the previous row's window.
            if w != window {
                window = w;
                // Sized like the window before it: growing a set of tens of thousands of
                // endpoints from empty rehashes it a dozen times.
                let (endpoints, edges) = (acc.endpoints.len(), acc.edge_calls.len());
                acc = by_window
                    .entry(w)
                    .or_insert_with(|| WindowAcc::with_capacity(endpoints, edges));
            }
            let edge = EdgeKey {
                source,
                destination,
            };
            acc.endpoints.insert(EndpointKey {
                edge,
                method,
                route,
            });
            *acc.edge_calls.entry(edge).or_insert(0.0) += weight.value(row);
        }
    }
    Ok(by_window)
}

/// Folds `SELECT source, destination, method, route, weight, t FROM …` (learned calls only)
/// into the index's rate and fan-out histories for windows before `current_window`.
pub(crate) async fn windows(
    ctx: &SessionContext,
    sql: &str,
    index: &mut LookupIndex,
    width: i64,
    current_window: i64,
    cap: usize,
) -> Result<(), BaselineError> {
    // One fold per scan partition, in parallel; the fine pass already interned every
    // name, so the folds only read the interner.
    let names = Arc::new(index.names.clone());
    let folds: Vec<_> = ctx
        .sql(sql)
        .await?
        .execute_stream_partitioned()
        .await?
        .into_iter()
        .map(|stream| tokio::spawn(fold(stream, names.clone(), width, current_window)))
        .collect();
    let mut by_window: Map<i64, WindowAcc> = Map::default();
    for f in folds {
        let part = f
            .await
            .map_err(|e| BaselineError::Query(format!("rebuild fold failed: {e}")))??;
        for (w, acc) in part {
            match by_window.entry(w) {
                hashbrown::hash_map::Entry::Vacant(v) => {
                    v.insert(acc);
                }
                hashbrown::hash_map::Entry::Occupied(mut o) => o.get_mut().merge(acc),
            }
        }
    }

    let mut per_edge: HashMap<EdgeKey, Vec<(i64, f64)>> = HashMap::new();
    let mut per_source: HashMap<NameId, BTreeMap<i64, (f64, f64)>> = HashMap::new();
    let mut active = BTreeSet::from([current_window]);
    for (w, acc) in by_window {
        active.insert(w);
        for (edge, calls) in acc.edge_calls {
            per_edge.entry(edge).or_default().push((w, calls));
            per_source
                .entry(edge.source)
                .or_default()
                .entry(w)
                .or_default()
                .0 += 1.0;
        }
        for ep in acc.endpoints {
            per_source
                .entry(ep.edge.source)
                .or_default()
                .entry(w)
                .or_default()
                .1 += 1.0;
        }
    }
    for (src, windows) in per_source {
        let keep = windows.len().saturating_sub(cap);
        let s = index.sources.entry(src).or_default();
        s.fan_out.values = windows.values().skip(keep).map(|x| x.0).collect();
        s.endpoint_fan_out.values = windows.values().skip(keep).map(|x| x.1).collect();
    }
    // Like the online learner, an edge's rate history starts when its first active
    // window closes (counting 1) and then counts every window the learner rolled through.
    for (key, mut windows) in per_edge {
        windows.sort_by_key(|x| x.0);
        let first = windows[0].0;
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
