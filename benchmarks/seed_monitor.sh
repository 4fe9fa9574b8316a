#!/usr/bin/env bash
# How often a quickstart seed stays near the floor, and whether the kNN monitor shows it early:
# the quickstart on one prepared dataset for each seed, the monitor every 50 steps, then the
# final linear probe; two runs at a time, one thread each. Writes OUT/table.md: per seed the
# monitor's kNN top-1 at steps 100, 200, 300, 450 and 600, and the probe.
#   bash benchmarks/seed_monitor.sh DATASET OUT ["0 1 2 3 4 5"]
set -euo pipefail
cd "$(dirname "$0")/.."
dataset=$1; out=$2; seeds=${3:-"0 1 2 3 4 5"}
maclr=${MACLR:-.build/release/maclr}
mkdir -p "$out"
one() {
  local run="$out/seed-$1"
  [ -f "$run/eval.json" ] || "$maclr" pretrain Recipes/quickstart.yaml --eval --set data.dataset="$dataset" --set seed="$1" \
      --set train.output="$run" --set train.monitor_every=50 --threads 1 >/dev/null 2>"$out/seed-$1.log"
  echo "seed $1 done"
}
export -f one; export out dataset maclr
for s in $seeds; do echo "$s"; done | xargs -P 2 -L 1 bash -c 'one "$0"'
python3 - "$out" "$seeds" <<'PY'
import json, os, sys
out, seeds = sys.argv[1], sys.argv[2].split()
steps = [100, 200, 300, 450, 600]
rows = ["| seed | " + " | ".join("kNN at step %d" % s for s in steps) + " | final probe top-1 |", "|---" * (len(steps) + 2) + "|"]
for s in seeds:
    run = os.path.join(out, "seed-" + s)
    knn = {}
    for line in open(os.path.join(run, "metrics.jsonl")):
        d = json.loads(line)
        if "monitor/knn_top1" in d: knn[d["step"]] = d["monitor/knn_top1"]
    probe = json.load(open(os.path.join(run, "eval.json")))["top1"]
    rows.append("| %s | %s | %.1f |" % (s, " | ".join("%.1f" % (100 * knn[k]) if k in knn else "-" for k in steps), 100 * probe))
open(os.path.join(out, "table.md"), "w").write("\n".join(rows) + "\n")
print("\n".join(rows))
PY
