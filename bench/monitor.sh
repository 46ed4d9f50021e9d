#!/usr/bin/env bash
# Monitoring end to end, sustained: devices publish security-event batches over MQTT (mutual
# TLS, QoS 1) into a release `garrison serve` on SQLite; every event goes broker → intake →
# store (device_events) → normalise → enrich → Sigma detection and correlation (the built-in
# IoT pack) → alerts. Paced runs at increasing event rates, then one flat out.
#
# Each message is a contract `events` batch of 10 events (an SSH key login, processes,
# connections, a listening port, a clock sync, and one failed telnet login, so the brute-force
# correlation keeps per-device state and raises its alert). Reported per run:
#   acked/s      events whose MQTT message the broker acknowledged (loadgen), per second
#   stored/s     events written to the store (garrison_inventory_events_written_total)
#   detected/s   events through detection (garrison_monitor_events_total)
#   lag p50/p99  broker arrival → detection done, per message, of this window's messages only:
#                the difference of the garrison_monitor_lag_seconds histogram before and after
#                the window, interpolated within its bucket as Prometheus' histogram_quantile
#   ≤100 ms      share of this window's messages whose lag was at most 100 ms
#   missing      acknowledged events not written once the server caught up (must be 0)
#   server cores CPU the server used in the window (user + system), in cores; the load
#                generator (8 mTLS publishers) shares the same two cores
#
# Usage: bench/monitor.sh   (env: BENCH_RATES="20000 50000" (events/s) BENCH_SECONDS=20
#                            BENCH_PUBLISHERS=8 BENCH_ATTACK=true (false: the telnet failure
#                            becomes a benign login, so no alert is updated) BENCH_SKIP_BUILD=1
#                            BENCH_DATABASE_URL=postgres://… (an empty database; default: the
#                            embedded SQLite))
# Needs: openssl, curl, jq.
set -euo pipefail
cd "$(dirname "$0")/.."
read -r -a RATES <<<"${BENCH_RATES:-20000 50000}"
SECONDS_PER_RUN=${BENCH_SECONDS:-20}
PUBLISHERS=${BENCH_PUBLISHERS:-8}
BATCH=10
TARGET=${CARGO_TARGET_DIR:-target}
for tool in openssl curl jq bc; do command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 2; }; done
if [ -z "${BENCH_SKIP_BUILD:-}" ]; then
  cargo build --release --locked -p garrison -p garrison-loadgen
fi
BIN=$TARGET/release/garrison
LG=$TARGET/release/garrison-loadgen
work=$(mktemp -d)
pid=
cleanup() {
  local rc=$?
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  wait 2>/dev/null || true
  [ "$rc" -ne 0 ] && tail -20 "$work/err" >&2 || true
  rm -rf "$work"
}
trap cleanup EXIT
log() { echo "[$(date +%T)] $*" >&2; }

GARRISON_MASTER_KEY=$(openssl rand -base64 32) GARRISON_LOG_LEVEL=warn,rmqtt=error \
  GARRISON_BROKER__LISTEN=127.0.0.1:0 GARRISON_API__LISTEN=127.0.0.1:0 \
  GARRISON_BROKER__MAX_MESSAGES_PER_SECOND=0 GARRISON_BROKER__MAX_BYTES_PER_SECOND=0 \
  GARRISON_POSTURE__INTERVAL=0s XDG_CONFIG_HOME="$work/cfg" \
  "$BIN" serve --data-dir "$work/data" ${BENCH_DATABASE_URL:+--database-url "$BENCH_DATABASE_URL"} \
  >"$work/out" 2>"$work/err" &
pid=$!
for _ in $(seq 1 600); do grep -q 'next:' "$work/out" 2>/dev/null && break; sleep 0.1; done
url=$(grep -o 'https://[0-9.:]*' "$work/out" | head -1)
mqtt=$(grep -o 'mqtts://[0-9.:]*' "$work/out" | head -1 | sed 's|mqtts://||')
pass=$(grep 'password:' "$work/out" | awk '{print $3}')
ca=$work/data/ca.pem
token=$(curl -sf --cacert "$ca" -H 'content-type: application/json' \
  -d "{\"username\":\"admin\",\"password\":\"$pass\"}" "$url/api/v1/auth/login" | jq -r .token)
api() { curl -sSf --cacert "$ca" -X "$1" -H "Authorization: Bearer $token" ${3:+-H 'content-type: application/json' -d "$3"} "$url$2"; }
metric() { api GET /metrics | awk -v m="$1" 'index($0, m) == 1 {s += $2} END {print s + 0}'; }
# The lag histogram's cumulative bucket counts, one "upper-bound count" line per bucket.
lag_buckets() { api GET /metrics | awk -F'[{}" ]+' '/^garrison_monitor_lag_seconds_bucket/ {print $3, $4}'; }
# Quantile $1 (ms) of the observations between two lag_buckets snapshots (files $2, $3).
window_quantile() {
  join -a 2 -e 0 -o 0,1.2,2.2 "$2" "$3" | sort -g | awk -v q="$1" '
    {le[NR] = $1; n[NR] = $3 - $2}
    END {
      total = n[NR]; if (total == 0) {print "-"; exit}
      want = q * total; lower = 0; below = 0
      for (i = 1; i <= NR; i++) {
        if (n[i] >= want) {
          if (le[i] == "+Inf") {printf ">%g", lower * 1000; exit}
          printf "%.1f", (lower + (le[i] - lower) * (want - below) / (n[i] - below)) * 1000; exit
        }
        lower = le[i]; below = n[i]
      }
    }'
}
# Share (%) of the window's observations at most $1 seconds.
window_share() {
  join -a 2 -e 0 -o 0,1.2,2.2 "$2" "$3" | awk -v b="$1" '$1 == b {part = $3 - $2} $1 == "+Inf" {total = $3 - $2}
    END {if (total > 0) printf "%.2f", 100 * part / total; else print "-"}'
}
# A summary's quantile in ms: metric name, labels before quantile (with a trailing comma), q.
stage_ms() { api GET /metrics | awk -v m="$1{$2quantile=\"$3\"}" 'index($0, m) == 1 {printf "%.1f", $2 * 1000}' | head -1; }

boot=$(api POST /api/v1/enrollment/tokens "{\"device_pattern\":\"bench-*\",\"max_uses\":$PUBLISHERS}" | jq -r .token)
LOADGEN_EST_TOKEN=$boot "$LG" est --url "$url" --ca "$ca" --count "$PUBLISHERS" --concurrency 2 \
  --prefix bench --out "$work/certs" --json >/dev/null
now=$(($(date +%s) * 1000))
jq -nc --argjson at "$now" '{schema: 1, events: [
  {at: $at, kind: "login_succeeded", user: "ops", service: "sshd", source: "10.0.0.7", method: "publickey"},
  {at: $at, kind: "process_started", name: "lighttpd", path: "/usr/sbin/lighttpd", pid: 812, user: "www"},
  {at: $at, kind: "connection_opened", protocol: "tcp", destination: "10.0.0.20", port: 443, process: "agent"},
  {at: $at, kind: "process_started", name: "sh", path: "/bin/sh", pid: 913, user: "www"},
  {at: $at, kind: "connection_opened", protocol: "udp", destination: "10.0.0.1", port: 123, process: "ntpd"},
  {at: $at, kind: "listening_port_opened", protocol: "tcp", port: 8080, process: "lighttpd"},
  {at: $at, kind: "process_started", name: "logrotate", path: "/usr/sbin/logrotate", pid: 1014, user: "root"},
  {at: $at, kind: "connection_opened", protocol: "tcp", destination: "10.0.0.21", port: 8883, process: "agent"},
  {at: $at, kind: "login_succeeded", user: "ops", service: "sshd", source: "10.0.0.8", method: "publickey"},
  (if $attack then {at: $at, kind: "login_failed", user: "admin", service: "telnetd", source: "203.0.113.7"}
   else {at: $at, kind: "login_succeeded", user: "ops", service: "sshd", source: "10.0.0.9", method: "publickey"} end)
]}' --argjson attack "${BENCH_ATTACK:-true}" >"$work/events.json"

results=$work/results.tsv
cpu_ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
run() { # events/s (0: flat out)
  local rate=$1 msgs=$(($1 / BATCH))
  local written0 detected0 out acked written detected cpu0 cpu
  lag_buckets | sort >"$work/lag0"
  written0=$(metric garrison_inventory_events_written_total)
  detected0=$(metric garrison_monitor_events_total)
  cpu0=$(cpu_ticks)
  out=$("$LG" pubsub --host 127.0.0.1 --port "${mqtt##*:}" --ca "$ca" --certs "$work/certs" \
    --publishers "$PUBLISHERS" --qos 1 --duration "$SECONDS_PER_RUN" --rate "$msgs" \
    --payload-file "$work/events.json" --topic 'garrison/v1/d/{id}/events' --json)
  local p50 p99 share stages
  stages="events write p99/max $(stage_ms garrison_inventory_write_seconds 'what="events",' 0.99)/$(stage_ms garrison_inventory_write_seconds 'what="events",' 1) ms, alert write p99/max $(stage_ms garrison_monitor_alert_write_seconds '' 0.99)/$(stage_ms garrison_monitor_alert_write_seconds '' 1) ms"
  cpu=$(( $(cpu_ticks) - cpu0 ))
  acked=$(($(jq .acked <<<"$out") * BATCH))
  # Let the intake and the monitor finish what was acknowledged (they may run behind).
  for _ in $(seq 1 120); do
    written=$(echo "$(metric garrison_inventory_events_written_total) - $written0" | bc)
    [ "$written" -ge "$acked" ] && break
    sleep 0.5
  done
  detected=$(echo "$(metric garrison_monitor_events_total) - $detected0" | bc)
  lag_buckets | sort >"$work/lag1"
  p50=$(window_quantile 0.5 "$work/lag0" "$work/lag1")
  p99=$(window_quantile 0.99 "$work/lag0" "$work/lag1")
  share=$(window_share 0.1 "$work/lag0" "$work/lag1")
  local label=$rate; [ "$rate" = 0 ] && label=flat-out
  printf '%s\t%.0f\t%.0f\t%.0f\t%s\t%s\t%s\t%s\t%.2f\n' "$label" \
    "$(echo "$(jq .rate_per_s <<<"$out") * $BATCH" | bc)" \
    "$(echo "$written / $SECONDS_PER_RUN" | bc -l)" "$(echo "$detected / $SECONDS_PER_RUN" | bc -l)" \
    "$p50" "$p99" "$share" "$((acked - written))" "$(echo "$cpu / $(getconf CLK_TCK) / $SECONDS_PER_RUN" | bc -l)" | tee -a "$results" >&2
  log "  $stages"
}
printf 'target events/s\tacked/s\tstored/s\tdetected/s\tlag p50 ms\tlag p99 ms\t<=100ms %%\tmissing\tserver cores\n' >&2
for r in "${RATES[@]}"; do run "$r"; done
run 0
alerts=$(api GET '/api/v1/alerts?limit=500' | jq '[.items[] | select(.title == "Telnet brute force against a device")] | length')
log "brute-force alerts (one per device expected): $alerts"
log "server RSS: $(awk '/VmRSS/ {print $2, $3}' /proc/$pid/status), peak $(awk '/VmHWM/ {print $2, $3}' /proc/$pid/status)"
