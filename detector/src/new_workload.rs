//! `new_workload`: a workload never seen before, under an identity never seen before,
//! gets one low notice that lists what it calls and grows with it — a new deployment is
//! not an alert per edge. Its sensitive, control-plane, plaintext and identity findings
//! still alert on their own, and so do its window findings (a fresh pod scanning the mesh
//! is still `fan_out`). A name alone is not enough to be "new": a caller without a
//! principal, or under a principal the baseline knows, keeps its `new_edge` findings,
//! so minting a service name cannot turn lateral movement into a notice.

use std::collections::HashMap;

use eastwest_baseline::LookupIndex;
use eastwest_model::{AlertKind, Call};
use serde_json::{Map, Value, json};

use crate::config::DetectorConfig;
use crate::findings::{Finding, MethodRoute};
use crate::new_edge::is_unattributed;

/// Evidence key the engine sets on a new edge out of a workload just reached over one.
pub(crate) const CHAIN_EVIDENCE: &str = "reached_over_new_edge_from";

/// Callees a notice lists; its count keeps counting beyond them.
const MAX_LISTED_CALLEES: usize = 50;
/// Score of a notice (severity low).
pub const NOTICE_SCORE: f64 = 3.0;

/// Workloads first seen during detection, with when (event time), bounded.
#[derive(Debug, Default)]
pub(crate) struct NewWorkloads {
    first_seen: HashMap<String, i64>,
}

impl NewWorkloads {
    /// Replaces the `new_edge` findings of a call from a new workload (inside its grace
    /// period) by one notice finding; returns it.
    pub(crate) fn fold(
        &mut self,
        call: &Call,
        (src, dst): (&str, &str),
        index: &LookupIndex,
        config: &DetectorConfig,
        findings: &mut Vec<Finding>,
    ) -> Option<Finding> {
        let grace = config.new_workload_grace.as_nanos() as i64;
        let new_edges = || findings.iter().filter(|f| f.kind == AlertKind::NewEdge);
        // A workload just reached over a new edge is a hop of a path, not a deployment.
        let chained = new_edges().any(|f| f.evidence.contains_key(CHAIN_EVIDENCE));
        if grace == 0 || chained || new_edges().next().is_none() {
            return None;
        }
        let t = call.event_time_ns;
        let first = match self.first_seen.get(src) {
            Some(&first) => first,
            None if self.first_seen.len() < config.max_window_keys
                && is_new_workload(call, index) =>
            {
                self.first_seen.insert(src.to_owned(), t);
                t
            }
            None => return None,
        };
        if t.saturating_sub(first) > grace {
            return None;
        }
        findings.retain(|f| f.kind != AlertKind::NewEdge);
        let callee = format!("{dst} {}", MethodRoute(call));
        let principal = call.source.principal.clone().unwrap_or_default();
        let mut evidence = Map::new();
        evidence.insert("principal".into(), json!(principal));
        evidence.insert(
            "first_seen".into(),
            json!(eastwest_model::format_event_time(first)),
        );
        evidence.insert("callees".into(), json!([callee]));
        let summary = summary(src, &principal, &[callee]);
        Some(Finding {
            kind: AlertKind::NewWorkload,
            score: NOTICE_SCORE,
            sensitive: false,
            evidence,
            summary,
            destination: None,
            method: None,
            route: None,
            rollout: None,
        })
    }
}

/// Unknown to the baseline as caller and as callee, attributed, and under a principal
/// the baseline never saw.
fn is_new_workload(call: &Call, index: &LookupIndex) -> bool {
    if is_unattributed(&call.source) {
        return false;
    }
    let Some(principal) = call.source.principal.as_deref().filter(|p| !p.is_empty()) else {
        return false;
    };
    !index.knows_workload(&call.source) && index.principal_workloads(principal).is_none()
}

fn summary(src: &str, principal: &str, callees: &[String]) -> String {
    format!(
        "{src} is a workload never seen before, under an identity never seen before ({principal}); it has called {} so far: {}",
        callees.len(),
        callees.join(", ")
    )
}

/// Folds a later notice into the alert's evidence: the callee list grows (bounded) and
/// the summary says what it holds now.
pub(crate) fn merge(
    evidence: &mut Map<String, Value>,
    summary_out: &mut String,
    f: &Finding,
    src: &str,
) {
    let mut callees: Vec<String> = evidence
        .get("callees")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let new = f
        .evidence
        .get("callees")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str);
    for callee in new {
        if callees.len() < MAX_LISTED_CALLEES && !callees.iter().any(|c| c == callee) {
            callees.push(callee.to_owned());
        }
    }
    let principal = evidence
        .get("principal")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    *summary_out = summary(src, &principal, &callees);
    evidence.insert("callees".into(), json!(callees));
}
