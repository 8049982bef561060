#!/usr/bin/env bash
# Runs the whole test suite: formatting, lints, and every test, including the interoperability
# tests that check our tokens with PyJWT and twilio-python (installed into target/venv).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

venv="$root/target/venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check -r scripts/interop/requirements.txt
export TWILIO_TOKEN_PYTHON="$venv/bin/python"

# The OpenID Connect end-to-end tests run the npm package oidc-provider on loopback.
(cd crates/twilio-token-server/tests/oidc && npm ci --no-audit --no-fund --silent)

cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked -- --include-ignored
