//! The pipeline task: ingest batches → calls → event-time order → engine → alert sink.
//! This is the one event-time loop: `serve`, `demo` and `eval` all run it.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use eastwest_api::AlertSink;
use eastwest_collector::{CallExtractor, IngestBatch, wall_clock_ns};
use eastwest_detector::{Engine, EngineOutput};
use eastwest_model::Call;
use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::clock::EventClock;
use crate::storage::{HistorySink, StorageMetrics, write_snapshot};

/// How often the pipeline looks at the wall clock when no input arrives.
const TICK: Duration = Duration::from_millis(250);

pub const RECENT_CALLS: usize = 1000;
pub const TRACE_IDS_PER_EDGE: usize = 5;
/// Distinct edges whose example trace ids are remembered (attacker-controlled names).
pub const MAX_EDGE_EXAMPLES: usize = 50_000;

/// State the API reads while the pipeline runs.
#[derive(Default)]
pub struct PipelineShared {
    /// The engine's event time (0 before the first release).
    pub watermark_ns: AtomicI64,
    /// Calls that reached the pipeline after event time had passed them.
    pub late_calls: AtomicU64,
    /// Calls waiting for the watermark before they go to the engine.
    pub buffered_calls: AtomicU64,
    /// The stage that stopped on its own, if one did (then the process is not ready).
    pub failed_stage: Mutex<Option<&'static str>>,
    pub recent_calls: Mutex<VecDeque<Call>>,
    pub edge_trace_ids: Mutex<HashMap<(String, String), VecDeque<String>>>,
    /// Workload key → (service, namespace) for graph nodes; capped like the examples.
    pub workloads: Mutex<HashMap<String, (String, Option<String>)>>,
    /// Every edge as traffic showed it, including calls the baseline did not learn
    /// (alerted ones): the graph shows what happened, not only what is normal.
    pub live_edges: Mutex<HashMap<(String, String), LiveEdge>>,
}

/// Traffic on one edge since start (sampling-weighted).
#[derive(Debug, Clone, Default)]
pub struct LiveEdge {
    pub calls: f64,
    pub errors: f64,
    pub first_seen_ns: i64,
    pub last_seen_ns: i64,
    pub mtls_calls: f64,
    pub plaintext_calls: f64,
}

impl PipelineShared {
    pub fn fail(&self, stage: &'static str) {
        self.failed_stage.lock().get_or_insert(stage);
    }

    pub fn ready(&self) -> bool {
        self.failed_stage.lock().is_none()
    }

    fn remember(&self, call: &Call) {
        {
            let mut recent = self.recent_calls.lock();
            if recent.len() == RECENT_CALLS {
                recent.pop_front();
            }
            recent.push_back(call.clone());
        }
        {
            let mut workloads = self.workloads.lock();
            for w in [&call.source, &call.destination] {
                if workloads.len() < MAX_EDGE_EXAMPLES || workloads.contains_key(&w.key()) {
                    workloads
                        .entry(w.key())
                        .or_insert_with(|| (w.service.clone(), w.namespace.clone()));
                }
            }
        }
        let key = call.edge_key();
        {
            let mut live = self.live_edges.lock();
            if live.len() < MAX_EDGE_EXAMPLES || live.contains_key(&key) {
                let w = if call.weight > 0.0 && call.weight.is_finite() {
                    call.weight
                } else {
                    1.0
                };
                let t = call.event_time_ns;
                let e = live.entry(key.clone()).or_insert_with(|| LiveEdge {
                    first_seen_ns: t,
                    last_seen_ns: t,
                    ..Default::default()
                });
                e.calls += w;
                e.errors += if call.error { w } else { 0.0 };
                e.first_seen_ns = e.first_seen_ns.min(t);
                e.last_seen_ns = e.last_seen_ns.max(t);
                match call.mtls {
                    Some(true) => e.mtls_calls += w,
                    Some(false) => e.plaintext_calls += w,
                    None => {}
                }
            }
        }
        if call.trace_id.is_empty() {
            return;
        }
        let mut examples = self.edge_trace_ids.lock();
        if !examples.contains_key(&key) && examples.len() >= MAX_EDGE_EXAMPLES {
            return;
        }
        let ids = examples.entry(key).or_default();
        if !ids.contains(&call.trace_id) {
            if ids.len() == TRACE_IDS_PER_EDGE {
                ids.pop_front();
            }
            ids.push_back(call.trace_id.clone());
        }
    }
}

pub struct Pipeline {
    pub extractor: CallExtractor,
    pub engine: Arc<Mutex<Engine>>,
    pub sink: AlertSink,
    pub shared: Arc<PipelineShared>,
    pub clock: EventClock,
    /// The baseline's window width: end of input advances event time this far past the
    /// newest event, so the last windows close and are judged.
    pub window: Duration,
    pub persistence: Persistence,
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
    /// Captures the baseline under the engine lock and writes it on a blocking thread.
    async fn snapshot(&self, engine: &Mutex<Engine>) {
        let data = engine.lock().baseline().snapshot_data();
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
    pub async fn run(mut self, mut rx: mpsc::Receiver<IngestBatch>) {
        let mut last_input = Instant::now();
        let mut last_snapshot = Instant::now();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                batch = rx.recv() => match batch {
                    Some(batch) => {
                        last_input = Instant::now();
                        let wall = wall_clock_ns();
                        if let Some(max) = batch.max_event_time_ns() {
                            self.clock.observe_input(max, wall);
                        }
                        let calls = self.extractor.process(batch);
                        self.admit(calls);
                        self.step();
                    }
                    None => break,
                },
                _ = tick.tick() => {
                    let wall = wall_clock_ns();
                    self.engine.lock().baseline_mut().set_wall_clock(wall);
                    self.clock.observe_idle(last_input.elapsed(), wall);
                    self.step();
                    if last_snapshot.elapsed() >= self.persistence.snapshot_interval {
                        last_snapshot = Instant::now();
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

    /// End of input: what a server that stays idle long enough would do, at once.
    fn drain(&mut self) {
        let calls = self.extractor.flush();
        self.admit(calls);
        let rest = self.clock.release_all();
        self.handle_calls(rest);
        let newest = self.clock.max_event_ns();
        if newest > 0 {
            let end = newest.saturating_add(self.window.as_nanos().min(i64::MAX as u128) as i64);
            let output = self.engine.lock().advance_to(end);
            self.publish(output);
            self.shared.watermark_ns.fetch_max(end, Ordering::Relaxed);
        }
        let output = self.engine.lock().flush();
        self.publish(output);
        self.publish_counts();
    }

    /// Moves event time as far as the input allows and hands on what it releases.
    fn step(&mut self) {
        let input = self.clock.input_watermark();
        if input == 0 {
            return;
        }
        let calls = self.extractor.advance(input);
        self.admit(calls);
        let point = self.extractor.low_watermark(input);
        let ready = self.clock.release(point);
        self.handle_calls(ready);
        if let Some(released) = self.clock.released()
            && released > self.shared.watermark_ns.load(Ordering::Relaxed)
        {
            self.shared.watermark_ns.store(released, Ordering::Relaxed);
            let output = self.engine.lock().advance_to(released);
            self.publish(output);
        }
        self.publish_counts();
    }

    /// Buffers new calls; late ones go on at once.
    fn admit(&mut self, calls: Vec<Call>) {
        if calls.is_empty() {
            return;
        }
        let late = self.clock.admit(calls);
        self.handle_calls(late);
    }

    fn publish_counts(&self) {
        let shared = &self.shared;
        shared
            .late_calls
            .store(self.clock.late_calls(), Ordering::Relaxed);
        shared
            .buffered_calls
            .store(self.clock.buffered() as u64, Ordering::Relaxed);
    }

    /// Calls in event-time order, to the engine, the API's view and the history.
    fn handle_calls(&mut self, calls: Vec<Call>) {
        if calls.is_empty() {
            return;
        }
        let mut output = EngineOutput::default();
        let mut learned = Vec::with_capacity(calls.len());
        {
            let mut engine = self.engine.lock();
            for call in &calls {
                let out = engine.process(call);
                learned.push(out.learned);
                output.alerts.extend(out.alerts);
                output.incidents.extend(out.incidents);
            }
        }
        for call in &calls {
            self.shared.remember(call);
        }
        self.publish(output);
        if let Some(tap) = &self.persistence.tap {
            tap.lock().extend(calls.iter().cloned());
        }
        if let Some(history) = &self.persistence.history {
            history.send(calls.into_iter().zip(learned).collect());
        }
    }

    fn publish(&self, output: EngineOutput) {
        if output.alerts.is_empty() && output.incidents.is_empty() {
            return;
        }
        self.sink.publish(output.alerts, output.incidents);
    }
}
