#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine as on CI: installs (or names) the
# prerequisites, checks formatting and lints, then runs the Rust unit and end-to-end tests
# and the dashboard's browser tests.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/eastwest-target}"

bash scripts/prereqs.sh

cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings

# End-to-end tests start the real binary: build it first.
cargo build --bin eastwest
export EASTWEST_BIN="$CARGO_TARGET_DIR/debug/eastwest"

cargo test --workspace --no-fail-fast
(cd web && npm test)
