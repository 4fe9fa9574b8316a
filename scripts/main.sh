#!/usr/bin/env bash
# The main job on its embedded default: installs what is missing, builds maclr in release mode,
# and runs it. Today that is the engine benchmark on random clips (torchvision's R(2+1)D-18,
# batch 8, 8 frames, 64x64, 2 threads; beside PyTorch when it is installed). The synthetic-video
# pretraining pipeline (synth -> prepare -> pretrain -> eval) takes its place as it lands.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
swift build -c release --product maclr
.build/release/maclr bench engine "$@"
