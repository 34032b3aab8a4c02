//! Rollout awareness: versions are tracked per workload key (never part of identity), and
//! the first call of a new version of an already known workload yields one change record
//! that then counts and names what the version introduced.

use std::collections::{HashMap, VecDeque};

use crate::RolloutChange;

/// Bound on tracked versions per workload and on kept changes (attacker-controlled).
const MAX_VERSIONS_PER_WORKLOAD: usize = 64;
const MAX_CHANGES: usize = 1_000;
/// Introduced edges and endpoints named per change (the counts go on).
pub const MAX_INTRODUCED_NAMED: usize = 20;

#[derive(Debug, Default, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct RolloutTracker {
    /// workload key → version → sequence number of its change (None for versions that
    /// are not rollouts: the first one seen, or seen while learning).
    versions: HashMap<String, HashMap<String, Option<u64>>>,
    /// The newest changes; the oldest make room when full, so reporting never stops.
    changes: VecDeque<RolloutChange>,
    /// Sequence number of `changes[0]` (changes dropped so far).
    #[serde(default)]
    first_seq: u64,
}

impl RolloutTracker {
    pub(crate) fn changes(&self) -> impl Iterator<Item = &RolloutChange> {
        self.changes.iter()
    }

    /// The change of `workload`'s `version`, registering the version when new: a new
    /// version of a workload already seen with another one is a rollout when `report`.
    pub(crate) fn see(
        &mut self,
        workload: &str,
        version: &str,
        t: i64,
        report: bool,
    ) -> Option<&mut RolloutChange> {
        let versions = self.versions.entry(workload.to_owned()).or_default();
        let seq = match versions.get(version) {
            Some(seq) => *seq,
            None if versions.len() >= MAX_VERSIONS_PER_WORKLOAD => None,
            None => {
                // The first version ever seen is the workload itself, not a rollout;
                // versions seen while learning are part of normal.
                let seq = (report && !versions.is_empty()).then(|| {
                    if self.changes.len() >= MAX_CHANGES {
                        self.changes.pop_front();
                        self.first_seq += 1;
                    }
                    self.changes.push_back(RolloutChange {
                        workload: workload.to_owned(),
                        version: version.to_owned(),
                        first_seen: eastwest_model::format_event_time(t),
                        first_seen_ns: t,
                        summary: format!(
                            "{workload} reported version {version}, not (yet) confirmed as a rollout"
                        ),
                        ..Default::default()
                    });
                    self.first_seq + self.changes.len() as u64 - 1
                });
                versions.insert(version.to_owned(), seq);
                seq
            }
        };
        let i = seq?.checked_sub(self.first_seq)?;
        self.changes.get_mut(usize::try_from(i).ok()?)
    }

    /// Counts a call the version made that the baseline did not know (`what` names it).
    pub(crate) fn observe(
        &mut self,
        workload: &str,
        version: &str,
        t: i64,
        report: bool,
        novelty: Option<(bool, String)>,
    ) {
        let Some(change) = self.see(workload, version, t, report) else {
            return;
        };
        let Some((new_edge, what)) = novelty else {
            return;
        };
        if new_edge {
            change.new_edges += 1;
        } else {
            change.new_endpoints += 1;
        }
        if change.introduced.len() < MAX_INTRODUCED_NAMED {
            change.introduced.push(what);
        }
        change.summary = summary(change);
    }

    /// The change of `workload`'s `version`, when that version is a rollout still kept.
    pub(crate) fn get(&self, workload: &str, version: &str) -> Option<&RolloutChange> {
        let seq = (*self.versions.get(workload)?.get(version)?)?;
        let i = usize::try_from(seq.checked_sub(self.first_seq)?).ok()?;
        self.changes.get(i)
    }

    /// Marks a rollout confirmed (the detector saw the new version replace the old).
    pub(crate) fn confirm(
        &mut self,
        workload: &str,
        version: &str,
        evidence: &str,
    ) -> Option<&mut RolloutChange> {
        let seq = (*self.versions.get(workload)?.get(version)?)?;
        let i = usize::try_from(seq.checked_sub(self.first_seq)?).ok()?;
        let change = self.changes.get_mut(i)?;
        change.confirmed = true;
        change.confirmation = evidence.to_owned();
        change.summary = summary(change);
        Some(change)
    }

    /// Forgets the versions of workloads that `live` no longer knows (retention), so
    /// churning workload names cannot grow the tracker forever.
    pub(crate) fn retain_workloads(&mut self, live: impl Fn(&str) -> bool) {
        self.versions.retain(|workload, _| live(workload));
    }
}

/// What a change introduced so far; an unconfirmed version says so (a version string
/// alone is no rollout).
fn summary(change: &RolloutChange) -> String {
    let counts = format!(
        "{} new edges, {} new endpoints",
        change.new_edges, change.new_endpoints
    );
    if change.confirmed {
        format!(
            "{} rolled out version {}: {counts} (confirmed: {})",
            change.workload, change.version, change.confirmation
        )
    } else {
        format!(
            "{} reported version {}, not (yet) confirmed as a rollout: {counts}",
            change.workload, change.version
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_changes_are_kept_when_full_and_counting_goes_on() {
        let mut tracker = RolloutTracker::default();
        let (workloads, versions) = (20usize, 60usize);
        for w in 0..workloads {
            for v in 0..versions {
                let novelty = Some((false, format!("db GET /{v}")));
                tracker.observe(&format!("w{w}"), &format!("v{v}"), v as i64, true, novelty);
            }
        }
        // The first version of each workload is the workload itself.
        let rollouts = workloads * (versions - 1);
        assert!(rollouts > MAX_CHANGES);
        assert_eq!(tracker.changes().count(), MAX_CHANGES);
        let newest = tracker.changes().last().unwrap();
        assert_eq!(
            (newest.workload.as_str(), newest.version.as_str()),
            ("w19", "v59")
        );
        // A version whose change made room is still known, and is not reported again.
        assert!(tracker.see("w0", "v1", 99, true).is_none());
        let kept = tracker.see("w19", "v59", 99, true).unwrap();
        assert_eq!(kept.new_endpoints, 1);
        tracker.observe("w19", "v59", 99, true, Some((true, "x GET /".into())));
        let kept = tracker.changes().last().unwrap();
        assert_eq!((kept.new_edges, kept.introduced.len()), (1, 2));
    }

    #[test]
    fn versions_of_workloads_that_aged_out_are_forgotten() {
        let mut tracker = RolloutTracker::default();
        tracker.observe("gone", "v1", 0, true, None);
        tracker.observe("live", "v1", 0, true, None);
        tracker.retain_workloads(|w| w == "live");
        // `gone` starts over: its next version is its first, not a rollout.
        assert!(tracker.see("gone", "v2", 1, true).is_none());
        assert!(tracker.see("live", "v2", 1, true).is_some());
    }

    #[test]
    fn a_rollout_is_unconfirmed_until_the_detector_confirms_it() {
        let mut tracker = RolloutTracker::default();
        tracker.observe("cart", "v1", 0, true, None);
        tracker.observe(
            "cart",
            "v2",
            1,
            true,
            Some((false, "redis SET cart".into())),
        );
        let change = tracker.get("cart", "v2").unwrap();
        assert!(!change.confirmed);
        assert!(
            change.summary.contains("not (yet) confirmed"),
            "{}",
            change.summary
        );
        assert!(
            tracker.confirm("cart", "v1", "x").is_none(),
            "v1 is no rollout"
        );
        let change = tracker
            .confirm("cart", "v2", "old calls fell to 0")
            .unwrap();
        assert!(change.confirmed);
        tracker.observe(
            "cart",
            "v2",
            2,
            true,
            Some((false, "redis DEL cart".into())),
        );
        let change = tracker.get("cart", "v2").unwrap();
        assert_eq!(change.new_endpoints, 2);
        assert_eq!(
            change.summary,
            "cart rolled out version v2: 0 new edges, 2 new endpoints (confirmed: old calls fell to 0)"
        );
    }
}
