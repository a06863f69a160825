#!/usr/bin/env bash
# The Python side of the benchmarks (FastAPI baseline, sentence-transformers, plots) in its own
# venv, from bench/requirements.txt; idempotent (reinstalls only when the file changed).
# torch comes from PyPI (its Linux wheel carries CUDA libraries: several GB, used on CPU here).
set -euo pipefail
VENV="${BENCH_VENV:-$HOME/.cache/stoa/bench-venv}"
REQ="$(dirname "$0")/requirements.txt"
STAMP="$VENV/.requirements.sha256"
want=$(sha256sum "$REQ" | cut -d' ' -f1)
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
  echo "== bench: pip install -r bench/requirements.txt into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQ"
  echo "$want" > "$STAMP"
fi
