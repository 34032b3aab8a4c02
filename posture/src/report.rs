//! The audit report: per edge calls, mTLS coverage, plaintext calls with example trace
//! ids, principals per workload, policy coverage, and every alert of the period with who
//! handled it and when. Days whose raw history is gone come from the daily roll-ups;
//! the others from the raw history, with the roll-up code's own query so both agree.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use chrono::{DateTime, Utc};
use eastwest_api::store::{AlertFilter, MAX_PAGE};
use eastwest_baseline::{
    EdgeDay, MAX_ROLLUP_PRINCIPALS, MAX_ROLLUP_TRACES, NS_PER_DAY, edge_days, raw_complete_from,
    rolled_up_days, session, stored_edge_days,
};
use eastwest_model::{AlertKind, AlertState, Severity};
use serde::Serialize;

use crate::PostureError;

/// Where the report's days came from.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Sources {
    /// UTC days (YYYY-MM-DD) read from the daily roll-ups (their raw history is gone).
    pub rollup_days: Vec<String>,
    /// Whether any day came from the raw call history.
    pub raw_history: bool,
    /// Roll-up days count whole: the period starts at the first of them, not at `since`.
    pub note: String,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Totals {
    pub edges: usize,
    pub workloads: usize,
    pub calls: u64,
    pub mtls_calls: u64,
    pub plaintext_calls: u64,
    /// Calls whose telemetry did not say whether they were mTLS.
    pub unknown_tls_calls: u64,
    pub errors: u64,
    pub alerted_calls: u64,
    /// `mtls_calls / calls`, 0 without calls.
    pub mtls_coverage: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EdgeEvidence {
    pub source: String,
    pub destination: String,
    pub protocol: String,
    pub calls: u64,
    pub mtls_calls: u64,
    pub plaintext_calls: u64,
    pub unknown_tls_calls: u64,
    pub errors: u64,
    pub alerted_calls: u64,
    pub mtls_coverage: f64,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub source_principals: Vec<String>,
    pub destination_principals: Vec<String>,
    pub trace_ids: Vec<String>,
    pub plaintext_trace_ids: Vec<String>,
    /// What the given policies do with this edge's calls; `None` when no policy was
    /// given or the edge has no raw history in the period (roll-ups keep no routes).
    pub policy: Option<EdgePolicy>,
}

/// How the policies in force treat one edge, in rising order of concern (an edge takes
/// the worst of its calls').
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum EdgeCoverage {
    /// A rule allows every call of the edge.
    Covered,
    /// Some call passes only because no policy selects its callee (default allow).
    Uncovered,
    /// The policies would deny some call of the edge.
    Denied,
}

/// What the policies do with one edge's calls (weighted as the backtest counts them).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EdgePolicy {
    pub coverage: EdgeCoverage,
    pub allowed_calls: f64,
    pub default_allowed_calls: f64,
    pub denied_calls: f64,
    /// The rule that allowed the edge, or the document or reason that denies or leaves
    /// it uncovered (the first such call's).
    pub by: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WorkloadPrincipals {
    pub workload: String,
    /// Principals it presented as a caller.
    pub as_caller: Vec<String>,
    /// Principals it answered with as a callee.
    pub as_callee: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PolicyCoverage {
    pub assessed: bool,
    pub policy: Option<String>,
    /// Observed edges by [`EdgeCoverage`].
    pub edges_covered: Option<usize>,
    pub edges_uncovered: Option<usize>,
    pub edges_denied: Option<usize>,
    /// Edges without raw history in the period (only in roll-ups): not assessed.
    pub edges_unassessed: Option<usize>,
    /// Share of the assessed calls a rule allows.
    pub calls_covered: Option<f64>,
    pub note: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Handling {
    pub state: AlertState,
    pub by: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AlertEvidence {
    pub id: String,
    pub kind: AlertKind,
    pub severity: Severity,
    pub score: f64,
    pub source: String,
    pub destination: Option<String>,
    pub method: Option<String>,
    pub route: Option<String>,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub count: u64,
    pub state: AlertState,
    pub summary: String,
    pub trace_ids: Vec<String>,
    /// Every ack and accept, in order; empty while nobody handled it.
    pub handling: Vec<Handling>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AuditReport {
    pub generated_at: DateTime<Utc>,
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub sources: Sources,
    pub totals: Totals,
    /// Most calls first.
    pub edges: Vec<EdgeEvidence>,
    pub workloads: Vec<WorkloadPrincipals>,
    pub policy: PolicyCoverage,
    /// Newest first.
    pub alerts: Vec<AlertEvidence>,
    /// Ranked posture findings over the raw history of the period.
    pub posture: Option<crate::Posture>,
}

/// Policy coverage per edge. [`crate::PolicyFiles`] implements it with each dialect's
/// matching semantics over the period's call history; tests plug in their own.
pub trait PolicyCheck {
    /// What was checked (file names), for the report.
    fn describe(&self) -> String;
    /// What the policies do with the calls from `source` to `destination` (workload
    /// keys), or `None` when the check saw no call of that edge.
    fn edge(&self, source: &str, destination: &str) -> Option<EdgePolicy>;
}

/// Builds the report over `[since, until)` from the data dir.
pub async fn build(
    data_dir: &Path,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    policy: Option<&dyn PolicyCheck>,
) -> Result<AuditReport, PostureError> {
    if !data_dir.is_dir() {
        return Err(PostureError::NoDataDir(data_dir.to_path_buf()));
    }
    let (since_ns, until_ns) = (ns(since)?, ns(until)?);
    if since_ns >= until_ns {
        return Err(PostureError::Period(format!(
            "{since} is not before {until}"
        )));
    }
    let ctx = session(data_dir).await?;
    // Days before the raw history's complete part are read from roll-ups when there are
    // any; the raw rows of those days (if some hours are left) are not counted twice.
    let complete_from = raw_complete_from(data_dir).unwrap_or(i64::MIN);
    let (first_day, last_day) = (
        since_ns.div_euclid(NS_PER_DAY),
        (until_ns - 1).div_euclid(NS_PER_DAY),
    );
    let from_rollups: BTreeSet<i64> = rolled_up_days(data_dir)
        .into_iter()
        .filter(|d| (first_day..=last_day).contains(d) && d * NS_PER_DAY < complete_from)
        .collect();
    let mut days = Vec::new();
    for (&start, &end) in ranges(&from_rollups).iter() {
        days.extend(stored_edge_days(&ctx, start, end + 1).await?);
    }
    let mut raw_any = false;
    for window in raw_windows(since_ns, until_ns, &from_rollups) {
        let rows = edge_days(&ctx, window.0, window.1).await?;
        raw_any |= !rows.is_empty();
        days.extend(rows);
    }
    let edges = merge(&days, policy);
    let totals = totals(&edges);
    let workloads = principals(&edges);
    let policy = coverage(&edges, policy);
    let alerts = alerts(data_dir, since)?;
    let fmt_day = |d: i64| {
        DateTime::from_timestamp_nanos(d * NS_PER_DAY)
            .format("%Y-%m-%d")
            .to_string()
    };
    Ok(AuditReport {
        generated_at: Utc::now(),
        since,
        until,
        sources: Sources {
            rollup_days: from_rollups.iter().map(|d| fmt_day(*d)).collect(),
            raw_history: raw_any,
            note: if from_rollups.is_empty() {
                "every figure comes from the raw call history".into()
            } else {
                format!(
                    "{} day(s) come from daily roll-ups (the raw history of those days has expired); \
                     roll-up days count whole UTC days",
                    from_rollups.len()
                )
            },
        },
        totals,
        edges,
        workloads,
        policy,
        alerts,
        posture: None,
    })
}

fn ns(t: DateTime<Utc>) -> Result<i64, PostureError> {
    t.timestamp_nanos_opt()
        .ok_or_else(|| PostureError::Period(format!("{t} is out of range")))
}

/// Consecutive days as (first, last) ranges.
fn ranges(days: &BTreeSet<i64>) -> BTreeMap<i64, i64> {
    let mut out: BTreeMap<i64, i64> = BTreeMap::new();
    let mut current: Option<(i64, i64)> = None;
    for &d in days {
        current = match current {
            Some((s, e)) if e + 1 == d => Some((s, d)),
            Some((s, e)) => {
                out.insert(s, e);
                Some((d, d))
            }
            None => Some((d, d)),
        };
    }
    if let Some((s, e)) = current {
        out.insert(s, e);
    }
    out
}

/// `[since, until)` minus the roll-up days, as event-time windows for the raw history.
fn raw_windows(since: i64, until: i64, rollup: &BTreeSet<i64>) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    let mut start = since;
    for (&first, &last) in &ranges(rollup) {
        let (a, b) = (first * NS_PER_DAY, (last + 1) * NS_PER_DAY);
        if a > start {
            out.push((start, a.min(until)));
        }
        start = start.max(b);
    }
    if start < until {
        out.push((start, until));
    }
    out
}

fn push_capped(into: &mut Vec<String>, values: &[String], cap: usize) {
    for v in values {
        if into.len() >= cap {
            break;
        }
        if !into.contains(v) {
            into.push(v.clone());
        }
    }
}

fn merge(days: &[EdgeDay], policy: Option<&dyn PolicyCheck>) -> Vec<EdgeEvidence> {
    let mut by_edge: BTreeMap<(&str, &str), EdgeEvidence> = BTreeMap::new();
    let mut sorted: Vec<&EdgeDay> = days.iter().collect();
    sorted.sort_by_key(|d| (d.day, d.first_seen_ns));
    for d in sorted {
        let e = by_edge
            .entry((d.source.as_str(), d.destination.as_str()))
            .or_insert_with(|| EdgeEvidence {
                source: d.source.clone(),
                destination: d.destination.clone(),
                protocol: d.protocol.clone(),
                calls: 0,
                mtls_calls: 0,
                plaintext_calls: 0,
                unknown_tls_calls: 0,
                errors: 0,
                alerted_calls: 0,
                mtls_coverage: 0.0,
                first_seen: DateTime::from_timestamp_nanos(d.first_seen_ns),
                last_seen: DateTime::from_timestamp_nanos(d.last_seen_ns),
                source_principals: Vec::new(),
                destination_principals: Vec::new(),
                trace_ids: Vec::new(),
                plaintext_trace_ids: Vec::new(),
                policy: policy.and_then(|p| p.edge(&d.source, &d.destination)),
            });
        e.calls += d.calls;
        e.mtls_calls += d.mtls_calls;
        e.plaintext_calls += d.plaintext_calls;
        e.errors += d.errors;
        e.alerted_calls += d.alerted_calls;
        e.first_seen = e
            .first_seen
            .min(DateTime::from_timestamp_nanos(d.first_seen_ns));
        e.last_seen = e
            .last_seen
            .max(DateTime::from_timestamp_nanos(d.last_seen_ns));
        if d.protocol > e.protocol {
            e.protocol = d.protocol.clone();
        }
        push_capped(
            &mut e.source_principals,
            &d.source_principals,
            MAX_ROLLUP_PRINCIPALS,
        );
        push_capped(
            &mut e.destination_principals,
            &d.destination_principals,
            MAX_ROLLUP_PRINCIPALS,
        );
        push_capped(&mut e.trace_ids, &d.trace_ids, MAX_ROLLUP_TRACES);
        push_capped(
            &mut e.plaintext_trace_ids,
            &d.plaintext_trace_ids,
            MAX_ROLLUP_TRACES,
        );
    }
    let mut edges: Vec<EdgeEvidence> = by_edge.into_values().collect();
    for e in &mut edges {
        e.unknown_tls_calls = e.calls - e.mtls_calls - e.plaintext_calls;
        e.mtls_coverage = share(e.mtls_calls, e.calls);
        e.source_principals.sort();
        e.destination_principals.sort();
    }
    edges.sort_by(|a, b| {
        b.calls
            .cmp(&a.calls)
            .then_with(|| a.source.cmp(&b.source))
            .then_with(|| a.destination.cmp(&b.destination))
    });
    edges
}

fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

fn totals(edges: &[EdgeEvidence]) -> Totals {
    let mut t = Totals {
        edges: edges.len(),
        workloads: edges
            .iter()
            .flat_map(|e| [e.source.as_str(), e.destination.as_str()])
            .collect::<BTreeSet<_>>()
            .len(),
        ..Default::default()
    };
    for e in edges {
        t.calls += e.calls;
        t.mtls_calls += e.mtls_calls;
        t.plaintext_calls += e.plaintext_calls;
        t.unknown_tls_calls += e.unknown_tls_calls;
        t.errors += e.errors;
        t.alerted_calls += e.alerted_calls;
    }
    t.mtls_coverage = share(t.mtls_calls, t.calls);
    t
}

fn principals(edges: &[EdgeEvidence]) -> Vec<WorkloadPrincipals> {
    let mut by: BTreeMap<&str, (BTreeSet<&str>, BTreeSet<&str>)> = BTreeMap::new();
    for e in edges {
        by.entry(&e.source)
            .or_default()
            .0
            .extend(e.source_principals.iter().map(String::as_str));
        by.entry(&e.destination)
            .or_default()
            .1
            .extend(e.destination_principals.iter().map(String::as_str));
    }
    by.into_iter()
        .map(|(w, (caller, callee))| WorkloadPrincipals {
            workload: w.to_owned(),
            as_caller: caller.into_iter().map(str::to_owned).collect(),
            as_callee: callee.into_iter().map(str::to_owned).collect(),
        })
        .collect()
}

fn coverage(edges: &[EdgeEvidence], policy: Option<&dyn PolicyCheck>) -> PolicyCoverage {
    let Some(policy) = policy else {
        return PolicyCoverage {
            assessed: false,
            policy: None,
            edges_covered: None,
            edges_uncovered: None,
            edges_denied: None,
            edges_unassessed: None,
            calls_covered: None,
            note: "no policy files were given: policy coverage was not assessed".into(),
        };
    };
    let judged: Vec<&EdgePolicy> = edges.iter().filter_map(|e| e.policy.as_ref()).collect();
    let count = |c: EdgeCoverage| judged.iter().filter(|p| p.coverage == c).count();
    let (covered, uncovered, denied) = (
        count(EdgeCoverage::Covered),
        count(EdgeCoverage::Uncovered),
        count(EdgeCoverage::Denied),
    );
    let unassessed = edges.len() - judged.len();
    let allowed: f64 = judged.iter().map(|p| p.allowed_calls).sum();
    let all: f64 = judged
        .iter()
        .map(|p| p.allowed_calls + p.default_allowed_calls + p.denied_calls)
        .sum();
    let mut note = format!(
        "{covered} of {} observed edges are covered by an allow rule; {uncovered} pass only \
         because no policy selects their callee; the policies would deny calls on {denied}",
        edges.len()
    );
    if unassessed > 0 {
        note.push_str(&format!(
            "; {unassessed} not assessed (no raw call history in the period: roll-ups keep no routes)"
        ));
    }
    PolicyCoverage {
        assessed: true,
        policy: Some(policy.describe()),
        edges_covered: Some(covered),
        edges_uncovered: Some(uncovered),
        edges_denied: Some(denied),
        edges_unassessed: Some(unassessed),
        calls_covered: Some(if all > 0.0 { allowed / all } else { 0.0 }),
        note,
    }
}

/// Alerts seen in the period (last seen at or after `since`), with their handling.
fn alerts(data_dir: &Path, since: DateTime<Utc>) -> Result<Vec<AlertEvidence>, PostureError> {
    if !data_dir.join(eastwest_api::store::DATABASE_FILE).is_file() {
        return Ok(Vec::new());
    }
    let store = eastwest_api::AlertStore::open(data_dir)?;
    let mut out = Vec::new();
    let mut filter = AlertFilter {
        since: Some(since),
        limit: MAX_PAGE,
        ..Default::default()
    };
    loop {
        let page = store.list_alerts(&filter)?;
        for a in page.alerts {
            let history = store
                .get_alert(&a.id)?
                .map(|r| r.history)
                .unwrap_or_default();
            out.push(AlertEvidence {
                id: a.id,
                kind: a.kind,
                severity: a.severity,
                score: a.score,
                source: a.source.key().to_string(),
                destination: a.destination.as_ref().map(|d| d.key().into()),
                method: a.method,
                route: a.route,
                first_seen: a.first_seen,
                last_seen: a.last_seen,
                count: a.count,
                state: a.state,
                summary: a.summary,
                trace_ids: a.trace_ids,
                handling: history
                    .into_iter()
                    .map(|h| Handling {
                        state: h.state,
                        by: h.by,
                        at: h.at,
                    })
                    .collect(),
            });
        }
        match page.next {
            Some(next) => filter.before = Some(eastwest_api::store::Cursor::parse(&next)?),
            None => break,
        }
    }
    Ok(out)
}

#[cfg(test)]
#[path = "report_tests.rs"]
mod tests;
