#!/usr/bin/env bash
# Preparation speed of two builds of maclr on the same videos, one after the other: frames/s,
# wall time, peak RSS, and the newer build's breakdown of where the time went.
#   bash benchmarks/prepare_ab.sh BEFORE AFTER LABELS.csv SIZE [WORKERS]
# e.g. bash benchmarks/prepare_ab.sh /tmp/maclr-before .build/release/maclr runs/syn/labels.csv 64x64
# (LABELS.csv: path,label[,split] lines with absolute paths; take its first lines for a short run.)
set -euo pipefail
before=$1; after=$2; labels=$3; size=$4; workers=${5:-2}
# GNU time for the peak RSS (Debian's `time` package), installed when missing
[ -x /usr/bin/time ] || { [ "$(id -u)" -eq 0 ] && apt-get install -y -qq time >/dev/null || sudo apt-get install -y -qq time >/dev/null; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for build in "$before" "$after"; do
    echo "$build:"
    /usr/bin/time -f "  wall %e s, peak RSS %M KB" env -u OPENBLAS_CORETYPE "$build" prepare "$labels" "$out/ds" --size "$size" \
        --flow-bound 4 --workers "$workers" 2>&1 | grep -aE "frames/s.*0m00s left|wall|^time " | tr '\r' '\n' | grep -E "0m00s left|wall|^time " | tail -3
    rm -rf "$out/ds"
done
