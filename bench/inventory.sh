#!/usr/bin/env bash
# Inventory and posture audit at fleet scale, on SQLite (the default store) and PostgreSQL side
# by side:
#   1. seed:   N simulated devices (certificates, inventory reports with fact history) written
#              straight into each store by `garrison-loadgen seed-fleet`;
#   2. start:  how long `garrison serve` takes to load its fleet index;
#   3. audit:  POST /api/v1/posture/runs, R times (the first run opens the findings, later ones
#              are the steady state);
#   4. search: GET /api/v1/devices?q=… through TLS, auth and the index, with wrk (p50/p99);
#   5. ingest: inventory reports per second over MQTT (8 enrolled devices publishing a real
#              camera inventory at QoS 1 flat out), beside telemetry through the same path.
#
# Usage: bench/inventory.sh   (env: BENCH_DEVICES=100000 BENCH_RUNS=3 BENCH_SEARCH_SECONDS=10
#                              BENCH_INGEST_SECONDS=10 BENCH_PG_URL=postgres://postgres@127.0.0.1:5432
#                              (empty: SQLite only) BENCH_BACKENDS="sqlite postgres" BENCH_SKIP_BUILD=1)
# Needs: openssl, curl, jq, wrk (installed with apt-get if missing), psql for PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICES=${BENCH_DEVICES:-100000}
RUNS=${BENCH_RUNS:-3}
SEARCH_SECONDS=${BENCH_SEARCH_SECONDS:-10}
INGEST_SECONDS=${BENCH_INGEST_SECONDS:-10}
PG_BASE=${BENCH_PG_URL-postgres://postgres@127.0.0.1:5432}
TARGET=${CARGO_TARGET_DIR:-target}
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }
for tool in openssl curl jq wrk; do command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 2; }; done
if [ -z "${BENCH_SKIP_BUILD:-}" ]; then
  cargo build --release --locked -p garrison -p garrison-loadgen
fi
BIN=$TARGET/release/garrison
LG=$TARGET/release/garrison-loadgen
export RUST_LIB_BACKTRACE=0
work=$(mktemp -d)
pids=()
cleanup() {
  local rc=$?
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "$rc" -ne 0 ]; then # say why before the evidence goes
    for f in "$work"/*/err; do [ -f "$f" ] && { echo "== $f (last lines)" >&2; tail -20 "$f" >&2; }; done
  fi
  rm -rf "$work"
}
trap cleanup EXIT
log() { echo "[$(date +%T)] $*" >&2; }
KEY=$(openssl rand -base64 32)
results=$work/results.tsv
: >"$results"
record() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$results"; log "$1 $2: $3"; }

declare -A URL TOKEN PASS MQTT PID
serve() { # name [serve args…]: start (or restart) a server on the name's data dir
  local name=$1; shift
  local dir=$work/$name
  mkdir -p "$dir"
  GARRISON_MASTER_KEY=$KEY GARRISON_LOG_LEVEL=info,rmqtt=warn GARRISON_BROKER__LISTEN=127.0.0.1:0 \
    GARRISON_API__LISTEN=127.0.0.1:0 GARRISON_BROKER__MAX_MESSAGES_PER_SECOND=0 \
    GARRISON_BROKER__MAX_BYTES_PER_SECOND=0 GARRISON_POSTURE__INTERVAL=0s GARRISON_API__REQUEST_TIMEOUT=600s XDG_CONFIG_HOME="$dir/cfg" \
    "$BIN" serve --data-dir "$dir/data" "$@" >"$dir/out" 2>"$dir/err" &
  PID[$name]=$!
  pids+=($!)
  for _ in $(seq 1 1200); do grep -q 'next:' "$dir/out" 2>/dev/null && break; sleep 0.1; done
  local url; url=$(grep -o 'https://[0-9.:]*' "$dir/out" | head -1)
  [ -n "$url" ] || { echo "garrison serve ($name) did not start:" >&2; tail "$dir/err" >&2; exit 1; }
  URL[$name]=$url
  MQTT[$name]=$(grep -o 'mqtts://[0-9.:]*' "$dir/out" | head -1 | sed 's|mqtts://||')
  local pass; pass=$(grep 'password:' "$dir/out" | awk '{print $3}' || true)
  [ -n "$pass" ] && PASS[$name]=$pass
  TOKEN[$name]=$(curl -sf --cacert "$dir/data/ca.pem" -H 'content-type: application/json' \
    -d "{\"username\":\"admin\",\"password\":\"${PASS[$name]}\"}" "$url/api/v1/auth/login" | jq -r .token)
}
stop() { kill -TERM "${PID[$1]}"; wait "${PID[$1]}" || true; }
api() { # name method path [body]
  local name=$1 method=$2 path=$3 body=${4:-}
  curl -sSf --cacert "$work/$name/data/ca.pem" -X "$method" -H "Authorization: Bearer ${TOKEN[$name]}" \
    ${body:+-H 'content-type: application/json' -d "$body"} "${URL[$name]}$path"
}
metric() { api "$1" GET /metrics | awk -v m="$2" 'index($0, m) == 1 {print $2}' | head -1; }

read -r -a wanted <<<"${BENCH_BACKENDS:-sqlite postgres}"
wants() { [[ " ${wanted[*]} " == *" $1 "* ]]; }
backends=()
wants sqlite && backends+=(sqlite)
declare -A DBURL
DBURL[sqlite]="sqlite://$work/sqlite/data/garrison.db"
if wants postgres && [ -n "$PG_BASE" ] && command -v psql >/dev/null && psql -q "$PG_BASE/postgres" -c 'select 1' >/dev/null 2>&1; then
  psql -q "$PG_BASE/postgres" -c 'DROP DATABASE IF EXISTS garrison_bench_inventory' -c 'CREATE DATABASE garrison_bench_inventory'
  DBURL[postgres]="$PG_BASE/garrison_bench_inventory"
  backends+=(postgres)
else
  log "PostgreSQL not reachable at $PG_BASE: SQLite only"
fi

for b in "${backends[@]}"; do
  extra=(); [ "$b" = postgres ] && extra=(--database-url "${DBURL[$b]}")
  serve "$b" "${extra[@]}"   # first start: schema, CA, admin
  stop "$b"
  t0=$(date +%s.%N)
  "$LG" seed-fleet --database-url "${DBURL[$b]}" --devices "$DEVICES" --prefix fleet >"$work/$b/seed.log"
  record "$b" seed_seconds "$(echo "$(date +%s.%N) - $t0" | bc)"
  serve "$b" "${extra[@]}"
  record "$b" index_load_seconds "$(grep -o 'Fleet index loaded.*' "$work/$b/err" | grep -o 'seconds=[0-9.]*' | cut -d= -f2)"
  for m in "AV-CAM-220 5.6.0" "VP-100 1.3.0" "IG-5000 3.0.0" "MF-300 2.7.0" "BC-40 6.0.0"; do
    set -- $m
    api "$b" PUT "/api/v1/posture/firmware-policies/$1" "{\"minimum_version\":\"$2\"}" >/dev/null
  done
  for r in $(seq 1 "$RUNS"); do
    run=$(api "$b" POST /api/v1/posture/runs)
    record "$b" "audit_run_${r}_ms" "$(jq .duration_ms <<<"$run")"
    record "$b" "audit_run_${r}_open" "$(jq .open <<<"$run")"
  done
  rss=$(awk '/VmRSS/ {print $2}' "/proc/${PID[$b]}/status")
  record "$b" server_rss_kib "$rss"

  # Search: selective, broad, and no match (a full scan either way).
  i=0
  for q in 'model = "AV-CAM-220" and firmware < "5.6"' 'service = telnet or port in (23, 2323)' 'tag:site = nowhere'; do
    i=$((i + 1))
    enc=$(jq -rn --arg q "$q" '$q|@uri')
    url="${URL[$b]}/api/v1/devices?limit=50&q=$enc"
    matches=$(api "$b" GET "/api/v1/export/devices?format=json&q=$enc" | jq length)
    out=$(wrk -t2 -c4 -d"${SEARCH_SECONDS}s" --latency -H "Authorization: Bearer ${TOKEN[$b]}" "$url" 2>&1)
    record "$b" "search_${i}_matches" "$matches"
    record "$b" "search_${i}_req_s" "$(awk '/Requests\/sec/ {print $2}' <<<"$out")"
    record "$b" "search_${i}_p50" "$(awk '$1 == "50%" {print $2}' <<<"$out")"
    record "$b" "search_${i}_p99" "$(awk '$1 == "99%" {print $2}' <<<"$out")"
  done

  # Ingest: 8 devices over EST, then inventory and telemetry flat out at QoS 1.
  boot=$(api "$b" POST /api/v1/enrollment/tokens '{"device_pattern":"ingest-*","max_uses":8}' | jq -r .token)
  LOADGEN_EST_TOKEN=$boot "$LG" est --url "${URL[$b]}" --ca "$work/$b/data/ca.pem" --count 8 \
    --concurrency 2 --prefix ingest --out "$work/$b/certs" --json >/dev/null
  cat >"$work/inventory.json" <<'JSON'
{"schema":1,"collected_at":1764633600000,"device_class":"embedded","hardware":{"manufacturer":"Acme Vision","model":"AV-CAM-220","serial":"CAM0A1B2C3D","architecture":"armv7l","cpu_count":1,"memory_bytes":134217728},"firmware":{"version":"5.7.3"},"os":{"id":"linux","name":"Acme Vision Linux","version":"5.7","kernel":"4.9.37","hostname":"cam-0001"},"software":{"bomFormat":"CycloneDX","specVersion":"1.5","version":1,"components":[{"type":"library","name":"busybox","version":"1.31.1","purl":"pkg:generic/linux/busybox@1.31.1"},{"type":"library","name":"openssl","version":"1.1.1k","purl":"pkg:generic/linux/openssl@1.1.1k"},{"type":"library","name":"lighttpd","version":"1.4.59","purl":"pkg:generic/linux/lighttpd@1.4.59"},{"type":"library","name":"live555","version":"2020.08.19","purl":"pkg:generic/linux/live555@2020.08.19"},{"type":"library","name":"dropbear","version":"2020.81","purl":"pkg:generic/linux/dropbear@2020.81"},{"type":"library","name":"zlib","version":"1.2.11","purl":"pkg:generic/linux/zlib@1.2.11"}]},"interfaces":[{"name":"eth0","mac":"02:00:14:00:01:0b","addresses":["10.20.1.11/16"]}],"listening":[{"protocol":"tcp","address":"0.0.0.0","port":80,"process":"lighttpd","pid":180},{"protocol":"tcp","address":"0.0.0.0","port":443,"process":"lighttpd","pid":543},{"protocol":"tcp","address":"0.0.0.0","port":554,"process":"rtspd","pid":654},{"protocol":"udp","address":"0.0.0.0","port":3702,"process":"wsdd","pid":202}],"services":{"telnet":false,"ftp":false,"upnp":false,"debug":[]},"accounts":[{"name":"admin","uid":0,"shell":"/bin/sh","password":"set","default_password":false,"credential_fingerprint":"3f1c2a9b8e7d6c5b"}],"security":{"time_sync":true,"logging":true},"watched_files":[{"path":"/bin/busybox","sha256":"5d41402abc4b2a76b9719d911017c592ae4e1c1b5dbc8a2e0b6e3c1c9d8f7a6b"}]}
JSON
  printf '{"schema":1,"at":1764633600000,"interval_ms":60000,"bytes_in":400000,"bytes_out":18000000,"packets_in":667,"packets_out":20000,"established_connections":2,"destinations":["10.20.0.5","10.20.0.1"],"distinct_destinations":2}' >"$work/telemetry.json"
  host=${MQTT[$b]%:*}; port=${MQTT[$b]##*:}
  for channel in inventory telemetry; do
    before=$(metric "$b" "garrison_inventory_reports_total{channel=\"$channel\"}"); before=${before:-0}
    out=$("$LG" pubsub --host "$host" --port "$port" --ca "$work/$b/data/ca.pem" --certs "$work/$b/certs" \
      --publishers 8 --qos 1 --duration "$INGEST_SECONDS" --payload-file "$work/$channel.json" \
      --topic "garrison/v1/d/{id}/$channel" --json)
    acked=$(jq .acked <<<"$out")
    # Wait (up to 60 s) until the intake has caught up with everything acknowledged.
    for _ in $(seq 1 120); do
      after=$(metric "$b" "garrison_inventory_reports_total{channel=\"$channel\"}")
      [ "$(echo "${after:-0} - $before >= $acked" | bc)" = 1 ] && break
      sleep 0.5
    done
    rejected=$(api "$b" GET /metrics | grep -c "garrison_inventory_reports_rejected_total{channel=\"$channel\"" || true)
    record "$b" "ingest_${channel}_acked_per_s" "$(jq .rate_per_s <<<"$out")"
    record "$b" "ingest_${channel}_stored_per_s" "$(echo "($after - $before) / $INGEST_SECONDS" | bc -l | cut -c1-8)"
    record "$b" "ingest_${channel}_acked_minus_ingested" "$(echo "$acked - ($after - $before)" | bc)"
    record "$b" "ingest_${channel}_rejected_series" "$rejected"
  done
  stop "$b"
done

echo
echo "== results (backend, metric, value) =="
sort "$results" | column -t -s $'\t'
