#!/usr/bin/env bash
# Seeds the fuzz corpora from the test fixtures and runs each fuzz target for a given time.
#
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#   SECONDS_PER_TARGET  defaults to 60
#   TARGET              defaults to: all decode verify diagnose mutate
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`) and python3. cargo-fuzz passes nightly
# `-Z` flags to rustc, so the run sets RUSTC_BOOTSTRAP=1 to allow them on a stable toolchain.
# Crash inputs land in fuzz/artifacts/<target>/; corpora stay in fuzz/corpus/<target>/. Both
# are git-ignored.
set -euo pipefail

seconds=${1:-60}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(all decode verify diagnose mutate)
fi

root=$(cd "$(dirname "$0")/.." && pwd)
fixtures=$root/crates/twilio-access-token/tests/fixtures

seed_corpus() {
    local dir=$1
    mkdir -p "$dir"
    python3 - "$fixtures" "$dir" <<'PY'
import hashlib
import json
import pathlib
import sys

fixtures, corpus = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
tokens = []
vectors = json.loads((fixtures / "vectors-shared.json").read_text())
for case in vectors["vectors"]:
    for library in ("python", "node"):
        jwt = (case.get(library) or {}).get("jwt")
        if jwt:
            tokens.append(jwt)
alg_tokens = fixtures / "alg-tokens.json"
if alg_tokens.exists():
    tokens += [case["jwt"] for case in json.loads(alg_tokens.read_text())["tokens"]]
for token in tokens:
    name = hashlib.sha1(token.encode()).hexdigest()
    (corpus / name).write_text(token)
print(f"seeded {len(tokens)} tokens into {corpus}")
PY
}

cd "$root/fuzz"
for target in "${targets[@]}"; do
    # The mutate target reads structured input, not token text, so it starts from nothing.
    if [ "$target" != mutate ]; then
        seed_corpus "corpus/$target"
    fi
    echo "fuzzing $target for ${seconds}s"
    # Inputs up to 20 KiB, so the 16 KiB token limit is crossed.
    RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" -- -max_total_time="$seconds" -max_len=20480 \
        -print_final_stats=1
done
