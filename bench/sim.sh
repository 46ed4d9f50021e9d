#!/usr/bin/env bash
# The fleet simulator at scale: `garrison sim --devices N` (default 10,000) in one process on this
# 2-core machine, each device with its own key and certificate from Garrison's EST and its own
# mutual-TLS MQTT session speaking the device contract (birth, inventory, telemetry).
#
# Measured: enrollment time for the whole fleet (first run only), how fast the fleet connects
# (devices connected / seconds from the first attempt to the last CONNACK), the simulator's RSS
# with all sessions up, and the broker's RSS. The same simulated fleet (same certificates) is
# then pointed at Mosquitto 2.0.x from Debian, configured with Garrison's CA and broker
# certificate as in bench/mqtt.sh, so the connect rate and the broker's memory are compared side
# by side. Rounds alternate the brokers; medians are reported.
#
# Usage: bench/sim.sh   (env: BENCH_DEVICES=10000 BENCH_ROUNDS=3 BENCH_HOLD=20 BENCH_SKIP_BUILD=1)
# Needs: mosquitto (Debian package), openssl, curl, jq; cargo unless BENCH_SKIP_BUILD is set.
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICES=${BENCH_DEVICES:-10000}
ROUNDS=${BENCH_ROUNDS:-3}
HOLD=${BENCH_HOLD:-20}
MOSQ=${BENCH_MOSQUITTO:-/usr/sbin/mosquitto}
TARGET=${CARGO_TARGET_DIR:-target}
for tool in openssl curl jq "$MOSQ"; do command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 2; }; done
if [ -z "${BENCH_SKIP_BUILD:-}" ]; then
  cargo build --release --locked -p garrison
fi
BIN=$TARGET/release/garrison
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
# Each process (broker, simulator) holds one descriptor per device, plus its own files.
[ "$(ulimit -n)" -gt $((DEVICES + 1000)) ] || { echo "ulimit -n too low for $DEVICES devices" >&2; exit 2; }
export RUST_LIB_BACKTRACE=0
work=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"' EXIT
log() { echo "[$(date +%T)] $*" >&2; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
results=$work/results.tsv
: >"$results"
record() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" | tee -a "$results" >&2; }
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

KEY=$(openssl rand -base64 32)
GDATA=$work/garrison-data
garrison_start() {
  : >"$work/g.out"
  GARRISON_MASTER_KEY=$KEY GARRISON_LOG_LEVEL=warn GARRISON_API__LISTEN=127.0.0.1:0 \
    GARRISON_BROKER__LISTEN=127.0.0.1:0 GARRISON_BROKER__MAX_CONNECTS_PER_MINUTE_PER_SOURCE=0 \
    GARRISON_POSTURE__INTERVAL=0s XDG_CONFIG_HOME="$work/cfg" \
    "$BIN" serve --data-dir "$GDATA" >"$work/g.out" 2>>"$work/g.err" &
  G_PID=$!
  pids+=("$G_PID")
  for _ in $(seq 1 300); do grep -q 'next:' "$work/g.out" 2>/dev/null && break; sleep 0.1; done
  G_API=$(grep -o 'https://[0-9.:]*' "$work/g.out" | head -1)
  G_MQTT=$(grep -o 'mqtts://[0-9.:]*' "$work/g.out" | head -1 | sed 's|mqtts://||')
  [ -n "$G_API" ] || { echo "garrison serve did not start:" >&2; tail "$work/g.err" >&2; exit 1; }
}
garrison_start
CA=$GDATA/ca.pem
PASS=$(grep 'password:' "$work/g.out" | awk '{print $3}')
api() { curl -sf --cacert "$CA" -H 'content-type: application/json' "$@"; }
SESSION=$(api -d "{\"username\":\"admin\",\"password\":\"$PASS\"}" "$G_API/api/v1/auth/login" | jq -r .token)
BOOT=$(api -H "Authorization: Bearer $SESSION" -d "{\"device_pattern\":\"sim-*\",\"max_uses\":$DEVICES}" \
  "$G_API/api/v1/enrollment/tokens" | jq -r .token)

mkdir -p "$work/mosq"
cp "$GDATA/broker/server.pem" "$GDATA/broker/server.key" "$GDATA/broker/clients-ca.pem" "$work/mosq/"
M_PORT=$((20000 + RANDOM % 30000)); while ! port_free "$M_PORT"; do M_PORT=$((M_PORT + 1)); done
cat >"$work/mosq/mosquitto.conf" <<EOF
user root
per_listener_settings false
persistence false
log_dest stderr
log_type error
max_inflight_messages 32
max_queued_messages 10000
set_tcp_nodelay true
max_connections -1
listener $M_PORT 127.0.0.1
cafile $work/mosq/clients-ca.pem
certfile $work/mosq/server.pem
keyfile $work/mosq/server.key
require_certificate true
use_identity_as_username true
tls_version tlsv1.2
EOF

# sim BROKER_NAME MQTT_ADDR BROKER_PID: runs the fleet for HOLD seconds after it is up.
sim() {
  local name=$1 mqtt=$2 bpid=$3 out=$work/sim-$1.out
  GARRISON_SIM_TOKEN=$BOOT "$BIN" sim --devices "$DEVICES" --server "$G_API" --mqtt "$mqtt" \
    --ca-cert "$CA" --state-dir "$work/sim-state" --telemetry-interval 60s --connect-rate 5000 \
    --enroll-concurrency 16 --duration "${HOLD}s" >"$out" 2>"$work/sim-$1.err" &
  local spid=$!
  pids+=("$spid")
  for _ in $(seq 1 3000); do grep -q 'Simulating' "$out" 2>/dev/null && break; sleep 0.1; done
  local line; line=$(grep 'Simulating' "$out" || true)
  [ -n "$line" ] || { echo "the simulator did not come up against $name:" >&2; tail "$work/sim-$1.err" >&2; exit 1; }
  log "$name: $line"
  # The simulator prints its own RSS once every device is connected.
  record "$name" sim_rss_kb "$(grep -o 'RSS [0-9.]* MiB' <<<"$line" | awk '{printf "%d", $2 * 1024}')"
  record "$name" broker_rss_kb "$(rss_kb "$bpid")"
  record "$name" connected "$(grep -o '[0-9]* connected' <<<"$line" | awk '{print $1}')"
  record "$name" connect_seconds "$(grep -o 'connected in [0-9.]* s' <<<"$line" | awk '{print $3}')"
  record "$name" connects_per_s "$(grep -o '([0-9]*/s)' <<<"$line" | tr -d '(/s)')"
  local enrolled; enrolled=$(grep -o '[0-9]* enrolled now ([0-9.]* s)' <<<"$line")
  record "$name" enrolled "$(awk '{print $1}' <<<"$enrolled")"
  record "$name" enroll_seconds "$(grep -o '([0-9.]* s)' <<<"$enrolled" | tr -d '(s )')"
  wait "$spid" || true
}

log "round 1 enrolls $DEVICES devices over EST, then every round connects them"
for r in $(seq 1 "$ROUNDS"); do
  order=(garrison mosquitto)
  [ $((r % 2)) = 0 ] && order=(mosquitto garrison)
  for b in "${order[@]}"; do
    if [ "$b" = garrison ]; then
      sim garrison "$G_MQTT" "$G_PID"
    else
      "$MOSQ" -c "$work/mosq/mosquitto.conf" 2>>"$work/m.err" &
      M_PID=$!
      pids+=("$M_PID")
      for _ in $(seq 1 100); do port_free "$M_PORT" || break; sleep 0.05; done
      sim mosquitto "127.0.0.1:$M_PORT" "$M_PID"
      kill -TERM "$M_PID"; wait "$M_PID" 2>/dev/null || true
    fi
  done
done

median() { # name key
  awk -F'\t' -v n="$1" -v k="$2" '$1 == n && $2 == k {print $3}' "$results" | sort -g |
    awk '{v[NR] = $1} END {if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}
echo
echo "== $DEVICES simulated devices, medians of $ROUNDS rounds =="
printf '%-22s %12s %12s %8s\n' metric garrison mosquitto ratio
for k in connects_per_s connect_seconds sim_rss_kb broker_rss_kb; do
  g=$(median garrison "$k"); m=$(median mosquitto "$k")
  printf '%-22s %12s %12s %8s\n' "$k" "$g" "$m" "$(echo "scale=2; $g / $m" | bc 2>/dev/null || echo -)"
done
echo "enrollment (round 1): $(awk -F'\t' '$2 == "enrolled" && $3 > 0 {print $3 " devices"}' "$results" | head -1) in $(awk -F'\t' '$2 == "enroll_seconds" {print $3}' "$results" | head -1) s"
echo "every value:"; sort "$results" | column -t -s $'\t'
