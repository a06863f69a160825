#!/usr/bin/env bash
# `make dev` (cargo leptos watch): cargo-leptos, installed the first time only (~14 min),
# built so that it never downloads tools itself. `make run` and `make test` do not need it.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_LEPTOS_VERSION=0.3.10   # 0.3.11 needs rustc 1.96
.ci/setup-run.sh
. .ci/setup-lib.sh
if [ "$(cargo leptos --version 2>/dev/null || true)" != "cargo-leptos ${CARGO_LEPTOS_VERSION}" ]; then
  log "cargo install cargo-leptos ${CARGO_LEPTOS_VERSION} (no_downloads; about 14 minutes on 2 cores)"
  cargo install cargo-leptos --version "${CARGO_LEPTOS_VERSION}" --locked --features no_downloads
fi

