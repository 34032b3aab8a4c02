//! `eastwest serve` exactly as a new user starts it — no flags — accepts traces from the
//! Python SDK on the default OTLP ports and `/api/v1/stats` shows them. Uses the fixed
//! ports 4317/4318/4320, so it is the only test in this binary (one process, one test).

mod otlp_support;

use std::process::Command;
use std::time::{Duration, Instant};

use otlp_support::*;

#[tokio::test]
async fn serve_with_no_flags_accepts_sdk_traces_on_default_ports() {
    venv();
    for port in [4317, 4318, 4320] {
        assert!(
            std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
            "default port {port} is taken by another process; this test needs it free"
        );
    }
    let cwd = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(eastwest_bin());
    cmd.arg("serve").current_dir(cwd.path());
    let mut eastwest = spawn_quiet(cmd).unwrap();
    let api: std::net::SocketAddr = "127.0.0.1:4320".parse().unwrap();
    wait_ready(api, &mut eastwest).await.unwrap();

    for (protocol, endpoint) in [
        ("grpc", "http://127.0.0.1:4317"),
        ("http", "http://127.0.0.1:4318"),
    ] {
        tokio::task::spawn_blocking(move || emit_trace_with_tick(protocol, endpoint, "0"))
            .await
            .unwrap()
            .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let stats = get_json("http://127.0.0.1:4320/api/v1/stats")
            .await
            .unwrap();
        if stats["spans"].as_u64() == Some(8) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "stats never showed the 8 spans sent: {stats}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        cwd.path().join("eastwest-data").is_dir(),
        "default data dir ./eastwest-data was created"
    );
}
