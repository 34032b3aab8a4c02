//! Baseline snapshots in the data dir: one directory per snapshot with a Parquet file
//! per table and a `manifest.json` (format version, learning state, the open window),
//! written under a temporary name and renamed into place, so a crash or a full disk
//! never leaves a half-written snapshot where a restart would look. The newest few are
//! kept; a corrupt newest snapshot falls back to the one before it.

use std::fs::File;
use std::path::{Path, PathBuf};

use datafusion::arrow::array::{RecordBatch, RecordBatchReader};
use datafusion::arrow::compute::concat_batches;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};
use datafusion::parquet::schema::types::ColumnPath;
use serde::{Deserialize, Serialize};

use crate::BaselineError;
use crate::index::{LookupIndex, Map, NameId, Names, Set};
use crate::learner::{Baseline, BaselineConfig, LearningState, OpenWindow};
use crate::rollout::RolloutTracker;
use crate::tables;

/// Bumped when a table's schema or the manifest changes incompatibly.
pub const FORMAT_VERSION: u32 = 1;
/// Snapshots kept (the newest and fallbacks for a corrupt newest).
pub const KEEP_SNAPSHOTS: usize = 3;
const PREFIX: &str = "snapshot-";
const MANIFEST: &str = "manifest.json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    pub written_at: String,
    pub state: LearningState,
    pub overflow: u64,
    window: WindowState,
    rollouts: RolloutTracker,
    pub tables: Vec<String>,
}

/// (destination, method, route) of one endpoint a source called in the open window.
type WindowEndpoint = (String, String, String);

/// An edge by name (the manifest never holds interned ids).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct NamedEdge {
    source: String,
    destination: String,
}

/// The open window's accumulators (sorted for stable bytes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct WindowState {
    start_ns: i64,
    source_callees: Vec<(String, Vec<String>)>,
    source_endpoints: Vec<(String, Vec<WindowEndpoint>)>,
    edge_calls: Vec<(NamedEdge, f64)>,
}

impl WindowState {
    pub(crate) fn from_open(w: &OpenWindow, names: &Names) -> Self {
        fn sorted_sets<T, N: Ord>(
            m: &Map<NameId, Set<T>>,
            names: &Names,
            name: impl Fn(&T) -> N,
        ) -> Vec<(String, Vec<N>)> {
            let mut v: Vec<(String, Vec<N>)> = m
                .iter()
                .map(|(k, s)| {
                    let mut s: Vec<N> = s.iter().map(&name).collect();
                    s.sort();
                    (names.name(*k).to_owned(), s)
                })
                .collect();
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v
        }
        let n = |id: &NameId| names.name(*id).to_owned();
        let mut edge_calls: Vec<(NamedEdge, f64)> = w
            .edge_calls
            .iter()
            .map(|(k, v)| {
                let edge = NamedEdge {
                    source: n(&k.source),
                    destination: n(&k.destination),
                };
                (edge, *v)
            })
            .collect();
        edge_calls.sort_by(|a, b| a.0.cmp(&b.0));
        Self {
            start_ns: w.start_ns,
            source_callees: sorted_sets(&w.source_callees, names, n),
            source_endpoints: sorted_sets(&w.source_endpoints, names, |(d, m, r)| {
                (n(d), n(m), n(r))
            }),
            edge_calls,
        }
    }

    pub(crate) fn into_open(self, names: &mut Names) -> OpenWindow {
        let mut open = OpenWindow {
            start_ns: self.start_ns,
            ..Default::default()
        };
        for (source, callees) in self.source_callees {
            let source = names.intern(&source);
            let set = open.source_callees.entry(source).or_default();
            set.extend(callees.iter().map(|c| names.intern(c)));
        }
        for (source, endpoints) in self.source_endpoints {
            let source = names.intern(&source);
            let set = open.source_endpoints.entry(source).or_default();
            for (d, m, r) in endpoints {
                set.insert((names.intern(&d), names.intern(&m), names.intern(&r)));
            }
        }
        for (edge, calls) in self.edge_calls {
            let key = names.intern_edge(&edge.source, &edge.destination);
            open.edge_calls.insert(key, calls);
        }
        open
    }
}

/// A baseline captured for writing: cheap to take under the engine's lock, written
/// outside it.
pub struct SnapshotData {
    tables: Vec<(&'static str, RecordBatch)>,
    manifest: Manifest,
}

impl Baseline {
    /// Captures the working tables and learning state.
    pub fn snapshot_data(&self) -> SnapshotData {
        let tables = tables::to_tables(&self.working);
        SnapshotData {
            manifest: Manifest {
                format_version: FORMAT_VERSION,
                written_at: chrono::Utc::now().to_rfc3339(),
                state: self.state,
                overflow: self.overflow,
                window: WindowState::from_open(&self.window, &self.working.names),
                rollouts: self.rollouts.clone(),
                tables: tables.iter().map(|t| t.0.to_string()).collect(),
            },
            tables,
        }
    }

    /// Restores the newest readable snapshot under `dir`; `Ok(None)` when there is none.
    /// A corrupt newest snapshot is skipped (with a warning) for the previous one; if none
    /// is readable the newest one's error is returned.
    pub fn restore(
        config: BaselineConfig,
        dir: &Path,
    ) -> Result<Option<(Self, PathBuf)>, BaselineError> {
        let mut first_error = None;
        for snap in list_snapshots(dir)?.into_iter().rev() {
            match load_snapshot(&snap) {
                Ok((mut index, manifest)) => {
                    let window = manifest.window.into_open(&mut index.names);
                    if let Some(e) = &first_error {
                        tracing::warn!(error = %e, fallback = %snap.display(), "newest baseline snapshot unreadable; using an older one");
                    }
                    let b = Baseline::from_parts(
                        config,
                        manifest.state,
                        index,
                        window,
                        manifest.overflow,
                        manifest.rollouts,
                    );
                    return Ok(Some((b, snap)));
                }
                // A newer format is not corruption: never fall back past it silently.
                Err(e @ BaselineError::NewerFormat { .. }) => return Err(e),
                Err(e) => {
                    tracing::warn!(error = %e, "baseline snapshot unreadable");
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(None), Err)
    }
}

impl SnapshotData {
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Writes the snapshot as `dir/snapshot-<n>/` atomically and prunes old ones.
    pub fn write(&self, dir: &Path) -> Result<PathBuf, BaselineError> {
        std::fs::create_dir_all(dir).map_err(|e| BaselineError::io(dir, e))?;
        let existing = list_snapshots(dir)?;
        let next = existing
            .last()
            .and_then(|p| snapshot_seq(p))
            .map_or(1, |n| n + 1);
        let final_dir = dir.join(format!("{PREFIX}{next:08}"));
        let tmp = dir.join(format!(".tmp-{PREFIX}{next:08}"));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(|e| BaselineError::io(&tmp, e))?;
        }
        std::fs::create_dir_all(&tmp).map_err(|e| BaselineError::io(&tmp, e))?;
        let result = self.write_into(&tmp).and_then(|()| {
            std::fs::rename(&tmp, &final_dir).map_err(|e| BaselineError::io(&final_dir, e))?;
            sync_dir(dir)
        });
        if let Err(e) = result {
            // Leave the previous snapshots untouched; drop the partial one.
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
        let mut all = list_snapshots(dir)?;
        while all.len() > KEEP_SNAPSHOTS {
            let old = all.remove(0);
            if let Err(e) = std::fs::remove_dir_all(&old) {
                tracing::warn!(path = %old.display(), error = %e, "cannot prune old snapshot");
            }
        }
        Ok(final_dir)
    }

    fn write_into(&self, dir: &Path) -> Result<(), BaselineError> {
        for (name, batch) in &self.tables {
            write_parquet(&dir.join(format!("{name}.parquet")), batch)?;
        }
        let path = dir.join(MANIFEST);
        let json = serde_json::to_vec_pretty(&self.manifest).expect("manifest serialises");
        std::fs::write(&path, json).map_err(|e| BaselineError::io(&path, e))?;
        File::open(&path)
            .and_then(|f| f.sync_all())
            .map_err(|e| BaselineError::io(&path, e))?;
        sync_dir(dir)
    }
}

/// zstd level of snapshots and rollups: written seldom, read at every start.
const ZSTD_LEVEL: i32 = 3;

pub(crate) fn write_parquet(path: &Path, batch: &RecordBatch) -> Result<(), BaselineError> {
    write_parquet_with(
        path,
        std::slice::from_ref(batch),
        ColumnLayout::default(),
        ZSTD_LEVEL,
    )
}

/// How a table's columns are written, beyond the defaults (dictionary and min/max
/// statistics for every column).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ColumnLayout<'a> {
    /// Columns whose values hardly repeat, such as random ids: no dictionary (the writer
    /// would only build one and then abandon it).
    pub unique: &'a [&'a str],
    /// When set, the only columns with min/max statistics. A column whose values are
    /// spread over every page (any column of calls but their time) gives no query a page
    /// or row group to skip, while its statistics cost a comparison per value.
    pub statistics_only: Option<&'a [&'a str]>,
}

/// [`write_parquet`] of one or more batches of one schema (the first's), with the given
/// column layout and zstd level.
pub(crate) fn write_parquet_with(
    path: &Path,
    batches: &[RecordBatch],
    layout: ColumnLayout<'_>,
    zstd_level: i32,
) -> Result<(), BaselineError> {
    let Some(first) = batches.first() else {
        return Ok(());
    };
    let file = File::create(path).map_err(|e| BaselineError::io(path, e))?;
    let mut props = WriterProperties::builder().set_compression(Compression::ZSTD(
        ZstdLevel::try_new(zstd_level).expect("valid level"),
    ));
    for column in layout.unique {
        props = props
            .set_column_dictionary_enabled(ColumnPath::from(*column), false)
            .set_column_statistics_enabled(ColumnPath::from(*column), EnabledStatistics::None);
    }
    if let Some(columns) = layout.statistics_only {
        props = props.set_statistics_enabled(EnabledStatistics::None);
        for column in columns {
            props = props
                .set_column_statistics_enabled(ColumnPath::from(*column), EnabledStatistics::Page);
        }
    }
    let props = props.build();
    let mut writer = ArrowWriter::try_new(file, first.schema(), Some(props))
        .map_err(|e| BaselineError::corrupt(path, e))?;
    for batch in batches {
        writer.write(batch).map_err(|e| write_error(path, e))?;
    }
    let file = writer.into_inner().map_err(|e| write_error(path, e))?;
    file.sync_all().map_err(|e| BaselineError::io(path, e))
}

/// Writer errors are almost always I/O (a full disk): report them as such.
fn write_error(path: &Path, e: datafusion::parquet::errors::ParquetError) -> BaselineError {
    BaselineError::io(path, std::io::Error::other(e.to_string()))
}

pub(crate) fn read_parquet(path: &Path) -> Result<RecordBatch, BaselineError> {
    let file = File::open(path).map_err(|e| BaselineError::io(path, e))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.build())
        .map_err(|e| BaselineError::corrupt(path, e))?;
    let schema = reader.schema();
    let batches = reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| BaselineError::corrupt(path, e))?;
    concat_batches(&schema, &batches).map_err(|e| BaselineError::corrupt(path, e))
}

/// Reads one snapshot directory.
pub fn load_snapshot(dir: &Path) -> Result<(LookupIndex, Manifest), BaselineError> {
    let path = dir.join(MANIFEST);
    let bytes = std::fs::read(&path).map_err(|e| BaselineError::io(&path, e))?;
    // Check the version before the full schema so a newer format gets the right error.
    let version: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| BaselineError::corrupt(&path, e))?;
    let found = version["format_version"].as_u64().unwrap_or(0) as u32;
    if found > FORMAT_VERSION {
        return Err(BaselineError::NewerFormat {
            path,
            found,
            supported: FORMAT_VERSION,
        });
    }
    let manifest: Manifest =
        serde_json::from_slice(&bytes).map_err(|e| BaselineError::corrupt(&path, e))?;
    let mut read = Vec::new();
    for name in &manifest.tables {
        let p = dir.join(format!("{name}.parquet"));
        let batch = read_parquet(&p)?;
        read.push((name.clone(), batch, p));
    }
    let refs: Vec<(&str, RecordBatch, &Path)> = read
        .iter()
        .map(|(n, b, p)| (n.as_str(), b.clone(), p.as_path()))
        .collect();
    Ok((tables::from_tables(&refs)?, manifest))
}

/// Complete snapshot directories under `dir`, oldest first.
pub fn list_snapshots(dir: &Path) -> Result<Vec<PathBuf>, BaselineError> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(BaselineError::io(dir, e)),
    };
    let mut out: Vec<PathBuf> = rd
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| snapshot_seq(p).is_some())
        .collect();
    out.sort_by_key(|p| snapshot_seq(p));
    Ok(out)
}

fn snapshot_seq(p: &Path) -> Option<u64> {
    p.file_name()?.to_str()?.strip_prefix(PREFIX)?.parse().ok()
}

fn sync_dir(dir: &Path) -> Result<(), BaselineError> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| BaselineError::io(dir, e))
}
