//! Call history: every call, appended as Parquet under `calls/hour=YYYY-MM-DDTHH/`
//! (event-time hour partitions), with a `learned` flag saying whether the online learner
//! folded it in. `sql` queries it and `baseline rebuild` relearns from it. Old hours are
//! pruned by the history retention.

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use eastwest_model::Call;

use crate::BaselineError;
use crate::call_columns::CallColumns;
use crate::snapshot::write_parquet_with;
use crate::tables::utc_ns;

/// Directory under the data dir holding the history.
pub const CALLS_DIR: &str = "calls";
pub const DEFAULT_FLUSH_ROWS: usize = 65_536;
const NS_PER_HOUR: i64 = 3_600_000_000_000;
/// zstd level of history files: every call passes through the writer once, and level 1
/// compresses them about as well as 3 for much less CPU.
const ZSTD_LEVEL: i32 = 1;

/// Schema of the `calls` table.
pub fn calls_schema() -> SchemaRef {
    let s = |n: &str, nullable: bool| Field::new(n, DataType::Utf8, nullable);
    Arc::new(Schema::new(vec![
        Field::new("time", utc_ns(), false),
        s("source", false),
        s("source_service", false),
        s("source_namespace", true),
        s("source_principal", true),
        s("destination", false),
        s("destination_service", false),
        s("destination_namespace", true),
        s("destination_principal", true),
        s("protocol", false),
        s("method", false),
        s("route", false),
        Field::new("status", DataType::UInt32, true),
        Field::new("error", DataType::Boolean, false),
        Field::new("duration_ns", DataType::UInt64, false),
        Field::new("mtls", DataType::Boolean, true),
        s("trace_id", false),
        s("span_id", false),
        s("entry_service", true),
        s("entry_route", true),
        s("response_flags", true),
        s("destination_address", true),
        s("source_version", true),
        s("request_id", true),
        Field::new("weight", DataType::Float64, false),
        Field::new("learned", DataType::Boolean, false),
        // Added later, hence last and nullable: partitions written before them read as
        // nulls (see `query::session`).
        Field::new("request_bytes", DataType::UInt64, true),
        Field::new("response_bytes", DataType::UInt64, true),
    ]))
}

/// Effective sampling weight, as the learner counts it.
pub fn weight(call: &Call) -> f64 {
    if call.weight > 0.0 && call.weight.is_finite() {
        call.weight
    } else {
        1.0
    }
}

/// Columns whose values are (nearly) unique per row: written without a dictionary.
const UNIQUE_COLUMNS: &[&str] = &["trace_id", "span_id", "request_id"];

/// Rows as one Arrow batch in the `calls` schema.
pub fn calls_batch<C: Borrow<Call>>(rows: &[(C, bool)]) -> RecordBatch {
    let mut columns = CallColumns::with_capacity(rows.len());
    for (call, learned) in rows {
        columns.push(call.borrow(), *learned);
    }
    columns.finish()
}

/// Buffers calls and writes them as hourly Parquet parts.
pub struct HistoryWriter {
    dir: PathBuf,
    flush_rows: usize,
    retention: Duration,
    buffered: usize,
    /// Event-time hour → rows (shared with the pipeline's recent-calls view).
    hours: BTreeMap<i64, Vec<(Arc<Call>, bool)>>,
    seq: u64,
    /// Rows written since start.
    pub written: u64,
}

impl HistoryWriter {
    pub fn new(data_dir: &Path, retention: Duration, flush_rows: usize) -> Self {
        Self {
            dir: data_dir.join(CALLS_DIR),
            flush_rows: flush_rows.max(1),
            retention,
            buffered: 0,
            hours: BTreeMap::new(),
            seq: 0,
            written: 0,
        }
    }

    /// Buffers one call; writes the buffer once it reaches the flush size.
    pub fn append(
        &mut self,
        call: impl Into<Arc<Call>>,
        learned: bool,
    ) -> Result<(), BaselineError> {
        let call = call.into();
        let hour = call.event_time_ns.div_euclid(NS_PER_HOUR);
        self.hours.entry(hour).or_default().push((call, learned));
        self.buffered += 1;
        if self.buffered >= self.flush_rows {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes every buffered row (one file per hour touched).
    pub fn flush(&mut self) -> Result<(), BaselineError> {
        while let Some((hour, rows)) = self.hours.pop_first() {
            let part = self.dir.join(hour_dir_name(hour));
            std::fs::create_dir_all(&part).map_err(|e| BaselineError::io(&part, e))?;
            self.seq += 1;
            let stamp = chrono::Utc::now().timestamp_micros();
            let name = format!(
                "part-{stamp}-{}-{:06}.parquet",
                std::process::id(),
                self.seq
            );
            let tmp = part.join(format!(".{name}.tmp"));
            let result = write_parquet_with(&tmp, &calls_batch(&rows), UNIQUE_COLUMNS, ZSTD_LEVEL)
                .and_then(|()| {
                    std::fs::rename(&tmp, part.join(&name)).map_err(|e| BaselineError::io(&tmp, e))
                });
            if let Err(e) = result {
                let _ = std::fs::remove_file(&tmp);
                // Keep the rows for the next attempt (a full disk may clear).
                self.hours.insert(hour, rows);
                return Err(e);
            }
            self.buffered -= rows.len();
            self.written += rows.len() as u64;
        }
        Ok(())
    }

    /// Drops the buffer when it holds more than `flushes` flushes' worth of rows (writes
    /// keep failing); returns how many rows were dropped.
    pub fn discard_if_over(&mut self, flushes: usize) -> usize {
        if self.buffered <= self.flush_rows.saturating_mul(flushes) {
            return 0;
        }
        let dropped = self.buffered;
        self.hours.clear();
        self.buffered = 0;
        dropped
    }

    /// Rows waiting to be written.
    pub fn buffered(&self) -> usize {
        self.buffered
    }

    /// Deletes hour partitions older than the retention before `now_ns`; returns how many.
    pub fn prune(&self, now_ns: i64) -> Result<usize, BaselineError> {
        let cutoff = now_ns
            .saturating_sub(self.retention.as_nanos() as i64)
            .div_euclid(NS_PER_HOUR);
        let rd = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(BaselineError::io(&self.dir, e)),
        };
        let mut removed = 0;
        for entry in rd.filter_map(Result::ok) {
            let path = entry.path();
            let Some(hour) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(parse_hour_dir)
            else {
                continue;
            };
            if hour < cutoff {
                std::fs::remove_dir_all(&path).map_err(|e| BaselineError::io(&path, e))?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

fn hour_dir_name(hour: i64) -> String {
    let t = chrono::DateTime::from_timestamp_nanos(hour * NS_PER_HOUR);
    format!("hour={}", t.format("%Y-%m-%dT%H"))
}

pub(crate) fn parse_hour_dir(name: &str) -> Option<i64> {
    let s = name.strip_prefix("hour=")?;
    let t =
        chrono::NaiveDateTime::parse_from_str(&format!("{s}:00:00"), "%Y-%m-%dT%H:%M:%S").ok()?;
    Some(t.and_utc().timestamp() / 3600)
}

#[cfg(test)]
#[path = "history_tests.rs"]
mod size_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hour_dir_names_round_trip() {
        let hour = 1_767_571_200 / 3600 + 13;
        assert_eq!(hour_dir_name(hour), "hour=2026-01-05T13");
        assert_eq!(parse_hour_dir(&hour_dir_name(hour)), Some(hour));
        assert_eq!(parse_hour_dir("hour=garbage"), None);
    }
}
