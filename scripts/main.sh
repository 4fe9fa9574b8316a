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
$maclr synth "$out/videos" --classes 8 --per-class 12 --frames 32 --size 64 --seed 0
$maclr prepare "$out/videos/labels.csv" "$out/dataset" --size 64x64 --videos-per-shard 32
$maclr inspect "$out/dataset"
$maclr pretrain Recipes/quickstart.yaml --set data.dataset="$out/dataset" --set train.output="$out/maclr" --eval
echo "random-init floor:"
$maclr eval --recipe Recipes/quickstart.yaml --set data.dataset="$out/dataset"
