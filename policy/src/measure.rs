//! How well generated policies fit a labelled scenario: learn rules from the learning
//! window's history, compile every dialect, round-trip it through YAML and the typed
//! bindings, and count what each would deny — normal calls of the learning window
//! (target 0), normal calls after it, and the attack's calls (target all). Everything
//! goes through the code `policy generate` and `policy backtest` run: the history
//! writer, the DataFusion reads, the compilers, the parser and the matchers.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use eastwest_baseline::HistoryWriter;
use eastwest_model::{Call, CompactString, Label};
use serde::Serialize;

use crate::{
    CallView, Format, PolicyError, PolicySet, backtest, call_groups, compile, parse_yaml,
    rules_from_data_dir,
};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DialectFigures {
    pub format: Format,
    pub documents: usize,
    /// Serialised, parsed back, equal.
    pub round_trip: bool,
    pub learning_denied: f64,
    pub normal_after_denied: f64,
    pub attack_denied: f64,
    /// What the learning-window backtest denied, by edge and route (should be empty).
    pub learning_denied_rows: Vec<crate::EdgeRoute>,
    /// Normal calls after learning it denied: `source -> destination METHOD route` → calls.
    pub normal_after_denied_edges: std::collections::BTreeMap<String, f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScenarioFigures {
    pub scenario: String,
    pub class: String,
    /// Operations in the rule set (caller, method, route, port per callee).
    pub operations: usize,
    pub learning_calls: f64,
    pub normal_after_calls: f64,
    pub attack_calls: f64,
    pub dialects: Vec<DialectFigures>,
}

/// Whether `c` is one of the calls an attack label describes: its source in its span,
/// and its destination, method and route where the label names them; a label naming
/// no destination (fan-out, probing) covers the source's calls to operations it never
/// made while learning.
fn is_attack(
    c: &Call,
    labels: &[Label],
    learned: &BTreeSet<(CompactString, CompactString, CompactString, CompactString)>,
) -> bool {
    labels.iter().filter(|l| l.class == "attack").any(|l| {
        let (s, e) = (
            l.start.timestamp_nanos_opt().unwrap_or(i64::MIN),
            l.end.timestamp_nanos_opt().unwrap_or(i64::MAX),
        );
        let src = c.source.key();
        if l.source != src || c.event_time_ns < s || c.event_time_ns > e {
            return false;
        }
        match &l.destination {
            Some(d) => {
                *d == c.destination.key()
                    && l.method
                        .as_ref()
                        .is_none_or(|m| m.eq_ignore_ascii_case(&c.method))
                    && l.route.as_ref().is_none_or(|r| route_fits(r, &c.route))
            }
            None => {
                !learned.contains(&(src, c.destination.key(), c.method.clone(), c.route.clone()))
            }
        }
    })
}

/// Whether a label's route describes a recorded route: equal, or segment by segment with
/// a placeholder on either side standing for any one segment (a label's `{orderId}` is
/// recorded as `{uuid}` or as the value; a label's `service112` as `{token}`). The
/// collector also upper-cases database verbs, hence the case-blind method above.
fn route_fits(label: &str, route: &str) -> bool {
    let placeholder = |s: &str| s.len() >= 2 && s.starts_with('{') && s.ends_with('}');
    label == route
        || (label.split('/').count() == route.split('/').count()
            && label.split('/').zip(route.split('/')).all(|(l, r)| {
                l == r || (placeholder(l) && !r.is_empty()) || (placeholder(r) && !l.is_empty())
            }))
}

/// Measures one scenario's calls (event-time ordered) with detection from `detect_from`,
/// using `work_dir` (empty) as the data dir.
pub async fn measure(
    work_dir: &Path,
    scenario: &str,
    calls: &[Call],
    detect_from: i64,
    labels: &[Label],
) -> Result<ScenarioFigures, PolicyError> {
    let mut history = HistoryWriter::new(work_dir, Duration::from_secs(3650 * 86400), 65_536);
    for c in calls {
        history.append(c.clone(), c.event_time_ns < detect_from)?;
    }
    history.flush()?;
    let rules = rules_from_data_dir(work_dir, Some(0), Some(detect_from), &[]).await?;
    let learning = call_groups(work_dir, None, Some(detect_from)).await?;
    let learned: BTreeSet<_> = calls
        .iter()
        .filter(|c| c.event_time_ns < detect_from)
        .map(|c| {
            (
                c.source.key(),
                c.destination.key(),
                c.method.clone(),
                c.route.clone(),
            )
        })
        .collect();
    let after: Vec<(&Call, bool)> = calls
        .iter()
        .filter(|c| c.event_time_ns >= detect_from)
        .map(|c| (c, is_attack(c, labels, &learned)))
        .collect();
    let mut dialects = Vec::new();
    for format in Format::ALL {
        let compiled = compile(&rules, format);
        let parsed = parse_yaml(&compiled.to_yaml(&rules)?)?;
        let set = PolicySet::new(&parsed)?;
        let report = backtest(&set, learning.clone(), &[], None, None);
        let denied = |attack: bool| {
            after
                .iter()
                .filter(|(c, a)| *a == attack && set.verdict(&CallView::from_call(c)).is_denied())
                .map(|(c, _)| c.sampling_weight())
                .sum::<f64>()
                + 0.0
        };
        dialects.push(DialectFigures {
            format,
            documents: parsed.len(),
            round_trip: parsed == compiled.documents,
            learning_denied: report.denied_calls,
            normal_after_denied: denied(false),
            attack_denied: denied(true),
            learning_denied_rows: report.denied,
            normal_after_denied_edges: after
                .iter()
                .filter(|(c, a)| !*a && set.verdict(&CallView::from_call(c)).is_denied())
                .fold(std::collections::BTreeMap::new(), |mut m, (c, _)| {
                    let key = format!(
                        "{} -> {} {} {}",
                        c.source.key(),
                        c.destination.key(),
                        c.method,
                        c.route
                    );
                    *m.entry(key).or_insert(0.0) += c.sampling_weight();
                    m
                }),
        });
    }
    let sum = |attack: bool| {
        after
            .iter()
            .filter(|(_, a)| *a == attack)
            .map(|(c, _)| c.sampling_weight())
            .sum::<f64>()
            + 0.0
    };
    Ok(ScenarioFigures {
        scenario: scenario.to_owned(),
        class: if labels.iter().any(|l| l.class == "attack") {
            "attack"
        } else {
            "benign"
        }
        .into(),
        operations: rules.rule_count(),
        learning_calls: learning.iter().map(|g| g.calls).sum(),
        normal_after_calls: sum(false),
        attack_calls: sum(true),
        dialects,
    })
}

/// A count as the tables print it (an empty sum is `-0.0`).
fn num(x: f64) -> String {
    format!("{}", x + 0.0)
}

/// The figures of one mesh as Markdown tables: rules per dialect, then calls denied per
/// scenario and dialect.
pub fn markdown(mesh: &str, figures: &[ScenarioFigures]) -> String {
    let mut out = format!("### {mesh}\n\n");
    let Some(first) = figures.first() else {
        return out;
    };
    out.push_str(&format!(
        "Rule set from the learning window: {} operations over {} calls (the learning traffic is the same in every scenario of this mesh; the worst scenario is shown).\n\n",
        first.operations, first.learning_calls
    ));
    out.push_str("| dialect | documents | round-trip (serialise → parse → equal) | normal calls of the learning window denied |\n|---|---|---|---|\n");
    for (i, d) in first.dialects.iter().enumerate() {
        let worst = figures
            .iter()
            .map(|f| f.dialects[i].learning_denied)
            .fold(0.0, f64::max);
        let docs = figures
            .iter()
            .map(|f| f.dialects[i].documents)
            .max()
            .unwrap_or(0);
        let rt = figures.iter().all(|f| f.dialects[i].round_trip);
        out.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            d.format.as_str(),
            docs,
            if rt { "yes, every scenario" } else { "NO" },
            worst
        ));
    }
    out.push_str("\n| scenario | class | attack calls | denied: istio | networkpolicy | cilium | linkerd | normal calls after learning | falsely denied: istio | networkpolicy | cilium | linkerd |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for f in figures {
        let col = |g: fn(&DialectFigures) -> f64| {
            f.dialects
                .iter()
                .map(|d| num(g(d)))
                .collect::<Vec<_>>()
                .join(" | ")
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            f.scenario,
            f.class,
            f.attack_calls,
            col(|d| d.attack_denied),
            f.normal_after_calls,
            col(|d| d.normal_after_denied),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::route_fits;

    #[test]
    fn label_templates_fit_the_routes_the_collector_records() {
        let label = "/api/v1/orderservice/order/{orderId}";
        assert!(route_fits(label, "/api/v1/orderservice/order/{uuid}"));
        assert!(route_fits(label, "/api/v1/orderservice/order/AB12CD"));
        assert!(route_fits("orders", "orders"));
        assert!(route_fits(
            "/api/v1/service112/search",
            "/api/v1/{token}/search"
        ));
        assert!(!route_fits(label, "/api/v1/orderservice/order"));
        assert!(!route_fits(label, "/api/v1/orderservice/order/x/y"));
        assert!(!route_fits(label, "/api/v1/orderservice/orders/{uuid}"));
        assert!(!route_fits(label, "/api/v1/orderservice/order/"));
        assert!(!route_fits("/admin/{id}", "/users/{id}"));
    }
}
