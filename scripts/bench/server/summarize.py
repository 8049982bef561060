#!/usr/bin/env python3
"""Summarize the wrk runs of scripts/bench/server/run.sh as Markdown tables.

Usage: summarize.py OUT_DIR CLK_TCK NAME[=LABEL] ...

For each NAME it reads four files per run. OUT_DIR/NAME-*.wrk is wrk --latency output, .rss the
peak VmRSS in KiB seen while the run was under load, .cpu the machine's busy clock ticks and the
server's before and after, and .times the output of bash `times` around wrk. It prints the median
over runs of requests per second (with the range), of p50 and of p99 latency, the largest RSS,
and the CPU cores used by the server, by wrk and by everything else on the machine. The first
NAME is the server under test, the second the bare minting route and the third the Node
reference. The targets table compares them.

Exit status: 0 when every run parsed and no request got a non-2xx response, 1 otherwise. Socket
errors (such as wrk's 2-second timeouts) are counted in the table but do not fail the script.
"""

import glob
import os
import re
import statistics
import sys

UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def parse_latency(text, percent):
    match = re.search(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s)\s*$", text, re.MULTILINE)
    if match is None:
        raise ValueError(f"no {percent}% latency line")
    return float(match.group(1)) * UNITS_MS[match.group(2)]


def parse_times(path):
    """Return the children's user + system seconds from bash `times` output."""
    with open(path, encoding="utf-8") as file:
        lines = file.read().split("\n")
    total = 0.0
    for field in lines[1].split():
        minutes, seconds = re.fullmatch(r"(\d+)m([\d.]+)s", field).groups()
        total += int(minutes) * 60 + float(seconds)
    return total


def parse_run(path, ticks_per_second):
    with open(path, encoding="utf-8") as file:
        text = file.read()
    rate = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.MULTILINE)
    if rate is None:
        raise ValueError(f"{path}: no Requests/sec line")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    socket = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    duration = float(re.search(r"requests in ([\d.]+)s", text).group(1))
    base = path[: -len(".wrk")]
    with open(base + ".rss", encoding="utf-8") as file:
        rss_kib = int(file.read().strip() or 0)
    with open(base + ".cpu", encoding="utf-8") as file:
        busy_before, server_before, busy_after, server_after = map(int, file.read().split())
    busy = (busy_after - busy_before) / ticks_per_second / duration
    server = (server_after - server_before) / ticks_per_second / duration
    wrk = parse_times(base + ".times") / duration
    return {
        "server_cores": server,
        "wrk_cores": wrk,
        "other_cores": max(busy - server - wrk, 0.0),
        "rate": float(rate.group(1)),
        "p50": parse_latency(text, 50),
        "p99": parse_latency(text, 99),
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": sum(int(count) for count in socket.groups()) if socket else 0,
        "rss_mib": rss_kib / 1024,
    }


def summarize(out_dir, ticks_per_second, name):
    paths = sorted(glob.glob(os.path.join(out_dir, f"{name}-*.wrk")))
    if not paths:
        raise ValueError(f"no runs for {name} in {out_dir}")
    runs = [parse_run(path, ticks_per_second) for path in paths]
    rates = [run["rate"] for run in runs]
    return {
        "runs": len(runs),
        "rate": statistics.median(rates),
        "rate_min": min(rates),
        "rate_max": max(rates),
        "p50": statistics.median(run["p50"] for run in runs),
        "p99": statistics.median(run["p99"] for run in runs),
        "p99_max": max(run["p99"] for run in runs),
        "rss_mib": max(run["rss_mib"] for run in runs),
        "non_2xx": sum(run["non_2xx"] for run in runs),
        "socket_errors": sum(run["socket_errors"] for run in runs),
        "server_cores": statistics.median(run["server_cores"] for run in runs),
        "wrk_cores": statistics.median(run["wrk_cores"] for run in runs),
        "other_cores": statistics.median(run["other_cores"] for run in runs),
    }


def main():
    if len(sys.argv) < 6:
        sys.stderr.write(
            "usage: summarize.py OUT_DIR CLK_TCK SERVER=LABEL BARE=LABEL NODE=LABEL ...\n"
        )
        return 2
    out_dir = sys.argv[1]
    ticks_per_second = int(sys.argv[2])
    entries = []
    for argument in sys.argv[3:]:
        name, _, label = argument.partition("=")
        # Servers left out by BENCH_SERVERS have no runs; server and bare always have.
        if name not in ("server", "bare") and not glob.glob(
            os.path.join(out_dir, f"{name}-*.wrk")
        ):
            continue
        entries.append((name, label or name, summarize(out_dir, ticks_per_second, name)))

    print(
        "| Server | req/s (median) | range | p50 | p99 | peak RSS under load"
        " | CPU cores: server / wrk / other | non-2xx | socket errors |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for _, label, result in entries:
        print(
            f"| {label} | {result['rate']:,.0f}"
            f" | {result['rate_min']:,.0f}–{result['rate_max']:,.0f}"
            f" | {result['p50']:.2f} ms | {result['p99']:.2f} ms | {result['rss_mib']:.1f} MiB"
            f" | {result['server_cores']:.2f} / {result['wrk_cores']:.2f} /"
            f" {result['other_cores']:.2f} | {result['non_2xx']} | {result['socket_errors']} |"
        )

    results = {name: result for name, _, result in entries}
    server, bare = results["server"], results["bare"]
    share = server["rate"] / bare["rate"]
    targets = [
        ("≥ 80,000 tokens/s", f"{server['rate']:,.0f}", server["rate"] >= 80_000),
        ("≥ 75% of the bare minting route", f"{share:.0%}", share >= 0.75),
        ("p99 < 5 ms", f"{server['p99']:.2f} ms", server["p99"] < 5.0),
    ]
    if "node" in results:
        ratio = server["rate"] / results["node"]["rate"]
        targets.append(("≥ 20× the Node reference", f"{ratio:.1f}×", ratio >= 20))
    targets.append(
        ("RSS < 30 MiB under load", f"{server['rss_mib']:.1f} MiB", server["rss_mib"] < 30)
    )
    print()
    print(f"| Target for {entries[0][1]} | measured | met |")
    print("|---|---|---|")
    for target, measured, met in targets:
        print(f"| {target} | {measured} | {'yes' if met else '**no**'} |")

    variants = [entry for entry in entries if entry[0] not in ("server", "bare", "node")]
    if variants:
        print()
        print(f"| Variant | req/s | share of {entries[0][1]} (same run) |")
        print("|---|---|---|")
        for _, label, result in variants:
            print(f"| {label} | {result['rate']:,.0f} | {result['rate'] / server['rate']:.0%} |")

    failed = [label for _, label, result in entries if result["non_2xx"]]
    if failed:
        sys.stderr.write(f"non-2xx responses from: {', '.join(failed)}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
