//! Rollout awareness: versions are tracked per workload key (never part of identity), and
//! the first call of a new version of an already known workload yields one change record.

use std::collections::HashMap;

use crate::RolloutChange;

/// Bound on tracked versions per workload and on reported changes (attacker-controlled).
const MAX_VERSIONS_PER_WORKLOAD: usize = 64;
const MAX_CHANGES: usize = 1_000;

#[derive(Debug, Default, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct RolloutTracker {
    /// workload key → version → index into `changes` (None for versions seen first).
    versions: HashMap<String, HashMap<String, Option<usize>>>,
    changes: Vec<RolloutChange>,
}

impl RolloutTracker {
    pub(crate) fn changes(&self) -> &[RolloutChange] {
        &self.changes
    }

    pub(crate) fn observe(
        &mut self,
        workload: &str,
        version: &str,
        t: i64,
        new_edge: bool,
        new_endpoint: bool,
        report: bool,
    ) {
        let versions = self.versions.entry(workload.to_owned()).or_default();
        let slot = match versions.get(version) {
            Some(slot) => *slot,
            None if versions.len() >= MAX_VERSIONS_PER_WORKLOAD => return,
            None => {
                // The first version ever seen is the workload itself, not a rollout; versions
                // seen while learning are part of normal.
                let slot = (report && !versions.is_empty() && self.changes.len() < MAX_CHANGES)
                    .then(|| {
                        self.changes.push(RolloutChange {
                            workload: workload.to_owned(),
                            version: version.to_owned(),
                            first_seen: eastwest_model::format_event_time(t),
                            summary: String::new(),
                            new_edges: 0,
                            new_endpoints: 0,
                        });
                        self.changes.len() - 1
                    });
                versions.insert(version.to_owned(), slot);
                slot
            }
        };
        if let Some(change) = slot.and_then(|i| self.changes.get_mut(i)) {
            change.new_edges += u64::from(new_edge);
            change.new_endpoints += u64::from(new_endpoint);
            change.summary = format!(
                "{} rolled out version {}: {} new edges, {} new endpoints",
                change.workload, change.version, change.new_edges, change.new_endpoints
            );
        }
    }
}
