//! What the policy and posture end-to-end tests share around `eastwest serve`: the
//! config and arguments a served data dir needs (a history flushed every second, so
//! the API's readers see calls soon after replay), the scenario length they replay,
//! and the offline subcommands run on the data dir once serve has stopped.

use std::path::Path;
use std::process::Command;

use crate::eastwest_bin;

/// Event time of the generated scenarios: enough learning to outlast the learning
/// period below, then the attack.
pub const SCENARIO_ARGS: [&str; 4] = ["--learning", "30m", "--attack", "10m"];

/// Writes the config into `data_dir` and returns the `serve` arguments using it. The
/// config's path is leaked, so the arguments are `&'static str` as the serve helpers of
/// the test files take them; a test process leaks one short string per served dir.
pub fn serve_args(data_dir: &Path) -> Vec<&'static str> {
    let config = data_dir.join("eastwest.toml");
    std::fs::write(&config, "[storage]\nhistory_flush_interval = \"1s\"\n")
        .expect("write the serve config");
    let config: &'static str = Box::leak(config.display().to_string().into_boxed_str());
    vec!["--learning-period", "20m", "--config", config]
}

/// Runs `eastwest ARGS… --data-dir DIR` and returns its standard output; panics with
/// its standard error when it fails.
pub fn on_data_dir(data_dir: &Path, args: &[&str]) -> String {
    let out = Command::new(eastwest_bin())
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .expect("run eastwest");
    assert!(
        out.status.success(),
        "eastwest {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// `eastwest sql` rows as cells (the pretty table's data lines, header skipped).
pub fn sql(data_dir: &Path, query: &str) -> Vec<Vec<String>> {
    on_data_dir(data_dir, &["sql", query])
        .lines()
        .filter(|l| l.starts_with('|'))
        .skip(1)
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_owned())
                .collect()
        })
        .collect()
}
