//! `eastwest demo` for a bounded time: the attack's alerts must appear on stdout and in
//! the API.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use eastwest_tests::{eastwest_bin, free_port};

#[test]
fn demo_shows_the_attack_alerts() {
    let data = tempfile::tempdir().unwrap();
    let api = format!("127.0.0.1:{}", free_port());
    let mut child = Command::new(eastwest_bin())
        .args(["demo", "--duration", "120s"])
        .args(["--otlp-grpc", &format!("127.0.0.1:{}", free_port())])
        .args(["--otlp-http", &format!("127.0.0.1:{}", free_port())])
        .args(["--api", &api])
        .arg("--data-dir")
        .arg(data.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });

    let deadline = Instant::now() + Duration::from_secs(110);
    let mut lines = Vec::new();
    let mut kinds = std::collections::BTreeSet::new();
    while Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(500)) {
            Ok(line) => {
                if let Some(rest) = line.strip_prefix("ALERT [")
                    && let Some(kind) = rest.split_whitespace().nth(1)
                {
                    kinds.insert(kind.to_string());
                }
                lines.push(line);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if kinds.contains("sensitive_endpoint") && kinds.contains("new_edge") {
            break;
        }
    }

    let alerts: serde_json::Value =
        reqwest::blocking_get(&format!("http://{api}/api/v1/alerts?limit=100"));
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        lines.iter().any(|l| l.contains("dashboard at http://")),
        "no dashboard URL printed:\n{}",
        lines.join("\n")
    );
    assert!(
        kinds.contains("sensitive_endpoint"),
        "no sensitive_endpoint alert printed; kinds {kinds:?}\n{}",
        lines.join("\n")
    );
    assert!(
        kinds.contains("new_edge"),
        "no new_edge alert printed; kinds {kinds:?}"
    );
    let stored = alerts["alerts"].as_array().map(Vec::len).unwrap_or(0);
    assert!(
        stored >= kinds.len(),
        "API holds {stored} alerts, fewer than the {} kinds printed",
        kinds.len()
    );
}

mod reqwest {
    /// Minimal blocking GET over a fresh runtime (the test itself is synchronous).
    pub fn blocking_get(url: &str) -> serde_json::Value {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async { ::reqwest::get(url).await.unwrap().json().await.unwrap() })
    }
}
