#!/usr/bin/env bash
# docs/results.md's synthetic benchmark table: the synthetic motion benchmark at the quickstart's budget on three
# datasets, each through `maclr ablate Recipes/ablations/benchmark.yaml --output ...` (visual-only,
# MaCLR, the quickstart's MaCLR + motion intra-modal at its lr and at half of it, supervised;
# 3 seeds) plus the random-init floor (`maclr eval --recipe Recipes/quickstart.yaml`), and MCL's
# two recipes (`maclr pretrain Recipes/mcl.yaml` and `maclr-mcl.yaml`, 3 seeds, with their own
# augmentation):
#   plain             the main job's set (objects over drifting textures)
#   real-backgrounds  the same classes over windows of real videos (camera motion and all)
#   partial-bias      80 % of each class's training videos on the class's hue, colour
#                     augmentation on (jitter, grayscale, blur; whole frames)
# Writes OUT/SETTING/{videos,dataset,ablation,random-init-SEED.json,mcl-SEED,maclr-mcl-SEED} and
# OUT/results.md. About 10 minutes of preparation and 90 minutes of training per dataset on 2 cores.
#
# Usage: bash benchmarks/synthetic_results.sh [OUT] [BACKGROUNDS]
#        (defaults: runs/benchmark; opencv-doc's example videos, installed when missing)
#   SETTINGS="plain partial-bias"   only these settings
#   SHARD=1/2 THREADS=1             one of two processes side by side (2 cores: faster than one
#                                   process with 2 threads); run SHARD=2/2 beside it
#   TABLE_ONLY=1                    tabulate what is complete
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/benchmark}
backgrounds=${2:-/usr/share/doc/opencv-doc/examples/data}
settings=${SETTINGS:-"plain real-backgrounds partial-bias"}
threads=${THREADS:-2}
shard=${SHARD:-1/1}
seeds="0 1 2"
maclr=.build/release/maclr
[ -n "${TABLE_ONLY:-}" ] && settings=""

if [ -n "$settings" ]; then
    bash scripts/setup.sh
    swift build -c release --product maclr >/dev/null
fi
if [[ " $settings " == *" real-backgrounds "* ]] && [ ! -d "$backgrounds" ]; then
    [ "$backgrounds" = /usr/share/doc/opencv-doc/examples/data ] || { echo "no folder $backgrounds" >&2; exit 1; }
    apt-get install -y opencv-doc >/dev/null
fi

for setting in $settings; do
    ds="$out/$setting/dataset"
    synth_flags=(); ablate_flags=()
    case $setting in
        plain) ;;
        real-backgrounds) synth_flags=(--backgrounds "$backgrounds") ;;
        partial-bias) synth_flags=(--scene-bias-fraction 0.8)
                      ablate_flags=(--set data.augment=true --set "data.crop_scale=[0.99,1.0]") ;;
        *) echo "unknown setting '$setting' (plain, real-backgrounds, partial-bias)" >&2; exit 1 ;;
    esac
    if [ ! -f "$ds/manifest.json" ]; then
        [ -f "$out/$setting/videos/labels.csv" ] ||
            $maclr synth "$out/$setting/videos" --classes 8 --per-class 48 --frames 32 --size 64 --seed 0 "${synth_flags[@]}"
        $maclr prepare "$out/$setting/videos/labels.csv" "$ds" --size 64x64 --flow-bound 4 --workers "$threads"
    fi
    $maclr ablate Recipes/ablations/benchmark.yaml --output "$out/$setting/ablation" --set data.dataset="$ds" \
        "${ablate_flags[@]}" --shard "$shard" --threads "$threads"
    mcl_run=0
    for seed in $seeds; do
        for recipe in mcl maclr-mcl; do
            mcl_run=$((mcl_run + 1))
            [ $(( (mcl_run - 1) % ${shard#*/} + 1 )) = "${shard%%/*}" ] || continue
            [ -f "$out/$setting/$recipe-$seed/eval.json" ] ||
                $maclr pretrain "Recipes/$recipe.yaml" --set data.dataset="$ds" --set seed="$seed" \
                    --set train.output="$out/$setting/$recipe-$seed" --threads "$threads" --eval
        done
    done
    if [ "$shard" = 1/1 ] || [ "${shard%%/*}" = 1 ]; then
        for seed in $seeds; do
            [ -f "$out/$setting/random-init-$seed.json" ] ||
                $maclr eval --recipe Recipes/quickstart.yaml --set data.dataset="$ds" --set seed="$seed" \
                    --threads "$threads" --json "$out/$setting/random-init-$seed.json"
        done
    fi
done

python3 - "$out" "$seeds" <<'PY'
import json, os, statistics, sys
out, seeds = sys.argv[1], sys.argv[2].split()
settings = [("plain", "plain"), ("real-backgrounds", "real-video backgrounds"), ("partial-bias", "partial scene bias")]
rows = [("random init", None), ("visual-only (MoCo/CVRL-style)", "visual-only"), ("MaCLR (visual + cross-modal)", "maclr"),
        ("MaCLR + motion intra-modal, cross-modal x4, lr 3e-4", "quickstart-lr-3e-4"),
        ("the same at lr 6e-4 (quickstart)", "quickstart"),
        ("MCL (Recipes/mcl.yaml)", "mcl"), ("MaCLR + MCL (Recipes/maclr-mcl.yaml)", "maclr-mcl"), ("supervised (labels)", "supervised")]
def values(setting, variant, metric):
    if variant in (None, "mcl", "maclr-mcl"):
        found = []
        for s in seeds:
            path = f"{out}/{setting}/random-init-{s}.json" if variant is None else f"{out}/{setting}/{variant}-{s}/eval.json"
            if os.path.exists(path):
                e = json.load(open(path))
                found.append(e["top1"] if metric == "probe_top1" else e["recallAt1"])
        return found
    path = f"{out}/{setting}/ablation/results.json"
    if not os.path.exists(path):
        return []
    return [r["metrics"][metric] for r in json.load(open(path))["runs"] if r["variant"] == variant and r["status"] == "complete"]
def cell(v):
    if not v:
        return "-"
    text = f"{100 * statistics.mean(v):.1f} ± {100 * (max(v) - min(v)) / 2:.1f}"
    return text if len(v) == len(seeds) else f"{text} (n={len(v)})"
head = "| setting | " + " | ".join(f"probe top-1, {t} | R@1, {t}" for _, t in settings) + " |"
lines = [head, "|---" * (1 + 2 * len(settings)) + "|"]
for label, variant in rows:
    lines.append("| " + " | ".join([label] + [cell(values(s, variant, m)) for s, _ in settings for m in ("probe_top1", "retrieval_r1")]) + " |")
text = "\n".join(lines) + f"\n\n(%, mean ± half the range over seeds {', '.join(seeds)}; n = seeds complete where fewer; 8 classes, chance 12.5 %)\n"
open(f"{out}/results.md", "w").write(text)
print(text)
PY
