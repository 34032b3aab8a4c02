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
    let text = |i: usize| -> Result<Vec<Option<String>>, PolicyError> {
        let col = cast(b.column(i), &DataType::Utf8)?;
        let col = col.as_string::<i32>();
        Ok((0..col.len())
            .map(|r| (!col.is_null(r)).then(|| col.value(r).to_owned()))
            .collect())
    };
    let cols: Vec<_> = (0..11).map(text).collect::<Result<_, _>>()?;
    let traces = (text(14)?, text(15)?);
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
            let s = |c: usize| cols[c][r].clone().unwrap_or_default();
            let mut trace_ids: Vec<String> = [&traces.0[r], &traces.1[r]]
                .into_iter()
                .flatten()
                .filter(|t| !t.is_empty())
                .cloned()
                .collect();
            trace_ids.dedup();
            CallGroup {
                view: CallView {
                    source_service: s(1).into(),
                    source_namespace: cols[2][r].as_deref().map(Into::into),
                    principal: cols[3][r].as_deref().map(Into::into),
                    destination_service: s(5).into(),
                    destination_namespace: cols[6][r].as_deref().map(Into::into),
                    protocol: Protocol::parse(&s(7)).unwrap_or_default(),
                    method: s(8).into(),
                    route: s(9).into(),
                    port: cols[10][r].as_deref().and_then(port_of),
                },
                source: s(0),
                destination: s(4),
                calls: calls.value(r),
                first_ns: first.value(r),
                last_ns: last.value(r),
                trace_ids,
            }
        })
        .collect())
}
