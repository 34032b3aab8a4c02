//! Policies against the real binary: the admin-endpoint scenario replayed into
//! `eastwest serve`; the policy API read while it runs (generated YAML and rule set, the
//! alert's deny rule, a backtest POST with and without the guard's header); then, once
//! stopped, `eastwest policy generate` (baseline and history), `backtest` and `drift`
//! on its data dir.

mod otlp_support;

use std::path::Path;
use std::time::Duration;

use eastwest_tests::served::{SCENARIO_ARGS, on_data_dir, serve_args};
use otlp_support::{
    generate_scenario, get_json, replay_scenario, serve_on_free_ports, stop_gracefully,
    wait_for_alert,
};
use serde_json::Value;

fn policy(data_dir: &Path, args: &[&str]) -> String {
    on_data_dir(data_dir, &[&["policy"][..], args].concat())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generate_backtest_and_drift_on_a_served_data_dir() {
    let data = tempfile::tempdir().unwrap();
    let mut serving = serve_on_free_ports(data.path(), &serve_args(data.path()))
        .await
        .unwrap();
    let api = serving.api;
    let scenario = generate_scenario("admin-endpoint", &SCENARIO_ARGS);
    replay_scenario(scenario.path(), serving.http);
    let alert = wait_for_alert(api, "sensitive_endpoint", |a| {
        a["kind"] == "sensitive_endpoint"
    })
    .await;
    let (id, route) = (
        alert["id"].as_str().unwrap(),
        alert["route"].as_str().unwrap(),
    );
    let attacker = format!(
        "{}.{}",
        alert["source"]["service"].as_str().unwrap(),
        alert["source"]["namespace"].as_str().unwrap()
    );

    // The rule set from the history leaves the open alert's call out, once the history
    // has it (flushed every second).
    let mut rules = Value::Null;
    for _ in 0..60 {
        rules = get_json(&format!("http://{api}/api/v1/policy?format=json&since=3d"))
            .await
            .unwrap();
        if rules["excluded"].as_array().is_some_and(|e| !e.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let excluded = rules["excluded"].as_array().unwrap();
    assert!(
        excluded
            .iter()
            .any(|e| e["source"] == attacker.as_str() && e["route"] == route),
        "{attacker} {route}: {:#}",
        rules["excluded"]
    );
    assert!(!rules["workloads"].as_array().unwrap().is_empty());
    let yaml = reqwest::get(format!("http://{api}/api/v1/policy?format=istio&since=3d"))
        .await
        .unwrap();
    assert_eq!(yaml.status(), 200);
    assert!(
        yaml.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/yaml")
    );
    let yaml = yaml.text().await.unwrap();
    let docs = eastwest_policy::parse_yaml(&yaml).unwrap();
    assert!(!docs.is_empty());
    let bad = reqwest::get(format!("http://{api}/api/v1/policy?format=pdf"))
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);

    // The alert's suggested deny rule.
    let deny = get_json(&format!("http://{api}/api/v1/alerts/{id}/deny-rule"))
        .await
        .unwrap();
    let istio = deny["istio"].as_str().expect("an Istio deny rule");
    assert!(istio.contains("action: DENY"), "{istio}");
    let deny_docs = eastwest_policy::parse_yaml(istio).unwrap();
    assert_eq!(deny_docs.len(), 1);

    // A backtest is a POST: without the guard's header a page could forge it.
    let client = reqwest::Client::new();
    let url = format!("http://{api}/api/v1/policy/backtest?since=3d");
    let forged = client.post(&url).body(yaml.clone()).send().await.unwrap();
    assert_eq!(forged.status(), 403);
    let report: Value = client
        .post(&url)
        .header("X-Eastwest-Request", "1")
        .body(yaml.clone())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let blocked = report["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == id)
        .unwrap();
    assert_eq!(blocked["blocked"], true, "{report:#}");
    let denied = report["denied"].as_array().unwrap();
    assert!(
        denied
            .iter()
            .any(|d| d["route"] == route && !d["trace_ids"].as_array().unwrap().is_empty())
    );
    // Only the attacker's calls are denied: everything learned is allowed.
    assert!(
        denied.iter().all(|d| d["source"] == attacker.as_str()),
        "{denied:#?}"
    );
    let garbage = client
        .post(&url)
        .header("X-Eastwest-Request", "1")
        .body("kind: Pod\napiVersion: v1\n")
        .send()
        .await
        .unwrap();
    assert_eq!(garbage.status(), 400);

    // Stopped: the last snapshot is written and the history flushed.
    stop_gracefully(&mut serving.child).unwrap();
    let dir = data.path();
    for format in ["istio", "networkpolicy", "cilium", "linkerd"] {
        let out = policy(dir, &["generate", "--format", format]);
        let docs = eastwest_policy::parse_yaml(&out).unwrap();
        assert!(!docs.is_empty(), "{format}");
        assert!(
            docs.iter().all(|d| d.format().as_str() == format),
            "{format}"
        );
    }
    let file = dir.join("istio.yaml");
    let generated = policy(dir, &["generate", "--format", "istio", "--since", "3d"]);
    std::fs::write(&file, generated).unwrap();
    let out = policy(
        dir,
        &[
            "backtest",
            file.to_str().unwrap(),
            "--since",
            "3d",
            "--json",
        ],
    );
    let report: Value = serde_json::from_str(&out).unwrap();
    assert!(
        report["denied_calls"].as_f64().unwrap() >= 1.0,
        "{report:#}"
    );
    assert!(
        report["allowed_calls"].as_f64().unwrap()
            > 100.0 * report["denied_calls"].as_f64().unwrap()
    );
    let alerts = report["alerts"].as_array().unwrap();
    assert!(
        alerts.iter().any(|a| a["id"] == id && a["blocked"] == true),
        "{report:#}"
    );
    let text = policy(dir, &["drift", file.to_str().unwrap(), "--since", "3d"]);
    assert!(
        text.contains("uncovered (passes only by default allow):"),
        "{text}"
    );
    assert!(
        text.contains(&format!("{attacker} -> ")),
        "the attacker's denied call is listed: {text}"
    );
}
