//! What posture is computed from: the endpoints observed in the call history over a
//! period (one row per source, destination, method and route, with its counts and a
//! few trace ids), the principals each workload presented or answered with, and the
//! edges whose alerts are still open. Loaded with DataFusion from the data dir; built
//! by hand in tests.

use std::collections::BTreeSet;
use std::path::Path;

use datafusion_types::*;
use eastwest_baseline::session;

use crate::PostureError;

/// One (source, destination, method, route) seen in the period.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ObservedEndpoint {
    pub source: String,
    pub source_service: String,
    pub source_namespace: Option<String>,
    pub destination: String,
    pub destination_service: String,
    pub destination_namespace: Option<String>,
    pub method: String,
    pub route: String,
    pub protocol: String,
    pub destination_address: Option<String>,
    pub calls: u64,
    pub mtls_calls: u64,
    pub plaintext_calls: u64,
    /// Calls whose source presented no principal.
    pub anonymous_calls: u64,
    pub trace_ids: Vec<String>,
    pub plaintext_trace_ids: Vec<String>,
}

/// A principal seen on one side of a workload's calls.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SeenPrincipal {
    pub workload: String,
    pub principal: String,
    pub calls: u64,
}

/// Everything the posture analysis reads.
#[derive(Debug, Clone, Default)]
pub struct Observations {
    pub endpoints: Vec<ObservedEndpoint>,
    pub principals: Vec<SeenPrincipal>,
    /// (source key, destination key) with an alert that was not accepted.
    pub alerted_edges: BTreeSet<(String, String)>,
}

/// Endpoints and principals of the calls with event time in `[since_ns, until_ns)`.
pub async fn load(
    data_dir: &Path,
    since_ns: i64,
    until_ns: i64,
) -> Result<Observations, PostureError> {
    if !data_dir.is_dir() {
        return Err(PostureError::NoDataDir(data_dir.to_path_buf()));
    }
    let ctx = session(data_dir).await?;
    let t = "CAST(time AS BIGINT)";
    let filter = format!("{t} >= {since_ns} AND {t} < {until_ns}");
    let traced = "trace_id <> ''";
    let batches = query(
        &ctx,
        &format!(
            "SELECT source, destination, method, route, max(source_service), \
             max(source_namespace), max(destination_service), max(destination_namespace), \
             max(protocol), max(destination_address), count(*), \
             sum(CASE WHEN mtls THEN 1 ELSE 0 END), sum(CASE WHEN NOT mtls THEN 1 ELSE 0 END), \
             sum(CASE WHEN source_principal IS NULL THEN 1 ELSE 0 END), \
             min(CASE WHEN {traced} THEN trace_id END), max(CASE WHEN {traced} THEN trace_id END), \
             min(CASE WHEN NOT mtls AND {traced} THEN trace_id END), \
             max(CASE WHEN NOT mtls AND {traced} THEN trace_id END) \
             FROM calls WHERE {filter} GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4"
        ),
    )
    .await?;
    let mut out = Observations::default();
    for b in &batches {
        let s = |i| text(b, i);
        let n = |i| int(b, i);
        let (src, dst, method, route) = (s(0)?, s(1)?, s(2)?, s(3)?);
        let (ss, sn, ds, dn, proto, addr) = (s(4)?, s(5)?, s(6)?, s(7)?, s(8)?, s(9)?);
        let (calls, mtls, plain, anon) = (n(10)?, n(11)?, n(12)?, n(13)?);
        let (t1, t2, p1, p2) = (s(14)?, s(15)?, s(16)?, s(17)?);
        for i in 0..b.num_rows() {
            let samples = |a: &StringArray, b: &StringArray| {
                let mut v: Vec<String> = [a, b]
                    .into_iter()
                    .filter(|x| !x.is_null(i))
                    .map(|x| x.value(i).to_owned())
                    .collect();
                v.dedup();
                v
            };
            out.endpoints.push(ObservedEndpoint {
                source: src.value(i).to_owned(),
                source_service: ss.value(i).to_owned(),
                source_namespace: opt(&sn, i),
                destination: dst.value(i).to_owned(),
                destination_service: ds.value(i).to_owned(),
                destination_namespace: opt(&dn, i),
                method: method.value(i).to_owned(),
                route: route.value(i).to_owned(),
                protocol: proto.value(i).to_owned(),
                destination_address: opt(&addr, i),
                calls: calls.value(i) as u64,
                mtls_calls: mtls.value(i) as u64,
                plaintext_calls: plain.value(i) as u64,
                anonymous_calls: anon.value(i) as u64,
                trace_ids: samples(&t1, &t2),
                plaintext_trace_ids: samples(&p1, &p2),
            });
        }
    }
    for (workload, principal) in [
        ("source", "source_principal"),
        ("destination", "destination_principal"),
    ] {
        let batches = query(
            &ctx,
            &format!(
                "SELECT {workload}, {principal}, count(*) FROM calls \
                 WHERE {filter} AND {principal} IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2"
            ),
        )
        .await?;
        for b in &batches {
            let (w, p, c) = (text(b, 0)?, text(b, 1)?, int(b, 2)?);
            for i in 0..b.num_rows() {
                out.principals.push(SeenPrincipal {
                    workload: w.value(i).to_owned(),
                    principal: p.value(i).to_owned(),
                    calls: c.value(i) as u64,
                });
            }
        }
    }
    Ok(out)
}

/// The alert store's open (not accepted) edges, when the data dir has a store.
pub fn alerted_edges(data_dir: &Path) -> Result<BTreeSet<(String, String)>, PostureError> {
    if !data_dir.join(eastwest_api::store::DATABASE_FILE).is_file() {
        return Ok(BTreeSet::new());
    }
    let store = eastwest_api::AlertStore::open(data_dir)?;
    Ok(store.alerted_edges()?.into_iter().collect())
}

/// Arrow helpers over query results, whatever string or integer width DataFusion chose.
pub(crate) mod datafusion_types {
    pub use datafusion::arrow::array::{Array, Int64Array, RecordBatch, StringArray};
    use datafusion::arrow::compute::cast;
    use datafusion::arrow::datatypes::DataType;
    use datafusion::prelude::SessionContext;

    use crate::PostureError;

    fn query_error(e: impl ToString) -> PostureError {
        PostureError::History(eastwest_baseline::BaselineError::Query(e.to_string()))
    }

    pub async fn query(ctx: &SessionContext, sql: &str) -> Result<Vec<RecordBatch>, PostureError> {
        ctx.sql(sql)
            .await
            .map_err(query_error)?
            .collect()
            .await
            .map_err(query_error)
    }

    pub fn text(b: &RecordBatch, i: usize) -> Result<StringArray, PostureError> {
        let c = cast(b.column(i), &DataType::Utf8).map_err(query_error)?;
        Ok(c.as_any()
            .downcast_ref::<StringArray>()
            .expect("cast to Utf8")
            .clone())
    }

    pub fn int(b: &RecordBatch, i: usize) -> Result<Int64Array, PostureError> {
        let c = cast(b.column(i), &DataType::Int64).map_err(query_error)?;
        Ok(c.as_any()
            .downcast_ref::<Int64Array>()
            .expect("cast to Int64")
            .clone())
    }

    pub fn opt(a: &StringArray, i: usize) -> Option<String> {
        (!a.is_null(i)).then(|| a.value(i).to_owned())
    }
}
