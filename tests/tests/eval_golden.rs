//! `eastwest eval --all`: the built-in scenario suite through the real collector,
//! baseline and detector, on the Online Boutique and TrainTicket meshes. Each printed
//! table is guarded by a golden file so that any change in detection quality shows up
//! in review.
//!
//! Re-bless after an intended change (then copy the tables into README.md):
//!     EASTWEST_BLESS=1 cargo test -p eastwest-tests --test eval_golden

use std::path::PathBuf;
use std::process::Command;

use eastwest_tests::eastwest_bin;

fn golden_path(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("golden")
        .join(file)
}

/// The totals line: `recall X% (d/n), false alerts per million normal calls F (…)`.
fn totals(report: &str) -> (f64, f64) {
    let line = report
        .lines()
        .find(|l| l.starts_with("totals:"))
        .unwrap_or_else(|| panic!("no totals line in\n{report}"));
    let number_after = |marker: &str| -> f64 {
        let rest = &line[line.find(marker).expect(marker) + marker.len()..];
        rest.trim_start()
            .split(|c: char| !(c.is_ascii_digit() || c == '.'))
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no number after {marker:?} in {line}"))
    };
    (
        number_after("recall"),
        number_after("false alerts per million normal calls"),
    )
}

/// One row of the totals table: `name  recall%  detected/attacks  false  per-1M`.
struct Row {
    recall: f64,
    false_alerts: u64,
}

fn row(report: &str, name: &str) -> Row {
    let line = report
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name) && l.contains('%'))
        .unwrap_or_else(|| panic!("no {name} row in\n{report}"));
    let cols: Vec<&str> = line.split_whitespace().collect();
    Row {
        recall: cols[1]
            .trim_end_matches('%')
            .parse()
            .expect("recall column"),
        false_alerts: cols[3].parse().expect("false alerts column"),
    }
}

#[test]
fn eval_all_matches_the_golden_report_and_meets_the_quality_bar() {
    check_suite("boutique", "eval-all.txt");
}

#[test]
fn eval_all_on_trainticket_matches_its_golden_report_and_meets_the_quality_bar() {
    check_suite("trainticket", "eval-trainticket.txt");
}

fn check_suite(topology: &str, golden_file: &str) {
    let out = Command::new(eastwest_bin())
        .args(["eval", "--all", "--topology", topology])
        .env("EASTWEST_LOG", "warn")
        .output()
        .expect("run eastwest eval --all");
    let report = String::from_utf8(out.stdout).expect("utf-8 report");
    assert!(
        out.status.success(),
        "eval failed: {}\n{report}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        report.lines().last().unwrap_or("").contains("recall"),
        "the report must end with the totals line:\n{report}"
    );
    let (recall, false_per_million) = totals(&report);
    // The bar: recall ≥ 95 %, ≤ 1 false alert per million normal calls.
    assert!(recall >= 95.0, "recall {recall}% < 95%\n{report}");
    assert!(
        false_per_million <= 1.0,
        "{false_per_million} false alerts per million > 1\n{report}"
    );

    // …and ≥ 10× fewer false alerts than "alert on any unseen edge" at no lower recall.
    let (ours, unseen) = (row(&report, "eastwest"), row(&report, "unseen-edge"));
    assert!(
        ours.recall >= unseen.recall,
        "recall {} below the unseen-edge rule's {}\n{report}",
        ours.recall,
        unseen.recall
    );
    assert!(
        ours.false_alerts * 10 <= unseen.false_alerts && unseen.false_alerts > 0,
        "false alerts {} vs unseen-edge {}: not ≥ 10× fewer (or the suite has no benign novelty)\n{report}",
        ours.false_alerts,
        unseen.false_alerts
    );

    let golden = golden_path(golden_file);
    if std::env::var_os("EASTWEST_BLESS").is_some() {
        std::fs::write(&golden, &report).expect("write golden file");
        return;
    }
    let expected = std::fs::read_to_string(&golden).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; create it with EASTWEST_BLESS=1 cargo test -p eastwest-tests --test eval_golden",
            golden.display()
        )
    });
    assert_eq!(
        report, expected,
        "eval output on {topology} changed; if intended, re-bless with EASTWEST_BLESS=1 (see this file's header)"
    );
}
