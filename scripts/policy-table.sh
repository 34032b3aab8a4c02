#!/usr/bin/env bash
# The policy tables of docs/POLICY.md and the README: `eastwest policy eval` on each
# built-in mesh (rules from the learning window, every dialect round-tripped, then
# backtested on the learning window, the normal calls after it and each attack's
# calls). Learning-window calls a dialect denies are named on stderr.
# Usage: scripts/policy-table.sh [BIN] [MESH…] (default: target/release/eastwest, else
# the debug build; every mesh). SCENARIOS="a b" limits the scenarios.
set -euo pipefail
# shellcheck source=scripts/eastwest-bin.sh
source "$(dirname "$0")/eastwest-bin.sh"
shift || true
meshes=("${@:-boutique trainticket large}")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The large mesh's shutdown drains ~1,200 services' windows: a debug build needs longer
# than the default grace.
printf '[pipeline]\nshutdown_grace = "15m"\n' >"$work/grace.toml"
for mesh in ${meshes[*]}; do
  args=(policy eval --topology "$mesh" --config "$work/grace.toml")
  for s in ${SCENARIOS:-}; do args+=(--scenario "$s"); done
  "$BIN" "${args[@]}"
  echo
done
