#!/usr/bin/env bash
# llama.cpp's own benchmark tool (llama-bench), built from the very sources Stoa links
# (the llama-cpp-sys-2 crate's bundled llama.cpp), twice: with the CPU flags Stoa's build
# uses (GGML_NATIVE=OFF: the crate follows Rust's target features, baseline x86-64) and
# with GGML_NATIVE=ON. Runs prompt processing (512 tokens) and generation (128 tokens) on
# the default GGUF with 2 threads. Builds land in ~/.cache/stoa/llama-bench-*.
#
#   bench/llama-bench.sh [out.md]
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(awk '/name = "llama-cpp-sys-2"/{getline; gsub(/"/,"",$3); print $3}' Cargo.lock)
src=$(ls -d "$HOME"/.cargo/registry/src/*/llama-cpp-sys-2-"$version"/llama.cpp | head -1)
model=${STOA_MODEL_DIR:-$HOME/.cache/stoa/models}/SmolLM2-135M-Instruct.Q4_1.gguf
threads=${THREADS:-2}
out=${1:-/dev/stdout}
{
  echo "llama.cpp from llama-cpp-sys-2 $version; model $(basename "$model"); $threads threads"
  for native in OFF ON; do
    build=$HOME/.cache/stoa/llama-bench-native-$native
    if [ ! -x "$build/bin/llama-bench" ]; then
      cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=$native -DLLAMA_CURL=OFF \
        -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DBUILD_SHARED_LIBS=OFF >/dev/null
      cmake --build "$build" --target llama-bench -j "$(nproc)" >/dev/null
    fi
    echo
    echo "GGML_NATIVE=$native"
    "$build/bin/llama-bench" -m "$model" -t "$threads" -p 512 -n 128 -r 3 -o md
  done
} > "$out"
