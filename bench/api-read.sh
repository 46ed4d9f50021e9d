#!/usr/bin/env bash
# End-to-end benchmark of an authenticated read through the full stack (TLS, token auth, store):
# GET /api/v1/operators?limit=10 with wrk, on SQLite and on PostgreSQL, side by side with
# GET /healthz on the same server (TLS + HTTP only: the transport ceiling) in the same run.
# Usage: bench/api-read.sh [DURATION_SECONDS] [CONNECTIONS]
# Needs: wrk (Debian package), a release build (cargo build --release), PostgreSQL at 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-15}
CONN=${2:-32}
BIN=${BENCH_GARRISON_BIN:-${CARGO_TARGET_DIR:-target}/release/garrison}
PGURL_BASE=${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432}
command -v wrk >/dev/null || { echo "install wrk: apt-get install wrk" >&2; exit 2; }
[ -x "$BIN" ] || { echo "build first: cargo build --release (looked for $BIN)" >&2; exit 2; }
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

run_backend() {
  local name=$1; shift
  local dir="$work/$name"; mkdir -p "$dir"
  GARRISON_MASTER_KEY=$(printf 'ab%.0s' $(seq 32)) XDG_CONFIG_HOME="$dir/cfg" \
    "$BIN" serve --data-dir "$dir/data" --listen 127.0.0.1:0 "$@" >"$dir/out" 2>"$dir/err" &
  for _ in $(seq 1 100); do grep -q "listening on" "$dir/out" 2>/dev/null && break; sleep 0.1; done
  local url; url=$(grep -o 'https://[0-9.:]*' "$dir/out" | head -1)
  [ -n "$url" ] || { echo "garrison serve did not start:" >&2; cat "$dir/err" >&2; exit 1; }
  local pass; pass=$(grep 'password:' "$dir/out" | awk '{print $3}')
  local token; token=$(curl -s --cacert "$dir/data/ca.pem" -H 'content-type: application/json' \
    -d "{\"username\":\"admin\",\"password\":\"$pass\"}" "$url/api/v1/auth/login" | sed 's/.*"token":"\([^"]*\)".*/\1/')
  for path in /healthz "/api/v1/operators?limit=10"; do
    local hdr=(); [ "$path" = /healthz ] || hdr=(-H "Authorization: Bearer $token")
    echo "== $name $path (wrk -t2 -c$CONN -d${DUR}s)"
    wrk -t2 -c"$CONN" -d"${DUR}s" --latency "${hdr[@]}" "$url$path" | grep -E 'Requests/sec|99%|50%|Non-2xx'
  done
  kill %1 2>/dev/null || true; wait 2>/dev/null || true
}

run_backend sqlite
psql -q "$PGURL_BASE/postgres" -c 'DROP DATABASE IF EXISTS garrison_bench' -c 'CREATE DATABASE garrison_bench'
run_backend postgres --database-url "$PGURL_BASE/garrison_bench"
