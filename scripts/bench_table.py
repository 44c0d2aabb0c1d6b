#!/usr/bin/env python3
"""Medians of scripts/bench.sh's JSON lines, as the markdown table in BENCHMARKS.md."""
import json
import statistics
import sys
from collections import defaultdict

rows = defaultdict(list)
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r["report"] is not None:
        rows[(r["case"], r["server"])].append(r)

def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else float("nan")

print("| case | server | runs | load | deliveries/s | lost | p50 ms | p99 ms | publishes/s | KiB/sub | server cores | generator cores |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for (case, server), rs in sorted(rows.items()):
    rep = [r["report"] for r in rs]
    print(f"| {case} | {server} | {len(rs)} | {med([r['load'] for r in rs]):.1f} "
          f"| {med([x['deliveries_per_sec'] for x in rep]):,.0f} "
          f"| {sum(x['lost'] for x in rep)} "
          f"| {med([x['latency_us']['p50'] for x in rep]) / 1000:.2f} "
          f"| {med([x['latency_us']['p99'] for x in rep]) / 1000:.2f} "
          f"| {med([x['publishes_per_sec'] for x in rep]):,.0f} "
          f"| {med([x['server_kib_per_subscriber'] for x in rep]):.2f} "
          f"| {med([x['server_cpu_cores'] for x in rep]):.2f} "
          f"| {med([x['generator_cpu_cores'] for x in rep]):.2f} |")
