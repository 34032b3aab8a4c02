//! What the benches that drive the release binary share.

use std::path::PathBuf;
use std::process::Child;

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

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
