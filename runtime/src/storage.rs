//! The data dir as `serve` uses it: the baseline restored at start and snapshotted
//! periodically and at shutdown, and every call appended to the Parquet history by a
//! writer thread behind a bounded queue (a full queue drops rows, counted, never blocks
//! ingest).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use eastwest_baseline::{BASELINE_DIR, Baseline, BaselineConfig, HistoryWriter, SnapshotData};
use eastwest_model::Call;
use serde::{Deserialize, Serialize};

pub const DEFAULT_HISTORY_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
pub const DEFAULT_SNAPSHOT_INTERVAL: Duration = Duration::from_secs(300);
pub const DEFAULT_HISTORY_FLUSH_INTERVAL: Duration = Duration::from_secs(10);
pub const DEFAULT_HISTORY_FLUSH_ROWS: usize = eastwest_baseline::DEFAULT_FLUSH_ROWS;
/// Batches of calls waiting for the history writer.
pub const DEFAULT_HISTORY_QUEUE: usize = 256;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Append every call to `calls/` as Parquet (for `eastwest sql` and `baseline rebuild`).
    pub history: bool,
    /// Hour partitions older than this (by the wall clock) are deleted.
    #[serde(with = "humantime_serde")]
    pub history_retention: Duration,
    /// Buffered rows are written at least this often (wall time)…
    #[serde(with = "humantime_serde")]
    pub history_flush_interval: Duration,
    /// …or as soon as this many are buffered.
    pub history_flush_rows: usize,
    pub history_queue: usize,
    /// Wall time between baseline snapshots (one is always written at shutdown).
    #[serde(with = "humantime_serde")]
    pub snapshot_interval: Duration,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            history: true,
            history_retention: DEFAULT_HISTORY_RETENTION,
            history_flush_interval: DEFAULT_HISTORY_FLUSH_INTERVAL,
            history_flush_rows: DEFAULT_HISTORY_FLUSH_ROWS,
            history_queue: DEFAULT_HISTORY_QUEUE,
            snapshot_interval: DEFAULT_SNAPSHOT_INTERVAL,
        }
    }
}

impl StorageConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.history_retention.is_zero()
            || self.history_flush_interval.is_zero()
            || self.snapshot_interval.is_zero()
        {
            return Err("history_retention, history_flush_interval and snapshot_interval must be greater than zero".into());
        }
        if self.history_flush_rows == 0 || self.history_queue == 0 {
            return Err("history_flush_rows and history_queue must be at least 1".into());
        }
        Ok(())
    }
}

#[derive(Debug, Default)]
pub struct StorageMetrics {
    pub history_rows_written: AtomicU64,
    pub history_rows_dropped: AtomicU64,
    pub history_write_errors: AtomicU64,
    pub snapshots_written: AtomicU64,
    pub snapshot_errors: AtomicU64,
}

impl StorageMetrics {
    pub fn write_prometheus(&self, out: &mut String) {
        for (name, help, v) in [
            (
                "eastwest_history_rows_written_total",
                "Calls written to the Parquet history.",
                &self.history_rows_written,
            ),
            (
                "eastwest_history_rows_dropped_total",
                "Calls not written to the history (queue full or write error).",
                &self.history_rows_dropped,
            ),
            (
                "eastwest_history_write_errors_total",
                "Failed history writes (e.g. disk full).",
                &self.history_write_errors,
            ),
            (
                "eastwest_baseline_snapshots_written_total",
                "Baseline snapshots written.",
                &self.snapshots_written,
            ),
            (
                "eastwest_baseline_snapshot_errors_total",
                "Baseline snapshots that failed to write.",
                &self.snapshot_errors,
            ),
        ] {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n",
                v.load(Ordering::Relaxed)
            ));
        }
    }
}

pub fn baseline_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(BASELINE_DIR)
}

/// The newest readable snapshot, or a fresh baseline when there is none.
pub fn restore_baseline(
    config: &BaselineConfig,
    data_dir: &Path,
) -> Result<Baseline, crate::RuntimeError> {
    let dir = baseline_dir(data_dir);
    let restored =
        Baseline::restore(config.clone(), &dir).map_err(|source| crate::RuntimeError::Restore {
            path: dir.clone(),
            source,
        })?;
    match restored {
        Some((b, from)) => {
            tracing::info!(snapshot = %from.display(), edges = b.working().edge_count(), endpoints = b.working().endpoint_count(), "baseline restored");
            Ok(b)
        }
        None => Ok(Baseline::new(config.clone())),
    }
}

/// Writes a captured snapshot, counting the outcome.
pub fn write_snapshot(data: &SnapshotData, data_dir: &Path, metrics: &StorageMetrics) {
    match data.write(&baseline_dir(data_dir)) {
        Ok(path) => {
            metrics.snapshots_written.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(snapshot = %path.display(), "baseline snapshot written");
        }
        Err(e) => {
            metrics.snapshot_errors.fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %e, "baseline snapshot failed; the previous one stays in use");
        }
    }
}

/// Hands calls to the history writer thread.
pub struct HistorySink {
    tx: SyncSender<Vec<(Call, bool)>>,
    metrics: Arc<StorageMetrics>,
}

impl HistorySink {
    pub fn send(&self, rows: Vec<(Call, bool)>) {
        if rows.is_empty() {
            return;
        }
        match self.tx.try_send(rows) {
            Ok(()) => {}
            Err(TrySendError::Full(rows) | TrySendError::Disconnected(rows)) => {
                self.metrics
                    .history_rows_dropped
                    .fetch_add(rows.len() as u64, Ordering::Relaxed);
            }
        }
    }
}

/// Starts the writer thread; it flushes and exits once every sink is dropped.
pub fn start_history(
    config: &StorageConfig,
    data_dir: &Path,
    metrics: Arc<StorageMetrics>,
    exit: crate::serve::ExitSignal,
) -> Result<(HistorySink, std::thread::JoinHandle<()>), crate::RuntimeError> {
    let (tx, rx) = std::sync::mpsc::sync_channel(config.history_queue);
    let writer = HistoryWriter::new(
        data_dir,
        config.history_retention,
        config.history_flush_rows,
    );
    let interval = config.history_flush_interval;
    let m = metrics.clone();
    let handle = std::thread::Builder::new()
        .name("eastwest-history".into())
        .spawn(move || {
            let _exit = exit;
            run_history(writer, rx, interval, &m)
        })
        .map_err(|source| crate::RuntimeError::Thread {
            stage: "history writer",
            source,
        })?;
    Ok((HistorySink { tx, metrics }, handle))
}

fn run_history(
    mut writer: HistoryWriter,
    rx: Receiver<Vec<(Call, bool)>>,
    interval: Duration,
    metrics: &StorageMetrics,
) {
    let mut last_flush = Instant::now();
    let mut last_pruned_hour = 0i64;
    loop {
        let closed = match rx.recv_timeout(interval) {
            Ok(rows) => {
                for (call, learned) in rows {
                    append(&mut writer, call, learned, metrics);
                }
                false
            }
            Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => true,
        };
        if closed || last_flush.elapsed() >= interval {
            flush(&mut writer, metrics);
            last_flush = Instant::now();
            // By the wall clock: a forged timestamp must not delete today's history.
            let now_ns = eastwest_collector::wall_clock_ns();
            let hour = now_ns / 3_600_000_000_000;
            if hour > last_pruned_hour {
                last_pruned_hour = hour;
                if let Err(e) = writer.prune(now_ns) {
                    tracing::warn!(error = %e, "pruning call history failed");
                }
            }
        }
        if closed {
            break;
        }
    }
}

fn append(writer: &mut HistoryWriter, call: Call, learned: bool, metrics: &StorageMetrics) {
    let before = writer.written;
    if let Err(e) = writer.append(call, learned) {
        on_write_error(writer, &e, metrics);
    }
    metrics
        .history_rows_written
        .fetch_add(writer.written - before, Ordering::Relaxed);
}

fn flush(writer: &mut HistoryWriter, metrics: &StorageMetrics) {
    let before = writer.written;
    if let Err(e) = writer.flush() {
        on_write_error(writer, &e, metrics);
    }
    metrics
        .history_rows_written
        .fetch_add(writer.written - before, Ordering::Relaxed);
}

/// A failed write keeps its rows for the next attempt, but never more than a few flushes'
/// worth: past that they are dropped and counted so memory stays bounded.
fn on_write_error(
    writer: &mut HistoryWriter,
    e: &eastwest_baseline::BaselineError,
    metrics: &StorageMetrics,
) {
    metrics.history_write_errors.fetch_add(1, Ordering::Relaxed);
    tracing::error!(error = %e, "writing call history failed");
    let dropped = writer.discard_if_over(4);
    metrics
        .history_rows_dropped
        .fetch_add(dropped as u64, Ordering::Relaxed);
}
