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
use crate::history_columns::CallColumns;
use crate::snapshot::{ColumnLayout, write_parquet_with};
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

/// How the `calls` columns are written: ids (nearly unique per row) without a
/// dictionary; min/max statistics only for `time`, the one column in which an hour's
/// files are ordered enough for a query to skip a page by it.
const CALLS_LAYOUT: ColumnLayout<'static> = ColumnLayout {
    unique: &["trace_id", "span_id", "request_id"],
    statistics_only: Some(&["time"]),
};

/// Rows as one Arrow batch in the `calls` schema.
pub fn calls_batch<C: Borrow<Call>>(rows: &[(C, bool)]) -> RecordBatch {
    let mut columns = CallColumns::with_capacity(rows.len());
    for (call, learned) in rows {
        columns.push(call.borrow(), *learned);
    }
    columns.finish()
}

/// One hour's rows not yet written.
struct HourRows {
    /// Rows appended since the last attempt to write, already in columns.
    columns: CallColumns,
    /// Rows failed writes left, kept for the next attempt (a full disk may clear).
    unwritten: Vec<RecordBatch>,
}

impl HourRows {
    fn new() -> Self {
        Self::with_capacity(FIRST_CAPACITY)
    }

    fn with_capacity(rows: usize) -> Self {
        Self {
            columns: CallColumns::with_capacity(rows),
            unwritten: Vec::new(),
        }
    }

    /// Everything buffered, as batches, oldest first.
    fn into_batches(self) -> Vec<RecordBatch> {
        let mut batches = self.unwritten;
        batches.push(self.columns.finish());
        batches
    }
}

/// Rows an hour's builders are first sized for: hours touched by a few late calls stay
/// small, and a busy hour's builders grow as rows come.
const FIRST_CAPACITY: usize = 16;
/// Hours buffered at most: past it the buffer is written out. Each buffered hour holds a
/// set of column builders, so calls spread over many hours (timestamps are the sender's)
/// must not multiply them; the default time window admits about 170 hours.
const MAX_OPEN_HOURS: usize = 256;

/// Buffers calls and writes them as hourly Parquet parts.
pub struct HistoryWriter {
    dir: PathBuf,
    flush_rows: usize,
    retention: Duration,
    buffered: usize,
    /// Event-time hour → its rows, copied into columns as they come (while the call
    /// is still in cache; it is not held until the flush).
    hours: BTreeMap<i64, HourRows>,
    /// The newest hour written so far and how many rows its last flush held: the next
    /// buffer for that hour (or a newer one) starts at that size instead of doubling its
    /// way there, copying every column each time. Older hours (late calls) start small.
    newest_hour: Option<(i64, usize)>,
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
            newest_hour: None,
            seq: 0,
            written: 0,
        }
    }

    /// Buffers one call; writes the buffer once it reaches the flush size.
    pub fn append(&mut self, call: impl Borrow<Call>, learned: bool) -> Result<(), BaselineError> {
        let call = call.borrow();
        let hour = call.event_time_ns.div_euclid(NS_PER_HOUR);
        let first_rows = match self.newest_hour {
            Some((newest, rows)) if hour >= newest => rows.clamp(FIRST_CAPACITY, self.flush_rows),
            _ => FIRST_CAPACITY,
        };
        let rows = self
            .hours
            .entry(hour)
            .or_insert_with(|| HourRows::with_capacity(first_rows));
        rows.columns.push(call, learned);
        self.buffered += 1;
        if self.buffered >= self.flush_rows || self.hours.len() > MAX_OPEN_HOURS {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes every buffered row (one file per hour touched).
    pub fn flush(&mut self) -> Result<(), BaselineError> {
        while let Some((hour, rows)) = self.hours.pop_first() {
            let part = self.dir.join(hour_dir_name(hour));
            let batches = rows.into_batches();
            if let Err(e) = self.write_part(&part, &batches) {
                let kept = HourRows {
                    unwritten: batches,
                    ..HourRows::new()
                };
                self.hours.insert(hour, kept);
                return Err(e);
            }
            let n: usize = batches.iter().map(RecordBatch::num_rows).sum();
            if self.newest_hour.is_none_or(|(newest, _)| hour >= newest) {
                self.newest_hour = Some((hour, n));
            }
            self.buffered -= n;
            self.written += n as u64;
        }
        Ok(())
    }

    /// Writes one part file into `part` (an hour's directory), whole or not at all.
    fn write_part(&mut self, part: &Path, batches: &[RecordBatch]) -> Result<(), BaselineError> {
        std::fs::create_dir_all(part).map_err(|e| BaselineError::io(part, e))?;
        self.seq += 1;
        let stamp = chrono::Utc::now().timestamp_micros();
        let name = format!(
            "part-{stamp}-{}-{:06}.parquet",
            std::process::id(),
            self.seq
        );
        let tmp = part.join(format!(".{name}.tmp"));
        let result = write_parquet_with(&tmp, batches, CALLS_LAYOUT, ZSTD_LEVEL).and_then(|()| {
            std::fs::rename(&tmp, part.join(&name)).map_err(|e| BaselineError::io(&tmp, e))
        });
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
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
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::{Float64Type, TimestampNanosecondType};
    use datafusion::arrow::util::display::array_value_to_string;
    use eastwest_model::{Entry, Protocol, Workload};

    use super::*;

    #[test]
    fn calls_spread_over_many_hours_are_written_before_their_builders_pile_up() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = HistoryWriter::new(dir.path(), Duration::from_secs(3600 * 1000), 1 << 20);
        for hour in 0..=MAX_OPEN_HOURS as i64 {
            let call = Call {
                event_time_ns: 1_767_607_200_000_000_000 + hour * NS_PER_HOUR,
                ..full_call()
            };
            writer.append(call, false).unwrap();
        }
        assert_eq!(
            writer.buffered(),
            0,
            "one hour too many: everything written"
        );
        assert_eq!(writer.written, MAX_OPEN_HOURS as u64 + 1);
        let parts = std::fs::read_dir(dir.path().join(CALLS_DIR))
            .unwrap()
            .count();
        assert_eq!(parts, MAX_OPEN_HOURS + 1);
    }

    #[test]
    fn the_newest_hour_starts_at_its_last_flush_size_and_late_hours_small() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = HistoryWriter::new(dir.path(), Duration::from_secs(3600 * 1000), 100);
        let at = |hour: i64| Call {
            event_time_ns: 1_767_607_200_000_000_000 + hour * NS_PER_HOUR,
            ..full_call()
        };
        for _ in 0..100 {
            writer.append(at(5), false).unwrap();
        }
        assert_eq!(writer.buffered(), 0, "the flush size wrote them");
        writer.append(at(5), false).unwrap();
        writer.append(at(6), false).unwrap();
        writer.append(at(4), false).unwrap();
        let capacity = |hour: i64| {
            writer.hours[&(1_767_607_200 / 3600 + hour)]
                .columns
                .rows_capacity()
        };
        assert_eq!(capacity(5), 100);
        assert_eq!(capacity(6), 100, "a newer hour too");
        assert_eq!(capacity(4), FIRST_CAPACITY, "a late hour starts small");
    }

    #[test]
    fn hour_dir_names_round_trip() {
        let hour = 1_767_571_200 / 3600 + 13;
        assert_eq!(hour_dir_name(hour), "hour=2026-01-05T13");
        assert_eq!(parse_hour_dir(&hour_dir_name(hour)), Some(hour));
        assert_eq!(parse_hour_dir("hour=garbage"), None);
    }

    /// A call whose every field holds a value no other field holds.
    fn full_call() -> Call {
        Call {
            event_time_ns: 1_767_607_200_000_000_007,
            source: Workload::new("web")
                .in_namespace("shop")
                .with_principal("spiffe://td/ns/shop/sa/web"),
            destination: Workload::new("users")
                .in_namespace("accounts")
                .with_principal("spiffe://td/ns/accounts/sa/users"),
            protocol: Protocol::Grpc,
            method: "POST".into(),
            route: "/users.Users/Get".into(),
            status: Some(14),
            error: true,
            duration_ns: 1234,
            mtls: Some(false),
            trace_id: "0af7651916cd43dd8448eb211c80319c".into(),
            span_id: "b7ad6b7169203331".into(),
            entry: Some(Entry {
                service: "gateway".into(),
                route: "GET /login".into(),
            }),
            response_flags: Some("UF".into()),
            destination_address: Some("users.accounts.svc:8080".into()),
            source_version: Some("v2".into()),
            request_id: Some("5f3c0f2e-0000-4000-8000-000000000001".into()),
            weight: 4.0,
            claimed_principal: None,
            request_bytes: Some(10),
            response_bytes: Some(20),
        }
    }

    fn text(batch: &RecordBatch, column: &str, row: usize) -> Option<String> {
        let array = batch.column_by_name(column).expect("a calls column");
        (!array.is_null(row)).then(|| array_value_to_string(array, row).unwrap())
    }

    #[test]
    fn every_column_holds_its_field_and_absent_fields_are_null() {
        let full = full_call();
        let bare = Call {
            source: Workload::new("job"),
            destination: Workload::new("db"),
            method: "GET".into(),
            route: "/".into(),
            trace_id: "1".into(),
            span_id: "2".into(),
            weight: f64::NAN,
            ..Default::default()
        };
        let batch = calls_batch(&[(full.clone(), true), (bare, false)]);
        assert_eq!(batch.num_rows(), 2);

        let expected = [
            ("source", Some("web.shop"), Some("job")),
            ("source_service", Some("web"), Some("job")),
            ("source_namespace", Some("shop"), None),
            ("source_principal", Some("spiffe://td/ns/shop/sa/web"), None),
            ("destination", Some("users.accounts"), Some("db")),
            ("destination_service", Some("users"), Some("db")),
            ("destination_namespace", Some("accounts"), None),
            (
                "destination_principal",
                Some("spiffe://td/ns/accounts/sa/users"),
                None,
            ),
            ("protocol", Some("grpc"), Some("http")),
            ("method", Some("POST"), Some("GET")),
            ("route", Some("/users.Users/Get"), Some("/")),
            ("status", Some("14"), None),
            ("error", Some("true"), Some("false")),
            ("duration_ns", Some("1234"), Some("0")),
            ("mtls", Some("false"), None),
            (
                "trace_id",
                Some("0af7651916cd43dd8448eb211c80319c"),
                Some("1"),
            ),
            ("span_id", Some("b7ad6b7169203331"), Some("2")),
            ("entry_service", Some("gateway"), None),
            ("entry_route", Some("GET /login"), None),
            ("response_flags", Some("UF"), None),
            ("destination_address", Some("users.accounts.svc:8080"), None),
            ("source_version", Some("v2"), None),
            (
                "request_id",
                Some("5f3c0f2e-0000-4000-8000-000000000001"),
                None,
            ),
            ("learned", Some("true"), Some("false")),
            ("request_bytes", Some("10"), None),
            ("response_bytes", Some("20"), None),
        ];
        for (column, first, second) in expected {
            assert_eq!(text(&batch, column, 0).as_deref(), first, "{column}");
            assert_eq!(text(&batch, column, 1).as_deref(), second, "{column}");
        }
        let time = batch.column_by_name("time").unwrap();
        assert_eq!(
            time.as_primitive::<TimestampNanosecondType>().value(0),
            full.event_time_ns
        );
        // A weight the learner would not count as one is written as it counts it.
        let weights = batch.column_by_name("weight").unwrap();
        assert_eq!(weights.as_primitive::<Float64Type>().values(), &[4.0, 1.0]);
        // Every column of the schema was checked above.
        assert_eq!(expected.len() + 2, batch.num_columns());
    }
}
