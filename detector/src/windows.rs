//! Event-time windows: fan-out, rate spikes and probing are judged per window against
//! the source's or edge's own history, with counts divided by the mesh-wide surge factor
//! so that a global traffic surge does not fire per edge, and an edge's rate compared
//! with what this window's requests should bring it (calls per request of each entry, as
//! learned), so that a surge of the request types that use an edge does not fire on it.

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;

use foldhash::fast::RandomState;

use eastwest_baseline::{EdgeKey, EndpointKey, EntryKey, LookupIndex};
use eastwest_model::{AlertKind, Call, CompactString, Entry, Protocol, ToCompactString, Workload};
use serde_json::json;

use crate::config::DetectorConfig;
use crate::findings::{Finding, ev};
use crate::score::{Moments, nb_upper_tail, p_novel, poisson_upper_tail, surprise};
use crate::volume::{VolumeHistory, WindowVolumes};

/// A windowed finding with what the alert needs beyond the finding itself.
#[derive(Debug, Clone)]
pub struct WindowFinding {
    pub finding: Finding,
    pub source: Workload,
    pub entry: Option<Entry>,
    pub time_ns: i64,
    pub trace_ids: Vec<String>,
}

#[derive(Debug)]
struct SourceWin {
    workload: Workload,
    entry: Option<Entry>,
    calls: f64,
    /// Destination key → known to the baseline as a callee of this source.
    callees: FastMap<String, bool>,
    /// Endpoint hash → known to the baseline.
    endpoints: FastMap<u64, bool>,
    denied: FastSet<u64>,
    denials: f64,
    denied_examples: Vec<String>,
    trace_ids: Vec<String>,
    last_ns: i64,
}

#[derive(Debug)]
struct EdgeWin {
    source: Workload,
    destination: Workload,
    calls: f64,
    /// Calls per request entry (by entry hash), bounded by [`MAX_ENTRIES_PER_EDGE`].
    entries: FastMap<u64, f64>,
    trace_ids: Vec<String>,
    last_ns: i64,
}

/// Entries tracked per edge per window; beyond it an edge's calls under further entries
/// are not explained by their load (which can only make a spike more likely to show).
const MAX_ENTRIES_PER_EDGE: usize = 64;

#[derive(Debug, Default)]
struct OpenWindow {
    start_ns: i64,
    total: f64,
    sources: FastMap<String, SourceWin>,
    /// Keyed by the seeded hash of (source, destination): no key allocation per call.
    edges: FastMap<u64, EdgeWin>,
    /// Per-source/edge findings already raised early in this window.
    fired: HashSet<(AlertKind, String)>,
    /// Calls under each request entry in this window (for load-aware rates).
    entry_calls: FastMap<u64, (Entry, f64)>,
    volumes: WindowVolumes,
}

/// What the detector itself remembers per source across windows (the baseline has no
/// per-source call rate or denial history).
#[derive(Debug, Default)]
struct Habit {
    first_window: u64,
    calls: Moments,
    probe_sum: f64,
    probe_sum_sq: f64,
    /// Windows left out of the history because they raised a finding.
    skipped: f64,
}

pub struct WindowTracker {
    width_ns: i64,
    open: Option<OpenWindow>,
    windows_closed: u64,
    totals: Moments,
    habits: FastMap<String, Habit>,
    volumes: VolumeHistory,
    /// Seeded per process: window keys are attacker-chosen names.
    hasher: RandomState,
    late_calls: u64,
    dropped_keys: u64,
}

type FastMap<K, V> = HashMap<K, V, RandomState>;
type FastSet<K> = HashSet<K, RandomState>;

fn push_trace(ids: &mut Vec<String>, id: &str, max: usize) {
    if !id.is_empty() && ids.len() < max && !ids.iter().any(|t| t == id) {
        ids.push(id.to_string());
    }
}

impl WindowTracker {
    pub fn new(width: std::time::Duration) -> Self {
        Self {
            width_ns: (width.as_nanos() as i64).max(1),
            open: None,
            windows_closed: 0,
            totals: Moments::default(),
            habits: FastMap::default(),
            volumes: VolumeHistory::default(),
            hasher: RandomState::default(),
            late_calls: 0,
            dropped_keys: 0,
        }
    }

    /// Calls that arrived after their window closed (not counted in windows).
    pub fn late_calls(&self) -> u64 {
        self.late_calls
    }

    /// Sources or edges not tracked because a window hit `max_window_keys`.
    pub fn dropped_keys(&self) -> u64 {
        self.dropped_keys
    }

    fn window_start(&self, t: i64) -> i64 {
        t - t.rem_euclid(self.width_ns)
    }

    /// Closes the open window when event time `t` lies beyond it.
    pub fn close_before(
        &mut self,
        t: i64,
        index: &LookupIndex,
        judge: bool,
        config: &DetectorConfig,
    ) -> Vec<WindowFinding> {
        match &self.open {
            Some(w) if t >= w.start_ns + self.width_ns => {
                let w = self.open.take().expect("checked above");
                self.close(w, index, judge, config)
            }
            _ => Vec::new(),
        }
    }

    /// Counts one call into its window; returns findings already certain (probing, or
    /// fan-out to new destinations alone crossing the score threshold).
    pub fn add(
        &mut self,
        call: &Call,
        src: &str,
        dst: &str,
        index: &LookupIndex,
        judge: bool,
        config: &DetectorConfig,
    ) -> Vec<WindowFinding> {
        let start = self.window_start(call.event_time_ns);
        let open = self.open.get_or_insert_with(|| OpenWindow {
            start_ns: start,
            ..Default::default()
        });
        // A call whose window has closed counts in the open one: backdating calls must
        // not hide a fan-out or a scan.
        if start < open.start_ns {
            self.late_calls += 1;
        }
        let w = call.sampling_weight();
        open.total += w;
        let max_ids = config.max_trace_ids;
        let max_targets = config.max_targets_per_source;
        let t = call.event_time_ns;

        let hasher = self.hasher;
        let entry_key = call.entry.as_ref().map(|entry| {
            let key = hasher.hash_one((&entry.service, &entry.route));
            if let Some((_, calls)) = open.entry_calls.get_mut(&key) {
                *calls += w;
            } else if open.entry_calls.len() < config.max_window_keys {
                open.entry_calls.insert(key, (entry.clone(), w));
            }
            key
        });
        let edge_key = hasher.hash_one((src, dst));
        let room = open.edges.len() < config.max_window_keys;
        let e = if room || open.edges.contains_key(&edge_key) {
            Some(open.edges.entry(edge_key).or_insert_with(|| EdgeWin {
                source: call.source.clone(),
                destination: call.destination.clone(),
                calls: 0.0,
                entries: FastMap::default(),
                trace_ids: Vec::new(),
                last_ns: t,
            }))
        } else {
            self.dropped_keys += 1;
            None
        };
        if let Some(e) = e {
            e.calls += w;
            e.last_ns = e.last_ns.max(t);
            push_trace(&mut e.trace_ids, &call.trace_id, max_ids);
            if let Some(key) = entry_key {
                if let Some(calls) = e.entries.get_mut(&key) {
                    *calls += w;
                } else if e.entries.len() < MAX_ENTRIES_PER_EDGE {
                    e.entries.insert(key, w);
                }
            }
        }

        if !open.sources.contains_key(src) {
            if open.sources.len() >= config.max_window_keys {
                self.dropped_keys += 1;
                return Vec::new();
            }
            open.sources.insert(
                src.to_string(),
                SourceWin {
                    workload: call.source.clone(),
                    entry: call.entry.clone(),
                    calls: 0.0,
                    callees: FastMap::default(),
                    endpoints: FastMap::default(),
                    denied: FastSet::default(),
                    denials: 0.0,
                    denied_examples: Vec::new(),
                    trace_ids: Vec::new(),
                    last_ns: t,
                },
            );
        }
        let s = open.sources.get_mut(src).expect("inserted above");
        s.calls += w;
        s.last_ns = s.last_ns.max(t);
        let mut new_unknown_callee = false;
        if !s.callees.contains_key(dst) && s.callees.len() < max_targets {
            let known = index.has_callee(src, dst);
            s.callees.insert(dst.to_string(), known);
            new_unknown_callee = !known;
            push_trace(&mut s.trace_ids, &call.trace_id, max_ids);
        }
        let ep = hasher.hash_one((dst, &call.method, &call.route));
        crate::volume::count(
            &mut open.volumes,
            hasher.hash_one((src, ep)),
            call,
            w,
            config.max_window_keys,
        );
        if !s.endpoints.contains_key(&ep) && s.endpoints.len() < max_targets {
            let known = index
                .edge_key(src, dst)
                .and_then(|edge| {
                    index.endpoint(EndpointKey {
                        edge,
                        method: index.id(&call.method)?,
                        route: index.id(&call.route)?,
                    })
                })
                .is_some();
            s.endpoints.insert(ep, known);
        }
        let denial_statuses = if call.protocol == Protocol::Grpc {
            &config.grpc_denial_statuses
        } else {
            &config.denial_statuses
        };
        let denied = call.status.is_some_and(|st| denial_statuses.contains(&st))
            || call.response_flags.as_deref().is_some_and(|flags| {
                flags
                    .split(',')
                    .any(|f| config.denial_flags.iter().any(|d| d == f.trim()))
            });
        let mut new_denied_target = false;
        if denied {
            s.denials += w;
            if s.denied.len() < max_targets && s.denied.insert(hasher.hash_one((dst, &call.route)))
            {
                new_denied_target = true;
                if s.denied_examples.len() < 5 {
                    let why = call
                        .response_flags
                        .clone()
                        .or(call.status.map(|st| st.to_compact_string()))
                        .unwrap_or_default();
                    s.denied_examples
                        .push(format!("{dst} {} {} → {why}", call.method, call.route));
                }
                push_trace(&mut s.trace_ids, &call.trace_id, max_ids);
            }
        }
        if !judge {
            return Vec::new();
        }
        let mut out = Vec::new();
        let habit = self.habits.get(src);
        let windows_closed = self.windows_closed;
        if new_denied_target && !open.fired.contains(&(AlertKind::Probing, src.to_string())) {
            let s = &open.sources[src];
            if let Some(f) = probing(s, habit, windows_closed, config, t)
                && f.finding.score >= config.window_min_score
            {
                open.fired.insert((AlertKind::Probing, src.to_string()));
                out.push(f);
            }
        }
        if new_unknown_callee && !open.fired.contains(&(AlertKind::FanOut, src.to_string())) {
            // New destinations alone are a lower bound on the window's final fan-out.
            let s = &open.sources[src];
            if let Some(f) = fan_out(src, s, index, f64::INFINITY, config, t)
                && f.finding.score >= config.window_min_score
            {
                open.fired.insert((AlertKind::FanOut, src.to_string()));
                out.push(f);
            }
        }
        out
    }

    fn surge(&self, total: f64, own_now: f64, own_mean: f64, config: &DetectorConfig) -> f64 {
        if !config.surge_normalisation || self.totals.windows < 1.0 {
            return 1.0;
        }
        let expected_others = self.totals.sum / self.totals.windows - own_mean;
        if expected_others < 1.0 {
            return 1.0;
        }
        ((total - own_now) / expected_others).max(1.0)
    }

    /// The window's entries resolved against the baseline, with their calls now: an
    /// edge's expected calls are the sum over entries of those calls times the share of
    /// the entry's learned calls that went over the edge.
    fn entry_load(w: &OpenWindow, index: &LookupIndex) -> Vec<(u64, EntryKey, f64)> {
        w.entry_calls
            .iter()
            .filter_map(|(&hash, (entry, calls))| Some((hash, index.entry_key(entry)?, *calls)))
            .collect()
    }

    /// How many times more calls this window's requests should bring the edge than its
    /// history's mean (1 when unknown). The expectation comes from the entry's *other*
    /// calls in the window (at the learned ratio), so an edge called 20× more per request
    /// cannot raise its own allowance. Capped: entries are telemetry, and forged
    /// requests must not buy an edge an unbounded allowance.
    fn load_factor(
        edge: EdgeKey,
        e: &EdgeWin,
        entries: &[(u64, EntryKey, f64)],
        mean: f64,
        index: &LookupIndex,
        config: &DetectorConfig,
    ) -> f64 {
        if mean <= 0.0 {
            return 1.0;
        }
        let expected: f64 = entries
            .iter()
            .filter_map(|&(hash, entry, calls)| {
                let share = index.edge_context(entry, edge)?.calls / index.entry_calls(entry)?;
                // An edge that is all of its entry's calls cannot be predicted from the rest.
                if !share.is_finite() || share >= 0.99 {
                    return None;
                }
                let others = (calls - e.entries.get(&hash).copied().unwrap_or(0.0)).max(0.0);
                Some(others * share / (1.0 - share))
            })
            .sum();
        (expected / mean).clamp(1.0, config.max_load_factor.max(1.0))
    }

    fn close(
        &mut self,
        w: OpenWindow,
        index: &LookupIndex,
        judge: bool,
        config: &DetectorConfig,
    ) -> Vec<WindowFinding> {
        let mut out = Vec::new();
        let mut sources: Vec<(&String, &SourceWin)> = w.sources.iter().collect();
        sources.sort_by(|a, b| a.0.cmp(b.0));
        for (src, s) in sources {
            let habit = self.habits.get(src.as_str());
            let mut raised = false;
            if judge {
                let own_mean = habit
                    .filter(|h| h.calls.windows > 0.0)
                    .map(|h| h.calls.sum / h.calls.windows)
                    .unwrap_or(0.0);
                let factor = self.surge(w.total, s.calls, own_mean, config);
                if !w.fired.contains(&(AlertKind::FanOut, src.clone()))
                    && let Some(f) = fan_out(src, s, index, factor, config, s.last_ns)
                    && f.finding.score >= config.window_min_score
                {
                    raised = true;
                    out.push(f);
                }
                if !w.fired.contains(&(AlertKind::Probing, src.clone()))
                    && let Some(f) = probing(s, habit, self.windows_closed, config, s.last_ns)
                    && f.finding.score >= config.window_min_score
                {
                    raised = true;
                    out.push(f);
                }
                raised |= w.fired.iter().any(|(_, k)| k == src);
            }
            if self.habits.len() < config.max_window_keys || self.habits.contains_key(src.as_str())
            {
                let first_window = self.windows_closed;
                let h = self.habits.entry(src.clone()).or_insert_with(|| Habit {
                    first_window,
                    ..Default::default()
                });
                if raised {
                    h.skipped += 1.0;
                } else {
                    h.calls.push(s.calls);
                    let x = s.denied.len() as f64;
                    h.probe_sum += x;
                    h.probe_sum_sq += x * x;
                }
            }
        }
        if judge {
            let entries = Self::entry_load(&w, index);
            let mut edges: Vec<((CompactString, CompactString), &EdgeWin)> = w
                .edges
                .values()
                .map(|e| ((e.source.key(), e.destination.key()), e))
                .collect();
            edges.sort_by(|a, b| a.0.cmp(&b.0));
            for ((src, dst), e) in edges {
                let Some((edge_key, hist)) = index
                    .edge_key(&src, &dst)
                    .and_then(|k| Some((k, index.edge_rate(k).filter(|h| !h.values.is_empty())?)))
                else {
                    continue; // a new edge: `new_edge` speaks for it
                };
                let m = Moments::from_values(&hist.values);
                let mean = m.sum / m.windows;
                let surge = self.surge(w.total, e.calls, mean, config);
                let load = Self::load_factor(edge_key, e, &entries, mean, index, config);
                let factor = surge.max(load);
                let x = e.calls / factor;
                // Never a spike at or below what learning already saw on this edge.
                if x <= hist.max() {
                    continue;
                }
                let p = nb_upper_tail(x, &m, config.rate_prior_mean, config.prior_windows);
                let score = surprise(p);
                if score < config.window_min_score {
                    continue;
                }
                let summary = format!(
                    "{src} called {dst} {:.0} times in one {}s window; its history averages {mean:.1} per active window (max {:.0}, {} windows){} (p ≈ {p:.2e}, score {score:.1})",
                    e.calls,
                    self.width_ns / 1_000_000_000,
                    hist.max(),
                    hist.values.len(),
                    if load > surge {
                        format!(
                            ", after dividing by ×{load:.1}, the rise in the requests that use this edge"
                        )
                    } else if factor > 1.0 {
                        format!(", after dividing by a mesh-wide surge of ×{factor:.1}")
                    } else {
                        String::new()
                    },
                );
                let finding = Finding {
                    kind: AlertKind::RateSpike,
                    score,
                    sensitive: false,
                    evidence: ev(&[
                        ("window_calls", json!(e.calls)),
                        ("history_mean", json!(mean)),
                        ("history_max", json!(hist.max())),
                        ("history_windows", json!(hist.values.len())),
                        ("surge_factor", json!(surge)),
                        ("load_factor", json!(load)),
                        ("p_upper_tail", json!(p)),
                    ]),
                    summary,
                    destination: Some(e.destination.clone()),
                    method: None,
                    route: None,
                    rollout: None,
                };
                out.push(WindowFinding {
                    finding,
                    source: e.source.clone(),
                    entry: None,
                    time_ns: e.last_ns,
                    trace_ids: e.trace_ids.clone(),
                });
            }
        }
        let width_secs = self.width_ns / 1_000_000_000;
        out.extend(self.volumes.close(w.volumes, judge, width_secs, config));
        if w.total > 0.0 {
            self.totals.push(w.total);
        }
        self.windows_closed += 1;
        out
    }
}

/// Distinct destinations and endpoints of one source in a window vs its own history;
/// known targets are divided by the surge factor, new ones count in full.
fn fan_out(
    src: &str,
    s: &SourceWin,
    index: &LookupIndex,
    factor: f64,
    config: &DetectorConfig,
    t: i64,
) -> Option<WindowFinding> {
    let hist = index.id(src).and_then(|s| index.source(s));
    let (dst_hist, ep_hist) = hist
        .map(|h| {
            (
                Moments::from_values(&h.fan_out.values),
                Moments::from_values(&h.endpoint_fan_out.values),
            )
        })
        .unwrap_or_default();
    let split = |m: &mut dyn Iterator<Item = bool>| {
        m.fold(
            (0.0, 0.0),
            |(k, n), known| if known { (k + 1.0, n) } else { (k, n + 1.0) },
        )
    };
    let (dst_known, dst_new) = split(&mut s.callees.values().copied());
    let (ep_known, ep_new) = split(&mut s.endpoints.values().copied());
    let x_dst = dst_known / factor + dst_new;
    let x_ep = ep_known / factor + ep_new;
    let p_dst = nb_upper_tail(
        x_dst,
        &dst_hist,
        config.fan_out_prior_mean,
        config.prior_windows,
    );
    let p_ep = nb_upper_tail(
        x_ep,
        &ep_hist,
        config.fan_out_prior_mean,
        config.prior_windows,
    );
    // How many new callees this many calls should bring, at the source's own
    // Good–Turing rate of adding callees.
    // A leaf (a workload that only ever received calls) had each request it handled as
    // a chance to call out, as for its first `new_edge`.
    let (known_callees, baseline_calls) = match hist {
        Some(h) => (h.callees.len() as f64, h.calls),
        None => (
            0.0,
            index.id(src).map_or(0.0, |id| index.received_calls(id)),
        ),
    };
    let expected_new = s.calls * p_novel(known_callees, baseline_calls);
    let p_new = if dst_new >= config.fan_out_min_new as f64 {
        poisson_upper_tail(dst_new, expected_new)
    } else {
        1.0
    };
    // Three looks at one window: Bonferroni keeps the minimum a p-value.
    let p = (3.0 * p_dst.min(p_ep).min(p_new)).min(1.0);
    let score = surprise(p);
    if score < config.window_min_score {
        return None;
    }
    let mean = |m: &Moments| {
        if m.windows > 0.0 {
            m.sum / m.windows
        } else {
            0.0
        }
    };
    let summary = format!(
        "{src} called {} distinct destinations ({dst_new} new) and {} distinct endpoints ({ep_new} new) in one window; its history averages {:.1} destinations and {:.1} endpoints per active window over {} windows; at its rate of adding callees {:.2e} new ones were expected (p ≈ {p:.2e}, score {score:.1})",
        s.callees.len(),
        s.endpoints.len(),
        mean(&dst_hist),
        mean(&ep_hist),
        dst_hist.windows,
        expected_new
    );
    let mut callees: Vec<&String> = s.callees.keys().collect();
    callees.sort();
    callees.truncate(20);
    let finding = Finding {
        kind: AlertKind::FanOut,
        score,
        sensitive: false,
        evidence: ev(&[
            ("distinct_destinations", json!(s.callees.len())),
            ("new_destinations", json!(dst_new)),
            ("distinct_endpoints", json!(s.endpoints.len())),
            ("new_endpoints", json!(ep_new)),
            ("history_mean_destinations", json!(mean(&dst_hist))),
            ("history_mean_endpoints", json!(mean(&ep_hist))),
            ("history_windows", json!(dst_hist.windows)),
            ("expected_new_destinations", json!(expected_new)),
            (
                "surge_factor",
                json!(if factor.is_finite() { factor } else { 0.0 }),
            ),
            ("destinations", json!(callees)),
            ("p_upper_tail", json!(p)),
        ]),
        summary,
        destination: None,
        method: None,
        route: None,
        rollout: None,
    };
    Some(WindowFinding {
        finding,
        source: s.workload.clone(),
        entry: s.entry.clone(),
        time_ns: t,
        trace_ids: s.trace_ids.clone(),
    })
}

/// Distinct denied targets (destination + route) of one source in a window vs its own
/// denial history (windows without denials count as zeros).
fn probing(
    s: &SourceWin,
    habit: Option<&Habit>,
    windows_closed: u64,
    config: &DetectorConfig,
    t: i64,
) -> Option<WindowFinding> {
    let x = s.denied.len() as f64;
    if x == 0.0 {
        return None;
    }
    let m = habit
        .map(|h| Moments {
            windows: ((windows_closed - h.first_window) as f64 - h.skipped).max(0.0),
            sum: h.probe_sum,
            sum_sq: h.probe_sum_sq,
        })
        .unwrap_or_default();
    let p = nb_upper_tail(x, &m, config.probe_prior_mean, config.prior_windows);
    let score = surprise(p);
    if score < config.window_min_score {
        return None;
    }
    let mean = if m.windows > 0.0 {
        m.sum / m.windows
    } else {
        0.0
    };
    let src = s.workload.key();
    let summary = format!(
        "{src} was denied (HTTP 401/403/404, gRPC PERMISSION_DENIED/UNIMPLEMENTED/UNAUTHENTICATED or Envoy NR/UAEX/RBAC) on {x:.0} distinct destination+route targets ({:.0} denials) in one window; its history averages {mean:.2} per window over {} windows (p ≈ {p:.2e}, score {score:.1}); e.g. {}",
        s.denials,
        m.windows,
        s.denied_examples.join("; ")
    );
    let finding = Finding {
        kind: AlertKind::Probing,
        score,
        sensitive: true,
        evidence: ev(&[
            ("denied_targets", json!(x)),
            ("denials", json!(s.denials)),
            ("history_mean_denied_targets", json!(mean)),
            ("history_windows", json!(m.windows)),
            ("examples", json!(s.denied_examples)),
            ("p_upper_tail", json!(p)),
        ]),
        summary,
        destination: None,
        method: None,
        route: None,
        rollout: None,
    };
    Some(WindowFinding {
        finding,
        source: s.workload.clone(),
        entry: s.entry.clone(),
        time_ns: t,
        trace_ids: s.trace_ids.clone(),
    })
}
