#!/usr/bin/env python3
"""Table of medians from scripts/bench-durable-streams.sh's JSON lines (one per run)."""
import json
import statistics
import sys
from collections import defaultdict

runs = defaultdict(list)
loads = []
syncs = []
for line in open(sys.argv[1]):
    r = json.loads(line)
    loads.append(r["load"])
    syncs.append(r.get("sync_us", 0))
    runs[(r["case"], r["server"])].append(r["report"])

servers = []
for _, s in runs:
    if s not in servers:
        servers.append(s)


def med(reports, f):
    vals = [f(r) for r in reports if r]
    return statistics.median(vals) if vals else None


def figure(case, reports):
    ok = [r for r in reports if r]
    if not ok:
        return "failed"
    note = ""
    if any(r["append_failures"] or r["lost"] or r["readers_ended_early"] for r in ok):
        note = " (!)"
    if case.startswith("append"):
        return f"{med(ok, lambda r: r['appends_per_sec']):,.0f}/s, p99 ack {med(ok, lambda r: r['append_ack_us']['p99']) / 1000:.1f} ms{note}"
    if case.startswith("sse"):
        p50 = med(ok, lambda r: r["latency_us"]["p50"]) / 1000
        p99 = med(ok, lambda r: r["latency_us"]["p99"]) / 1000
        return f"p50 {p50:.2f} / p99 {p99:.2f} ms{note}"
    return f"{med(ok, lambda r: r['catchup_mb_per_sec_median']):,.0f} MB/s{note}"


cases = []
for c, _ in runs:
    if c not in cases:
        cases.append(c)
print("| case | " + " | ".join(servers) + " |")
print("|---|" + "---|" * len(servers))
for c in cases:
    print(f"| {c} | " + " | ".join(figure(c, runs[(c, s)]) for s in servers) + " |")
for c in cases:
    cpu = []
    for s in servers:
        v = med(runs[(c, s)], lambda r: r["server_cpu_cores"] or 0)
        cpu.append(f"{s} {v:.2f}" if v is not None else f"{s} -")
    print(f"server CPU cores, {c}: " + ", ".join(cpu))
print(f"synced 4 KiB write in /tmp: min {min(syncs)}, median {statistics.median(syncs)}, max {max(syncs)} us")
print(f"load average (1 min) at the runs' starts: min {min(loads)}, median {statistics.median(loads)}, max {max(loads)}; runs per figure: {max(len(v) for v in runs.values())}")
