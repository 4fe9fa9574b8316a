#!/usr/bin/env bash
# The main job on its embedded default: installs what is missing, builds maclr in release mode,
# makes synthetic motion videos, prepares them into HDF5 shards (with TV-L1 flow), validates
# them, and benchmarks the engine. Pretraining and evaluation (maclr pretrain / eval) join this
# pipeline when they land. Output goes to ./runs/quickstart (or $1).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
swift build -c release --product maclr
maclr=.build/release/maclr
out=${1:-runs/quickstart}
mkdir -p "$out"
$maclr synth "$out/videos" --classes 8 --per-class 12 --frames 32 --size 64 --scene-bias --seed 0
$maclr prepare "$out/videos/labels.csv" "$out/dataset" --size 64x64 --videos-per-shard 32
$maclr inspect "$out/dataset"
$maclr bench engine --iterations 3 --warmup 1
