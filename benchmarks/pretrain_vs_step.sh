#!/usr/bin/env bash
# Does the loader feed the step? Alternates `maclr pretrain` (STEPS steps on DATASET, fresh) and
# `maclr bench step` on the same recipe, ROUNDS times, printing each one's clip pairs/s and the
# pretraining's data-wait share.
#   bash benchmarks/pretrain_vs_step.sh DATASET STEPS [ROUNDS] [--set key=value ...]
# e.g. the 16-frame 112x112 check on a 112x112 dataset:
#   bash benchmarks/pretrain_vs_step.sh runs/d112/dataset 40 2 --set data.clip_frames=16 --set data.crop=112
set -euo pipefail
cd "$(dirname "$0")/.."
maclr=${MACLR:-.build/release/maclr}
dataset=$1; steps=$2; rounds=${3:-2}
shift $(( $# >= 3 ? 3 : 2 ))
recipe=Recipes/quickstart.yaml
run=$(mktemp -d)
trap 'rm -rf "$run"' EXIT
for _ in $(seq "$rounds"); do
  $maclr pretrain $recipe --set data.dataset="$dataset" --set train.output="$run" --set optim.steps="$steps" \
    --set optim.warmup_steps=5 "$@" --fresh > "$run.log" 2>&1 || { cat "$run.log"; exit 1; }
  tail -1 "$run/metrics.jsonl" | python3 -c "import json,sys; d=json.load(sys.stdin); print('pretrain:   %.2f clip pairs/s, data wait %.1f %%' % (d['clips_per_s'], 100*d['data_wait']))"
  $maclr bench step $recipe "$@" --no-torch --rounds 1 --iterations 20 2>/dev/null | awk -F'|' '/^\| maclr/ {printf "bench step: %s clip pairs/s (%s)\n", $4, $3}'
done
rm -f "$run.log"
