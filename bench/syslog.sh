#!/usr/bin/env bash
# Syslog intake vs rsyslog, same sender, same machine, same stream.
#
# One sender (bench/syslog_send.py, stdlib Python) writes N RFC 5424 messages, newline framed,
# over one TCP connection as fast as the receiver takes them. Receivers, alternating per round:
#   - Garrison `serve` with `[syslog] tcp` on, which parses each message, normalises it and runs
#     it through detection (the built-in pack; these messages are `product: linux`, so they are
#     evaluated and pruned like any log line) — counted by garrison_syslog_messages_total and
#     garrison_monitor_events_total;
#   - rsyslogd (Debian) with imtcp writing every message to a file (its cheapest useful job).
# Measured: messages/s from the first byte sent until the receiver has them all (Garrison: the
# monitor's event counter reaches N; rsyslog: the file has N lines). Medians of the rounds.
#
# Usage: bench/syslog.sh   (env: BENCH_MESSAGES=200000 BENCH_ROUNDS=3 BENCH_SKIP_BUILD=1)
# Needs: rsyslog, python3, curl, jq; cargo unless BENCH_SKIP_BUILD is set.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${BENCH_MESSAGES:-200000}
ROUNDS=${BENCH_ROUNDS:-3}
TARGET=${CARGO_TARGET_DIR:-target}
RSYSLOGD=${BENCH_RSYSLOGD:-/usr/sbin/rsyslogd}
for tool in python3 curl jq "$RSYSLOGD"; do command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 2; }; done
if [ -z "${BENCH_SKIP_BUILD:-}" ]; then
  cargo build --release --locked -p garrison
fi
BIN=$TARGET/release/garrison
work=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"' EXIT
log() { echo "[$(date +%T)] $*" >&2; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now_ms() { date +%s%3N; }
results=$work/results.tsv
: >"$results"

# Garrison, once (its data directory is reused across rounds).
GPORT=$(free_port)
GDATA=$work/garrison
KEY=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
GARRISON_MASTER_KEY=$KEY GARRISON_LOG_LEVEL=warn GARRISON_API__LISTEN=127.0.0.1:0 \
  GARRISON_BROKER__ENABLED=false GARRISON_POSTURE__INTERVAL=0s \
  GARRISON_SYSLOG__TCP=127.0.0.1:$GPORT XDG_CONFIG_HOME="$work/cfg" \
  "$BIN" serve --data-dir "$GDATA" >"$work/g.out" 2>>"$work/g.err" &
pids+=("$!")
for _ in $(seq 1 300); do grep -q 'next:' "$work/g.out" 2>/dev/null && break; sleep 0.1; done
G_API=$(grep -o 'https://[0-9.:]*' "$work/g.out" | head -1)
[ -n "$G_API" ] || { echo "garrison serve did not start:" >&2; tail "$work/g.err" >&2; exit 1; }
CA=$GDATA/ca.pem
PASS=$(grep 'password:' "$work/g.out" | awk '{print $3}')
SESSION=$(curl -sf --cacert "$CA" -H 'content-type: application/json' \
  -d "{\"username\":\"admin\",\"password\":\"$PASS\"}" "$G_API/api/v1/auth/login" | jq -r .token)
events() {
  curl -sf --cacert "$CA" -H "Authorization: Bearer $SESSION" "$G_API/metrics" |
    awk '/^garrison_monitor_events_total\{category="syslog"\}/ {print $2}' | head -1
}

# rsyslog with imtcp → file.
RPORT=$(free_port)
mkdir -p "$work/rsyslog"
cat >"$work/rsyslog/rsyslog.conf" <<CONF
global(workDirectory="$work/rsyslog")
module(load="imtcp")
input(type="imtcp" port="$RPORT" address="127.0.0.1")
template(name="raw" type="string" string="%rawmsg%\n")
action(type="omfile" file="$work/rsyslog/out.log" template="raw" asyncWriting="on" ioBufferSize="256k")
CONF
"$RSYSLOGD" -n -f "$work/rsyslog/rsyslog.conf" -i "$work/rsyslog/pid" 2>>"$work/rsyslog/err" &
pids+=("$!")
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$RPORT") 2>/dev/null && break; sleep 0.1; done

for round in $(seq 1 "$ROUNDS"); do
  # Garrison
  before=$(events); before=${before:-0}
  start=$(now_ms)
  python3 bench/syslog_send.py 127.0.0.1 "$GPORT" "$N"
  want=$(python3 -c "print(int(float('$before')) + $N)")
  while :; do
    got=$(events); got=${got:-0}
    [ "$(python3 -c "print(int(float('$got')) >= $want)")" = True ] && break
    sleep 0.05
  done
  end=$(now_ms)
  rate=$(python3 -c "print(round($N * 1000 / ($end - $start)))")
  printf 'garrison\t%s\t%s\n' "$round" "$rate" | tee -a "$results" >&2
  # rsyslog
  : >"$work/rsyslog/out.log" 2>/dev/null || true
  lines0=$(wc -l <"$work/rsyslog/out.log" 2>/dev/null || echo 0)
  start=$(now_ms)
  python3 bench/syslog_send.py 127.0.0.1 "$RPORT" "$N"
  while [ "$(( $(wc -l <"$work/rsyslog/out.log" 2>/dev/null || echo 0) - lines0 ))" -lt "$N" ]; do sleep 0.05; done
  end=$(now_ms)
  rate=$(python3 -c "print(round($N * 1000 / ($end - $start)))")
  printf 'rsyslog\t%s\t%s\n' "$round" "$rate" | tee -a "$results" >&2
done
python3 - "$results" <<'PY'
import statistics, sys
rows = [l.split('\t') for l in open(sys.argv[1]).read().split('\n') if l]
med = {k: statistics.median(int(r[2]) for r in rows if r[0] == k) for k in ('garrison', 'rsyslog')}
print(f"messages/s, median of {len(rows)//2} rounds: garrison {med['garrison']:.0f}, rsyslog {med['rsyslog']:.0f}, ratio {med['garrison']/med['rsyslog']:.2f}x")
PY
