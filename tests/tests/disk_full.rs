//! A full disk, for real: the data dir is a small tmpfs, filled by a filler file while
//! `eastwest serve` runs. Alerts raised then cannot be stored: `/readyz` answers 503,
//! the failures are counted in `/metrics` and the alerts wait in the spool. Once the
//! filler is gone the process is ready again and the alerts are stored. An alert spooled
//! when the process is killed is stored by the next start.
//!
//! Mounting needs root; without it (or without tmpfs) the test prints why and passes.

mod otlp_support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use otlp_support::*;
use serde_json::{Value, json};

/// Unmounts on drop, so a failing test leaves no mount behind.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// `None` (with the reason printed) when a tmpfs cannot be mounted here.
    fn mount(size: &str) -> Option<Tmpfs> {
        let uid = Command::new("id").arg("-u").output().ok()?;
        if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
            eprintln!("SKIPPED disk_full: mounting a tmpfs needs root");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output();
        match out {
            Ok(out) if out.status.success() => Some(Tmpfs { dir }),
            Ok(out) => {
                eprintln!(
                    "SKIPPED disk_full: mount -t tmpfs failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("SKIPPED disk_full: cannot run mount: {e}");
                None
            }
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount")
            .arg(self.dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            // Still busy (a killed child's files): detach it now, it goes when released.
            let _ = Command::new("umount")
                .arg("-l")
                .arg(self.dir.path())
                .status();
        }
    }
}

/// Writes `path` until the file system has no room left.
fn fill(path: &Path) {
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0xa5u8; 1 << 20];
    for size in [1 << 20, 4096, 1] {
        while f.write_all(&chunk[..size]).is_ok() {}
    }
    let _ = f.sync_all();
}

/// An OTLP/JSON trace: `source` serves `GET /` and calls an admin route of
/// `destination` (uninstrumented): a sensitive-endpoint alert, baseline or not.
fn trace(source: &str, destination: &str, seed: u64) -> Value {
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap();
    let attr = |k: &str, v: &str| json!({"key": k, "value": {"stringValue": v}});
    let trace_id = format!("{:016x}{:016x}", now as u64, seed);
    let root = format!("{:016x}", seed * 2 + 1);
    let child = format!("{:016x}", seed * 2 + 2);
    json!({"resourceSpans": [{
        "resource": {"attributes": [attr("service.name", source)]},
        "scopeSpans": [{"spans": [
            {
                "traceId": trace_id, "spanId": root, "name": "GET /", "kind": 2,
                "startTimeUnixNano": (now - 2_000_000).to_string(),
                "endTimeUnixNano": now.to_string(),
                "attributes": [attr("http.request.method", "GET"), attr("http.route", "/")]
            },
            {
                "traceId": trace_id, "spanId": child, "parentSpanId": root, "name": "GET",
                "kind": 3,
                "startTimeUnixNano": (now - 1_000_000).to_string(),
                "endTimeUnixNano": (now - 500_000).to_string(),
                "attributes": [
                    attr("http.request.method", "GET"),
                    attr("server.address", destination),
                    attr("url.full", &format!("http://{destination}/admin/users/1"))
                ]
            }
        ]}]
    }]})
}

struct Api {
    client: reqwest::Client,
    serving: Serving,
}

impl Api {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.serving.api)
    }

    async fn send(&self, body: Value) {
        let resp = self
            .client
            .post(format!("http://{}/v1/traces", self.serving.http))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "export: {}", resp.status());
    }

    async fn ready(&self) -> bool {
        reqwest::get(self.url("/readyz"))
            .await
            .is_ok_and(|r| r.status().is_success())
    }

    async fn metric(&self, name: &str) -> f64 {
        let text = reqwest::get(self.url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("{name} not in /metrics"))
    }

    /// Edges (source service → destination service) of the stored alerts.
    async fn alerted_edges(&self) -> Vec<(String, String)> {
        let body = get_json(&self.url("/api/v1/alerts?limit=1000"))
            .await
            .unwrap();
        body["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    a["source"]["service"].as_str().unwrap_or("").to_string(),
                    a["destination"]["service"]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                )
            })
            .collect()
    }

    async fn end_learning(&self) {
        let resp = self
            .client
            .post(self.url("/api/v1/baseline/detect"))
            .header("x-eastwest-request", "1")
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "detect: {}", resp.status());
    }
}

async fn eventually<F: std::future::Future<Output = bool>>(
    what: &str,
    mut check: impl FnMut() -> F,
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn start(data_dir: &Path, config: &Path) -> Api {
    let serving = serve_on_free_ports(
        data_dir,
        &[
            "--config",
            config.to_str().unwrap(),
            "--learning-period",
            "1h",
        ],
    )
    .await
    .unwrap();
    Api {
        client: reqwest::Client::new(),
        serving,
    }
}

fn edge(s: &str, d: &str) -> (String, String) {
    (s.to_string(), d.to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_fails_readiness_spools_alerts_and_recovers() {
    let Some(tmpfs) = Tmpfs::mount("40m") else {
        return;
    };
    let data = tmpfs.path();
    let filler: PathBuf = data.join("filler");
    let config_dir = tempfile::tempdir().unwrap();
    let config = config_dir.path().join("eastwest.toml");
    std::fs::write(
        &config,
        "[storage]\nalert_spool_bytes = 1048576\nhistory_flush_interval = \"1s\"\n",
    )
    .unwrap();

    let api = start(data, &config).await;
    api.end_learning().await;
    assert!(data.join("alerts.spool").is_file());

    // The disk fills; an alert is raised.
    fill(&filler);
    api.send(trace("frontend", "vault", 1)).await;
    eventually("/readyz is 503", || async { !api.ready().await }).await;
    eventually("the alert is spooled", || async {
        api.metric("eastwest_alert_spool_alerts").await >= 1.0
    })
    .await;
    assert_eq!(api.metric("eastwest_alert_store_write_failing").await, 1.0);
    assert!(api.metric("eastwest_alert_store_write_errors_total").await >= 1.0);
    assert_eq!(api.metric("eastwest_alerts_at_risk").await, 0.0);
    eventually("the history failure is counted", || async {
        api.metric("eastwest_history_write_errors_total").await >= 1.0
    })
    .await;
    assert!(
        api.alerted_edges().await.is_empty(),
        "stored on a full disk?"
    );

    // Space returns: ready again, the alert stored, the spool empty.
    std::fs::remove_file(&filler).unwrap();
    eventually("/readyz is 200 again", || async { api.ready().await }).await;
    eventually("the alert is stored", || async {
        api.alerted_edges()
            .await
            .contains(&edge("frontend", "vault"))
    })
    .await;
    assert_eq!(api.metric("eastwest_alert_spool_alerts").await, 0.0);
    assert_eq!(api.metric("eastwest_alert_store_write_failing").await, 0.0);
    assert_eq!(api.metric("eastwest_history_write_failing").await, 0.0);

    // Full again, another alert, and the process is killed before space returns.
    fill(&filler);
    api.send(trace("frontend", "vault-replica", 2)).await;
    eventually("/readyz is 503", || async { !api.ready().await }).await;
    eventually("the second alert is spooled", || async {
        api.metric("eastwest_alert_spool_alerts").await >= 1.0
    })
    .await;
    drop(api); // SIGKILL
    std::fs::remove_file(&filler).unwrap();

    // The next start stores what the spool held.
    let api = start(data, &config).await;
    eventually("the spooled alert is stored after the restart", || async {
        api.alerted_edges()
            .await
            .contains(&edge("frontend", "vault-replica"))
    })
    .await;
    let Api { mut serving, .. } = api;
    stop_gracefully(&mut serving.child).unwrap();

    // Both are in the SQLite file.
    let store = eastwest_api::AlertStore::open(data).unwrap();
    let stored: Vec<(String, String)> = store
        .list_alerts(&eastwest_api::store::AlertFilter {
            limit: 1000,
            ..Default::default()
        })
        .unwrap()
        .alerts
        .into_iter()
        .map(|a| {
            (
                a.source.service.into(),
                a.destination.map(|d| d.service).unwrap_or_default().into(),
            )
        })
        .collect();
    for e in [edge("frontend", "vault"), edge("frontend", "vault-replica")] {
        assert!(stored.contains(&e), "{e:?} not in {stored:?}");
    }
    drop(store);
}
