//! Backtest: replay the call history against policies and report what they would have
//! denied, by edge and route, and which stored alerts' calls they would have blocked.

use std::collections::BTreeMap;

use eastwest_model::{Alert, CompactString, format_event_time};
use serde::Serialize;

use crate::history::CallGroup;
use crate::r#match::{CallView, PolicySet, Verdict};

/// Calls of one edge and route that got one verdict kind.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EdgeRoute {
    pub source: String,
    pub destination: String,
    pub method: String,
    pub route: String,
    /// Destination ports seen.
    pub ports: Vec<u16>,
    pub calls: f64,
    pub first_seen: String,
    pub last_seen: String,
    /// Up to five example trace ids.
    pub trace_ids: Vec<String>,
    /// The document or reason behind the verdict (the first seen).
    pub by: String,
}

/// What a stored alert's calls would have met.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertOutcome {
    pub id: String,
    pub kind: String,
    pub summary: String,
    /// Every call of it in the history was denied (or, with none left in the history,
    /// the alert's own call would be).
    pub blocked: bool,
    pub calls: f64,
    pub denied_calls: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BacktestReport {
    pub since: Option<String>,
    pub until: Option<String>,
    pub documents: usize,
    pub calls: f64,
    pub allowed_calls: f64,
    pub default_allowed_calls: f64,
    pub denied_calls: f64,
    pub denied: Vec<EdgeRoute>,
    pub alerts: Vec<AlertOutcome>,
}

const EXAMPLES: usize = 5;

/// (source, destination, method, route).
type EdgeRouteKey = (String, String, CompactString, CompactString);

/// Folds groups into per (edge, method, route) rows.
pub(crate) fn by_edge_route<'a>(
    groups: impl Iterator<Item = (&'a CallGroup, String)>,
) -> Vec<EdgeRoute> {
    let mut rows: BTreeMap<EdgeRouteKey, (EdgeRoute, i64, i64)> = BTreeMap::new();
    for (g, by) in groups {
        let key = (
            g.source.clone(),
            g.destination.clone(),
            g.view.method.clone(),
            g.view.route.clone(),
        );
        let (row, first, last) = rows.entry(key).or_insert_with(|| {
            (
                EdgeRoute {
                    source: g.source.clone(),
                    destination: g.destination.clone(),
                    method: g.view.method.to_string(),
                    route: g.view.route.to_string(),
                    ports: Vec::new(),
                    calls: 0.0,
                    first_seen: String::new(),
                    last_seen: String::new(),
                    trace_ids: Vec::new(),
                    by,
                },
                g.first_ns,
                g.last_ns,
            )
        });
        row.calls += g.calls;
        *first = (*first).min(g.first_ns);
        *last = (*last).max(g.last_ns);
        if let Some(p) = g.view.port
            && !row.ports.contains(&p)
        {
            row.ports.push(p);
        }
        for t in &g.trace_ids {
            if row.trace_ids.len() < EXAMPLES && !row.trace_ids.contains(t) {
                row.trace_ids.push(t.clone());
            }
        }
    }
    let mut out: Vec<EdgeRoute> = rows
        .into_values()
        .map(|(mut r, first, last)| {
            r.first_seen = format_event_time(first);
            r.last_seen = format_event_time(last);
            r.ports.sort_unstable();
            r
        })
        .collect();
    out.sort_by(|a, b| b.calls.total_cmp(&a.calls));
    out
}

fn alert_view(a: &Alert) -> Option<CallView> {
    let d = a.destination.as_ref()?;
    Some(CallView {
        source_service: a.source.service.as_str().into(),
        source_namespace: a.source.namespace.as_deref().map(Into::into),
        principal: a.source.principal.as_deref().map(Into::into),
        destination_service: d.service.as_str().into(),
        destination_namespace: d.namespace.as_deref().map(Into::into),
        protocol: if a.route.as_deref().is_some_and(|r| r.starts_with('/')) {
            eastwest_model::Protocol::Http
        } else {
            eastwest_model::Protocol::Grpc
        },
        method: a.method.as_deref().unwrap_or_default().into(),
        route: a.route.as_deref().unwrap_or_default().into(),
        port: None,
    })
}

/// The calls of an alert: its edge and (when it names them) method and route, between
/// its first and last seen.
fn alert_calls<'a>(
    a: &'a Alert,
    groups: &'a [(CallGroup, Verdict)],
) -> impl Iterator<Item = &'a (CallGroup, Verdict)> {
    let dest = a.destination.as_ref().map(|d| d.key().to_string());
    let (from, to) = (
        a.first_seen.timestamp_nanos_opt().unwrap_or(i64::MIN),
        a.last_seen.timestamp_nanos_opt().unwrap_or(i64::MAX),
    );
    let source = a.source.key();
    groups.iter().filter(move |(g, _)| {
        Some(&g.destination) == dest.as_ref()
            && g.source == source
            && a.method.as_deref().is_none_or(|m| m == g.view.method)
            && a.route.as_deref().is_none_or(|r| r == g.view.route)
            && g.last_ns >= from
            && g.first_ns <= to
    })
}

pub fn backtest(
    policies: &PolicySet,
    groups: Vec<CallGroup>,
    alerts: &[Alert],
    since: Option<String>,
    until: Option<String>,
) -> BacktestReport {
    let judged: Vec<(CallGroup, Verdict)> = groups
        .into_iter()
        .map(|g| {
            let v = policies.verdict(&g.view);
            (g, v)
        })
        .collect();
    let sum = |f: fn(&Verdict) -> bool| {
        judged
            .iter()
            .filter(|(_, v)| f(v))
            .map(|(g, _)| g.calls)
            .sum::<f64>()
            + 0.0
    };
    let denied = by_edge_route(judged.iter().filter_map(|(g, v)| match v {
        Verdict::Denied(by) => Some((g, by.clone())),
        _ => None,
    }));
    let alerts = alerts
        .iter()
        .filter(|a| a.destination.is_some())
        .map(|a| {
            let mine: Vec<_> = alert_calls(a, &judged).collect();
            let calls: f64 = mine.iter().map(|(g, _)| g.calls).sum();
            let denied_calls: f64 = mine
                .iter()
                .filter(|(_, v)| v.is_denied())
                .map(|(g, _)| g.calls)
                .sum();
            let blocked = if mine.is_empty() {
                alert_view(a).is_some_and(|v| policies.verdict(&v).is_denied())
            } else {
                mine.iter().all(|(_, v)| v.is_denied())
            };
            AlertOutcome {
                id: a.id.clone(),
                kind: a.kind.as_str().to_owned(),
                summary: a.summary.clone(),
                blocked,
                calls,
                denied_calls,
            }
        })
        .collect();
    BacktestReport {
        since,
        until,
        documents: policies.documents(),
        calls: judged.iter().map(|(g, _)| g.calls).sum(),
        allowed_calls: sum(|v| matches!(v, Verdict::Allowed(_))),
        default_allowed_calls: sum(|v| matches!(v, Verdict::DefaultAllowed)),
        denied_calls: sum(Verdict::is_denied),
        denied,
        alerts,
    }
}

impl BacktestReport {
    /// A plain-text summary for the CLI.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "{} document(s); {} call(s) replayed ({} .. {}): {} allowed by a rule, {} by default (no policy selects the callee), {} denied\n",
            self.documents,
            self.calls,
            self.since.as_deref().unwrap_or("start"),
            self.until.as_deref().unwrap_or("end"),
            self.allowed_calls,
            self.default_allowed_calls,
            self.denied_calls
        );
        if !self.denied.is_empty() {
            out.push_str("\nwould be denied (by edge and route):\n");
            for d in &self.denied {
                out.push_str(&format!(
                    "  {} -> {} {} {} ports {:?}: {} call(s), {} .. {}, traces {} [{}]\n",
                    d.source,
                    d.destination,
                    d.method,
                    d.route,
                    d.ports,
                    d.calls,
                    d.first_seen,
                    d.last_seen,
                    d.trace_ids.join(","),
                    d.by
                ));
            }
        }
        if !self.alerts.is_empty() {
            out.push_str("\nstored alerts:\n");
            for a in &self.alerts {
                out.push_str(&format!(
                    "  {} {} {}: {} ({} of {} call(s) denied)\n",
                    if a.blocked {
                        "BLOCKED    "
                    } else {
                        "not blocked"
                    },
                    a.id,
                    a.kind,
                    a.summary,
                    a.denied_calls,
                    a.calls
                ));
            }
        }
        out
    }
}
