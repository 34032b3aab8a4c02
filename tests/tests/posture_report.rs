//! Posture and audit evidence against the real binary: the plaintext and identity-spoof
//! scenarios replayed into `eastwest serve`, `GET /api/v1/posture` and `/api/v1/report`
//! read while it runs, then `eastwest report` (JSON, CSV, HTML) over the same data dir,
//! its figures compared with the same questions asked through `eastwest sql`, and its
//! policy coverage with `--policy` against `eastwest policy backtest`. A history spanning
//! several days checks the daily roll-ups against the raw calls, day by day.

mod otlp_support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use eastwest_tests::served::{SCENARIO_ARGS, on_data_dir, serve_args, sql};
use otlp_support::{
    generate_scenario, get_json, replay_scenario, serve_on_free_ports, stop_gracefully,
    wait_for_alert,
};
use serde_json::Value;

fn report(data_dir: &Path, format: &str) -> String {
    on_data_dir(data_dir, &["report", "--since", "3d", "--format", format])
}

fn num(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_and_posture_name_plaintext_and_spoofed_identities_and_match_sql() {
    let data = tempfile::tempdir().unwrap();
    let mut serving = serve_on_free_ports(data.path(), &serve_args(data.path()))
        .await
        .unwrap();
    let api = serving.api;
    let plaintext = generate_scenario("plaintext", &SCENARIO_ARGS);
    let spoof = generate_scenario("identity-spoof", &SCENARIO_ARGS);
    replay_scenario(plaintext.path(), serving.http);
    replay_scenario(spoof.path(), serving.http);
    let plain_alert = wait_for_alert(api, "plaintext", |a| a["kind"] == "plaintext").await;
    let spoof_alert = wait_for_alert(api, "identity_mismatch", |a| {
        a["kind"] == "identity_mismatch"
    })
    .await;
    let attacker = plain_alert["source"]["service"]
        .as_str()
        .unwrap()
        .to_owned();

    // An operator acknowledges the plaintext alert; the report names who and when.
    let id = plain_alert["id"].as_str().unwrap();
    let acked = reqwest::Client::new()
        .post(format!("http://{api}/api/v1/alerts/{id}/ack"))
        .header("X-Eastwest-Request", "1")
        .body(r#"{"by":"auditor@example.com"}"#)
        .send()
        .await
        .unwrap();
    assert!(acked.status().is_success(), "{}", acked.status());
    // Another accepts the spoof alert from a script, naming no one: recorded as `cli`.
    let sid = spoof_alert["id"].as_str().unwrap();
    let accepted = reqwest::Client::new()
        .post(format!("http://{api}/api/v1/alerts/{sid}/accept"))
        .header("X-Eastwest-Request", "1")
        .send()
        .await
        .unwrap();
    assert!(accepted.status().is_success(), "{}", accepted.status());

    // The history is flushed every second: wait until both attacks' calls are in it.
    let mut posture = Value::Null;
    for _ in 0..60 {
        posture = get_json(&format!("http://{api}/api/v1/posture?since=3d"))
            .await
            .unwrap();
        let kinds: Vec<&Value> = posture["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| &f["kind"])
            .collect();
        if kinds.contains(&&Value::from("plaintext"))
            && kinds.contains(&&Value::from("shared_service_account"))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let findings = posture["findings"].as_array().unwrap();
    let of =
        |kind: &str| -> Vec<&Value> { findings.iter().filter(|f| f["kind"] == kind).collect() };
    let plain = of("plaintext");
    assert!(
        plain
            .iter()
            .any(|f| f["subject"].as_str().unwrap().starts_with(&attacker)),
        "{attacker} is named for plaintext: {plain:#?}"
    );
    let f = plain[0];
    assert!(f["explanation"].as_str().unwrap().contains("in plaintext"));
    assert!(!f["evidence"]["trace_ids"].as_array().unwrap().is_empty());
    // The spoofing caller presented another workload's principal: two workloads share it.
    let spoofed = spoof_alert["source"]["service"].as_str().unwrap();
    let shared = of("shared_service_account");
    assert!(
        shared
            .iter()
            .any(|f| f["explanation"].as_str().unwrap().contains(spoofed)),
        "{spoofed} shares a principal: {findings:#?}"
    );
    let radii = posture["blast_radius"].as_array().unwrap();
    assert!(radii.len() >= 3, "one per calling workload: {radii:#?}");
    for r in radii {
        let (before, after) = (
            r["default_allow"]["score"].as_f64().unwrap(),
            r["least_privilege"]["score"].as_f64().unwrap(),
        );
        assert!(after <= before, "{r}");
    }
    assert!(
        posture["summary"]["mean_cut"].as_f64().unwrap() > 0.0,
        "least privilege cuts the mean blast radius: {}",
        posture["summary"]
    );
    for (i, f) in findings.iter().enumerate() {
        assert_eq!(num(&f["rank"]), i as u64 + 1);
    }
    // The report through the API, as HTML; the CSP of every API response stays.
    let html = reqwest::get(format!("http://{api}/api/v1/report?format=html&since=3d"))
        .await
        .unwrap();
    assert!(
        html.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(html.text().await.unwrap().contains("identity_mismatch"));
    let bad = reqwest::get(format!("http://{api}/api/v1/report?format=pdf"))
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);

    // Stopped, so the history is flushed and closed days rolled up.
    stop_gracefully(&mut serving.child).unwrap();
    let dir = data.path();
    let r: Value = serde_json::from_str(&report(dir, "json")).unwrap();

    // Per edge: calls, mTLS and plaintext calls equal the same GROUP BY in SQL.
    let rows = sql(
        dir,
        "SELECT source, destination, count(*), sum(CASE WHEN mtls THEN 1 ELSE 0 END), \
         sum(CASE WHEN NOT mtls THEN 1 ELSE 0 END), sum(CASE WHEN error THEN 1 ELSE 0 END) \
         FROM calls GROUP BY source, destination ORDER BY source, destination",
    );
    let from_sql: BTreeMap<(String, String), Vec<u64>> = rows
        .iter()
        .map(|c| {
            (
                (c[0].clone(), c[1].clone()),
                c[2..].iter().map(|n| n.parse().unwrap()).collect(),
            )
        })
        .collect();
    let from_report: BTreeMap<(String, String), Vec<u64>> = r["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                (
                    e["source"].as_str().unwrap().to_owned(),
                    e["destination"].as_str().unwrap().to_owned(),
                ),
                ["calls", "mtls_calls", "plaintext_calls", "errors"]
                    .iter()
                    .map(|k| num(&e[*k]))
                    .collect(),
            )
        })
        .collect();
    assert!(from_sql.len() >= 5);
    assert_eq!(from_report, from_sql, "report edges vs eastwest sql");
    let total = sql(
        dir,
        "SELECT count(*), sum(CASE WHEN mtls THEN 1 ELSE 0 END), \
         sum(CASE WHEN NOT mtls THEN 1 ELSE 0 END) FROM calls",
    );
    let totals = &r["totals"];
    assert_eq!(
        [
            num(&totals["calls"]),
            num(&totals["mtls_calls"]),
            num(&totals["plaintext_calls"])
        ],
        [0, 1, 2].map(|i| total[0][i].parse::<u64>().unwrap())
    );
    assert!(num(&totals["plaintext_calls"]) > 0);

    // Principals per workload (as caller) equal SQL's distinct pairs.
    let pairs = sql(
        dir,
        "SELECT DISTINCT source, source_principal FROM calls \
         WHERE source_principal IS NOT NULL ORDER BY 1, 2",
    );
    let mut from_sql: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for p in pairs {
        from_sql.entry(p[0].clone()).or_default().push(p[1].clone());
    }
    let from_report: BTreeMap<String, Vec<String>> = r["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| !w["as_caller"].as_array().unwrap().is_empty())
        .map(|w| {
            (
                w["workload"].as_str().unwrap().to_owned(),
                serde_json::from_value(w["as_caller"].clone()).unwrap(),
            )
        })
        .collect();
    assert_eq!(
        from_report, from_sql,
        "principals per workload vs eastwest sql"
    );
    let spoofer = r["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["workload"].as_str().unwrap().starts_with(spoofed))
        .unwrap();
    assert!(
        spoofer["as_caller"].as_array().unwrap().len() >= 2,
        "{spoofer}"
    );

    // Plaintext calls carry example trace ids that are in the history as plaintext.
    let plain_edge = r["edges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| num(&e["plaintext_calls"]) > 0)
        .unwrap();
    let trace = plain_edge["plaintext_trace_ids"][0].as_str().unwrap();
    let check = sql(
        dir,
        &format!("SELECT count(*) FROM calls WHERE trace_id = '{trace}' AND NOT mtls"),
    );
    assert_ne!(check[0][0], "0", "{trace} is a plaintext call");

    // Every alert is there with its handling.
    let alerts = r["alerts"].as_array().unwrap();
    let acked = alerts
        .iter()
        .find(|a| a["id"] == plain_alert["id"])
        .unwrap();
    assert_eq!(acked["state"], "acked");
    assert_eq!(acked["handling"][0]["by"], "auditor@example.com");
    let spoof_handled = alerts
        .iter()
        .find(|a| a["id"] == spoof_alert["id"])
        .unwrap();
    assert_eq!(spoof_handled["state"], "accepted");
    assert_eq!(spoof_handled["handling"][0]["by"], "cli");
    assert!(spoof_handled["handling"][0]["at"].is_string());
    assert_eq!(r["policy"]["assessed"], false);

    // Closed days were rolled up: daily_edges answers for them as the raw history does.
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let raw = sql(
        dir,
        &format!("SELECT count(*) FROM calls WHERE time < TIMESTAMP '{today}T00:00:00Z'"),
    );
    let rolled = sql(
        dir,
        &format!("SELECT coalesce(sum(calls), 0) FROM daily_edges WHERE day < DATE '{today}'"),
    );
    assert_eq!(raw[0][0], rolled[0][0], "daily_edges vs calls before today");

    // CSV and HTML carry the same names; HTML escapes, CSV defuses formulas.
    let csv = report(dir, "csv");
    assert!(csv.contains(&attacker) && csv.contains("identity_mismatch"));
    assert!(csv.lines().any(|l| l.starts_with("edge,")));
    let html = report(dir, "html");
    assert!(html.contains(&attacker) && html.contains("auditor@example.com"));
    assert!(html.contains("Content-Security-Policy"));

    policy_coverage_matches_the_backtest(dir, &r);
}

/// `report --policy`: the policies generated from the history, minus the one of a
/// callee, so its edges are uncovered while the others' learned edges are covered; the
/// per-edge figures add up to what `policy backtest` says of the same files.
fn policy_coverage_matches_the_backtest(dir: &Path, unpoliced: &Value) {
    let yaml = on_data_dir(
        dir,
        &["policy", "generate", "--format", "istio", "--since", "3d"],
    );
    let docs = eastwest_policy::parse_yaml(&yaml).unwrap();
    let app = |d: &eastwest_policy::Document| match d {
        eastwest_policy::Document::Istio(p) => p
            .spec
            .selector
            .as_ref()
            .and_then(|s| s.match_labels.as_ref())
            .and_then(|l| l.get("app"))
            .cloned(),
        _ => None,
    };
    let service = |key: &str| key.split('.').next().unwrap().to_owned();
    let policed: BTreeSet<String> = docs.iter().filter_map(app).collect();
    // The busiest policed callee loses its policy.
    let open = unpoliced["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["destination"].as_str().unwrap())
        .find(|d| policed.contains(&service(d)))
        .unwrap()
        .to_owned();
    let kept: Vec<_> = docs
        .into_iter()
        .filter(|d| app(d).is_none_or(|a| a != service(&open)))
        .collect();
    let file = dir.join("partial.yaml");
    std::fs::write(&file, eastwest_policy::to_yaml(&[], &kept).unwrap()).unwrap();
    let file = file.to_str().unwrap();
    let r: Value = serde_json::from_str(&on_data_dir(
        dir,
        &[
            "report", "--since", "3d", "--format", "json", "--policy", file,
        ],
    ))
    .unwrap();
    assert_eq!(r["policy"]["assessed"], true);
    let edges = r["edges"].as_array().unwrap();
    let coverage = |e: &Value| e["policy"]["coverage"].as_str().unwrap().to_owned();
    let sum = |k: &str| -> f64 { edges.iter().map(|e| e["policy"][k].as_f64().unwrap()).sum() };
    for e in edges {
        let calls = num(&e["calls"]) as f64;
        let p = &e["policy"];
        let judged = ["allowed_calls", "default_allowed_calls", "denied_calls"]
            .iter()
            .map(|k| p[*k].as_f64().unwrap())
            .sum::<f64>();
        assert_eq!(judged, calls, "every call of the edge is judged: {e}");
        let callee = service(e["destination"].as_str().unwrap());
        if e["destination"] == open.as_str() || !policed.contains(&callee) {
            // No policy selects the callee (it had none, or lost it): default allow.
            assert_eq!(coverage(e), "uncovered", "{e}");
        } else if num(&e["alerted_calls"]) == 0 {
            // Learned traffic of a policed callee: the generated rules allow all of it.
            assert_eq!(coverage(e), "covered", "{e}");
            assert_eq!(p["allowed_calls"].as_f64().unwrap(), calls, "{e}");
        }
    }
    let count = |c: &str| edges.iter().filter(|e| coverage(e) == c).count() as u64;
    assert!(count("covered") >= 3 && count("uncovered") >= 1);
    assert_eq!(num(&r["policy"]["edges_covered"]), count("covered"));
    assert_eq!(num(&r["policy"]["edges_uncovered"]), count("uncovered"));
    assert_eq!(num(&r["policy"]["edges_denied"]), count("denied"));
    let total = sum("allowed_calls") + sum("default_allowed_calls") + sum("denied_calls");
    let share = r["policy"]["calls_covered"].as_f64().unwrap();
    assert!(
        (share - sum("allowed_calls") / total).abs() < 1e-9,
        "{share}"
    );

    // The same files through the backtest: the same calls allowed, passing by default
    // and denied.
    let b: Value = serde_json::from_str(&on_data_dir(
        dir,
        &["policy", "backtest", file, "--since", "3d", "--json"],
    ))
    .unwrap();
    for (ours, theirs) in [
        ("allowed_calls", "allowed_calls"),
        ("default_allowed_calls", "default_allowed_calls"),
        ("denied_calls", "denied_calls"),
    ] {
        assert_eq!(sum(ours), b[theirs].as_f64().unwrap(), "{theirs}");
    }

    let csv = on_data_dir(
        dir,
        &[
            "report", "--since", "3d", "--format", "csv", "--policy", file,
        ],
    );
    assert!(
        csv.lines()
            .any(|l| l.starts_with("edge,") && l.contains(&open) && l.contains(",uncovered,")),
        "{csv}"
    );
    let html = on_data_dir(
        dir,
        &[
            "report", "--since", "3d", "--format", "html", "--policy", file,
        ],
    );
    assert!(html.contains("partial.yaml") && html.contains("uncovered"));
}

/// A history over several UTC days (event times two days back, inside the accepted
/// clock window): after serve stops, every closed day's roll-up rows equal the same
/// GROUP BY over the raw calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daily_roll_ups_equal_the_raw_history_day_by_day() {
    let data = tempfile::tempdir().unwrap();
    let mut serving = serve_on_free_ports(data.path(), &serve_args(data.path()))
        .await
        .unwrap();
    // 50 h of event time at a low rate; replay moves it by whole days to end within the
    // last day, so it starts two to three days back (`[pipeline] max_age` is 7 days).
    let scenario = generate_scenario(
        "plaintext",
        &["--learning", "50h", "--attack", "10m", "--rate", "0.02"],
    );
    replay_scenario(scenario.path(), serving.http);
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop_gracefully(&mut serving.child).unwrap();
    let dir = data.path();

    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let rolled = sql(
        dir,
        &format!(
            "SELECT CAST(day AS VARCHAR), source, destination, calls, mtls_calls, \
             plaintext_calls, errors, alerted_calls FROM daily_edges \
             WHERE day < DATE '{today}' ORDER BY 1, 2, 3"
        ),
    );
    let raw = sql(
        dir,
        &format!(
            "SELECT CAST(CAST(time AS DATE) AS VARCHAR), source, destination, count(*), \
             sum(CASE WHEN mtls THEN 1 ELSE 0 END), sum(CASE WHEN NOT mtls THEN 1 ELSE 0 END), \
             sum(CASE WHEN error THEN 1 ELSE 0 END), sum(CASE WHEN learned THEN 0 ELSE 1 END) \
             FROM calls WHERE time < TIMESTAMP '{today}T00:00:00Z' GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
        ),
    );
    let days: BTreeSet<&str> = raw.iter().map(|r| r[0].as_str()).collect();
    assert!(days.len() >= 2, "the history spans closed days: {days:?}");
    assert_eq!(
        rolled, raw,
        "daily_edges vs the raw calls, per day and edge"
    );
}
