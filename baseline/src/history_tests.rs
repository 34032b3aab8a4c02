//! Body sizes in the call history: written, read back through the `calls` table that
//! `eastwest sql` and `baseline rebuild` use, and hours written before the columns
//! existed still readable.

use std::path::Path;
use std::time::Duration;

use datafusion::arrow::array::{Array, Int64Array, RecordBatch, UInt64Array};
use eastwest_model::{Call, Workload};

use super::*;
use crate::{BaselineConfig, rebuild, sql};

/// 2026-01-05T10:00:00Z.
const T0: i64 = 1_767_607_200_000_000_000;
const SEC: i64 = 1_000_000_000;

fn call(i: i64, request: Option<u64>, response: Option<u64>) -> Call {
    Call {
        event_time_ns: T0 + i * SEC,
        source: Workload::new("web").in_namespace("shop"),
        destination: Workload::new("users").in_namespace("shop"),
        method: "GET".into(),
        route: "/api/users".into(),
        status: Some(200),
        trace_id: format!("{i:032x}").into(),
        span_id: format!("{i:016x}").into(),
        weight: 1.0,
        request_bytes: request,
        response_bytes: response,
        ..Default::default()
    }
}

fn write(dir: &Path, calls: &[Call]) {
    let mut w = HistoryWriter::new(dir, Duration::from_secs(7 * 86400), 1000);
    for c in calls {
        w.append(c.clone(), true).unwrap();
    }
    w.flush().unwrap();
}

/// One hour partition as a release before the size columns wrote it: today's columns
/// minus the two appended last.
fn write_old_partition(dir: &Path, hour: &str, calls: &[Call]) {
    let rows: Vec<(Call, bool)> = calls.iter().map(|c| (c.clone(), true)).collect();
    let batch = calls_batch(&rows);
    let old = batch
        .project(&(0..batch.num_columns() - 2).collect::<Vec<_>>())
        .unwrap();
    assert!(old.schema().field_with_name("response_bytes").is_err());
    let part = dir.join(CALLS_DIR).join(hour);
    std::fs::create_dir_all(&part).unwrap();
    crate::snapshot::write_parquet(&part.join("part-old.parquet"), &old).unwrap();
}

fn u64_at(b: &RecordBatch, col: usize) -> Option<u64> {
    let a = b
        .column(col)
        .as_any()
        .downcast_ref::<UInt64Array>()
        .unwrap();
    (!a.is_null(0)).then(|| a.value(0))
}

fn i64_at(b: &RecordBatch, col: usize) -> i64 {
    b.column(col)
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap()
        .value(0)
}

const TOTALS: &str = "SELECT sum(response_bytes), sum(request_bytes), \
                      count(response_bytes), count(*) FROM calls";

#[tokio::test]
async fn sizes_round_trip_through_the_history() {
    let dir = tempfile::tempdir().unwrap();
    let calls = [
        call(0, Some(10), Some(1_000)),
        call(1, None, Some(2_500)),
        call(2, Some(5), None),
        call(3600, Some(1), Some(5_000_000)), // the next hour's partition
    ];
    write(dir.path(), &calls);
    let out = sql(dir.path(), TOTALS).await.unwrap();
    assert_eq!(u64_at(&out[0], 0), Some(5_003_500));
    assert_eq!(u64_at(&out[0], 1), Some(16));
    assert_eq!((i64_at(&out[0], 2), i64_at(&out[0], 3)), (3, 4));
    let out = sql(
        dir.path(),
        "SELECT response_bytes FROM calls WHERE request_bytes IS NULL",
    )
    .await
    .unwrap();
    assert_eq!(u64_at(&out[0], 0), Some(2_500));
}

#[tokio::test]
async fn hours_written_before_the_size_columns_still_read() {
    let dir = tempfile::tempdir().unwrap();
    // Only old hours: the columns exist, all null.
    write_old_partition(
        dir.path(),
        "hour=2026-01-05T09",
        &[call(-3600, Some(1), Some(1)), call(-3599, None, None)],
    );
    let out = sql(dir.path(), TOTALS).await.unwrap();
    assert_eq!(u64_at(&out[0], 0), None);
    assert_eq!((i64_at(&out[0], 2), i64_at(&out[0], 3)), (0, 2));

    // Old and new hours together: the sizes come from the new ones only.
    write(
        dir.path(),
        &[call(0, Some(7), Some(700)), call(1, Some(8), Some(800))],
    );
    let out = sql(dir.path(), TOTALS).await.unwrap();
    assert_eq!(u64_at(&out[0], 0), Some(1_500));
    assert_eq!(u64_at(&out[0], 1), Some(15));
    assert_eq!((i64_at(&out[0], 2), i64_at(&out[0], 3)), (2, 4));

    // `baseline rebuild` reads the same table: every learned row, old or new.
    let (_, stats) = rebuild(dir.path(), None, None, &BaselineConfig::default())
        .await
        .unwrap();
    assert_eq!(stats.rows, 4);
}

/// The one part file `write` left in `dir`.
fn only_part_file(dir: &Path) -> std::path::PathBuf {
    let hours: Vec<_> = std::fs::read_dir(dir.join(CALLS_DIR))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(hours.len(), 1, "{hours:?}");
    let files: Vec<_> = std::fs::read_dir(&hours[0])
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    files[0].clone()
}

#[test]
fn only_time_has_statistics_and_ids_have_no_dictionary() {
    use datafusion::parquet::basic::Encoding;
    use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};

    let dir = tempfile::tempdir().unwrap();
    let calls: Vec<Call> = (0..100).map(|i| call(i, Some(10), None)).collect();
    write(dir.path(), &calls);
    let file = std::fs::File::open(only_part_file(dir.path())).unwrap();
    let meta = SerializedFileReader::new(file).unwrap().metadata().clone();
    let group = meta.row_group(0);
    let column = |name: &str| {
        group
            .columns()
            .iter()
            .find(|c| c.column_path().string() == name)
            .unwrap_or_else(|| panic!("no column {name}"))
    };
    assert!(column("time").statistics().is_some());
    for name in ["source", "route", "status", "duration_ns", "trace_id"] {
        assert!(column(name).statistics().is_none(), "{name} has statistics");
    }
    let dictionary = |name: &str| {
        column(name)
            .encodings()
            .any(|e| matches!(e, Encoding::RLE_DICTIONARY | Encoding::PLAIN_DICTIONARY))
    };
    assert!(dictionary("source") && dictionary("route"));
    assert!(!dictionary("trace_id") && !dictionary("span_id"));
}
