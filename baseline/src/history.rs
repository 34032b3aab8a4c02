//! Call history: every call, appended as Parquet under `calls/hour=YYYY-MM-DDTHH/`
//! (event-time hour partitions), with a `learned` flag saying whether the online learner
//! folded it in. `sql` queries it and `baseline rebuild` relearns from it. Old hours are
//! pruned by the history retention.

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Float64Array, RecordBatch, StringArray, StringBuilder,
    TimestampNanosecondArray, UInt32Array, UInt64Array,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use eastwest_model::Call;

use crate::BaselineError;
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

/// A workload key (`Workload::key`) written straight into a column, not allocated.
fn push_key(b: &mut StringBuilder, w: &eastwest_model::Workload) {
    b.write_str(&w.service).expect("writing to memory");
    if let Some(ns) = w.key_namespace() {
        b.write_char('.').expect("writing to memory");
        b.write_str(ns).expect("writing to memory");
    }
    b.append_value("");
}

/// Columns whose values are (nearly) unique per row: written without a dictionary.
const UNIQUE_COLUMNS: &[&str] = &["trace_id", "span_id", "request_id"];

/// Rows as one Arrow batch in the `calls` schema.
pub fn calls_batch<C: Borrow<Call>>(rows: &[(C, bool)]) -> RecordBatch {
    let calls: Vec<&Call> = rows.iter().map(|(c, _)| c.borrow()).collect();
    let strs = |f: &dyn Fn(&Call) -> &str| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(calls.iter().map(|c| f(c))))
    };
    let opt = |f: &dyn Fn(&Call) -> Option<&str>| -> ArrayRef {
        Arc::new(calls.iter().map(|c| f(c)).collect::<StringArray>())
    };
    let keys = |f: &dyn Fn(&Call) -> &eastwest_model::Workload| -> ArrayRef {
        let mut b = StringBuilder::with_capacity(calls.len(), calls.len() * 24);
        for c in &calls {
            push_key(&mut b, f(c));
        }
        Arc::new(b.finish())
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(
            TimestampNanosecondArray::from_iter_values(calls.iter().map(|c| c.event_time_ns))
                .with_timezone("UTC"),
        ),
        keys(&|c| &c.source),
        strs(&|c| &c.source.service),
        opt(&|c| c.source.namespace.as_deref()),
        opt(&|c| c.source.principal.as_deref()),
        keys(&|c| &c.destination),
        strs(&|c| &c.destination.service),
        opt(&|c| c.destination.namespace.as_deref()),
        opt(&|c| c.destination.principal.as_deref()),
        strs(&|c| c.protocol.as_str()),
        strs(&|c| &c.method),
        strs(&|c| &c.route),
        Arc::new(calls.iter().map(|c| c.status).collect::<UInt32Array>()),
        Arc::new(BooleanArray::from(
            calls.iter().map(|c| c.error).collect::<Vec<_>>(),
        )),
        Arc::new(UInt64Array::from_iter_values(
            calls.iter().map(|c| c.duration_ns),
        )),
        Arc::new(calls.iter().map(|c| c.mtls).collect::<BooleanArray>()),
        strs(&|c| &c.trace_id),
        strs(&|c| &c.span_id),
        opt(&|c| c.entry.as_ref().map(|e| e.service.as_str())),
        opt(&|c| c.entry.as_ref().map(|e| e.route.as_str())),
        opt(&|c| c.response_flags.as_deref()),
        opt(&|c| c.destination_address.as_deref()),
        opt(&|c| c.source_version.as_deref()),
        opt(&|c| c.request_id.as_deref()),
        Arc::new(Float64Array::from_iter_values(
            calls.iter().map(|c| weight(c)),
        )),
        Arc::new(BooleanArray::from(
            rows.iter().map(|(_, l)| *l).collect::<Vec<_>>(),
        )),
        Arc::new(
            calls
                .iter()
                .map(|c| c.request_bytes)
                .collect::<UInt64Array>(),
        ),
        Arc::new(
            calls
                .iter()
                .map(|c| c.response_bytes)
                .collect::<UInt64Array>(),
        ),
    ];
    RecordBatch::try_new(calls_schema(), columns).expect("columns match the calls schema")
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
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::{Float64Type, TimestampNanosecondType};
    use datafusion::arrow::util::display::array_value_to_string;
    use eastwest_model::{Entry, Protocol, Workload};

    use super::*;

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
