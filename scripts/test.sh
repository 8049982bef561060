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

# The browser token client: unit tests on a fake clock, then the demo page in Debian's headless
# Chromium (/usr/bin/chromium) against the twilio-token binary built here. Screenshots go to
# target/browser-artifacts/.
node --test web/test/token-client.test.js
cargo build --locked -p twilio-token
if [ ! -d web/test/browser/node_modules/playwright-core ]; then
  npm ci --prefix web/test/browser --no-audit --no-fund
fi
TWILIO_TOKEN_BIN="$root/target/debug/twilio-token" npm --prefix web/test/browser test
