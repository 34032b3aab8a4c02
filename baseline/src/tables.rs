//! The baseline as Arrow tables: the persisted and queryable form of [`LookupIndex`].
//! One `RecordBatch` per table, rows sorted by key so equal baselines give equal bytes.
//! Derived maps (principal → workloads, endpoints per edge) are rebuilt on load.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, Float64Array, RecordBatch, StringArray, TimestampNanosecondArray, UInt32Array,
    UInt64Array,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use eastwest_model::Entry;

use crate::BaselineError;
use crate::index::{
    ContextStats, EdgeKey, EdgeStats, EndpointKey, EndpointStats, IdentityStats, LookupIndex,
    SourceStats, WindowHistory,
};

/// Every baseline table, in the order they are written.
pub const TABLES: [&str; 11] = [
    "edges",
    "endpoints",
    "edge_contexts",
    "endpoint_contexts",
    "entries",
    "sources",
    "source_callees",
    "fan_out",
    "edge_rates",
    "identities",
    "principals",
];

/// Column builder: keeps field order and arrays together.
#[derive(Default)]
struct Columns {
    fields: Vec<Field>,
    arrays: Vec<ArrayRef>,
}

impl Columns {
    fn str(mut self, name: &str, values: Vec<&str>) -> Self {
        self.fields.push(Field::new(name, DataType::Utf8, false));
        self.arrays.push(Arc::new(StringArray::from(values)));
        self
    }
    fn time(mut self, name: &str, values: Vec<i64>) -> Self {
        self.fields.push(Field::new(name, utc_ns(), false));
        self.arrays.push(Arc::new(
            TimestampNanosecondArray::from(values).with_timezone("UTC"),
        ));
        self
    }
    fn f64(mut self, name: &str, values: Vec<f64>) -> Self {
        self.fields.push(Field::new(name, DataType::Float64, false));
        self.arrays.push(Arc::new(Float64Array::from(values)));
        self
    }
    fn u64(mut self, name: &str, values: Vec<u64>) -> Self {
        self.fields.push(Field::new(name, DataType::UInt64, false));
        self.arrays.push(Arc::new(UInt64Array::from(values)));
        self
    }
    fn u32(mut self, name: &str, values: Vec<u32>) -> Self {
        self.fields.push(Field::new(name, DataType::UInt32, false));
        self.arrays.push(Arc::new(UInt32Array::from(values)));
        self
    }
    fn batch(self) -> RecordBatch {
        RecordBatch::try_new(Arc::new(Schema::new(self.fields)), self.arrays)
            .expect("columns built with matching lengths and types")
    }
}

pub(crate) fn utc_ns() -> DataType {
    DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()))
}

fn sorted<K: Ord, V, S>(map: &hashbrown::HashMap<K, V, S>) -> Vec<(&K, &V)> {
    let mut v: Vec<_> = map.iter().collect();
    v.sort_by(|a, b| a.0.cmp(b.0));
    v
}

/// The index as named Arrow tables.
pub fn to_tables(index: &LookupIndex) -> Vec<(&'static str, RecordBatch)> {
    let edges = sorted(&index.edges);
    let endpoints = sorted(&index.endpoints);
    let edge_contexts = sorted(&index.edge_contexts);
    let endpoint_contexts = sorted(&index.endpoint_contexts);
    let entries = sorted(&index.entries);
    let sources = sorted(&index.sources);
    let identities = sorted(&index.identities);
    let edge_rates = sorted(&index.edge_rates);

    let mut callees: Vec<(&str, &str)> = sources
        .iter()
        .flat_map(|(w, s)| s.callees.iter().map(|c| (w.as_str(), c.as_str())))
        .collect();
    callees.sort_unstable();
    let fan_out: Vec<(&str, u32, f64, f64)> = sources
        .iter()
        .flat_map(|(w, s)| {
            (0..s.fan_out.values.len().min(s.endpoint_fan_out.values.len())).map(|i| {
                (
                    w.as_str(),
                    i as u32,
                    s.fan_out.values[i],
                    s.endpoint_fan_out.values[i],
                )
            })
        })
        .collect();
    let rates: Vec<(&EdgeKey, u64, u32, f64)> = edge_rates
        .iter()
        .flat_map(|(k, h)| {
            h.values
                .iter()
                .enumerate()
                .map(|(i, v)| (*k, h.windows_observed, i as u32, *v))
        })
        .collect();
    let mut principals: Vec<(&str, &str, f64)> = identities
        .iter()
        .flat_map(|(w, id)| {
            id.principals
                .iter()
                .map(|(p, c)| (w.as_str(), p.as_str(), *c))
        })
        .collect();
    principals.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));

    vec![
        (
            "edges",
            Columns::default()
                .str(
                    "source",
                    edges.iter().map(|e| e.0.source.as_str()).collect(),
                )
                .str(
                    "destination",
                    edges.iter().map(|e| e.0.destination.as_str()).collect(),
                )
                .time(
                    "first_seen",
                    edges.iter().map(|e| e.1.first_seen_ns).collect(),
                )
                .time(
                    "last_seen",
                    edges.iter().map(|e| e.1.last_seen_ns).collect(),
                )
                .f64("calls", edges.iter().map(|e| e.1.calls).collect())
                .f64("errors", edges.iter().map(|e| e.1.errors).collect())
                .f64("mtls_calls", edges.iter().map(|e| e.1.mtls_calls).collect())
                .f64(
                    "plaintext_calls",
                    edges.iter().map(|e| e.1.plaintext_calls).collect(),
                )
                .batch(),
        ),
        (
            "endpoints",
            endpoint_columns(Columns::default(), endpoints.iter().map(|e| e.0))
                .time(
                    "first_seen",
                    endpoints.iter().map(|e| e.1.first_seen_ns).collect(),
                )
                .time(
                    "last_seen",
                    endpoints.iter().map(|e| e.1.last_seen_ns).collect(),
                )
                .f64("calls", endpoints.iter().map(|e| e.1.calls).collect())
                .f64("errors", endpoints.iter().map(|e| e.1.errors).collect())
                .batch(),
        ),
        (
            "edge_contexts",
            context_columns(
                entry_columns(Columns::default(), edge_contexts.iter().map(|c| &c.0.0))
                    .str(
                        "source",
                        edge_contexts
                            .iter()
                            .map(|c| c.0.1.source.as_str())
                            .collect(),
                    )
                    .str(
                        "destination",
                        edge_contexts
                            .iter()
                            .map(|c| c.0.1.destination.as_str())
                            .collect(),
                    ),
                edge_contexts.iter().map(|c| c.1),
            ),
        ),
        (
            "endpoint_contexts",
            context_columns(
                endpoint_columns(
                    entry_columns(Columns::default(), endpoint_contexts.iter().map(|c| &c.0.0)),
                    endpoint_contexts.iter().map(|c| &c.0.1),
                ),
                endpoint_contexts.iter().map(|c| c.1),
            ),
        ),
        (
            "entries",
            entry_columns(Columns::default(), entries.iter().map(|e| e.0))
                .f64("calls", entries.iter().map(|e| *e.1).collect())
                .batch(),
        ),
        (
            "sources",
            Columns::default()
                .str("workload", sources.iter().map(|s| s.0.as_str()).collect())
                .time(
                    "first_seen",
                    sources.iter().map(|s| s.1.first_seen_ns).collect(),
                )
                .time(
                    "last_seen",
                    sources.iter().map(|s| s.1.last_seen_ns).collect(),
                )
                .f64("calls", sources.iter().map(|s| s.1.calls).collect())
                .u64(
                    "windows_observed",
                    sources
                        .iter()
                        .map(|s| s.1.fan_out.windows_observed)
                        .collect(),
                )
                .u64(
                    "endpoint_windows_observed",
                    sources
                        .iter()
                        .map(|s| s.1.endpoint_fan_out.windows_observed)
                        .collect(),
                )
                .batch(),
        ),
        (
            "source_callees",
            Columns::default()
                .str("workload", callees.iter().map(|c| c.0).collect())
                .str("callee", callees.iter().map(|c| c.1).collect())
                .batch(),
        ),
        (
            "fan_out",
            Columns::default()
                .str("workload", fan_out.iter().map(|f| f.0).collect())
                .u32("window_index", fan_out.iter().map(|f| f.1).collect())
                .f64("destinations", fan_out.iter().map(|f| f.2).collect())
                .f64("endpoints", fan_out.iter().map(|f| f.3).collect())
                .batch(),
        ),
        (
            "edge_rates",
            Columns::default()
                .str(
                    "source",
                    rates.iter().map(|r| r.0.source.as_str()).collect(),
                )
                .str(
                    "destination",
                    rates.iter().map(|r| r.0.destination.as_str()).collect(),
                )
                .u64("windows_observed", rates.iter().map(|r| r.1).collect())
                .u32("window_index", rates.iter().map(|r| r.2).collect())
                .f64("calls", rates.iter().map(|r| r.3).collect())
                .batch(),
        ),
        (
            "identities",
            Columns::default()
                .str(
                    "workload",
                    identities.iter().map(|i| i.0.as_str()).collect(),
                )
                .f64(
                    "mtls_calls",
                    identities.iter().map(|i| i.1.mtls_calls).collect(),
                )
                .f64(
                    "plaintext_calls",
                    identities.iter().map(|i| i.1.plaintext_calls).collect(),
                )
                .batch(),
        ),
        (
            "principals",
            Columns::default()
                .str("workload", principals.iter().map(|p| p.0).collect())
                .str("principal", principals.iter().map(|p| p.1).collect())
                .f64("calls", principals.iter().map(|p| p.2).collect())
                .batch(),
        ),
    ]
}

fn entry_columns<'a>(c: Columns, entries: impl Iterator<Item = &'a Entry> + Clone) -> Columns {
    c.str(
        "entry_service",
        entries.clone().map(|e| e.service.as_str()).collect(),
    )
    .str("entry_route", entries.map(|e| e.route.as_str()).collect())
}

fn endpoint_columns<'a>(
    c: Columns,
    keys: impl Iterator<Item = &'a EndpointKey> + Clone,
) -> Columns {
    c.str(
        "source",
        keys.clone().map(|k| k.edge.source.as_str()).collect(),
    )
    .str(
        "destination",
        keys.clone().map(|k| k.edge.destination.as_str()).collect(),
    )
    .str("method", keys.clone().map(|k| k.method.as_str()).collect())
    .str("route", keys.map(|k| k.route.as_str()).collect())
}

fn context_columns<'a>(
    c: Columns,
    stats: impl Iterator<Item = &'a ContextStats> + Clone,
) -> RecordBatch {
    c.time(
        "first_seen",
        stats.clone().map(|s| s.first_seen_ns).collect(),
    )
    .time("last_seen", stats.clone().map(|s| s.last_seen_ns).collect())
    .f64("calls", stats.map(|s| s.calls).collect())
    .batch()
}

/// Typed column access that names the file on a schema mismatch.
pub(crate) struct Reader<'a> {
    pub batch: &'a RecordBatch,
    pub path: &'a Path,
}

impl<'a> Reader<'a> {
    fn column<T: 'static>(&self, name: &str) -> Result<&'a T, BaselineError> {
        let col = self
            .batch
            .column_by_name(name)
            .ok_or_else(|| self.bad(format!("missing column {name}")))?;
        if col.null_count() > 0 {
            return Err(self.bad(format!("column {name} has nulls")));
        }
        col.as_any()
            .downcast_ref::<T>()
            .ok_or_else(|| self.bad(format!("column {name} has type {}", col.data_type())))
    }
    fn bad(&self, detail: String) -> BaselineError {
        BaselineError::Corrupt {
            path: self.path.to_path_buf(),
            detail,
        }
    }
    pub fn str(&self, name: &str) -> Result<Vec<&'a str>, BaselineError> {
        Ok(self.column::<StringArray>(name)?.iter().flatten().collect())
    }
    pub fn f64(&self, name: &str) -> Result<&'a [f64], BaselineError> {
        Ok(self.column::<Float64Array>(name)?.values())
    }
    pub fn u64(&self, name: &str) -> Result<&'a [u64], BaselineError> {
        Ok(self.column::<UInt64Array>(name)?.values())
    }
    pub fn time(&self, name: &str) -> Result<&'a [i64], BaselineError> {
        Ok(self.column::<TimestampNanosecondArray>(name)?.values())
    }
}

fn edge(source: &str, destination: &str) -> EdgeKey {
    EdgeKey {
        source: source.to_owned(),
        destination: destination.to_owned(),
    }
}

fn entry(service: &str, route: &str) -> Entry {
    Entry {
        service: service.to_owned(),
        route: route.to_owned(),
    }
}

fn endpoint_keys(r: &Reader<'_>) -> Result<Vec<EndpointKey>, BaselineError> {
    let (s, d, m, ro) = (
        r.str("source")?,
        r.str("destination")?,
        r.str("method")?,
        r.str("route")?,
    );
    Ok((0..s.len())
        .map(|i| EndpointKey {
            edge: edge(s[i], d[i]),
            method: m[i].to_owned(),
            route: ro[i].to_owned(),
        })
        .collect())
}

fn context_stats(r: &Reader<'_>) -> Result<Vec<ContextStats>, BaselineError> {
    let (first, last, calls) = (r.time("first_seen")?, r.time("last_seen")?, r.f64("calls")?);
    Ok((0..calls.len())
        .map(|i| ContextStats {
            first_seen_ns: first[i],
            last_seen_ns: last[i],
            calls: calls[i],
        })
        .collect())
}

/// Rebuilds the index from tables read back from `path`-named files.
pub fn from_tables(tables: &[(&str, RecordBatch, &Path)]) -> Result<LookupIndex, BaselineError> {
    let mut index = LookupIndex::default();
    for (name, batch, path) in tables {
        let r = Reader { batch, path };
        match *name {
            "edges" => {
                let (s, d) = (r.str("source")?, r.str("destination")?);
                let (first, last) = (r.time("first_seen")?, r.time("last_seen")?);
                let (calls, errors) = (r.f64("calls")?, r.f64("errors")?);
                let (mtls, plain) = (r.f64("mtls_calls")?, r.f64("plaintext_calls")?);
                for i in 0..s.len() {
                    index.edges.insert(
                        edge(s[i], d[i]),
                        EdgeStats {
                            first_seen_ns: first[i],
                            last_seen_ns: last[i],
                            calls: calls[i],
                            errors: errors[i],
                            mtls_calls: mtls[i],
                            plaintext_calls: plain[i],
                        },
                    );
                }
            }
            "endpoints" => {
                let keys = endpoint_keys(&r)?;
                let (first, last) = (r.time("first_seen")?, r.time("last_seen")?);
                let (calls, errors) = (r.f64("calls")?, r.f64("errors")?);
                for (i, k) in keys.into_iter().enumerate() {
                    *index
                        .edge_endpoint_counts
                        .entry(k.edge.clone())
                        .or_default() += 1;
                    index.endpoints.insert(
                        k,
                        EndpointStats {
                            first_seen_ns: first[i],
                            last_seen_ns: last[i],
                            calls: calls[i],
                            errors: errors[i],
                        },
                    );
                }
            }
            "edge_contexts" => {
                let (es, er) = (r.str("entry_service")?, r.str("entry_route")?);
                let (s, d) = (r.str("source")?, r.str("destination")?);
                for (i, st) in context_stats(&r)?.into_iter().enumerate() {
                    index
                        .edge_contexts
                        .insert((entry(es[i], er[i]), edge(s[i], d[i])), st);
                }
            }
            "endpoint_contexts" => {
                let (es, er) = (r.str("entry_service")?, r.str("entry_route")?);
                let keys = endpoint_keys(&r)?;
                for (i, (k, st)) in keys.into_iter().zip(context_stats(&r)?).enumerate() {
                    index.endpoint_contexts.insert((entry(es[i], er[i]), k), st);
                }
            }
            "entries" => {
                let (es, er, calls) = (
                    r.str("entry_service")?,
                    r.str("entry_route")?,
                    r.f64("calls")?,
                );
                for i in 0..calls.len() {
                    index.entries.insert(entry(es[i], er[i]), calls[i]);
                }
            }
            "sources" => {
                let w = r.str("workload")?;
                let (first, last, calls) =
                    (r.time("first_seen")?, r.time("last_seen")?, r.f64("calls")?);
                let (obs, ep_obs) = (
                    r.u64("windows_observed")?,
                    r.u64("endpoint_windows_observed")?,
                );
                for i in 0..w.len() {
                    let s = index.sources.entry(w[i].to_owned()).or_default();
                    s.first_seen_ns = first[i];
                    s.last_seen_ns = last[i];
                    s.calls = calls[i];
                    s.fan_out.windows_observed = obs[i];
                    s.endpoint_fan_out.windows_observed = ep_obs[i];
                }
            }
            "source_callees" => {
                let (w, c) = (r.str("workload")?, r.str("callee")?);
                for i in 0..w.len() {
                    source(&mut index, w[i]).callees.insert(c[i].to_owned());
                }
            }
            "fan_out" => {
                let w = r.str("workload")?;
                let (d, e) = (r.f64("destinations")?, r.f64("endpoints")?);
                // Rows are sorted by (workload, window_index): pushing keeps the order.
                for i in 0..w.len() {
                    let s = source(&mut index, w[i]);
                    s.fan_out.values.push(d[i]);
                    s.endpoint_fan_out.values.push(e[i]);
                }
            }
            "edge_rates" => {
                let (s, d) = (r.str("source")?, r.str("destination")?);
                let (obs, calls) = (r.u64("windows_observed")?, r.f64("calls")?);
                for i in 0..s.len() {
                    let h =
                        index
                            .edge_rates
                            .entry(edge(s[i], d[i]))
                            .or_insert_with(|| WindowHistory {
                                values: Vec::new(),
                                windows_observed: obs[i],
                            });
                    h.values.push(calls[i]);
                }
            }
            "identities" => {
                let w = r.str("workload")?;
                let (m, p) = (r.f64("mtls_calls")?, r.f64("plaintext_calls")?);
                for i in 0..w.len() {
                    let id = identity(&mut index, w[i]);
                    id.mtls_calls = m[i];
                    id.plaintext_calls = p[i];
                }
            }
            "principals" => {
                let (w, p, calls) = (r.str("workload")?, r.str("principal")?, r.f64("calls")?);
                for i in 0..w.len() {
                    identity(&mut index, w[i])
                        .principals
                        .insert(p[i].to_owned(), calls[i]);
                    index
                        .principal_workloads
                        .entry(p[i].to_owned())
                        .or_default()
                        .insert(w[i].to_owned());
                }
            }
            other => {
                return Err(BaselineError::Corrupt {
                    path: path.to_path_buf(),
                    detail: format!("unknown table {other}"),
                });
            }
        }
    }
    Ok(index)
}

fn source<'a>(index: &'a mut LookupIndex, w: &str) -> &'a mut SourceStats {
    index.sources.entry(w.to_owned()).or_default()
}

fn identity<'a>(index: &'a mut LookupIndex, w: &str) -> &'a mut IdentityStats {
    index.identities.entry(w.to_owned()).or_default()
}
