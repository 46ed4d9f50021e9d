"""pycose's side of bench/manifests.sh: decode a COSE_Sign1 manifest, verify its signature with
the release key and decode the CBOR payload, as a device written in Python with pycose would,
as many times as it can in BENCH_SECONDS; prints verifications per second.

usage: cose_verify_bench.py MANIFEST PUBLIC.pem
"""
import os
import sys
import time

import cbor2
from cryptography.hazmat.primitives import serialization
from pycose.keys import CoseKey
from pycose.messages import CoseMessage


def main():
    manifest, public = sys.argv[1:3]
    with open(manifest, "rb") as f:
        data = f.read()
    with open(public, "rb") as f:
        key = CoseKey._from_cryptography_key(serialization.load_pem_public_key(f.read()))
    seconds = float(os.environ.get("BENCH_SECONDS", "3"))
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        msg = CoseMessage.decode(data)
        msg.key = key
        if not msg.verify_signature():
            raise SystemExit("signature does not verify")
        payload = cbor2.loads(msg.payload)
        if not payload:
            raise SystemExit("empty payload")
        done += 1
    print(f"{done / (time.perf_counter() - start):.0f}")


main()
