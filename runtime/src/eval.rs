//! `eval`: a labelled scenario through the runtime `serve` runs, scored. The scenario's
//! export requests go through the receivers' admission path (validation, the wall-clock
//! window, the bounded queue) into the one pipeline; the alerts scored are the ones the
//! alert store holds when it has drained. Only the sockets are left out.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use eastwest_api::store::{AlertFilter, Cursor};
use eastwest_collector::{IngestError, wall_clock_ns};
use eastwest_datasets::ScenarioData;
use eastwest_detector::{DEFAULT_SLACK, EvalReport};
use eastwest_model::{Alert, Call};
use parking_lot::Mutex;

use crate::RuntimeError;
use crate::config::EastwestConfig;
use crate::core::Core;

/// What one run of a scenario produced.
#[derive(Debug)]
pub struct ScenarioRun {
    pub calls: Vec<Call>,
    pub alerts: Vec<Alert>,
    /// When detection started (event time), `i64::MAX` if learning never ended.
    pub detect_from: i64,
    /// Event time the scenario was moved by to lie before the wall clock.
    pub shifted_ns: i64,
}

/// Runs a scenario directory and scores it.
pub async fn evaluate_dir(dir: &Path, config: &EastwestConfig) -> Result<EvalReport, RuntimeError> {
    let data = eastwest_datasets::read_scenario_dir(dir)?;
    Ok(evaluate_data(data, config).await?.0)
}

/// Runs a scenario held in memory (a real-trace suite) and scores it. Also returns the
/// event time the scenario was moved by, which maps alert times back onto its timeline.
pub async fn evaluate_data(
    data: ScenarioData,
    config: &EastwestConfig,
) -> Result<(EvalReport, i64), RuntimeError> {
    let labels = data.labels.clone();
    let run = run_scenario(data, config).await?;
    let shift = chrono::Duration::nanoseconds(run.shifted_ns);
    let labels: Vec<_> = labels
        .into_iter()
        .map(|mut l| {
            l.start += shift;
            l.end += shift;
            l
        })
        .collect();
    let report = eastwest_detector::score(
        &run.calls,
        &run.alerts,
        run.detect_from,
        &labels,
        DEFAULT_SLACK,
    );
    Ok((report, run.shifted_ns))
}

/// Feeds a scenario (moved by whole days to just before now) through a fresh runtime
/// whose data dir is temporary, with the scenario's learning period, and collects what
/// it raised. History files are not written (nothing reads them here).
pub async fn run_scenario(
    mut data: ScenarioData,
    config: &EastwestConfig,
) -> Result<ScenarioRun, RuntimeError> {
    let learning_period = humantime::parse_duration(&data.meta.learning_period).map_err(|_| {
        RuntimeError::Config {
            section: "scenario.json".into(),
            reason: format!("bad learning_period {:?}", data.meta.learning_period),
        }
    })?;
    let tmp = tempfile::tempdir().map_err(RuntimeError::TempDir)?;
    let mut config = config.clone();
    config.data_dir = tmp.path().to_path_buf();
    config.storage.history = false;
    // A throwaway data dir: nothing to keep over a crash, no 16 MiB to allocate per run.
    config.storage.alert_spool_bytes = 0;
    config.webhooks.clear();
    config.baseline.learning_period = learning_period;
    config.validate()?;
    let shifted_ns = eastwest_datasets::retime_scenario(&mut data, wall_clock_ns());

    let tap = Arc::new(Mutex::new(Vec::new()));
    let core = Core::start(&config, Some(tap.clone()))?;
    let admission = core.admission(&config);
    for req in data.traces {
        wait_for_room(&core.parts.tx).await;
        admit(admission.traces(req).await)?;
    }
    for req in data.logs {
        wait_for_room(&core.parts.tx).await;
        admit(admission.logs(req).await)?;
    }
    drop(admission);
    let store = core.parts.store.clone();
    if !core.finish().await {
        return Err(RuntimeError::StageFailed("pipeline"));
    }
    let alerts = store.run(all_alerts).await?;
    let calls = std::mem::take(&mut *tap.lock());
    // Learning starts at the first call the engine sees (the earliest: calls reach it in
    // event-time order) and lasts the learning period.
    let detect_from = calls
        .first()
        .map(|c| {
            c.event_time_ns
                .saturating_add(learning_period.as_nanos() as i64)
        })
        .unwrap_or(i64::MAX);
    Ok(ScenarioRun {
        calls,
        alerts,
        detect_from,
        shifted_ns,
    })
}

/// A client waits and retries when the queue is full; this feeder is the queue's only
/// sender, so room seen here is still there when the request is admitted.
async fn wait_for_room(tx: &tokio::sync::mpsc::Sender<eastwest_collector::Queued>) {
    while tx.capacity() == 0 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn admit(
    result: Result<eastwest_collector::otlp::Rejections, IngestError>,
) -> Result<(), RuntimeError> {
    match result {
        Ok(r) if r.count == 0 => Ok(()),
        Ok(r) => Err(RuntimeError::Config {
            section: "scenario".into(),
            reason: format!("the receivers refused part of the scenario: {}", r.message),
        }),
        Err(e) => Err(RuntimeError::Config {
            section: "scenario".into(),
            reason: format!("the receivers refused a request: {e}"),
        }),
    }
}

fn all_alerts(store: &eastwest_api::AlertStore) -> Result<Vec<Alert>, eastwest_api::ApiError> {
    let mut out = Vec::new();
    let mut before: Option<Cursor> = None;
    loop {
        let page = store.list_alerts(&AlertFilter {
            limit: eastwest_api::store::MAX_PAGE,
            before: before.clone(),
            ..Default::default()
        })?;
        out.extend(page.alerts);
        match page.next {
            Some(next) => before = Some(Cursor::parse(&next)?),
            None => return Ok(out),
        }
    }
}
