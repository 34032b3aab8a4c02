//! The alert book: one alert per (kind, source, destination, method, route) with a
//! stable id; repeats update count/last_seen/trace ids; re-emission is throttled in event
//! time; a per-namespace budget turns a storm into suppressed counts.

use std::collections::{BTreeSet, HashMap, VecDeque};

use chrono::{DateTime, Utc};
use eastwest_model::{Alert, AlertState, Entry, Severity, Workload};

use crate::config::DetectorConfig;
use crate::findings::Finding;

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
    /// Over the namespace budget: not stored, counted in a storm incident.
    Suppressed {
        namespace: String,
        window_start_ns: i64,
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
    /// Namespace → (budget window start, alerts created in it).
    budget: HashMap<String, (i64, usize)>,
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

    pub fn record(&mut self, f: Finding, s: &Subject<'_>, config: &DetectorConfig) -> Recorded {
        let id = match &f.rollout {
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
        };
        let t = time(s.time_ns);
        let max_ids = config.max_trace_ids;
        if let Some(tr) = self.alerts.get_mut(&id) {
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
            if f.rollout.is_some() {
                // A rollout notice tells what the version has introduced so far.
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
            return Recorded::Held(id);
        }
        let namespace = s.source.namespace.clone().unwrap_or_default();
        let width = (config.budget_window.as_nanos() as i64).max(1);
        let window_start_ns = s.time_ns - s.time_ns.rem_euclid(width);
        let used = self
            .budget
            .entry(namespace.clone())
            .or_insert((window_start_ns, 0));
        if used.0 != window_start_ns {
            *used = (window_start_ns, 0);
        }
        if used.1 >= config.alert_budget_per_namespace {
            return Recorded::Suppressed {
                namespace,
                window_start_ns,
            };
        }
        used.1 += 1;
        let examples: Vec<&str> = s.trace_ids.iter().take(3).map(String::as_str).collect();
        let summary = if examples.is_empty() {
            f.summary
        } else {
            format!("{} (e.g. trace {})", f.summary, examples.join(", "))
        };
        let alert = Alert {
            id: id.clone(),
            kind: f.kind,
            severity: match f.rollout {
                Some(_) => Severity::Info,
                None => severity(f.score, f.sensitive),
            },
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
