#!/usr/bin/env bash
# The chat page's frontend as it ships: the release site `make run` serves, built by
# .ci/build-site.sh (profile wasm-release, --cfg erase_components, wasm-bindgen, wasm-opt -Oz,
# content-hashed names, brotli and gzip copies, the bundle split at its lazy routes). Prints
# what a browser downloads for the chat page's first load (the main WASM module, its JS, the
# split loader, the stylesheet) with Accept-Encoding br and with gzip, and the chunks the
# other pages fetch when shown; fails when the first load's gzip total is over the budget.
# (Bytes on the wire, as Chromium records them, are measured by bench/frontend.mjs.)
#
#   bench/bundle.sh            print the sizes, fail above the budget (make test runs this)
#   BUNDLE_BUDGET_KB=300 bench/bundle.sh
set -euo pipefail
cd "$(dirname "$0")/.."
budget_kb=${BUNDLE_BUDGET_KB:-310}
.ci/build-site.sh release front >/dev/null
pkg=target/site/pkg
size() { wc -c <"$1"; }
one() { ls "$pkg"/stoa.*."$1"; }
wasm=$(one wasm); js=$(one js); css=$(one css); loader=$(ls "$pkg"/__wasm_split.*.js)
gz_total=0; br_total=0
for f in "$wasm" "$js" "$loader" "$css"; do
  gz_total=$((gz_total + $(size "$f.gz"))); br_total=$((br_total + $(size "$f.br")))
done
js_both() { echo $(( ($(size "$js.$1") + $(size "$loader.$1")) / 1024 )); }
printf 'first load, gzip: wasm %d KB, js %d KB, css %d KB, total %d KB; budget %d KB\n' \
  $(( $(size "$wasm.gz") / 1024 )) "$(js_both gz)" $(( $(size "$css.gz") / 1024 )) \
  $((gz_total / 1024)) "$budget_kb"
printf 'first load, brotli: wasm %d KB, js %d KB, css %d KB, total %d KB\n' \
  $(( $(size "$wasm.br") / 1024 )) "$(js_both br)" $(( $(size "$css.br") / 1024 )) $((br_total / 1024))
printf 'raw: wasm %d KB\n' $(( $(size "$wasm") / 1024 ))
chunks=0; chunks_br=0; chunks_raw=0
for f in "$pkg"/split_*.wasm "$pkg"/chunk_*.wasm; do
  [ -f "$f" ] || continue
  chunks=$((chunks + 1)); chunks_br=$((chunks_br + $(size "$f.br"))); chunks_raw=$((chunks_raw + $(size "$f")))
done
printf 'other pages: %d chunks, %d KB brotli (%d KB raw), fetched when shown\n' \
  "$chunks" $((chunks_br / 1024)) $((chunks_raw / 1024))
if (( gz_total > budget_kb * 1024 )); then
  echo "the frontend is over its budget of ${budget_kb} KB gzip" >&2
  exit 1
fi
