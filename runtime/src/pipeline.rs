//! The pipeline task: ingest batches → calls → event-time order → engine → alert sink.
//! This is the one event-time loop: `serve`, `demo` and `eval` all run it. It owns the
//! engine; the API sees what it publishes and asks for changes through commands.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use eastwest_api::AlertSink;
use eastwest_collector::{CallExtractor, Queued, wall_clock_ns};
use eastwest_detector::{Engine, EngineOutput};
use eastwest_model::Call;
use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::clock::EventClock;
use crate::published::{BaselineView, Command, EdgeNames, LiveCounters, LiveState, Published};
use crate::storage::{HistorySink, StorageMetrics, write_snapshot};

/// How often the pipeline looks at the wall clock when no input arrives, and publishes
/// what changed.
const TICK: Duration = Duration::from_millis(250);
/// The baseline view is rebuilt at most this often (it walks every learned endpoint).
const BASELINE_VIEW_INTERVAL: Duration = Duration::from_secs(1);
/// An operator's command (accepting an alert, ending learning) is persisted this soon
/// after it, not only at the next periodic snapshot: a restart in between would undo
/// it. Commands within this delay share one snapshot.
const COMMAND_SNAPSHOT_DELAY: Duration = Duration::from_secs(1);

/// `delay` from now; an interval too long to represent is as good as never.
fn later(delay: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(delay)
        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600))
}

pub struct Pipeline {
    pub extractor: CallExtractor,
    pub engine: Engine,
    pub sink: AlertSink,
    pub published: Arc<Published>,
    pub live: LiveState,
    pub clock: EventClock,
    /// The baseline's window width: end of input advances event time this far past the
    /// newest event, so the last windows close and are judged.
    pub window: Duration,
    pub persistence: Persistence,
    /// The event time the engine was last advanced to.
    pub engine_time_ns: i64,
}

/// Where the pipeline persists: call history rows and periodic baseline snapshots.
pub struct Persistence {
    pub history: Option<HistorySink>,
    pub data_dir: PathBuf,
    pub snapshot_interval: Duration,
    pub metrics: Arc<StorageMetrics>,
    /// Every call handed to the engine, in order (`eval` scores against them).
    pub tap: Option<Arc<Mutex<Vec<Call>>>>,
}

impl Persistence {
    /// Captures the baseline and writes it on a blocking thread.
    async fn snapshot(&self, engine: &Engine) {
        let data = engine.baseline().snapshot_data();
        let (dir, metrics) = (self.data_dir.clone(), self.metrics.clone());
        let written =
            tokio::task::spawn_blocking(move || write_snapshot(&data, &dir, &metrics)).await;
        if let Err(e) = written {
            tracing::error!(error = %e, "snapshot task failed");
        }
    }
}

impl Pipeline {
    /// Runs until every sender of `rx` is gone (receivers stopped), then drains: pending
    /// pairs become calls, the last windows close, and history and baseline are flushed.
    pub async fn run(
        mut self,
        mut rx: mpsc::Receiver<Queued>,
        mut commands: mpsc::Receiver<Command>,
    ) {
        let mut last_input = Instant::now();
        let mut next_snapshot = later(self.persistence.snapshot_interval);
        let mut last_baseline_view: Option<Instant> = None;
        let mut baseline_changed = true;
        self.publish_baseline();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                queued = rx.recv() => match queued {
                    Some(queued) => {
                        last_input = Instant::now();
                        let wall = wall_clock_ns();
                        let (batch, _budget) = queued.into_parts();
                        if let Some(max) = batch.max_event_time_ns() {
                            self.clock.observe_input(max, wall);
                        }
                        let calls = self.extractor.process(batch);
                        self.admit(calls);
                        self.step();
                        baseline_changed = true;
                    }
                    None => break,
                },
                Some(command) = commands.recv() => {
                    self.apply(command);
                    baseline_changed = true;
                    last_baseline_view = None;
                    next_snapshot = next_snapshot.min(later(COMMAND_SNAPSHOT_DELAY));
                }
                _ = tick.tick() => {
                    let wall = wall_clock_ns();
                    self.engine.baseline_mut().set_wall_clock(wall);
                    self.clock.observe_idle(last_input.elapsed(), wall);
                    // Idle advance releases the last calls: the API must see them too.
                    baseline_changed |= self.step();
                    let due = last_baseline_view.is_none_or(|t| t.elapsed() >= BASELINE_VIEW_INTERVAL);
                    if baseline_changed && due {
                        self.publish_baseline();
                        baseline_changed = false;
                        last_baseline_view = Some(Instant::now());
                    }
                    if Instant::now() >= next_snapshot {
                        next_snapshot = later(self.persistence.snapshot_interval);
                        self.persistence.snapshot(&self.engine).await;
                    }
                }
            }
        }
        self.drain();
        // Persist last: the history writer flushes once its sink is dropped.
        self.persistence.snapshot(&self.engine).await;
        self.persistence.history = None;
    }

    fn apply(&mut self, command: Command) {
        match command {
            Command::Accept(alert) => self.engine.baseline_mut().accept_alert(&alert),
            Command::EndLearning(reply) => {
                let now = self.watermark();
                self.engine.end_learning(now);
                self.publish_baseline();
                let _ = reply.try_send(self.engine.baseline().status(now));
            }
        }
    }

    fn watermark(&self) -> i64 {
        self.clock.released().unwrap_or(0).max(0)
    }

    fn publish_baseline(&self) {
        let view = BaselineView::of(&self.engine, self.watermark());
        self.published.baseline.store(Arc::new(view));
    }

    /// End of input: what a server that stays idle long enough would do, at once.
    fn drain(&mut self) {
        let calls = self.extractor.flush();
        self.admit(calls);
        let rest = self.clock.release_all();
        self.handle_calls(rest);
        let newest = self.clock.max_event_ns();
        if newest > 0 {
            let end = newest.saturating_add(self.window.as_nanos().min(i64::MAX as u128) as i64);
            let output = self.engine.advance_to(end);
            self.publish(output);
        }
        let output = self.engine.flush();
        self.publish(output);
        self.publish_counts(true);
        self.publish_baseline();
    }

    /// Moves event time as far as the input allows and hands on what it releases.
    /// Releases what the watermarks allow; true when the engine moved on (so the
    /// baseline the API reads changed).
    fn step(&mut self) -> bool {
        let input = self.clock.input_watermark();
        if input == 0 {
            return false;
        }
        let calls = self.extractor.advance(input);
        self.admit(calls);
        let point = self.extractor.low_watermark(input);
        let ready = self.clock.release(point);
        self.handle_calls(ready);
        let mut moved = false;
        if let Some(released) = self.clock.released()
            && released > self.engine_time_ns
        {
            self.engine_time_ns = released;
            let output = self.engine.advance_to(released);
            self.publish(output);
            moved = true;
        }
        self.publish_counts(false);
        moved
    }

    /// Buffers new calls; late ones go on at once.
    fn admit(&mut self, calls: Vec<Call>) {
        if calls.is_empty() {
            return;
        }
        let late = self.clock.admit(calls);
        self.handle_calls(late);
    }

    /// Publishes the live view (rate-limited unless `now`).
    fn publish_counts(&mut self, now: bool) {
        let counters = LiveCounters {
            watermark_ns: self.engine_time_ns,
            late_calls: self.clock.late_calls(),
            buffered_calls: self.clock.buffered() as u64,
        };
        self.live.publish(&self.published, counters, now);
    }

    /// Calls in event-time order, to the engine, the API's view and the history. Each
    /// call is shared (not copied) between the recent-calls view and the history.
    fn handle_calls(&mut self, calls: Vec<Arc<Call>>) {
        if calls.is_empty() {
            return;
        }
        let mut output = EngineOutput::default();
        let mut rows = Vec::with_capacity(calls.len());
        // One edge key per batch, rewritten for each call: its buffers are reused.
        let mut edge_key = EdgeNames::default();
        for call in calls {
            call.write_edge_key(&mut edge_key);
            let out = self.engine.process_edge(&call, &edge_key);
            output.alerts.extend(out.alerts);
            output.incidents.extend(out.incidents);
            self.live.remember(&call, &edge_key);
            rows.push((call, out.learned));
        }
        self.live.remember_recent(&rows);
        self.publish(output);
        if let Some(tap) = &self.persistence.tap {
            tap.lock().extend(rows.iter().map(|(c, _)| Call::clone(c)));
        }
        if let Some(history) = &self.persistence.history {
            history.send(rows);
        }
    }

    fn publish(&self, output: EngineOutput) {
        if output.alerts.is_empty() && output.incidents.is_empty() {
            return;
        }
        self.sink.publish(output.alerts, output.incidents);
    }
}

#[cfg(test)]
#[path = "pipeline_tests.rs"]
mod tests;
