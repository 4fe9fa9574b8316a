#!/usr/bin/env bash
# docs/results.md's "MCL piece by piece" table: Recipes/ablations/mcl-pieces.yaml (visual-only and
# the quickstart, each alone, with one of MCL's three pieces, and with all three; 3 seeds) on the
# plain and the real-background sets, at the quickstart's budget and at twice it, plus the
# random-init floor of each set. Two sweep processes of one thread each run side by side (on 2
# cores, faster than one of two threads).
#   bash benchmarks/mcl_pieces.sh [OUT] [BACKGROUNDS]
#        (defaults: runs/mcl-pieces; opencv-doc's example videos, installed when missing)
#   RUNS="plain:600 real:600 real:1200 plain:1200"   which set and budget, in this order
#   PLAIN=DS REAL=DS      use these prepared datasets instead of making them under OUT
#   TABLE_ONLY=1          tabulate what is complete (benchmarks/mcl_pieces_table.py OUT)
# Resumable: a stopped session reruns the same command and goes on where it stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/mcl-pieces}
backgrounds=${2:-/usr/share/doc/opencv-doc/examples/data}
runs=${RUNS:-"plain:600 real:600 real:1200 plain:1200"}
maclr=${MACLR:-.build/release/maclr}
[ -n "${TABLE_ONLY:-}" ] && runs=""

dataset() {   # dataset SET: the folder of SET's shards, made when missing
    local set=$1 given
    given=$([ "$set" = plain ] && echo "${PLAIN:-}" || echo "${REAL:-}")
    if [ -n "$given" ]; then echo "$given"; return; fi
    local ds="$out/$set/dataset" flags=()
    [ "$set" = real ] && flags=(--backgrounds "$backgrounds")
    if [ ! -f "$ds/manifest.json" ]; then
        if [ "$set" = real ] && [ ! -d "$backgrounds" ]; then apt-get install -y opencv-doc >/dev/null; fi
        [ -f "$out/$set/videos/labels.csv" ] ||
            $maclr synth "$out/$set/videos" --classes 8 --per-class 48 --frames 32 --size 64 --seed 0 "${flags[@]}" >&2
        $maclr prepare "$out/$set/videos/labels.csv" "$ds" --size 64x64 --flow-bound 4 >&2
    fi
    echo "$ds"
}

if [ -n "$runs" ] && [ -z "${MACLR:-}" ]; then
    bash scripts/setup.sh
    swift build -c release --product maclr >/dev/null
fi
for run in $runs; do
    set=${run%%:*}; steps=${run#*:}
    case $set in plain|real) ;; *) echo "unknown set '$set' (plain, real)" >&2; exit 1 ;; esac
    ds=$(dataset "$set")
    mkdir -p "$out/$set"
    for seed in 0 1 2; do
        [ -f "$out/$set/random-init-$seed.json" ] ||
            $maclr eval --recipe Recipes/quickstart.yaml --set data.dataset="$ds" --set seed="$seed" \
                --json "$out/$set/random-init-$seed.json" >/dev/null 2>>"$out/$set/random-init.log"
    done
    status=0
    for shard in 1/2 2/2; do
        $maclr ablate Recipes/ablations/mcl-pieces.yaml --output "$out/$set/steps-$steps" --set data.dataset="$ds" \
            --set optim.steps="$steps" --shard "$shard" --threads 1 2>"$out/$set/steps-$steps-${shard%/*}.log" &
    done
    for job in $(jobs -p); do wait "$job" || status=1; done
    $maclr ablate Recipes/ablations/mcl-pieces.yaml --output "$out/$set/steps-$steps" --set data.dataset="$ds" \
        --set optim.steps="$steps" --report >/dev/null
    [ $status = 0 ] || echo "some runs of $set at $steps steps failed: $out/$set/steps-$steps/results.md lists them" >&2
done

python3 benchmarks/mcl_pieces_table.py "$out"
