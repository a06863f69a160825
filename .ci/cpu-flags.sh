#!/usr/bin/env bash
# The ggml (llama.cpp) build options for this machine's vector units, one NAME=ON|OFF per
# line, for the Makefile to export. `make run` builds on the machine that serves; the
# llama-cpp-sys-2 build script enables only what Rust's target has (baseline x86-64: SSE2),
# and llama.cpp's cmake cache keeps whatever an earlier build set, so every option is given,
# on or off. Other architectures: nothing (the build script's defaults).
set -euo pipefail
[ "$(uname -m)" = x86_64 ] || exit 0
flags=" $(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | cut -d: -f2) "
has() { for f in "$@"; do [[ "$flags" == *" $f "* ]] || return 1; done; }
option() { if has "${@:2}"; then echo "$1=ON"; else echo "$1=OFF"; fi; }
option GGML_SSE42 sse4_2
option GGML_AVX avx
option GGML_AVX2 avx2
option GGML_FMA fma
option GGML_F16C f16c
option GGML_BMI2 bmi2
option GGML_AVX_VNNI avx_vnni
option GGML_AVX512 avx512f avx512cd avx512vl avx512dq avx512bw
option GGML_AVX512_VBMI avx512vbmi
option GGML_AVX512_VNNI avx512_vnni
option GGML_AVX512_BF16 avx512_bf16
