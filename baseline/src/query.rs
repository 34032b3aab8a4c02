//! SQL over the data dir with DataFusion: the `calls` history and the newest baseline
//! snapshot's tables. Only the CLI and `baseline rebuild` use this; the hot path never
//! runs SQL.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, RecordBatch, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::datasource::MemTable;
use datafusion::parquet::file::reader::SerializedFileReader;
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};

use crate::BaselineError;
use crate::history::{CALLS_DIR, calls_schema};
use crate::snapshot::list_snapshots;
use crate::tables::TABLES;

/// Directory under the data dir holding baseline snapshots.
pub const BASELINE_DIR: &str = "baseline";

/// A session with `calls` (empty when there is no history yet) and, when a snapshot
/// exists, every baseline table registered.
pub async fn session(data_dir: &Path) -> Result<SessionContext, BaselineError> {
    let config = SessionConfig::new().with_target_partitions(
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
        ctx.register_parquet(
            "calls",
            &format!("{}/", calls.display()),
            ParquetReadOptions::default(),
        )
        .await?;
    } else {
        let empty = MemTable::try_new(calls_schema(), vec![vec![]])?;
        ctx.register_table("calls", Arc::new(empty))?;
    }
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

/// Runs one SQL statement against the data dir.
pub async fn sql(data_dir: &Path, query: &str) -> Result<Vec<RecordBatch>, BaselineError> {
    let ctx = session(data_dir).await?;
    Ok(ctx.sql(query).await?.collect().await?)
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
