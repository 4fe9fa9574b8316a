#!/usr/bin/env bash
# The README's results table: the synthetic motion benchmark, one encoder and one budget, five
# settings x 3 seeds (random init, visual-only, MaCLR, MaCLR + motion intra-modal, supervised),
# without and with scene bias. Makes the two datasets, runs everything, and prints a markdown
# table of linear-probe top-1 and retrieval R@1 (mean and spread over seeds) to
# $out/results.md. About 22 minutes per seed with the two settings side by side (THREADS=1
# below), so about 65 minutes for three seeds on 2 cores.
#
# Usage: bash benchmarks/synthetic_results.sh [outdir] [seeds]     (defaults: runs/results, "0 1 2")
#        SETTINGS="scene-bias" THREADS=1 bash benchmarks/synthetic_results.sh   (one setting, 1 thread:
#        two such processes side by side use the 2 cores better than one with 2 threads)
#        TABLE_ONLY=1 bash benchmarks/synthetic_results.sh                     (tabulate what is done)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/results}
seeds=${2:-"0 1 2"}
threads=${THREADS:-2}
settings=${SETTINGS:-"plain scene-bias"}
[ -n "${TABLE_ONLY:-}" ] && settings=""
maclr=.build/release/maclr
swift build -c release --product maclr >/dev/null
mkdir -p "$out"
for setting in $settings; do
    ds="$out/$setting/dataset"
    if [ ! -f "$ds/manifest.json" ]; then
        flag=""; [ "$setting" = scene-bias ] && flag="--scene-bias"
        $maclr synth "$out/$setting/videos" --classes 8 --per-class 48 --seed 0 $flag
        $maclr prepare "$out/$setting/videos/labels.csv" "$ds" --size 64x64 --flow-bound 4
    fi
    for seed in $seeds; do
        [ -f "$out/$setting/random-init-$seed.json" ] ||
            $maclr eval --recipe Recipes/quickstart.yaml --set data.dataset="$ds" --set seed="$seed" --threads "$threads" --json "$out/$setting/random-init-$seed.json"
        for recipe in visual-only quickstart maclr-motion-intra supervised; do
            run="$out/$setting/$recipe-$seed"
            [ -f "$run/eval.json" ] ||
                $maclr pretrain "Recipes/$recipe.yaml" --set data.dataset="$ds" --set train.output="$run" --set seed="$seed" --threads "$threads" --eval
        done
    done
done
python3 - "$out" "$seeds" <<'PY'
import json, statistics, sys
out, seeds = sys.argv[1], sys.argv[2].split()
names = [("random-init", "random init"), ("visual-only", "visual-only (MoCo/CVRL-style)"), ("quickstart", "MaCLR (visual + cross-modal)"),
         ("maclr-motion-intra", "MaCLR + motion intra-modal"), ("supervised", "supervised (labels)")]
def load(setting, name, seed):
    path = f"{out}/{setting}/{name}-{seed}.json" if name == "random-init" else f"{out}/{setting}/{name}-{seed}/eval.json"
    return json.load(open(path))
def cell(values):
    if not values:
        return "-"
    m = statistics.mean(values)
    spread = (max(values) - min(values)) / 2
    return f"{100 * m:.1f} ± {100 * spread:.1f} (n={len(values)})"
lines = ["| setting | linear probe top-1, plain | R@1, plain | linear probe top-1, scene bias | R@1, scene bias |", "|---|---|---|---|---|"]
for key, label in names:
    row = [label]
    for setting in ("plain", "scene-bias"):
        runs = []
        for s in seeds:
            try:
                runs.append(load(setting, key, s))
            except FileNotFoundError:
                pass
        row += [cell([r["top1"] for r in runs]), cell([r["recallAt1"] for r in runs])]
    lines.append("| " + " | ".join(row) + " |")
text = "\n".join(lines) + f"\n\n(%, mean ± half the range over the n seeds done of {', '.join(seeds)}; 8 classes, chance 12.5 %)\n"
open(f"{out}/results.md", "w").write(text)
print(text)
PY
