//! `eastwest report` and `eastwest posture`: the data dir through `eastwest-posture`.

use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use eastwest_posture::{Format, Posture};

use crate::cli::{PostureArgs, ReportArgs, ServeArgs};

fn period(since: Duration) -> anyhow::Result<(chrono::DateTime<Utc>, chrono::DateTime<Utc>)> {
    let until = Utc::now();
    let since = chrono::Duration::from_std(since)
        .ok()
        .and_then(|d| until.checked_sub_signed(d))
        .context("--since is too long")?;
    Ok((since, until))
}

fn sensitive(
    config: Option<std::path::PathBuf>,
) -> anyhow::Result<Vec<eastwest_detector::SensitivePattern>> {
    Ok(crate::config::load(&ServeArgs {
        config,
        ..Default::default()
    })?
    .detector
    .sensitive)
}

pub async fn report(args: ReportArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.data_dir.is_dir(),
        "data dir {} does not exist (start `eastwest serve --data-dir …` first)",
        args.data_dir.display()
    );
    let format = Format::parse(&args.format).context("--format: json, csv or html")?;
    let patterns = sensitive(args.config)?;
    let (since, until) = period(args.since)?;
    let policy = if args.policy.is_empty() {
        None
    } else {
        Some(eastwest_posture::PolicyFiles::load(&args.policy, &args.data_dir, since, until).await?)
    };
    let check = policy
        .as_ref()
        .map(|p| p as &dyn eastwest_posture::PolicyCheck);
    let report = eastwest_posture::report(&args.data_dir, since, until, &patterns, check).await?;
    let text = eastwest_posture::render(&report, format)?;
    match &args.out {
        Some(path) => std::fs::write(path, text)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => std::io::stdout().write_all(text.as_bytes())?,
    }
    eprintln!(
        "{} edge(s), {} call(s), {} plaintext, {} alert(s); {}; {}",
        report.totals.edges,
        report.totals.calls,
        report.totals.plaintext_calls,
        report.alerts.len(),
        report.sources.note,
        report.policy.note
    );
    Ok(())
}

pub async fn posture(args: PostureArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.data_dir.is_dir(),
        "data dir {} does not exist (start `eastwest serve --data-dir …` first)",
        args.data_dir.display()
    );
    let patterns = sensitive(args.config)?;
    let (since, until) = period(args.since)?;
    let p = eastwest_posture::posture(&args.data_dir, since, until, &patterns).await?;
    match args.format.as_str() {
        "json" => println!("{}", serde_json::to_string_pretty(&p)?),
        _ => print!("{}", table(&p, args.mesh.as_deref(), args.top)),
    }
    Ok(())
}

/// The blast-radius summary row (for docs/POSTURE.md) and the top findings, as Markdown.
fn table(p: &Posture, mesh: Option<&str>, top: usize) -> String {
    let s = &p.summary;
    let max = |f: &dyn Fn(&eastwest_posture::BlastRadius) -> f64| {
        p.blast_radius.iter().map(f).fold(0.0, f64::max)
    };
    let mut out = String::new();
    out.push_str("| mesh | workloads | edges | sensitive endpoints | mean blast radius, default-allow | mean, least privilege | mean cut | largest, least privilege |\n");
    out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|\n");
    out.push_str(&format!(
        "| {} | {} | {} | {} | {:.1} | {:.1} | {:.1} % | {:.1} |\n\n",
        mesh.unwrap_or("-"),
        s.workloads,
        s.edges,
        s.sensitive_endpoints,
        s.mean_default_allow,
        s.mean_least_privilege,
        100.0 * s.mean_cut,
        max(&|r| r.least_privilege.score),
    ));
    out.push_str("| # | severity | kind | subject | explanation |\n|---:|---|---|---|---|\n");
    for f in p.findings.iter().take(top) {
        let cell = |v: &str| v.replace('|', "\\|");
        out.push_str(&format!(
            "| {} | {} | {} | `{}` | {} |\n",
            f.rank,
            serde_json::to_value(f.severity)
                .map(|v| v.as_str().unwrap_or("").to_owned())
                .unwrap_or_default(),
            serde_json::to_value(f.kind)
                .map(|v| v.as_str().unwrap_or("").to_owned())
                .unwrap_or_default(),
            cell(&f.subject),
            cell(&f.explanation)
        ));
    }
    out
}
