#!/usr/bin/env python3
"""Folds several loadtest/bench.sh result directories (one per run) into the Markdown tables of
docs/benchmarks.md: for every run name (e.g. `embedded-50000`) the min / median / max over the
runs of each number.

Usage: loadtest/bench-table.py bench-results/fanout-run1 bench-results/fanout-run2 ...
"""

import json
import pathlib
import statistics
import sys


def load(dirs):
    runs = {}
    for d in dirs:
        for path in sorted(pathlib.Path(d).glob("*.json")):
            runs.setdefault(path.stem, []).append(json.loads(path.read_text()))
    return runs


def spread(values, fmt="{:.1f}"):
    values = [v for v in values if v is not None]
    if not values:
        return "–"
    lo, mid, hi = min(values), statistics.median(values), max(values)
    if len(values) == 1:
        return fmt.format(mid)
    return f"{fmt.format(mid)} ({fmt.format(lo)}–{fmt.format(hi)})"


def get(report, *keys):
    for key in keys:
        report = (report or {}).get(key)
    return report


def fanout_rows(runs):
    rows = [
        "| run | n | deliveries/s | ratio (min) | p50 ms | p99 ms | p99.9 ms | server CPU-µs/delivery |",
        "|---|---|---|---|---|---|---|---|",
    ]
    def order(name):
        kind, _, rate = name.rpartition("-")
        return (int(rate) if rate.isdigit() else 0, kind)
    for name in sorted(runs, key=order):
        reports = runs[name]
        if not get(reports[0], "delivery", "latency"):
            continue
        ratio = min(get(r, "delivery", "delivery_ratio") or 0 for r in reports)
        rows.append(
            f"| {name} | {len(reports)} "
            f"| {spread([get(r, 'delivery', 'deliveries_per_s') for r in reports], '{:.0f}')} "
            f"| {ratio:.4f} "
            f"| {spread([get(r, 'delivery', 'latency', 'p50_ms') for r in reports], '{:.2f}')} "
            f"| {spread([get(r, 'delivery', 'latency', 'p99_ms') for r in reports], '{:.2f}')} "
            f"| {spread([get(r, 'delivery', 'latency', 'p999_ms') for r in reports], '{:.2f}')} "
            f"| {spread([get(r, 'server', 'cpu_us_per_delivery') for r in reports], '{:.2f}')} |"
        )
    return rows


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    print("\n".join(fanout_rows(load(sys.argv[1:]))))


if __name__ == "__main__":
    main()
