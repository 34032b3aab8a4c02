//! The alert book: one alert per (kind, source, destination, method, route) with a
//! stable id; repeats update count/last_seen/trace ids; re-emission is throttled in event
//! time; a budget turns a storm of low findings into one counted `alert_storm` alert.
//!
//! The budget is built so that names the telemetry can mint do not help an attacker:
//! high and critical findings never spend it or wait for it; each source has its own
//! share inside its pool; and sources the baseline does not know (a minted name is one)
//! share one pool of their own, so they cannot spend the namespace budget that the known
//! workloads of that namespace are owed.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use chrono::{DateTime, Utc};
use eastwest_model::{Alert, AlertKind, AlertState, Entry, Severity, Workload};
use serde_json::json;

use crate::config::DetectorConfig;
use crate::findings::{Finding, ev};

/// FNV-1a: a stable id across processes and versions (std's hasher promises neither).
pub fn stable_id(parts: &[&str]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.bytes().chain([0xff]) {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

pub fn time(ns: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_nanos(ns)
}

/// Severity from the score (surprise in nats), one level up when the target is sensitive.
pub fn severity(score: f64, sensitive: bool) -> Severity {
    let base = match score {
        s if s < 6.0 => 1,
        s if s < 9.0 => 2,
        s if s < 13.0 => 3,
        _ => 4,
    };
    let level = if sensitive { (base + 1).min(4) } else { base };
    Severity::ALL[level]
}

/// The severity a finding's alert gets: info for a rollout notice, else from its score.
pub fn finding_severity(f: &Finding) -> Severity {
    match f.rollout {
        Some(_) => Severity::Info,
        None if f.kind == AlertKind::NewWorkload => Severity::Low,
        None => severity(f.score, f.sensitive),
    }
}

/// Who and when a finding is about.
pub struct Subject<'a> {
    pub source: &'a Workload,
    pub entry: Option<&'a Entry>,
    pub time_ns: i64,
    pub trace_ids: &'a [String],
}

pub enum Recorded {
    /// New, or updated and due for re-emission.
    Emit(Box<Alert>),
    /// Updated; re-emitted later by a flush.
    Held(String),
    /// Over the budget: not an alert of its own, counted in its pool's storm alert and
    /// storm incident.
    Suppressed {
        pool: String,
        window_start_ns: i64,
        /// The storm alert when new or due for re-emission (else a flush sends it).
        storm: Option<Box<Alert>>,
        storm_id: String,
    },
}

struct Tracked {
    alert: Alert,
    last_emitted_ns: i64,
}

#[derive(Default)]
pub struct AlertBook {
    alerts: HashMap<String, Tracked>,
    order: VecDeque<String>,
    dirty: BTreeSet<String>,
    budget: Budget,
}

/// New info-to-medium alerts in the current budget window, by pool and by source, and
/// what each pool's storm alert counted.
#[derive(Default)]
struct Budget {
    window_start_ns: i64,
    pools: HashMap<String, usize>,
    sources: HashMap<String, usize>,
    storms: HashMap<String, StormCounts>,
}

#[derive(Default)]
struct StormCounts {
    by_source: BTreeMap<String, u64>,
    by_kind: BTreeMap<&'static str, u64>,
    max_score: f64,
}

/// Distinct sources named in a storm alert's evidence (the count goes on).
const MAX_STORM_SOURCES: usize = 20;

/// The pool a source's new alerts count against: its namespace when the baseline knows
/// the source, else the one pool of sources unknown to it.
pub fn budget_pool(source: &Workload, known: bool) -> String {
    if known {
        format!("namespace {:?}", source.namespace.as_deref().unwrap_or(""))
    } else {
        "sources unknown to the baseline".to_owned()
    }
}

impl Budget {
    /// Spends one unit of `pool`'s and `source`'s budget for the window holding `t`;
    /// returns the window's start when either is spent (the finding is suppressed).
    fn spend(&mut self, pool: &str, source: &str, t: i64, config: &DetectorConfig) -> Option<i64> {
        let width = (config.budget_window.as_nanos() as i64).max(1);
        let start = t - t.rem_euclid(width);
        // A late finding counts against the open window, never reopens an old one.
        if start > self.window_start_ns {
            *self = Budget {
                window_start_ns: start,
                ..Default::default()
            };
        }
        let pool_used = self.pools.get(pool).copied().unwrap_or(0);
        let source_used = self.sources.get(source).copied().unwrap_or(0);
        if pool_used >= config.alert_budget_per_namespace
            || source_used >= config.alert_budget_per_source
        {
            return Some(self.window_start_ns);
        }
        *self.pools.entry(pool.to_owned()).or_insert(0) += 1;
        *self.sources.entry(source.to_owned()).or_insert(0) += 1;
        None
    }
}

/// The id of the alert a finding about `s` updates (or creates).
pub(crate) fn alert_id(f: &Finding, s: &Subject<'_>) -> String {
    match &f.rollout {
        Some(version) => stable_id(&["rollout", &s.source.key(), version]),
        None => {
            let dst = f.destination.as_ref().map(|d| d.key()).unwrap_or_default();
            stable_id(&[
                f.kind.as_str(),
                &s.source.key(),
                &dst,
                f.method.as_deref().unwrap_or(""),
                f.route.as_deref().unwrap_or(""),
            ])
        }
    }
}

impl AlertBook {
    pub fn get(&self, id: &str) -> Option<&Alert> {
        self.alerts.get(id).map(|t| &t.alert)
    }

    pub fn set_incident(&mut self, id: &str, incident_id: &str) {
        if let Some(t) = self.alerts.get_mut(id) {
            t.alert.incident_id = Some(incident_id.to_string());
        }
    }

    /// Adds `extra` more occurrences (up to `last_ns`, with more example traces) to an
    /// alert just recorded, for findings that were held and are released together; the
    /// next flush emits it.
    pub fn add_occurrences(
        &mut self,
        id: &str,
        extra: u64,
        last_ns: i64,
        trace_ids: &[String],
        config: &DetectorConfig,
    ) {
        let Some(tracked) = self.alerts.get_mut(id) else {
            return;
        };
        let a = &mut tracked.alert;
        a.count += extra;
        a.last_seen = a.last_seen.max(time(last_ns));
        for tid in trace_ids {
            if a.trace_ids.len() < config.max_trace_ids && !a.trace_ids.contains(tid) {
                a.trace_ids.push(tid.clone());
            }
        }
        self.dirty.insert(id.to_owned());
    }

    /// Records a finding; `known` says whether the baseline knows its source (which
    /// budget pool a new alert draws on).
    pub fn record(
        &mut self,
        f: Finding,
        s: &Subject<'_>,
        known: bool,
        config: &DetectorConfig,
    ) -> Recorded {
        let id = alert_id(&f, s);
        if self.alerts.contains_key(&id) {
            return self.update(id, f, s, config);
        }
        let level = finding_severity(&f);
        // Never held back: high and critical findings neither wait for nor spend budget.
        if level < Severity::High {
            let pool = budget_pool(s.source, known);
            if let Some(window_start_ns) =
                self.budget.spend(&pool, &s.source.key(), s.time_ns, config)
            {
                let storm_id = stable_id(&["alert_storm", &pool, &window_start_ns.to_string()]);
                let storm = self.count_in_storm(&storm_id, &pool, window_start_ns, &f, s, config);
                return Recorded::Suppressed {
                    pool,
                    window_start_ns,
                    storm,
                    storm_id,
                };
            }
        }
        self.insert(id, f, s, level, config)
    }

    fn update(
        &mut self,
        id: String,
        f: Finding,
        s: &Subject<'_>,
        config: &DetectorConfig,
    ) -> Recorded {
        let t = time(s.time_ns);
        let max_ids = config.max_trace_ids;
        let tr = self.alerts.get_mut(&id).expect("checked by the caller");
        let a = &mut tr.alert;
        a.count += 1;
        a.first_seen = a.first_seen.min(t);
        a.last_seen = a.last_seen.max(t);
        for tid in s.trace_ids {
            if a.trace_ids.len() < max_ids && !a.trace_ids.contains(tid) {
                a.trace_ids.push(tid.clone());
            }
        }
        let rounded = round2(f.score);
        let escalated = rounded > a.score;
        if f.kind == AlertKind::NewWorkload {
            crate::new_workload::merge(&mut a.evidence, &mut a.summary, &f, &s.source.key());
        } else if f.rollout.is_some() || f.kind == AlertKind::AlertStorm {
            // A notice or a storm tells what it has counted so far.
            a.score = a.score.max(rounded);
            a.evidence = f.evidence;
            a.summary = f.summary;
        } else if escalated {
            a.score = rounded;
            a.severity = a.severity.max(severity(f.score, f.sensitive));
            a.evidence = f.evidence;
        }
        let interval = config.min_update_interval.as_nanos() as i64;
        if escalated || s.time_ns.saturating_sub(tr.last_emitted_ns) >= interval {
            tr.last_emitted_ns = s.time_ns;
            self.dirty.remove(&id);
            return Recorded::Emit(Box::new(tr.alert.clone()));
        }
        self.dirty.insert(id.clone());
        Recorded::Held(id)
    }

    fn insert(
        &mut self,
        id: String,
        f: Finding,
        s: &Subject<'_>,
        level: Severity,
        config: &DetectorConfig,
    ) -> Recorded {
        let t = time(s.time_ns);
        let max_ids = config.max_trace_ids;
        let examples: Vec<&str> = s.trace_ids.iter().take(3).map(String::as_str).collect();
        let summary = if examples.is_empty() || f.kind == AlertKind::AlertStorm {
            f.summary
        } else {
            format!("{} (e.g. trace {})", f.summary, examples.join(", "))
        };
        let alert = Alert {
            id: id.clone(),
            kind: f.kind,
            severity: level,
            score: round2(f.score),
            source: s.source.clone(),
            destination: f.destination,
            method: f.method,
            route: f.route,
            entry: s.entry.cloned(),
            first_seen: t,
            last_seen: t,
            count: 1,
            trace_ids: s.trace_ids.iter().take(max_ids).cloned().collect(),
            incident_id: None,
            summary,
            evidence: f.evidence,
            state: AlertState::Open,
        };
        if self.alerts.len() >= config.max_tracked_alerts
            && let Some(old) = self.order.pop_front()
        {
            self.alerts.remove(&old);
            self.dirty.remove(&old);
        }
        self.order.push_back(id.clone());
        self.alerts.insert(
            id,
            Tracked {
                alert: alert.clone(),
                last_emitted_ns: s.time_ns,
            },
        );
        Recorded::Emit(Box::new(alert))
    }

    /// Counts a suppressed finding in its pool's storm alert for the window (created at
    /// the first, then updated like any alert). Returns the storm alert when due.
    fn count_in_storm(
        &mut self,
        id: &str,
        pool: &str,
        window_start_ns: i64,
        f: &Finding,
        s: &Subject<'_>,
        config: &DetectorConfig,
    ) -> Option<Box<Alert>> {
        let counts = self.budget.storms.entry(id.to_owned()).or_default();
        let src = s.source.key();
        if counts.by_source.len() < MAX_STORM_SOURCES || counts.by_source.contains_key(src.as_str())
        {
            *counts.by_source.entry(src.into()).or_insert(0) += 1;
        }
        *counts.by_kind.entry(f.kind.as_str()).or_insert(0) += 1;
        counts.max_score = counts.max_score.max(f.score);
        let total: u64 = counts.by_kind.values().sum();
        let mut top: Vec<(&String, &u64)> = counts.by_source.iter().collect();
        top.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let top: Vec<String> = top
            .iter()
            .take(5)
            .map(|(s, n)| format!("{s} ({n})"))
            .collect();
        let kinds: Vec<String> = counts
            .by_kind
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        let summary = format!(
            "alert budget reached for {pool}: {total} info-to-medium findings in the {} window from {} were counted here instead of alerted one by one (budget {} new alerts per pool and {} per source; high and critical findings are never held back); most from {}; kinds: {}",
            humantime_serde::re::humantime::format_duration(config.budget_window),
            time(window_start_ns).to_rfc3339(),
            config.alert_budget_per_namespace,
            config.alert_budget_per_source,
            top.join(", "),
            kinds.join(", "),
        );
        let storm = Finding {
            kind: AlertKind::AlertStorm,
            score: counts.max_score,
            sensitive: false,
            evidence: ev(&[
                ("pool", json!(pool)),
                ("window_start", json!(time(window_start_ns))),
                ("suppressed", json!(total)),
                ("budget_per_pool", json!(config.alert_budget_per_namespace)),
                ("budget_per_source", json!(config.alert_budget_per_source)),
                ("suppressed_by_source", json!(counts.by_source)),
                ("suppressed_by_kind", json!(counts.by_kind)),
            ]),
            summary,
            destination: None,
            method: None,
            route: None,
            rollout: None,
        };
        // The storm is about its pool, not about one request.
        let s = Subject { entry: None, ..*s };
        let recorded = if self.alerts.contains_key(id) {
            self.update(id.to_owned(), storm, &s, config)
        } else {
            // A storm is worth a look whatever it counted: high, so webhooks filtering on
            // severity still hear of it.
            self.insert(id.to_owned(), storm, &s, Severity::High, config)
        };
        match recorded {
            Recorded::Emit(a) => Some(a),
            _ => None,
        }
    }

    /// Alerts updated since they were last emitted, in id order.
    pub fn flush(&mut self) -> Vec<Alert> {
        std::mem::take(&mut self.dirty)
            .into_iter()
            .filter_map(|id| self.alerts.get(&id).map(|t| t.alert.clone()))
            .collect()
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[cfg(test)]
#[path = "alerts_tests.rs"]
mod tests;
