//! Drift between the policies in force and observed traffic: calls no policy covers
//! (they pass only because nothing selects their callee), allow rules no call used in
//! the last N days, and rules far broader than their use (a wildcard principal or path
//! where a handful of routes is used).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::backtest::{EdgeRoute, by_edge_route};
use crate::document::Document;
use crate::history::CallGroup;
use crate::r#match::{PolicySet, Verdict};

/// Used routes at or under which a broad rule is reported as far broader than its use.
pub const BROAD_USED_ROUTES: usize = 3;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnusedRule {
    pub rule: String,
    /// Last call it allowed in the history read, if any.
    pub last_used: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BroadRule {
    pub rule: String,
    pub why: String,
    /// `METHOD route` pairs it allowed.
    pub used_routes: Vec<String>,
    pub used_callers: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DriftReport {
    pub uncovered: Vec<EdgeRoute>,
    pub unused: Vec<UnusedRule>,
    pub broad: Vec<BroadRule>,
    pub denied: Vec<EdgeRoute>,
}

/// `unused_since_ns`: rules with no allowed call at or after it are unused.
pub fn drift(
    docs: &[Document],
    policies: &PolicySet,
    groups: &[CallGroup],
    unused_since_ns: i64,
) -> DriftReport {
    let judged: Vec<(&CallGroup, Verdict)> = groups
        .iter()
        .map(|g| (g, policies.verdict(&g.view)))
        .collect();
    let uncovered = by_edge_route(
        judged
            .iter()
            .filter(|(_, v)| *v == Verdict::DefaultAllowed)
            .map(|(g, _)| (*g, "no policy selects the callee".to_owned())),
    );
    let denied = by_edge_route(judged.iter().filter_map(|(g, v)| match v {
        Verdict::Denied(by) => Some((*g, by.clone())),
        _ => None,
    }));
    #[derive(Default)]
    struct Use {
        last_ns: Option<i64>,
        routes: BTreeSet<String>,
        callers: BTreeSet<String>,
    }
    let mut used: BTreeMap<&str, Use> = BTreeMap::new();
    for (g, v) in &judged {
        if let Verdict::Allowed(rule) = v {
            let u = used.entry(rule.as_str()).or_default();
            u.last_ns = Some(u.last_ns.map_or(g.last_ns, |l| l.max(g.last_ns)));
            u.routes
                .insert(format!("{} {}", g.view.method, g.view.route));
            u.callers.insert(g.source.clone());
        }
    }
    let mut unused = Vec::new();
    let mut broad = Vec::new();
    for (rule, why) in PolicySet::rules(docs) {
        let u = used.get(rule.as_str());
        let last = u.and_then(|u| u.last_ns);
        if last.is_none_or(|l| l < unused_since_ns) {
            unused.push(UnusedRule {
                rule: rule.clone(),
                last_used: last.map(eastwest_model::format_event_time),
            });
        }
        if let Some(why) = why {
            let routes = u
                .map(|u| u.routes.iter().cloned().collect::<Vec<_>>())
                .unwrap_or_default();
            if routes.len() <= BROAD_USED_ROUTES {
                broad.push(BroadRule {
                    rule,
                    why,
                    used_callers: u
                        .map(|u| u.callers.iter().cloned().collect())
                        .unwrap_or_default(),
                    used_routes: routes,
                });
            }
        }
    }
    DriftReport {
        uncovered,
        unused,
        broad,
        denied,
    }
}

impl DriftReport {
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "uncovered (passes only by default allow): {}\n",
            self.uncovered.len()
        ));
        for d in &self.uncovered {
            out.push_str(&format!(
                "  {} -> {} {} {}: {} call(s), last {}\n",
                d.source, d.destination, d.method, d.route, d.calls, d.last_seen
            ));
        }
        out.push_str(&format!("unused allow rules: {}\n", self.unused.len()));
        for u in &self.unused {
            out.push_str(&format!(
                "  {} (last used {})\n",
                u.rule,
                u.last_used
                    .as_deref()
                    .unwrap_or("never in the history read")
            ));
        }
        out.push_str(&format!(
            "rules far broader than their use: {}\n",
            self.broad.len()
        ));
        for b in &self.broad {
            out.push_str(&format!(
                "  {}: {}; used by {:?} for {:?}\n",
                b.rule, b.why, b.used_callers, b.used_routes
            ));
        }
        out.push_str(&format!(
            "denied by the policies in force: {}\n",
            self.denied.len()
        ));
        for d in &self.denied {
            out.push_str(&format!(
                "  {} -> {} {} {}: {} call(s) [{}]\n",
                d.source, d.destination, d.method, d.route, d.calls, d.by
            ));
        }
        out
    }
}
