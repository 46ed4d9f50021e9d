"""Verifies a Garrison signed manifest (COSE_Sign1) or trust root (COSE_Sign) with pycose, an
independent COSE implementation, and prints the payload as CBOR diagnostic JSON.

usage: cose_verify.py sign1 MANIFEST PUBLIC.pem
       cose_verify.py sign ROOT PUBLIC.pem [PUBLIC.pem ...]   (every listed key must verify)
Exit 0 when every signature verifies, 1 otherwise.
"""
import json
import sys

import cbor2
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from pycose.keys import CoseKey
from pycose.messages import CoseMessage


def cose_key(path):
    with open(path, "rb") as f:
        public = serialization.load_pem_public_key(f.read())
    if isinstance(public, (ed25519.Ed25519PublicKey, ec.EllipticCurvePublicKey)):
        return CoseKey._from_cryptography_key(public)
    raise SystemExit(f"unsupported key in {path}")


def main():
    kind, doc, *keys = sys.argv[1:]
    with open(doc, "rb") as f:
        msg = CoseMessage.decode(f.read())
    ok, error = True, None
    try:
        if kind == "sign1":
            msg.key = cose_key(keys[0])
            ok = msg.verify_signature()
        else:
            for path, signer in zip(keys, msg.signers):
                signer.key = cose_key(path)
                ok = ok and signer.verify_signature()
    except Exception as e:  # a key of another type, a malformed signature
        ok, error = False, repr(e)
    payload = cbor2.loads(msg.payload)
    print(json.dumps({"verified": bool(ok), "error": error, "payload": payload}, default=str))
    sys.exit(0 if ok else 1)


main()
