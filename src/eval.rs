//! `eastwest eval`: labelled scenarios through the runtime `serve` runs (in-process,
//! through the receivers' admission path), scored next to two reference rules. The
//! scenarios are generated (`--all`), read from directories, or built on real traces
//! (`--dataset`).

use anyhow::Context;
use eastwest_datasets::{DatasetError, GenOptions, RealOptions, RealWindow, TopologyKind};
use eastwest_detector::EvalReport;
use eastwest_runtime::EastwestConfig;

use crate::cli::{EvalArgs, ServeArgs};

pub async fn run(args: EvalArgs) -> anyhow::Result<()> {
    let config = crate::config::load(&ServeArgs {
        config: args.config.clone(),
        ..Default::default()
    })?;
    if args.dataset.is_some() {
        return run_real(&args, &config).await;
    }
    let mut reports = Vec::new();
    let mut skipped = Vec::new();
    if args.all {
        let opts = GenOptions {
            seed: args.seed.unwrap_or(GenOptions::default().seed),
            topology: TopologyKind::parse(&args.topology)
                .with_context(|| format!("unknown topology {}", args.topology))?,
            ..Default::default()
        };
        let tmp = tempfile::tempdir().context("cannot create a temporary directory")?;
        for name in eastwest_datasets::scenario_names() {
            let dir = tmp.path().join(name);
            let generated = {
                let (opts, dir) = (opts.clone(), dir.clone());
                tokio::task::spawn_blocking(move || eastwest_datasets::generate(name, &opts, &dir))
                    .await?
            };
            match generated {
                Ok(_) => {}
                Err(e @ DatasetError::ScenarioUnavailable { .. }) => {
                    skipped.push(e.to_string());
                    continue;
                }
                Err(e) => {
                    return Err(e).with_context(|| format!("cannot generate scenario {name}"));
                }
            }
            reports.push(
                eastwest_runtime::evaluate_dir(&dir, &config)
                    .await
                    .with_context(|| format!("scenario {name}"))?,
            );
            // Scenarios on the large mesh are hundreds of MB each.
            std::fs::remove_dir_all(&dir).ok();
        }
    } else {
        for dir in &args.dirs {
            reports.push(
                eastwest_runtime::evaluate_dir(dir, &config)
                    .await
                    .with_context(|| format!("scenario directory {}", dir.display()))?,
            );
        }
    }
    let report = EvalReport::merge(reports);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        for line in &skipped {
            eprintln!("skipped: {line}");
        }
    } else {
        // Before the table: the report ends with its totals line.
        for line in &skipped {
            println!("skipped: {line}");
        }
        println!("{report}");
        if args.explain {
            for line in &report.false_alert_summaries {
                println!("false alert: {line}");
            }
        }
    }
    Ok(())
}

/// `--dataset nezha DIR…`: one real-trace suite per folder, the same runtime and scoring,
/// with false alerts per hour of traffic in the table.
async fn run_real(args: &EvalArgs, config: &EastwestConfig) -> anyhow::Result<()> {
    let defaults = RealOptions::default();
    let opts = RealOptions {
        max_files: args.max_files,
        learning_share: args.learning_share.unwrap_or(defaults.learning_share),
        seed: args.seed.unwrap_or(defaults.seed),
        ..defaults
    };
    let mut reports = Vec::new();
    let mut explained = Vec::new();
    for dir in &args.dirs {
        let suite = {
            let (folder, opts) = (dir.clone(), opts.clone());
            tokio::task::spawn_blocking(move || eastwest_datasets::nezha_suite(&folder, &opts))
                .await?
                .with_context(|| format!("cannot build a suite from {}", dir.display()))?
        };
        let windows = suite.windows.clone();
        let (report, shifted_ns) = eastwest_runtime::evaluate_data(suite.data, config)
            .await
            .with_context(|| format!("real traces in {}", dir.display()))?;
        explained.extend(
            report
                .false_alert_summaries
                .iter()
                .map(|line| format!("{line} [{}]", window_of(line, &windows, shifted_ns))),
        );
        reports.push(report);
    }
    let report = EvalReport::merge(reports);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{}", report.per_hour());
        if args.explain {
            for line in &explained {
                println!("false alert: {line}");
            }
        }
    }
    Ok(())
}

/// The recorded window (and its real faults) a false alert's first sighting falls in;
/// the summary reads `severity kind FIRST_SEEN: …`.
fn window_of(summary: &str, windows: &[RealWindow], shifted_ns: i64) -> String {
    let first_seen = summary
        .split_whitespace()
        .nth(2)
        .map(|t| t.trim_end_matches(':'))
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .and_then(|t| t.timestamp_nanos_opt());
    let at = |t: i64| windows.iter().find(|w| t >= w.start_ns && t <= w.end_ns);
    let Some(w) = first_seen.and_then(|t| at(t - shifted_ns)) else {
        return "between recorded windows".into();
    };
    let faults: Vec<String> = w
        .faults
        .iter()
        .map(|f| format!("{} on {}", f.kind, f.pod))
        .collect();
    format!(
        "window {}; real faults: {}",
        w.files.join(" "),
        if faults.is_empty() {
            "none".to_string()
        } else {
            faults.join(", ")
        }
    )
}
