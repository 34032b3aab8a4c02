//! Scoring an evaluation: the alerts the runtime raised on a labelled scenario, per
//! label, side by side with two reference rules on the same calls ("any edge unseen in
//! learning" and a strict allowlist of (edge, method, route)). Running the scenario is
//! the runtime's job (`eastwest-runtime`), so what is scored is what `serve` does.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::time::Duration;

use eastwest_model::{Alert, AlertKind, Call, CompactString, Label, Severity};
use serde::Serialize;

/// Alerts this long after a label's end still count for it (windows close late).
pub const DEFAULT_SLACK: Duration = Duration::from_secs(300);

/// One label's outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScenarioResult {
    pub scenario: String,
    pub class: String,
    pub kind: Option<AlertKind>,
    pub source: String,
    /// An alert of the label's kind, source (and destination) inside [start, end + slack].
    pub detected: bool,
    /// Event time from the label's start to the first matching alert.
    pub time_to_detect: Option<Duration>,
    /// Kinds of all alerts from the label's source inside its window.
    pub kinds_seen: Vec<AlertKind>,
    /// For benign labels: alerts matching it (all false).
    pub false_alerts: usize,
    /// Info notices from the label's source inside its window (a rollout's one report of
    /// what it introduced): neither detections nor false alerts.
    pub notices: usize,
    /// Per reference rule (same order as `EvalReport::references`): alerted inside the window.
    pub reference_detected: Vec<bool>,
}

/// Totals for one detector (eastwest or a reference rule).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleTotals {
    pub name: String,
    pub detected: usize,
    pub attacks: usize,
    pub false_alerts: usize,
    pub normal_calls: u64,
}

impl RuleTotals {
    pub fn recall(&self) -> f64 {
        if self.attacks == 0 {
            return 1.0;
        }
        self.detected as f64 / self.attacks as f64
    }

    pub fn false_per_million(&self) -> f64 {
        if self.normal_calls == 0 {
            return 0.0;
        }
        self.false_alerts as f64 * 1e6 / self.normal_calls as f64
    }

    /// False alerts per hour of traffic after learning (`hours` of event time).
    pub fn false_per_hour(&self, hours: f64) -> f64 {
        if hours <= 0.0 {
            return 0.0;
        }
        self.false_alerts as f64 / hours
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ReferenceRule {
    /// Alert once per edge never seen during learning.
    UnseenEdge,
    /// Alert once per (edge, method, route) never seen during learning.
    StrictAllowlist,
}

impl ReferenceRule {
    pub const ALL: [ReferenceRule; 2] = [ReferenceRule::UnseenEdge, ReferenceRule::StrictAllowlist];

    pub fn name(self) -> &'static str {
        match self {
            ReferenceRule::UnseenEdge => "unseen-edge",
            ReferenceRule::StrictAllowlist => "allowlist",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalReport {
    pub scenarios: Vec<ScenarioResult>,
    pub eastwest: RuleTotals,
    pub references: Vec<RuleTotals>,
    pub calls: u64,
    pub learning_calls: u64,
    /// Event time of the traffic after learning, in hours (summed over scenarios).
    pub detection_hours: f64,
    pub alerts: usize,
    /// Info notices among `alerts` (not counted as false alerts).
    pub notices: usize,
    /// eastwest's false alerts, explained (for `eastwest eval --explain`).
    pub false_alert_summaries: Vec<String>,
    /// Every alert raised, by id (in `--json` output: what another run must reproduce).
    pub alerts_raised: Vec<AlertDigest>,
}

/// What identifies an alert's outcome: its key (the id hashes kind, source,
/// destination, method and route), how often and when it fired, and how severe it got.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertDigest {
    pub id: String,
    pub kind: AlertKind,
    pub severity: Severity,
    pub source: String,
    pub destination: Option<String>,
    pub method: Option<String>,
    pub route: Option<String>,
    pub count: u64,
    pub first_seen: String,
    pub last_seen: String,
}

impl AlertDigest {
    pub fn of(a: &Alert) -> Self {
        Self {
            id: a.id.clone(),
            kind: a.kind,
            severity: a.severity,
            source: a.source.key().into(),
            destination: a.destination.as_ref().map(|d| d.key().into()),
            method: a.method.clone(),
            route: a.route.clone(),
            count: a.count,
            first_seen: a.first_seen.to_rfc3339(),
            last_seen: a.last_seen.to_rfc3339(),
        }
    }
}

/// The part of an alert matching needs (shared by eastwest and the reference rules).
#[derive(Debug, Clone)]
struct Hit {
    kind: Option<AlertKind>,
    source: String,
    destination: Option<String>,
    first_ns: i64,
    last_ns: i64,
    /// Severity info: a notice, not an alarm (never a detection or a false alert).
    notice: bool,
}

impl Hit {
    fn from_alert(a: &Alert) -> Self {
        Self {
            kind: Some(a.kind),
            source: a.source.key().into(),
            destination: a.destination.as_ref().map(|d| d.key().into()),
            first_ns: a.first_seen.timestamp_nanos_opt().unwrap_or(0),
            last_ns: a.last_seen.timestamp_nanos_opt().unwrap_or(0),
            notice: a.severity == Severity::Info,
        }
    }

    /// Same source, overlapping [start, end + slack], same destination when both say.
    fn near(&self, l: &Label, slack_ns: i64) -> bool {
        let (start, end) = label_span(l);
        self.source == l.source
            && self.last_ns >= start
            && self.first_ns <= end.saturating_add(slack_ns)
            && match (&l.destination, &self.destination) {
                (Some(want), Some(got)) => want == got,
                _ => true,
            }
    }
}

fn label_span(l: &Label) -> (i64, i64) {
    (
        l.start.timestamp_nanos_opt().unwrap_or(i64::MIN),
        l.end.timestamp_nanos_opt().unwrap_or(i64::MAX),
    )
}

/// Scores `alerts` raised over `calls` (event-time ordered; detection from
/// `detect_from`) against `labels`. An alert counts for a label up to `slack` after the
/// label's end (windows close late).
pub fn score(
    calls: &[Call],
    alerts: &[Alert],
    detect_from: i64,
    labels: &[Label],
    slack: Duration,
) -> EvalReport {
    let slack_ns = slack.as_nanos().min(i64::MAX as u128) as i64;
    let alerts: BTreeMap<String, Alert> =
        alerts.iter().map(|a| (a.id.clone(), a.clone())).collect();
    let hits: Vec<Hit> = alerts.values().map(Hit::from_alert).collect();
    let references: Vec<Vec<Hit>> = ReferenceRule::ALL
        .iter()
        .map(|r| reference_hits(*r, calls, detect_from))
        .collect();

    let attacks: Vec<&Label> = labels.iter().filter(|l| l.class == "attack").collect();
    let is_attack_call = |c: &Call| {
        let src = c.source.key();
        attacks.iter().any(|l| {
            let (s, e) = label_span(l);
            l.source == src && c.event_time_ns >= s && c.event_time_ns <= e
        })
    };
    let learning_calls = calls
        .iter()
        .filter(|c| c.event_time_ns < detect_from)
        .count() as u64;
    let normal_calls = calls
        .iter()
        .filter(|c| c.event_time_ns >= detect_from && !is_attack_call(c))
        .count() as u64;

    let mut scenarios = Vec::new();
    for l in labels {
        let (notices, near): (Vec<&Hit>, Vec<&Hit>) = (hits.iter())
            .filter(|h| h.near(l, slack_ns))
            .partition(|h| h.notice);
        let matching: Vec<&Hit> = near
            .iter()
            .copied()
            .filter(|h| l.kind.is_none() || h.kind == l.kind)
            .collect();
        let attack = l.class == "attack";
        let (start, _) = label_span(l);
        let first = matching.iter().map(|h| h.first_ns.max(start)).min();
        let mut kinds_seen: Vec<AlertKind> = near.iter().filter_map(|h| h.kind).collect();
        kinds_seen.sort();
        kinds_seen.dedup();
        scenarios.push(ScenarioResult {
            scenario: l.scenario.clone(),
            class: l.class.clone(),
            kind: l.kind,
            source: l.source.clone(),
            detected: attack && !matching.is_empty(),
            time_to_detect: first
                .filter(|_| attack)
                .map(|t| Duration::from_nanos((t - start).max(0) as u64)),
            kinds_seen,
            false_alerts: if attack { 0 } else { near.len() },
            notices: notices.len(),
            reference_detected: references
                .iter()
                .map(|r| attack && r.iter().any(|h| h.near(l, slack_ns)))
                .collect(),
        });
    }
    let totals = |name: &str, hits: &[Hit], detected: usize| RuleTotals {
        name: name.to_string(),
        detected,
        attacks: attacks.len(),
        false_alerts: hits
            .iter()
            .filter(|h| !h.notice && !attacks.iter().any(|l| h.near(l, slack_ns)))
            .count(),
        normal_calls,
    };
    let eastwest = totals(
        "eastwest",
        &hits,
        scenarios.iter().filter(|s| s.detected).count(),
    );
    let references = ReferenceRule::ALL
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let detected = scenarios.iter().filter(|s| s.reference_detected[i]).count();
            totals(r.name(), &references[i], detected)
        })
        .collect();
    let false_alert_summaries = alerts
        .values()
        .filter(|a| {
            let h = Hit::from_alert(a);
            !h.notice && !attacks.iter().any(|l| h.near(l, slack_ns))
        })
        .map(|a| {
            format!(
                "{} {} {}: {}",
                a.severity.as_str(),
                a.kind.as_str(),
                a.first_seen.to_rfc3339(),
                a.summary
            )
        })
        .collect();
    let alerts_raised = alerts.values().map(AlertDigest::of).collect();
    let last_ns = calls
        .iter()
        .map(|c| c.event_time_ns)
        .max()
        .unwrap_or(i64::MIN);
    let detection_hours = last_ns.saturating_sub(detect_from).max(0) as f64 / 3.6e12;
    EvalReport {
        alerts_raised,
        scenarios,
        eastwest,
        references,
        calls: calls.len() as u64,
        learning_calls,
        detection_hours,
        alerts: alerts.len(),
        notices: hits.iter().filter(|h| h.notice).count(),
        false_alert_summaries,
    }
}

/// One hit per unseen key after learning (the rule never learns during detection).
fn reference_hits(rule: ReferenceRule, calls: &[Call], detect_from: i64) -> Vec<Hit> {
    let key = |c: &Call| {
        let (s, d) = c.edge_key();
        match rule {
            ReferenceRule::UnseenEdge => (s, d, CompactString::default(), CompactString::default()),
            ReferenceRule::StrictAllowlist => (s, d, c.method.clone(), c.route.clone()),
        }
    };
    let learned: HashSet<_> = calls
        .iter()
        .filter(|c| c.event_time_ns < detect_from)
        .map(key)
        .collect();
    let mut hits: HashMap<(CompactString, CompactString, CompactString, CompactString), Hit> =
        HashMap::new();
    for c in calls.iter().filter(|c| c.event_time_ns >= detect_from) {
        let k = key(c);
        if learned.contains(&k) {
            continue;
        }
        let t = c.event_time_ns;
        hits.entry(k.clone())
            .and_modify(|h| h.last_ns = h.last_ns.max(t))
            .or_insert(Hit {
                kind: None,
                source: k.0.into(),
                destination: Some(k.1.into()),
                first_ns: t,
                last_ns: t,
                notice: false,
            });
    }
    hits.into_values().collect()
}

impl EvalReport {
    /// Combines per-scenario-directory reports (each with its own learning) into one.
    pub fn merge(reports: Vec<EvalReport>) -> EvalReport {
        let mut it = reports.into_iter();
        let Some(mut acc) = it.next() else {
            let empty = |name: &str| RuleTotals {
                name: name.into(),
                detected: 0,
                attacks: 0,
                false_alerts: 0,
                normal_calls: 0,
            };
            return EvalReport {
                scenarios: Vec::new(),
                eastwest: empty("eastwest"),
                references: ReferenceRule::ALL.iter().map(|r| empty(r.name())).collect(),
                calls: 0,
                learning_calls: 0,
                detection_hours: 0.0,
                alerts: 0,
                notices: 0,
                false_alert_summaries: Vec::new(),
                alerts_raised: Vec::new(),
            };
        };
        for r in it {
            acc.scenarios.extend(r.scenarios);
            add(&mut acc.eastwest, &r.eastwest);
            for (a, b) in acc.references.iter_mut().zip(&r.references) {
                add(a, b);
            }
            acc.calls += r.calls;
            acc.learning_calls += r.learning_calls;
            acc.detection_hours += r.detection_hours;
            acc.alerts += r.alerts;
            acc.notices += r.notices;
            acc.false_alert_summaries.extend(r.false_alert_summaries);
            acc.alerts_raised.extend(r.alerts_raised);
        }
        acc
    }
}

fn add(a: &mut RuleTotals, b: &RuleTotals) {
    a.detected += b.detected;
    a.attacks += b.attacks;
    a.false_alerts += b.false_alerts;
    a.normal_calls += b.normal_calls;
}

/// The report table with a false-alerts-per-hour column ([`EvalReport::per_hour`]).
pub struct PerHourTable<'a>(&'a EvalReport);

impl fmt::Display for PerHourTable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.write_table(f, true)
    }
}

impl EvalReport {
    /// The table with false alerts per hour of traffic next to those per 1M calls (the
    /// real-trace suites: their traffic rate is the recording's, not the generator's).
    pub fn per_hour(&self) -> PerHourTable<'_> {
        PerHourTable(self)
    }

    fn write_table(&self, f: &mut fmt::Formatter<'_>, per_hour: bool) -> fmt::Result {
        let yn = |b: bool| if b { "yes" } else { "no" };
        writeln!(
            f,
            "{:<22} {:<7} {:<19} {:<8} {:>9} {:>6} {:<11} {:<9} kinds seen",
            "scenario", "class", "expected", "detected", "ttd", "false", "unseen-edge", "allowlist",
        )?;
        for s in &self.scenarios {
            let ttd = s
                .time_to_detect
                .map(|d| format!("{:.1}s", d.as_secs_f64()))
                .unwrap_or_else(|| "-".into());
            let attack = s.class == "attack";
            let refs: Vec<&str> = s
                .reference_detected
                .iter()
                .map(|d| if attack { yn(*d) } else { "-" })
                .collect();
            let mut kinds: Vec<String> = s.kinds_seen.iter().map(|k| k.as_str().into()).collect();
            if s.notices > 0 {
                kinds.push(format!("{} info notice(s)", s.notices));
            }
            writeln!(
                f,
                "{:<22} {:<7} {:<19} {:<8} {:>9} {:>6} {:<11} {:<9} {}",
                truncate(&s.scenario, 22),
                truncate(&s.class, 7),
                s.kind.map(|k| k.as_str()).unwrap_or("(silent)"),
                if attack { yn(s.detected) } else { "-" },
                ttd,
                s.false_alerts,
                refs.first().copied().unwrap_or("-"),
                refs.get(1).copied().unwrap_or("-"),
                if kinds.is_empty() {
                    "-".to_string()
                } else {
                    kinds.join(",")
                },
            )?;
        }
        write!(
            f,
            "{:<12} {:>9} {:>10} {:>13} {:>15}",
            "detector", "recall", "detected", "false alerts", "false per 1M"
        )?;
        writeln!(f, "{}", if per_hour { "  false per hour" } else { "" })?;
        for t in std::iter::once(&self.eastwest).chain(&self.references) {
            write!(
                f,
                "{:<12} {:>8.1}% {:>4}/{:<5} {:>13} {:>15.1}",
                t.name,
                t.recall() * 100.0,
                t.detected,
                t.attacks,
                t.false_alerts,
                t.false_per_million()
            )?;
            if per_hour {
                write!(f, " {:>15.1}", t.false_per_hour(self.detection_hours))?;
            }
            writeln!(f)?;
        }
        let refs: Vec<String> = self
            .references
            .iter()
            .map(|r| {
                format!(
                    "{} {:.1}% / {:.1}",
                    r.name,
                    r.recall() * 100.0,
                    r.false_per_million()
                )
            })
            .collect();
        write!(
            f,
            "totals: recall {:.1}% ({}/{}), false alerts per million normal calls {:.1} ({} false of {} normal calls after learning), info notices {}; reference rules (recall / false per 1M): {}",
            self.eastwest.recall() * 100.0,
            self.eastwest.detected,
            self.eastwest.attacks,
            self.eastwest.false_per_million(),
            self.eastwest.false_alerts,
            self.eastwest.normal_calls,
            self.notices,
            refs.join(", ")
        )?;
        if per_hour {
            write!(
                f,
                "; false alerts per hour {:.1} over {:.2} h of traffic after learning",
                self.eastwest.false_per_hour(self.detection_hours),
                self.detection_hours
            )?;
        }
        Ok(())
    }
}

impl fmt::Display for EvalReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_table(f, false)
    }
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

#[cfg(test)]
#[path = "eval_tests.rs"]
mod tests;
