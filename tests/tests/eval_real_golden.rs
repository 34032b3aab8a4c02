//! `eastwest eval --dataset nezha`: real Online Boutique traces (the first 18 one-minute
//! files of the shared Nezha dataset, with their real CPU, memory, delay and exception
//! faults) with attacks and benign changes injected in the recorded span style, through
//! the runtime `serve` runs. The printed table is guarded by a golden file; the full
//! dataset's figures are in README.md ("Real traces").
//!
//! Re-bless after an intended change:
//!     EASTWEST_BLESS=1 cargo test -p eastwest-tests --test eval_real_golden
//!
//! The dataset is looked for at `../shared/datasets` next to the repository and at
//! `/tmp/shared/datasets`; without it the test says so and passes.

use std::path::PathBuf;
use std::process::Command;

use eastwest_tests::eastwest_bin;

/// Files of the CI subset: 6 recorded windows, ~19 minutes of traffic, 6 real faults.
const FILES: &str = "18";

fn dataset() -> Option<PathBuf> {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    [
        repo.join("../shared/datasets"),
        PathBuf::from("/tmp/shared/datasets"),
    ]
    .into_iter()
    .map(|d| d.join("nezha-onlineboutique"))
    .find(|d| d.join("rca_data").is_dir())
}

#[test]
fn eval_on_real_traces_matches_the_golden_report() {
    let Some(dir) = dataset() else {
        eprintln!(
            "skipped: nezha-onlineboutique not found in ../shared/datasets or /tmp/shared/datasets"
        );
        return;
    };
    let out = Command::new(eastwest_bin())
        .args(["eval", "--dataset", "nezha", "--max-files", FILES])
        // A shorter learning part leaves the injections of this short timeline more
        // than the scoring slack (5 min) apart on each edge.
        .args(["--learning-share", "0.3"])
        .arg(&dir)
        .env("EASTWEST_LOG", "warn")
        .output()
        .expect("run eastwest eval --dataset nezha");
    let report = String::from_utf8(out.stdout).expect("utf-8 report");
    assert!(
        out.status.success(),
        "eval failed: {}\n{report}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Every injection has its row, attacks and benign changes alike.
    for name in [
        "new-edge",
        "context-anomaly",
        "admin-reflection",
        "fan-out",
        "probing",
        "new-edge-leaf",
        "benign-surge",
        "benign-new-pods",
        "bulk-read",
    ] {
        assert!(
            report
                .lines()
                .any(|l| l.split_whitespace().next() == Some(name)),
            "no row for {name}:\n{report}"
        );
    }
    let totals = report.lines().last().unwrap_or("");
    assert!(
        totals.starts_with("totals:") && totals.contains("false alerts per hour"),
        "the report must end with the totals line, with false alerts per hour:\n{report}"
    );
    let ours = report
        .lines()
        .find(|l| l.starts_with("eastwest "))
        .unwrap_or_else(|| panic!("no eastwest row:\n{report}"));
    let cols: Vec<&str> = ours.split_whitespace().collect();
    assert_eq!(
        cols.len(),
        6,
        "eastwest row: recall, detected, false, per 1M, per hour: {ours}"
    );
    // Any alert outside the injected labels is false (issue #15: real faults must stay
    // silent); the golden pins how many there are today, `--explain` lists them.
    assert!(
        cols[3].parse::<u64>().is_ok(),
        "false alerts column: {ours}"
    );

    let golden = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("golden/eval-nezha.txt");
    if std::env::var_os("EASTWEST_BLESS").is_some() {
        std::fs::write(&golden, &report).expect("write golden file");
        return;
    }
    let expected = std::fs::read_to_string(&golden).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; create it with EASTWEST_BLESS=1 cargo test -p eastwest-tests --test eval_real_golden",
            golden.display()
        )
    });
    assert_eq!(
        report, expected,
        "eval on real traces changed; if intended, re-bless with EASTWEST_BLESS=1 (see this file's header)"
    );
}
