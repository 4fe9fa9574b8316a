#!/usr/bin/env bash
# docs/results.md's "MCL at its own geometry": Recipes/ablations/mcl-geometry.yaml (16-frame
# 112-px clips; visual-only, with the alignment loss at layer4 and at layer3, and all of MCL) on
# six classes of the real-background set made at 112 px, then the share of the saliency on moving
# pixels for 16 test videos spread over the classes, at layer4 (benchmarks/saliency_shares.sh).
#   bash benchmarks/mcl_geometry.sh [OUT] [BACKGROUNDS]
#        (defaults: runs/mcl-geometry; opencv-doc's example videos, installed when missing)
#   THREADS=2             threads of the engine
#   SEEDS="0 1 2"         the seeds to run (default 0: a run costs about 8 times one at 8 x 56 clips)
# Resumable: a stopped session reruns the same command and goes on where it stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/mcl-geometry}
backgrounds=${2:-/usr/share/doc/opencv-doc/examples/data}
maclr=${MACLR:-.build/release/maclr}
threads=${THREADS:-2}
if [ -z "${MACLR:-}" ]; then
    bash scripts/setup.sh
    swift build -c release --product maclr >/dev/null
fi
ds="$out/dataset"
if [ ! -f "$ds/manifest.json" ]; then
    [ -d "$backgrounds" ] || apt-get install -y opencv-doc >/dev/null
    # objects 1.75x faster than at 64 px, so that they cross the same share of the frame
    [ -f "$out/videos/labels.csv" ] || $maclr synth "$out/videos" --classes 6 --per-class 32 --frames 48 --size 112 \
        --speed 1.75 --seed 0 --backgrounds "$backgrounds"
    $maclr prepare "$out/videos/labels.csv" "$ds" --size 112x112 --flow-bound 4 --workers "$threads"
fi
for seed in ${SEEDS:-0}; do
    [ -f "$out/random-init-$seed.json" ] || $maclr eval --recipe Recipes/quickstart.yaml --set model.motion_pathway=none --set data.clip_frames=16 \
        --set data.crop=112 --set data.dataset="$ds" --set seed="$seed" --threads "$threads" --json "$out/random-init-$seed.json" >/dev/null 2>&1
done
$maclr ablate Recipes/ablations/mcl-geometry.yaml --output "$out/ablation" --set data.dataset="$ds" --seeds "$(echo ${SEEDS:-0} | tr ' ' ,)" --threads "$threads" \
    2>>"$out/ablation.log"
cat "$out/ablation/results.md"
runs="$out/ablation/runs"
recipe_args="--recipe Recipes/quickstart.yaml --set model.motion_pathway=none --set data.clip_frames=16 --set data.crop=112"
SPREAD=1 MACLR=$maclr bash benchmarks/saliency_shares.sh "$out/saliency" "$ds" 16 layer4.0.conv2 \
    "random init:$recipe_args" "visual-only:--checkpoint $runs/visual-only/seed-0" \
    "with the alignment loss at layer4:--checkpoint $runs/visual-only+alignment@layer4/seed-0" \
    "MCL (all three pieces):--checkpoint $runs/mcl@layer4/seed-0"
