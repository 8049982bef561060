#!/usr/bin/env python3
"""Write tests/fixtures/alg-tokens.json: Twilio-style tokens signed with algorithms other than HS256.

PyJWT signs the HS384, HS512, none, RS256, ES256 and PS256 tokens. The two key-confusion tokens
are signed by hand with the hmac module, because PyJWT rejects an RSA public key PEM as an HMAC
secret: one declares HS256, the other RS256, and both carry HMAC-SHA256 keyed with the PEM.

The RSA and EC keys are generated on each run, so every run writes different tokens. The
fixture was generated once and is checked in, so rerun the script only to add cases.

Usage (from the repository root):
    python3 -m venv target/venv
    target/venv/bin/pip install PyJWT==2.15.1 cryptography==50.0.2
    target/venv/bin/python scripts/interop/make_alg_tokens.py
"""

import base64
import hashlib
import hmac
import json
import pathlib
import platform
import sys

import cryptography
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

# The account, key and secret of vectors-shared.json, so the Rust tests reuse one verifier.
ACCOUNT_SID = "AC0123456789abcdef0123456789abcdef"
API_KEY_SID = "SKfedcba9876543210fedcba9876543210"
API_SECRET = "FAKEsecretDoNotUse0123456789abcd"
ISSUED_AT = 1_700_000_000
TTL = 3600

HEADER_FIELDS = {"cty": "twilio-fpa;v=1"}
OUTPUT = (
    pathlib.Path(__file__).resolve().parents[2]
    / "crates/twilio-access-token/tests/fixtures/alg-tokens.json"
)


def claims():
    """Return the claims twilio-node writes for identity alice with a Chat grant."""
    return {
        "jti": f"{API_KEY_SID}-{ISSUED_AT}",
        "grants": {
            "identity": "alice",
            "chat": {"service_sid": "IS00000000000000000000000000000001"},
        },
        "iat": ISSUED_AT,
        "exp": ISSUED_AT + TTL,
        "iss": API_KEY_SID,
        "sub": ACCOUNT_SID,
    }


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def hmac_sha256_token(alg: str, secret: bytes) -> str:
    """Sign a token by hand: header with the given alg, HMAC-SHA256 keyed with secret."""
    header = {"alg": alg, "typ": "JWT", **HEADER_FIELDS}
    signing_input = ".".join(
        b64url(json.dumps(part, separators=(",", ":")).encode())
        for part in (header, claims())
    )
    signature = hmac.new(secret, signing_input.encode("ascii"), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def pyjwt_pem_secret_error(public_pem: bytes) -> str:
    """Return PyJWT's error for an HMAC secret that is a public key PEM."""
    try:
        jwt.encode(claims(), public_pem, algorithm="HS256", headers=HEADER_FIELDS)
    except jwt.exceptions.InvalidKeyError as error:
        return str(error)
    sys.exit(
        "PyJWT accepted a PEM public key as an HMAC secret, "
        "but the fixture expects it to raise InvalidKeyError"
    )


def check_with_pyjwt(tokens, secret: bytes, rsa_key, ec_key, public_pem: bytes) -> None:
    """Verify each token with PyJWT (or hmac for the hand-signed ones) before writing it."""
    keys = {
        "hs384": (secret, "HS384"),
        "hs512": (secret, "HS512"),
        "rs256": (rsa_key.public_key(), "RS256"),
        "ps256": (rsa_key.public_key(), "PS256"),
        "es256": (ec_key.public_key(), "ES256"),
    }
    options = {"verify_exp": False, "verify_iat": False}
    for case_id, _, token in tokens:
        if case_id in keys:
            key, alg = keys[case_id]
            assert jwt.decode(token, key, algorithms=[alg], options=options) == claims()
        elif case_id == "none":
            unverified = {"verify_signature": False}
            assert jwt.decode(token, options=unverified) == claims()
            assert token.endswith(".")
        else:
            signing_input, signature = token.rsplit(".", 1)
            expected = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
            assert signature == b64url(expected)


def main() -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    public_pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    secret = API_SECRET.encode()

    tokens = [
        ("hs384", "PyJWT", jwt.encode(claims(), secret, algorithm="HS384", headers=HEADER_FIELDS)),
        ("hs512", "PyJWT", jwt.encode(claims(), secret, algorithm="HS512", headers=HEADER_FIELDS)),
        ("none", "PyJWT", jwt.encode(claims(), None, algorithm="none", headers=HEADER_FIELDS)),
        ("rs256", "PyJWT", jwt.encode(claims(), rsa_key, algorithm="RS256", headers=HEADER_FIELDS)),
        ("ps256", "PyJWT", jwt.encode(claims(), rsa_key, algorithm="PS256", headers=HEADER_FIELDS)),
        ("es256", "PyJWT", jwt.encode(claims(), ec_key, algorithm="ES256", headers=HEADER_FIELDS)),
        (
            "hs256_pem_secret",
            "hmac (by hand)",
            hmac_sha256_token("HS256", public_pem),
        ),
        (
            "rs256_header_pem_hmac",
            "hmac (by hand)",
            hmac_sha256_token("RS256", public_pem),
        ),
    ]

    check_with_pyjwt(tokens, secret, rsa_key, ec_key, public_pem)

    document = {
        "meta": {
            "generator": "scripts/interop/make_alg_tokens.py",
            "python": platform.python_version(),
            "pyjwt": jwt.__version__,
            "cryptography": cryptography.__version__,
            "account_sid": ACCOUNT_SID,
            "api_key_sid": API_KEY_SID,
            "api_secret": API_SECRET,
            "issued_at": ISSUED_AT,
            "pyjwt_pem_secret_error": pyjwt_pem_secret_error(public_pem),
        },
        "rsa_public_key_pem": public_pem.decode("ascii"),
        "tokens": [
            {
                "id": case_id,
                "alg": jwt.get_unverified_header(token)["alg"],
                "signed_by": signer,
                "jwt": token,
            }
            for case_id, signer, token in tokens
        ],
    }
    OUTPUT.write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {len(tokens)} tokens to {OUTPUT}")


if __name__ == "__main__":
    main()
