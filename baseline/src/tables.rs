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

use crate::BaselineError;
use crate::index::{
    ContextStats, EdgeKey, EdgeStats, EndpointKey, EndpointStats, EntryKey, IdentityStats,
    LookupIndex, NameId, Names, SourceStats, WindowHistory,
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

/// Rows keyed by their names, sorted by name (ids depend on insertion order).
fn sorted<'a, K: 'a, V: 'a, const N: usize>(
    rows: impl IntoIterator<Item = (&'a K, &'a V)>,
    names: impl Fn(&K) -> [&'a str; N],
) -> Vec<([&'a str; N], &'a V)> {
    let mut v: Vec<_> = rows.into_iter().map(|(k, v)| (names(k), v)).collect();
    v.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    v
}

/// A row keyed by its names.
type Named<'a, const N: usize, V> = ([&'a str; N], V);

/// Column `i` of named rows.
fn col<'a, const N: usize, V>(rows: &[([&'a str; N], V)], i: usize) -> Vec<&'a str> {
    rows.iter().map(|r| r.0[i]).collect()
}

/// The index as named Arrow tables.
pub fn to_tables(index: &LookupIndex) -> Vec<(&'static str, RecordBatch)> {
    let n = |id: &NameId| index.names.name(*id);
    let edge = |k: &EdgeKey| [n(&k.source), n(&k.destination)];
    let endpoint = |k: &EndpointKey| {
        [
            n(&k.edge.source),
            n(&k.edge.destination),
            n(&k.method),
            n(&k.route),
        ]
    };
    let entry = |k: &EntryKey| [n(&k.service), n(&k.route)];
    let edges = sorted(&index.edges, edge);
    let endpoints = sorted(index.endpoints(), endpoint);
    let edge_contexts = sorted(&index.edge_contexts, |(en, ed)| {
        let ([a, b], [c, d]) = (entry(en), edge(ed));
        [a, b, c, d]
    });
    let endpoint_contexts: Vec<([&str; 6], &ContextStats)> = {
        let mut rows: Vec<_> = (index.endpoints.iter())
            .flat_map(|row| {
                let [c, d, e, f] = endpoint(&row.key);
                row.contexts().map(move |(en, stats)| {
                    let [a, b] = entry(&en);
                    ([a, b, c, d, e, f], stats)
                })
            })
            .collect();
        rows.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        rows
    };
    let entries = sorted(&index.entries, entry);
    let sources = sorted(&index.sources, |k| [n(k)]);
    let identities = sorted(&index.identities, |k| [n(k)]);
    let edge_rates = sorted(&index.edge_rates, edge);

    let mut callees: Vec<([&str; 2], ())> = sources
        .iter()
        .flat_map(|([w], s)| s.callees.iter().map(|c| ([*w, n(c)], ())))
        .collect();
    callees.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let fan_out: Vec<Named<1, (u32, f64, f64)>> = sources
        .iter()
        .flat_map(|(w, s)| {
            (0..s.fan_out.values.len().min(s.endpoint_fan_out.values.len())).map(|i| {
                (
                    *w,
                    (i as u32, s.fan_out.values[i], s.endpoint_fan_out.values[i]),
                )
            })
        })
        .collect();
    let rates: Vec<Named<2, (u64, u32, f64)>> = edge_rates
        .iter()
        .flat_map(|(k, h)| {
            h.values
                .iter()
                .enumerate()
                .map(|(i, v)| (*k, (h.windows_observed, i as u32, *v)))
        })
        .collect();
    let mut principals: Vec<([&str; 2], f64)> = identities
        .iter()
        .flat_map(|([w], id)| id.principals.iter().map(|(p, c)| ([*w, n(p)], *c)))
        .collect();
    principals.sort_by(|a, b| a.0.cmp(&b.0));

    vec![
        (
            "edges",
            Columns::default()
                .str("source", col(&edges, 0))
                .str("destination", col(&edges, 1))
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
            named(Columns::default(), &endpoints, ENDPOINT_COLUMNS)
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
                named(
                    Columns::default(),
                    &edge_contexts,
                    ["entry_service", "entry_route", "source", "destination"],
                ),
                edge_contexts.iter().map(|c| c.1),
            ),
        ),
        (
            "endpoint_contexts",
            context_columns(
                named(
                    Columns::default(),
                    &endpoint_contexts,
                    [
                        "entry_service",
                        "entry_route",
                        "source",
                        "destination",
                        "method",
                        "route",
                    ],
                ),
                endpoint_contexts.iter().map(|c| c.1),
            ),
        ),
        (
            "entries",
            named(
                Columns::default(),
                &entries,
                ["entry_service", "entry_route"],
            )
            .f64("calls", entries.iter().map(|e| *e.1).collect())
            .batch(),
        ),
        (
            "sources",
            Columns::default()
                .str("workload", col(&sources, 0))
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
            named(Columns::default(), &callees, ["workload", "callee"]).batch(),
        ),
        (
            "fan_out",
            Columns::default()
                .str("workload", col(&fan_out, 0))
                .u32("window_index", fan_out.iter().map(|f| f.1.0).collect())
                .f64("destinations", fan_out.iter().map(|f| f.1.1).collect())
                .f64("endpoints", fan_out.iter().map(|f| f.1.2).collect())
                .batch(),
        ),
        (
            "edge_rates",
            named(Columns::default(), &rates, ["source", "destination"])
                .u64("windows_observed", rates.iter().map(|r| r.1.0).collect())
                .u32("window_index", rates.iter().map(|r| r.1.1).collect())
                .f64("calls", rates.iter().map(|r| r.1.2).collect())
                .batch(),
        ),
        (
            "identities",
            Columns::default()
                .str("workload", col(&identities, 0))
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
            named(Columns::default(), &principals, ["workload", "principal"])
                .f64("calls", principals.iter().map(|p| p.1).collect())
                .batch(),
        ),
    ]
}

const ENDPOINT_COLUMNS: [&str; 4] = ["source", "destination", "method", "route"];

/// One string column per name position.
fn named<const N: usize, V>(
    mut c: Columns,
    rows: &[([&str; N], V)],
    columns: [&str; N],
) -> Columns {
    for (i, name) in columns.iter().enumerate() {
        c = c.str(name, col(rows, i));
    }
    c
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

fn endpoint_keys(r: &Reader<'_>, names: &mut Names) -> Result<Vec<EndpointKey>, BaselineError> {
    let (s, d, m, ro) = (
        r.str("source")?,
        r.str("destination")?,
        r.str("method")?,
        r.str("route")?,
    );
    Ok((0..s.len())
        .map(|i| {
            let edge = names.intern_edge(s[i], d[i]);
            names.intern_endpoint(edge, m[i], ro[i])
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
    // In written order whatever order they come in: contexts need their endpoints first.
    let mut tables: Vec<_> = tables.iter().collect();
    tables.sort_by_key(|(name, ..)| TABLES.iter().position(|t| t == name));
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
                        index.names.intern_edge(s[i], d[i]),
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
                let keys = endpoint_keys(&r, &mut index.names)?;
                let (first, last) = (r.time("first_seen")?, r.time("last_seen")?);
                let (calls, errors) = (r.f64("calls")?, r.f64("errors")?);
                for (i, k) in keys.into_iter().enumerate() {
                    *index.edge_endpoint_counts.entry(k.edge).or_default() += 1;
                    *index.endpoints.upsert(&index.names, k, Default::default) = EndpointStats {
                        first_seen_ns: first[i],
                        last_seen_ns: last[i],
                        calls: calls[i],
                        errors: errors[i],
                    };
                }
            }
            "edge_contexts" => {
                let (es, er) = (r.str("entry_service")?, r.str("entry_route")?);
                let (s, d) = (r.str("source")?, r.str("destination")?);
                for (i, st) in context_stats(&r)?.into_iter().enumerate() {
                    let key = (
                        index.names.intern_entry(es[i], er[i]),
                        index.names.intern_edge(s[i], d[i]),
                    );
                    index.edge_contexts.insert(key, st);
                }
            }
            "endpoint_contexts" => {
                let (es, er) = (r.str("entry_service")?, r.str("entry_route")?);
                let keys = endpoint_keys(&r, &mut index.names)?;
                for (i, (k, st)) in keys.into_iter().zip(context_stats(&r)?).enumerate() {
                    let en = index.names.intern_entry(es[i], er[i]);
                    let context = index.endpoints.upsert_context(k, en, Default::default);
                    *context.ok_or_else(|| {
                        BaselineError::corrupt(
                            *path,
                            format!("row {i} is a context of an endpoint the snapshot lacks"),
                        )
                    })? = st;
                }
            }
            "entries" => {
                let (es, er, calls) = (
                    r.str("entry_service")?,
                    r.str("entry_route")?,
                    r.f64("calls")?,
                );
                for i in 0..calls.len() {
                    let en = index.names.intern_entry(es[i], er[i]);
                    index.entries.insert(en, calls[i]);
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
                    let s = source(&mut index, w[i]);
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
                    let callee = index.names.intern(c[i]);
                    source(&mut index, w[i]).callees.insert(callee);
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
                    let key = index.names.intern_edge(s[i], d[i]);
                    let h = index
                        .edge_rates
                        .entry(key)
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
                    let principal = index.names.intern(p[i]);
                    identity(&mut index, w[i])
                        .principals
                        .insert(principal, calls[i]);
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
    index.derive_principal_workloads();
    index.derive_inbound_tls();
    index.derive_learned_routes(crate::config::DEFAULT_ROUTE_PARAM_MIN_VALUES);
    Ok(index)
}

fn source<'a>(index: &'a mut LookupIndex, w: &str) -> &'a mut SourceStats {
    let w = index.names.intern(w);
    index.sources.entry(w).or_default()
}

fn identity<'a>(index: &'a mut LookupIndex, w: &str) -> &'a mut IdentityStats {
    let w = index.names.intern(w);
    index.identities.entry(w).or_default()
}
