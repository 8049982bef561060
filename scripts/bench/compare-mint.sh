#!/usr/bin/env bash
# Measures Access Token minting on one core: this library against the official twilio-python and
# twilio-node helpers, plus this library against a bare HMAC-SHA256 (criterion bench `mint`).
#
# Usage: scripts/bench/compare-mint.sh
#
# Every measured program runs pinned to CPU 0 (taskset -c 0). Each rate program mints the same
# Chat token for MINT_SECONDS and runs MINT_RUNS times, interleaved so drift hits all three alike.
# A rate is tokens per second of the process's own CPU time, so another process time-sharing
# CPU 0 does not lower it, and the median run is reported. Criterion measures wall-clock time,
# so its figures hold only while CPU 0 is free. The report shows how busy the other core was.
# Prints markdown tables to stdout. Raw output goes to target/bench-compare/.
#
# Environment:
#   MINT_SECONDS  measuring time of one rate run, in seconds (default 3)
#   MINT_RUNS     runs per implementation (default 3)
#
# Network: only the package installs (npm ci into scripts/bench/node_modules, pip into
# target/bench-venv), and only when the pinned versions are not installed yet. On 2 cores it took
# 72 to 98 s with everything built and installed, and 219 s from an empty target dir.
set -euo pipefail

seconds="${MINT_SECONDS:-3}"
runs="${MINT_RUNS:-3}"
cpu=0

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bench_dir="$root/scripts/bench"
cd "$root"

for tool in cargo taskset python3 node npm; do
    if ! command -v "$tool" >/dev/null; then
        echo "error: $tool not found on PATH; install it (compare-mint.sh needs cargo," \
            "taskset, python3, node and npm)" >&2
        exit 1
    fi
done

target_dir="$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
log_dir="$target_dir/bench-compare"
venv="$target_dir/bench-venv"
mkdir -p "$log_dir"
started=$SECONDS

step() { echo ">> $*" >&2; }

# --- Installs: skipped when the stamp matches the pinned versions ----------------------------

step "Python: twilio-python into $venv"
if ! cmp -s "$bench_dir/requirements.txt" "$venv/requirements.stamp" 2>/dev/null; then
    rm -rf "$venv"
    python3 -m venv "$venv"
    PIP_DISABLE_PIP_VERSION_CHECK=1 timeout 180 \
        "$venv/bin/pip" install --quiet --requirement "$bench_dir/requirements.txt"
    cp "$bench_dir/requirements.txt" "$venv/requirements.stamp"
fi

step "Node: twilio-node into $bench_dir/node_modules"
if ! cmp -s "$bench_dir/package-lock.json" "$bench_dir/node_modules/lock.stamp" 2>/dev/null; then
    (cd "$bench_dir" && timeout 180 npm ci --no-audit --no-fund --loglevel=error) >&2
    cp "$bench_dir/package-lock.json" "$bench_dir/node_modules/lock.stamp"
fi

# --- Builds, on both cores, before anything is measured ---------------------------------------

step "Rust: building the mint_rate example (release) and the mint bench (bench profile)"
cargo build --quiet --release -p twilio-access-token --example mint_rate
cargo bench --quiet -p twilio-access-token --bench mint --no-run 2>"$log_dir/bench-build.log"

# --- Rates: MINT_RUNS rounds of ours, Python, Node ---------------------------------------------

names=(rust python node)
declare -A command=(
    [rust]="$target_dir/release/examples/mint_rate"
    [python]="$venv/bin/python $bench_dir/mint_rate.py"
    [node]="node $bench_dir/mint_rate.js"
)
# Per implementation, one "CPU-rate:wall-rate" pair per run.
declare -A rates=()

# Busy and total jiffies of CPU $1 from /proc/stat. Work on the other core shares caches and
# memory bandwidth with the measured one, so the report shows how busy it was.
cpu_jiffies() {
    awk -v cpu="cpu$1" '$1 == cpu {
        busy = $2 + $3 + $4 + $7 + $8 + $9
        print busy, busy + $5 + $6 }' /proc/stat
}
other_cpu=1
read -r other_busy_start other_total_start < <(cpu_jiffies "$other_cpu")

for ((round = 1; round <= runs; round++)); do
    for name in "${names[@]}"; do
        step "round $round/$runs: $name"
        # shellcheck disable=SC2086 # the command strings are split into program and arguments
        output="$(taskset -c "$cpu" ${command[$name]} "$seconds" 2>>"$log_dir/$name.log")"
        if ! [[ "$output" =~ ^([0-9]+)\ ([0-9]+)$ ]]; then
            echo "error: $name printed \"$output\" instead of two token rates;" \
                "see $log_dir/$name.log" >&2
            exit 1
        fi
        rates[$name]+="${BASH_REMATCH[1]}:${BASH_REMATCH[2]} "
    done
done

# --- Criterion: this library against a bare HMAC-SHA256 ---------------------------------------

step "criterion: mint group, pinned to CPU $cpu"
marker="$log_dir/bench.started"
touch "$marker"
taskset -c "$cpu" cargo bench --quiet -p twilio-access-token --bench mint -- \
    --noplot --warm-up-time 1 --measurement-time 3 >"$log_dir/criterion.log" 2>&1
read -r other_busy_end other_total_end < <(cpu_jiffies "$other_cpu")
other_busy=$((other_busy_end - other_busy_start))
other_total=$((other_total_end - other_total_start))
other_busy_percent=$((100 * other_busy / other_total))

# --- Report ------------------------------------------------------------------------------------

python3 - "$target_dir/criterion/mint" "$marker" "$runs" "$seconds" \
    "$other_cpu" "$other_busy_percent" "${rates[rust]}" "${rates[python]}" "${rates[node]}" <<'EOF'
import json
import os
import statistics
import sys

(criterion_dir, marker, runs, seconds, other_cpu, other_busy,
 rust_runs, python_runs, node_runs) = sys.argv[1:]

def format_rate(rate):
    return f"{rate:,.0f}"

def parse(runs_text):
    """Returns the (CPU rate, wall rate) pairs of one implementation's runs."""
    return [tuple(int(v) for v in run.split(":")) for run in runs_text.split()]

rows = [
    ("twilio-access-token (this repo, Rust, `to_jwt()`)", parse(rust_runs)),
    ("twilio-python (official)", parse(python_runs)),
    ("twilio-node (official)", parse(node_runs)),
]
medians = [statistics.median(cpu for cpu, _ in pairs) for _, pairs in rows]
rust, python, node = medians

print(f"### Tokens per second on one core (median of {runs} runs of {seconds} s)\n")
print("Rates are per second of the process's CPU time, so another process sharing CPU 0 does "
      "not lower them. The CPU share is wall-clock rate ÷ CPU-time rate, lowest of the runs: "
      "below 100% means the process waited for the core.\n")
print("| Implementation | tokens/s (median) | all runs | CPU share | this repo ÷ it |")
print("|---|---:|---|---:|---:|")
for (name, pairs), rate in zip(rows, medians):
    runs_text = ", ".join(format_rate(cpu) for cpu, _ in pairs)
    share = min(wall / cpu for cpu, wall in pairs)
    print(f"| {name} | {format_rate(rate)} | {runs_text} | {share:.0%} | {rust / rate:.1f}× |")

started = os.path.getmtime(marker)
estimates = {}
for bench in ["chat_to_jwt_at", "hmac_sha256_cloned_key", "hmac_sha256_new_from_slice",
              "chat_build_and_mint", "all_grants_to_jwt_at"]:
    path = os.path.join(criterion_dir, bench, "new", "estimates.json")
    if not os.path.exists(path) or os.path.getmtime(path) < started:
        sys.exit(f"error: no fresh criterion result for mint/{bench} at {path}")
    with open(path) as f:
        estimates[bench] = json.load(f)["median"]["point_estimate"]

print("\n### criterion group `mint`\n")
print("Median wall-clock time per operation; bench profile (fat LTO, 1 codegen unit).\n")
print("| Benchmark | ns/op | ops/s |")
print("|---|---:|---:|")
for bench, ns in estimates.items():
    print(f"| `mint/{bench}` | {ns:.0f} | {format_rate(1e9 / ns)} |")

mint_ns = estimates["chat_to_jwt_at"]
hmac_cloned = estimates["hmac_sha256_cloned_key"]
hmac_new = estimates["hmac_sha256_new_from_slice"]
print()
print("Minting ÷ bare HMAC-SHA256 over the same signing input: "
      f"{mint_ns / hmac_cloned:.2f}× (cloned keyed state), "
      f"{mint_ns / hmac_new:.2f}× (`new_from_slice` per op)")

def verdict(ok):
    return "met" if ok else "**missed**"

criterion_rate = 1e9 / mint_ns
print("\n### Targets\n")
print("| Target | Measured | Result |")
print("|---|---|---|")
print(f"| ≥ 1,200,000 tokens/s on one core | {format_rate(rust)} (`to_jwt()`), "
      f"{format_rate(criterion_rate)} (criterion `to_jwt_at`) | "
      f"{verdict(min(rust, criterion_rate) >= 1_200_000)} |")
print(f"| ≤ 2.2× bare HMAC-SHA256 cost | {mint_ns / hmac_cloned:.2f}× the cloned keyed state, "
      f"{mint_ns / hmac_new:.2f}× `new_from_slice` | {verdict(mint_ns / hmac_cloned <= 2.2)} |")
print(f"| ≥ 30× twilio-python | {rust / python:.1f}× | {verdict(rust / python >= 30)} |")
print(f"| ≥ 300× twilio-node | {rust / node:.1f}× | {verdict(rust / node >= 300)} |")
print(f"\nCPU {other_cpu}, the core not measuring, was {other_busy}% busy with other work "
      "during the measurements.")
EOF

step "done in $((SECONDS - started)) s; raw output in $log_dir"
