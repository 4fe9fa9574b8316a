#!/usr/bin/env bash
# The main job on its embedded default: installs what is missing, builds maclr in release mode,
# makes synthetic motion videos, prepares them into HDF5 shards (with TV-L1 flow), validates
# them, pretrains Recipes/quickstart.yaml (MaCLR), and evaluates it beside the random-init
# floor (linear probe and retrieval). Output goes to ./runs/quickstart (or $1).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
swift build -c release --product maclr
maclr=.build/release/maclr
out=${1:-runs/quickstart}
mkdir -p "$out"
# 384 videos (288 train / 96 test); flow quantised with a 4-px bound, since objects here move
# at most ~2 px per frame (the default 20-px bound would leave steps of 0.16 px).
$maclr synth "$out/videos" --classes 8 --per-class 48 --frames 32 --size 64 --seed 0
$maclr prepare "$out/videos/labels.csv" "$out/dataset" --size 64x64 --flow-bound 4
$maclr inspect "$out/dataset"
$maclr pretrain Recipes/quickstart.yaml --set data.dataset="$out/dataset" --set train.output="$out/maclr" --eval
echo "random-init floor:"
$maclr eval --recipe Recipes/quickstart.yaml --set data.dataset="$out/dataset"
