#!/usr/bin/env bash
# The whole test suite: Rust unit + end-to-end tests, then the dashboard's browser tests.
# Prerequisites (installed by .ci/run): chromium, prometheus-alertmanager, npm, and the
# Python venv from scripts/setup-test-env.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/eastwest-target}"

cargo fmt --all --check

# End-to-end tests start the real binary: build it first.
cargo build --bin eastwest
export EASTWEST_BIN="$CARGO_TARGET_DIR/debug/eastwest"

cargo test --workspace --no-fail-fast
(cd web && npm test)
