//! Shared harness for the OTLP end-to-end tests: locate and start the real `eastwest`
//! binary on free ports, find the test venv, run the Python clients, poll the API.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use eastwest_model::Call;
use serde_json::Value;

pub use eastwest_tests::eastwest_bin;

/// The Python venv made by `scripts/setup-test-env.sh`.
pub fn venv() -> PathBuf {
    let venv = std::env::var_os("EASTWEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is set"))
                .join(".cache/eastwest-venv")
        });
    let python = venv.join("bin/python");
    let ok = python.is_file()
        && Command::new(&python)
            .args(["-c", "import opentelemetry.sdk, opentelemetry.exporter.otlp.proto.grpc, opentelemetry.exporter.otlp.proto.http, rotel"])
            .status()
            .is_ok_and(|s| s.success());
    assert!(
        ok,
        "the OTLP client venv at {} is missing or incomplete: run scripts/setup-test-env.sh \
         (or set EASTWEST_VENV to where it is)",
        venv.display()
    );
    venv
}

pub fn python() -> PathBuf {
    venv().join("bin/python")
}

/// The `rotel-agent` binary shipped inside the `rotel` wheel.
pub fn rotel_agent() -> PathBuf {
    let out = Command::new(python())
        .args([
            "-c",
            "import os, rotel; print(os.path.join(os.path.dirname(rotel.__file__), 'rotel-agent'))",
        ])
        .output()
        .expect("running the venv python");
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    assert!(
        path.is_file(),
        "rotel-agent not found at {}: run scripts/setup-test-env.sh",
        path.display()
    );
    path
}

pub fn py_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("py").join(name)
}

/// A free loopback port (bound, read, released: clients need a real port number).
pub fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// A ready `eastwest serve` and the addresses it listens on.
pub struct Serving {
    pub child: ChildGuard,
    pub grpc: SocketAddr,
    pub http: SocketAddr,
    pub api: SocketAddr,
}

/// Starts `eastwest serve` on free ports with `data_dir` and `extra_args`, and waits until
/// it is ready. It logs at `warn` unless `EASTWEST_LOG` is set.
///
/// `free_addr` releases its port before eastwest binds it, so a test running in parallel
/// can take it in between; eastwest then exits on the bind error, and the start is
/// retried on fresh ports.
pub async fn serve_on_free_ports(data_dir: &Path, extra_args: &[&str]) -> anyhow::Result<Serving> {
    serve_on_free_ports_with_env(data_dir, extra_args, &[]).await
}

/// [`serve_on_free_ports`] with extra environment variables.
pub async fn serve_on_free_ports_with_env(
    data_dir: &Path,
    extra_args: &[&str],
    env: &[(&str, &str)],
) -> anyhow::Result<Serving> {
    const ATTEMPTS: usize = 3;
    let mut last_exit = None;
    for _ in 0..ATTEMPTS {
        let (grpc, http, api) = (free_addr(), free_addr(), free_addr());
        let mut cmd = Command::new(eastwest_bin());
        cmd.arg("serve")
            .args(["--otlp-grpc", &grpc.to_string()])
            .args(["--otlp-http", &http.to_string()])
            .args(["--api", &api.to_string()])
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra_args)
            .envs(env.iter().copied());
        // Warnings and errors only, unless the test run sets its own level.
        if std::env::var_os("EASTWEST_LOG").is_none() {
            cmd.env("EASTWEST_LOG", "warn");
        }
        let mut child = spawn_quiet(cmd)?;
        match wait_ready(api, &mut child).await {
            Ok(()) => {
                return Ok(Serving {
                    child,
                    grpc,
                    http,
                    api,
                });
            }
            Err(StartError::Exited(error)) => last_exit = Some(error),
            Err(StartError::Other(error)) => return Err(error),
        }
    }
    Err(last_exit.expect("at least one attempt").context(format!(
        "eastwest exited before ready in {ATTEMPTS} attempts"
    )))
}

/// Kills the child on drop so a failing test leaves nothing running.
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub struct Eastwest {
    pub grpc: SocketAddr,
    pub http: SocketAddr,
    pub api: SocketAddr,
    pub data_dir: tempfile::TempDir,
    pub child: ChildGuard,
}

impl Eastwest {
    /// `eastwest serve` on free ports with a temporary data dir.
    pub async fn start() -> anyhow::Result<Eastwest> {
        let data_dir = tempfile::tempdir()?;
        let Serving {
            child,
            grpc,
            http,
            api,
        } = serve_on_free_ports(data_dir.path(), &[]).await?;
        Ok(Eastwest {
            grpc,
            http,
            api,
            data_dir,
            child,
        })
    }

    pub fn api_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.api)
    }

    pub async fn stats(&self) -> anyhow::Result<Value> {
        get_json(&self.api_url("/api/v1/stats")).await
    }

    /// Polls `/api/v1/calls/recent` until at least `n` calls of `trace_id` are there.
    pub async fn calls_of_trace(&self, trace_id: &str, n: usize) -> anyhow::Result<Vec<Call>> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let body = get_json(&self.api_url("/api/v1/calls/recent?limit=1000")).await?;
            let calls: Vec<Call> =
                serde_json::from_value(body["calls"].clone()).context("parsing calls")?;
            let mine: Vec<Call> = calls
                .into_iter()
                .filter(|c| c.trace_id == trace_id)
                .collect();
            if mine.len() >= n || Instant::now() > deadline {
                if mine.len() < n {
                    bail!(
                        "expected {n} calls of trace {trace_id} within 30s, got {mine:#?}\nstats: {}",
                        self.stats().await?
                    );
                }
                return Ok(mine);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// SIGTERM, then wait (up to 60 s) for an orderly exit; an error unless it exits 0.
pub fn stop_gracefully(child: &mut ChildGuard) -> anyhow::Result<()> {
    let pid = child.0.id().to_string();
    let sent = Command::new("kill").args(["-TERM", &pid]).status()?;
    anyhow::ensure!(sent.success(), "kill -TERM {pid} failed");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.0.try_wait()? {
            anyhow::ensure!(status.success(), "serve exited with {status}");
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "serve did not stop within 60s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn spawn_quiet(mut cmd: Command) -> anyhow::Result<ChildGuard> {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("spawning {cmd:?}"))?;
    Ok(ChildGuard(child))
}

pub async fn get_json(url: &str) -> anyhow::Result<Value> {
    let resp = reqwest::get(url)
        .await
        .with_context(|| format!("GET {url}"))?;
    let status = resp.status();
    let body = resp.text().await?;
    if !status.is_success() {
        bail!("GET {url}: {status}: {body}");
    }
    serde_json::from_str(&body).with_context(|| format!("GET {url}: not JSON: {body}"))
}

/// Why a start failed: the process died before it was ready (worth retrying on other
/// ports), or anything else.
#[derive(Debug)]
pub enum StartError {
    Exited(anyhow::Error),
    Other(anyhow::Error),
}

/// Waits until `GET /readyz` answers 200 (the binary binds every listener before it);
/// fails at once, with the exit status, if the process dies first.
pub async fn wait_ready(api: SocketAddr, child: &mut ChildGuard) -> Result<(), StartError> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let url = format!("http://{api}/readyz");
    loop {
        if let Ok(resp) = reqwest::get(&url).await
            && resp.status().is_success()
        {
            return Ok(());
        }
        match child.0.try_wait() {
            Ok(Some(status)) => {
                return Err(StartError::Exited(anyhow!(
                    "eastwest exited with {status} before becoming ready (its stderr is above)"
                )));
            }
            Ok(None) => {}
            Err(error) => return Err(StartError::Other(error.into())),
        }
        if Instant::now() > deadline {
            return Err(StartError::Other(anyhow!(
                "eastwest did not become ready on {url} within 30s"
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Event-time gap after the trace: past the normaliser's pairing TTL + entry wait (10 s + 5 s), so the
/// call to the uninstrumented redis is released while eastwest runs.
pub const TICK_AFTER_SECS: &str = "17";

/// Runs `tests/py/emit_trace.py` (with the event-time tick) and returns the trace id.
pub fn emit_trace(protocol: &str, endpoint: &str) -> anyhow::Result<String> {
    emit_trace_with_tick(protocol, endpoint, TICK_AFTER_SECS)
}

/// `tick_after_secs = "0"`: the four spans of the trace only, no tick.
pub fn emit_trace_with_tick(
    protocol: &str,
    endpoint: &str,
    tick_after_secs: &str,
) -> anyhow::Result<String> {
    let out: Output = Command::new(python())
        .arg(py_script("emit_trace.py"))
        .args([
            "--protocol",
            protocol,
            "--endpoint",
            endpoint,
            "--tick-after",
            tick_after_secs,
        ])
        .output()
        .context("running emit_trace.py")?;
    if !out.status.success() {
        bail!(
            "emit_trace.py failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let printed: Value = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "emit_trace.py printed {:?}",
            String::from_utf8_lossy(&out.stdout)
        )
    })?;
    Ok(printed["trace_id"]
        .as_str()
        .context("no trace_id printed")?
        .to_string())
}

/// One call reduced to what the tests assert: source, destination, method, route, entry.
pub fn shape(call: &Call) -> (String, String, String, String, Option<(String, String)>) {
    (
        call.source.key().into(),
        call.destination.key().into(),
        call.method.to_string(),
        call.route.to_string(),
        call.entry
            .as_ref()
            .map(|e| (e.service.to_string(), e.route.to_string())),
    )
}

/// Runs `tests/py/emit_access_log.py` and returns the request id of the logged line.
pub fn emit_access_log(protocol: &str, endpoint: &str) -> anyhow::Result<String> {
    let out: Output = Command::new(python())
        .arg(py_script("emit_access_log.py"))
        .args(["--protocol", protocol, "--endpoint", endpoint])
        .output()
        .context("running emit_access_log.py")?;
    if !out.status.success() {
        bail!(
            "emit_access_log.py failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let printed: Value = serde_json::from_slice(&out.stdout)?;
    Ok(printed["request_id"]
        .as_str()
        .context("no request_id printed")?
        .to_string())
}

impl Eastwest {
    /// Polls `/api/v1/calls/recent` until a call with this `x-request-id` is there.
    pub async fn calls_of_request(&self, request_id: &str) -> anyhow::Result<Vec<Call>> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let body = get_json(&self.api_url("/api/v1/calls/recent?limit=1000")).await?;
            let calls: Vec<Call> = serde_json::from_value(body["calls"].clone())?;
            let mine: Vec<Call> = calls
                .into_iter()
                .filter(|c| c.request_id.as_deref() == Some(request_id))
                .collect();
            if !mine.is_empty() {
                return Ok(mine);
            }
            if Instant::now() > deadline {
                bail!(
                    "no call with request id {request_id} within 30s; stats: {}",
                    self.stats().await?
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// `eastwest gen SCENARIO ARGS… --out DIR` into a new temporary directory.
pub fn generate_scenario(scenario: &str, args: &[&str]) -> tempfile::TempDir {
    try_generate(scenario, args).unwrap_or_else(|| panic!("{scenario} is not available"))
}

/// [`generate_scenario`], or `None` when the mesh cannot host the scenario.
pub fn try_generate(scenario: &str, args: &[&str]) -> Option<tempfile::TempDir> {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(eastwest_bin())
        .args(["gen", scenario])
        .args(args)
        .arg("--out")
        .arg(dir.path())
        .output()
        .unwrap();
    if out.status.success() {
        return Some(dir);
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("is not available on topology"),
        "{scenario}: {stderr}"
    );
    None
}

/// `eastwest replay DIR` to the OTLP/HTTP receiver at `http`, as fast as it goes.
pub fn replay_scenario(dir: &Path, http: SocketAddr) {
    let replay = Command::new(eastwest_bin())
        .arg("replay")
        .arg(dir)
        .args(["--to", &format!("http://{http}/v1/traces"), "--quiet"])
        .output()
        .unwrap();
    assert!(
        replay.status.success(),
        "{}",
        String::from_utf8_lossy(&replay.stderr)
    );
}

/// The alerts the API at `api` lists (up to 1,000).
pub async fn alerts(api: SocketAddr) -> Vec<Value> {
    let body = get_json(&format!("http://{api}/api/v1/alerts?limit=1000"))
        .await
        .unwrap();
    body["alerts"].as_array().unwrap().clone()
}

/// Polls the alerts at `api` until `pick` finds one (60 s at most).
pub async fn wait_for_alert(api: SocketAddr, what: &str, pick: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let alerts = alerts(api).await;
        if let Some(a) = alerts.iter().find(|a| pick(a)) {
            return a.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no alert {what} within 60 s; alerts: {alerts:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
