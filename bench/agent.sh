#!/usr/bin/env bash
# The device agent's footprint (garrison-agent, the standalone binary that goes on devices) side
# by side with a peer doing comparable collection work on the same machine in the same run:
# Debian's prometheus-node-exporter, scraped every SCRAPE seconds.
#
# What is measured:
#   size      garrison-agent as built (release profile, line tables) and stripped (a copy is
#             stripped); the peer's binary as Debian ships it (already stripped) and stripped.
#   steady    the agent runs against a real `garrison serve` (temporary data dir, bootstrap token
#             made over the REST API, EST enrollment, MQTT over mutual TLS) and reads this
#             machine's real / (dpkg database and SBOM, /proc, /etc …), telemetry every 5 s and a
#             full rescan every 30 s. After WARMUP seconds (the first inventory, full SBOM
#             included, must have reached the server) VmRSS/VmHWM are sampled from
#             /proc/PID/status every second for WINDOW seconds: median and max; CPU time
#             (utime+stime from /proc/PID/stat) over the window as % of one core; the
#             anonymous/file-backed split from /proc/PID/smaps_rollup at the end.
#             The peer is started directly (not via systemd) on a free port and measured the
#             same way, with a curl scrape of /metrics every SCRAPE seconds from its start.
#             Agent and peer run alternately (order swapped every round), a fresh process each,
#             ROUNDS rounds; the table shows medians and agent/peer ratios.
#   collect   wall time of one full collection: `garrison-agent --once` (inventory incl. SBOM
#             of this machine, printed as JSON) vs one scrape of a running peer with curl; both
#             include a process start. hyperfine if installed, else a timed loop.
#   diag      (BENCH_EMPTY_ROOT=1) the agent once more with --root pointing to an empty
#             directory: the same runtime, TLS and MQTT session with no facts to read, to tell
#             how much of the RSS the collection itself costs.
#
# Usage: bench/agent.sh    (env: BENCH_RUNS=3 BENCH_WARMUP=30 BENCH_WINDOW=60
#                           BENCH_SCRAPE_INTERVAL=5 BENCH_ONCE_RUNS=5 BENCH_EMPTY_ROOT=1
#                           BENCH_TELEMETRY_INTERVAL=5s BENCH_SCAN_INTERVAL=30s
#                           BENCH_PEER=/usr/bin/prometheus-node-exporter BENCH_SKIP_BUILD=1
#                           BENCH_NO_INSTALL=1)
# Needs: openssl, curl, jq, strip (binutils), prometheus-node-exporter; hyperfine optional; cargo
# unless BENCH_SKIP_BUILD is set. Missing Debian packages are installed with apt-get when run as
# root, unless BENCH_NO_INSTALL is set. Takes about ROUNDS × 2 × (WARMUP + WINDOW) s + 2 min.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${BENCH_RUNS:-3}
WARMUP=${BENCH_WARMUP:-30}
WINDOW=${BENCH_WINDOW:-60}
SCRAPE=${BENCH_SCRAPE_INTERVAL:-5}
ONCE_RUNS=${BENCH_ONCE_RUNS:-5}
EMPTY_ROOT=${BENCH_EMPTY_ROOT:-1}
TELEMETRY=${BENCH_TELEMETRY_INTERVAL:-5s}
SCAN=${BENCH_SCAN_INTERVAL:-30s}
PEER=${BENCH_PEER:-/usr/bin/prometheus-node-exporter}
TARGET=${CARGO_TARGET_DIR:-target}
log() { echo "[$(date +%T)] $*" >&2; }

need() { # command debian-package
  command -v "$1" >/dev/null && return
  if [ -z "${BENCH_NO_INSTALL:-}" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing $2 (for $1)"
    apt-get install -y "$2" >/dev/null 2>&1 || { apt-get update >/dev/null 2>&1 && apt-get install -y "$2" >/dev/null; }
  fi
  command -v "$1" >/dev/null || { echo "missing: $1 (Debian package $2)" >&2; exit 2; }
}
need openssl openssl
need curl curl
need jq jq
need strip binutils
need "$PEER" prometheus-node-exporter
(need hyperfine hyperfine 2>/dev/null) || log "hyperfine unavailable: timing with a loop"

if [ -z "${BENCH_SKIP_BUILD:-}" ]; then
  cargo build --release --locked -p garrison --bin garrison
  cargo build --release --locked -p garrison-agent --bin garrison-agent
fi
[ -x "$TARGET/release/garrison" ] && [ -x "$TARGET/release/garrison-agent" ] ||
  { echo "no release binaries under $TARGET" >&2; exit 2; }
export RUST_LIB_BACKTRACE=0
TCK=$(getconf CLK_TCK)
# The tree as it was built (read now: others may commit or edit while this runs).
SOURCE="git $(git rev-parse --short HEAD 2>/dev/null || echo ?), \
$(git --no-optional-locks status --porcelain 2>/dev/null | wc -l) files changed in the working tree at $(date -u +%T) UTC"

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
# Copies, so that a rebuild in the target directory during the run cannot change what is measured.
mkdir -p "$work/bin"
cp "$TARGET/release/garrison" "$TARGET/release/garrison-agent" "$work/bin/"
BIN=$work/bin/garrison
AGENT=$work/bin/garrison-agent
results=$work/results.tsv
: >"$results"
record() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" | tee -a "$results" >&2; }
die() { # message [log file to show]
  log "FAILED: $1"
  if [ -n "${2:-}" ] && [ -f "$2" ]; then tail -n 30 "$2" >&2; fi
  exit 1
}
alive() { kill -0 "$1" 2>/dev/null; }
stop() { kill -TERM "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {
  local p
  while :; do p=$((20000 + RANDOM % 30000)); port_free "$p" && { echo "$p"; return; }; done
}
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
kb_mb() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }

# ---- binary sizes ---------------------------------------------------------------------------
mkdir -p "$work/strip"
cp "$AGENT" "$work/strip/garrison-agent"
cp "$PEER" "$work/strip/peer"
strip "$work/strip/garrison-agent" "$work/strip/peer"
record size_unstripped agent "$(stat -c %s "$AGENT")"
record size_stripped agent "$(stat -c %s "$work/strip/garrison-agent")"
record size_unstripped peer "$(stat -c %s "$PEER")"
record size_stripped peer "$(stat -c %s "$work/strip/peer")"

# ---- Garrison server, bootstrap token -------------------------------------------------------
KEY=$(openssl rand -base64 32)
GDATA=$work/garrison-data
GARRISON_MASTER_KEY=$KEY GARRISON_LOG_LEVEL=warn \
  GARRISON_API__LISTEN=127.0.0.1:0 GARRISON_BROKER__LISTEN=127.0.0.1:0 \
  XDG_CONFIG_HOME="$work/cfg" "$BIN" serve --data-dir "$GDATA" >"$work/g.out" 2>"$work/g.err" &
G_PID=$!
pids+=("$G_PID")
for _ in $(seq 1 200); do grep -q 'mqtt:' "$work/g.out" 2>/dev/null && break; sleep 0.05; done
G_API=$(grep -o 'https://[0-9.:]*' "$work/g.out" | head -1 || true)
G_MQTT=$(grep -o 'mqtts://[0-9.:]*' "$work/g.out" | head -1 | sed 's#mqtts://##' || true)
[ -n "$G_API" ] && [ -n "$G_MQTT" ] && alive "$G_PID" || die "garrison serve did not start" "$work/g.err"
CA=$GDATA/ca.pem
PASS=$(grep 'password:' "$work/g.out" | awk '{print $3}')
api() { curl -sf --cacert "$CA" -H 'content-type: application/json' "$@"; }
SESSION=$(api -d "{\"username\":\"admin\",\"password\":\"$PASS\"}" "$G_API/api/v1/auth/login" | jq -r .token)
[ -n "$SESSION" ] && [ "$SESSION" != null ] || die "cannot log in to Garrison" "$work/g.err"
BOOT=$(api -H "Authorization: Bearer $SESSION" -d '{"device_pattern":"bench-agent*","max_uses":100}' \
  "$G_API/api/v1/enrollment/tokens" | jq -r .token)
[ -n "$BOOT" ] && [ "$BOOT" != null ] || die "cannot create a bootstrap token" "$work/g.err"
inventories() { # inventory reports accepted by the server so far
  api -H "Authorization: Bearer $SESSION" "$G_API/metrics" |
    awk '/^garrison_inventory_reports_total\{channel="inventory"\}/ {n = $2} END {print n + 0}'
}
bytes_in() { # bytes the broker received from a device (its session counters)
  api -H "Authorization: Bearer $SESSION" "$G_API/api/v1/devices/$1/session" | jq -r '.bytes_in // 0'
}
log "garrison serve at $G_API, broker $G_MQTT"

# ---- one measured window ----------------------------------------------------------------------
# Samples VmRSS/VmHWM at 1 Hz for WINDOW s, records the figures under subject $1.
measure() { # subject pid log
  local who=$1 pid=$2 plog=$3 samples=$work/samples.$1.$r c0 c1 t0 t1
  : >"$samples"
  c0=$(cpu_ticks "$pid")
  t0=$(date +%s.%N)
  for _ in $(seq 1 "$WINDOW"); do
    alive "$pid" || die "$who exited during the window" "$plog"
    awk '/^VmRSS/ {r = $2} /^VmHWM/ {h = $2} END {print r, h}' "/proc/$pid/status" >>"$samples"
    sleep 1
  done
  c1=$(cpu_ticks "$pid")
  t1=$(date +%s.%N)
  record rss_median "$who" "$(awk '{print $1}' "$samples" | sort -n |
    awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}')"
  record rss_max "$who" "$(awk '$1 > m {m = $1} END {print m}' "$samples")"
  record hwm "$who" "$(tail -1 "$samples" | awk '{print $2}')"
  record cpu_pct "$who" "$(awk -v c="$((c1 - c0))" -v k="$TCK" -v a="$t0" -v b="$t1" \
    'BEGIN {printf "%.2f", 100 * c / k / (b - a)}')"
  record rss_anon "$who" "$(awk '/^Anonymous:/ {print $2}' "/proc/$pid/smaps_rollup")"
  record rss_file "$who" "$(awk '/^Rss:/ {r = $2} /^Anonymous:/ {a = $2} END {print r - a}' "/proc/$pid/smaps_rollup")"
  cp "/proc/$pid/smaps" "$work/smaps.$who" 2>/dev/null || true
  record threads "$who" "$(awk '/^Threads:/ {print $2}' "/proc/$pid/status")"
}

agent_round() { # subject device-id [extra agent args…]
  local who=$1 dev=$2 before pid b0 b1 alog=$work/agent.$2.log
  shift 2
  before=$(inventories)
  NO_COLOR=1 "$AGENT" --server "$G_API" --mqtt "$G_MQTT" --ca-cert "$CA" --token "$BOOT" \
    --device-id "$dev" --state-dir "$work/state.$dev" --telemetry-interval "$TELEMETRY" \
    --scan-interval "$SCAN" "$@" >>"$alog" 2>&1 &
  pid=$!
  pids+=("$pid")
  sleep "$WARMUP"
  alive "$pid" || die "garrison-agent ($dev) did not keep running" "$alog"
  [ "$(inventories)" -gt "$before" ] || die "no inventory from $dev reached the server in ${WARMUP}s" "$alog"
  b0=$(bytes_in "$dev")
  measure "$who" "$pid" "$alog"
  b1=$(bytes_in "$dev")
  record sent_kb_per_min "$who" "$(awk -v a="$b0" -v b="$b1" -v w="$WINDOW" 'BEGIN {printf "%.1f", (b - a) / 1024 * 60 / w}')"
  stop "$pid"
}

SCRAPES=$work/scrapes
scraper() { # url: one scrape every SCRAPE s until TERM
  local s=
  trap '[ -n "$s" ] && kill "$s" 2>/dev/null; exit 0' TERM
  while :; do
    curl -sf -o /dev/null -w '%{size_download}\n' "$1" >>"$SCRAPES" 2>/dev/null || echo fail >>"$SCRAPES"
    sleep "$SCRAPE" &
    s=$!
    wait "$s" || true
  done
}

peer_start() { # port → P_PID (waits for the port)
  "$PEER" --web.listen-address="127.0.0.1:$1" >>"$work/peer.log" 2>&1 &
  P_PID=$!
  pids+=("$P_PID")
  for _ in $(seq 1 100); do port_free "$1" || break; sleep 0.05; done
  alive "$P_PID" && ! port_free "$1" || die "$PEER did not start on port $1" "$work/peer.log"
}

peer_round() {
  local port s_pid n0 n1 f
  port=$(free_port)
  peer_start "$port"
  : >"$SCRAPES"
  scraper "http://127.0.0.1:$port/metrics" &
  s_pid=$!
  pids+=("$s_pid")
  sleep "$WARMUP"
  n0=$(grep -vc fail "$SCRAPES" || true)
  [ "$n0" -gt 0 ] || die "no successful scrape of the peer in ${WARMUP}s" "$work/peer.log"
  measure peer "$P_PID" "$work/peer.log"
  n1=$(grep -vc fail "$SCRAPES" || true)
  f=$(grep -c fail "$SCRAPES" || true)
  [ "$f" = 0 ] || die "$f scrapes of the peer failed" "$work/peer.log"
  record scrapes_in_window peer "$((n1 - n0))"
  record sent_kb_per_min peer "$(grep -v fail "$SCRAPES" | tail -n +"$((n0 + 1))" |
    awk -v w="$WINDOW" '{s += $1} END {printf "%.1f", s / 1024 * 60 / w}')"
  kill -TERM "$s_pid" 2>/dev/null || true
  wait "$s_pid" 2>/dev/null || true
  stop "$P_PID"
}

for r in $(seq 1 "$RUNS"); do
  order=(agent peer)
  if [ $((r % 2)) = 0 ]; then order=(peer agent); fi
  for who in "${order[@]}"; do
    log "round $r/$RUNS: $who (${WARMUP}s warm-up, ${WINDOW}s window)"
    if [ "$who" = agent ]; then agent_round agent bench-agent; else peer_round; fi
  done
done
if [ "$EMPTY_ROOT" = 1 ]; then
  r=diag
  mkdir -p "$work/empty-root"
  log "diagnostic: garrison-agent with an empty --root (${WARMUP}s warm-up, ${WINDOW}s window)"
  agent_round agent-empty-root bench-agent-empty --root "$work/empty-root"
fi

# ---- one full collection ----------------------------------------------------------------------
timed() { # subject command… : median wall ms of ONCE_RUNS runs (1 warm-up)
  local who=$1; shift
  if command -v hyperfine >/dev/null; then
    hyperfine -N --warmup 1 --runs "$ONCE_RUNS" --export-json "$work/hf.$who.json" "$*" >&2
    record collect_ms "$who" "$(jq '.results[0].median * 1000 | . * 10 | round / 10' "$work/hf.$who.json")"
  else
    "$@" >/dev/null
    local i a b
    for i in $(seq 1 "$ONCE_RUNS"); do
      a=$(date +%s%N); "$@" >/dev/null; b=$(date +%s%N)
      echo $(((b - a) / 1000))
    done | sort -n | awk '{v[NR] = $1} END {m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.1f\n", m / 1000}' >"$work/t.$who"
    record collect_ms "$who" "$(cat "$work/t.$who")"
  fi
}
log "one full collection: garrison-agent --once vs one scrape of the peer"
"$AGENT" --once --device-id x >"$work/once.json" 2>"$work/once.err" || die "garrison-agent --once failed" "$work/once.err"
jq -e .software "$work/once.json" >/dev/null || die "garrison-agent --once printed no software inventory" "$work/once.json"
record once_json_kb agent "$(awk -v s="$(stat -c %s "$work/once.json")" 'BEGIN {printf "%.1f", s / 1024}')"
record once_packages agent "$(jq '.software.components | length' "$work/once.json")"
if [ -x /usr/bin/time ]; then
  record once_peak_rss agent "$(/usr/bin/time -f %M "$AGENT" --once --device-id x 2>&1 >/dev/null | tail -1)"
fi
timed agent "$AGENT" --once --device-id x
port=$(free_port)
peer_start "$port"
curl -sf -o "$work/peer.metrics" "http://127.0.0.1:$port/metrics" || die "cannot scrape the peer" "$work/peer.log"
record once_json_kb peer "$(awk -v s="$(stat -c %s "$work/peer.metrics")" 'BEGIN {printf "%.1f", s / 1024}')"
timed peer curl -sf -o /dev/null "http://127.0.0.1:$port/metrics"
stop "$P_PID"

# ---- checks ---------------------------------------------------------------------------------
failed=0
refused=$(grep -c 'Refused a device message' "$work/g.err" || true)
agent_warn=$(cat "$work"/agent.*.log | grep -cE ' (WARN|ERROR) ' || true)
alive "$G_PID" || { log "garrison serve exited"; failed=1; }

# ---- table ----------------------------------------------------------------------------------
median() { # metric subject
  awk -F'\t' -v s="$1" -v b="$2" '$1 == s && $2 == b && $3 != "" {print $3}' "$results" | sort -g |
    awk '{v[NR] = $1} END {if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}
runs_of() { awk -F'\t' -v s="$1" -v b="$2" '$1 == s && $2 == b {printf "%s%s", sep, $3; sep = " "}' "$results"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.2f", a / b}'; }
mb() { [ "$1" = - ] && echo - || kb_mb "$1"; }
bmb() { [ "$1" = - ] && echo - || awk -v b="$1" 'BEGIN {printf "%.1f", b / 1048576}'; }
echo
echo "== Device agent footprint =="
echo "$(date -u +%F), $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores, Linux $(uname -r)"
echo "$("$AGENT" --version) ($SOURCE) vs $("$PEER" --version 2>&1 | head -1)"
echo "$RUNS rounds, alternating; ${WARMUP}s warm-up, ${WINDOW}s window at 1 Hz; agent: telemetry $TELEMETRY, \
scan $SCAN, real /; peer scraped every ${SCRAPE}s"
printf '| %-50s | %10s | %10s | %9s |\n' figure agent peer "agent/peer"
printf '|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..52})" "$(printf -- '-%.0s' {1..12})" "$(printf -- '-%.0s' {1..12})" "$(printf -- '-%.0s' {1..11})"
row() { # label agent-value peer-value
  printf '| %-50s | %10s | %10s | %9s |\n' "$1" "$2" "$3" "$(ratio "$2" "$3")"
}
row "steady RSS (median VmRSS in window), MB" "$(mb "$(median rss_median agent)")" "$(mb "$(median rss_median peer)")"
row "max VmRSS in window, MB" "$(mb "$(median rss_max agent)")" "$(mb "$(median rss_max peer)")"
row "VmHWM (peak since start), MB" "$(mb "$(median hwm agent)")" "$(mb "$(median hwm peer)")"
row "  of RSS: anonymous (heap, stacks), MB" "$(mb "$(median rss_anon agent)")" "$(mb "$(median rss_anon peer)")"
row "  of RSS: file-backed (binary, libc), MB" "$(mb "$(median rss_file agent)")" "$(mb "$(median rss_file peer)")"
row "CPU in window, % of one core" "$(median cpu_pct agent)" "$(median cpu_pct peer)"
row "threads" "$(median threads agent)" "$(median threads peer)"
row "binary, stripped, MB" "$(bmb "$(median size_stripped agent)")" "$(bmb "$(median size_stripped peer)")"
row "binary as built / as shipped, MB" "$(bmb "$(median size_unstripped agent)")" "$(bmb "$(median size_unstripped peer)")"
row "one full collection (--once / one scrape), ms" "$(median collect_ms agent)" "$(median collect_ms peer)"
row "one collection's output, KB (JSON / text)" "$(median once_json_kb agent)" "$(median once_json_kb peer)"
row "sent in window, KB/min (MQTT bytes / scraped)" "$(median sent_kb_per_min agent)" "$(median sent_kb_per_min peer)"
echo
steady=$(median rss_median agent)
if [ "$steady" != - ] && [ "$steady" -le $((15 * 1024)) ]; then
  echo "Target ≤ 15 MB steady RSS: met ($(mb "$steady") MB)."
else
  echo "Target ≤ 15 MB steady RSS: MISSED ($(mb "$steady") MB)."
fi
if [ "$EMPTY_ROOT" = 1 ]; then
  echo "Diagnostic, agent with an empty --root (no facts): steady RSS $(mb "$(median rss_median agent-empty-root)") MB \
(anonymous $(mb "$(median rss_anon agent-empty-root)") MB), VmHWM $(mb "$(median hwm agent-empty-root)") MB, \
CPU $(median cpu_pct agent-empty-root) %."
fi
[ -n "$(runs_of once_peak_rss agent)" ] && echo "garrison-agent --once: peak RSS $(mb "$(median once_peak_rss agent)") MB \
(collection + JSON, no TLS/MQTT), $(median once_packages agent) packages."
echo "Agent RSS by mapping at the end of the last window (kB):"
awk '/^[0-9a-f]+-[0-9a-f]+ / {n = $6; if (n == "") n = "[anonymous mappings]"; sub(/.*\//, "", n)}
  /^Rss:/ {r[n] += $2} END {for (n in r) if (r[n] > 0) printf "  %8d  %s\n", r[n], n}' "$work/smaps.agent" |
  sort -rn | head -8
echo
echo "Every run (figure, subject: values):"
for key in $(cut -f1 "$results" | sort -u); do
  for b in agent peer agent-empty-root; do
    v=$(runs_of "$key" "$b"); [ -n "$v" ] && echo "  $key, $b: $v"
  done
done
echo
echo "Server: $refused device message(s) refused (\"Refused a device message\")."
grep 'Refused a device message' "$work/g.err" | head -5 || true
echo "Agent logs: $agent_warn WARN/ERROR line(s)."
grep -hE ' (WARN|ERROR) ' "$work"/agent.*.log | head -5 || true
[ "$refused" = 0 ] || failed=1
if [ "$failed" != 0 ]; then echo "CHECKS FAILED"; exit 1; fi
echo "Checks: every process started and kept running, every agent round delivered an inventory, no scrape failed, no device message refused."
