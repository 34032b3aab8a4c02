//! The pipeline task: ingest batches → calls → engine → alert sink, on event time.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use eastwest_api::AlertSink;
use eastwest_collector::{CallExtractor, IngestBatch};
use eastwest_detector::{Engine, EngineOutput};
use eastwest_model::Call;
use parking_lot::Mutex;
use tokio::sync::mpsc;

use crate::storage::{HistorySink, StorageMetrics, write_snapshot};

pub const RECENT_CALLS: usize = 1000;
pub const TRACE_IDS_PER_EDGE: usize = 5;
/// Distinct edges whose example trace ids are remembered (attacker-controlled names).
pub const MAX_EDGE_EXAMPLES: usize = 50_000;

/// State the API reads while the pipeline runs.
#[derive(Default)]
pub struct PipelineShared {
    pub watermark_ns: AtomicI64,
    pub max_event_ns: AtomicI64,
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
    pub allowed_lateness: Duration,
    pub idle_advance: Duration,
    pub persistence: Persistence,
}

/// Where the pipeline persists: call history rows and periodic baseline snapshots.
pub struct Persistence {
    pub history: Option<HistorySink>,
    pub data_dir: PathBuf,
    pub snapshot_interval: Duration,
    pub metrics: Arc<StorageMetrics>,
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
    /// Runs until every sender of `rx` is gone (receivers stopped), then drains and
    /// flushes: pending pairs, open windows, history.
    pub async fn run(mut self, mut rx: mpsc::Receiver<IngestBatch>) {
        let mut last_input = Instant::now();
        let mut last_snapshot = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                batch = rx.recv() => match batch {
                    Some(batch) => {
                        last_input = Instant::now();
                        self.shared.max_event_ns.fetch_max(batch_max_time(&batch), Ordering::Relaxed);
                        let calls = self.extractor.process(batch);
                        self.handle_calls(calls);
                        let wm = self.watermark(false);
                        self.advance(wm);
                    }
                    None => break,
                },
                _ = tick.tick() => {
                    // With no input, event time follows the wall clock past the newest
                    // event, so pending pairs expire and the last windows close.
                    let idle = last_input.elapsed().saturating_sub(self.idle_advance);
                    let wm = self.idle_watermark(idle);
                    self.advance(wm);
                    if last_snapshot.elapsed() >= self.persistence.snapshot_interval {
                        last_snapshot = Instant::now();
                        self.persistence.snapshot(&self.engine).await;
                    }
                }
            }
        }
        let calls = self.extractor.flush();
        self.handle_calls(calls);
        let wm = self.watermark(true);
        self.advance(wm);
        let output = self.engine.lock().flush();
        self.publish(output);
        // Persist last: the history writer flushes once its sink is dropped.
        self.persistence.snapshot(&self.engine).await;
        self.persistence.history = None;
    }

    /// The watermark after `idle` wall time past the idle threshold. Before the first
    /// event there is no event time to advance: moving the watermark then would start
    /// learning near the Unix epoch, and the first real call would end it at once.
    fn idle_watermark(&self, idle: Duration) -> i64 {
        if idle.is_zero() {
            self.watermark(false)
        } else {
            match self.watermark(true) {
                0 => 0,
                newest => newest.saturating_add(idle.as_nanos() as i64),
            }
        }
    }

    /// 0 until the first event arrives.
    fn watermark(&self, idle: bool) -> i64 {
        let max = self.shared.max_event_ns.load(Ordering::Relaxed);
        if max == 0 {
            return 0;
        }
        if idle {
            max
        } else {
            max - self.allowed_lateness.as_nanos() as i64
        }
    }

    fn advance(&mut self, watermark_ns: i64) {
        if watermark_ns <= self.shared.watermark_ns.load(Ordering::Relaxed) {
            return;
        }
        self.shared
            .watermark_ns
            .store(watermark_ns, Ordering::Relaxed);
        let calls = self.extractor.advance(watermark_ns);
        self.handle_calls(calls);
        let output = self.engine.lock().advance_to(watermark_ns);
        self.publish(output);
    }

    fn handle_calls(&mut self, mut calls: Vec<Call>) {
        if calls.is_empty() {
            return;
        }
        // The collector releases calls as their pairs and entries complete, not in event
        // time; the engine reads time from each call (learning starts at the first one,
        // windows close before it), so it gets each batch in event-time order.
        calls.sort_by_key(|c| c.event_time_ns);
        let mut output = EngineOutput::default();
        let mut learned = Vec::with_capacity(calls.len());
        {
            let mut engine = self.engine.lock();
            for call in &calls {
                self.shared
                    .max_event_ns
                    .fetch_max(call.event_time_ns, Ordering::Relaxed);
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

/// Newest span start or log record time in a batch (event time moves with input even
/// before any span pairs into a call).
fn batch_max_time(batch: &IngestBatch) -> i64 {
    // Clamp absurd timestamps so an attacker cannot push the watermark to the end of time.
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX);
    batch
        .max_event_time_ns()
        .unwrap_or(0)
        .min(now.saturating_add(3_600_000_000_000))
}
