#!/usr/bin/env python3
"""A second, independent DSSE verifier for EphemeralCI job attestations (Python `cryptography`).

Usage: verify_dsse.py ENVELOPE.json JWKS.json
Prints the statement's subject and exits 0 when one signature is a valid ECDSA P-256/SHA-256
signature (DER, as DSSE tools use) over PAE(payloadType, payload) by the JWKS key its keyid names;
exits 1 otherwise. Written from the DSSE specification, sharing no code with EphemeralCI.
"""
import base64
import json
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec


def pae(payload_type: str, payload: bytes) -> bytes:
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def b64url(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def public_key(jwk: dict) -> ec.EllipticCurvePublicKey:
    if jwk.get("kty") != "EC" or jwk.get("crv") != "P-256":
        raise ValueError("not an EC P-256 key")
    x = int.from_bytes(b64url(jwk["x"]), "big")
    y = int.from_bytes(b64url(jwk["y"]), "big")
    return ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()


def main() -> int:
    with open(sys.argv[1], encoding="utf-8") as f:
        envelope = json.load(f)
    with open(sys.argv[2], encoding="utf-8") as f:
        keys = {k.get("kid"): k for k in json.load(f)["keys"]}
    payload = base64.b64decode(envelope["payload"], validate=True)
    message = pae(envelope["payloadType"], payload)
    for signature in envelope.get("signatures", []):
        jwk = keys.get(signature.get("keyid"))
        if jwk is None:
            continue
        try:
            public_key(jwk).verify(base64.b64decode(signature["sig"]), message, ec.ECDSA(hashes.SHA256()))
        except (InvalidSignature, ValueError):
            continue
        statement = json.loads(payload)
        subject = statement["subject"][0]
        print("OK", signature["keyid"], statement["predicateType"], subject["name"], subject["digest"]["gitCommit"])
        return 0
    print("FAIL: no valid signature by a key of the JWKS")
    return 1


if __name__ == "__main__":
    sys.exit(main())
