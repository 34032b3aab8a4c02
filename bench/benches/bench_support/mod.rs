//! What the benches that drive the release binary share.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Kills the child on drop so a failing bench leaves nothing running.
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The release `eastwest` (`EASTWEST_RELEASE_BIN`, else the target dir's).
pub fn release_bin() -> PathBuf {
    if let Some(b) = std::env::var_os("EASTWEST_RELEASE_BIN") {
        return b.into();
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let bin = target.join("release/eastwest");
    assert!(
        bin.is_file(),
        "{} missing: run `cargo build --release --bin eastwest` first (or set EASTWEST_RELEASE_BIN)",
        bin.display()
    );
    bin
}

/// A gRPC channel to a loopback port.
pub async fn connect(port: u16) -> Result<tonic::transport::Channel, tonic::transport::Error> {
    tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect()
        .await
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `eastwest gen benign-surge` at 50 traces/s into `out`.
pub fn generate(bin: &Path, learning: &str, attack: &str, out: &Path) {
    let status = Command::new(bin)
        .args(["gen", "benign-surge", "--learning", learning])
        .args(["--attack", attack, "--rate", "50", "--out"])
        .arg(out)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "eastwest gen failed");
}

/// A running `eastwest serve` on free loopback ports.
pub struct Served {
    /// Stops the server when the bench ends; only the CPU bench reads it (its pid).
    #[allow(dead_code, reason = "each bench compiles this module on its own")]
    pub process: Guard,
    pub grpc: u16,
    pub api: u16,
}

/// Starts `serve` with its data in `data_dir` and `args` added, and waits until it is
/// ready.
pub async fn serve(
    bin: &Path,
    data_dir: &Path,
    args: impl IntoIterator<Item = impl AsRef<OsStr>>,
) -> Served {
    let (grpc, http, api) = (free_port(), free_port(), free_port());
    let process = Guard(
        Command::new(bin)
            .arg("serve")
            .args(["--otlp-grpc", &format!("127.0.0.1:{grpc}")])
            .args(["--otlp-http", &format!("127.0.0.1:{http}")])
            .args(["--api", &format!("127.0.0.1:{api}")])
            .args(args)
            .arg("--data-dir")
            .arg(data_dir)
            .env("EASTWEST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while reqwest::get(format!("http://127.0.0.1:{api}/readyz"))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "serve did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Served { process, grpc, api }
}
