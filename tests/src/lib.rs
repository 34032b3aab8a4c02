//! End-to-end tests live in `tests/`: they start the real `eastwest` binary and talk to
//! it with real clients. This library holds only what several of them share.
#![forbid(unsafe_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};

pub mod served;

/// The `eastwest` binary. Other crates' binaries are not built for this crate's tests,
/// so `scripts/test.sh` runs `cargo build --bin eastwest` first and sets `EASTWEST_BIN`.
pub fn eastwest_bin() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let mut candidates = Vec::new();
    if let Some(bin) = std::env::var_os("EASTWEST_BIN") {
        candidates.push(PathBuf::from(bin));
    }
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        candidates.push(PathBuf::from(dir).join("debug/eastwest"));
    }
    candidates.push(workspace.join("target/debug/eastwest"));
    match candidates.iter().find(|p| p.is_file()) {
        Some(bin) => bin.clone(),
        None => panic!(
            "the eastwest binary is missing (looked at {candidates:?}); build it first with \
             `cargo build --bin eastwest` (scripts/test.sh does) or set EASTWEST_BIN"
        ),
    }
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind an ephemeral port")
        .local_addr()
        .expect("local address")
        .port()
}
