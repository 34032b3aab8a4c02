//! `eastwest sql` and `eastwest baseline rebuild`: the data dir through DataFusion.
//! `sql` is read-only (queries over the data dir's tables; see `eastwest_baseline::sql`):
//! it may be handed to people who must not write files or read others on the host.

use anyhow::Context;
use eastwest_baseline::Baseline;

use eastwest_runtime::{baseline_dir, restore_baseline};

use crate::cli::{RebuildArgs, ServeArgs, SqlArgs};

pub async fn sql(args: SqlArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.data_dir.is_dir(),
        "data dir {} does not exist (start `eastwest serve --data-dir …` first)",
        args.data_dir.display()
    );
    let batches = eastwest_baseline::sql(&args.data_dir, &args.query).await?;
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    println!("{}", eastwest_baseline::format_table(&batches)?);
    eprintln!("{rows} row(s)");
    Ok(())
}

fn parse_time(flag: &str, value: Option<&str>) -> anyhow::Result<Option<i64>> {
    value
        .map(|v| {
            chrono::DateTime::parse_from_rfc3339(v)
                .ok()
                .and_then(|t| t.timestamp_nanos_opt())
                .with_context(|| format!("--{flag} {v:?}: expected an RFC 3339 time"))
        })
        .transpose()
}

pub async fn rebuild(args: RebuildArgs) -> anyhow::Result<()> {
    let config = crate::config::load(&ServeArgs {
        config: args.config.clone(),
        ..Default::default()
    })?
    .baseline;
    let since = parse_time("since", args.since.as_deref())?;
    let until = parse_time("until", args.until.as_deref())?;
    let (index, stats) = eastwest_baseline::rebuild(&args.data_dir, since, until, &config).await?;
    eprintln!(
        "rebuilt from {} learned calls in {:.2?} ({:.0} rows/s): {} edges, {} endpoints, {} contexts, {} workloads",
        stats.rows,
        stats.elapsed,
        stats.rows_per_sec(),
        index.edge_count(),
        index.endpoint_count(),
        index.context_count(),
        index.source_count(),
    );
    anyhow::ensure!(
        stats.rows > 0,
        "no learned calls in the selected history range"
    );
    if args.dry_run {
        return Ok(());
    }
    // Keep the learning state and rollout record of the newest snapshot, if any.
    let mut baseline = restore_baseline(&config, &args.data_dir)?;
    if baseline.is_learning() {
        baseline.end_learning(stats.last_ns.unwrap_or_default());
    }
    baseline.replace_tables(index);
    let path = write(&baseline, &args.data_dir)?;
    println!("{}", path.display());
    Ok(())
}

fn write(baseline: &Baseline, data_dir: &std::path::Path) -> anyhow::Result<std::path::PathBuf> {
    Ok(baseline.snapshot_data().write(&baseline_dir(data_dir))?)
}
