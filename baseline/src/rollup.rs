//! Daily roll-ups: one row per (UTC day, source, destination) with the day's calls, mTLS
//! and plaintext calls, errors, alerted calls, the principals seen on either side,
//! first/last seen and sample trace ids. Written as Parquet under
//! `daily/day=YYYY-MM-DD/edges.parquet` (the `daily_edges` table of `eastwest sql`), so
//! a year of audit evidence survives the raw history's few days of retention.
//!
//! [`maintain`] is what the history writer runs every hour (and at shutdown): it rolls
//! up each closed day whose raw history is still complete (again when late calls changed
//! it), records where the raw history may start to be incomplete (`daily/raw-complete-from`,
//! which readers use to pick roll-ups over raw rows), and deletes roll-ups older than
//! their own retention. [`edge_days`] gives the same rows computed from the raw history,
//! so a reader treats both sources alike.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use datafusion::arrow::array::{
    Array, ArrayRef, Date32Array, Float64Array, Int64Array, ListArray, ListBuilder, RecordBatch,
    StringArray, StringBuilder, TimestampNanosecondArray, UInt64Array,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::prelude::SessionContext;

use crate::BaselineError;
use crate::history::CALLS_DIR;
use crate::query::{string_column, strings, typed_column};
use crate::snapshot::write_parquet;
use crate::tables::utc_ns;

/// Directory under the data dir holding the daily roll-ups.
pub const DAILY_DIR: &str = "daily";
/// The `eastwest sql` table name of the roll-ups.
pub const DAILY_TABLE: &str = "daily_edges";
/// Roll-ups are kept this long by default: twelve months of evidence plus a margin.
pub const DEFAULT_ROLLUP_RETENTION: Duration = Duration::from_secs(400 * 86_400);
/// Principals kept per side and edge-day: telemetry is attacker-controlled, and one
/// forged principal per call must not grow a row without bound.
pub const MAX_ROLLUP_PRINCIPALS: usize = 16;
/// Sample trace ids kept per edge-day (and as many of its plaintext calls).
pub const MAX_ROLLUP_TRACES: usize = 5;
/// File holding the first event time (ns) from which the raw history is complete.
const RAW_COMPLETE_FILE: &str = "raw-complete-from";
const FILE_NAME: &str = "edges.parquet";
pub const NS_PER_DAY: i64 = 86_400_000_000_000;

/// One edge on one UTC day: a roll-up row, or the same computed from raw calls.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EdgeDay {
    /// Days since the Unix epoch (UTC).
    pub day: i64,
    pub source: String,
    pub source_service: String,
    pub source_namespace: Option<String>,
    pub destination: String,
    pub destination_service: String,
    pub destination_namespace: Option<String>,
    /// The largest protocol name seen (an edge almost always has one).
    pub protocol: String,
    /// A destination address seen (`host:port`), when the telemetry names one.
    pub destination_address: Option<String>,
    pub calls: u64,
    /// Calls weighted by their sampling weight.
    pub weighted_calls: f64,
    pub mtls_calls: u64,
    pub plaintext_calls: u64,
    pub errors: u64,
    /// Calls that raised an alert (not learned when they happened).
    pub alerted_calls: u64,
    pub first_seen_ns: i64,
    pub last_seen_ns: i64,
    pub source_principals: Vec<String>,
    pub destination_principals: Vec<String>,
    /// Earliest trace ids of the day's calls.
    pub trace_ids: Vec<String>,
    /// Earliest trace ids of the day's plaintext calls.
    pub plaintext_trace_ids: Vec<String>,
}

/// Schema of `daily_edges`.
pub fn daily_schema() -> SchemaRef {
    let s = |n: &str, nullable: bool| Field::new(n, DataType::Utf8, nullable);
    let u = |n: &str| Field::new(n, DataType::UInt64, false);
    let list = |n: &str| {
        Field::new(
            n,
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            false,
        )
    };
    Arc::new(Schema::new(vec![
        Field::new("day", DataType::Date32, false),
        s("source", false),
        s("source_service", false),
        s("source_namespace", true),
        s("destination", false),
        s("destination_service", false),
        s("destination_namespace", true),
        s("protocol", false),
        s("destination_address", true),
        u("calls"),
        Field::new("weighted_calls", DataType::Float64, false),
        u("mtls_calls"),
        u("plaintext_calls"),
        u("errors"),
        u("alerted_calls"),
        Field::new("first_seen", utc_ns(), false),
        Field::new("last_seen", utc_ns(), false),
        list("source_principals"),
        list("destination_principals"),
        list("trace_ids"),
        list("plaintext_trace_ids"),
    ]))
}

/// Rows as one batch in the `daily_edges` schema.
pub fn daily_batch(rows: &[EdgeDay]) -> RecordBatch {
    let strs = |f: &dyn Fn(&EdgeDay) -> &str| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(rows.iter().map(f)))
    };
    let opt = |f: &dyn Fn(&EdgeDay) -> Option<&str>| -> ArrayRef {
        Arc::new(StringArray::from(rows.iter().map(f).collect::<Vec<_>>()))
    };
    let num = |f: &dyn Fn(&EdgeDay) -> u64| -> ArrayRef {
        Arc::new(UInt64Array::from_iter_values(rows.iter().map(f)))
    };
    let time = |f: &dyn Fn(&EdgeDay) -> i64| -> ArrayRef {
        Arc::new(
            TimestampNanosecondArray::from_iter_values(rows.iter().map(f)).with_timezone("UTC"),
        )
    };
    let list = |f: &dyn Fn(&EdgeDay) -> &Vec<String>| -> ArrayRef {
        let mut b = ListBuilder::new(StringBuilder::new());
        for r in rows {
            for v in f(r) {
                b.values().append_value(v);
            }
            b.append(true);
        }
        Arc::new(b.finish())
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Date32Array::from_iter_values(
            rows.iter().map(|r| r.day as i32),
        )),
        strs(&|r| &r.source),
        strs(&|r| &r.source_service),
        opt(&|r| r.source_namespace.as_deref()),
        strs(&|r| &r.destination),
        strs(&|r| &r.destination_service),
        opt(&|r| r.destination_namespace.as_deref()),
        strs(&|r| &r.protocol),
        opt(&|r| r.destination_address.as_deref()),
        num(&|r| r.calls),
        Arc::new(Float64Array::from_iter_values(
            rows.iter().map(|r| r.weighted_calls),
        )),
        num(&|r| r.mtls_calls),
        num(&|r| r.plaintext_calls),
        num(&|r| r.errors),
        num(&|r| r.alerted_calls),
        time(&|r| r.first_seen_ns),
        time(&|r| r.last_seen_ns),
        list(&|r| &r.source_principals),
        list(&|r| &r.destination_principals),
        list(&|r| &r.trace_ids),
        list(&|r| &r.plaintext_trace_ids),
    ];
    RecordBatch::try_new(daily_schema(), columns).expect("columns match the daily schema")
}

type EdgeDayKey = (i64, String, String);

/// Per (day, edge) rows computed from the raw `calls` table of `ctx`, for calls with
/// event time in `[since_ns, until_ns)`.
pub async fn edge_days(
    ctx: &SessionContext,
    since_ns: i64,
    until_ns: i64,
) -> Result<Vec<EdgeDay>, BaselineError> {
    let t = "CAST(time AS BIGINT)";
    let filter = format!("{t} >= {since_ns} AND {t} < {until_ns}");
    let day = format!("{t} / {NS_PER_DAY}");
    let totals = ctx
        .sql(&format!(
            "SELECT {day} AS day, source, destination, max(source_service), \
             max(source_namespace), max(destination_service), max(destination_namespace), \
             max(protocol), max(destination_address), count(*), sum(weight), \
             sum(CASE WHEN mtls THEN 1 ELSE 0 END), sum(CASE WHEN NOT mtls THEN 1 ELSE 0 END), \
             sum(CASE WHEN error THEN 1 ELSE 0 END), sum(CASE WHEN learned THEN 0 ELSE 1 END), \
             min({t}), max({t}) FROM calls WHERE {filter} GROUP BY 1, 2, 3"
        ))
        .await?
        .collect()
        .await?;
    let mut rows: BTreeMap<EdgeDayKey, EdgeDay> = BTreeMap::new();
    for b in &totals {
        let i64s = |i| typed_column::<Int64Array>(b, i, &DataType::Int64);
        let (days, src, dst) = (i64s(0)?, string_column(b, 1)?, string_column(b, 2)?);
        let (ss, sn, ds, dn) = (
            string_column(b, 3)?,
            string_column(b, 4)?,
            string_column(b, 5)?,
            string_column(b, 6)?,
        );
        let (proto, addr) = (string_column(b, 7)?, string_column(b, 8)?);
        let (calls, weighted) = (
            i64s(9)?,
            typed_column::<Float64Array>(b, 10, &DataType::Float64)?,
        );
        let (mtls, plain, errors, alerted, first, last) = (
            i64s(11)?,
            i64s(12)?,
            i64s(13)?,
            i64s(14)?,
            i64s(15)?,
            i64s(16)?,
        );
        let opt = |a: &StringArray, i: usize| (!a.is_null(i)).then(|| a.value(i).to_owned());
        for i in 0..b.num_rows() {
            let row = EdgeDay {
                day: days.value(i),
                source: src.value(i).to_owned(),
                source_service: ss.value(i).to_owned(),
                source_namespace: opt(&sn, i),
                destination: dst.value(i).to_owned(),
                destination_service: ds.value(i).to_owned(),
                destination_namespace: opt(&dn, i),
                protocol: proto.value(i).to_owned(),
                destination_address: opt(&addr, i),
                calls: calls.value(i) as u64,
                weighted_calls: weighted.value(i),
                mtls_calls: mtls.value(i) as u64,
                plaintext_calls: plain.value(i) as u64,
                errors: errors.value(i) as u64,
                alerted_calls: alerted.value(i) as u64,
                first_seen_ns: first.value(i),
                last_seen_ns: last.value(i),
                ..Default::default()
            };
            rows.insert((row.day, row.source.clone(), row.destination.clone()), row);
        }
    }
    let principals = ctx
        .sql(&format!(
            "SELECT {day}, source, destination, source_principal, destination_principal \
             FROM calls WHERE {filter} GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5"
        ))
        .await?
        .collect()
        .await?;
    for b in &principals {
        let days = typed_column::<Int64Array>(b, 0, &DataType::Int64)?;
        let (src, dst) = (string_column(b, 1)?, string_column(b, 2)?);
        let (sp, dp) = (string_column(b, 3)?, string_column(b, 4)?);
        for i in 0..b.num_rows() {
            let key = (
                days.value(i),
                src.value(i).to_owned(),
                dst.value(i).to_owned(),
            );
            let Some(row) = rows.get_mut(&key) else {
                continue;
            };
            for (array, into) in [
                (&sp, &mut row.source_principals),
                (&dp, &mut row.destination_principals),
            ] {
                if !array.is_null(i) {
                    push_capped(into, array.value(i), MAX_ROLLUP_PRINCIPALS);
                }
            }
        }
    }
    // The earliest few trace ids per edge-day, and per edge-day of plaintext calls.
    let samples = ctx
        .sql(&format!(
            "SELECT day, source, destination, plaintext, trace_id FROM ( \
               SELECT {day} AS day, source, destination, \
                 CASE WHEN NOT mtls THEN true ELSE false END AS plaintext, trace_id, {t} AS t, \
                 row_number() OVER (PARTITION BY {day}, source, destination, \
                   CASE WHEN NOT mtls THEN true ELSE false END ORDER BY {t}, trace_id) AS rn \
               FROM calls WHERE {filter} AND trace_id <> '') \
             WHERE rn <= {MAX_ROLLUP_TRACES} ORDER BY day, source, destination, t, trace_id"
        ))
        .await?
        .collect()
        .await?;
    for b in &samples {
        let days = typed_column::<Int64Array>(b, 0, &DataType::Int64)?;
        let (src, dst) = (string_column(b, 1)?, string_column(b, 2)?);
        let plain =
            typed_column::<datafusion::arrow::array::BooleanArray>(b, 3, &DataType::Boolean)?;
        let trace = string_column(b, 4)?;
        for i in 0..b.num_rows() {
            let key = (
                days.value(i),
                src.value(i).to_owned(),
                dst.value(i).to_owned(),
            );
            if let Some(row) = rows.get_mut(&key) {
                push_capped(&mut row.trace_ids, trace.value(i), MAX_ROLLUP_TRACES);
                if plain.value(i) {
                    push_capped(
                        &mut row.plaintext_trace_ids,
                        trace.value(i),
                        MAX_ROLLUP_TRACES,
                    );
                }
            }
        }
    }
    // In time order, the first few of all calls are among the first few of either part
    // (plaintext or not), so `trace_ids` holds the day's earliest.
    Ok(rows.into_values().collect())
}

fn push_capped(into: &mut Vec<String>, value: &str, cap: usize) {
    if into.len() < cap && !into.iter().any(|v| v == value) {
        into.push(value.to_owned());
    }
}

/// Roll-up rows stored for days in `[since_day, until_day)`, read through `ctx`'s
/// `daily_edges` table, by day, source and destination.
pub async fn stored_edge_days(
    ctx: &SessionContext,
    since_day: i64,
    until_day: i64,
) -> Result<Vec<EdgeDay>, BaselineError> {
    let batches = ctx
        .sql(&format!(
            "SELECT * FROM {DAILY_TABLE} WHERE CAST(day AS INT) >= {since_day} \
             AND CAST(day AS INT) < {until_day}"
        ))
        .await?
        .collect()
        .await?;
    let mut out = Vec::new();
    for b in &batches {
        out.extend(parse_daily(b)?);
    }
    // The order [`edge_days`] gives: files are read in no particular order.
    out.sort_by(|a, b| (a.day, &a.source, &a.destination).cmp(&(b.day, &b.source, &b.destination)));
    Ok(out)
}

fn parse_daily(b: &RecordBatch) -> Result<Vec<EdgeDay>, BaselineError> {
    let col = |name: &str| {
        b.column_by_name(name)
            .cloned()
            .ok_or_else(|| BaselineError::Query(format!("daily_edges has no column {name}")))
    };
    let text = |name: &str| strings(&col(name)?);
    let num = |name: &str| -> Result<Int64Array, BaselineError> {
        let c = datafusion::arrow::compute::cast(&col(name)?, &DataType::Int64)
            .map_err(|e| BaselineError::Query(e.to_string()))?;
        Ok(c.as_any()
            .downcast_ref::<Int64Array>()
            .expect("cast to Int64")
            .clone())
    };
    let list = |name: &str| -> Result<Vec<Vec<String>>, BaselineError> {
        let c = col(name)?;
        let l = c
            .as_any()
            .downcast_ref::<ListArray>()
            .ok_or_else(|| BaselineError::Query(format!("{name} is not a list")))?;
        (0..l.len())
            .map(|i| {
                let v = strings(&l.value(i))?;
                Ok(v.iter().flatten().map(str::to_owned).collect())
            })
            .collect()
    };
    let days = num("day")?;
    let (src, ss, sn) = (
        text("source")?,
        text("source_service")?,
        text("source_namespace")?,
    );
    let (dst, ds, dn) = (
        text("destination")?,
        text("destination_service")?,
        text("destination_namespace")?,
    );
    let (proto, addr) = (text("protocol")?, text("destination_address")?);
    let weighted = datafusion::arrow::compute::cast(&col("weighted_calls")?, &DataType::Float64)
        .map_err(|e| BaselineError::Query(e.to_string()))?;
    let weighted = weighted
        .as_any()
        .downcast_ref::<Float64Array>()
        .expect("cast to Float64")
        .clone();
    let (calls, mtls, plain, errors, alerted) = (
        num("calls")?,
        num("mtls_calls")?,
        num("plaintext_calls")?,
        num("errors")?,
        num("alerted_calls")?,
    );
    let (first, last) = (num("first_seen")?, num("last_seen")?);
    let (sp, dp, tr, pt) = (
        list("source_principals")?,
        list("destination_principals")?,
        list("trace_ids")?,
        list("plaintext_trace_ids")?,
    );
    let opt = |a: &StringArray, i: usize| (!a.is_null(i)).then(|| a.value(i).to_owned());
    Ok((0..b.num_rows())
        .map(|i| EdgeDay {
            day: days.value(i),
            source: src.value(i).to_owned(),
            source_service: ss.value(i).to_owned(),
            source_namespace: opt(&sn, i),
            destination: dst.value(i).to_owned(),
            destination_service: ds.value(i).to_owned(),
            destination_namespace: opt(&dn, i),
            protocol: proto.value(i).to_owned(),
            destination_address: opt(&addr, i),
            calls: calls.value(i) as u64,
            weighted_calls: weighted.value(i),
            mtls_calls: mtls.value(i) as u64,
            plaintext_calls: plain.value(i) as u64,
            errors: errors.value(i) as u64,
            alerted_calls: alerted.value(i) as u64,
            first_seen_ns: first.value(i),
            last_seen_ns: last.value(i),
            source_principals: sp[i].clone(),
            destination_principals: dp[i].clone(),
            trace_ids: tr[i].clone(),
            plaintext_trace_ids: pt[i].clone(),
        })
        .collect())
}

/// The event time (ns) from which the raw history is complete, as the last
/// [`maintain`] recorded it; `None` when nothing was ever expired.
pub fn raw_complete_from(data_dir: &Path) -> Option<i64> {
    std::fs::read_to_string(data_dir.join(DAILY_DIR).join(RAW_COMPLETE_FILE))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Days (since the epoch) that have a stored roll-up.
pub fn rolled_up_days(data_dir: &Path) -> BTreeSet<i64> {
    let Ok(rd) = std::fs::read_dir(data_dir.join(DAILY_DIR)) else {
        return BTreeSet::new();
    };
    rd.filter_map(Result::ok)
        .filter_map(|e| parse_day_dir(e.file_name().to_str()?))
        .collect()
}

/// What one [`maintain`] run did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct MaintainStats {
    pub rolled_up: usize,
    pub expired: usize,
}

/// Rolls up every closed day (by the wall clock `now_ns`) whose raw history is complete
/// and whose roll-up is missing or older than its raw files, records where the raw
/// history becomes complete once hours older than `history_retention` are pruned, and
/// deletes roll-ups older than `rollup_retention`. Run it before pruning the raw hours.
pub async fn maintain(
    data_dir: &Path,
    now_ns: i64,
    history_retention: Duration,
    rollup_retention: Duration,
) -> Result<MaintainStats, BaselineError> {
    let daily = data_dir.join(DAILY_DIR);
    let hour_ns = 3_600_000_000_000i64;
    // The cutoff the history writer's prune uses: hours before it are deleted.
    let cutoff = now_ns
        .saturating_sub(history_retention.as_nanos() as i64)
        .div_euclid(hour_ns)
        * hour_ns;
    let today = now_ns.div_euclid(NS_PER_DAY);
    let mut stats = MaintainStats::default();
    let raw = raw_days(&data_dir.join(CALLS_DIR));
    let mut ctx = None;
    for (day, newest_raw) in raw {
        if day >= today {
            continue;
        }
        let file = daily.join(day_dir_name(day)).join(FILE_NAME);
        let rolled = modified(&file);
        let complete = day * NS_PER_DAY >= cutoff;
        let stale = match rolled {
            None => true,
            // Late calls changed a day that is still whole: roll it up again.
            Some(at) => complete && newest_raw.is_some_and(|raw| raw > at),
        };
        if !stale {
            continue;
        }
        if ctx.is_none() {
            ctx = Some(crate::query::session(data_dir).await?);
        }
        let ctx = ctx.as_ref().expect("set above");
        let rows = edge_days(ctx, day * NS_PER_DAY, (day + 1) * NS_PER_DAY).await?;
        write_day(&daily, day, &rows)?;
        stats.rolled_up += 1;
    }
    std::fs::create_dir_all(&daily).map_err(|e| BaselineError::io(&daily, e))?;
    let marker = daily.join(RAW_COMPLETE_FILE);
    let tmp = daily.join(format!(".{RAW_COMPLETE_FILE}.tmp"));
    std::fs::write(&tmp, cutoff.to_string())
        .and_then(|()| std::fs::rename(&tmp, &marker))
        .map_err(|e| BaselineError::io(&marker, e))?;
    let oldest_kept = now_ns
        .saturating_sub(rollup_retention.as_nanos() as i64)
        .div_euclid(NS_PER_DAY);
    for day in rolled_up_days(data_dir) {
        if day < oldest_kept {
            let dir = daily.join(day_dir_name(day));
            std::fs::remove_dir_all(&dir).map_err(|e| BaselineError::io(&dir, e))?;
            stats.expired += 1;
        }
    }
    Ok(stats)
}

/// [`maintain`] for a thread outside any async runtime (the history writer's).
pub fn maintain_blocking(
    data_dir: &Path,
    now_ns: i64,
    history_retention: Duration,
    rollup_retention: Duration,
) -> Result<MaintainStats, BaselineError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| BaselineError::io(data_dir, e))?;
    rt.block_on(maintain(
        data_dir,
        now_ns,
        history_retention,
        rollup_retention,
    ))
}

fn write_day(daily: &Path, day: i64, rows: &[EdgeDay]) -> Result<(), BaselineError> {
    let dir = daily.join(day_dir_name(day));
    std::fs::create_dir_all(&dir).map_err(|e| BaselineError::io(&dir, e))?;
    let tmp = dir.join(format!(".{FILE_NAME}.tmp"));
    let file = dir.join(FILE_NAME);
    let result = write_parquet(&tmp, &daily_batch(rows))
        .and_then(|()| std::fs::rename(&tmp, &file).map_err(|e| BaselineError::io(&tmp, e)));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Days with raw hour partitions, each with its newest file's modification time.
fn raw_days(calls: &Path) -> BTreeMap<i64, Option<SystemTime>> {
    let mut days: BTreeMap<i64, Option<SystemTime>> = BTreeMap::new();
    let Ok(rd) = std::fs::read_dir(calls) else {
        return days;
    };
    for hour_dir in rd.filter_map(Result::ok).map(|e| e.path()) {
        let Some(hour) = hour_dir
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(crate::history::parse_hour_dir)
        else {
            continue;
        };
        let newest = std::fs::read_dir(&hour_dir)
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .filter_map(|e| modified(&e.path()))
            .max();
        let entry = days.entry(hour.div_euclid(24)).or_default();
        *entry = (*entry).max(newest);
    }
    days
}

pub(crate) fn day_dir_name(day: i64) -> String {
    let t = chrono::DateTime::from_timestamp_nanos(day * NS_PER_DAY);
    format!("day={}", t.format("%Y-%m-%d"))
}

fn parse_day_dir(name: &str) -> Option<i64> {
    let s = name.strip_prefix("day=")?;
    let d = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
    Some(
        d.and_hms_opt(0, 0, 0)?
            .and_utc()
            .timestamp()
            .div_euclid(86_400),
    )
}

/// The roll-up files under the data dir (for registering the table).
pub(crate) fn daily_files(data_dir: &Path) -> Vec<PathBuf> {
    rolled_up_days(data_dir)
        .into_iter()
        .map(|d| {
            data_dir
                .join(DAILY_DIR)
                .join(day_dir_name(d))
                .join(FILE_NAME)
        })
        .filter(|f| f.is_file())
        .collect()
}

#[cfg(test)]
#[path = "rollup_tests.rs"]
mod tests;
