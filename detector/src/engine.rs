//! The engine: learning, per-call and per-window detection, alert dedup, incidents and
//! paths — all on event time, so a replay at any speed or batch split gives the same
//! alerts.

use eastwest_baseline::Baseline;
use eastwest_model::{Alert, AlertKind, Call, CompactString, Incident};

use crate::alerts::{AlertBook, Recorded, Subject};
use crate::config::DetectorConfig;
use crate::findings::{Detectors, Finding};
use crate::incidents::IncidentBook;
use crate::new_edge::is_unattributed;
use crate::new_workload::NewWorkloads;
use crate::rollout::{Gate, Rollouts};
use crate::windows::{WindowFinding, WindowTracker};

#[path = "engine_rollout.rs"]
mod rollout_fold;

/// New or updated alerts and incidents; the sink upserts both by `id`.
#[derive(Debug, Default, Clone)]
pub struct EngineOutput {
    pub alerts: Vec<Alert>,
    pub incidents: Vec<Incident>,
    /// The processed call was folded into the baseline (it raised nothing, or learning).
    pub learned: bool,
}

impl EngineOutput {
    pub fn is_empty(&self) -> bool {
        self.alerts.is_empty() && self.incidents.is_empty()
    }

    fn extend(&mut self, other: EngineOutput) {
        self.alerts.extend(other.alerts);
        self.incidents.extend(other.incidents);
    }
}

pub struct Engine {
    config: DetectorConfig,
    baseline: Baseline,
    detectors: Detectors,
    windows: WindowTracker,
    alerts: AlertBook,
    incidents: IncidentBook,
    rollouts: Rollouts,
    new_workloads: NewWorkloads,
}

impl Engine {
    /// `config` should have passed [`DetectorConfig::validate`]; invalid sensitive
    /// patterns are skipped rather than panicking.
    pub fn new(config: DetectorConfig, baseline: Baseline) -> Self {
        let detectors = Detectors::new(&config);
        let windows = WindowTracker::new(baseline.config().window);
        let rollouts = Rollouts::new(baseline.config().window, &config);
        Self {
            config,
            baseline,
            detectors,
            windows,
            alerts: AlertBook::default(),
            incidents: IncidentBook::default(),
            rollouts,
            new_workloads: NewWorkloads::default(),
        }
    }

    pub fn config(&self) -> &DetectorConfig {
        &self.config
    }

    pub fn baseline(&self) -> &Baseline {
        &self.baseline
    }

    pub fn baseline_mut(&mut self) -> &mut Baseline {
        &mut self.baseline
    }

    /// The current state of an alert this engine still tracks.
    pub fn alert(&self, id: &str) -> Option<&Alert> {
        self.alerts.get(id)
    }

    pub fn incident(&self, id: &str) -> Option<&Incident> {
        self.incidents.get(id)
    }

    /// Calls that arrived after their event-time window had closed.
    pub fn late_calls(&self) -> u64 {
        self.windows.late_calls()
    }

    /// Sources or edges left out of a window because it hit `max_window_keys`.
    pub fn window_dropped_keys(&self) -> u64 {
        self.windows.dropped_keys()
    }

    pub fn end_learning(&mut self, now_ns: i64) {
        if self.baseline.is_learning() {
            self.baseline.end_learning(now_ns);
        }
    }

    /// Closes event-time windows up to the watermark (fan-out, rate and probing are
    /// judged there), advances the baseline, and flushes throttled alert and incident
    /// updates.
    pub fn advance_to(&mut self, watermark_ns: i64) -> EngineOutput {
        let mut out = EngineOutput::default();
        let judging = !self.baseline.is_learning();
        let closed =
            self.windows
                .close_before(watermark_ns, self.baseline.working(), judging, &self.config);
        self.emit_window(closed, &mut out);
        self.resolve_rollouts(watermark_ns, &mut out);
        self.baseline.advance_watermark(watermark_ns);
        self.flush_into(&mut out);
        out
    }

    /// Pending throttled updates (also done by `advance_to`).
    pub fn flush(&mut self) -> EngineOutput {
        let mut out = EngineOutput::default();
        self.flush_into(&mut out);
        out
    }

    fn flush_into(&mut self, out: &mut EngineOutput) {
        out.alerts.extend(self.alerts.flush());
        out.incidents.extend(self.incidents.flush());
    }

    pub fn process(&mut self, call: &Call) -> EngineOutput {
        self.process_edge(call, &call.edge_key())
    }

    /// [`Engine::process`] for a caller that has already built the call's edge key
    /// ([`Call::edge_key`]) and uses it again.
    pub fn process_edge(
        &mut self,
        call: &Call,
        edge: &(CompactString, CompactString),
    ) -> EngineOutput {
        debug_assert_eq!(&call.edge_key(), edge, "an edge key of another call");
        let (src, dst) = edge;
        let templated = self.learned_template(call);
        let call = templated.as_ref().unwrap_or(call);
        let mut out = EngineOutput::default();
        let t = call.event_time_ns;
        // Judge the window this call closes before the baseline folds it into history.
        let closed = self.windows.close_before(
            t,
            self.baseline.working(),
            !self.baseline.is_learning(),
            &self.config,
        );
        self.emit_window(closed, &mut out);
        self.resolve_rollouts(t, &mut out);
        self.baseline.advance(t);
        let judging = !self.baseline.is_learning();
        self.rollouts.count(call, src, judging, &self.config);
        let early = self.windows.add(
            call,
            src,
            dst,
            self.baseline.working(),
            judging,
            &self.config,
        );
        if !judging {
            self.baseline.observe(call);
            out.learned = true;
            return out;
        }
        // Resolved once: the detectors judge with them and, when nothing is raised, the
        // baseline learns with them (nothing is learned in between).
        let keys = self.baseline.working().call_keys(call);
        let mut findings = self.detectors.evaluate(
            call,
            (src, dst),
            &keys,
            self.baseline.working(),
            &self.config,
        );
        // The chain bonus comes before the threshold: a hop out of a freshly reached
        // workload matters even when the hop alone would look unremarkable.
        let new_edge = findings.iter().any(|f| f.kind == AlertKind::NewEdge);
        if new_edge {
            self.score_chain(src, &mut findings);
        }
        let notice = self.new_workloads.fold(
            call,
            (src, dst),
            self.baseline.working(),
            &self.config,
            &mut findings,
        );
        findings
            .retain(|f| f.score >= self.config.min_score || f.kind == AlertKind::SensitiveEndpoint);
        if let Some(notice) = notice {
            let trace_ids: Vec<String> = (!call.trace_id.is_empty())
                .then(|| call.trace_id.to_string())
                .into_iter()
                .collect();
            let subject = Subject {
                source: &call.source,
                entry: call.entry.as_ref(),
                time_ns: t,
                trace_ids: &trace_ids,
            };
            // A notice stands alone, like a rollout's: a new deployment is not an incident.
            self.record(notice, &subject, &mut out);
            if findings.is_empty() {
                // Its edges are learned, so the notice grows by callee, not by call.
                self.baseline.observe_keyed(call, keys);
                out.learned = true;
                self.emit_window(early, &mut out);
                return out;
            }
        }
        if findings.is_empty() && early.is_empty() {
            // Drift: calls that raised nothing keep the baseline current — except a
            // caller nothing attributes on an edge the baseline lacks: `unknown` must
            // not become a normal caller of anything.
            if !is_unattributed(&call.source) || self.baseline.working().has_callee(src, dst) {
                self.baseline.observe_keyed(call, keys);
                out.learned = true;
            }
            return out;
        }
        self.emit_window(early, &mut out);
        if findings.is_empty() {
            return out;
        }
        let trace_ids: Vec<String> = if call.trace_id.is_empty() {
            Vec::new()
        } else {
            vec![call.trace_id.to_string()]
        };
        let subject = Subject {
            source: &call.source,
            entry: call.entry.as_ref(),
            time_ns: t,
            trace_ids: &trace_ids,
        };
        match self.gate_rollout(call, src, &findings) {
            Gate::Alert => {}
            // Neither alerted nor learned until the version's evidence is in.
            Gate::Hold => return out,
            Gate::Fold => {
                self.baseline.observe(call);
                out.learned = true;
                let latest = findings.iter().map(|f| f.summary.clone()).collect();
                let score = findings.iter().map(|f| f.score).fold(0.0, f64::max);
                let version = call.source_version.clone().unwrap_or_default();
                // A notice stands alone: a rollout is not an incident.
                if let Some(notice) = self.rollout_notice(src, &version, score, latest) {
                    self.record(notice, &subject, &mut out);
                }
                return out;
            }
        }
        let mut path = Vec::new();
        // Any alert on a new edge makes it a hop (an admin call over a new edge counts even
        // when the edge's novelty alone stayed under the threshold).
        if new_edge {
            path = self.incidents.record_new_edge(src, dst);
        }
        out.extend(self.emit(findings, &subject, path));
        out
    }

    /// The call under the route template its edge learned for its raw path, if any, so
    /// that every detector and the learner see one endpoint, not each value. A sensitive
    /// path is judged as written: a learned parameter must not make `/users/admin` known.
    fn learned_template(&self, call: &Call) -> Option<Call> {
        let route = self.baseline.working().learned_template(call)?;
        if self.detectors.sensitive_match(call).is_some() {
            return None;
        }
        Some(Call {
            route: route.into(),
            ..call.clone()
        })
    }

    /// A new edge out of a workload that was itself just reached over a new edge is a
    /// hop of lateral movement, whatever that workload's own (possibly empty) history.
    fn score_chain(&self, src: &str, findings: &mut [Finding]) {
        let reached_by = self.incidents.reached_by(src);
        if reached_by.is_empty() {
            return;
        }
        for f in findings.iter_mut().filter(|f| f.kind == AlertKind::NewEdge) {
            f.score += self.config.chain_bonus;
            f.evidence.insert(
                crate::new_workload::CHAIN_EVIDENCE.into(),
                serde_json::json!(reached_by),
            );
            f.summary.push_str(&format!(
                "; {src} was itself just reached over a new edge from {} (+{:.1})",
                reached_by.join(", "),
                self.config.chain_bonus
            ));
        }
    }

    fn emit_window(&mut self, findings: Vec<WindowFinding>, out: &mut EngineOutput) {
        for wf in findings {
            let subject = Subject {
                source: &wf.source,
                entry: wf.entry.as_ref(),
                time_ns: wf.time_ns,
                trace_ids: &wf.trace_ids,
            };
            out.extend(self.emit(vec![wf.finding], &subject, Vec::new()));
        }
    }

    /// Records one finding in the alert book: an emitted alert goes to `out`, a finding
    /// over the namespace budget is counted in its storm incident. Returns the alert
    /// (emitted or held) for incident grouping.
    fn record(&mut self, f: Finding, s: &Subject<'_>, out: &mut EngineOutput) -> Option<Alert> {
        let known = self.knows(s.source);
        match self.alerts.record(f, s, known, &self.config) {
            Recorded::Emit(a) => {
                out.alerts.push((*a).clone());
                Some(*a)
            }
            Recorded::Held(id) => self.alerts.get(&id).cloned(),
            Recorded::Suppressed {
                pool,
                window_start_ns,
                storm,
                storm_id,
            } => {
                let (incident_id, incident) =
                    self.incidents
                        .suppress(&pool, window_start_ns, &storm_id, s.source, s.time_ns);
                self.alerts.set_incident(&storm_id, &incident_id);
                if let Some(mut storm) = storm {
                    storm.incident_id = Some(incident_id);
                    out.alerts.push(*storm);
                }
                out.incidents.extend(incident);
                None
            }
        }
    }

    /// Whether the baseline knows a workload (it called, or was called): which alert
    /// budget pool its findings draw on.
    fn knows(&self, w: &eastwest_model::Workload) -> bool {
        self.baseline.working().knows_workload(w)
    }

    fn emit(&mut self, findings: Vec<Finding>, s: &Subject<'_>, path: Vec<String>) -> EngineOutput {
        let mut out = EngineOutput::default();
        let mut members = Vec::new();
        for f in findings {
            members.extend(self.record(f, s, &mut out));
        }
        if members.is_empty() {
            return out;
        }
        let (incident_id, incident) =
            self.incidents
                .add(s.source, s.time_ns, &members, path, &self.config);
        for a in &mut out.alerts {
            a.incident_id = Some(incident_id.clone());
        }
        for a in &members {
            self.alerts.set_incident(&a.id, &incident_id);
        }
        out.incidents.extend(incident);
        out
    }
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "fault_tests.rs"]
mod fault_tests;

#[cfg(test)]
#[path = "surge_tests.rs"]
mod surge_tests;

#[cfg(test)]
#[path = "new_workload_tests.rs"]
mod new_workload_tests;

#[cfg(test)]
#[path = "slow_tests.rs"]
mod slow_tests;

#[cfg(test)]
#[path = "volume_tests.rs"]
mod volume_tests;

#[cfg(test)]
#[path = "entry_tests.rs"]
mod entry_tests;

#[cfg(test)]
#[path = "learned_route_tests.rs"]
mod learned_route_tests;
