//! The data dir as `serve` uses it: the baseline restored at start and snapshotted
//! periodically and at shutdown, and every call appended to the Parquet history by a
//! writer thread behind a bounded queue (a full queue drops rows, counted, never blocks
//! ingest).
//!
//! While the history cannot be written (a full disk) the writer says so
//! ([`StorageMetrics::history_failing`], which readiness reads), keeps a few flushes'
//! worth of rows for the next attempt and drops (and counts) the rest. It retries every
//! flush interval; with nothing buffered it probes the disk with a small file, so the
//! process turns ready again once space returns, traffic or not.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use eastwest_baseline::{BASELINE_DIR, Baseline, BaselineConfig, HistoryWriter, SnapshotData};
use eastwest_model::Call;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use serde::{Deserialize, Serialize};

pub const DEFAULT_HISTORY_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
pub const DEFAULT_SNAPSHOT_INTERVAL: Duration = Duration::from_secs(300);
pub const DEFAULT_HISTORY_FLUSH_INTERVAL: Duration = Duration::from_secs(10);
pub const DEFAULT_HISTORY_FLUSH_ROWS: usize = eastwest_baseline::DEFAULT_FLUSH_ROWS;
/// Batches of calls waiting for the history writer.
pub const DEFAULT_HISTORY_QUEUE: usize = 256;
/// Room for alerts while the alert store cannot write: some 5,000 typical alerts.
pub const DEFAULT_ALERT_SPOOL_BYTES: u64 = 16 * 1024 * 1024;
/// Rows kept for the next attempt when history writes fail, in flushes' worth.
const HISTORY_KEEP_FLUSHES: usize = 4;
/// What the writability probe writes: small, but more than a directory entry.
const PROBE_BYTES: usize = 64 * 1024;
const PROBE_FILE: &str = ".write-probe";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Append every call to `calls/` as Parquet (for `eastwest sql` and `baseline rebuild`).
    pub history: bool,
    /// Hour partitions older than this (by the wall clock) are deleted.
    #[serde(with = "humantime_serde")]
    pub history_retention: Duration,
    /// Daily per-edge roll-ups (`daily/`, the `daily_edges` table) older than this are
    /// deleted: they keep a year of audit evidence after the raw hours are gone.
    #[serde(with = "humantime_serde")]
    pub rollup_retention: Duration,
    /// Buffered rows are written at least this often (wall time)…
    #[serde(with = "humantime_serde")]
    pub history_flush_interval: Duration,
    /// …or as soon as this many are buffered.
    pub history_flush_rows: usize,
    pub history_queue: usize,
    /// Wall time between baseline snapshots (one is always written at shutdown).
    #[serde(with = "humantime_serde")]
    pub snapshot_interval: Duration,
    /// Size of `alerts.spool`, allocated at start: where alerts wait, surviving a crash,
    /// while the alert store cannot write (a full disk). 0 turns it off.
    pub alert_spool_bytes: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            history: true,
            history_retention: DEFAULT_HISTORY_RETENTION,
            rollup_retention: eastwest_baseline::DEFAULT_ROLLUP_RETENTION,
            history_flush_interval: DEFAULT_HISTORY_FLUSH_INTERVAL,
            history_flush_rows: DEFAULT_HISTORY_FLUSH_ROWS,
            history_queue: DEFAULT_HISTORY_QUEUE,
            snapshot_interval: DEFAULT_SNAPSHOT_INTERVAL,
            alert_spool_bytes: DEFAULT_ALERT_SPOOL_BYTES,
        }
    }
}

impl StorageConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.rollup_retention < self.history_retention {
            return Err(
                "rollup_retention must be at least history_retention (roll-ups outlive the raw history)"
                    .into(),
            );
        }
        if self.history_retention.is_zero()
            || self.history_flush_interval.is_zero()
            || self.snapshot_interval.is_zero()
        {
            return Err("history_retention, history_flush_interval and snapshot_interval must be greater than zero".into());
        }
        if self.history_flush_rows == 0 || self.history_queue == 0 {
            return Err("history_flush_rows and history_queue must be at least 1".into());
        }
        let min = eastwest_api::store::MIN_SPOOL_BYTES;
        if self.alert_spool_bytes != 0 && self.alert_spool_bytes < min {
            return Err(format!(
                "alert_spool_bytes must be 0 (no spool) or at least {min}"
            ));
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
    /// Set while history writes fail, cleared by the next write (or probe) that succeeds.
    pub history_failing: AtomicBool,
}

impl StorageMetrics {
    pub fn history_failing(&self) -> bool {
        self.history_failing.load(Ordering::Relaxed)
    }

    /// Records a write's outcome; logs when it changes.
    fn set_history_failing(&self, failing: bool) {
        if self.history_failing.swap(failing, Ordering::Relaxed) != failing {
            if failing {
                tracing::error!("the call history cannot be written; not ready until it can");
            } else {
                tracing::info!("the call history is written again");
            }
        }
    }
}

/// Read at scrape time; the writer thread only bumps atomics.
impl Collector for StorageMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        for (name, help, v) in [
            (
                "eastwest_history_rows_written",
                "Calls written to the Parquet history.",
                &self.history_rows_written,
            ),
            (
                "eastwest_history_rows_dropped",
                "Calls not written to the history (queue full or write error).",
                &self.history_rows_dropped,
            ),
            (
                "eastwest_history_write_errors",
                "Failed history writes (e.g. disk full).",
                &self.history_write_errors,
            ),
            (
                "eastwest_baseline_snapshots_written",
                "Baseline snapshots written.",
                &self.snapshots_written,
            ),
            (
                "eastwest_baseline_snapshot_errors",
                "Baseline snapshots that failed to write.",
                &self.snapshot_errors,
            ),
        ] {
            // The encoder appends `_total` to counter names.
            let counter = ConstCounter::new(v.load(Ordering::Relaxed));
            counter.encode(encoder.encode_descriptor(
                name,
                help,
                None,
                counter.metric_type(),
            )?)?;
        }
        let gauge = ConstGauge::new(i64::from(self.history_failing()));
        gauge.encode(encoder.encode_descriptor(
            "eastwest_history_write_failing",
            "1 while the call history cannot be written (the process is not ready).",
            None,
            gauge.metric_type(),
        )?)
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
    tx: SyncSender<Vec<(Arc<Call>, bool)>>,
    metrics: Arc<StorageMetrics>,
}

impl HistorySink {
    pub fn send(&self, rows: Vec<(Arc<Call>, bool)>) {
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
    exit: crate::core::ExitSignal,
) -> Result<(HistorySink, std::thread::JoinHandle<()>), crate::RuntimeError> {
    let (tx, rx) = std::sync::mpsc::sync_channel(config.history_queue);
    let writer = HistoryWriter::new(
        data_dir,
        config.history_retention,
        config.history_flush_rows,
    );
    let interval = config.history_flush_interval;
    let retention = (config.history_retention, config.rollup_retention);
    let m = metrics.clone();
    let dir = data_dir.to_path_buf();
    let handle = std::thread::Builder::new()
        .name("eastwest-history".into())
        .spawn(move || {
            let _exit = exit;
            run_history(&dir, writer, rx, interval, retention, &m)
        })
        .map_err(|source| crate::RuntimeError::Thread {
            stage: "history writer",
            source,
        })?;
    Ok((HistorySink { tx, metrics }, handle))
}

fn run_history(
    data_dir: &Path,
    mut writer: HistoryWriter,
    rx: Receiver<Vec<(Arc<Call>, bool)>>,
    interval: Duration,
    (history_retention, rollup_retention): (Duration, Duration),
    metrics: &StorageMetrics,
) {
    let mut last_flush = Instant::now();
    let mut last_pruned_hour = 0i64;
    let calls_dir = data_dir.join(eastwest_baseline::CALLS_DIR);
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
            if metrics.history_failing() && writer.buffered() == 0 {
                probe(&calls_dir, metrics);
            }
            last_flush = Instant::now();
            // By the wall clock: a forged timestamp must not delete today's history.
            let now_ns = eastwest_collector::wall_clock_ns();
            let hour = now_ns / 3_600_000_000_000;
            // Days that closed are rolled up before their first hours are pruned, and
            // once more at shutdown so a stop leaves every closed day rolled up.
            if hour > last_pruned_hour || closed {
                last_pruned_hour = hour;
                if let Err(e) = eastwest_baseline::maintain_blocking(
                    data_dir,
                    now_ns,
                    history_retention,
                    rollup_retention,
                ) {
                    // Pruned all the same: the retention bounds the disk the history takes.
                    tracing::warn!(error = %e, "daily roll-ups failed");
                }
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

fn append(writer: &mut HistoryWriter, call: Arc<Call>, learned: bool, metrics: &StorageMetrics) {
    let before = writer.written;
    let result = writer.append(call, learned);
    counted(writer, before, result, metrics);
}

fn flush(writer: &mut HistoryWriter, metrics: &StorageMetrics) {
    let before = writer.written;
    let result = writer.flush();
    counted(writer, before, result, metrics);
}

fn counted(
    writer: &mut HistoryWriter,
    before: u64,
    result: Result<(), eastwest_baseline::BaselineError>,
    metrics: &StorageMetrics,
) {
    let written = writer.written - before;
    metrics
        .history_rows_written
        .fetch_add(written, Ordering::Relaxed);
    match result {
        Err(e) => on_write_error(writer, &e, metrics),
        Ok(()) if written > 0 => metrics.set_history_failing(false),
        Ok(()) => {}
    }
}

/// Whether the history's disk takes a write again, when there are no rows to try.
fn probe(calls_dir: &Path, metrics: &StorageMetrics) {
    use std::io::Write;
    let path = calls_dir.join(PROBE_FILE);
    let written = std::fs::create_dir_all(calls_dir)
        .and_then(|()| std::fs::File::create(&path))
        .and_then(|mut f| {
            f.write_all(&[0u8; PROBE_BYTES])?;
            f.sync_all()
        });
    let _ = std::fs::remove_file(&path);
    if written.is_ok() {
        metrics.set_history_failing(false);
    }
}

/// A failed write keeps its rows for the next attempt, but never more than a few flushes'
/// worth: past that they are dropped and counted so memory stays bounded.
fn on_write_error(
    writer: &mut HistoryWriter,
    e: &eastwest_baseline::BaselineError,
    metrics: &StorageMetrics,
) {
    metrics.history_write_errors.fetch_add(1, Ordering::Relaxed);
    if metrics.history_failing() {
        tracing::debug!(error = %e, "writing call history failed again");
    } else {
        tracing::error!(error = %e, "writing call history failed");
    }
    metrics.set_history_failing(true);
    let dropped = writer.discard_if_over(HISTORY_KEEP_FLUSHES);
    metrics
        .history_rows_dropped
        .fetch_add(dropped as u64, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait_until(what: &str, done: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn call(t: i64) -> Call {
        Call {
            event_time_ns: 1_767_571_200_000_000_000 + t,
            ..Default::default()
        }
    }

    /// A file where the history's directory should be makes every write fail, as a full
    /// disk does; removing it lets them succeed again.
    #[test]
    fn failing_history_writes_are_reported_until_a_write_succeeds_traffic_or_not() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join(eastwest_baseline::CALLS_DIR);
        std::fs::write(&blocker, "not a directory").unwrap();
        let config = StorageConfig {
            history_flush_interval: Duration::from_millis(50),
            history_flush_rows: 10,
            ..Default::default()
        };
        let metrics = Arc::new(StorageMetrics::default());
        let (exit, _exited) = crate::core::exit_signal();
        let (sink, thread) = start_history(&config, dir.path(), metrics.clone(), exit).unwrap();

        // Past the rows kept for a retry (4 flushes' worth, 40) the buffer is dropped and
        // counted: twice 41 rows, so nothing is left to retry with.
        sink.send((0..82).map(|t| (Arc::new(call(t)), true)).collect());
        wait_until("the failure is reported", || metrics.history_failing());
        wait_until("the rows are dropped", || {
            metrics.history_rows_dropped.load(Ordering::Relaxed) == 82
        });
        assert!(metrics.history_write_errors.load(Ordering::Relaxed) > 0);
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(metrics.clone()));
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains("# TYPE eastwest_history_write_failing gauge\n"),
            "{text}"
        );
        assert!(
            text.contains("eastwest_history_rows_dropped_total 82\n"),
            "{text}"
        );
        assert!(
            text.contains("eastwest_history_write_failing 1\n"),
            "{text}"
        );

        // Nothing is buffered any more: the probe sees the disk take writes again.
        std::fs::remove_file(&blocker).unwrap();
        wait_until("the history is writable again", || {
            !metrics.history_failing()
        });
        assert!(
            !dir.path()
                .join(eastwest_baseline::CALLS_DIR)
                .join(PROBE_FILE)
                .exists()
        );

        sink.send(vec![(Arc::new(call(200)), true)]);
        drop(sink);
        thread.join().unwrap();
        assert_eq!(metrics.history_rows_written.load(Ordering::Relaxed), 1);
        assert!(!metrics.history_failing());
    }
}
