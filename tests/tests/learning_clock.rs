//! The learning period runs on the traffic's event time, whenever that traffic arrives: a
//! server that waits idle for its collector (the normal case in a cluster) must still
//! learn for the whole period from the first call, not from an idle clock near the epoch.

mod otlp_support;

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use otlp_support::*;
use serde_json::Value;

fn time(v: &Value, what: &str) -> DateTime<Utc> {
    v.as_str()
        .unwrap_or_else(|| panic!("{what} is not a time: {v}"))
        .parse()
        .unwrap_or_else(|e| panic!("{what} = {v}: {e}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_start_does_not_shorten_learning() {
    let scenario = generate_scenario(
        "admin-endpoint",
        &["--learning", "30m", "--attack", "5m", "--rate", "5"],
    );
    let meta: Value =
        serde_json::from_slice(&std::fs::read(scenario.path().join("scenario.json")).unwrap())
            .unwrap();
    let traffic_starts = time(&meta["learning_start"], "learning_start");

    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("eastwest.toml");
    std::fs::write(&config, "[pipeline]\nidle_advance = \"100ms\"\n").unwrap();
    let server = serve_on_free_ports(
        data.path(),
        &[
            "--config",
            config.to_str().unwrap(),
            "--learning-period",
            "20m",
        ],
    )
    .await
    .unwrap();
    let baseline_url = format!("http://{}/api/v1/baseline", server.api);

    // Idle for many idle-advance periods (the pipeline ticks every 250 ms).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let idle = get_json(&baseline_url).await.unwrap();
    assert_eq!(idle["state"], "learning", "{idle}");
    assert!(idle["learning_started"].is_null(), "no traffic yet: {idle}");
    assert!(idle["watermark"].is_null(), "no event time yet: {idle}");

    replay_scenario(scenario.path(), server.http);

    // 35 min of event time against a 20 min period: learning ends inside the traffic.
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        let status = get_json(&baseline_url).await.unwrap();
        if status["state"] == "detecting" {
            break status;
        }
        assert!(Instant::now() < deadline, "learning never ended: {status}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let learning_ended = time(&status["learning_ends"], "learning_ends");
    // Calls reach the engine in event-time order, so learning starts at the earliest call
    // and lasts the period (replay moved the scenario by whole days to end before now).
    let learned_ms = (learning_ended - traffic_starts).num_milliseconds() % 86_400_000;
    let period_ms = 20 * 60 * 1000;
    assert!(
        (period_ms..period_ms + 5_000).contains(&learned_ms),
        "learned {learned_ms} ms of event time from the traffic's start {traffic_starts} (ended {learning_ended})"
    );

    // Only the attack alerts, after learning: nothing from the learning period.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let alerts = get_json(&format!("http://{}/api/v1/alerts", server.api))
        .await
        .unwrap();
    let alerts = alerts["alerts"].as_array().unwrap();
    assert!(!alerts.is_empty(), "the attack alerted");
    for alert in alerts {
        let first_seen = time(&alert["first_seen"], "first_seen");
        assert!(
            first_seen >= learning_ended,
            "alert from the learning period: {alert}"
        );
    }
    drop(server);
}
