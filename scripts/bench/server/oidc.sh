#!/usr/bin/env bash
# Load test of POST /token with an OpenID Connect bearer token against the API key path, in the
# same run, on loopback.
#
# Usage: scripts/bench/server/oidc.sh
#
# Servers, each examples/bench_server.rs on 127.0.0.1:
#   api_key      --port P:                     POST /token with an API key (the usual path)
#   oidc         --oidc ISSUER:                an RS256 access token from oidc-provider; JWKS
#                                              cached, verified-token cache on (the default)
#   oidc_verify  --oidc ISSUER --oidc-verify-each: the same token, signature checked per request
# The issuer is tests/oidc/provider.mjs (npm oidc-provider) on a free loopback port; the token
# comes from its client_credentials grant before the load starts. The provider stays up, but
# after the first request the servers use only their cached keys.
#
# Load: wrk with post.lua, BENCH_THREADS threads and BENCH_CONNECTIONS connections for
# BENCH_SECONDS, BENCH_RUNS times per server, interleaved, after a 2-second warm-up each. wrk and
# the servers share the machine's cores. Prints a Markdown table of medians and the ratios to
# the api_key path; raw wrk output goes to target/bench-oidc/.
#
# Environment: BENCH_SECONDS (default 10), BENCH_RUNS (3), BENCH_THREADS (2),
# BENCH_CONNECTIONS (64), BENCH_PORT (first of three ports, default 38091).
set -euo pipefail

seconds="${BENCH_SECONDS:-10}"
runs="${BENCH_RUNS:-3}"
threads="${BENCH_THREADS:-2}"
connections="${BENCH_CONNECTIONS:-64}"
first_port="${BENCH_PORT:-38091}"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
bench_dir="$root/scripts/bench/server"
provider_dir="$root/crates/twilio-token-server/tests/oidc"
cd "$root"

for tool in cargo wrk node npm python3; do
    if ! command -v "$tool" >/dev/null; then
        echo "error: $tool not found on PATH; install it (apt-get install -y wrk nodejs npm" \
            "python3) and rerun" >&2
        exit 1
    fi
done

target_dir="$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
out_dir="$target_dir/bench-oidc"
rm -rf "$out_dir"
mkdir -p "$out_dir"
step() { echo ">> $*" >&2; }

pids=()
stop_all() {
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
}
trap stop_all EXIT

step "cargo build --release --example bench_server"
cargo build --quiet --release -p twilio-token-server --example bench_server
bench_server="$target_dir/release/examples/bench_server"

step "npm ci in $provider_dir"
(cd "$provider_dir" && timeout 300 npm ci --no-audit --no-fund --silent)

# A random client secret for this run, given to the provider on stdin only.
client_secret="$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')"
mkfifo "$out_dir/provider.in"
(cd "$provider_dir" && exec node provider.mjs <"$out_dir/provider.in" >"$out_dir/provider.out" \
    2>"$out_dir/provider.log") &
pids+=("$!")
printf '{"clients":[{"client_id":"bench-user","client_secret":"%s","alg":"RS256","ttl":3600}]}' \
    "$client_secret" >"$out_dir/provider.in"
for _ in $(seq 50); do
    [ -s "$out_dir/provider.out" ] && break
    sleep 0.2
done
issuer="$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["issuer"])' \
    "$out_dir/provider.out")"
step "oidc-provider at $issuer"

BENCH_BEARER="$(CLIENT_SECRET="$client_secret" python3 - "$issuer" <<'PY'
import base64, json, os, sys, urllib.request
issuer = sys.argv[1]
basic = base64.b64encode(f"bench-user:{os.environ['CLIENT_SECRET']}".encode()).decode()
body = b"grant_type=client_credentials&resource=urn%3Atwilio-token&scope=token"
request = urllib.request.Request(issuer + "/token", data=body, headers={
    "Authorization": "Basic " + basic,
    "Content-Type": "application/x-www-form-urlencoded",
})
print(json.loads(urllib.request.urlopen(request, timeout=5).read())["access_token"])
PY
)"
BENCH_API_KEY="$(python3 -c 'import base64, secrets
print("ttk_" + base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode())')"
export BENCH_API_KEY

names=(api_key oidc oidc_verify)
declare -A port pid_of bearer
port[api_key]=$first_port
port[oidc]=$((first_port + 1))
port[oidc_verify]=$((first_port + 2))
bearer[api_key]=""
bearer[oidc]="$BENCH_BEARER"
bearer[oidc_verify]="$BENCH_BEARER"

"$bench_server" --port "${port[api_key]}" 2>"$out_dir/api_key.log" &
pid_of[api_key]=$!
"$bench_server" --port "${port[oidc]}" --oidc "$issuer" 2>"$out_dir/oidc.log" &
pid_of[oidc]=$!
"$bench_server" --port "${port[oidc_verify]}" --oidc "$issuer" --oidc-verify-each \
    2>"$out_dir/oidc_verify.log" &
pid_of[oidc_verify]=$!
pids+=("${pid_of[api_key]}" "${pid_of[oidc]}" "${pid_of[oidc_verify]}")

for name in "${names[@]}"; do
    url="http://127.0.0.1:${port[$name]}/token"
    for _ in $(seq 50); do
        BENCH_BEARER="${bearer[$name]}" python3 "$bench_dir/check_response.py" "$url" --auth \
            2>/dev/null && break
        sleep 0.2
    done
    if ! BENCH_BEARER="${bearer[$name]}" python3 "$bench_dir/check_response.py" "$url" --auth; then
        echo "error: $name returned a wrong response to POST /token; see $out_dir/$name.log" >&2
        exit 1
    fi
done

load() {
    local name=$1 duration=$2 out=$3
    BENCH_BEARER="${bearer[$name]}" wrk -t"$threads" -c"$connections" -d"${duration}s" \
        --latency -s "$bench_dir/post.lua" "http://127.0.0.1:${port[$name]}/token" >"$out"
}
for name in "${names[@]}"; do
    step "warm-up: $name, 2 s"
    load "$name" 2 "$out_dir/warmup-$name.wrk"
done
for run in $(seq "$runs"); do
    for name in "${names[@]}"; do
        step "run $run/$runs: $name, ${seconds} s"
        load "$name" "$seconds" "$out_dir/$name-$run.wrk"
    done
done

stop_all
trap - EXIT

echo "Machine: $(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -n 1), $(nproc) cores," \
    "shared with other work; wrk -t$threads -c$connections -d${seconds}s, $runs runs each."
python3 - "$out_dir" "${names[@]}" <<'PY'
import glob, re, statistics, sys
out_dir, names = sys.argv[1], sys.argv[2:]
units = {"us": 0.001, "ms": 1.0, "s": 1000.0}
def latency(text, percent):
    m = re.search(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s)\s*$", text, re.MULTILINE)
    return float(m.group(1)) * units[m.group(2)]
results, failed = {}, False
for name in names:
    rates, p50s, p99s = [], [], []
    for path in sorted(glob.glob(f"{out_dir}/{name}-*.wrk")):
        text = open(path, encoding="utf-8").read()
        if re.search(r"Non-2xx or 3xx responses:\s+\d+", text):
            failed = True
        rates.append(float(re.search(r"^Requests/sec:\s+([\d.]+)", text, re.MULTILINE).group(1)))
        p50s.append(latency(text, 50))
        p99s.append(latency(text, 99))
    results[name] = (statistics.median(rates), min(rates), max(rates),
                     statistics.median(p50s), statistics.median(p99s), rates)
base = results[names[0]][0]
print()
print("| server | req/s (median, range) | p50 | p99 | share of api_key |")
print("|---|---|---|---|---|")
for name in names:
    rate, low, high, p50, p99, _ = results[name]
    print(f"| {name} | {rate:,.0f} ({low:,.0f}–{high:,.0f}) | {p50:.2f} ms | {p99:.2f} ms |"
          f" {rate / base:.0%} |")
print()
print("Per-run ratios oidc/api_key: " + ", ".join(
    f"{o / a:.0%}" for o, a in zip(results["oidc"][5], results["api_key"][5])))
if failed:
    print("error: some responses were not 2xx", file=sys.stderr)
    sys.exit(1)
PY
