//! Posture and audit evidence over the data dir. This crate owns the ranked, explained
//! posture findings (blast radius per workload before and after a least-privilege
//! policy, shared service accounts, plaintext and anonymous callers, sensitive endpoints
//! with many callers, edges leaving the mesh) and the audit report (per-edge calls and
//! mTLS coverage, plaintext calls with trace ids, principals per workload, policy
//! coverage, every alert with its handling) as JSON, CSV or HTML. It reads the Parquet
//! history and its daily roll-ups through `eastwest-baseline` and alerts through the
//! alert store; it does not write either, does not detect, and does not compile
//! policies: policy coverage replays the history against policy files through
//! `eastwest-policy` ([`PolicyFiles`], behind the [`PolicyCheck`] seam).
#![forbid(unsafe_code)]

mod error;
mod findings;
mod observe;
mod policy_check;
mod render;
mod report;
mod service;

use std::path::Path;

use chrono::{DateTime, Utc};
use eastwest_detector::SensitivePattern;

pub use error::PostureError;
pub use findings::{
    BlastRadius, Evidence, Finding, FindingKind, MeshSummary, Outside, Posture, Reach, Sensitive,
    analyze,
};
pub use observe::{Observations, ObservedEndpoint, SeenPrincipal, alerted_edges, load};
pub use policy_check::PolicyFiles;
pub use render::{Format, csv_cell, render};
pub use report::{
    AlertEvidence, AuditReport, EdgeCoverage, EdgeEvidence, EdgePolicy, Handling, PolicyCheck,
    PolicyCoverage, Sources, Totals, WorkloadPrincipals, build,
};
pub use service::DataDirEvidence;

/// Posture over the calls with event time in `[since, until)` and the store's open alerts.
pub async fn posture(
    data_dir: &Path,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    patterns: &[SensitivePattern],
) -> Result<Posture, PostureError> {
    let sensitive = Sensitive::new(patterns)?;
    let ns = |t: DateTime<Utc>| {
        t.timestamp_nanos_opt()
            .ok_or_else(|| PostureError::Period(format!("{t} is out of range")))
    };
    let mut obs = load(data_dir, ns(since)?, ns(until)?).await?;
    obs.alerted_edges = alerted_edges(data_dir)?;
    let mut p = analyze(&obs, &sensitive);
    p.since = Some(since);
    p.until = Some(until);
    Ok(p)
}

/// The audit report over `[since, until)`, with the posture of the same period.
pub async fn report(
    data_dir: &Path,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    patterns: &[SensitivePattern],
    policy: Option<&dyn PolicyCheck>,
) -> Result<AuditReport, PostureError> {
    let mut r = build(data_dir, since, until, policy).await?;
    r.posture = Some(posture(data_dir, since, until, patterns).await?);
    Ok(r)
}
