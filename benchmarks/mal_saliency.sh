#!/usr/bin/env bash
# Does MCL's alignment loss move the encoder's saliency onto what moves? On synthetic videos of
# a single object over a still background, trains Recipes/mcl.yaml with and without the
# alignment loss (STEPS steps each), then measures with `maclr saliency` on the first VIDEOS test
# videos the share of the map's mass lying where the flow's motion boundaries are above their
# mean, for the random init and for every run; prints the mean of each (per video: OUT/shares.txt).
#   bash benchmarks/mal_saliency.sh [OUT] [STEPS] [VIDEOS]     (defaults: runs/mal-saliency 200 16)
# LAYER=layer3.0.conv2 aligns and measures at that conv instead of the last (loss.alignment_layer);
# WEIGHTS="1 10" trains one run per alignment weight besides the one without the loss.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/mal-saliency}; steps=${2:-200}; videos=${3:-16}
maclr=${MACLR:-.build/release/maclr}
ds="$out/dataset"
if [ ! -f "$ds/manifest.json" ]; then
  $maclr synth "$out/videos" --classes 8 --per-class 16 --frames 32 --size 64 --objects 1 --background-drift 0
  $maclr prepare "$out/videos/labels.csv" "$ds" --size 64x64 --flow-bound 4
fi
layer=${LAYER:-last}; weights=${WEIGHTS:-1}
common=(--set data.dataset="$ds" --set optim.steps="$steps" --set model.queue_size=32 --set loss.alignment_layer="$layer")
for weight in 0 $weights; do
  [ -f "$out/mal-$weight/encoder.safetensors" ] ||
    $maclr pretrain Recipes/mcl.yaml "${common[@]}" --set loss.alignment_weight=$weight \
      --set loss.alignment_warmup_weight="$(awk "BEGIN { print 2 * $weight }")" --set train.output="$out/mal-$weight" 2>"$out/mal-$weight.log"
done
sources=("random init:--recipe Recipes/mcl.yaml --set data.dataset=$ds" "MCL without the alignment loss:--checkpoint $out/mal-0")
for weight in $weights; do sources+=("MCL with the alignment loss x$weight:--checkpoint $out/mal-$weight"); done
bash benchmarks/saliency_shares.sh "$out" "$ds" "$videos" "$layer" "${sources[@]}"
