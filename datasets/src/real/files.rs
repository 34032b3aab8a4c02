//! A Nezha folder on disk: its one-minute trace files (plain or gzip), grouped into the
//! windows they were recorded in, and the fault lists that say what was injected when.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use serde::Deserialize;

use crate::convert::{NezhaRow, parse_nezha_rows, read_text};
use crate::error::DatasetError;

const MINUTE_NS: i64 = 60_000_000_000;

/// One `HH_MM_trace.csv[.gz]` file and the minute its name gives (UTC).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct TraceFile {
    pub minute: NaiveDateTime,
    pub path: PathBuf,
}

impl TraceFile {
    /// `rca_data/2022-08-22/trace/04_02_trace.csv.gz` → 2022-08-22 04:02.
    pub fn parse(path: &Path) -> Option<Self> {
        let name = path.file_name()?.to_str()?;
        let stem = name
            .strip_suffix("_trace.csv.gz")
            .or_else(|| name.strip_suffix("_trace.csv"))?;
        let (h, m) = stem.split_once('_')?;
        let time = NaiveTime::from_hms_opt(h.parse().ok()?, m.parse().ok()?, 0)?;
        let date_dir = path.parent()?.parent()?.file_name()?.to_str()?;
        let date = NaiveDate::parse_from_str(date_dir, "%Y-%m-%d").ok()?;
        Some(Self {
            minute: date.and_time(time),
            path: path.to_path_buf(),
        })
    }

    pub fn minute_ns(&self) -> i64 {
        self.minute
            .and_utc()
            .timestamp_nanos_opt()
            .unwrap_or_default()
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), DatasetError> {
    let entries = std::fs::read_dir(dir).map_err(|e| DatasetError::io(dir, e))?;
    for entry in entries {
        let path = entry.map_err(|e| DatasetError::io(dir, e))?.path();
        if path.is_dir() {
            walk(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

/// Every trace file under `dir`, oldest minute first. A minute stored both plain and
/// gzipped is read once (the plain copy).
pub(crate) fn trace_files(dir: &Path) -> Result<Vec<TraceFile>, DatasetError> {
    let mut paths = Vec::new();
    walk(dir, &mut paths)?;
    let mut files: Vec<TraceFile> = paths.iter().filter_map(|p| TraceFile::parse(p)).collect();
    // Plain before gzip for the same minute (".csv" sorts before ".csv.gz").
    files.sort();
    let mut seen = HashSet::new();
    files.retain(|f| seen.insert(f.minute));
    if files.is_empty() {
        return Err(DatasetError::BadFile {
            path: dir.to_path_buf(),
            detail: "no HH_MM_trace.csv[.gz] files under DATE/trace/ folders".into(),
        });
    }
    Ok(files)
}

/// Consecutive minutes form one recorded window (the dataset keeps ~3 minutes around
/// each fault, minutes apart).
pub(crate) fn group_windows(files: Vec<TraceFile>) -> Vec<Vec<TraceFile>> {
    let mut windows: Vec<Vec<TraceFile>> = Vec::new();
    for f in files {
        match windows.last_mut() {
            Some(w) if f.minute_ns() - w[w.len() - 1].minute_ns() <= MINUTE_NS => w.push(f),
            _ => windows.push(vec![f]),
        }
    }
    windows
}

/// The rows of a window's files, each span once (a trace that crosses a minute boundary
/// is in both files).
pub(crate) fn read_window(files: &[TraceFile]) -> Result<Vec<NezhaRow>, DatasetError> {
    let mut rows = Vec::new();
    let mut seen: HashSet<(Vec<u8>, Vec<u8>)> = HashSet::new();
    for f in files {
        for r in parse_nezha_rows(&f.path, &read_text(&f.path)?)? {
            if seen.insert((r.trace.clone(), r.id.clone())) {
                rows.push(r);
            }
        }
    }
    Ok(rows)
}

/// One injected fault of a `*-fault_list.json`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct RealFault {
    /// Unix nanoseconds as recorded (before the window is moved onto the timeline).
    pub at_ns: i64,
    pub pod: String,
    /// `cpu_contention`, `network_delay`, `exception`, `return`, …
    pub kind: String,
}

#[derive(Deserialize)]
struct FaultEntry {
    inject_timestamp: String,
    inject_pod: String,
    inject_type: String,
}

/// Every fault of every `*fault_list.json` under `dir`, oldest first.
pub(crate) fn fault_lists(dir: &Path) -> Result<Vec<RealFault>, DatasetError> {
    let mut paths = Vec::new();
    walk(dir, &mut paths)?;
    let mut faults = Vec::new();
    for p in paths.iter().filter(|p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with("fault_list.json"))
    }) {
        let text = read_text(p)?;
        let by_hour: std::collections::BTreeMap<String, Vec<FaultEntry>> =
            serde_json::from_str(&text).map_err(|e| DatasetError::BadFile {
                path: p.clone(),
                detail: e.to_string(),
            })?;
        for e in by_hour.into_values().flatten() {
            let secs: i64 = e
                .inject_timestamp
                .parse()
                .map_err(|_| DatasetError::BadFile {
                    path: p.clone(),
                    detail: format!("bad inject_timestamp {:?}", e.inject_timestamp),
                })?;
            faults.push(RealFault {
                at_ns: secs.saturating_mul(1_000_000_000),
                pod: e.inject_pod,
                kind: e.inject_type,
            });
        }
    }
    faults.sort();
    Ok(faults)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(date: &str, name: &str) -> TraceFile {
        TraceFile::parse(&PathBuf::from(format!("x/rca_data/{date}/trace/{name}"))).unwrap()
    }

    #[test]
    fn names_give_the_minute_and_other_files_are_ignored() {
        let f = file("2022-08-22", "04_02_trace.csv.gz");
        assert_eq!(f.minute.to_string(), "2022-08-22 04:02:00");
        assert!(TraceFile::parse(Path::new("x/2022-08-22/trace/notes.csv")).is_none());
        assert!(TraceFile::parse(Path::new("x/nodate/trace/04_02_trace.csv")).is_none());
    }

    #[test]
    fn consecutive_minutes_form_one_window() {
        let files = vec![
            file("2022-08-22", "04_02_trace.csv"),
            file("2022-08-22", "04_03_trace.csv.gz"),
            file("2022-08-22", "04_04_trace.csv.gz"),
            file("2022-08-22", "04_11_trace.csv.gz"),
            file("2022-08-23", "04_12_trace.csv.gz"),
        ];
        let w = group_windows(files);
        let sizes: Vec<usize> = w.iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![3, 1, 1], "a day apart is not consecutive");
    }

    #[test]
    fn plain_and_gzip_copies_of_a_minute_are_read_once() {
        let dir = tempfile::tempdir().unwrap();
        let trace = dir.path().join("rca_data/2022-08-22/trace");
        std::fs::create_dir_all(&trace).unwrap();
        let csv = "TraceID,SpanID,ParentID,PodName,OperationName,StartTimeUnixNano,EndTimeUnixNano,Duration\n\
                   0a,0b,root,frontend-1-a,hipstershop.Frontend/Recv.,10,20,10\n";
        std::fs::write(trace.join("04_02_trace.csv"), csv).unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, csv.as_bytes()).unwrap();
        std::fs::write(trace.join("04_02_trace.csv.gz"), gz.finish().unwrap()).unwrap();
        std::fs::write(trace.join("04_03_trace.csv.gz"), {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            std::io::Write::write_all(&mut gz, csv.as_bytes()).unwrap();
            gz.finish().unwrap()
        })
        .unwrap();
        let files = trace_files(dir.path()).unwrap();
        assert_eq!(files.len(), 2);
        assert!(files[0].path.ends_with("04_02_trace.csv"));
        // The same span in both minutes of the window is kept once.
        let rows = read_window(&files).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].pod, "frontend-1-a");
    }

    #[test]
    fn fault_lists_are_read_in_time_order() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("2022-08-22-fault_list.json"),
            r#"{"05":[{"inject_time":"x","inject_timestamp":"1661144473","inject_pod":"checkoutservice-5-9","inject_type":"exception"}],
                "04":[{"inject_time":"x","inject_timestamp":"1661140927","inject_pod":"frontend-5-t","inject_type":"return"}]}"#,
        )
        .unwrap();
        let faults = fault_lists(dir.path()).unwrap();
        assert_eq!(faults.len(), 2);
        assert_eq!(faults[0].kind, "return");
        assert_eq!(faults[0].at_ns, 1_661_140_927_000_000_000);
    }
}
