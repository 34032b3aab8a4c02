#!/usr/bin/env bash
# Creates the Python venv the end-to-end tests use: the OpenTelemetry Python SDK with
# its OTLP gRPC and HTTP exporters and protos, and the rotel collector (its wheel ships
# the `rotel-agent` binary). Idempotent, and quick when the venv is already complete
# (a stamp records the exact package set it was built with). Tests find it at
# $EASTWEST_VENV (default ~/.cache/eastwest-venv).
set -euo pipefail
VENV="${EASTWEST_VENV:-$HOME/.cache/eastwest-venv}"
PYTHON="${PYTHON:-python3}"
PACKAGES=(
    "opentelemetry-sdk==1.45.2"
    "opentelemetry-exporter-otlp-proto-grpc==1.45.2"
    "opentelemetry-exporter-otlp-proto-http==1.45.2"
    "opentelemetry-proto==1.45.2"
    "rotel==0.0.1a15"
)
STAMP="$VENV/.eastwest-packages"

if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "${PACKAGES[*]}" ]; then
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet "${PACKAGES[@]}"
    echo "${PACKAGES[*]}" >"$STAMP"
fi

ROTEL_AGENT="$("$VENV/bin/python" -c 'import os, rotel; print(os.path.join(os.path.dirname(rotel.__file__), "rotel-agent"))')"
"$ROTEL_AGENT" version >/dev/null
"$VENV/bin/python" -c 'import opentelemetry.sdk, opentelemetry.exporter.otlp.proto.grpc, opentelemetry.exporter.otlp.proto.http, opentelemetry.proto'
echo "test venv ready: $VENV (rotel-agent: $ROTEL_AGENT)"
