//! `eastwest eval`: labelled scenarios through the real collector (span pairing and
//! normalisation), baseline learning and detection, in-process and on event time.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use eastwest_collector::{CallExtractor, CollectorMetrics, IngestBatch};
use eastwest_datasets::{DatasetError, GenOptions, ScenarioData, TopologyKind};
use eastwest_detector::{EvalConfig, EvalReport};
use eastwest_model::Call;

use crate::cli::{EvalArgs, ServeArgs};
use crate::config::EastwestConfig;

pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    let config = EastwestConfig::load(&ServeArgs {
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
            match eastwest_datasets::generate(name, &opts, &dir) {
                Ok(_) => {}
                Err(e @ DatasetError::ScenarioUnavailable { .. }) => {
                    skipped.push(e.to_string());
                    continue;
                }
                Err(e) => {
                    return Err(e).with_context(|| format!("cannot generate scenario {name}"));
                }
            }
            reports.push(evaluate_dir(&dir, &config)?);
            // Scenarios on the large mesh are hundreds of MB each.
            std::fs::remove_dir_all(&dir).ok();
        }
    } else {
        for dir in &args.dirs {
            reports.push(evaluate_dir(dir, &config)?);
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

fn evaluate_dir(dir: &Path, config: &EastwestConfig) -> anyhow::Result<EvalReport> {
    let data = eastwest_datasets::read_scenario_dir(dir)
        .with_context(|| format!("cannot read scenario directory {}", dir.display()))?;
    let learning_period =
        humantime::parse_duration(&data.meta.learning_period).with_context(|| {
            format!(
                "bad learning_period in {}",
                dir.join("scenario.json").display()
            )
        })?;
    let calls = extract_calls(data.clone(), config);
    let eval = EvalConfig::new(
        config.detector.clone(),
        eastwest_baseline::BaselineConfig {
            learning_period,
            ..config.baseline.clone()
        },
    );
    eval.validate()?;
    Ok(eastwest_detector::evaluate(&calls, &data.labels, &eval))
}

/// Every call the collector extracts from the scenario's traces and logs, in event-time
/// order; the watermark trails the newest event as it would in `serve`.
pub fn extract_calls(data: ScenarioData, config: &EastwestConfig) -> Vec<Call> {
    let metrics = Arc::new(CollectorMetrics::default());
    let mut extractor = CallExtractor::new(config.normalizer.clone(), metrics);
    let lateness = config.pipeline.allowed_lateness.as_nanos() as i64;
    let mut calls = Vec::new();
    let batches = data
        .traces
        .into_iter()
        .map(IngestBatch::Traces)
        .chain(data.logs.into_iter().map(IngestBatch::Logs));
    for batch in batches {
        calls.extend(extractor.process(batch));
        let watermark = extractor.max_event_time_ns().saturating_sub(lateness);
        calls.extend(extractor.advance(watermark));
    }
    calls.extend(extractor.flush());
    calls.sort_by_key(|c| c.event_time_ns);
    calls
}
