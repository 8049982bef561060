"""Mint the typical Chat token with the official twilio-python helper for a fixed time.

The token has identity "alice", a Chat grant with a service SID and the library's defaults
(TTL 3600 s, `nbf` set to the issue time). Each call to `to_jwt()` reads the clock and signs
with PyJWT, as a server does per request.

Usage: python mint_rate.py [SECONDS]  (default 3). Stdout gets one line with two integers:
tokens per second of CPU time, then tokens per second of wall-clock time. The first does not
drop when another process shares the core, so it is the one to compare. Stderr gets the count,
the times and the versions used.
"""

import sys
import time

import jwt
import twilio
from twilio.jwt.access_token import AccessToken
from twilio.jwt.access_token.grants import ChatGrant

# Tokens minted between two reads of the timer.
BATCH = 100


def main() -> int:
    arg = sys.argv[1] if len(sys.argv) > 1 else "3"
    try:
        seconds = float(arg)
    except ValueError:
        seconds = 0.0
    if not 0 < seconds < float("inf"):
        print(
            f"error: invalid SECONDS {arg!r}: expected a positive number such as 3",
            file=sys.stderr,
        )
        return 2

    token = AccessToken(
        "AC0123456789abcdef0123456789abcdef",
        "SKfedcba9876543210fedcba9876543210",
        "FAKEsecretDoNotUse0123456789abcd",
        identity="alice",
    )
    token.add_grant(ChatGrant(service_sid="IS00000000000000000000000000000001"))
    sample = token.to_jwt()

    minted = 0
    cpu_start = time.process_time()
    start = time.perf_counter()
    while True:
        for _ in range(BATCH):
            token.to_jwt()
        minted += BATCH
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            break
    cpu = time.process_time() - cpu_start

    print(
        f"python twilio {twilio.__version__} + PyJWT {jwt.__version__}: "
        f"{minted} tokens in {elapsed:.3f} s wall, {cpu:.3f} s CPU, {len(sample)} bytes each",
        file=sys.stderr,
    )
    print(round(minted / cpu), round(minted / elapsed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
