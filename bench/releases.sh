#!/usr/bin/env bash
# The release repository's hot paths, against nginx as the peer, side by side in one run on
# the same machine, both over HTTPS (TLS 1.3, HTTP/2, curl as the client):
#   upload     PUT of a fresh artifact, streamed to disk. Garrison also hashes it and checks the
#              SHA-256 it was uploaded under, records it and audits it; nginx's DAV module only
#              writes the file.
#   download   GET of the whole artifact.
#   ranges     BENCH_RANGES requests of 64 KiB at random offsets, one curl per request
#              (resumed downloads).
# Each is run BENCH_RUNS times; medians are reported with Garrison/nginx ratios (throughput:
# >1 means Garrison is faster; for ranges, requests/s).
#
# Usage: bench/releases.sh   (env: BENCH_SIZE_MB=256 BENCH_RUNS=3 BENCH_RANGES=200
#                             BENCH_SKIP_BUILD=1)
# Needs: openssl, curl, jq, nginx (installed from Debian if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MB=${BENCH_SIZE_MB:-256}
RUNS=${BENCH_RUNS:-3}
RANGES=${BENCH_RANGES:-200}
TARGET=${CARGO_TARGET_DIR:-target}
command -v nginx >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null; }
for tool in openssl curl jq nginx; do command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 2; }; done
if [ -z "${BENCH_SKIP_BUILD:-}" ]; then
  cargo build --release --locked -p garrison
fi
BIN=$(realpath "$TARGET/release/garrison")
work=$(mktemp -d)
pid=
nginx_pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  [ -n "$nginx_pid" ] && kill "$nginx_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  [ -n "${BENCH_KEEP:-}" ] && echo "kept $work" >&2 || rm -rf "$work"
}
trap cleanup EXIT
log() { echo "[$(date +%T)] $*" >&2; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# Garrison on embedded defaults (SQLite), with an admin token and a pinned root.
GARRISON_MASTER_KEY=$(openssl rand -base64 32) GARRISON_LOG_LEVEL=warn,rmqtt=error \
  GARRISON_BROKER__ENABLED=false GARRISON_API__LISTEN=127.0.0.1:0 \
  GARRISON_POSTURE__INTERVAL=0s XDG_CONFIG_HOME="$work/cfg" \
  "$BIN" serve --data-dir "$work/data" >"$work/out" 2>"$work/err" &
pid=$!
for _ in $(seq 1 600); do grep -q 'next:' "$work/out" 2>/dev/null && break; sleep 0.1; done
url=$(grep -o 'https://[0-9.:]*' "$work/out" | head -1)
pass=$(grep 'password:' "$work/out" | awk '{print $3}')
ca=$work/data/ca.pem
token=$(curl -sf --cacert "$ca" -H 'content-type: application/json' \
  -d "{\"username\":\"admin\",\"password\":\"$pass\"}" "$url/api/v1/auth/login" | jq -r .token)
(cd "$work" && "$BIN" release keygen root >/dev/null && "$BIN" release root \
  --root-key root.pub --release-key root.pub --sign-with root.key --out root.cose >/dev/null)
curl -sSf --cacert "$ca" -X PUT -H "Authorization: Bearer $token" -H 'content-type: application/cose' \
  --data-binary @"$work/root.cose" "$url/api/v1/updates/root" >/dev/null

# nginx with DAV PUT over TLS, a certificate from the same kind of key.
mkdir -p "$work/nginx/www" "$work/nginx/tmp"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=127.0.0.1 \
  -addext subjectAltName=IP:127.0.0.1 -keyout "$work/nginx/key.pem" -out "$work/nginx/cert.pem" 2>/dev/null
nport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$work/nginx/nginx.conf" <<CONF
user root;
worker_processes 2;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $work/nginx/tmp;
  proxy_temp_path $work/nginx/tmp; fastcgi_temp_path $work/nginx/tmp;
  uwsgi_temp_path $work/nginx/tmp; scgi_temp_path $work/nginx/tmp;
  sendfile on;
  server {
    listen 127.0.0.1:$nport ssl http2;
    ssl_certificate $work/nginx/cert.pem; ssl_certificate_key $work/nginx/key.pem;
    ssl_protocols TLSv1.3;
    root $work/nginx/www;
    client_max_body_size 0;
    location / { dav_methods PUT; create_full_put_path on; }
  }
}
CONF
nginx -c "$work/nginx/nginx.conf" &
nginx_pid=$!
sleep 1

secs() { awk '{print $1}'; }
results=$work/results.tsv
: >"$results"
for run in $(seq 1 "$RUNS"); do
  file=$work/artifact-$run.bin
  head -c $((SIZE_MB * 1024 * 1024)) /dev/urandom >"$file"
  sha=$(sha256sum "$file" | cut -c1-64)
  # Upload.
  g_up=$(curl -sSf -o /dev/null -w '%{time_total}' --cacert "$ca" -H "Authorization: Bearer $token" \
    -T "$file" "$url/api/v1/updates/artifacts/$sha")
  n_up=$(curl -sSf -o /dev/null -w '%{time_total}' --cacert "$work/nginx/cert.pem" \
    -T "$file" "https://127.0.0.1:$nport/$sha")
  # Download.
  g_down=$(curl -sSf -o /dev/null -w '%{time_total}' --cacert "$ca" -H "Authorization: Bearer $token" \
    "$url/api/v1/updates/artifacts/$sha")
  n_down=$(curl -sSf -o /dev/null -w '%{time_total}' --cacert "$work/nginx/cert.pem" \
    "https://127.0.0.1:$nport/$sha")
  # Ranges: the same random offsets for both.
  offsets=$(python3 -c "import random; random.seed($run); print(' '.join(str(random.randrange(0, $SIZE_MB*1024*1024 - 65536)) for _ in range($RANGES)))")
  t0=$(date +%s.%N)
  for o in $offsets; do
    curl -sSf -o /dev/null --cacert "$ca" -H "Authorization: Bearer $token" -r "$o-$((o + 65535))" \
      "$url/api/v1/updates/artifacts/$sha"
  done
  t1=$(date +%s.%N)
  for o in $offsets; do
    curl -sSf -o /dev/null --cacert "$work/nginx/cert.pem" -r "$o-$((o + 65535))" \
      "https://127.0.0.1:$nport/$sha"
  done
  t2=$(date +%s.%N)
  g_rng=$(echo "$t1 - $t0" | bc); n_rng=$(echo "$t2 - $t1" | bc)
  # The stored file is the uploaded one.
  cmp -s "$file" "$work/data/artifacts/$sha" || { echo "stored artifact differs" >&2; exit 1; }
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$g_up" "$n_up" "$g_down" "$n_down" "$g_rng" "$n_rng" >>"$results"
  log "run $run: upload ${g_up}s / ${n_up}s, download ${g_down}s / ${n_down}s, ranges ${g_rng}s / ${n_rng}s (Garrison / nginx)"
  rm -f "$file" "$work/nginx/www/$sha" "$work/data/artifacts/$sha"
done

col() { cut -f"$1" "$results" | median; }
mbps() { echo "scale=1; $SIZE_MB / $1" | bc; }
rps() { echo "scale=1; $RANGES / $1" | bc; }
gu=$(mbps "$(col 1)"); nu=$(mbps "$(col 2)")
gd=$(mbps "$(col 3)"); nd=$(mbps "$(col 4)")
gr=$(rps "$(col 5)"); nr=$(rps "$(col 6)")
echo
echo "| ${SIZE_MB} MiB artifact, median of $RUNS | Garrison | nginx | ratio |"
echo "|---|---|---|---|"
echo "| upload (MiB/s) | $gu | $nu | $(echo "scale=2; $gu / $nu" | bc)× |"
echo "| download (MiB/s) | $gd | $nd | $(echo "scale=2; $gd / $nd" | bc)× |"
echo "| 64 KiB range requests (req/s, one curl each) | $gr | $nr | $(echo "scale=2; $gr / $nr" | bc)× |"
