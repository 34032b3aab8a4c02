#!/usr/bin/env bash
# Blast radius before/after for the built-in meshes (docs/POSTURE.md): for each topology,
# generate the admin-endpoint scenario, replay it into a fresh `eastwest serve`, stop it,
# and print `eastwest posture --format table`. Usage: scripts/posture-table.sh [BIN]
# (default: target/release/eastwest, else the debug build).
set -euo pipefail
# shellcheck source=scripts/eastwest-bin.sh
source "$(dirname "$0")/eastwest-bin.sh"
LEARNING=${LEARNING:-30m}
ATTACK=${ATTACK:-10m}
work=$(mktemp -d)
trap 'kill "${pid:-}" 2>/dev/null || true; rm -rf "$work"' EXIT
port=$((20000 + RANDOM % 20000))
for topo in boutique trainticket large; do
  "$BIN" gen admin-endpoint --topology "$topo" --learning "$LEARNING" --attack "$ATTACK" \
    --out "$work/$topo" >/dev/null
  data="$work/data-$topo"
  EASTWEST_LOG=warn "$BIN" serve --data-dir "$data" --learning-period "$LEARNING" \
    --otlp-grpc "127.0.0.1:$port" --otlp-http "127.0.0.1:$((port + 1))" \
    --api "127.0.0.1:$((port + 2))" &
  pid=$!
  for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$((port + 2))/readyz" >/dev/null && break
    sleep 0.2
  done
  "$BIN" replay "$work/$topo" --to "http://127.0.0.1:$port" --quiet >&2
  sleep 5 # idle advance closes the last window; the history flushes every 10 s
  kill -TERM "$pid" && wait "$pid" || true
  pid=
  echo "### $topo"
  echo
  "$BIN" posture --data-dir "$data" --mesh "$topo" --top "${TOP:-8}"
  echo
done
