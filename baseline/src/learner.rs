//! The online learner: folds calls into the baseline tables, closes event-time windows
//! and ages out what retention no longer covers.

use eastwest_model::Call;
use serde::{Deserialize, Serialize};

pub use crate::config::*;
use crate::index::{
    CallKeys, EdgeKey, EndpointKey, EndpointStats, LookupIndex, Map, NameId, Names, Set,
    SourceStats, WindowHistory, count_tls,
};
use eastwest_model::{
    BaselineCounts, BaselineStatus, Entry, LearningPhase, RolloutChange, Workload,
};

/// Bound on distinct principals remembered per workload (attacker-controlled).
pub const MAX_PRINCIPALS_PER_WORKLOAD: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "state")]
pub enum LearningState {
    /// No call seen yet.
    Empty,
    /// Learning until `until_ns` (event time).
    Learning { started_ns: i64, until_ns: i64 },
    Detecting {
        since_ns: i64,
        /// When learning started; 0 when it ended before any call (or in a snapshot
        /// written before this was kept).
        #[serde(default)]
        learning_started_ns: i64,
    },
}

/// Accumulators for the currently open window.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct OpenWindow {
    pub(crate) start_ns: i64,
    pub(crate) source_callees: Map<NameId, Set<NameId>>,
    /// (destination, method, route) per source.
    pub(crate) source_endpoints: Map<NameId, Set<(NameId, NameId, NameId)>>,
    pub(crate) edge_calls: Map<EdgeKey, f64>,
}

/// The learner. Owned by the detection engine, which reads [`Baseline::working`] between
/// calls; there is one copy of the tables (a second, published copy would double memory
/// and clone every table at each window close, and nothing reads outside the engine).
pub struct Baseline {
    pub(crate) config: BaselineConfig,
    pub(crate) state: LearningState,
    pub(crate) working: LookupIndex,
    pub(crate) window: OpenWindow,
    /// Calls not learned because a cardinality cap was reached.
    pub(crate) overflow: u64,
    pub(crate) rollouts: crate::rollout::RolloutTracker,
    /// The wall clock as the pipeline last read it: retention is measured from it, never
    /// from event time (a forged timestamp must not age out what was learned). `None`
    /// offline (rebuild, tests), where event time is all there is.
    pub(crate) wall_clock_ns: Option<i64>,
}

impl Baseline {
    pub fn new(config: BaselineConfig) -> Self {
        let mut working = LookupIndex::default();
        working.set_route_param_min_values(config.route_param_min_values);
        Self {
            config,
            state: LearningState::Empty,
            working,
            window: OpenWindow::default(),
            overflow: 0,
            rollouts: Default::default(),
            wall_clock_ns: None,
        }
    }

    /// A baseline restored from a snapshot.
    pub(crate) fn from_parts(
        config: BaselineConfig,
        state: LearningState,
        working: LookupIndex,
        window: OpenWindow,
        overflow: u64,
        rollouts: crate::rollout::RolloutTracker,
    ) -> Self {
        let mut working = working;
        working.set_route_param_min_values(config.route_param_min_values);
        Self {
            config,
            state,
            working,
            window,
            overflow,
            rollouts,
            wall_clock_ns: None,
        }
    }

    /// Retention from now on is measured from `now_ns` (wall clock).
    pub fn set_wall_clock(&mut self, now_ns: i64) {
        self.wall_clock_ns = Some(now_ns);
    }

    /// Replaces the learned tables (`baseline rebuild`) in one assignment. The open
    /// window keeps its calls: its ids are re-interned by name, because the new tables
    /// number their names differently.
    pub fn replace_tables(&mut self, index: LookupIndex) {
        let window = crate::snapshot::WindowState::from_open(&self.window, &self.working.names);
        self.working = index;
        (self.working).set_route_param_min_values(self.config.route_param_min_values);
        self.window = window.into_open(&mut self.working.names);
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

    /// The learned tables, including the call just observed.
    pub fn working(&self) -> &LookupIndex {
        &self.working
    }

    /// Ends learning now (`POST /api/v1/baseline/detect`).
    pub fn end_learning(&mut self, now_ns: i64) {
        let learning_started_ns = match self.state {
            LearningState::Learning { started_ns, .. } => started_ns,
            LearningState::Detecting {
                learning_started_ns,
                ..
            } => learning_started_ns,
            LearningState::Empty => 0,
        };
        self.state = LearningState::Detecting {
            since_ns: now_ns,
            learning_started_ns,
        };
    }

    /// Advances the state machine to a call's event time (the first call starts
    /// learning); returns true when learning just ended.
    pub fn advance(&mut self, event_time_ns: i64) -> bool {
        self.roll_windows(event_time_ns);
        match self.state {
            LearningState::Empty => {
                let until_ns =
                    event_time_ns.saturating_add(self.config.learning_period.as_nanos() as i64);
                self.state = LearningState::Learning {
                    started_ns: event_time_ns,
                    until_ns,
                };
                false
            }
            LearningState::Learning { until_ns, .. } if event_time_ns >= until_ns => {
                self.end_learning(until_ns);
                true
            }
            _ => false,
        }
    }

    /// Advances to a watermark: ends learning when it passes, but never starts it. A
    /// watermark can run ahead of the first call (pairs wait out the allowed lateness),
    /// and learning must start at that call, or the period would come up short.
    pub fn advance_watermark(&mut self, watermark_ns: i64) -> bool {
        if self.state == LearningState::Empty {
            return false;
        }
        self.advance(watermark_ns)
    }

    /// Calls not (fully) learned because a cardinality cap was reached (for metrics).
    pub fn overflow_count(&self) -> u64 {
        self.overflow
    }

    /// New versions of known workloads, each reported once, oldest first.
    pub fn rollout_changes(&self) -> Vec<RolloutChange> {
        self.rollouts.changes().cloned().collect()
    }

    /// The rollout a call belongs to: its caller's version is new (first seen while
    /// detecting) for a workload already seen with another version. Registers the
    /// version, so the first call of a rollout is recognised whether or not it is learned.
    pub fn rollout_of(&mut self, call: &Call) -> Option<&RolloutChange> {
        let version = call.source_version.as_deref()?;
        let report = !self.is_learning();
        let change = self
            .rollouts
            .see(&call.source.key(), version, call.event_time_ns, report)?;
        Some(change)
    }

    /// The change of `workload`'s `version` (workload key), when it is a rollout.
    pub fn rollout_change(&self, workload: &str, version: &str) -> Option<&RolloutChange> {
        self.rollouts.get(workload, version)
    }

    /// Marks `workload`'s `version` as a confirmed rollout (`evidence` says why);
    /// returns its change, `None` when the version is not a tracked rollout.
    pub fn confirm_rollout(
        &mut self,
        workload: &str,
        version: &str,
        evidence: &str,
    ) -> Option<&RolloutChange> {
        self.rollouts
            .confirm(workload, version, evidence)
            .map(|c| &*c)
    }

    /// Folds one call into the baseline tables.
    ///
    /// Contract: while learning the engine observes every call; once detecting it observes
    /// only calls that raised no alert (alerted calls enter via [`Baseline::accept_alert`]),
    /// so normal drift keeps the baseline current without learning attacks.
    pub fn observe(&mut self, call: &Call) {
        let keys = self.working.call_keys(call);
        self.observe_keyed(call, keys);
    }

    /// [`Baseline::observe`] with the call's keys already resolved: `keys` must be
    /// `self.working().call_keys(call)` with nothing learned since (the detectors resolved
    /// them to judge the call, and resolving is a few hash probes per call).
    pub fn observe_keyed(&mut self, call: &Call, keys: CallKeys) {
        debug_assert_eq!(keys, self.working.call_keys(call), "stale call keys");
        let t = call.event_time_ns;
        let w = call.sampling_weight();
        let err = if call.error { w } else { 0.0 };
        let new_edge = keys
            .edge
            .is_none_or(|k| !self.working.edges.contains_key(&k));
        let new_endpoint = keys.endpoint.is_none();
        // Why: attacker-controlled names must not grow memory without bound; names are
        // interned only once a row under them is allowed.
        if (new_edge && self.working.edges.len() >= self.config.max_edges)
            || (new_endpoint && self.working.endpoints.len() >= self.config.max_endpoints)
        {
            self.overflow += 1;
            return;
        }
        let endpoint = match keys.endpoint {
            Some(k) => k,
            None => intern_endpoint(&mut self.working.names, call),
        };
        let edge = endpoint.edge;
        let (src, dst) = (edge.source, edge.destination);
        if let Some(version) = &call.source_version {
            let report = !self.is_learning();
            let workload = self.working.names.name(src);
            let novelty = (new_edge || new_endpoint).then(|| {
                let what = format!("{} {} {}", call.destination.key(), call.method, call.route);
                (new_edge, what)
            });
            self.rollouts.observe(workload, version, t, report, novelty);
        }

        let e = self
            .working
            .edges
            .entry(edge)
            .or_insert_with(|| first_seen(t));
        touch(&mut e.first_seen_ns, &mut e.last_seen_ns, t);
        e.calls += w;
        e.errors += err;
        count_tls(call.mtls, w, &mut e.mtls_calls, &mut e.plaintext_calls);
        let inbound = self.working.inbound_tls.entry(dst).or_default();
        inbound.calls += w;
        count_tls(
            call.mtls,
            w,
            &mut inbound.mtls_calls,
            &mut inbound.plaintext_calls,
        );

        if new_endpoint {
            *self.working.edge_endpoint_counts.entry(edge).or_insert(0) += 1;
            (self.working.learned_routes).learn(edge, endpoint.method, &call.route);
        }
        let working = &mut self.working;
        let ep = working
            .endpoints
            .upsert(&working.names, endpoint, || EndpointStats {
                first_seen_ns: t,
                last_seen_ns: t,
                ..Default::default()
            });
        touch(&mut ep.first_seen_ns, &mut ep.last_seen_ns, t);
        ep.calls += w;
        ep.errors += err;

        if let Some(entry) = &call.entry {
            self.observe_contexts(entry, keys, endpoint, t, w);
        }

        let s = self
            .working
            .sources
            .entry(src)
            .or_insert_with(|| SourceStats {
                first_seen_ns: t,
                last_seen_ns: t,
                ..Default::default()
            });
        touch(&mut s.first_seen_ns, &mut s.last_seen_ns, t);
        s.calls += w;
        s.callees.insert(dst);

        let id = self.working.identities.entry(src).or_default();
        count_tls(call.mtls, w, &mut id.mtls_calls, &mut id.plaintext_calls);
        if let Some(p) = &call.source.principal {
            let known = self.working.names.get(p);
            match known.filter(|p| id.principals.contains_key(p)) {
                Some(p) => *id.principals.entry(p).or_insert(0.0) += w,
                None if id.principals.len() >= MAX_PRINCIPALS_PER_WORKLOAD => self.overflow += 1,
                None => {
                    let p = self.working.names.intern(p);
                    id.principals.insert(p, w);
                    self.working
                        .principal_workloads
                        .entry(p)
                        .or_default()
                        .insert(src);
                }
            }
        }

        self.window
            .source_callees
            .entry(src)
            .or_default()
            .insert(dst);
        self.window
            .source_endpoints
            .entry(src)
            .or_default()
            .insert((dst, endpoint.method, endpoint.route));
        *self.window.edge_calls.entry(edge).or_insert(0.0) += w;
    }

    /// Entry → edge and entry → endpoint contexts, within the context cap.
    fn observe_contexts(
        &mut self,
        entry: &Entry,
        keys: CallKeys,
        endpoint: EndpointKey,
        t: i64,
        w: f64,
    ) {
        // The endpoint's context implies the edge's (see `CallStats`).
        let known = keys
            .entry
            .is_some_and(|entry| self.working.endpoint_context(entry, endpoint).is_some());
        if !known && self.working.context_count() >= self.config.max_contexts {
            self.overflow += 1;
            return;
        }
        let entry = match keys.entry {
            Some(k) => k,
            None => self
                .working
                .names
                .intern_entry(&entry.service, &entry.route),
        };
        *self.working.entries.entry(entry).or_insert(0.0) += w;
        for c in [
            self.working
                .edge_contexts
                .entry((entry, endpoint.edge))
                .or_default(),
            self.working
                .endpoints
                .upsert_context(endpoint, entry, Default::default)
                .expect("the endpoint's row was added before its contexts"),
        ] {
            if c.calls == 0.0 {
                c.first_seen_ns = t;
            }
            touch(&mut c.first_seen_ns, &mut c.last_seen_ns, t);
            c.calls += w;
        }
    }

    /// Folds an accepted alert's call into the baseline (the operator says it is expected).
    pub fn accept_alert(&mut self, alert: &eastwest_model::Alert) {
        let Some(destination) = alert.destination.clone() else {
            return;
        };
        let call = Call {
            event_time_ns: alert.last_seen.timestamp_nanos_opt().unwrap_or(0),
            source: alert.source.clone(),
            destination,
            method: alert.method.as_deref().unwrap_or_default().into(),
            route: alert.route.as_deref().unwrap_or_default().into(),
            entry: alert.entry.clone(),
            weight: alert.count.max(1) as f64,
            // Accepting a plaintext alert says plaintext is expected on this edge.
            mtls: (alert.kind == eastwest_model::AlertKind::Plaintext).then_some(false),
            ..Default::default()
        };
        self.observe(&call);
    }

    /// `GET /api/v1/baseline` body at event time `watermark_ns`.
    pub fn status(&self, watermark_ns: i64) -> BaselineStatus {
        let fmt = |ns: i64| Some(eastwest_model::format_event_time(ns));
        let period = self.config.learning_period.as_secs_f64();
        let (state, started, ends, learned) = match self.state {
            LearningState::Empty => (LearningPhase::Learning, None, None, 0.0),
            LearningState::Learning {
                started_ns,
                until_ns,
            } => (
                LearningPhase::Learning,
                fmt(started_ns),
                fmt(until_ns),
                ((watermark_ns - started_ns).max(0) as f64 / 1e9).min(period),
            ),
            // Ended before any call (`POST …/detect` on a fresh server): no start or end.
            LearningState::Detecting {
                since_ns,
                learning_started_ns,
            } => (
                LearningPhase::Detecting,
                fmt(learning_started_ns).filter(|_| learning_started_ns > 0),
                fmt(since_ns).filter(|_| since_ns > 0),
                period,
            ),
        };
        BaselineStatus {
            state,
            learning_started: started,
            learning_ends: ends,
            learned_seconds: learned,
            learning_period_seconds: period,
            watermark: (watermark_ns > 0).then(|| eastwest_model::format_event_time(watermark_ns)),
            counts: BaselineCounts {
                edges: self.working.edges.len(),
                endpoints: self.working.endpoints.len(),
                contexts: self.working.context_count(),
                workloads: self.working.sources.len(),
            },
            rollout_changes: self.rollout_changes(),
        }
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
            let h = self
                .working
                .edge_rates
                .entry(edge)
                .or_insert_with(|| WindowHistory {
                    values: Vec::new(),
                    windows_observed: 1,
                });
            push_bounded(h, calls, cap);
        }
        self.window.start_ns = event_time_ns - event_time_ns.rem_euclid(width);
        let now = self.wall_clock_ns.unwrap_or(event_time_ns);
        let cutoff = now.saturating_sub(self.config.retention.as_nanos() as i64);
        self.working.age_out(cutoff);
        let live = &self.working;
        self.rollouts
            .retain_workloads(|w| live.id(w).is_some_and(|id| live.sources.contains_key(&id)));
        // The window is empty here, so no id outside the tables refers to the old names.
        self.working.compact_names();
    }
}

fn intern_workload(names: &mut Names, w: &Workload) -> NameId {
    names.workload(w).unwrap_or_else(|| names.intern(&w.key()))
}

fn intern_endpoint(names: &mut Names, call: &Call) -> EndpointKey {
    let edge = EdgeKey {
        source: intern_workload(names, &call.source),
        destination: intern_workload(names, &call.destination),
    };
    names.intern_endpoint(edge, &call.method, &call.route)
}

fn first_seen(t: i64) -> crate::EdgeStats {
    crate::EdgeStats {
        first_seen_ns: t,
        last_seen_ns: t,
        ..Default::default()
    }
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

#[cfg(test)]
#[path = "learner_tests.rs"]
mod tests;
