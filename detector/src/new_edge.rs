//! `new_edge`: a caller reaching a workload it never called in the baseline, scored by
//! how readily that caller adds callees. Two callers get their own reading: a workload
//! that only ever received calls (a leaf), whose first outbound call is as surprising as
//! its long silence makes it, and a caller that cannot be attributed at all.

use eastwest_baseline::{CallKeys, LookupIndex};
use eastwest_model::{AlertKind, Call, Workload};
use serde_json::json;

use crate::config::DetectorConfig;
use crate::findings::{Finding, MethodRoute};
use crate::score::{p_novel, p_rare_upper, surprise};

/// Service name the collector gives a caller it cannot attribute: a server span whose
/// client span never came and that names no principal.
pub const UNATTRIBUTED_SERVICE: &str = "unknown";

/// A caller nothing in the telemetry attributes: no service of its own, no principal.
pub fn is_unattributed(w: &Workload) -> bool {
    w.service == UNATTRIBUTED_SERVICE && w.principal.is_none()
}

/// The finding for a call over an edge the baseline does not have.
pub(crate) fn finding(
    call: &Call,
    (src, dst): (&str, &str),
    keys: &CallKeys,
    index: &LookupIndex,
    config: &DetectorConfig,
) -> Finding {
    let what = MethodRoute(call);
    let source = keys.source.and_then(|s| index.source(s));
    let (callees, calls) = source.map_or((0.0, 0.0), |s| (s.callees.len() as f64, s.calls));
    // Calls the caller received while it never called out: a workload that existed
    // through the baseline, only ever as a callee.
    let received = match source {
        Some(_) => 0.0,
        None => keys.source.map_or(0.0, |s| index.received_calls(s)),
    };
    let mut f = if received > 0.0 {
        // Each request it handled was a chance to call out, and none did.
        let p = p_novel(0.0, received);
        let score = surprise(p);
        Finding::on_call(AlertKind::NewEdge, call, score, false).with(
            &[
                ("baseline_callees", json!(0)),
                ("baseline_source_calls", json!(0)),
                ("baseline_received_calls", json!(received)),
                ("leaf_workload", json!(true)),
                ("p_new_callee", json!(p)),
            ],
            format!(
                "{src} called {dst} ({what}): its first outbound call; in the baseline it only received calls ({received:.0}) and never called any service (p of a first callee ≈ {p:.2e}, score {score:.1})"
            ),
        )
    } else {
        let p = p_novel(callees, calls);
        let score = surprise(p);
        Finding::on_call(AlertKind::NewEdge, call, score, false).with(
            &[
                ("baseline_callees", json!(callees)),
                ("baseline_source_calls", json!(calls)),
                ("p_new_callee", json!(p)),
            ],
            format!(
                "{src} called {dst} ({what}) for the first time; in the baseline it called {callees} services over {calls:.0} calls (p of a new callee ≈ {p:.2e}, score {score:.1})"
            ),
        )
    };
    if is_unattributed(&call.source) {
        unattributed(&mut f, call, dst, index, config);
    }
    f
}

/// A caller without a client span or principal, into a destination whose baseline
/// callers were all attributed (this edge is new, so none of its calls came from one):
/// as surprising as that destination seeing one, plus the weight of a caller that kept
/// itself out of the telemetry.
fn unattributed(
    f: &mut Finding,
    call: &Call,
    dst: &str,
    index: &LookupIndex,
    config: &DetectorConfig,
) {
    let received = index
        .names()
        .workload(&call.destination)
        .map_or(0.0, |d| index.received_calls(d));
    if received <= 0.0 {
        return;
    }
    let p = p_rare_upper(0.0, received);
    let score = surprise(p) + config.unattributed_weight;
    f.evidence.insert("unattributed_caller".into(), json!(true));
    f.evidence
        .insert("destination_baseline_calls".into(), json!(received));
    f.evidence.insert("p_unattributed_upper".into(), json!(p));
    f.summary = format!(
        "a caller that cannot be attributed (no client span, no principal) called {dst} ({}); none of the {received:.0} calls {dst} received in the baseline came from an unattributed caller (p ≤ {p:.2e}, score {score:.1} = {:.1} + {:.1} for hiding its identity); {}",
        MethodRoute(call),
        surprise(p),
        config.unattributed_weight,
        f.summary
    );
    f.score = f.score.max(score);
}

#[cfg(test)]
#[path = "new_edge_tests.rs"]
mod tests;
