//! Rollout corroboration. A version string is something the telemetry says, so it alone
//! folds nothing: what a new version newly calls is held until its traffic shows a real
//! rollout of the same workload — the other versions' calls falling to a fraction of
//! what they were before it appeared, while its own carry the workload — over whole
//! windows of event time. Confirmed, the held calls are learned and reported in the
//! version's one notice (up to a cap per version); not confirmed by the end of the
//! evidence window, they alert as they would have.
//!
//! One pod of several cannot forge this: relabelling its own calls leaves the other
//! pods' calls under the old version, and inflating its own volume does not lower
//! theirs. Decisions are taken at window boundaries of event time, in order, so a
//! replay at any speed or batching decides the same.

use std::collections::{BTreeMap, HashMap, VecDeque};

use eastwest_model::{Call, CompactString, Entry, Workload};

use crate::config::DetectorConfig;
use crate::findings::Finding;

/// Windows before the new version's first call that give the old versions' rate.
const LOOKBACK_BUCKETS: i64 = 5;
/// Consecutive whole windows after its first call in which the new version must have
/// replaced the old ones.
const EVIDENCE_BUCKETS: i64 = 2;
/// Share of their earlier rate the old versions may keep in those windows.
const OLD_SHARE_LEFT: f64 = 0.25;
/// Sampling-adjusted calls of the old versions, over the lookback, below which there is
/// too little traffic to tell a rollout from noise (nothing is confirmed).
const MIN_OLD_CALLS: f64 = 10.0;
/// Versions counted per workload, workloads tracked, versions pending at once
/// (attacker-controlled names): beyond them nothing more is held or confirmed.
const MAX_VERSIONS_PER_WORKLOAD: usize = 8;
const MAX_WORKLOADS: usize = 50_000;
const MAX_PENDING: usize = 4_096;
/// Boundaries evaluated one by one after an idle gap; past them the windows are empty
/// and only deadlines can change anything.
const MAX_GAP_STEPS: i64 = EVIDENCE_BUCKETS + 1;

/// What to do with a call whose findings are all novelty on known edges, made by a new
/// version of a known workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gate {
    /// Alert as usual (refuted, past its grace, over its cap, or nothing to go on).
    Alert,
    /// Held until the version is confirmed or its evidence window ends.
    Hold,
    /// A confirmed rollout: learn the call and count it in the version's notice.
    Fold,
}

/// A held call and its findings; repeats of the same endpoint and request context add
/// up in one.
#[derive(Debug, Clone)]
pub(crate) struct Held {
    pub call: Call,
    pub findings: Vec<Finding>,
    pub count: u64,
    pub weight: f64,
    pub last_ns: i64,
    pub trace_ids: Vec<String>,
}

/// The traffic figures that confirmed a rollout (calls per window).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Evidence {
    pub old_before: f64,
    pub old_after: f64,
    pub new_after: f64,
}

impl Evidence {
    pub fn describe(&self, version: &str) -> String {
        format!(
            "the other versions' calls fell from {:.1} to {:.1} per window while {version}'s rose to {:.1}",
            self.old_before, self.old_after, self.new_after
        )
    }
}

/// A decision taken at a window boundary.
#[derive(Debug)]
pub(crate) enum Resolution {
    Confirmed {
        source: Workload,
        version: String,
        at_ns: i64,
        evidence: Evidence,
        held: Vec<Held>,
    },
    Refuted {
        held: Vec<Held>,
    },
}

struct Traffic {
    /// First window this workload was counted in (what came before is unknown).
    first_bucket: i64,
    versions: Vec<String>,
    /// (window index, sampling-adjusted calls per version slot), oldest first.
    buckets: VecDeque<(i64, Vec<f64>)>,
}

impl Traffic {
    fn calls(&self, bucket: i64, slot: usize, own: bool) -> f64 {
        let Some((_, calls)) = self.buckets.iter().find(|(b, _)| *b == bucket) else {
            return 0.0;
        };
        calls
            .iter()
            .enumerate()
            .filter(|(i, _)| (*i == slot) == own)
            .map(|(_, c)| *c)
            .sum()
    }
}

struct Pending {
    source: Workload,
    first_seen_ns: i64,
    deadline_ns: i64,
    held: Vec<Held>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Decided {
    Confirmed { first_seen_ns: i64, folded: usize },
    Refuted { first_seen_ns: i64 },
}

pub(crate) struct Rollouts {
    bucket_ns: i64,
    keep: usize,
    traffic: HashMap<String, Traffic>,
    /// Ordered, so that decisions at one boundary come out in the same order every run.
    pending: BTreeMap<(String, String), Pending>,
    decided: HashMap<(String, String), Decided>,
    /// Index of the window whose start is the next boundary to evaluate.
    next_boundary: Option<i64>,
}

fn held_key(c: &Call) -> (CompactString, &str, &str, Option<&Entry>) {
    (c.destination.key(), &c.method, &c.route, c.entry.as_ref())
}

impl Rollouts {
    pub fn new(window: std::time::Duration, config: &DetectorConfig) -> Self {
        let bucket_ns = (window.as_nanos() as i64).max(1);
        let evidence = (config.rollout_evidence_window.as_nanos() as i64 / bucket_ns).min(1_000);
        Self {
            bucket_ns,
            keep: (LOOKBACK_BUCKETS + evidence + EVIDENCE_BUCKETS + 2) as usize,
            traffic: HashMap::new(),
            pending: BTreeMap::new(),
            decided: HashMap::new(),
            next_boundary: None,
        }
    }

    fn bucket(&self, t: i64) -> i64 {
        t.div_euclid(self.bucket_ns)
    }

    /// Counts a call of a versioned workload (every call, learned or not). A version new
    /// to a workload counted with others becomes a candidate while `detecting`, so that
    /// its evidence is weighed from its first call whether or not it calls anything new.
    pub fn count(&mut self, call: &Call, src: &str, detecting: bool, config: &DetectorConfig) {
        let Some(version) = call.source_version.as_deref() else {
            return;
        };
        let b = self.bucket(call.event_time_ns);
        if !self.traffic.contains_key(src) {
            if self.traffic.len() >= MAX_WORKLOADS {
                return;
            }
            let t = Traffic {
                first_bucket: b,
                versions: Vec::new(),
                buckets: VecDeque::new(),
            };
            self.traffic.insert(src.to_owned(), t);
        }
        let t = self.traffic.get_mut(src).expect("just ensured");
        let slot = match t.versions.iter().position(|v| v == version) {
            Some(slot) => slot,
            None if t.versions.len() >= MAX_VERSIONS_PER_WORKLOAD => return,
            None => {
                t.versions.push(version.to_owned());
                let candidate = t.versions.len() > 1;
                if candidate && detecting {
                    let key = (src.to_owned(), version.to_owned());
                    self.open(key, &call.source, call.event_time_ns, Vec::new(), config);
                }
                let t = self.traffic.get_mut(src).expect("just ensured");
                t.versions.len() - 1
            }
        };
        let t = self.traffic.get_mut(src).expect("just ensured");
        if t.buckets.back().is_none_or(|(last, _)| *last < b) {
            t.buckets.push_back((b, Vec::new()));
            while t.buckets.len() > self.keep {
                t.buckets.pop_front();
            }
        }
        // A late call counts in its own window while that is still kept.
        let Some((_, calls)) = t.buckets.iter_mut().rev().find(|(i, _)| *i == b) else {
            return;
        };
        if calls.len() <= slot {
            calls.resize(slot + 1, 0.0);
        }
        calls[slot] += call.sampling_weight();
    }

    /// Decides what to do with a call of `version` (first seen at `first_seen_ns`)
    /// whose findings are all foldable novelty.
    pub fn gate(
        &mut self,
        call: &Call,
        src: &str,
        version: &str,
        first_seen_ns: i64,
        findings: &[Finding],
        config: &DetectorConfig,
    ) -> Gate {
        let t = call.event_time_ns;
        let window = config.rollout_evidence_window.as_nanos() as i64;
        let key = (src.to_owned(), version.to_owned());
        match self.decided.get_mut(&key) {
            Some(Decided::Confirmed {
                first_seen_ns,
                folded,
            }) => {
                let grace = config.rollout_grace.as_nanos() as i64;
                if t.saturating_sub(*first_seen_ns) > grace || *folded >= config.rollout_max_folded
                {
                    return Gate::Alert;
                }
                *folded += 1;
                return Gate::Fold;
            }
            Some(Decided::Refuted { .. }) => return Gate::Alert,
            None => {}
        }
        if let Some(p) = self.pending.get_mut(&key) {
            if let Some(h) = p
                .held
                .iter_mut()
                .find(|h| held_key(&h.call) == held_key(call))
            {
                h.count += 1;
                h.weight += call.sampling_weight();
                h.last_ns = h.last_ns.max(t);
                if h.trace_ids.len() < config.max_trace_ids
                    && !call.trace_id.is_empty()
                    && !h.trace_ids.iter().any(|t| *t == call.trace_id)
                {
                    h.trace_ids.push(call.trace_id.to_string());
                }
                return Gate::Hold;
            }
            if p.held.len() >= config.rollout_max_folded {
                return Gate::Alert;
            }
            p.held.push(held(call, findings));
            return Gate::Hold;
        }
        // A version whose evidence window passed unconfirmed (decided before a restart,
        // or forgotten) never folds; nor does anything once too much is pending.
        if t.saturating_sub(first_seen_ns) > window {
            return Gate::Alert;
        }
        let opened = self.open(
            key,
            &call.source,
            first_seen_ns,
            vec![held(call, findings)],
            config,
        );
        if opened { Gate::Hold } else { Gate::Alert }
    }

    /// Starts weighing a version's evidence; false when nothing more may be pending or
    /// the version was decided already.
    fn open(
        &mut self,
        key: (String, String),
        source: &Workload,
        first_seen_ns: i64,
        held: Vec<Held>,
        config: &DetectorConfig,
    ) -> bool {
        let window = config.rollout_evidence_window.as_nanos() as i64;
        if window == 0
            || self.pending.len() >= MAX_PENDING
            || self.decided.contains_key(&key)
            || self.pending.contains_key(&key)
        {
            return false;
        }
        self.pending.insert(
            key,
            Pending {
                source: source.clone(),
                first_seen_ns,
                deadline_ns: first_seen_ns.saturating_add(window),
                held,
            },
        );
        true
    }

    /// Evaluates every window boundary up to `now_ns`, in order: pending versions are
    /// confirmed by their traffic, or refuted once their evidence window has passed.
    pub fn advance(&mut self, now_ns: i64, config: &DetectorConfig) -> Vec<Resolution> {
        let current = self.bucket(now_ns);
        let Some(mut next) = self.next_boundary else {
            self.next_boundary = Some(current + 1);
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut steps = 0;
        while next <= current {
            // After a long gap the windows are empty: skip to the last boundary.
            if steps == MAX_GAP_STEPS && next < current {
                next = current;
            }
            self.decide_at(next, &mut out, config);
            next += 1;
            steps += 1;
        }
        self.next_boundary = Some(next);
        if steps > 0 {
            self.forget(current, config);
        }
        out
    }

    fn decide_at(&mut self, boundary: i64, out: &mut Vec<Resolution>, config: &DetectorConfig) {
        let at_ns = boundary.saturating_mul(self.bucket_ns);
        let mut done = Vec::new();
        for (key, p) in &self.pending {
            if let Some(evidence) = self.evidence(&key.0, &key.1, p.first_seen_ns, boundary) {
                done.push((key.clone(), Some(evidence)));
            } else if at_ns >= p.deadline_ns {
                done.push((key.clone(), None));
            }
        }
        for (key, evidence) in done {
            let p = self.pending.remove(&key).expect("listed above");
            match evidence {
                Some(evidence) => {
                    let folded = p.held.len().min(config.rollout_max_folded);
                    self.decided.insert(
                        key.clone(),
                        Decided::Confirmed {
                            first_seen_ns: p.first_seen_ns,
                            folded,
                        },
                    );
                    out.push(Resolution::Confirmed {
                        source: p.source,
                        version: key.1,
                        at_ns,
                        evidence,
                        held: p.held,
                    });
                }
                None => {
                    self.decided.insert(
                        key,
                        Decided::Refuted {
                            first_seen_ns: p.first_seen_ns,
                        },
                    );
                    out.push(Resolution::Refuted { held: p.held });
                }
            }
        }
    }

    /// The old versions' traffic fell to a fraction of its rate before `version`
    /// appeared, in each of the last whole windows before `boundary`, and `version`
    /// carried more than they did.
    fn evidence(
        &self,
        workload: &str,
        version: &str,
        first_seen_ns: i64,
        boundary: i64,
    ) -> Option<Evidence> {
        let t = self.traffic.get(workload)?;
        let slot = t.versions.iter().position(|v| v == version)?;
        let first = self.bucket(first_seen_ns);
        let last = boundary - 1;
        if last - EVIDENCE_BUCKETS < first {
            return None;
        }
        let from = (first - LOOKBACK_BUCKETS).max(t.first_bucket);
        if from >= first {
            return None;
        }
        let old_total: f64 = (from..first).map(|b| t.calls(b, slot, false)).sum();
        if old_total < MIN_OLD_CALLS {
            return None;
        }
        let old_before = old_total / (first - from) as f64;
        let (mut old_after, mut new_after) = (0.0f64, f64::INFINITY);
        for b in last + 1 - EVIDENCE_BUCKETS..=last {
            let (old, new) = (t.calls(b, slot, false), t.calls(b, slot, true));
            if old > OLD_SHARE_LEFT * old_before || new <= old {
                return None;
            }
            old_after = old_after.max(old);
            new_after = new_after.min(new);
        }
        Some(Evidence {
            old_before,
            old_after,
            new_after,
        })
    }

    /// Drops decisions that no longer matter and workloads idle for longer than the
    /// windows kept.
    fn forget(&mut self, current: i64, config: &DetectorConfig) {
        let now_ns = current.saturating_mul(self.bucket_ns);
        let grace = config.rollout_grace.as_nanos() as i64;
        let window = config.rollout_evidence_window.as_nanos() as i64;
        // Past both, `gate` answers Alert from the version's first-seen time alone.
        let horizon = grace.max(window);
        self.decided.retain(|_, d| {
            let (Decided::Confirmed { first_seen_ns, .. } | Decided::Refuted { first_seen_ns }) =
                *d;
            now_ns.saturating_sub(first_seen_ns) <= horizon
        });
        let keep = self.keep as i64;
        let pending: std::collections::HashSet<&str> =
            self.pending.keys().map(|(w, _)| w.as_str()).collect();
        self.traffic.retain(|w, t| {
            t.buckets.back().is_some_and(|(b, _)| current - b <= keep)
                || pending.contains(w.as_str())
        });
    }
}

fn held(call: &Call, findings: &[Finding]) -> Held {
    Held {
        call: call.clone(),
        findings: findings.to_vec(),
        count: 1,
        weight: call.sampling_weight(),
        last_ns: call.event_time_ns,
        trace_ids: (!call.trace_id.is_empty())
            .then(|| call.trace_id.to_string())
            .into_iter()
            .collect(),
    }
}

#[cfg(test)]
#[path = "rollout_tests.rs"]
mod tests;
