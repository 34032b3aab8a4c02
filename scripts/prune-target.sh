#!/usr/bin/env bash
# Removes stale build artifacts of this workspace's own crates from the shared target dir.
# Every change of flags or features leaves another copy of each test binary behind, and
# on a long-lived CI disk those copies, not dependencies, are what fill it. Dependencies'
# artifacts are kept: they are reused across clones and costly to rebuild.
# Usage: scripts/prune-target.sh [max-age-days]   (default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-$HOME/.cache/eastwest-target}"
max_age_days="${1:-3}"
[ -d "$target" ] || exit 0

# Artifact file names start with the target name, `-` spelled `_` (libs add `lib`).
names=$(cargo metadata --no-deps --format-version 1 | python3 -c '
import json, sys
meta = json.load(sys.stdin)
print("\n".join(sorted({t["name"].replace("-", "_") for p in meta["packages"] for t in p["targets"]})))')

before=$(du -sm "$target" | cut -f1)
for profile_dir in "$target"/debug "$target"/release; do
  for dir in "$profile_dir/deps" "$profile_dir/examples"; do
    [ -d "$dir" ] || continue
    for name in $names; do
      find "$dir" -maxdepth 1 -type f \( -name "${name}-*" -o -name "lib${name}-*" \) \
        -mtime "+${max_age_days}" -delete
    done
  done
  rm -rf "$profile_dir/incremental"
done
after=$(du -sm "$target" | cut -f1)
echo "prune-target: $target ${before} MiB → ${after} MiB; $(df -h --output=avail "$target" | tail -1 | tr -d ' ') free"
