# Sourced by the table scripts: BIN is their first argument, else $EASTWEST_BIN, else
# target/release/eastwest, else the debug build (under $CARGO_TARGET_DIR if set).
BIN=${1:-${EASTWEST_BIN:-}}
if [[ -z "$BIN" ]]; then
  for b in target/release/eastwest "${CARGO_TARGET_DIR:-target}/debug/eastwest"; do
    [[ -x "$b" ]] && BIN=$b && break
  done
fi
[[ -x "$BIN" ]] || { echo "no eastwest binary (build it or pass its path)" >&2; exit 1; }
