#!/usr/bin/env bash
# Load test of the token server on loopback: our server against a bare minting route and
# against a Node reference server built like Twilio's quickstarts.
#
# Usage: scripts/bench/server/run.sh
#
# Servers, each on 127.0.0.1 only:
#   server  examples/bench_server.rs: the full token server, POST /token with an API key
#   bare    examples/bench_server.rs --bare: axum, one route that mints a prebuilt token
#   node    node/server.js: Express with twilio-node's AccessToken and a ChatGrant
#   audit-sqlite    the full server with the SQLite audit log (WAL, synchronous=FULL) in
#                   target/bench-server/audit.sqlite3
#   audit-sqlite-normal  the same with synchronous = "normal" (no fsync per commit) in
#                   target/bench-server/audit-normal.sqlite3
#   audit-postgres  the full server with the PostgreSQL audit log, on a PostgreSQL server the
#                   script starts from the Debian package's binaries (initdb into a temporary
#                   folder, as the user nobody when run as root; fsync and synchronous_commit on)
#   limits  bench_server --limits memory: the full server with in-process rate limits per
#           identity and per client (a budget the load never uses up, so each request is
#           checked and none refused)
#   redis   bench_server --limits redis://…: the same limits kept in a redis-server that the
#           script starts on loopback (two EVALSHA calls per request)
# Load: wrk with post.lua (a JSON body, and the API key as a bearer token, which `bare` and
# `node` ignore),
# BENCH_THREADS threads and BENCH_CONNECTIONS connections for BENCH_SECONDS, BENCH_RUNS times
# per server, interleaved so drift hits all three alike, after a 2-second warm-up each. wrk and
# the servers share the machine's cores. While each run is under load the server's VmRSS is read
# from /proc every 0.2 s and the peak is kept. The CPU time of the server, of wrk and of everything
# else on the machine is recorded too, so a run disturbed by other work shows as such.
#
# Prints Markdown tables (medians over runs) to stdout, and raw wrk output goes to
# target/bench-server/. Exits 1 when a server responds to any request with a status other
# than 2xx.
#
# Environment:
#   BENCH_SECONDS      length of one measured run in seconds (default 10)
#   BENCH_RUNS         measured runs per server (default 3)
#   BENCH_THREADS      wrk threads (default 2)
#   BENCH_CONNECTIONS  wrk connections (default 64)
#   BENCH_PORT         first of the eight loopback ports (default 38081); PostgreSQL gets the
#                      ninth and Redis the tenth
#   BENCH_SERVERS      the servers to measure, separated by spaces (default: all of them);
#                      `server` and `bare` are always measured, because the targets compare them
#
# Network: loopback only, apart from `npm ci` into node/node_modules when the lock file
# changed. With the release build and node_modules in place it takes about 2 minutes.
set -euo pipefail

seconds="${BENCH_SECONDS:-10}"
runs="${BENCH_RUNS:-3}"
threads="${BENCH_THREADS:-2}"
connections="${BENCH_CONNECTIONS:-64}"
first_port="${BENCH_PORT:-38081}"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
bench_dir="$root/scripts/bench/server"
cd "$root"

for tool in cargo wrk node npm python3 redis-server; do
    if ! command -v "$tool" >/dev/null; then
        echo "error: $tool not found on PATH; install it (apt-get install -y wrk nodejs npm" \
            "python3 redis-server) and rerun" >&2
        exit 1
    fi
done

target_dir="$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
out_dir="$target_dir/bench-server"
rm -rf "$out_dir"
mkdir -p "$out_dir"
started=$SECONDS

step() { echo ">> $*" >&2; }

pids=()
pg_folder=""
stop_servers() {
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [ -n "$pg_folder" ]; then
        rm -rf "$pg_folder"
        pg_folder=""
    fi
}
trap stop_servers EXIT

# --- Build and install -------------------------------------------------------------------------

step "cargo build --release --example bench_server"
cargo build --quiet --release -p twilio-token-server --example bench_server
bench_server="$target_dir/release/examples/bench_server"

step "npm ci in $bench_dir/node"
if ! cmp -s "$bench_dir/node/package-lock.json" "$bench_dir/node/node_modules/lock.stamp" \
    2>/dev/null; then
    (cd "$bench_dir/node" && timeout 300 npm ci --no-audit --no-fund --silent)
    cp "$bench_dir/node/package-lock.json" "$bench_dir/node/node_modules/lock.stamp"
fi

# --- Start the servers -------------------------------------------------------------------------

# A fresh API key for this run, passed to the server and to wrk in the environment only.
BENCH_API_KEY="$(python3 -c 'import base64, secrets
print("ttk_" + base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode())')"
export BENCH_API_KEY

all_names=(server bare node audit-sqlite audit-sqlite-normal audit-postgres limits redis)
read -r -a names <<<"${BENCH_SERVERS:-${all_names[*]}}"
for name in "${names[@]}"; do
    case " ${all_names[*]} " in
    *" $name "*) ;;
    *)
        echo "error: BENCH_SERVERS names $name; the servers are ${all_names[*]}" >&2
        exit 1
        ;;
    esac
done
for needed in bare server; do
    case " ${names[*]} " in
    *" $needed "*) ;;
    *) names=("$needed" "${names[@]}") ;;
    esac
done
wants() { case " ${names[*]} " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
declare -A port pid_of auth
port[server]=$first_port
port[bare]=$((first_port + 1))
port[node]=$((first_port + 2))
port[audit-sqlite]=$((first_port + 3))
port[audit-sqlite-normal]=$((first_port + 4))
port[audit-postgres]=$((first_port + 5))
port[limits]=$((first_port + 6))
port[redis]=$((first_port + 7))
pg_port=$((first_port + 8))
redis_port=$((first_port + 9))
auth[server]="--auth"
auth[bare]=""
auth[node]=""
auth[audit-sqlite]="--auth"
auth[audit-sqlite-normal]="--auth"
auth[audit-postgres]="--auth"
auth[limits]="--auth"
auth[redis]="--auth"

port[redis-server]=$redis_port
port[postgres]=$pg_port
for name in "${names[@]}" redis-server postgres; do
    if python3 -c 'import socket, sys
s = socket.socket()
sys.exit(0 if s.connect_ex(("127.0.0.1", int(sys.argv[1]))) == 0 else 1)' "${port[$name]}"; then
        echo "error: 127.0.0.1:${port[$name]} is in use; set BENCH_PORT to a free range" >&2
        exit 1
    fi
done

if wants audit-postgres; then
    pg_bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
    if [ ! -x "$pg_bin/initdb" ]; then
        echo "error: PostgreSQL not found in /usr/lib/postgresql/*/bin; install it" \
            "(apt-get install -y postgresql) and rerun" >&2
        exit 1
    fi
    pg_folder="$(mktemp -d /tmp/twilio-token-bench-pg.XXXXXX)"
    as_pg=()
    if [ "$(id -u)" = 0 ]; then
        chown nobody "$pg_folder"
        as_pg=(setpriv --reuid nobody --regid nogroup --clear-groups --)
    fi
    step "starting PostgreSQL on 127.0.0.1:$pg_port"
    "${as_pg[@]}" "$pg_bin/initdb" -D "$pg_folder/data" -U postgres -A trust -E UTF8 --no-sync \
        >"$out_dir/initdb.log" 2>&1
    "${as_pg[@]}" "$pg_bin/postgres" -D "$pg_folder/data" -p "$pg_port" -k "$pg_folder" \
        -c listen_addresses=127.0.0.1 2>"$out_dir/postgres.log" &
    pids+=("$!")
    for _ in $(seq 100); do
        if "$pg_bin/pg_isready" -q -h 127.0.0.1 -p "$pg_port"; then
            break
        fi
        sleep 0.2
    done
    export BENCH_AUDIT_URL="postgresql://postgres@127.0.0.1:$pg_port/postgres"
fi
if wants redis; then
    redis_dir="$out_dir/redis"
    mkdir -p "$redis_dir"
    redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$redis_dir" \
        >"$out_dir/redis-server.log" 2>&1 &
    pids+=("$!")
fi
step "starting servers on 127.0.0.1 from port ${port[server]}"
"$bench_server" --port "${port[server]}" 2>"$out_dir/server.log" &
pid_of[server]=$!
pids+=("${pid_of[server]}")
"$bench_server" --port "${port[bare]}" --bare 2>"$out_dir/bare.log" &
pid_of[bare]=$!
pids+=("${pid_of[bare]}")
if wants node; then
    node "$bench_dir/node/server.js" "${port[node]}" 2>"$out_dir/node.log" &
    pid_of[node]=$!
    pids+=("${pid_of[node]}")
fi
rm -f "$out_dir"/audit.sqlite3* "$out_dir"/audit-normal.sqlite3*
if wants audit-sqlite; then
    "$bench_server" --port "${port[audit-sqlite]}" --audit-sqlite "$out_dir/audit.sqlite3" \
        2>"$out_dir/audit-sqlite.log" &
    pid_of[audit-sqlite]=$!
    pids+=("${pid_of[audit-sqlite]}")
fi
if wants audit-sqlite-normal; then
    "$bench_server" --port "${port[audit-sqlite-normal]}" \
        --audit-sqlite-normal "$out_dir/audit-normal.sqlite3" 2>"$out_dir/audit-sqlite-normal.log" &
    pid_of[audit-sqlite-normal]=$!
    pids+=("${pid_of[audit-sqlite-normal]}")
fi
if wants audit-postgres; then
    "$bench_server" --port "${port[audit-postgres]}" --audit-postgres \
        2>"$out_dir/audit-postgres.log" &
    pid_of[audit-postgres]=$!
    pids+=("${pid_of[audit-postgres]}")
fi
if wants limits; then
    "$bench_server" --port "${port[limits]}" --limits memory 2>"$out_dir/limits.log" &
    pid_of[limits]=$!
    pids+=("${pid_of[limits]}")
fi
if wants redis; then
    "$bench_server" --port "${port[redis]}" --limits "redis://127.0.0.1:$redis_port/0" \
        2>"$out_dir/redis.log" &
    pid_of[redis]=$!
    pids+=("${pid_of[redis]}")
fi

for name in "${names[@]}"; do
    url="http://127.0.0.1:${port[$name]}/token"
    for _ in $(seq 50); do
        if python3 "$bench_dir/check_response.py" "$url" ${auth[$name]} 2>/dev/null; then
            break
        fi
        sleep 0.2
    done
    if ! python3 "$bench_dir/check_response.py" "$url" ${auth[$name]}; then
        echo "error: $name returned a wrong response to POST /token; see $out_dir/$name.log" >&2
        exit 1
    fi
done

# --- Measure -----------------------------------------------------------------------------------

# Records the peak VmRSS (KiB) of process $1 into file $2 until the file $3 appears.
sample_rss() {
    local pid=$1 out=$2 stop=$3 peak=0 rss
    while [ ! -e "$stop" ]; do
        rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
        if [ "${rss:-0}" -gt "$peak" ]; then
            peak=$rss
            echo "$peak" >"$out"
        fi
        sleep 0.2
    done
    echo "$peak" >"$out"
}

# Prints the machine's busy CPU time and process $1's CPU time, both in clock ticks.
cpu_ticks() {
    awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat
    awk '{print $14 + $15}' "/proc/$1/stat"
}

# Runs wrk against server $1 for $2 seconds. Writes wrk's output to $3.wrk, the peak RSS to
# $3.rss, CPU ticks before and after to $3.cpu, and wrk's own CPU time (bash `times`) to
# $3.times.
load() {
    local name=$1 duration=$2 base=$3 sampler
    local pid=${pid_of[$name]} stop="$base.done"
    rm -f "$stop"
    sample_rss "$pid" "$base.rss" "$stop" &
    sampler=$!
    cpu_ticks "$pid" >"$base.cpu"
    (
        wrk -t"$threads" -c"$connections" -d"${duration}s" --latency -s "$bench_dir/post.lua" \
            "http://127.0.0.1:${port[$name]}/token" >"$base.wrk"
        times >"$base.times"
    )
    cpu_ticks "$pid" >>"$base.cpu"
    touch "$stop"
    wait "$sampler"
    rm -f "$stop"
}

for name in "${names[@]}"; do
    step "warm-up: $name, 2 s"
    load "$name" 2 "$out_dir/warmup-$name"
done
for run in $(seq "$runs"); do
    for name in "${names[@]}"; do
        step "run $run/$runs: $name, ${seconds} s"
        load "$name" "$seconds" "$out_dir/$name-$run"
    done
done

stop_servers
trap - EXIT

# --- Report ------------------------------------------------------------------------------------

cpu_model="$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -n 1)"
echo "Machine: $cpu_model, $(nproc) cores; $(wrk --version 2>&1 | head -n 1 | cut -d' ' -f1-2);" \
    "node $(node --version); $(rustc --version | cut -d' ' -f1-2)."
echo "Load: wrk -t$threads -c$connections -d${seconds}s --latency, $runs runs per server," \
    "medians shown."
echo
status=0
python3 "$bench_dir/summarize.py" "$out_dir" "$(getconf CLK_TCK)" \
    "server=twilio-token-server, POST /token with API key" \
    "bare=bare axum route, fixed token minted per request" \
    "node=Node reference (Express + twilio-node)" \
    "audit-sqlite=twilio-token-server, SQLite audit log" \
    "audit-sqlite-normal=twilio-token-server, SQLite audit log, synchronous normal" \
    "audit-postgres=twilio-token-server, PostgreSQL audit log" \
    "limits=twilio-token-server with in-process rate limits" \
    "redis=twilio-token-server with rate limits in Redis" || status=$?
step "done in $((SECONDS - started)) s; raw output in $out_dir"
exit "$status"
