//! The report as JSON, CSV or HTML. Every name in it comes from telemetry, which an
//! attacker controls: HTML output escapes all text (maud escapes anything not marked
//! pre-escaped, and nothing here is), and CSV cells that a spreadsheet would run as a
//! formula (starting with `=`, `+`, `-`, `@`, tab or carriage return) are prefixed with `'`.

use std::borrow::Cow;

use maud::{DOCTYPE, Markup, html};
use serde::Serialize;

use crate::PostureError;
use crate::report::{AuditReport, EdgeCoverage};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
    Html,
}

impl Format {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "json" => Some(Self::Json),
            "csv" => Some(Self::Csv),
            "html" => Some(Self::Html),
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Json => "application/json",
            Self::Csv => "text/csv; charset=utf-8",
            Self::Html => "text/html; charset=utf-8",
        }
    }
}

pub fn render(report: &AuditReport, format: Format) -> Result<String, PostureError> {
    match format {
        Format::Json => Ok(serde_json::to_string_pretty(report)?),
        Format::Csv => csv_report(report),
        Format::Html => Ok(html_report(report).into_string()),
    }
}

/// A cell a spreadsheet shows as text, never evaluates.
pub fn csv_cell(value: &str) -> Cow<'_, str> {
    if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        Cow::Owned(format!("'{value}"))
    } else {
        Cow::Borrowed(value)
    }
}

fn json_text<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

/// One CSV file in sections (totals, edges, workloads, alerts, findings): each starts
/// with a header row, and every row's first cell names its section.
fn csv_report(r: &AuditReport) -> Result<String, PostureError> {
    let mut w = csv::WriterBuilder::new()
        .flexible(true)
        .from_writer(Vec::new());
    let mut row = |cells: Vec<String>| -> Result<(), PostureError> {
        w.write_record(cells.iter().map(|c| csv_cell(c).into_owned()))?;
        Ok(())
    };
    row(vec![
        "totals".into(),
        "since".into(),
        "until".into(),
        "calls".into(),
        "mtls_calls".into(),
        "plaintext_calls".into(),
        "mtls_coverage".into(),
        "policy".into(),
        "policy_calls_covered".into(),
        "sources".into(),
    ])?;
    row(vec![
        "totals".into(),
        r.since.to_rfc3339(),
        r.until.to_rfc3339(),
        r.totals.calls.to_string(),
        r.totals.mtls_calls.to_string(),
        r.totals.plaintext_calls.to_string(),
        format!("{:.4}", r.totals.mtls_coverage),
        r.policy.note.clone(),
        r.policy
            .calls_covered
            .map(|c| format!("{c:.4}"))
            .unwrap_or_default(),
        r.sources.note.clone(),
    ])?;
    row([
        "edge",
        "source",
        "destination",
        "protocol",
        "calls",
        "mtls_calls",
        "plaintext_calls",
        "unknown_tls_calls",
        "errors",
        "alerted_calls",
        "mtls_coverage",
        "first_seen",
        "last_seen",
        "source_principals",
        "destination_principals",
        "trace_ids",
        "plaintext_trace_ids",
        "policy_coverage",
        "policy_allowed_calls",
        "policy_default_allowed_calls",
        "policy_denied_calls",
        "policy_by",
    ]
    .map(String::from)
    .to_vec())?;
    for e in &r.edges {
        let mut cells = vec![
            "edge".into(),
            e.source.clone(),
            e.destination.clone(),
            e.protocol.clone(),
            e.calls.to_string(),
            e.mtls_calls.to_string(),
            e.plaintext_calls.to_string(),
            e.unknown_tls_calls.to_string(),
            e.errors.to_string(),
            e.alerted_calls.to_string(),
            format!("{:.4}", e.mtls_coverage),
            e.first_seen.to_rfc3339(),
            e.last_seen.to_rfc3339(),
            e.source_principals.join(" "),
            e.destination_principals.join(" "),
            e.trace_ids.join(" "),
            e.plaintext_trace_ids.join(" "),
        ];
        cells.extend(match &e.policy {
            Some(p) => vec![
                json_text(&p.coverage),
                p.allowed_calls.to_string(),
                p.default_allowed_calls.to_string(),
                p.denied_calls.to_string(),
                p.by.clone(),
            ],
            None => vec![String::new(); 5],
        });
        row(cells)?;
    }
    row([
        "workload",
        "workload",
        "principals_as_caller",
        "principals_as_callee",
    ]
    .map(String::from)
    .to_vec())?;
    for wp in &r.workloads {
        row(vec![
            "workload".into(),
            wp.workload.clone(),
            wp.as_caller.join(" "),
            wp.as_callee.join(" "),
        ])?;
    }
    row([
        "alert",
        "id",
        "kind",
        "severity",
        "score",
        "source",
        "destination",
        "method",
        "route",
        "first_seen",
        "last_seen",
        "count",
        "state",
        "handled_by",
        "handled_at",
        "trace_ids",
        "summary",
    ]
    .map(String::from)
    .to_vec())?;
    for a in &r.alerts {
        row(vec![
            "alert".into(),
            a.id.clone(),
            json_text(&a.kind),
            json_text(&a.severity),
            format!("{:.2}", a.score),
            a.source.clone(),
            a.destination.clone().unwrap_or_default(),
            a.method.clone().unwrap_or_default(),
            a.route.clone().unwrap_or_default(),
            a.first_seen.to_rfc3339(),
            a.last_seen.to_rfc3339(),
            a.count.to_string(),
            json_text(&a.state),
            a.handling
                .iter()
                .map(|h| format!("{}:{}", json_text(&h.state), h.by))
                .collect::<Vec<_>>()
                .join(" "),
            a.handling
                .iter()
                .map(|h| h.at.to_rfc3339())
                .collect::<Vec<_>>()
                .join(" "),
            a.trace_ids.join(" "),
            a.summary.clone(),
        ])?;
    }
    if let Some(p) = &r.posture {
        row([
            "finding",
            "rank",
            "kind",
            "severity",
            "score",
            "subject",
            "explanation",
            "trace_ids",
        ]
        .map(String::from)
        .to_vec())?;
        for f in &p.findings {
            row(vec![
                "finding".into(),
                f.rank.to_string(),
                json_text(&f.kind),
                json_text(&f.severity),
                format!("{:.2}", f.score),
                f.subject.clone(),
                f.explanation.clone(),
                f.evidence.trace_ids.join(" "),
            ])?;
        }
    }
    let bytes = w
        .into_inner()
        .map_err(|e| PostureError::Render(e.to_string()))?;
    String::from_utf8(bytes).map_err(|e| PostureError::Render(e.to_string()))
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#222}\
table{border-collapse:collapse;margin:1em 0;font-size:.9em}\
th,td{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top}\
th{background:#f3f3f3}td.n{text-align:right}.bad{color:#b00020;font-weight:600}\
code{font-size:.85em;word-break:break-all}";

fn pct(v: f64) -> String {
    format!("{:.1} %", 100.0 * v)
}

fn html_report(r: &AuditReport) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                // No scripts, no remote loads: the file is opened from disk by auditors.
                meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'";
                title { "eastwest audit report" }
                style { (STYLE) }
            }
            body {
                h1 { "eastwest audit report" }
                p {
                    "Period " (r.since.to_rfc3339()) " to " (r.until.to_rfc3339())
                    ", generated " (r.generated_at.to_rfc3339()) ". " (r.sources.note) "."
                }
                h2 { "Totals" }
                table {
                    tr { th { "edges" } th { "workloads" } th { "calls" } th { "mTLS calls" }
                         th { "plaintext calls" } th { "TLS unknown" } th { "mTLS coverage" } th { "alerted calls" } }
                    tr {
                        td.n { (r.totals.edges) } td.n { (r.totals.workloads) } td.n { (r.totals.calls) }
                        td.n { (r.totals.mtls_calls) }
                        td.n class=[(r.totals.plaintext_calls > 0).then_some("bad")] { (r.totals.plaintext_calls) }
                        td.n { (r.totals.unknown_tls_calls) } td.n { (pct(r.totals.mtls_coverage)) }
                        td.n { (r.totals.alerted_calls) }
                    }
                }
                h2 { "Policy coverage" }
                p { (r.policy.note) }
                @if let (Some(policy), Some(calls)) = (&r.policy.policy, r.policy.calls_covered) {
                    p { "Policies: " code { (policy) } ". Calls a rule allows: " (pct(calls)) "." }
                }
                @if let Some(p) = &r.posture {
                    h2 { "Posture findings" }
                    table {
                        tr { th { "#" } th { "severity" } th { "kind" } th { "subject" } th { "explanation" } th { "example traces" } }
                        @for f in &p.findings {
                            tr {
                                td.n { (f.rank) } td { (json_text(&f.severity)) } td { (json_text(&f.kind)) }
                                td { code { (f.subject) } } td { (f.explanation) }
                                td { @for t in &f.evidence.trace_ids { code { (t) } " " } }
                            }
                        }
                    }
                }
                h2 { "Edges" }
                table {
                    tr { th { "source" } th { "destination" } th { "protocol" } th { "calls" } th { "mTLS" }
                         th { "plaintext" } th { "mTLS coverage" } th { "errors" } th { "alerted" }
                         th { "first seen" } th { "last seen" } th { "caller principals" } th { "plaintext traces" }
                         th { "policy" } }
                    @for e in &r.edges {
                        tr {
                            td { code { (e.source) } } td { code { (e.destination) } } td { (e.protocol) }
                            td.n { (e.calls) } td.n { (e.mtls_calls) }
                            td.n class=[(e.plaintext_calls > 0).then_some("bad")] { (e.plaintext_calls) }
                            td.n { (pct(e.mtls_coverage)) } td.n { (e.errors) } td.n { (e.alerted_calls) }
                            td { (e.first_seen.to_rfc3339()) } td { (e.last_seen.to_rfc3339()) }
                            td { @for p in &e.source_principals { code { (p) } br; } }
                            td { @for t in &e.plaintext_trace_ids { code { (t) } br; } }
                            @match &e.policy {
                                Some(p) => td class=[(p.coverage != EdgeCoverage::Covered).then_some("bad")] {
                                    (json_text(&p.coverage)) br; small { (p.by) }
                                },
                                None => td { "—" },
                            }
                        }
                    }
                }
                h2 { "Principals per workload" }
                table {
                    tr { th { "workload" } th { "as caller" } th { "as callee" } }
                    @for w in &r.workloads {
                        tr {
                            td { code { (w.workload) } }
                            td { @for p in &w.as_caller { code { (p) } br; } }
                            td { @for p in &w.as_callee { code { (p) } br; } }
                        }
                    }
                }
                h2 { "Alerts and their handling" }
                @if r.alerts.is_empty() { p { "No alerts in the period." } }
                table {
                    tr { th { "last seen" } th { "severity" } th { "kind" } th { "summary" } th { "state" } th { "handled" } th { "traces" } }
                    @for a in &r.alerts {
                        tr {
                            td { (a.last_seen.to_rfc3339()) } td { (json_text(&a.severity)) } td { (json_text(&a.kind)) }
                            td { (a.summary) } td { (json_text(&a.state)) }
                            td {
                                @if a.handling.is_empty() { "not handled" }
                                @for h in &a.handling { (json_text(&h.state)) " by " code { (h.by) } " at " (h.at.to_rfc3339()) br; }
                            }
                            td { @for t in &a.trace_ids { code { (t) } br; } }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_defused_and_others_kept() {
        for v in ["=HYPERLINK(\"x\")", "+1", "-2", "@SUM(A1)", "\tx", "\rx"] {
            assert_eq!(csv_cell(v), format!("'{v}"));
        }
        assert_eq!(csv_cell("cart.shop"), "cart.shop");
        assert_eq!(csv_cell(""), "");
    }
}
