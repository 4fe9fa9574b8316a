#!/usr/bin/env python3
"""Tables of benchmarks/mcl_pieces.sh's sweeps: per variant, set and budget the mean ± half the
range over seeds 0, 1, 2; then each piece against its own baseline (visual-only's pieces against
visual-only, the quickstart's against the quickstart), as the paired difference over seeds (the
same seed gives the same initial weights) with its 95 % t-interval (n = 3: t = 4.30); with fewer
seeds complete, the mean difference alone.

Usage: python3 benchmarks/mcl_pieces_table.py OUT"""
import json
import os
import statistics
import sys

out = sys.argv[1]
columns = [("plain", 600), ("real", 600), ("plain", 1200), ("real", 1200)]
names = {"plain": "plain", "real": "real backgrounds"}
variants = ["visual-only", "visual-only+temporal", "visual-only+spatial", "visual-only+alignment", "mcl",
            "quickstart", "quickstart+temporal", "quickstart+spatial", "quickstart+alignment", "quickstart+mcl"]
T95 = {3: 4.30, 4: 3.18, 5: 2.78}


def runs(s, steps):
    path = f"{out}/{s}/steps-{steps}/results.json"
    if not os.path.exists(path):
        return []
    return [r for r in json.load(open(path))["runs"] if r["status"] == "complete"]


def by_seed(s, steps, variant, metric):
    return {r["seed"]: 100 * r["metrics"][metric] for r in runs(s, steps) if r["variant"] == variant}


def cell(values):
    if not values:
        return "-"
    text = f"{statistics.mean(values):.1f} ± {(max(values) - min(values)) / 2:.1f}"
    return text if len(values) == 3 else f"{text} (n={len(values)})"


def paired(s, steps, variant, baseline, metric):
    a, b = by_seed(s, steps, variant, metric), by_seed(s, steps, baseline, metric)
    d = [a[k] - b[k] for k in sorted(set(a) & set(b))]
    if not d:
        return "-"
    if len(d) < 3:
        # two seeds tell too little for an interval (two equal differences would give a zero-width one)
        return f"{statistics.mean(d):+.1f} (n={len(d)})"
    half = T95[len(d)] * statistics.stdev(d) / len(d) ** 0.5
    mean = statistics.mean(d)
    verdict = "+" if mean - half > 0 else "−" if mean + half < 0 else "~"
    return f"{mean:+.1f} [{mean - half:+.1f}, {mean + half:+.1f}] {verdict}"


def floor(s):
    found = [json.load(open(p)) for p in (f"{out}/{s}/random-init-{k}.json" for k in range(3)) if os.path.exists(p)]
    return cell([100 * e["top1"] for e in found])


head = "| variant | " + " | ".join(f"{names[s]}, {n} steps" for s, n in columns) + " |"
rule = "|---" * (1 + len(columns)) + "|"
for metric, title in [("probe_top1", "Linear-probe top-1"), ("knn_top1", "kNN top-1")]:
    lines = [head, rule]
    if metric == "probe_top1":
        lines.append("| random init | " + " | ".join(floor(s) for s, _ in columns) + " |")
    for v in variants:
        lines.append(f"| {v} | " + " | ".join(cell(list(by_seed(s, n, v, metric).values())) for s, n in columns) + " |")
    print(f"{title} (%, mean ± half the range over seeds 0, 1, 2; n = seeds complete where fewer; 8 classes, chance 12.5 %)\n")
    print("\n".join(lines) + "\n")
for metric, title in [("probe_top1", "linear-probe top-1"), ("knn_top1", "kNN top-1")]:
    lines = [head, rule]
    for v in variants:
        base = "visual-only" if v.startswith("visual-only") or v == "mcl" else "quickstart"
        if v == base:
            continue
        lines.append(f"| {v} − {base} | " + " | ".join(paired(s, n, v, base, metric) for s, n in columns) + " |")
    print(f"Each piece against its baseline, {title}: paired difference over seeds in points, [95 % t-interval], "
          "+ / − where the interval excludes 0, ~ where it does not\n")
    print("\n".join(lines) + "\n")
