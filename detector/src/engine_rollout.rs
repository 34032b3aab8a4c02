//! The engine's side of rollouts: which findings a new version may fold, the version's
//! one info notice, and what happens to held calls when their version is confirmed or
//! refuted (see `crate::rollout`).

use eastwest_model::{AlertKind, Call, Severity};
use serde_json::json;

use super::{Engine, EngineOutput};
use crate::alerts::{Subject, severity};
use crate::findings::{Finding, ev};
use crate::rollout::{Evidence, Gate, Resolution};

impl Engine {
    /// Only novelty on edges the caller already uses (a new endpoint or request
    /// context), never sensitive or control-plane targets, never anything high, and only
    /// from a new version of a known workload, may wait for its rollout's evidence.
    /// Anything else, new edges included, alerts on its own: versions come from
    /// telemetry, and a forged one must not open a path to a service the workload never
    /// called.
    pub(super) fn gate_rollout(&mut self, call: &Call, src: &str, findings: &[Finding]) -> Gate {
        let foldable = findings.iter().all(|f| {
            matches!(f.kind, AlertKind::NewEndpoint | AlertKind::ContextAnomaly)
                && !f.sensitive
                && severity(f.score, f.sensitive) < Severity::High
        });
        if self.config.rollout_grace.is_zero() || !foldable {
            return Gate::Alert;
        }
        let Some(version) = call.source_version.as_deref() else {
            return Gate::Alert;
        };
        let Some(first_seen_ns) = self.baseline.rollout_of(call).map(|c| c.first_seen_ns) else {
            return Gate::Alert;
        };
        self.rollouts
            .gate(call, src, version, first_seen_ns, findings, &self.config)
    }

    /// The version's one info notice of what it introduced (learned), `latest` naming
    /// the findings folded last.
    pub(super) fn rollout_notice(
        &self,
        src: &str,
        version: &str,
        score: f64,
        mut latest: Vec<String>,
    ) -> Option<Finding> {
        // The newest few: the counts and `introduced` name the rest.
        latest.drain(..latest.len().saturating_sub(5));
        let change = self.baseline.rollout_change(src, version)?;
        let summary = format!(
            "{src} rolled out version {} at {} (confirmed: {}): it introduced {} new edges and {} new endpoints, learned as part of the rollout (reported once here, not alerted one by one){}; latest: {}",
            change.version,
            change.first_seen,
            change.confirmation,
            change.new_edges,
            change.new_endpoints,
            match change.introduced.as_slice() {
                [] => String::new(),
                named => format!(": {}", named.join(", ")),
            },
            latest.join("; "),
        );
        Some(Finding {
            kind: AlertKind::NewEndpoint,
            score,
            sensitive: false,
            evidence: ev(&[
                ("rollout_version", json!(change.version)),
                ("rollout_first_seen", json!(change.first_seen)),
                ("rollout_confirmation", json!(change.confirmation)),
                ("new_edges", json!(change.new_edges)),
                ("new_endpoints", json!(change.new_endpoints)),
                ("introduced", json!(change.introduced)),
                ("latest", json!(latest)),
            ]),
            summary,
            destination: None,
            method: None,
            route: None,
            rollout: Some(change.version.clone()),
        })
    }

    /// Takes the rollout decisions due by `now_ns`: a confirmed version's held calls are
    /// learned and reported in its notice; a refuted one's alert as they would have,
    /// with their own times and counts.
    pub(super) fn resolve_rollouts(&mut self, now_ns: i64, out: &mut EngineOutput) {
        for resolution in self.rollouts.advance(now_ns, &self.config) {
            match resolution {
                Resolution::Confirmed {
                    source,
                    version,
                    at_ns,
                    evidence,
                    held,
                } => self.confirm(&source, &version, at_ns, evidence, held, out),
                Resolution::Refuted { held } => {
                    for h in held {
                        let first: Vec<String> = h.trace_ids.iter().take(1).cloned().collect();
                        let subject = Subject {
                            source: &h.call.source,
                            entry: h.call.entry.as_ref(),
                            time_ns: h.call.event_time_ns,
                            trace_ids: &first,
                        };
                        let ids: Vec<String> = h
                            .findings
                            .iter()
                            .map(|f| crate::alerts::alert_id(f, &subject))
                            .collect();
                        out.extend(self.emit(h.findings, &subject, Vec::new()));
                        if h.count > 1 || h.trace_ids.len() > 1 {
                            for id in ids {
                                self.alerts.add_occurrences(
                                    &id,
                                    h.count - 1,
                                    h.last_ns,
                                    &h.trace_ids,
                                    &self.config,
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    fn confirm(
        &mut self,
        source: &eastwest_model::Workload,
        version: &str,
        at_ns: i64,
        evidence: Evidence,
        held: Vec<crate::rollout::Held>,
        out: &mut EngineOutput,
    ) {
        let src = source.key();
        self.baseline
            .confirm_rollout(&src, version, &evidence.describe(version));
        let (mut latest, mut score, mut trace_ids) = (Vec::new(), 0.0f64, Vec::new());
        for h in held {
            let mut call = h.call;
            call.weight = h.weight;
            self.baseline.observe(&call);
            for f in h.findings {
                score = score.max(f.score);
                latest.push(f.summary);
            }
            for t in h.trace_ids {
                if trace_ids.len() < self.config.max_trace_ids && !trace_ids.contains(&t) {
                    trace_ids.push(t);
                }
            }
        }
        // Confirmed before it called anything new: its later novelty folds at once.
        if latest.is_empty() {
            return;
        }
        let Some(notice) = self.rollout_notice(&src, version, score, latest) else {
            return;
        };
        let subject = Subject {
            source,
            entry: None,
            time_ns: at_ns,
            trace_ids: &trace_ids,
        };
        self.record(notice, &subject, out);
    }
}

#[cfg(test)]
#[path = "engine_rollout_tests.rs"]
mod tests;
