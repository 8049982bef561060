#!/usr/bin/env python3
"""Verify Access Tokens minted by twilio-access-token with PyJWT and twilio-python.

Reads JSON lines on stdin, one token per line:

    {"name": ..., "token": ..., "secret": ..., "wrong_secret": ...,
     "expected_header": {...}, "expected_claims": {...}}

For each token it checks, with the packages pinned in requirements.txt beside this file:

* PyJWT: ``jwt.get_unverified_header`` returns the expected header and
  ``jwt.decode(token, secret, algorithms=["HS256"])`` verifies the signature, ``exp``, ``nbf``
  and ``iat`` and returns the expected claims, in the same key order, without warnings;
* twilio-python: ``twilio.jwt.Jwt.from_jwt(token, key=secret)`` verifies the token and returns
  the same header and claims;
* both reject the token when given ``wrong_secret``, with a signature error.

Writes one JSON line per token to stdout: ``name``, ``ok``, ``failures`` (a list of strings),
and what each library decoded (``pyjwt`` and ``twilio``, each with ``header`` and ``claims``).

Exit status: 0 when every token passed, 1 when any failed, 2 when the packages are missing or
the input is not JSON lines.
"""

import json
import sys
import warnings


def load_libraries():
    try:
        import jwt
        from twilio.jwt import Jwt, JwtDecodeError
    except ImportError as error:
        sys.stderr.write(
            f"verify_tokens.py: {error}: install PyJWT and twilio with "
            "'pip install -r scripts/interop/requirements.txt'\n"
        )
        sys.exit(2)
    return jwt, Jwt, JwtDecodeError


def compare(failures, label, actual, expected):
    """Record a failure unless the dicts are equal and list their keys in the same order."""
    if actual != expected:
        failures.append(f"{label}: got {json.dumps(actual)}, expected {json.dumps(expected)}")
    elif list(actual) != list(expected):
        failures.append(f"{label} key order: got {list(actual)}, expected {list(expected)}")


def check_pyjwt(jwt, case, failures):
    token, secret = case["token"], case["secret"]
    header = jwt.get_unverified_header(token)
    compare(failures, "pyjwt header", header, case["expected_header"])

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            claims = jwt.decode(token, secret, algorithms=["HS256"])
        except jwt.PyJWTError as error:
            failures.append(f"pyjwt rejected the token: {type(error).__name__}: {error}")
            claims = None
    for warning in caught:
        failures.append(f"pyjwt warned: {warning.category.__name__}: {warning.message}")
    if claims is not None:
        compare(failures, "pyjwt claims", claims, case["expected_claims"])

    try:
        jwt.decode(token, case["wrong_secret"], algorithms=["HS256"])
        failures.append("pyjwt accepted the wrong secret")
    except jwt.InvalidSignatureError:
        pass
    except jwt.PyJWTError as error:
        failures.append(
            f"pyjwt rejected the wrong secret for another reason: {type(error).__name__}: {error}"
        )
    return {"header": header, "claims": claims}


def check_twilio(Jwt, JwtDecodeError, case, failures):
    expected = case["expected_claims"]
    try:
        decoded = Jwt.from_jwt(case["token"], key=case["secret"])
    except JwtDecodeError as error:
        failures.append(f"twilio rejected the token: {error}")
        return {"header": None, "claims": None}

    compare(failures, "twilio header", decoded.headers, case["expected_header"])
    compare(failures, "twilio claims", decoded.payload, expected)
    attributes = {
        "issuer": expected["iss"],
        "subject": expected["sub"],
        "valid_until": expected["exp"],
        "nbf": expected.get("nbf"),
    }
    for name, value in attributes.items():
        if getattr(decoded, name) != value:
            failures.append(f"twilio {name}: got {getattr(decoded, name)!r}, expected {value!r}")

    try:
        Jwt.from_jwt(case["token"], key=case["wrong_secret"])
        failures.append("twilio accepted the wrong secret")
    except JwtDecodeError as error:
        if "signature" not in str(error).lower():
            failures.append(f"twilio rejected the wrong secret for another reason: {error}")
    return {"header": decoded.headers, "claims": decoded.payload}


def main():
    jwt, Jwt, JwtDecodeError = load_libraries()
    all_ok = True
    for number, line in enumerate(sys.stdin, start=1):
        if not line.strip():
            continue
        try:
            case = json.loads(line)
        except json.JSONDecodeError as error:
            sys.stderr.write(f"verify_tokens.py: line {number} is not JSON: {error}\n")
            sys.exit(2)

        failures = []
        pyjwt_result = check_pyjwt(jwt, case, failures)
        twilio_result = check_twilio(Jwt, JwtDecodeError, case, failures)
        all_ok = all_ok and not failures
        result = {
            "name": case["name"],
            "ok": not failures,
            "failures": failures,
            "pyjwt": pyjwt_result,
            "twilio": twilio_result,
        }
        print(json.dumps(result), flush=True)
    sys.exit(0 if all_ok else 1)


if __name__ == "__main__":
    main()
