#!/usr/bin/env python3
"""Send one POST /token like the load test does and check the response before measuring.

Usage: check_response.py URL [--auth]

With --auth the request carries BENCH_BEARER (an OpenID Connect token, from oidc.sh) or else
the API key from the BENCH_API_KEY environment variable as a bearer token. Exits 0 when the server responds 200 with JSON containing identity "bench-user"
and a three-part token, 1 otherwise, printing what was wrong to stderr.
"""

import json
import os
import sys
import urllib.error
import urllib.request


def main():
    if len(sys.argv) not in (2, 3):
        sys.stderr.write("usage: check_response.py URL [--auth]\n")
        return 2
    url = sys.argv[1]
    headers = {"Content-Type": "application/json"}
    if sys.argv[2:] == ["--auth"]:
        bearer = os.environ.get("BENCH_BEARER") or os.environ["BENCH_API_KEY"]
        headers["Authorization"] = "Bearer " + bearer
    request = urllib.request.Request(url, data=b'{"grants":["chat"]}', headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            status = response.status
            body = json.loads(response.read())
    except urllib.error.HTTPError as error:
        sys.stderr.write(f"{url}: HTTP {error.code}: {error.read()[:300]!r}\n")
        return 1
    except (OSError, ValueError) as error:
        sys.stderr.write(f"{url}: request failed: {error}\n")
        return 1
    token = body.get("token", "")
    if status != 200 or body.get("identity") != "bench-user" or token.count(".") != 2:
        sys.stderr.write(f"{url}: unexpected response: status {status}, keys {sorted(body)}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
