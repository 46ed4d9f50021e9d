#!/usr/bin/env bash
# Garrison's embedded MQTT broker side by side with Mosquitto: same load generator
# (crates/garrison-loadgen, rumqttc 0.25 on rustls), same device certificates (enrolled in Garrison
# over EST; Mosquitto trusts Garrison's device CA chain and serves Garrison's broker certificate),
# same machine, both over mutual TLS. Runs alternate broker order; the table shows medians.
#
# Scenarios (DUR seconds each, PUBS publishers, 64-byte payloads):
#   qos0 / qos1   flat out; publisher-side rate (QoS 1: PUBACKs/s; QoS 0: PUBLISH written/s).
#                 Neither broker has a subscriber here: both only receive, authorise and ack.
#                 Garrison: garrison_intake_messages_total must grow by exactly what was acked.
#   paced         QoS 1 at RATE msgs/s: publish→PUBACK round trip p50/p99 (both brokers).
#   handshakes    HS_C workers: TCP + full mTLS handshake (no resumption) + CONNECT/CONNACK +
#                 DISCONNECT in a loop.
#   idle          IDLE connections held open; broker RSS (VmRSS) before and after, per connection.
# Mosquitto only (Garrison devices cannot read each other's topics): the same qos1 and paced runs
# with one subscriber per publisher, checking sequence numbers and end-to-end latency.
#
# Broker CPU: for the flat-out runs, the broker process's own CPU time (utime + stime) per
# message, in µs — what each message costs the broker, whatever the load generator takes.
#
# Usage: bench/mqtt.sh          (env: BENCH_RUNS=3 BENCH_DURATION=8 BENCH_RATE=10000
#                                BENCH_PUBLISHERS=4 BENCH_HANDSHAKE_CONCURRENCY=8
#                                BENCH_IDLE_CONNECTIONS=10000 BENCH_SKIP_BUILD=1 BENCH_MOSQUITTO=…
#                                BENCH_ONLY="qos0 qos1 paced handshakes idle subscribers"
#                                BENCH_PERF=/tmp/g.perf: perf profile of Garrison's first
#                                flat-out run of each QoS, written to /tmp/g.perf.qos0 …)
# Needs: mosquitto (Debian package), openssl, curl, jq; cargo unless BENCH_SKIP_BUILD is set.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${BENCH_RUNS:-3}
DUR=${BENCH_DURATION:-8}
RATE=${BENCH_RATE:-10000}
PUBS=${BENCH_PUBLISHERS:-4}
HS_C=${BENCH_HANDSHAKE_CONCURRENCY:-8}
IDLE=${BENCH_IDLE_CONNECTIONS:-10000}
MOSQ=${BENCH_MOSQUITTO:-/usr/sbin/mosquitto}
ONLY=" ${BENCH_ONLY:-qos0 qos1 paced handshakes idle subscribers} "
want() { [[ "$ONLY" == *" $1 "* ]]; }
TARGET=${CARGO_TARGET_DIR:-target}
for tool in openssl curl jq "$MOSQ"; do
  command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 2; }
done
if [ -z "${BENCH_SKIP_BUILD:-}" ]; then
  cargo build --release --locked -p garrison -p garrison-loadgen
fi
BIN=$TARGET/release/garrison
LG=$TARGET/release/garrison-loadgen
[ -x "$BIN" ] && [ -x "$LG" ] || { echo "no release binaries under $TARGET" >&2; exit 2; }
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -gt $((IDLE + 1000)) ] || { echo "ulimit -n too low for $IDLE connections" >&2; exit 2; }
export RUST_LIB_BACKTRACE=0

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
results=$work/results.tsv
: >"$results"
log() { echo "[$(date +%T)] $*" >&2; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {
  local p
  while :; do p=$((20000 + RANDOM % 30000)); port_free "$p" && { echo "$p"; return; }; done
}
record() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" | tee -a "$results" >&2; }

# ---- Garrison -------------------------------------------------------------------------------
KEY=$(openssl rand -base64 32)
GDATA=$work/garrison-data
G_PID= G_API= G_MQTT_PORT=
garrison_start() {
  : >"$work/g.out"
  # The per-device abuse limits (100 msg/s by default) would measure the limiter, not the
  # broker: they are switched off here, as Mosquitto has none.
  GARRISON_MASTER_KEY=$KEY GARRISON_LOG_LEVEL=warn \
    GARRISON_API__LISTEN=127.0.0.1:0 GARRISON_BROKER__LISTEN=127.0.0.1:0 \
    GARRISON_BROKER__MAX_MESSAGES_PER_SECOND=0 GARRISON_BROKER__MAX_BYTES_PER_SECOND=0 \
    GARRISON_BROKER__MAX_CONNECTS_PER_MINUTE_PER_SOURCE=0 \
    XDG_CONFIG_HOME="$work/cfg" "$BIN" serve --data-dir "$GDATA" >"$work/g.out" 2>>"$work/g.err" &
  G_PID=$!
  pids+=("$G_PID")
  for _ in $(seq 1 200); do grep -q 'mqtt:' "$work/g.out" 2>/dev/null && break; sleep 0.05; done
  G_API=$(grep -o 'https://[0-9.:]*' "$work/g.out" | head -1)
  G_MQTT_PORT=$(grep -o 'mqtts://[0-9.:]*' "$work/g.out" | head -1 | sed 's/.*://')
  [ -n "$G_API" ] && [ -n "$G_MQTT_PORT" ] || { echo "garrison serve did not start:" >&2; cat "$work/g.err" >&2; exit 1; }
}
garrison_stop() { kill -TERM "$G_PID"; wait "$G_PID" 2>/dev/null || true; }

log "first Garrison start; enrolling $IDLE devices over EST"
garrison_start
CA=$GDATA/ca.pem
PASS=$(grep 'password:' "$work/g.out" | awk '{print $3}')
api() { curl -sf --cacert "$CA" -H 'content-type: application/json' "$@"; }
SESSION=$(api -d "{\"username\":\"admin\",\"password\":\"$PASS\"}" "$G_API/api/v1/auth/login" | jq -r .token)
BOOT=$(api -H "Authorization: Bearer $SESSION" -d '{"device_pattern":"*","max_uses":100000}' \
  "$G_API/api/v1/enrollment/tokens" | jq -r .token)
export LOADGEN_METRICS_TOKEN=$SESSION
CERTS=$work/devices
NEED=$IDLE
want idle || NEED=0
[ "$NEED" -ge $((2 * PUBS)) ] || NEED=$((2 * PUBS))
[ "$NEED" -ge "$HS_C" ] || NEED=$HS_C
LOADGEN_EST_TOKEN=$BOOT "$LG" est --url "$G_API" --ca "$CA" --count "$NEED" --concurrency 16 \
  --prefix dev --out "$CERTS" --json >"$work/enroll.json"
log "enrolled: $(jq -c '{issued, certs_per_s}' "$work/enroll.json")"
garrison_stop

# ---- Mosquitto: Garrison's CA chain and broker certificate ------------------------------------
mkdir -p "$work/mosq"
cp "$GDATA/broker/server.pem" "$GDATA/broker/server.key" "$GDATA/broker/clients-ca.pem" "$work/mosq/"
M_PORT=$(free_port)
cat >"$work/mosq/mosquitto.conf" <<EOF
# Limits set to Garrison's defaults (broker.max_inflight, broker.max_queued_messages).
user root
per_listener_settings false
persistence false
log_dest stderr
log_type error
log_type warning
max_inflight_messages 32
max_queued_messages 10000
set_tcp_nodelay true
listener $M_PORT 127.0.0.1
cafile $work/mosq/clients-ca.pem
certfile $work/mosq/server.pem
keyfile $work/mosq/server.key
require_certificate true
use_identity_as_username true
tls_version tlsv1.2
EOF
M_PID=
mosquitto_start() {
  "$MOSQ" -c "$work/mosq/mosquitto.conf" 2>>"$work/m.err" &
  M_PID=$!
  pids+=("$M_PID")
  for _ in $(seq 1 100); do port_free "$M_PORT" || break; sleep 0.05; done
}
mosquitto_stop() { kill -TERM "$M_PID"; wait "$M_PID" 2>/dev/null || true; }
MOSQ_VERSION=$("$MOSQ" -h 2>/dev/null | head -1 || true)

# ---- scenarios ------------------------------------------------------------------------------
lg_mqtt() { # broker mode args…
  local broker=$1 mode=$2; shift 2
  local port=$M_PORT extra=()
  if [ "$broker" = garrison ]; then
    port=$G_MQTT_PORT
    [ "$mode" = pubsub ] && extra=(--metrics-url "$G_API/metrics")
  fi
  "$LG" "$mode" --port "$port" --ca "$CA" --certs "$CERTS" --json "${extra[@]}" "$@"
}

check_pubsub() { # broker scenario json
  local e; e=$(jq -r '[.errors, (.intake_missing // 0), (.lost // 0), (.duplicates // 0)] | add' <<<"$3")
  if [ "$e" != 0 ]; then log "CHECK FAILED $1 $2: $3"; record "check:$2" "$1" "$e"; fi
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# A flat-out run: its rate, and the broker's CPU µs per message.
flat_out() { # broker pid scenario qos
  local b=$1 pid=$2 s=$3 qos=$4 before out perf_pid=
  before=$(cpu_ticks "$pid")
  if [ -n "${BENCH_PERF:-}" ] && [ "$b" = garrison ] && [ ! -e "$BENCH_PERF.$s" ]; then
    perf record -q -F 499 --call-graph dwarf,16384 -p "$pid" -o "$BENCH_PERF.$s" -- sleep "$DUR" 2>/dev/null &
    perf_pid=$!
  fi
  out=$(lg_mqtt "$b" pubsub --publishers "$PUBS" --qos "$qos" --duration "$DUR")
  if [ -n "$perf_pid" ]; then wait "$perf_pid" || true; fi
  check_pubsub "$b" "$s" "$out"; record "$s" "$b" "$(jq .rate_per_s <<<"$out")"
  record "${s}_cpu_us" "$b" "$(awk -v t="$(($(cpu_ticks "$pid") - before))" -v hz="$(getconf CLK_TCK)" \
    -v n="$(jq .published <<<"$out")" 'BEGIN {printf "%.2f", t / hz * 1e6 / n}')"
}

round() { # broker pid
  local b=$1 pid=$2 out
  if want qos0; then flat_out "$b" "$pid" qos0 0; fi
  if want qos1; then flat_out "$b" "$pid" qos1 1; fi
  if want paced; then
    out=$(lg_mqtt "$b" pubsub --publishers "$PUBS" --qos 1 --duration "$DUR" --rate "$RATE")
    check_pubsub "$b" paced "$out"
    record puback_p50 "$b" "$(jq .puback_p50_ms <<<"$out")"
    record puback_p99 "$b" "$(jq .puback_p99_ms <<<"$out")"
  fi
  if want handshakes; then
    out=$(lg_mqtt "$b" handshakes --concurrency "$HS_C" --duration "$DUR")
    record handshakes "$b" "$(jq .handshakes_per_s <<<"$out")"
    record handshake_errors "$b" "$(jq .errors <<<"$out")"
  fi
  if [ "$b" = mosquitto ] && want subscribers; then
    out=$(lg_mqtt "$b" pubsub --publishers "$PUBS" --qos 1 --duration "$DUR" --subscribers)
    check_pubsub "$b" qos1_sub "$out"
    record qos1_sub_delivered "$b" "$(jq .received_per_s <<<"$out")"
    out=$(lg_mqtt "$b" pubsub --publishers "$PUBS" --qos 1 --duration "$DUR" --rate "$RATE" --subscribers)
    check_pubsub "$b" paced_sub "$out"
    record e2e_p50 "$b" "$(jq .e2e_p50_ms <<<"$out")"
    record e2e_p99 "$b" "$(jq .e2e_p99_ms <<<"$out")"
  fi
}

idle_run() { # broker
  local b=$1 pid port before after out lpid
  if [ "$b" = garrison ]; then garrison_start; pid=$G_PID; else mosquitto_start; pid=$M_PID; fi
  sleep 1
  before=$(rss_kb "$pid")
  port=$M_PORT
  [ "$b" = garrison ] && port=$G_MQTT_PORT
  rm -f "$work/idle.json"
  "$LG" idle --port "$port" --ca "$CA" --certs "$CERTS" --json --connections "$IDLE" \
    --concurrency 64 >"$work/idle.json" &
  lpid=$!
  pids+=("$lpid")
  for _ in $(seq 1 1200); do [ -s "$work/idle.json" ] && break; sleep 0.1; done
  sleep 5
  after=$(rss_kb "$pid")
  kill -TERM "$lpid" 2>/dev/null || true
  wait "$lpid" 2>/dev/null || true
  out=$(cat "$work/idle.json")
  [ "$(jq .connected <<<"$out")" = "$IDLE" ] || { log "idle $b: $out"; record check:idle "$b" 1; }
  record idle_kb_per_conn "$b" "$(awk -v a="$after" -v b="$before" -v n="$IDLE" 'BEGIN {printf "%.2f", (a - b) / n}')"
  record idle_rss_before_mb "$b" "$(awk -v b="$before" 'BEGIN {printf "%.1f", b / 1024}')"
  record idle_connects_per_s "$b" "$(jq .connects_per_s <<<"$out")"
  if [ "$b" = garrison ]; then garrison_stop; else mosquitto_stop; fi
}

for r in $(seq 1 "$RUNS"); do
  order=(garrison mosquitto)
  if [ $((r % 2)) = 0 ]; then order=(mosquitto garrison); fi
  for b in "${order[@]}"; do
    log "run $r/$RUNS: $b"
    if [ "$b" = garrison ]; then garrison_start; pid=$G_PID; else mosquitto_start; pid=$M_PID; fi
    round "$b" "$pid"
    if [ "$b" = garrison ]; then garrison_stop; else mosquitto_stop; fi
  done
done
for r in $(seq 1 "$RUNS"); do
  want idle || break
  order=(garrison mosquitto)
  if [ $((r % 2)) = 0 ]; then order=(mosquitto garrison); fi
  for b in "${order[@]}"; do log "idle run $r/$RUNS: $b ($IDLE connections)"; idle_run "$b"; done
done

# ---- table ----------------------------------------------------------------------------------
median() { # scenario broker
  awk -F'\t' -v s="$1" -v b="$2" '$1 == s && $2 == b && $3 != "null" {print $3}' "$results" | sort -g |
    awk '{v[NR] = $1} END {if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}
runs_of() { awk -F'\t' -v s="$1" -v b="$2" '$1 == s && $2 == b {printf "%s%s", sep, $3; sep = " "}' "$results"; }
echo
echo "Garrison $("$BIN" --version 2>/dev/null | awk '{print $2}') vs $MOSQ_VERSION; $(nproc) cores; $RUNS runs each, ${DUR}s; $PUBS publishers; 64 B payloads; TLS 1.3 (negotiated by both)"
printf '| %-44s | %12s | %12s | %9s |\n' figure Garrison Mosquitto "G/M"
printf '|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..46})" "$(printf -- '-%.0s' {1..14})" "$(printf -- '-%.0s' {1..14})" "$(printf -- '-%.0s' {1..11})"
for row in \
  "qos0|QoS 0 flat out, PUBLISH written/s" \
  "qos0_cpu_us|QoS 0 flat out: broker CPU µs per message" \
  "qos1|QoS 1 flat out, PUBACKs/s" \
  "qos1_cpu_us|QoS 1 flat out: broker CPU µs per message" \
  "puback_p50|QoS 1 at $RATE/s: publish->PUBACK p50 ms" \
  "puback_p99|QoS 1 at $RATE/s: publish->PUBACK p99 ms" \
  "handshakes|mTLS handshakes/s ($HS_C workers)" \
  "handshake_errors|handshake errors (sum of refusals)" \
  "idle_kb_per_conn|RSS per idle mTLS connection, KB ($IDLE)" \
  "idle_rss_before_mb|RSS before connections, MB" \
  "idle_connects_per_s|connects/s while ramping (64 in flight)" \
  "qos1_sub_delivered|QoS 1 flat out with subscribers, delivered/s" \
  "e2e_p50|QoS 1 at $RATE/s: publish->subscriber p50 ms" \
  "e2e_p99|QoS 1 at $RATE/s: publish->subscriber p99 ms"; do
  key=${row%%|*} label=${row#*|}
  g=$(median "$key" garrison) m=$(median "$key" mosquitto)
  ratio=$(awk -v g="$g" -v m="$m" 'BEGIN {if (g == "-" || m == "-" || m == 0) print "-"; else printf "%.2f", g / m}')
  printf '| %-44s | %12s | %12s | %9s |\n' "$label" "$g" "$m" "$ratio"
done
echo
echo "Every run (scenario, broker: values):"
for key in $(cut -f1 "$results" | sort -u); do
  for b in garrison mosquitto; do
    v=$(runs_of "$key" "$b"); [ -n "$v" ] && echo "  $key, $b: $v"
  done
done
if grep -q '^check:' "$results"; then echo "CHECKS FAILED (see above)"; exit 1; fi
echo "Checks: no errors, no intake shortfall (Garrison), no loss or duplicates (Mosquitto subscribers)."
