//! The client-side subcommands: `ingest-logs`, `gen`, `convert` and `replay`. Each is a thin shell
//! over the library that owns the behaviour (collector, datasets).

use std::path::{Path, PathBuf};

use anyhow::Context;
use eastwest_datasets::{
    AccessLogFormat, FileFormat, GenOptions, Pace, ReplayOptions, SpanStyle, TopologyKind,
};
use tokio_util::sync::CancellationToken;

use crate::cli::{ConvertArgs, GenArgs, IngestLogsArgs, ReplayArgs};

pub async fn ingest_logs(args: IngestLogsArgs) -> anyhow::Result<()> {
    let opts = eastwest_collector::IngestLogsOptions {
        files: args.files,
        endpoint: args.to,
        follow: args.follow,
        service: args.service,
        namespace: args.namespace,
        batch_lines: args.batch_lines,
        ..Default::default()
    };
    let cancel = CancellationToken::new();
    eastwest_runtime::cancel_on_signals(cancel.clone());
    let report = eastwest_collector::ingest_log_files(opts, cancel).await?;
    eprintln!(
        "eastwest ingest-logs: read {} lines ({} text, {} json), sent {} records in {} requests \
         ({} rejected by the server, {} retries); skipped {} blank/comment, {} not access logs, \
         {} too long",
        report.lines_read,
        report.text_lines,
        report.json_lines,
        report.records_sent,
        report.batches_sent,
        report.records_rejected,
        report.retries,
        report.lines_skipped,
        report.lines_unparsed,
        report.lines_too_long
    );
    Ok(())
}

pub fn gen_scenario(args: GenArgs) -> anyhow::Result<()> {
    if args.list {
        for name in eastwest_datasets::scenario_names() {
            println!("{name}");
        }
        return Ok(());
    }
    let (Some(name), Some(out)) = (args.scenario, args.out) else {
        anyhow::bail!("gen needs SCENARIO and --out DIR (or --list)");
    };
    let defaults = GenOptions::default();
    let opts = GenOptions {
        seed: args.seed.unwrap_or(defaults.seed),
        learning: args.learning.unwrap_or(defaults.learning),
        attack: args.attack.unwrap_or(defaults.attack),
        rate_per_sec: args.rate.unwrap_or(defaults.rate_per_sec),
        format: if args.format == "json" {
            FileFormat::Json
        } else {
            FileFormat::Pb
        },
        topology: TopologyKind::parse(&args.topology)
            .with_context(|| format!("unknown topology {}", args.topology))?,
        topology_file: args.topology_file,
        spans: if args.spans == "sdk" {
            SpanStyle::Sdk
        } else {
            SpanStyle::Istio
        },
        access_logs: match args.access_logs.as_deref() {
            None => None,
            Some(f) => Some(
                AccessLogFormat::parse(f)
                    .with_context(|| format!("unknown access-log format {f}"))?,
            ),
        },
        sample_ratio: args.sample_ratio,
        ..defaults
    };
    let summary = eastwest_datasets::generate(&name, &opts, &out)?;
    println!(
        "wrote {} ({}) to {}: {} spans in {} traces, {} labels (learning period {}){}",
        name,
        summary.meta.topology,
        out.display(),
        summary.meta.spans,
        summary.meta.traces,
        summary.labels,
        summary.meta.learning_period,
        summary
            .meta
            .access_log_lines
            .map(|n| format!(", {n} access-log lines"))
            .unwrap_or_default()
    );
    Ok(())
}

pub fn convert(args: ConvertArgs) -> anyhow::Result<()> {
    let mut reqs = Vec::new();
    for input in &args.inputs {
        reqs.extend(match args.format.as_str() {
            "nezha" => eastwest_datasets::convert_nezha_csv(input)?,
            _ => eastwest_datasets::convert_zipkin_json(input)?,
        });
    }
    let format = if args.output_format == "json" {
        FileFormat::Json
    } else {
        FileFormat::Pb
    };
    eastwest_datasets::write_requests(&args.out, format, &reqs)?;
    let spans: u64 = reqs.iter().map(eastwest_datasets::span_count).sum();
    println!(
        "converted {} file(s) to {}: {spans} spans in {} requests",
        args.inputs.len(),
        args.out.display(),
        reqs.len()
    );
    Ok(())
}

/// A directory stands for the OTLP trace and log files directly inside it.
fn expand_paths(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("cannot read directory {}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| is_otlp_file(f))
                .collect();
            if found.is_empty() {
                anyhow::bail!(
                    "{} holds no traces*.pb, traces*.json, logs*.pb or logs*.json file",
                    p.display()
                );
            }
            found.sort();
            files.extend(found);
        } else {
            files.push(p.clone());
        }
    }
    Ok(files)
}

fn is_otlp_file(f: &Path) -> bool {
    let name = f.file_name().and_then(|n| n.to_str()).unwrap_or("");
    (name.starts_with("traces") || name.starts_with("logs"))
        && (name.ends_with(".pb") || name.ends_with(".json"))
}

pub async fn replay(args: ReplayArgs) -> anyhow::Result<()> {
    let files = expand_paths(&args.paths)?;
    let pace = match (args.speed, args.max_rate) {
        (Some(x), _) => Pace::Speed(x),
        (None, Some(n)) => Pace::MaxRate(n),
        (None, None) => Pace::Unlimited,
    };
    let opts = ReplayOptions {
        endpoint: args.to,
        pace,
        max_retries: args.max_retries,
        progress: !args.quiet,
        retime: !args.keep_time,
        in_flight: args.in_flight,
    };
    let report = eastwest_datasets::replay(&files, opts).await?;
    if report.shifted_days > 0 {
        eprintln!(
            "eastwest replay: moved timestamps {} days forward (--keep-time sends them as recorded)",
            report.shifted_days
        );
    }
    eprintln!(
        "eastwest replay: sent {} spans and {} log records in {} requests in {:.1}s ({:.0} spans/s, {} retries, {} refused by the receiver)",
        report.spans,
        report.log_records,
        report.requests,
        report.elapsed.as_secs_f64(),
        report.spans_per_sec(),
        report.retries,
        report.rejected
    );
    Ok(())
}
