//! Delivery to a real Prometheus Alertmanager (Debian package `prometheus-alertmanager`),
//! checked through Alertmanager's own API.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Server, alert};
use eastwest_api::{ApiConfig, WebhookConfig, WebhookKind};
use eastwest_model::{AlertKind, Severity};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

const BINARY: &str = "/usr/bin/prometheus-alertmanager";

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_alertmanager(dir: &Path, port: u16) -> KillOnDrop {
    assert!(
        Path::new(BINARY).exists(),
        "{BINARY} is missing: install the Debian package (apt-get install -y prometheus-alertmanager)"
    );
    let config = dir.join("alertmanager.yml");
    std::fs::write(
        &config,
        "route:\n  receiver: blackhole\nreceivers:\n  - name: blackhole\n",
    )
    .unwrap();
    let child = Command::new(BINARY)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.path={}", dir.join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start alertmanager");
    KillOnDrop(child)
}

#[tokio::test]
async fn alert_shows_up_in_a_real_alertmanager() {
    let am_dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _am = start_alertmanager(am_dir.path(), port);
    let am_url = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = client.get(format!("{am_url}/-/ready")).send().await
            && r.status().is_success()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "alertmanager did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let dir = tempfile::tempdir().unwrap();
    let hook = WebhookConfig {
        name: "am".into(),
        kind: WebhookKind::Alertmanager,
        url: am_url.clone(),
        ..Default::default()
    };
    let config = ApiConfig {
        public_url: Some("https://eastwest.example".into()),
        trace_url_template: Some("https://jaeger.example/trace/{trace_id}".into()),
        ..Default::default()
    };
    let s = Server::start(dir.path(), config, vec![hook]).await;
    let cancel = CancellationToken::new();
    let worker = s.state.start_webhook_worker(cancel.clone());
    let mut a = alert("am-1", AlertKind::SensitiveEndpoint, Severity::High, 0);
    a.first_seen = chrono::Utc::now() - chrono::Duration::seconds(30);
    a.last_seen = chrono::Utc::now();
    a.evidence
        .insert("pattern".into(), serde_json::json!("cloud-metadata"));
    s.publish(vec![a], vec![]).await;

    let mut found = Value::Null;
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let alerts: Value = client
            .get(format!("{am_url}/api/v2/alerts"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if let Some(hit) = alerts
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["labels"]["alert_id"] == "am-1")
        {
            found = hit.clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(!found.is_null(), "alert never appeared in Alertmanager");
    let labels = &found["labels"];
    assert_eq!(labels["alertname"], "eastwest_sensitive_endpoint");
    assert_eq!(labels["severity"], "high");
    assert_eq!(labels["kind"], "sensitive_endpoint");
    assert_eq!(labels["source_service"], "cart");
    assert_eq!(labels["destination_service"], "users");
    assert_eq!(labels["namespace"], "shop");
    assert_eq!(labels["attack_techniques"], "T1210,T1552.005");
    let attack = found["annotations"]["attack"].as_str().unwrap();
    assert!(
        attack.contains(
            "T1552.005 Unsecured Credentials: Cloud Instance Metadata API (Credential Access)"
        ),
        "{attack}"
    );
    assert_eq!(
        found["annotations"]["trace_url"],
        "https://jaeger.example/trace/4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert!(
        found["annotations"]["summary"]
            .as_str()
            .unwrap()
            .contains("cart called users")
    );
    assert_eq!(
        found["generatorURL"],
        "https://eastwest.example/#/alerts/am-1"
    );
    assert_eq!(found["status"]["state"], "active");

    cancel.cancel();
    worker.await.unwrap();
    assert_eq!(
        s.state
            .metrics()
            .delivery_count("am", eastwest_api::DeliveryOutcome::Delivered),
        1
    );
    s.stop().await;
}
