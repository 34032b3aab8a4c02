#!/usr/bin/env bash
# Installs what the test suite needs on Debian, or names what is missing and stops:
# the Rust toolchain's rustfmt and clippy, chromium (dashboard browser tests),
# prometheus-alertmanager (webhook tests against the real Alertmanager), Node.js + npm
# (the dashboard build and its tests), python3-venv, and the Python OTLP clients
# (scripts/setup-test-env.sh). Idempotent: installs only what is absent.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v cargo >/dev/null || missing+=("cargo (a Rust toolchain: https://rustup.rs)")
if [ "${#missing[@]}" -gt 0 ]; then
  printf 'eastwest tests need: %s\n' "${missing[@]}" >&2
  exit 1
fi
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
  if command -v rustup >/dev/null; then
    rustup component add rustfmt clippy
  else
    echo "eastwest tests need the rustfmt and clippy components of the Rust toolchain" >&2
    exit 1
  fi
fi

need_apt=()
command -v chromium >/dev/null || need_apt+=(chromium)
[ -x /usr/bin/prometheus-alertmanager ] || need_apt+=(prometheus-alertmanager)
command -v npm >/dev/null || need_apt+=(nodejs npm)
python3 -c 'import ensurepip, venv' 2>/dev/null || need_apt+=(python3-venv)
if [ "${#need_apt[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    echo "eastwest tests need these Debian packages: ${need_apt[*]} (apt-get install them as root)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

# Python OTLP clients (OpenTelemetry SDK exporters, rotel collector) for end-to-end tests.
bash scripts/setup-test-env.sh
