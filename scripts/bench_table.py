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

def opt(xs, fmt):
    """A median of a field some servers lack (Redis' CPU), or '-'."""
    xs = [x for x in xs if x is not None]
    return format(statistics.median(xs), fmt) if xs else "-"

def cpu_per_publish(x):
    """Server CPU per acknowledged publish in us (older reports: from cores and rate)."""
    if x.get("server_cpu_us_per_publish") is not None:
        return x["server_cpu_us_per_publish"]
    if x.get("server_cpu_cores") and x.get("publishes_per_sec"):
        return x["server_cpu_cores"] / x["publishes_per_sec"] * 1e6
    return None

print("| case | server | runs | load | fsync us | deliveries/s | lost | p50 ms | p99 ms | publishes/s | ack p50 ms | ack p99 ms | KiB/sub | server cores | server us/publish | redis cores | redis us/publish | generator cores |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for (case, server), rs in sorted(rows.items()):
    rep = [r["report"] for r in rs]
    print(f"| {case} | {server} | {len(rs)} | {med([r['load'] for r in rs]):.1f} "
          f"| {opt([r.get('sync_us') for r in rs], '.0f')} "
          f"| {med([x['deliveries_per_sec'] for x in rep]):,.0f} "
          f"| {sum(x['lost'] for x in rep)} "
          f"| {med([x['latency_us']['p50'] for x in rep]) / 1000:.2f} "
          f"| {med([x['latency_us']['p99'] for x in rep]) / 1000:.2f} "
          f"| {med([x['publishes_per_sec'] for x in rep]):,.0f} "
          f"| {med([x['publish_ack_us']['p50'] for x in rep]) / 1000:.2f} "
          f"| {med([x['publish_ack_us']['p99'] for x in rep]) / 1000:.2f} "
          f"| {med([x['server_kib_per_subscriber'] for x in rep]):.2f} "
          f"| {med([x['server_cpu_cores'] for x in rep]):.2f} "
          f"| {opt([cpu_per_publish(x) for x in rep], '.0f')} "
          f"| {opt([x.get('redis_cpu_cores') for x in rep], '.2f')} "
          f"| {opt([x.get('redis_cpu_us_per_publish') for x in rep], '.0f')} "
          f"| {med([x['generator_cpu_cores'] for x in rep]):.2f} |")
