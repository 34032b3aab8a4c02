//! The data dir end to end: `serve` learns from replayed traffic, writes the call history
//! and a baseline snapshot at SIGTERM; `sql` reads both; a restart restores the same
//! baseline; `baseline rebuild` relearns it from the history. An operator's command is
//! persisted at once, so even `kill -9` right after it does not undo it.

mod otlp_support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use otlp_support::*;
use serde_json::Value;

struct Server {
    child: ChildGuard,
    api: std::net::SocketAddr,
    http: std::net::SocketAddr,
}

async fn serve(data_dir: &Path) -> Server {
    let Serving {
        child, api, http, ..
    } = serve_on_free_ports(data_dir, &["--learning-period", "20m"])
        .await
        .unwrap();
    Server { child, api, http }
}

impl Server {
    async fn baseline(&self) -> Value {
        get_json(&format!("http://{}/api/v1/baseline", self.api))
            .await
            .unwrap()
    }

    /// SIGTERM, then wait for an orderly exit.
    fn stop(mut self) {
        stop_gracefully(&mut self.child).unwrap();
    }
}

fn run(args: &[&str], data_dir: &Path) -> String {
    let out = Command::new(eastwest_bin())
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env("EASTWEST_LOG", "warn")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    );
    assert!(out.status.success(), "{args:?} failed:\n{stdout}\n{stderr}");
    stdout + &stderr
}

/// The single number in a one-cell `sql` result table.
fn cell(table: &str) -> u64 {
    table
        .lines()
        .filter_map(|l| l.trim().trim_matches('|').trim().parse().ok())
        .next()
        .unwrap_or_else(|| panic!("no number in\n{table}"))
}

fn counts(b: &Value) -> (u64, u64, u64, String) {
    let c = &b["counts"];
    (
        c["edges"].as_u64().unwrap(),
        c["endpoints"].as_u64().unwrap(),
        c["contexts"].as_u64().unwrap(),
        b["state"].as_str().unwrap().to_string(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn history_snapshots_sql_restart_and_rebuild() {
    let scenario = generate_scenario(
        "admin-endpoint",
        &["--learning", "30m", "--attack", "5m", "--rate", "5"],
    );

    let data = tempfile::tempdir().unwrap();
    let server = serve(data.path()).await;
    replay_scenario(scenario.path(), server.http);

    // Learning ended (20 min of 35 min event time) and the attack alerted; wait until the
    // idle watermark has closed the last windows and the counts stop moving.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = counts(&server.baseline().await);
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let now = counts(&server.baseline().await);
        if now == last && now.3 == "detecting" && now.0 > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "baseline never settled: {now:?}");
        last = now;
    }
    let alerts = get_json(&format!("http://{}/api/v1/alerts", server.api))
        .await
        .unwrap();
    assert!(
        !alerts["alerts"].as_array().unwrap().is_empty(),
        "the attack alerted"
    );
    let before = counts(&server.baseline().await);
    server.stop();

    let snapshots: Vec<_> = std::fs::read_dir(data.path().join("baseline"))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("snapshot-"))
        .collect();
    assert!(!snapshots.is_empty(), "a snapshot was written at shutdown");

    // SQL over the history and the snapshot.
    let edges = cell(&run(
        &["sql", "SELECT count(*) AS n FROM edges"],
        data.path(),
    ));
    assert_eq!(edges, before.0, "edges table = baseline edge count");
    let endpoints = cell(&run(
        &["sql", "SELECT count(*) AS n FROM endpoints"],
        data.path(),
    ));
    assert_eq!(endpoints, before.1);
    let calls = cell(&run(
        &["sql", "SELECT count(*) AS n FROM calls"],
        data.path(),
    ));
    assert!(calls > 1000, "history holds the replayed calls: {calls}");
    let admin = cell(&run(
        &[
            "sql",
            "SELECT count(*) AS n FROM calls WHERE route = '/admin/dump' AND NOT learned",
        ],
        data.path(),
    ));
    assert_eq!(
        admin, 1,
        "the alerted admin call is in history, marked not learned"
    );
    let bad = Command::new(eastwest_bin())
        .args(["sql", "SELECT nope FROM edges", "--data-dir"])
        .arg(data.path())
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("nope"));

    // Restart: the same baseline, before any new traffic.
    let server = serve(data.path()).await;
    let after = counts(&server.baseline().await);
    assert_eq!(after, before, "restart restores the baseline");
    server.stop();

    // Rebuild from history gives the same tables' sizes.
    let report = run(&["baseline", "rebuild"], data.path());
    assert!(
        report.contains(&format!("{} edges, {} endpoints", before.0, before.1)),
        "{report}"
    );
    let server = serve(data.path()).await;
    assert_eq!(counts(&server.baseline().await), before);
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn ending_learning_survives_kill_9_right_after_it() {
    let scenario = generate_scenario(
        "admin-endpoint",
        &["--learning", "5m", "--attack", "1m", "--rate", "5"],
    );
    let data = tempfile::tempdir().unwrap();
    let mut server = serve(data.path()).await;
    replay_scenario(scenario.path(), server.http);
    let deadline = Instant::now() + Duration::from_secs(60);
    while counts(&server.baseline().await).0 == 0 {
        assert!(Instant::now() < deadline, "nothing learned");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(counts(&server.baseline().await).3, "learning");

    let r = reqwest::Client::new()
        .post(format!("http://{}/api/v1/baseline/detect", server.api))
        .header("x-eastwest-request", "1")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "ending learning: {}", r.status());
    // Far sooner than the periodic snapshot (5 min): a snapshot follows the command.
    let snapshot_dir = data.path().join("baseline");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !std::fs::read_dir(&snapshot_dir).is_ok_and(|dir| {
        dir.filter_map(Result::ok)
            .any(|e| e.file_name().to_string_lossy().starts_with("snapshot-"))
    }) {
        assert!(
            Instant::now() < deadline,
            "no snapshot after ending learning"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let before = counts(&server.baseline().await);
    server.child.0.kill().unwrap();
    server.child.0.wait().unwrap();

    let server = serve(data.path()).await;
    let after = counts(&server.baseline().await);
    assert_eq!(after.3, "detecting", "learning stays ended: {after:?}");
    assert_eq!(after, before);
    server.stop();
}
