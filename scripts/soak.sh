#!/usr/bin/env bash
# Soak test of `twilio-token serve`: a steady load at half the measured capacity for a long
# time, checking that no request fails and that memory stays flat.
#
# Usage: scripts/soak.sh
#
# It builds the release binary, starts `serve` on 127.0.0.1 with an API key that may act for
# soak-*, rate limits per identity and per client (budgets the load never uses up, so every
# request is checked), the SQLite revocation list and the metrics route. Then it:
#   1. measures the capacity with wrk at full speed for 5 s (wrk -t2 -c64), then the number
#      of paced connections that gives the target rate in a 5-second trial;
#   2. runs wrk for SOAK_SECONDS at SOAK_RATE requests a second (default: half the capacity),
#      each request for one of 100,000 identities at random, so the per-identity limiter holds
#      many keys and must prune them;
#   3. samples the server's VmRSS every SOAK_SAMPLE_SECS into rss.csv.
# It fails (exit 1) when any request gets a non-2xx answer or a socket error, when the server
# logs an error, or when memory is not flat: the largest RSS of the last quarter of the run
# more than 10% plus 2 MiB above the median of the second quarter.
#
# Environment:
#   SOAK_SECONDS      length of the steady run (default 600); 0 skips the soak test and says so
#   SOAK_RATE         requests a second (default: half the measured capacity)
#   SOAK_SAMPLE_SECS  seconds between two RSS samples (default 10)
#   SOAK_PORT         loopback port of the server (default 38191)
#
# Needs cargo, wrk and python3. Loopback only. Output goes to target/soak/.
set -euo pipefail

seconds="${SOAK_SECONDS:-600}"
sample_secs="${SOAK_SAMPLE_SECS:-10}"
port="${SOAK_PORT:-38191}"

if [ "$seconds" = 0 ]; then
    echo "soak test skipped: SOAK_SECONDS=0"
    exit 0
fi

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
for tool in cargo wrk python3; do
    if ! command -v "$tool" >/dev/null; then
        echo "error: $tool not found on PATH; install it (apt-get install -y wrk python3)" >&2
        exit 1
    fi
done

target_dir="$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
out="$target_dir/soak"
rm -rf "$out"
mkdir -p "$out"
step() { echo ">> $*" >&2; }

step "cargo build --release -p twilio-token"
cargo build --quiet --release -p twilio-token
bin="$target_dir/release/twilio-token"

key="$("$bin" api-key generate --name soak --may-act-for 'soak-*' 2>"$out/key-block.toml")"
export SOAK_API_KEY="$key"
export SOAK_TWILIO_SECRET="FAKEsecretDoNotUse0123456789abcd"
cat >"$out/config.toml" <<TOML
[server]
listen = "127.0.0.1:$port"
data_dir = "$out/data"

$(cat "$out/key-block.toml")

[[profiles]]
account_sid = "AC0123456789abcdef0123456789abcdef"
chat_service_sid = "IS00000000000000000000000000000001"
api_keys = [{ sid = "SKfedcba9876543210fedcba9876543210", secret_env = "SOAK_TWILIO_SECRET" }]

[[policy.rules]]
identities = ["soak-*"]
grants = { chat = {} }

[rate_limit]
per_identity = { burst = 1000, per_minute = 60000 }
per_client = { burst = 1000000, per_minute = 6000000 }

[revocation]
refresh_secs = 5
TOML

"$bin" serve --config "$out/config.toml" --log-format json 2>"$out/server.log" &
server=$!
trap 'kill -TERM "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
    if grep -q '"listening"' "$out/server.log"; then break; fi
    sleep 0.1
done
grep -q '"listening"' "$out/server.log" || { echo "error: server did not start" >&2; exit 1; }

lua="$root/scripts/soak/soak.lua"
step "capacity: wrk -t2 -c64 -d5s at full speed"
SOAK_DELAY_MS=0 wrk -t2 -c64 -d5s -s "$lua" "http://127.0.0.1:$port/token" >"$out/capacity.wrk"
capacity="$(awk '/^Requests\/sec:/ {printf "%d", $2}' "$out/capacity.wrk")"
rate="${SOAK_RATE:-$((capacity / 2))}"
# wrk paces each connection in whole milliseconds: 2 ms per request and enough connections.
delay_ms=2
connections=$(( (rate * delay_ms + 999) / 1000 ))
[ "$connections" -lt 2 ] && connections=2
# Each connection also waits for its answers, so it sends fewer than one request per delay:
# a 5-second trial measures the rate and scales the number of connections to the target.
SOAK_DELAY_MS=$delay_ms wrk -t2 -c"$connections" -d5s -s "$lua" \
    "http://127.0.0.1:$port/token" >"$out/calibration.wrk"
trial="$(awk '/^Requests\/sec:/ {printf "%d", $2}' "$out/calibration.wrk")"
if [ "${trial:-0}" -gt 0 ]; then
    connections=$(( (connections * rate + trial - 1) / trial ))
fi
step "capacity $capacity req/s; soak at $rate req/s: $connections connections, one request" \
    "per ${delay_ms} ms each plus the answer's latency, for ${seconds} s"

echo "seconds,rss_kib" >"$out/rss.csv"
(
    start=$SECONDS
    while kill -0 "$server" 2>/dev/null && [ ! -e "$out/done" ]; do
        rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$server/status" 2>/dev/null || echo 0)
        echo "$((SECONDS - start)),$rss" >>"$out/rss.csv"
        sleep "$sample_secs"
    done
) &
sampler=$!
SOAK_DELAY_MS=$delay_ms wrk -t2 -c"$connections" -d"${seconds}s" --latency -s "$lua" \
    "http://127.0.0.1:$port/token" >"$out/soak.wrk"
touch "$out/done"
wait "$sampler"
curl -s "http://127.0.0.1:$port/metrics" >"$out/metrics.txt" 2>/dev/null || true

python3 - "$out" "$capacity" "$rate" <<'PY'
import re, statistics, sys, json
out, capacity, rate = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
wrk = open(f"{out}/soak.wrk").read()
requests = int(re.search(r"(\d+) requests in", wrk).group(1))
achieved = float(re.search(r"Requests/sec:\s+([\d.]+)", wrk).group(1))
non_2xx = int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", wrk)) else 0
socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", wrk)
socket_errors = sum(int(x) for x in socket.groups()) if socket else 0
p99 = re.search(r"^\s+99%\s+(\S+)", wrk, re.M).group(1)
rows = [line.split(",") for line in open(f"{out}/rss.csv").read().split("\n")[1:] if line]
rss = [int(kib) for _, kib in rows if int(kib) > 0]
quarter = max(1, len(rss) // 4)
second = rss[quarter:2 * quarter] or rss
last = rss[-quarter:]
baseline = statistics.median(second)
peak_last = max(last)
flat = peak_last <= baseline * 1.10 + 2048
errors = [json.loads(l) for l in open(f"{out}/server.log") if '"level":"ERROR"' in l]
print(f"capacity {capacity} req/s; target {rate} req/s; achieved {achieved:.0f} req/s")
print(f"requests {requests}; non-2xx {non_2xx}; socket errors {socket_errors}; p99 {p99}")
print(f"VmRSS: first {rss[0] / 1024:.1f} MiB, second-quarter median {baseline / 1024:.1f} MiB, "
      f"last-quarter peak {peak_last / 1024:.1f} MiB, max {max(rss) / 1024:.1f} MiB "
      f"({len(rss)} samples) -> {'flat' if flat else 'GROWING'}")
print(f"server errors logged: {len(errors)}")
ok = non_2xx == 0 and socket_errors == 0 and flat and not errors
print("soak: " + ("passed" if ok else "FAILED"))
sys.exit(0 if ok else 1)
PY
