#!/usr/bin/env bash
# A newcomer's first run, timed: clones this repository into an empty directory and runs
# `make run` with an empty CARGO_HOME, model cache and target directory (so every tool and
# crate is fetched and built again), until the first token of an answer streams from
# `/v1/chat/completions` with `"model": "local"`; then a second `make run` on the unchanged
# tree, timed to "listening". Writes bench/results/newcomer.md.
#
# What it cannot make new on this machine: Debian packages already installed (apt is
# idempotent and quick), the wasm32 target rustup added, wasm-opt from npm (2 s), so those
# steps only check here. Takes ~25 minutes on 2 cores.
#
#   bench/newcomer.sh [port]
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
port=${1:-3990}
out=bench/results/newcomer.md
work=$(mktemp -d /tmp/stoa-newcomer.XXXXXX)
log="$work/make-run.log"
export CARGO_HOME="$work/cargo-home" CARGO_TARGET_DIR="$work/target" STOA_MODEL_DIR="$work/models"
export RUSTUP_HOME="${RUSTUP_HOME:-$HOME/.rustup}"
mkdir -p "$CARGO_HOME/bin"
# The toolchain's own commands (rustup's proxies) and nothing else that cargo installed
# before (wasm-bindgen, cargo-leptos): those must be built again, as on a new machine.
old_bin=$(dirname "$(command -v rustup)")
for tool in cargo rustc rustup rustdoc rustfmt cargo-fmt cargo-clippy clippy-driver; do
  [ -e "$old_bin/$tool" ] && ln -s "$old_bin/$tool" "$CARGO_HOME/bin/$tool"
done
PATH=$(printf '%s' "$PATH" | tr ':' '\n' | grep -vx "$old_bin" | paste -sd:)
export PATH="$CARGO_HOME/bin:$PATH"
command -v wasm-bindgen >/dev/null && { echo "wasm-bindgen is still on PATH: $(command -v wasm-bindgen)" >&2; exit 1; }
git clone --quiet "$repo" "$work/stoa"
cd "$work/stoa"

stamp() { while IFS= read -r line; do printf '%s %s\n' "$(date +%s)" "$line"; done; }
started=$(date +%s)
(LEPTOS_SITE_ADDR="127.0.0.1:$port" make run 2>&1 | stamp >"$log") &
runner=$!
stop_server() { pkill -f "$CARGO_TARGET_DIR/release/stoa" 2>/dev/null || true; }
trap 'stop_server; kill $runner 2>/dev/null || true' EXIT

# Until it answers (at most an hour).
until curl -sf "http://127.0.0.1:$port/healthz" >/dev/null; do
  if ! kill -0 "$runner" 2>/dev/null; then
    tail -30 "$log" >&2
    echo "make run stopped before serving" >&2
    exit 1
  fi
  if (( $(date +%s) - started > 3600 )); then echo "not serving after an hour" >&2; exit 1; fi
  sleep 2
done
listening=$(date +%s)
# The first request a newcomer makes with an OpenAI client, streamed; time to its first token.
asked=$(date +%s.%N)
first=""
while IFS= read -r line; do
  if [[ $line == data:* && $line == *'"content"'* && -z $first ]]; then first=$(date +%s.%N); fi
done < <(curl -sN "http://127.0.0.1:$port/v1/chat/completions" -H 'content-type: application/json' \
  -d '{"model": "local", "stream": true, "max_tokens": 16, "messages": [{"role": "user", "content": "Say hello."}]}')
[ -n "$first" ] || { echo "no token streamed" >&2; exit 1; }
answered=$(date +%s)
stop_server
wait "$runner" 2>/dev/null || true

# Phases, from the stamped log: each "== setup/build/models" line starts one.
phases=$(awk '/^[0-9]+ == / { t=$1; $1=""; if (prev != "") printf "| %s | %d |\n", prev, t - pt; prev=$0; pt=t } END { if (prev != "") printf "| %s | %s |\n", prev, "until serving" }' "$log")

# The second run: nothing changed, to "listening".
again=$(date +%s.%N)
(LEPTOS_SITE_ADDR="127.0.0.1:$port" make run 2>&1 | stamp >"$work/again.log") &
runner=$!
until curl -sf "http://127.0.0.1:$port/healthz" >/dev/null; do sleep 0.2; done
second=$(echo "$(date +%s.%N) - $again" | bc)
stop_server
wait "$runner" 2>/dev/null || true

cd "$repo"
{
  echo "# A newcomer's first run (bench/newcomer.sh)"
  echo
  echo "Run on $(date -u +%F), $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs). A fresh clone, empty CARGO_HOME, model cache and target directory; Debian packages, the wasm32 target and wasm-opt were already on this machine (those steps only checked); the wasm-bindgen CLI was built again."
  echo
  echo "| | seconds |"
  echo "| --- | ---: |"
  echo "| clone → serving (\`make run\`) | $((listening - started)) |"
  echo "| clone → first streamed token of \`\"model\": \"local\"\` | $((answered - started)) |"
  printf '| first token after the request | %.2f |\n' "$(echo "$first - $asked" | bc)"
  printf '| second \`make run\`, unchanged tree, to serving | %.1f |\n' "$second"
  echo
  echo "Phases of the first run (from its log):"
  echo
  echo "| phase | seconds |"
  echo "| --- | ---: |"
  echo "$phases"
  echo
  echo "Targets (issue 16): first answer within 20 minutes (1,200 s); second run serving within 15 s."
} >"$out"
cat "$out"
rm -rf "$work"
