//! SQL over the data dir with DataFusion: the `calls` history, its `daily_edges`
//! roll-ups and the newest baseline snapshot's tables. Only the CLI, `baseline rebuild`
//! and the posture and audit reports use this; the hot path never runs SQL.
//!
//! [`sql`] is read-only: it runs queries (SELECT, WITH … SELECT, EXPLAIN, SHOW,
//! DESCRIBE) over the registered tables and refuses, before anything runs, every plan
//! that defines or changes something (DDL such as `CREATE EXTERNAL TABLE … LOCATION`,
//! DML such as `INSERT` and `COPY … TO`, statements such as `SET`), using DataFusion's
//! own [`SQLOptions`]. The session has no URL tables (`SELECT * FROM '/etc/passwd'`) and
//! only DataFusion's generated table functions (`range`, `generate_series`), so a query
//! cannot read a file outside the data dir's tables either.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, RecordBatch, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::datasource::MemTable;
use datafusion::error::DataFusionError;
use datafusion::execution::context::SQLOptions;
use datafusion::parquet::file::reader::SerializedFileReader;
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};

use crate::BaselineError;
use crate::history::{CALLS_DIR, calls_schema};
use crate::snapshot::list_snapshots;
use crate::tables::TABLES;

/// Directory under the data dir holding baseline snapshots.
pub const BASELINE_DIR: &str = "baseline";

/// A session with `calls` (empty when there is no history yet) and, when a snapshot
/// exists, every baseline table registered. `information_schema` is on so `SHOW TABLES`
/// and `SHOW COLUMNS` work; URL tables stay off.
pub async fn session(data_dir: &Path) -> Result<SessionContext, BaselineError> {
    let config = SessionConfig::new()
        .with_information_schema(true)
        .with_target_partitions(
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
        );
    let ctx = SessionContext::new_with_config(config);
    let calls = data_dir.join(CALLS_DIR);
    let history = parquet_files(&calls);
    // DataFusion's error on a bad file does not say which one: check each footer first.
    for file in &history {
        let reader = std::fs::File::open(file).map_err(|e| BaselineError::io(file, e))?;
        SerializedFileReader::new(reader).map_err(|e| BaselineError::corrupt(file, e))?;
    }
    if !history.is_empty() {
        // The table's schema is the current one, not one inferred from the files: hours
        // written before a column was added (nullable, appended) read it as null, and a
        // history holding only such hours still has every column.
        let schema = calls_schema();
        ctx.register_parquet(
            "calls",
            &format!("{}/", calls.display()),
            ParquetReadOptions::default().schema(&schema),
        )
        .await?;
    } else {
        let empty = MemTable::try_new(calls_schema(), vec![vec![]])?;
        ctx.register_table("calls", Arc::new(empty))?;
    }
    register_daily(&ctx, data_dir).await?;
    if let Some(snap) = list_snapshots(&data_dir.join(BASELINE_DIR))?.last() {
        for table in TABLES {
            let file = snap.join(format!("{table}.parquet"));
            ctx.register_parquet(
                table,
                &file.display().to_string(),
                ParquetReadOptions::default(),
            )
            .await
            .map_err(|e| BaselineError::corrupt(&file, e))?;
        }
    }
    Ok(ctx)
}

/// The daily roll-ups as `daily_edges` (empty when none was written yet).
async fn register_daily(ctx: &SessionContext, data_dir: &Path) -> Result<(), BaselineError> {
    let files = crate::rollup::daily_files(data_dir);
    for file in &files {
        let reader = std::fs::File::open(file).map_err(|e| BaselineError::io(file, e))?;
        SerializedFileReader::new(reader).map_err(|e| BaselineError::corrupt(file, e))?;
    }
    if files.is_empty() {
        let empty = MemTable::try_new(crate::rollup::daily_schema(), vec![vec![]])?;
        ctx.register_table(crate::rollup::DAILY_TABLE, Arc::new(empty))?;
    } else {
        // The current schema, as for `calls`: roll-ups written before a column was added
        // read it as null.
        let dir = data_dir.join(crate::rollup::DAILY_DIR);
        let schema = crate::rollup::daily_schema();
        ctx.register_parquet(
            crate::rollup::DAILY_TABLE,
            &format!("{}/", dir.display()),
            ParquetReadOptions::default().schema(&schema),
        )
        .await?;
    }
    Ok(())
}

/// What [`sql`] lets through: queries only, no DDL, DML or statements.
fn read_only() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

/// Runs one read-only SQL statement against the data dir; anything else is refused with
/// [`BaselineError::ReadOnly`] before it runs.
pub async fn sql(data_dir: &Path, query: &str) -> Result<Vec<RecordBatch>, BaselineError> {
    let ctx = session(data_dir).await?;
    // What `SessionContext::sql_with_options` does, in two steps so a refusal is told
    // apart from a query that fails.
    let plan = ctx.state().create_logical_plan(query).await?;
    read_only().verify_plan(&plan).map_err(|e| match e {
        DataFusionError::Plan(detail) => BaselineError::ReadOnly(detail),
        other => BaselineError::ReadOnly(other.to_string()),
    })?;
    Ok(ctx.execute_logical_plan(plan).await?.collect().await?)
}

/// Batches as an aligned text table.
pub fn format_table(batches: &[RecordBatch]) -> Result<String, BaselineError> {
    Ok(
        datafusion::arrow::util::pretty::pretty_format_batches(batches)
            .map_err(|e| BaselineError::Query(e.to_string()))?
            .to_string(),
    )
}

/// The Parquet files under `dir`, recursively (hour partitions).
fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files = Vec::new();
    for p in rd.filter_map(Result::ok).map(|e| e.path()) {
        if p.is_dir() {
            files.extend(parquet_files(&p));
        } else if p.extension().is_some_and(|x| x == "parquet") {
            files.push(p);
        }
    }
    files
}

/// A string column of a query result (Utf8, LargeUtf8 or Utf8View) as `StringArray`.
pub(crate) fn string_column(batch: &RecordBatch, i: usize) -> Result<StringArray, BaselineError> {
    strings(batch.column(i))
}

/// Any string-typed array (dictionaries included) as `StringArray`.
pub(crate) fn strings(array: &ArrayRef) -> Result<StringArray, BaselineError> {
    let col: ArrayRef =
        cast(array, &DataType::Utf8).map_err(|e| BaselineError::Query(e.to_string()))?;
    Ok(col
        .as_any()
        .downcast_ref::<StringArray>()
        .expect("cast to Utf8 gives a StringArray")
        .clone())
}

/// A numeric column of a query result cast to `T`'s type.
pub(crate) fn typed_column<T: Array + Clone + 'static>(
    batch: &RecordBatch,
    i: usize,
    ty: &DataType,
) -> Result<T, BaselineError> {
    let col = cast(batch.column(i), ty).map_err(|e| BaselineError::Query(e.to_string()))?;
    col.as_any()
        .downcast_ref::<T>()
        .cloned()
        .ok_or_else(|| BaselineError::Query(format!("column {i} is not {ty}")))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use eastwest_model::{Call, Workload};

    use super::*;
    use crate::HistoryWriter;

    /// A data dir with a few calls of history.
    fn data_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let mut w = HistoryWriter::new(dir.path(), Duration::from_secs(7 * 86400), 100);
        for i in 0..3 {
            let call = Call {
                event_time_ns: 1_767_571_200_000_000_000 + i,
                source: Workload::new("cart"),
                destination: Workload::new("users"),
                method: "GET".into(),
                route: "/users/{id}".into(),
                ..Default::default()
            };
            w.append(call, true).unwrap();
        }
        w.flush().unwrap();
        dir
    }

    fn files_under(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap().filter_map(Result::ok) {
            if e.path().is_dir() {
                out.extend(files_under(&e.path()));
            }
            out.push(e.path());
        }
        out.sort();
        out
    }

    #[tokio::test]
    async fn queries_run() {
        let dir = data_dir();
        for query in [
            "SELECT count(*) FROM calls",
            "WITH c AS (SELECT source FROM calls) SELECT count(*) FROM c",
            "EXPLAIN SELECT count(*) FROM calls",
            "SHOW TABLES",
            "DESCRIBE calls",
            "SELECT * FROM range(3)",
        ] {
            let batches = sql(dir.path(), query)
                .await
                .unwrap_or_else(|e| panic!("{query}: {e}"));
            assert!(
                batches.iter().map(|b| b.num_rows()).sum::<usize>() > 0,
                "{query}"
            );
        }
        let count = sql(dir.path(), "SELECT count(*) AS n FROM calls")
            .await
            .unwrap();
        assert!(format_table(&count).unwrap().contains("| 3 "));
    }

    #[tokio::test]
    async fn writes_definitions_and_settings_are_refused_before_they_run() {
        let dir = data_dir();
        let out = tempfile::tempdir().unwrap();
        let target = out.path().join("copied.csv");
        let before = files_under(dir.path());
        for query in [
            format!("COPY (SELECT * FROM calls) TO '{}'", target.display()),
            format!("COPY calls TO '{}' STORED AS PARQUET", target.display()),
            format!(
                "EXPLAIN ANALYZE COPY (SELECT 1) TO '{}' STORED AS CSV",
                target.display()
            ),
            "CREATE EXTERNAL TABLE passwd (line VARCHAR) STORED AS CSV LOCATION '/etc/passwd'"
                .to_string(),
            "CREATE TABLE t AS SELECT * FROM calls".to_string(),
            "CREATE VIEW v AS SELECT 1".to_string(),
            "INSERT INTO calls SELECT * FROM calls".to_string(),
            "EXPLAIN ANALYZE INSERT INTO calls SELECT * FROM calls".to_string(),
            "DELETE FROM calls".to_string(),
            "DROP TABLE calls".to_string(),
            "SET datafusion.execution.batch_size = 1".to_string(),
            "PREPARE q AS SELECT 1".to_string(),
        ] {
            let err = sql(dir.path(), &query).await.unwrap_err();
            assert!(matches!(err, BaselineError::ReadOnly(_)), "{query}: {err}");
            assert!(
                err.to_string()
                    .starts_with("only read-only queries are allowed"),
                "{err}"
            );
        }
        // A query cannot carry a second statement along.
        let two = format!("SELECT 1; COPY (SELECT 1) TO '{}'", target.display());
        assert!(sql(dir.path(), &two).await.is_err());
        assert!(!target.exists(), "COPY wrote a file");
        assert_eq!(files_under(dir.path()), before, "the data dir changed");
        // The refused statements left nothing behind in a fresh session either.
        assert!(sql(dir.path(), "SELECT * FROM passwd").await.is_err());
    }

    #[tokio::test]
    async fn no_file_outside_the_data_dir_can_be_read() {
        let dir = data_dir();
        for query in [
            "SELECT * FROM '/etc/passwd'",
            "SELECT * FROM read_csv('/etc/passwd')",
            "SELECT * FROM read_parquet('/etc/passwd')",
            "SELECT * FROM read_json('/etc/passwd')",
        ] {
            let err = sql(dir.path(), query).await.unwrap_err();
            assert!(err.to_string().contains("not found"), "{query}: {err}");
        }
        // Table functions are the generated-row ones only: a new DataFusion feature that
        // registers a file reader must fail this test.
        let ctx = session(dir.path()).await.unwrap();
        let mut functions: Vec<String> = ctx.state().table_functions().keys().cloned().collect();
        functions.sort();
        assert_eq!(functions, ["generate_series", "range"]);
    }
}
