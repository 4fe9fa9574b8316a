#!/usr/bin/env bash
# Does MCL's alignment loss move the encoder's saliency onto what moves? On synthetic videos of
# a single object over a still background, trains Recipes/mcl.yaml with and without the
# alignment loss (STEPS steps each), then measures with `maclr saliency` on the first VIDEOS test
# videos the share of the map's mass lying where the flow's motion boundaries are above their
# mean, for the random init and for both runs; prints the mean of each.
#   bash benchmarks/mal_saliency.sh [OUT] [STEPS] [VIDEOS]     (defaults: runs/mal-saliency 200 16)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/mal-saliency}; steps=${2:-200}; videos=${3:-16}
maclr=${MACLR:-.build/release/maclr}
ds="$out/dataset"
if [ ! -f "$ds/manifest.json" ]; then
  $maclr synth "$out/videos" --classes 8 --per-class 16 --frames 32 --size 64 --objects 1 --background-drift 0
  $maclr prepare "$out/videos/labels.csv" "$ds" --size 64x64 --flow-bound 4
fi
common=(--set data.dataset="$ds" --set optim.steps="$steps" --set model.queue_size=32)
for weight in 1 0; do
  [ -f "$out/mal-$weight/encoder.safetensors" ] ||
    $maclr pretrain Recipes/mcl.yaml "${common[@]}" --set loss.alignment_weight=$weight --set train.output="$out/mal-$weight" 2>"$out/mal-$weight.log"
done
names=$(python3 -c "import json,sys; print('\n'.join(json.load(open(sys.argv[1]))['splits']['test'][:int(sys.argv[2])]))" "$ds/manifest.json" "$videos")
for source in "random init:--recipe Recipes/mcl.yaml --set data.dataset=$ds" "MCL without the alignment loss:--checkpoint $out/mal-0" "MCL with the alignment loss:--checkpoint $out/mal-1"; do
  label=${source%%:*}; args=${source#*:}
  shares=()
  while read -r name; do
    line=$($maclr saliency $args --video "$name" --output "$out/pictures/${label// /-}/${name//\//-}" 2>/dev/null)
    shares+=("$(echo "$line" | sed -E 's/.*; ([0-9]+) % of.*/\1/')")
  done <<< "$names"
  python3 -c "import sys; v=[float(x) for x in sys.argv[2:]]; print(f'{sys.argv[1]}: {sum(v)/len(v):.1f} % of the saliency on moving pixels (min {min(v):.0f}, max {max(v):.0f}, {len(v)} test videos)')" "$label" "${shares[@]}"
done
