#!/usr/bin/env bash
# Builds what Stoa serves, as cargo-leptos would but without it (cargo-leptos takes ~14 min
# to install; `make dev` still uses it): the server binary and the site, i.e. the WASM
# bundle (wasm-bindgen, and wasm-opt -Oz in release), its JS glue and the stylesheet (minified by esbuild) and
# public/, with content-hashed asset names and brotli + gzip copies next to each asset.
#
#   .ci/build-site.sh release        make run:   target/release/stoa + target/site
#   .ci/build-site.sh debug          make build: target/debug/stoa   + target/site-debug
#   .ci/build-site.sh release front  the site only (bench/bundle.sh)
#
# The bundle is split at its lazy routes and `#[lazy]` functions (as `cargo leptos --split`
# does): the pages a first visit does not need are chunks fetched when first shown.
#
# The server finds the hashed names in hash.txt next to its binary (Leptos' hash-files).
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-release}
parts=${2:-all}
target=${CARGO_TARGET_DIR:-target}
export LEPTOS_OUTPUT_NAME=stoa
export RUSTFLAGS=${RUSTFLAGS:---cfg erase_components}
case "$mode" in
  release) server_flags=(--release); bin_dir=release; front_profile=wasm-release; site=target/site; brotli_q=11 ;;
  debug) server_flags=(); bin_dir=debug; front_profile=dev; site=target/site-debug; brotli_q=5 ;;
  *) echo "usage: $0 release|debug [all|front]" >&2; exit 2 ;;
esac
front_dir=$([ "$front_profile" = dev ] && echo debug || echo "$front_profile")
step() { printf '== build (%s): %s\n' "$mode" "$*"; }
started=$SECONDS

# 0. The build's own tools, built the first time while the bundle and the server compile:
#    the wasm-bindgen CLI at the version of the crate in Cargo.lock (they must agree; ~5 min)
#    and the splitter (.ci/wasm-split, ~1 min). Their own target dirs: in the shared one they
#    would wait for the server's build lock.
wb_version=$(awk '$0=="name = \"wasm-bindgen\"" {getline; gsub(/version = |"/, ""); print; exit}' Cargo.lock)
split_version=$(awk -F'"' '/^version = / {print $2; exit}' .ci/wasm-split/Cargo.toml)
need_bindgen=$([ "$(wasm-bindgen --version 2>/dev/null || true)" != "wasm-bindgen ${wb_version}" ] && echo 1 || true)
need_split=$([ "$(stoa-wasm-split --version 2>/dev/null || true)" != "stoa-wasm-split ${split_version}" ] && echo 1 || true)
tools_pid=""
if [ -n "$need_bindgen$need_split" ]; then
  tools_log=$(mktemp)
  step "build tools in the background:${need_split:+ stoa-wasm-split ${split_version} (~1 min)}${need_bindgen:+ wasm-bindgen CLI ${wb_version} (~5 min)} (log: $tools_log)"
  (
    if [ -n "$need_split" ]; then
      CARGO_TARGET_DIR="$target/wasm-split" cargo install --path .ci/wasm-split --locked --force
    fi
    if [ -n "$need_bindgen" ]; then
      # Its published lock pins a crate version the registry may not serve: then a fresh resolve.
      export CARGO_TARGET_DIR="$target/wasm-bindgen-cli"
      cargo install wasm-bindgen-cli --version "$wb_version" --locked --force \
        || cargo install wasm-bindgen-cli --version "$wb_version" --force
    fi
  ) >"$tools_log" 2>&1 &
  tools_pid=$!
fi

# 1. The browser bundle and the server, side by side (separate target dirs, as cargo-leptos
#    keeps them, so neither waits for the other's lock). The server's progress is shown;
#    the bundle's goes to a log, shown if it fails.
front_log=$(mktemp)
step "browser bundle (WASM, profile $front_profile; ~4 min the first time, log: $front_log)"
# Linked with its relocations kept: the splitter needs them to cut the module apart.
CARGO_TARGET_DIR="$target/front" RUSTFLAGS="$RUSTFLAGS -Clink-args=--emit-relocs" cargo build --package stoa --lib --target wasm32-unknown-unknown \
  --no-default-features --features hydrate --profile "$front_profile" >"$front_log" 2>&1 &
front_pid=$!
if [ "$parts" = all ]; then
  step "server (${server_flags[*]:-debug}; ~10 min the first time on 2 cores, llama.cpp included)"
  cargo build --package stoa --bin stoa --no-default-features --features ssr "${server_flags[@]}"
fi
if ! wait "$front_pid"; then
  tail -40 "$front_log" >&2
  echo "the browser bundle did not build (log: $front_log)" >&2
  exit 1
fi
rm -f "$front_log"
if [ -n "$tools_pid" ]; then
  step "waiting for the build tools"
  if ! wait "$tools_pid"; then
    tail -40 "$tools_log" >&2
    echo "the build tools did not install (log: $tools_log)" >&2
    exit 1
  fi
  hash -r
fi

# 2. The site, unless it was made from this very bundle, stylesheet, public/ and script already.
wasm="$target/front/wasm32-unknown-unknown/$front_dir/stoa.wasm"
inputs=$( { sha256sum "$wasm" style/main.css "$0"; stoa-wasm-split --version; find public -type f -print0 | sort -z | xargs -0 sha256sum; } | sha256sum | cut -c1-64)
if [ -f "$site/.inputs" ] && [ "$(cat "$site/.inputs")" = "$inputs" ] && [ -f "$site/hash.txt" ]; then
  step "site unchanged ($site)"
else
  step "site: wasm-bindgen$([ "$mode" = release ] && echo ', wasm-opt -Oz'), content hashes, brotli + gzip"
  next="$site.next"
  rm -rf "$next"
  mkdir -p "$next/pkg"
  cp -r public/. "$next/"
  # The main module for wasm-bindgen; the chunks, their loader (__wasm_split.<22 _>.js) and
  # the manifest Leptos preloads a lazy route's chunks by, into pkg/.
  split_tmp=$(mktemp -d)
  stoa-wasm-split "$wasm" "$next/pkg" "$split_tmp/stoa.wasm" ./stoa.js >/dev/null
  wasm-bindgen --target web --no-typescript --keep-lld-exports --no-demangle \
    --out-dir "$next/pkg" --out-name stoa "$split_tmp/stoa.wasm"
  rm -rf "$split_tmp"
  if [ "$mode" = release ]; then
    # rustc's default wasm features (bulk memory, sign extension, non-trapping conversions…).
    # -Oz twice: the second round finds what the first one's inlining exposed (-3.8 KB gzip
    # for 8 s more; --converge gains 3.4 KB for 35 s more).
    for module in "$next"/pkg/*.wasm; do
      # The splitter's name subsections are unknown to wasm-opt, which warns once per module
      # (the output keeps no names): that line is left out of its messages.
      wasm-opt -Oz --strip-producers -Oz --enable-bulk-memory --enable-sign-ext --enable-nontrapping-float-to-int \
        --enable-mutable-globals --enable-reference-types --enable-multivalue \
        "$module" -o "$module" 2> >(grep -v '^warning: unknown name subsection' >&2)
    done
  fi
  # The JS glue and the stylesheet minified by esbuild, in debug builds too so that the tests
  # load what users get (-2.3 and -0.5 KB gzip; bench/README.md).
  # (wasm-bindgen imports the split loader once per lazy function, each under the loader's
  # name: the duplicate keys name the same module.)
  esbuild "$next/pkg/stoa.js" --minify --format=esm --log-level=warning --allow-overwrite \
    --log-override:duplicate-object-key=silent --outfile="$next/pkg/stoa.js"
  esbuild style/main.css --minify --log-level=warning --outfile="$next/pkg/stoa.css"
  hash_of() { sha256sum "$1" | cut -c1-16; }
  # name.ext -> name.HASH.ext; prints the hash.
  hashed() {
    local file=$1 base=$2 ext=$3 h
    h=$(hash_of "$file")
    mv "$file" "$(dirname "$file")/$base.$h.$ext"
    echo "$h"
  }
  # Replaces a string in a file, bytes as they are (also inside the WASM binary).
  replace() { OLD=$1 NEW=$2 perl -0777 -pi -e 's/\Q$ENV{OLD}\E/$ENV{NEW}/g' "$3"; }
  loader="$next/pkg/__wasm_split.______________________.js"
  manifest="$next/pkg/__wasm_split_manifest.json"
  # The chunks by their hashes, in the loader and in the manifest.
  for chunk in "$next"/pkg/split_*.wasm "$next"/pkg/chunk_*.wasm; do
    [ -f "$chunk" ] || continue
    name=$(basename "$chunk" .wasm)
    h=$(hashed "$chunk" "$name" wasm)
    replace "\"./$name.wasm\"" "\"./$name.$h.wasm\"" "$loader"
    replace "\"$name\"" "\"$name.$h\"" "$manifest"
  done
  js=$(hashed "$next/pkg/stoa.js" stoa js)
  # The loader imports the main module; the main module and the WASM import the loader by
  # a name of fixed length, so its hash replaces the underscores in place.
  replace '"./stoa.js"' "\"./stoa.$js.js\"" "$loader"
  esbuild "$loader" --minify --format=esm --log-level=warning --allow-overwrite --outfile="$loader"
  split=$(sha256sum "$loader" | cut -c1-22)
  mv "$loader" "$next/pkg/__wasm_split.$split.js"
  replace "__wasm_split.______________________.js" "__wasm_split.$split.js" "$next/pkg/stoa.$js.js"
  replace "__wasm_split.______________________.js" "__wasm_split.$split.js" "$next/pkg/stoa_bg.wasm"
  wasm_hash=$(hashed "$next/pkg/stoa_bg.wasm" stoa wasm)
  css=$(hashed "$next/pkg/stoa.css" stoa css)
  manifest_hash=$(hashed "$manifest" __wasm_split_manifest json)
  printf 'js: %s\nwasm: %s\ncss: %s\nsplit: %s\nmanifest: %s\n' \
    "$js" "$wasm_hash" "$css" "$split" "$manifest_hash" >"$next/hash.txt"
  # The API docs page refers to its scripts and stylesheet by their hashed names.
  for asset in docs/docs.js docs/vendor/swagger-ui-bundle.js docs/vendor/swagger-ui.css; do
    [ -f "$next/$asset" ] || continue
    name=$(basename "$asset"); base=${name%.*}; ext=${name##*.}
    h=$(hashed "$next/$asset" "$base" "$ext")
    sed -i "s|/$asset\"|/$(dirname "$asset")/$base.$h.$ext\"|" "$next/docs/index.html"
  done
  # Compressed copies, served by negotiation (Accept-Encoding) without compressing per request.
  find "$next" -type f \( -name '*.wasm' -o -name '*.js' -o -name '*.css' -o -name '*.html' -o -name '*.json' \) \
    -print0 | while IFS= read -r -d '' f; do
    gzip -9 -n -k -f "$f"
    brotli -q "$brotli_q" -k -f "$f"
  done
  echo "$inputs" >"$next/.inputs"
  rm -rf "$site"
  mv "$next" "$site"
fi
# Next to the binary, where Leptos looks for it (always: a cargo-leptos build may have
# written its own there since).
if [ "$parts" = all ]; then
  cp "$site/hash.txt" "$target/$bin_dir/hash.txt"
fi
step "done in $((SECONDS - started)) s: $target/$bin_dir/stoa, $site"
