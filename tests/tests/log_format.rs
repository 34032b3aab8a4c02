//! Logs a machine can read (#18 item 6), through the real binary: with stderr piped, no
//! ANSI escape codes; with `--log-format json` (or `EASTWEST_LOG_FORMAT=json`) every line
//! on stderr is one JSON object a log collector can parse.

mod otlp_support;

use std::io::Read;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use otlp_support::{ChildGuard, StartError, eastwest_bin, free_addr, stop_gracefully, wait_ready};
use serde_json::Value;

/// A running `eastwest serve` whose stderr (a pipe, not a terminal) is being read.
struct Piped {
    child: ChildGuard,
    stderr: JoinHandle<String>,
    http: SocketAddr,
    api: SocketAddr,
    _data_dir: tempfile::TempDir,
}

/// Starts `eastwest serve` with `args` and `env` added and waits until it is ready.
async fn start_piped(args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<Piped> {
    let data_dir = tempfile::tempdir()?;
    // free_addr releases its port before eastwest binds it: retry on fresh ports if a
    // parallel test took one in between.
    for _ in 0..3 {
        let (grpc, http, api) = (free_addr(), free_addr(), free_addr());
        let mut child = Command::new(eastwest_bin())
            .arg("serve")
            .args(["--otlp-grpc", &grpc.to_string()])
            .args(["--otlp-http", &http.to_string()])
            .args(["--api", &api.to_string()])
            .arg("--data-dir")
            .arg(data_dir.path())
            .args(args)
            // info: the level operators run at, so there are lines to check.
            .env("EASTWEST_LOG", "info")
            .env_remove("EASTWEST_LOG_FORMAT")
            .env_remove("NO_COLOR")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("spawning eastwest serve")?;
        let stderr = read_all(child.stderr.take().expect("stderr is piped"));
        let mut child = ChildGuard(child);
        match wait_ready(api, &mut child).await {
            Ok(()) => {
                return Ok(Piped {
                    child,
                    stderr,
                    http,
                    api,
                    _data_dir: data_dir,
                });
            }
            Err(StartError::Exited(_)) => {
                let out = stderr.join().expect("reader thread");
                if !out.contains("Address already in use") {
                    bail!("eastwest exited before ready:\n{out}");
                }
            }
            Err(StartError::Other(e)) => return Err(e),
        }
    }
    bail!("eastwest did not start in 3 attempts")
}

/// Everything `eastwest serve` wrote to stderr from start to an orderly SIGTERM
/// shutdown, with a request to the API in between.
async fn serve_stderr(args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<String> {
    let mut serving = start_piped(args, env).await?;
    reqwest::get(format!("http://{}/healthz", serving.api))
        .await?
        .error_for_status()?;
    stop_gracefully(&mut serving.child)?;
    Ok(serving.stderr.join().expect("reader thread"))
}

fn read_all(mut from: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = from.read_to_end(&mut bytes);
        String::from_utf8(bytes).expect("stderr is UTF-8")
    })
}

fn assert_no_escape_codes(out: &str) {
    assert!(
        !out.contains("\x1b["),
        "ANSI escape codes on a piped stderr:\n{out:?}"
    );
}

/// Each line is a JSON object with an RFC 3339 timestamp, a level and the event's fields
/// (its message among them); returns the parsed lines.
fn parse_json_lines(out: &str) -> Vec<Value> {
    let lines: Vec<Value> = out
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}"))
        })
        .collect();
    for line in &lines {
        let ts = line["timestamp"]
            .as_str()
            .unwrap_or_else(|| panic!("no timestamp: {line}"));
        chrono::DateTime::parse_from_rfc3339(ts)
            .unwrap_or_else(|e| panic!("timestamp {ts:?} is not RFC 3339 ({e}): {line}"));
        let level = line["level"]
            .as_str()
            .unwrap_or_else(|| panic!("no level: {line}"));
        assert!(
            ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"].contains(&level),
            "level {level:?}: {line}"
        );
        assert!(
            line["fields"]["message"].is_string(),
            "no fields.message: {line}"
        );
    }
    lines
}

fn message<'a>(lines: &'a [Value], text: &str) -> Option<&'a Value> {
    lines.iter().find(|l| l["fields"]["message"] == text)
}

#[tokio::test]
async fn text_logs_on_a_pipe_carry_no_colour_codes() -> anyhow::Result<()> {
    let out = serve_stderr(&[], &[]).await?;
    // The run logged what a run logs, in text: start and shutdown.
    assert!(out.contains("eastwest serving"), "{out}");
    assert!(out.contains("shutting down"), "{out}");
    assert!(out.contains("eastwest: OTLP gRPC on"), "{out}");
    assert_no_escape_codes(&out);
    assert!(
        serde_json::from_str::<Value>(out.lines().next().unwrap_or("")).is_err(),
        "text is the default: {out}"
    );
    Ok(())
}

#[tokio::test]
async fn json_logs_parse_line_by_line() -> anyhow::Result<()> {
    let out = serve_stderr(&["--log-format", "json"], &[]).await?;
    assert_no_escape_codes(&out);
    let lines = parse_json_lines(&out);
    let serving = message(&lines, "eastwest serving").unwrap_or_else(|| panic!("{out}"));
    assert_eq!(serving["level"], "INFO");
    // Structured fields stay fields, not text inside the message.
    assert!(serving["fields"]["api_addr"].is_string(), "{serving}");
    // The addresses `serve` prints for a person are a log event here.
    let listening = message(&lines, "eastwest: listening").unwrap_or_else(|| panic!("{out}"));
    assert!(
        listening["fields"]["dashboard"]
            .as_str()
            .is_some_and(|d| d.starts_with("http://127.0.0.1:")),
        "{listening}"
    );
    assert!(
        lines.iter().any(|l| l["fields"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("shutting down"))),
        "{out}"
    );
    Ok(())
}

/// `EASTWEST_*` variables override flags, as for every setting.
#[tokio::test]
async fn the_environment_variable_overrides_the_flag() -> anyhow::Result<()> {
    let out = serve_stderr(
        &["--log-format", "text"],
        &[("EASTWEST_LOG_FORMAT", "json")],
    )
    .await?;
    let lines = parse_json_lines(&out);
    assert!(message(&lines, "eastwest serving").is_some(), "{out}");
    Ok(())
}

/// A failed stage (a panic in the pipeline) and the error serve exits with are log
/// events too: the lines an operator most needs from a crashed pod.
#[tokio::test]
async fn a_crash_is_logged_as_json_too() -> anyhow::Result<()> {
    let mut serving = start_piped(
        &["--log-format", "json"],
        &[("EASTWEST_FAILPOINT", "pipeline")],
    )
    .await?;
    // One span reaches the pipeline, which then panics.
    let now = chrono::Utc::now()
        .timestamp_nanos_opt()
        .unwrap()
        .to_string();
    let span = serde_json::json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "cart"}}]},
        "scopeSpans": [{"spans": [{
            "traceId": "0102030405060708090a0b0c0d0e0f10", "spanId": "0102030405060708",
            "name": "GET /", "kind": 3, "startTimeUnixNano": now, "endTimeUnixNano": now
        }]}]
    }]});
    reqwest::Client::new()
        .post(format!("http://{}/v1/traces", serving.http))
        .header("content-type", "application/json")
        .body(span.to_string())
        .send()
        .await?
        .error_for_status()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = serving.child.0.try_wait()? {
            break status;
        }
        anyhow::ensure!(Instant::now() < deadline, "serve did not exit");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(!status.success(), "{status}");
    let out = serving.stderr.join().expect("reader thread");
    let lines = parse_json_lines(&out);
    let panic = message(&lines, "panic").unwrap_or_else(|| panic!("{out}"));
    assert_eq!(panic["level"], "ERROR");
    assert!(
        panic["fields"]["panic"]
            .as_str()
            .is_some_and(|p| p.contains("EASTWEST_FAILPOINT")),
        "{panic}"
    );
    let last = lines.last().unwrap();
    assert_eq!(last["fields"]["message"], "eastwest failed", "{out}");
    assert_eq!(last["level"], "ERROR");
    assert!(last["fields"]["error"].is_string(), "{last}");
    Ok(())
}

#[test]
fn an_unknown_format_is_refused_before_anything_starts() {
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let out = Command::new(eastwest_bin())
            .args(args)
            .envs(env.iter().copied())
            // Were the format accepted, serve would stop here, not listen.
            .args(["--config", "/nonexistent/eastwest.toml"])
            .output()
            .expect("running eastwest");
        assert!(!out.status.success(), "{args:?} {env:?} succeeded");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    // The flag is global: before or after the subcommand.
    let err = run(&["--log-format", "yaml", "serve"], &[]);
    assert!(err.contains("yaml") && err.contains("json"), "{err}");
    let err = run(&["serve", "--log-format", "yaml"], &[]);
    assert!(err.contains("yaml") && err.contains("json"), "{err}");
    let err = run(&["serve"], &[("EASTWEST_LOG_FORMAT", "yaml")]);
    assert!(err.contains("EASTWEST_LOG_FORMAT"), "{err}");
}
