#!/usr/bin/env python3
"""SVG charts of scripts/bench.sh's JSON lines: one file per scenario under DIR.

    scripts/bench_charts.py RESULTS.jsonl DIR

Each chart shows the median over runs, per server side by side: for load scenarios the
publish-to-delivery latency percentiles (p50, p90, p99, log scale), deliveries/s and server
CPU per publish; for the idle scenario the memory per subscriber. Hand-written SVG (no
plotting library), so bench.sh needs nothing beyond Python's standard library.
"""
import json
import math
import os
import statistics
import sys
from collections import defaultdict
from html import escape

COLOURS = ["#1f6feb", "#d1495b", "#2a9d8f", "#e9a03b", "#6a4c93", "#5c677d"]
W_PANEL, H_PANEL, PAD = 300, 220, 48


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def load(path):
    rows = defaultdict(list)
    for line in open(path):
        r = json.loads(line)
        if r.get("report") is not None:
            rows[(r["case"], r["server"])].append(r)
    return rows


def nice_max(v):
    if not v or v <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(v))
    for m in (1, 2, 2.5, 5, 10):
        if v <= m * exp:
            return m * exp
    return 10 * exp


def fmt(v):
    if v is None:
        return "-"
    if v >= 1e6:
        return f"{v / 1e6:.2f}M"
    if v >= 1e4:
        return f"{v / 1e3:.0f}k"
    if v >= 100:
        return f"{v:,.0f}"
    return f"{v:.2f}" if v < 10 else f"{v:.1f}"


def bars(x0, title, unit, servers, values, log=False):
    """One panel: a bar per server (values[i] may be a list: grouped bars, e.g. percentiles)."""
    out = [f'<g transform="translate({x0},0)">',
           f'<text x="{W_PANEL / 2}" y="20" text-anchor="middle" class="t">{escape(title)}</text>',
           f'<text x="{W_PANEL / 2}" y="36" text-anchor="middle" class="u">{escape(unit)}</text>']
    flat = [v for vs in values for v in (vs if isinstance(vs, list) else [vs]) if v]
    top, bottom = H_PANEL + 40, 50
    height = top - bottom
    if log:
        lo = 10 ** math.floor(math.log10(min(flat))) if flat else 1
        hi = 10 ** math.ceil(math.log10(max(flat))) if flat else 10
        hi = max(hi, lo * 10)
        scale = lambda v: height * (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))
        ticks = [lo * 10 ** k for k in range(int(round(math.log10(hi / lo))) + 1)]
    else:
        hi = nice_max(max(flat) if flat else 1)
        scale = lambda v: height * v / hi
        ticks = [hi * k / 4 for k in range(5)]
    for t in ticks:
        y = top - scale(t)
        out.append(f'<line x1="{PAD}" x2="{W_PANEL - 8}" y1="{y:.1f}" y2="{y:.1f}" class="g"/>')
        out.append(f'<text x="{PAD - 4}" y="{y + 4:.1f}" text-anchor="end" class="a">{fmt(t)}</text>')
    slot = (W_PANEL - PAD - 8) / max(len(servers), 1)
    for i, (server, vs) in enumerate(zip(servers, values)):
        group = vs if isinstance(vs, list) else [vs]
        bw = min(28, (slot - 8) / len(group))
        gx = PAD + i * slot + (slot - bw * len(group)) / 2
        for j, v in enumerate(group):
            x = gx + j * bw
            if v:
                h = max(scale(v), 1)
                shade = COLOURS[i % len(COLOURS)]
                opacity = 1.0 - 0.3 * j if len(group) > 1 else 1.0
                out.append(f'<rect x="{x:.1f}" y="{top - h:.1f}" width="{bw - 2:.1f}" height="{h:.1f}" '
                           f'fill="{shade}" fill-opacity="{opacity:.2f}"><title>{escape(server)}: {fmt(v)}</title></rect>')
                label = "v" if len(group) == 1 else "w"
                out.append(f'<text x="{x + bw / 2 - 1:.1f}" y="{top - h - 3:.1f}" text-anchor="middle" class="{label}">{fmt(v)}</text>')
        out.append(f'<text x="{PAD + i * slot + slot / 2:.1f}" y="{top + 16}" text-anchor="middle" class="s">{escape(server)}</text>')
    out.append("</g>")
    return out


def chart(case, servers, rows, note):
    reps = {s: [r["report"] for r in rows[(case, s)]] for s in servers}
    panels = []
    if case == "idle":
        panels.append(("memory per idle subscriber", "KiB (lower is better)",
                       [med([x["server_kib_per_subscriber"] for x in reps[s]]) for s in servers], False))
    else:
        panels.append(("delivery latency p50 / p90 / p99", "ms, log scale, bars p50 / p90 / p99 (lower is better)",
                       [[(med([x["latency_us"][p] for x in reps[s]]) or 0) / 1000 for p in ("p50", "p90", "p99")]
                        for s in servers], True))
        panels.append(("deliveries per second", "(higher is better)",
                       [med([x["deliveries_per_sec"] for x in reps[s]]) for s in servers], False))
        panels.append(("server CPU per publish", "us, fan-out included (lower is better)",
                       [cpu_per_publish(reps[s]) for s in servers], False))
    width = max(W_PANEL * len(panels) + 20, 620)  # room for the note under a single panel
    height = H_PANEL + 110
    runs = min(len(rows[(case, s)]) for s in servers)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif">',
           "<style>.t{font-size:13px;font-weight:bold}.u,.a,.s,.v{font-size:10px;fill:#333}"
           ".w{font-size:8px;fill:#333}.g{stroke:#ddd;stroke-width:1}.n{font-size:10px;fill:#666}</style>",
           f'<rect width="{width}" height="{height}" fill="white"/>']
    for k, (title, unit, values, log) in enumerate(panels):
        out += bars(10 + k * W_PANEL, f"{case}: {title}" if k == 0 else title, unit, servers, values, log)
    out.append(f'<text x="10" y="{height - 10}" class="n">medians of {runs} run(s) per server; {escape(note)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def cpu_per_publish(reps):
    vals = []
    for x in reps:
        v = x.get("server_cpu_us_per_publish")
        if v is None and x.get("server_cpu_cores") and x.get("publishes_per_sec"):
            v = x["server_cpu_cores"] / x["publishes_per_sec"] * 1e6
        vals.append(v)
    return med(vals)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    rows = load(sys.argv[1])
    os.makedirs(sys.argv[2], exist_ok=True)
    loads = [r["load"] for rs in rows.values() for r in rs if r.get("load") is not None]
    note = f"load average {min(loads):.1f}-{max(loads):.1f} at the start of the runs" if loads else ""
    order = []
    for (case, server) in rows:
        if server not in order:
            order.append(server)
    for case in sorted({c for c, _ in rows}):
        servers = [s for s in order if (case, s) in rows]
        path = os.path.join(sys.argv[2], f"{case}.svg")
        with open(path, "w") as f:
            f.write(chart(case, servers, rows, note))
        print(path)


if __name__ == "__main__":
    main()
