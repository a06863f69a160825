#!/usr/bin/env bash
# The chat page's frontend as it ships: the WASM bundle built like `make run` builds it
# (profile wasm-release, --cfg erase_components, wasm-bindgen, wasm-opt -Oz), its JS glue and
# the stylesheet; gzip -9 sizes against a budget. Also lays them out as a site in
# target/bundle-site, so the release bundle can be served and timed (bench/frontend.mjs).
#
#   bench/bundle.sh            print the sizes, fail above the budget (make test runs this)
#   BUNDLE_BUDGET_KB=300 bench/bundle.sh
set -euo pipefail
cd "$(dirname "$0")/.."
budget_kb=${BUNDLE_BUDGET_KB:-580}
export RUSTFLAGS=${RUSTFLAGS:---cfg erase_components}
target=${CARGO_TARGET_DIR:-target}
site=target/bundle-site
pkg=$site/pkg
rm -rf "$site"
mkdir -p "$pkg"

cargo build --quiet --lib --target wasm32-unknown-unknown --profile wasm-release --no-default-features --features hydrate
wasm-bindgen --target web --no-typescript --out-dir "$pkg" --out-name stoa \
  "$target/wasm32-unknown-unknown/wasm-release/stoa.wasm"
# rustc's default wasm features (bulk memory, sign extension, non-trapping conversions…).
wasm-opt -Oz --enable-bulk-memory --enable-sign-ext --enable-nontrapping-float-to-int \
  --enable-mutable-globals --enable-reference-types --enable-multivalue \
  "$pkg/stoa_bg.wasm" -o "$pkg/stoa.wasm"
rm "$pkg/stoa_bg.wasm"
cp style/main.css "$pkg/stoa.css"
cp -r public/. "$site/"

gz() { gzip -9 -c "$1" | wc -c; }
wasm=$(gz "$pkg/stoa.wasm"); js=$(gz "$pkg/stoa.js"); css=$(gz "$pkg/stoa.css")
total=$((wasm + js + css))
printf 'frontend (gzip -9): wasm %d KB, js %d KB, css %d KB, total %d KB; budget %d KB\n' \
  $((wasm / 1024)) $((js / 1024)) $((css / 1024)) $((total / 1024)) "$budget_kb"
printf 'raw: wasm %d KB\n' $(( $(wc -c < "$pkg/stoa.wasm") / 1024 ))
if (( total > budget_kb * 1024 )); then
  echo "the frontend is over its budget of ${budget_kb} KB gzip" >&2
  exit 1
fi
