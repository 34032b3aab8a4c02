//! Policy coverage for the audit report, with each dialect's own matching semantics:
//! the policy files read as `eastwest policy backtest` reads them, and the period's raw
//! call history replayed against them through `eastwest-policy`, folded per edge.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use eastwest_policy::{CallGroup, PolicySet, Verdict};

use crate::PostureError;
use crate::report::{EdgeCoverage, EdgePolicy, PolicyCheck};

/// Policy files judged against the call history of a period.
#[derive(Debug, Clone)]
pub struct PolicyFiles {
    described: String,
    /// (source, destination) workload keys → what the policies do with its calls.
    edges: BTreeMap<(String, String), EdgePolicy>,
}

impl PolicyFiles {
    /// Reads `files` (any of the four dialects; `-` is standard input) and replays the
    /// calls of `[since, until)` in `data_dir` against them.
    pub async fn load(
        files: &[PathBuf],
        data_dir: &Path,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Self, PostureError> {
        let docs = eastwest_policy::read_files(files)?;
        let set = PolicySet::new(&docs)?;
        let ns = |t: DateTime<Utc>| {
            t.timestamp_nanos_opt()
                .ok_or_else(|| PostureError::Period(format!("{t} is out of range")))
        };
        let groups =
            eastwest_policy::call_groups(data_dir, Some(ns(since)?), Some(ns(until)?)).await?;
        let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        Ok(Self::judge(
            format!("{} ({} documents)", names.join(", "), docs.len()),
            &set,
            &groups,
        ))
    }

    /// Folds the verdict of every call group into its edge.
    pub fn judge(described: String, set: &PolicySet, groups: &[CallGroup]) -> Self {
        let mut edges: BTreeMap<(String, String), EdgePolicy> = BTreeMap::new();
        // Earliest first, so `by` names the first call that decided the edge's status.
        let mut sorted: Vec<&CallGroup> = groups.iter().collect();
        sorted.sort_by_key(|g| g.first_ns);
        for g in sorted {
            let e = edges
                .entry((g.source.clone(), g.destination.clone()))
                .or_insert_with(|| EdgePolicy {
                    coverage: EdgeCoverage::Covered,
                    allowed_calls: 0.0,
                    default_allowed_calls: 0.0,
                    denied_calls: 0.0,
                    by: String::new(),
                });
            let (status, by) = match set.verdict(&g.view) {
                Verdict::Allowed(by) => {
                    e.allowed_calls += g.calls;
                    (EdgeCoverage::Covered, by)
                }
                Verdict::DefaultAllowed => {
                    e.default_allowed_calls += g.calls;
                    (
                        EdgeCoverage::Uncovered,
                        "no policy selects the callee".to_owned(),
                    )
                }
                Verdict::Denied(by) => {
                    e.denied_calls += g.calls;
                    (EdgeCoverage::Denied, by)
                }
            };
            if e.by.is_empty() || status > e.coverage {
                e.coverage = status;
                e.by = by;
            }
        }
        Self { described, edges }
    }
}

impl PolicyCheck for PolicyFiles {
    fn describe(&self) -> String {
        self.described.clone()
    }

    fn edge(&self, source: &str, destination: &str) -> Option<EdgePolicy> {
        self.edges
            .get(&(source.to_owned(), destination.to_owned()))
            .cloned()
    }
}
