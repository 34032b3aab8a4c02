//! Alerts the API returned survive `kill -9` of the process that stored them.
//!
//! The test re-executes its own binary as a child (selected by an environment
//! variable): the child serves the API over a store in a shared directory, publishes
//! alerts and an ack, and waits to be killed. The parent reads the alert through the
//! child's API, SIGKILLs it, reopens the store and serves it again.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Server, alert, incident};
use eastwest_api::ApiConfig;
use eastwest_model::{AlertKind, Severity};
use serde_json::Value;

const CHILD_DIR: &str = "EASTWEST_API_CRASH_CHILD_DIR";

/// In the child: serve, publish, print the address, then wait to be killed.
#[tokio::test]
async fn crash_child() {
    let Some(dir) = std::env::var_os(CHILD_DIR) else {
        return;
    };
    let s = Server::start(std::path::Path::new(&dir), ApiConfig::default(), vec![]).await;
    s.publish(
        vec![
            alert("k1", AlertKind::IdentityMismatch, Severity::Critical, 7),
            alert("k2", AlertKind::NewEdge, Severity::Low, 8),
        ],
        vec![incident("inc-k", &["k1", "k2"])],
    )
    .await;
    let r = s
        .client
        .post(s.url("/api/v1/alerts/k1/ack"))
        .json(&serde_json::json!({"by": "bob"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    println!("LISTENING {}", s.base);
    // Keep publishing updates so the kill lands mid-stream.
    for i in 0.. {
        let mut a = alert("k2", AlertKind::NewEdge, Severity::Low, 8 + i);
        a.count = 1 + i as u64;
        s.state.sink().publish(vec![a], vec![]);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn alerts_survive_kill_9() {
    if std::env::var_os(CHILD_DIR).is_some() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            // libtest prints "test crash_child ... " on the same line first.
            if let Some((_, base)) = line.split_once("LISTENING ") {
                let _ = tx.send(base.trim().to_string());
            }
        }
    });
    let base = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("child did not start");
    let client = reqwest::Client::new();
    let before: Value = client
        .get(format!("{base}/api/v1/alerts/k1"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(before["state"], "acked");
    let k2_before: Value = client
        .get(format!("{base}/api/v1/alerts/k2"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;

    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let s = Server::start(dir.path(), ApiConfig::default(), vec![]).await;
    let (code, after) = s.get_json("/api/v1/alerts/k1").await;
    assert_eq!(code, 200);
    assert_eq!(after["kind"], "identity_mismatch");
    assert_eq!(after["state"], "acked");
    assert_eq!(after["history"][0]["by"], "bob");
    let (_, k2) = s.get_json("/api/v1/alerts/k2").await;
    assert!(
        k2["count"].as_u64().unwrap() >= k2_before["count"].as_u64().unwrap(),
        "no committed update lost"
    );
    let (code, inc) = s.get_json("/api/v1/incidents/inc-k").await;
    assert_eq!(code, 200);
    assert_eq!(inc["alerts"].as_array().unwrap().len(), 2);
    s.stop().await;
}
