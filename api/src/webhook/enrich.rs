//! What every webhook payload adds to the alert: the ATT&CK techniques it evidences
//! (eastwest's own constant text) and links to its traces in the operator's trace UI
//! (`[api] trace_url_template`, the trace id percent-encoded in).

use eastwest_model::Alert;
use eastwest_model::attack::{self, Technique};

use super::payload::PayloadContext;
use crate::trace_link::trace_url;

/// Links for the alert's example traces, in its order.
pub(crate) fn trace_links(alert: &Alert, ctx: &PayloadContext) -> Vec<String> {
    alert
        .trace_ids
        .iter()
        .filter_map(|id| trace_url(ctx.trace_url_template.as_deref(), id))
        .collect()
}

pub(crate) fn techniques(alert: &Alert) -> Vec<Technique> {
    attack::techniques(alert)
}

/// `T1021,T1046`: a label value (few distinct values, so fine for Alertmanager's index).
pub(crate) fn technique_ids(alert: &Alert) -> String {
    techniques(alert)
        .iter()
        .map(|t| t.id)
        .collect::<Vec<_>>()
        .join(",")
}

/// `T1046 Network Service Discovery (Discovery); …`.
pub(crate) fn technique_text(alert: &Alert) -> String {
    techniques(alert)
        .iter()
        .map(|t| format!("{} {} ({})", t.id, t.name, t.tactic))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Falco's tag style for MITRE: the id and `mitre_<tactic>`.
pub(crate) fn falco_tags(alert: &Alert) -> Vec<String> {
    let mut tags = Vec::new();
    for t in techniques(alert) {
        for tag in [
            t.id.to_string(),
            format!("mitre_{}", t.tactic.to_lowercase().replace(' ', "_")),
        ] {
            if !tags.contains(&tag) {
                tags.push(tag);
            }
        }
    }
    tags
}
