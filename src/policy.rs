//! `eastwest policy …`: least-privilege policies from the data dir (generate), replayed
//! against the call history (backtest), compared with observed traffic (drift), and
//! measured on the built-in scenarios (eval). The behaviour is `eastwest-policy`'s.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use eastwest_api::AlertStore;
use eastwest_datasets::{DatasetError, GenOptions, TopologyKind};
use eastwest_model::Alert;
use eastwest_policy::{Format, PolicySet};

use crate::cli::ServeArgs;

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Least-privilege allow rules per destination workload, as multi-document YAML:
    /// from the newest baseline snapshot, or with --since/--until from the call history.
    /// Calls behind alerts nobody accepted are left out.
    Generate(GenerateArgs),
    /// Replay the call history against policies (generated or your own, in any of the
    /// four dialects) and report what they would have denied, and which stored alerts'
    /// calls they would have blocked.
    Backtest(BacktestArgs),
    /// Compare policies in force with observed traffic: calls no policy covers, allow
    /// rules unused for a while, rules far broader than their use.
    Drift(DriftArgs),
    /// Generate, round-trip and backtest policies on the built-in scenarios of a mesh;
    /// prints Markdown tables (docs/POLICY.md).
    Eval(PolicyEvalArgs),
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// istio, networkpolicy, cilium or linkerd.
    #[arg(long, value_name = "FORMAT")]
    pub format: String,
    /// Only destinations in this namespace.
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,
    /// Read the call history from this event time (RFC 3339, or a duration back from now: 7d).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// … up to this event time (RFC 3339, or a duration back from now).
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    #[arg(long, value_name = "DIR", default_value = crate::config::DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// Print the rule set as JSON instead of YAML.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct BacktestArgs {
    /// Policy files (multi-document YAML; `-` reads standard input).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// History from this event time (RFC 3339, or a duration back from now).
    #[arg(long, value_name = "TIME", default_value = "7d")]
    pub since: String,
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    #[arg(long, value_name = "DIR", default_value = crate::config::DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DriftArgs {
    /// Policies in force (multi-document YAML).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// History read (RFC 3339, or a duration back from now).
    #[arg(long, value_name = "TIME", default_value = "7d")]
    pub since: String,
    /// Allow rules with no call in this long are reported unused.
    #[arg(long, value_name = "DURATION", default_value = "3d")]
    pub unused_for: humantime::Duration,
    #[arg(long, value_name = "DIR", default_value = crate::config::DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PolicyEvalArgs {
    /// boutique, trainticket or large.
    #[arg(long, default_value = "boutique")]
    pub topology: String,
    /// Only these scenarios (default: every built-in one).
    #[arg(long = "scenario", value_name = "NAME")]
    pub scenarios: Vec<String>,
    #[arg(long)]
    pub seed: Option<u64>,
    /// TOML config (e.g. a longer `[pipeline] shutdown_grace` for the large mesh on a
    /// debug build).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// RFC 3339, or a duration meaning that long before now.
fn parse_time(flag: &str, value: &str) -> anyhow::Result<i64> {
    eastwest_policy::parse_time(value).with_context(|| {
        format!("--{flag} {value:?}: expected an RFC 3339 time or a duration (7d)")
    })
}

fn opt_time(flag: &str, value: Option<&str>) -> anyhow::Result<Option<i64>> {
    value.map(|v| parse_time(flag, v)).transpose()
}

fn check_data_dir(dir: &Path) -> anyhow::Result<()> {
    anyhow::ensure!(
        dir.is_dir(),
        "data dir {} does not exist (start `eastwest serve --data-dir …` first)",
        dir.display()
    );
    Ok(())
}

/// Every stored alert (none when the data dir has no alert store).
fn alerts(data_dir: &Path) -> anyhow::Result<Vec<Alert>> {
    let db = data_dir.join(eastwest_api::store::DATABASE_FILE);
    if !db.exists() {
        return Ok(Vec::new());
    }
    Ok(AlertStore::open_file(&db)?.all_alerts()?)
}

fn rfc3339(ns: Option<i64>) -> Option<String> {
    ns.map(eastwest_model::format_event_time)
}

pub async fn run(command: PolicyCommand) -> anyhow::Result<()> {
    match command {
        PolicyCommand::Generate(args) => generate(args).await,
        PolicyCommand::Backtest(args) => backtest(args).await,
        PolicyCommand::Drift(args) => drift(args).await,
        PolicyCommand::Eval(args) => eval(args).await,
    }
}

async fn generate(args: GenerateArgs) -> anyhow::Result<()> {
    check_data_dir(&args.data_dir)?;
    let format = Format::parse(&args.format)?;
    let (since, until) = (
        opt_time("since", args.since.as_deref())?,
        opt_time("until", args.until.as_deref())?,
    );
    // With only --until, the history from its start.
    let since = since.or(until.map(|_| 0));
    let alerts = alerts(&args.data_dir)?;
    let mut rules =
        eastwest_policy::rules_from_data_dir(&args.data_dir, since, until, &alerts).await?;
    if let Some(ns) = &args.namespace {
        rules = rules.in_namespace(ns);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rules)?);
        return Ok(());
    }
    let compiled = eastwest_policy::compile(&rules, format);
    print!("{}", compiled.to_yaml(&rules)?);
    eprintln!(
        "{} document(s) for {} workload(s), {} operation(s); {} note(s), {} operation(s) left out for open alerts",
        compiled.documents.len(),
        rules.workloads.len(),
        rules.rule_count(),
        compiled.notes.len(),
        rules.excluded.len()
    );
    Ok(())
}

async fn backtest(args: BacktestArgs) -> anyhow::Result<()> {
    check_data_dir(&args.data_dir)?;
    let docs = eastwest_policy::read_files(&args.files)?;
    let set = PolicySet::new(&docs)?;
    let since = Some(parse_time("since", &args.since)?);
    let until = opt_time("until", args.until.as_deref())?;
    let groups = eastwest_policy::call_groups(&args.data_dir, since, until).await?;
    let report = eastwest_policy::backtest(
        &set,
        groups,
        &alerts(&args.data_dir)?,
        rfc3339(since),
        rfc3339(until),
    );
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.to_text());
    }
    Ok(())
}

async fn drift(args: DriftArgs) -> anyhow::Result<()> {
    check_data_dir(&args.data_dir)?;
    let docs = eastwest_policy::read_files(&args.files)?;
    let set = PolicySet::new(&docs)?;
    let since = parse_time("since", &args.since)?;
    let cutoff = parse_time("unused-for", &args.unused_for.to_string())?;
    let groups = eastwest_policy::call_groups(&args.data_dir, Some(since), None).await?;
    let report = eastwest_policy::drift(&docs, &set, &groups, cutoff);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.to_text());
    }
    Ok(())
}

async fn eval(args: PolicyEvalArgs) -> anyhow::Result<()> {
    let config = crate::config::load(&ServeArgs {
        config: args.config.clone(),
        ..Default::default()
    })?;
    let topology = TopologyKind::parse(&args.topology)
        .with_context(|| format!("unknown topology {}", args.topology))?;
    let opts = GenOptions {
        seed: args.seed.unwrap_or(GenOptions::default().seed),
        topology,
        ..Default::default()
    };
    let tmp = tempfile::tempdir().context("cannot create a temporary directory")?;
    let mut figures = Vec::new();
    for name in eastwest_datasets::scenario_names() {
        if !args.scenarios.is_empty() && !args.scenarios.iter().any(|s| s == name) {
            continue;
        }
        let dir = tmp.path().join(name);
        let generated = {
            let (opts, dir) = (opts.clone(), dir.clone());
            tokio::task::spawn_blocking(move || eastwest_datasets::generate(name, &opts, &dir))
                .await?
        };
        match generated {
            Ok(_) => {}
            Err(DatasetError::ScenarioUnavailable { .. }) => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot generate scenario {name}")),
        }
        let data = eastwest_datasets::read_scenario_dir(&dir)?;
        let labels = data.labels.clone();
        let run = eastwest_runtime::run_scenario(data, &config).await?;
        let shift = chrono::Duration::nanoseconds(run.shifted_ns);
        let labels: Vec<_> = labels
            .into_iter()
            .map(|mut l| {
                l.start += shift;
                l.end += shift;
                l
            })
            .collect();
        let work = tmp.path().join(format!("{name}-data"));
        std::fs::create_dir_all(&work)?;
        let f = eastwest_policy::measure(&work, name, &run.calls, run.detect_from, &labels).await?;
        eprintln!(
            "{name}: {} attack call(s), {} operation(s)",
            f.attack_calls, f.operations
        );
        for d in &f.dialects {
            for (edge, calls) in &d.normal_after_denied_edges {
                eprintln!(
                    "  {} denies normal calls after learning: {edge} ({calls} calls)",
                    d.format.as_str()
                );
            }
            for r in &d.learning_denied_rows {
                eprintln!(
                    "  {} denies a learning-window call: {} -> {} {} {} ports {:?} ({} calls) [{}]",
                    d.format.as_str(),
                    r.source,
                    r.destination,
                    r.method,
                    r.route,
                    r.ports,
                    r.calls,
                    r.by
                );
            }
        }
        figures.push(f);
        std::fs::remove_dir_all(&dir).ok();
        std::fs::remove_dir_all(&work).ok();
    }
    print!("{}", eastwest_policy::markdown(&args.topology, &figures));
    Ok(())
}
