//! The OpenTelemetry Python SDK's protobuf classes parse generated `traces.pb` files.
//! Needs the venv from `scripts/setup-test-env.sh` (`EASTWEST_VENV`, default
//! `~/.cache/eastwest-venv`) with `opentelemetry-proto` installed.

use std::path::PathBuf;
use std::process::Command;

use eastwest_datasets::{GenOptions, generate};

#[test]
fn python_protobuf_classes_parse_generated_traces() {
    let venv = std::env::var("EASTWEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/eastwest-venv")
        });
    let python = venv.join("bin/python");
    assert!(
        python.exists(),
        "missing {} (run scripts/setup-test-env.sh)",
        python.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let opts = GenOptions {
        learning: std::time::Duration::from_secs(600),
        attack: std::time::Duration::from_secs(120),
        ..Default::default()
    };
    let summary = generate("identity-spoof", &opts, dir.path()).unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/py/check_otlp.py");
    let out = Command::new(python)
        .arg(script)
        .arg(dir.path().join("traces.pb"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let parsed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(parsed["spans"].as_u64(), Some(summary.meta.spans));
    assert_eq!(parsed["requests"].as_u64(), Some(summary.meta.requests));
    assert!(
        parsed["services"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == "paymentservice.boutique")
    );
}
