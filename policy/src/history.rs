//! The call history as the backtest and drift read it: calls in a time range grouped by
//! everything a policy can look at (caller and its principal, callee, protocol, method,
//! route, address), with counts, first/last seen and example trace ids. One DataFusion
//! GROUP BY over the Parquet history, through the session `sql` uses.

use std::path::Path;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type};
use eastwest_baseline::session;
use eastwest_model::Protocol;

use crate::PolicyError;
use crate::r#match::CallView;
use crate::observe::{port_of, time_filter};

/// Calls that look the same to every policy.
#[derive(Debug, Clone)]
pub struct CallGroup {
    pub view: CallView,
    pub source: String,
    pub destination: String,
    pub calls: f64,
    pub first_ns: i64,
    pub last_ns: i64,
    pub trace_ids: Vec<String>,
}

pub async fn call_groups(
    data_dir: &Path,
    since_ns: Option<i64>,
    until_ns: Option<i64>,
) -> Result<Vec<CallGroup>, PolicyError> {
    let ctx = session(data_dir).await?;
    let keys = "source, source_service, source_namespace, source_principal, destination, \
                destination_service, destination_namespace, protocol, method, route, \
                destination_address";
    let sql = format!(
        "SELECT {keys}, sum(weight), min(CAST(time AS BIGINT)), max(CAST(time AS BIGINT)), \
         min(trace_id), max(trace_id) FROM calls WHERE {} GROUP BY {keys}",
        time_filter(since_ns, until_ns)
    );
    let mut out = Vec::new();
    for b in ctx.sql(&sql).await?.collect().await? {
        out.extend(groups(&b)?);
    }
    Ok(out)
}

fn groups(b: &RecordBatch) -> Result<Vec<CallGroup>, PolicyError> {
    let text = |i: usize| cast(b.column(i), &DataType::Utf8);
    let cols = (0..11)
        .chain([14, 15])
        .map(text)
        .collect::<Result<Vec<_>, _>>()?;
    let cols: Vec<_> = cols.iter().map(|c| c.as_string::<i32>()).collect();
    // Row `r` of text column `c` (of `cols`: the keys, then both trace ids), borrowed.
    let at = |c: usize, r: usize| (!cols[c].is_null(r)).then(|| cols[c].value(r));
    let calls = cast(b.column(11), &DataType::Float64)?;
    let calls = calls.as_primitive::<Float64Type>();
    let first = cast(b.column(12), &DataType::Int64)?;
    let last = cast(b.column(13), &DataType::Int64)?;
    let (first, last) = (
        first.as_primitive::<Int64Type>(),
        last.as_primitive::<Int64Type>(),
    );
    Ok((0..b.num_rows())
        .map(|r| {
            let s = |c: usize| at(c, r).unwrap_or_default();
            let mut trace_ids: Vec<String> = [at(11, r), at(12, r)]
                .into_iter()
                .flatten()
                .filter(|t| !t.is_empty())
                .map(String::from)
                .collect();
            trace_ids.dedup();
            CallGroup {
                view: CallView {
                    source_service: s(1).into(),
                    source_namespace: at(2, r).map(Into::into),
                    principal: at(3, r).map(Into::into),
                    destination_service: s(5).into(),
                    destination_namespace: at(6, r).map(Into::into),
                    protocol: Protocol::parse(s(7)).unwrap_or_default(),
                    method: s(8).into(),
                    route: s(9).into(),
                    port: at(10, r).and_then(port_of),
                },
                source: s(0).into(),
                destination: s(4).into(),
                calls: calls.value(r),
                first_ns: first.value(r),
                last_ns: last.value(r),
                trace_ids,
            }
        })
        .collect())
}
