//! The online learner: folds calls into the baseline tables and publishes snapshots.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use eastwest_model::Call;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use crate::BaselineError;
use crate::index::{EdgeKey, EndpointKey, LookupIndex, WindowHistory};

pub const DEFAULT_LEARNING_PERIOD: Duration = Duration::from_secs(24 * 3600);
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(60);
pub const DEFAULT_MAX_WINDOW_HISTORY: usize = 1440;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BaselineConfig {
    /// Event time from the first call until detection starts.
    #[serde(with = "humantime_serde")]
    pub learning_period: Duration,
    /// Event-time window for fan-out and rate histories.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// Closed windows kept per source / edge history.
    pub max_window_history: usize,
}

impl Default for BaselineConfig {
    fn default() -> Self {
        Self {
            learning_period: DEFAULT_LEARNING_PERIOD,
            window: DEFAULT_WINDOW,
            max_window_history: DEFAULT_MAX_WINDOW_HISTORY,
        }
    }
}

impl BaselineConfig {
    pub fn validate(&self) -> Result<(), BaselineError> {
        if self.window.is_zero() {
            return Err(BaselineError::Config("window must be greater than zero".into()));
        }
        if self.max_window_history == 0 {
            return Err(BaselineError::Config("max_window_history must be at least 1".into()));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "state")]
pub enum LearningState {
    /// No call seen yet.
    Empty,
    /// Learning until `until_ns` (event time).
    Learning { started_ns: i64, until_ns: i64 },
    Detecting { since_ns: i64 },
}

/// Accumulators for the currently open window.
#[derive(Debug, Default)]
struct OpenWindow {
    start_ns: i64,
    source_callees: HashMap<String, HashSet<String>>,
    source_endpoints: HashMap<String, HashSet<(String, String, String)>>,
    edge_calls: HashMap<EdgeKey, f64>,
}

/// The learner. Owned by one task; readers get [`Baseline::index`] snapshots.
pub struct Baseline {
    config: BaselineConfig,
    state: LearningState,
    working: LookupIndex,
    published: RwLock<Arc<LookupIndex>>,
    window: OpenWindow,
}

impl Baseline {
    pub fn new(config: BaselineConfig) -> Self {
        Self {
            config,
            state: LearningState::Empty,
            working: LookupIndex::default(),
            published: RwLock::new(Arc::new(LookupIndex::default())),
            window: OpenWindow::default(),
        }
    }

    pub fn config(&self) -> &BaselineConfig {
        &self.config
    }

    pub fn state(&self) -> LearningState {
        self.state
    }

    pub fn is_learning(&self) -> bool {
        !matches!(self.state, LearningState::Detecting { .. })
    }

    /// Current published snapshot.
    pub fn index(&self) -> Arc<LookupIndex> {
        self.published.read().clone()
    }

    /// The working copy, including calls folded in since the last publish.
    pub fn working(&self) -> &LookupIndex {
        &self.working
    }

    /// Ends learning now (`POST /api/v1/baseline/detect`).
    pub fn end_learning(&mut self, now_ns: i64) {
        self.state = LearningState::Detecting { since_ns: now_ns };
        self.publish();
    }

    /// Advances the state machine on event time; returns true when learning just ended.
    pub fn advance(&mut self, event_time_ns: i64) -> bool {
        self.roll_windows(event_time_ns);
        match self.state {
            LearningState::Empty => {
                let until_ns = event_time_ns.saturating_add(self.config.learning_period.as_nanos() as i64);
                self.state = LearningState::Learning { started_ns: event_time_ns, until_ns };
                false
            }
            LearningState::Learning { until_ns, .. } if event_time_ns >= until_ns => {
                self.end_learning(until_ns);
                true
            }
            _ => false,
        }
    }

    /// Folds one call into the baseline tables.
    pub fn observe(&mut self, call: &Call) {
        let t = call.event_time_ns;
        let w = if call.weight > 0.0 { call.weight } else { 1.0 };
        let err = if call.error { w } else { 0.0 };
        let (src, dst) = call.edge_key();
        let edge = EdgeKey { source: src.clone(), destination: dst.clone() };

        let e = self.working.edges.entry(edge.clone()).or_insert_with(|| first_seen(t));
        touch(&mut e.first_seen_ns, &mut e.last_seen_ns, t);
        e.calls += w;
        e.errors += err;
        match call.mtls {
            Some(true) => e.mtls_calls += w,
            Some(false) => e.plaintext_calls += w,
            None => {}
        }

        let endpoint = EndpointKey { edge: edge.clone(), method: call.method.clone(), route: call.route.clone() };
        let ep = self.working.endpoints.entry(endpoint.clone()).or_default();
        if ep.calls == 0.0 {
            ep.first_seen_ns = t;
        }
        touch(&mut ep.first_seen_ns, &mut ep.last_seen_ns, t);
        ep.calls += w;
        ep.errors += err;

        if let Some(entry) = &call.entry {
            *self.working.entries.entry(entry.clone()).or_default() += w;
            let c = self.working.edge_contexts.entry((entry.clone(), edge.clone())).or_default();
            if c.calls == 0.0 {
                c.first_seen_ns = t;
            }
            touch(&mut c.first_seen_ns, &mut c.last_seen_ns, t);
            c.calls += w;
            let c = self.working.endpoint_contexts.entry((entry.clone(), endpoint)).or_default();
            if c.calls == 0.0 {
                c.first_seen_ns = t;
            }
            touch(&mut c.first_seen_ns, &mut c.last_seen_ns, t);
            c.calls += w;
        }

        let s = self.working.sources.entry(src.clone()).or_default();
        if s.calls == 0.0 {
            s.first_seen_ns = t;
        }
        touch(&mut s.first_seen_ns, &mut s.last_seen_ns, t);
        s.calls += w;
        if s.callees.insert(dst.clone()) {
            s.callee_first_seen_ns.push(t);
        }

        let id = self.working.identities.entry(src.clone()).or_default();
        match call.mtls {
            Some(true) => id.mtls_calls += w,
            Some(false) => id.plaintext_calls += w,
            None => {}
        }
        if let Some(p) = &call.source.principal {
            *id.principals.entry(p.clone()).or_default() += w;
            self.working.principal_workloads.entry(p.clone()).or_default().insert(src.clone());
        }

        self.window.source_callees.entry(src.clone()).or_default().insert(dst.clone());
        self.window
            .source_endpoints
            .entry(src)
            .or_default()
            .insert((dst, call.method.clone(), call.route.clone()));
        *self.window.edge_calls.entry(edge).or_default() += w;
    }

    /// Copies the working tables into a new published snapshot.
    pub fn publish(&mut self) {
        *self.published.write() = Arc::new(self.working.clone());
    }

    fn roll_windows(&mut self, event_time_ns: i64) {
        let width = self.config.window.as_nanos() as i64;
        if self.window.start_ns == 0 {
            self.window.start_ns = event_time_ns - event_time_ns.rem_euclid(width);
            return;
        }
        if event_time_ns < self.window.start_ns + width {
            return;
        }
        let closed = std::mem::take(&mut self.window);
        let elapsed = ((event_time_ns - closed.start_ns) / width).max(1) as u64;
        let cap = self.config.max_window_history;
        for s in self.working.sources.values_mut() {
            s.fan_out.windows_observed += elapsed;
            s.endpoint_fan_out.windows_observed += elapsed;
        }
        for (src, callees) in closed.source_callees {
            if let Some(s) = self.working.sources.get_mut(&src) {
                push_bounded(&mut s.fan_out, callees.len() as f64, cap);
            }
        }
        for (src, endpoints) in closed.source_endpoints {
            if let Some(s) = self.working.sources.get_mut(&src) {
                push_bounded(&mut s.endpoint_fan_out, endpoints.len() as f64, cap);
            }
        }
        for h in self.working.edge_rates.values_mut() {
            h.windows_observed += elapsed;
        }
        for (edge, calls) in closed.edge_calls {
            let h = self.working.edge_rates.entry(edge).or_insert_with(|| WindowHistory {
                values: Vec::new(),
                windows_observed: 1,
            });
            push_bounded(h, calls, cap);
        }
        self.window.start_ns = event_time_ns - event_time_ns.rem_euclid(width);
    }
}

fn first_seen(t: i64) -> crate::EdgeStats {
    crate::EdgeStats { first_seen_ns: t, last_seen_ns: t, ..Default::default() }
}

fn touch(first: &mut i64, last: &mut i64, t: i64) {
    *first = (*first).min(t);
    *last = (*last).max(t);
}

fn push_bounded(h: &mut WindowHistory, v: f64, cap: usize) {
    if h.values.len() == cap {
        h.values.remove(0);
    }
    h.values.push(v);
}
