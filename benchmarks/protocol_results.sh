#!/usr/bin/env bash
# The field's protocol on one prepared dataset: for each pretraining recipe and seed, the linear
# probe of its encoder (maclr pretrain --eval) and fine-tuning from it (maclr finetune --from);
# the random-init row is the probe of the random init and fine-tuning from scratch. Two runs at a
# time, one thread each. Writes OUT/table.md: per-seed figures and mean ± half the range.
# Transfer: with PRETRAINED=DIR (an earlier OUT), each encoder is DIR's run of the same recipe and
# seed, probed and fine-tuned on DATASET instead of pretrained on it.
#   bash benchmarks/protocol_results.sh DATASET OUT ["0 1 2"] ["quickstart visual-only ..."]
#   PRETRAINED=runs/protocol-plain bash benchmarks/protocol_results.sh REAL_DATASET OUT
set -euo pipefail
cd "$(dirname "$0")/.."
dataset=$1; out=$2; seeds=${3:-"0 1 2"}
recipes=${4:-"scratch visual-only quickstart mcl maclr-mcl supervised"}
maclr=${MACLR:-.build/release/maclr}
PRETRAINED=${PRETRAINED:-}
mkdir -p "$out"
one() {   # RECIPE SEED: probe and fine-tune, each skipped when its figures are there
  local recipe=$1 seed=$2 run="$out/$1/seed-$2"
  local common=(--set data.dataset="$dataset" --set seed="$seed" --threads 1)
  mkdir -p "$run"
  if [ "$recipe" = scratch ]; then
    [ -f "$run/probe.json" ] || "$maclr" eval --recipe Recipes/quickstart.yaml "${common[@]}" --json "$run/probe.json" >/dev/null 2>>"$run/log"
    [ -f "$run/finetune/finetune.json" ] || "$maclr" finetune Recipes/finetune.yaml --scratch "${common[@]}" --set train.output="$run/finetune" >/dev/null 2>>"$run/log"
  else
    local encoder="$run/pretrain"
    if [ -n "${PRETRAINED:-}" ]; then
      encoder="$PRETRAINED/$recipe/seed-$seed/pretrain"
      [ -f "$run/probe.json" ] || "$maclr" eval --checkpoint "$encoder" --dataset "$dataset" --threads 1 --json "$run/probe.json" >/dev/null 2>>"$run/log"
    else
      [ -f "$run/pretrain/eval.json" ] || "$maclr" pretrain "Recipes/$recipe.yaml" --eval "${common[@]}" --set train.output="$run/pretrain" >/dev/null 2>>"$run/log"
      cp "$run/pretrain/eval.json" "$run/probe.json"
    fi
    [ -f "$run/finetune/finetune.json" ] || "$maclr" finetune Recipes/finetune.yaml --from "$encoder" "${common[@]}" --set train.output="$run/finetune" >/dev/null 2>>"$run/log"
  fi
  echo "$recipe seed $seed done"
}
export -f one; export out dataset maclr PRETRAINED
for s in $seeds; do for r in $recipes; do echo "$r $s"; done; done | xargs -P 2 -L 1 bash -c 'one "$0" "$1"'
python3 - "$out" "$seeds" "$recipes" <<'PY'
import json, sys, os
out, seeds, recipes = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
names = {"scratch": "random init (from scratch)", "visual-only": "visual-only", "quickstart": "MaCLR (the quickstart)",
         "mcl": "MCL", "maclr-mcl": "MaCLR + MCL", "supervised": "supervised"}
def stat(v): return "%.1f ± %.1f" % (100 * sum(v) / len(v), 50 * (max(v) - min(v)))
rows = ["| pretraining | linear probe per seed | linear probe | fine-tuned per seed | fine-tuned |", "|---|---|---|---|---|"]
for r in recipes:
    probe, tuned = [], []
    for s in seeds:
        base = os.path.join(out, r, "seed-" + s)
        probe.append(json.load(open(os.path.join(base, "probe.json")))["top1"])
        tuned.append(json.load(open(os.path.join(base, "finetune", "finetune.json")))["top1"])
    rows.append("| %s | %s | %s | %s | %s |" % (names.get(r, r), ", ".join("%.1f" % (100 * x) for x in probe), stat(probe),
                                              ", ".join("%.1f" % (100 * x) for x in tuned), stat(tuned)))
open(os.path.join(out, "table.md"), "w").write("\n".join(rows) + "\n")
print("\n".join(rows))
PY
