//! `eastwest eval`: labelled scenarios through the runtime `serve` runs (in-process,
//! through the receivers' admission path), scored next to two reference rules.

use anyhow::Context;
use eastwest_datasets::{DatasetError, GenOptions, TopologyKind};
use eastwest_detector::EvalReport;

use crate::cli::{EvalArgs, ServeArgs};

pub async fn run(args: EvalArgs) -> anyhow::Result<()> {
    let config = crate::config::load(&ServeArgs {
        config: args.config.clone(),
        ..Default::default()
    })?;
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
