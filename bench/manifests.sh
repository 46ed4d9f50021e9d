#!/usr/bin/env bash
# Manifest verifications per second per core: Garrison's device-side check
# (garrison_update::verify_manifest, criterion, one thread) beside pycose (Python with OpenSSL
# through `cryptography`) decoding, verifying and reading the same kind of COSE_Sign1 manifest,
# one process, in the same run, for Ed25519 and ECDSA P-256. Garrison's check does more than
# pycose's: it also looks the key up in the pinned root and checks vendor, class, sequence and
# expiry.
#
# Usage: bench/manifests.sh   (env: BENCH_SECONDS=3 for pycose, BENCH_SKIP_BUILD=1)
# Needs: python3 with pycose 1.1.0 and cbor2 (pip install 'pycose==1.1.0' 'cbor2>=5.4,<6').
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=${CARGO_TARGET_DIR:-target}
python3 -c 'import pycose, cbor2' 2>/dev/null || pip install -q 'pycose==1.1.0' 'cbor2>=5.4,<6'
if [ -z "${BENCH_SKIP_BUILD:-}" ]; then
  cargo build --release --locked -p garrison
fi
BIN=$(realpath "$TARGET/release/garrison")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Garrison: criterion's median time per verification.
bench_out=$(cargo bench --locked -p garrison-update --bench verify 2>/dev/null)
ours() { # per-iteration time → verifications/s
  echo "$bench_out" | awk -v name="verify_manifest/$1" '
    $1 == name { found = 1 }
    found {
      for (i = 1; i <= NF; i++) if ($i == "time:") {
        v = $(i + 3); u = $(i + 4)
        f = (u == "ns") ? 1e-9 : (u == "µs" || u == "us") ? 1e-6 : (u == "ms") ? 1e-3 : 1
        printf "%.0f\n", 1 / (v * f); exit
      }
    }'
}

printf '%-8s %16s %16s %10s\n' algorithm garrison/s pycose/s ratio
for algorithm in ed25519 p256; do
  (cd "$work" && "$BIN" release keygen "rel-$algorithm" --algorithm "$algorithm" >/dev/null)
  head -c 65536 /dev/urandom > "$work/image.bin"
  (cd "$work" && "$BIN" release sign --key "rel-$algorithm.key" --vendor acme --model AV-CAM-220 \
      --sequence 58 --version 5.8.0 image.bin --out "m-$algorithm.cose" >/dev/null)
  theirs=$(python3 bench/cose_verify_bench.py "$work/m-$algorithm.cose" "$work/rel-$algorithm.pub")
  mine=$(ours "$algorithm")
  printf '%-8s %16s %16s %9.1fx\n' "$algorithm" "$mine" "$theirs" "$(echo "$mine / $theirs" | bc -l)"
done
